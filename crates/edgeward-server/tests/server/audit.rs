//! The audit log under a flood: refused enrollments from one address are limited (429) and
//! their audit entries aggregated into one with a count, so real entries stay within reach;
//! the audit API pages by cursor and filters by actor, device and action.

use std::time::Duration;

use crate::common::*;
use edgeward_server::config::LimitConfig;
use serde_json::{json, Value};

/// Every entry the audit API gives for `query`, following `next` with pages of `limit`.
async fn all_pages(s: &Server, query: &str, limit: usize) -> Vec<Value> {
    let mut out = Vec::new();
    let mut before: Option<i64> = None;
    loop {
        let cursor = before.map(|b| format!("&before={b}")).unwrap_or_default();
        let (status, v) = s
            .admin_get(&format!("/v1/admin/audit?limit={limit}{query}{cursor}"))
            .await;
        assert_eq!(status, 200, "{v}");
        let entries = v["entries"].as_array().expect("entries").clone();
        assert!(entries.len() <= limit);
        out.extend(entries);
        match v["next"].as_i64() {
            Some(next) => before = Some(next),
            None => return out,
        }
    }
}

both_backends!(
    a_flood_of_refused_enrollments_is_limited_and_audited_as_one_entry,
    |backend| async move {
        let s = start_with(
            backend,
            |c| {
                c.audit_aggregate_secs = 1;
                c.enroll_limit = LimitConfig {
                    per_second: 20,
                    burst: 100,
                };
            },
            None,
        )
        .await;
        let real = device_id("real");
        s.register(&real, "cam").await;
        let (mut refused, mut limited) = (0, 0);
        let mut calls = tokio::task::JoinSet::new();
        for i in 0..400 {
            let (admin, url) = (s.admin.clone(), s.admin_url("/v1/enroll"));
            calls.spawn(async move {
                admin
                    .post(url)
                    .json(&json!({ "token": format!("ewe_forged{i}"), "csr": "x" }))
                    .send()
                    .await
                    .expect("call")
                    .status()
                    .as_u16()
            });
            if calls.len() >= 8 {
                match calls.join_next().await.expect("call").expect("join") {
                    401 => refused += 1,
                    429 => limited += 1,
                    other => panic!("answered {other}"),
                }
            }
        }
        while let Some(status) = calls.join_next().await {
            match status.expect("join") {
                401 => refused += 1,
                429 => limited += 1,
                other => panic!("answered {other}"),
            }
        }
        assert!(limited > 0, "no enrollment was limited ({refused} refused)");
        assert!(refused >= 100, "only {refused} refused");
        // The repeats are written when the window closes.
        tokio::time::sleep(Duration::from_millis(1800)).await;
        let entries = all_pages(&s, "&action=enroll.refused", 100).await;
        assert!(entries.len() <= 3, "{} entries: {entries:?}", entries.len());
        let counted: i64 = entries
            .iter()
            .map(|e| e["count"].as_i64().expect("count"))
            .sum();
        assert_eq!(counted, refused, "{entries:?}");
        assert!(entries
            .iter()
            .all(|e| e["detail"] == "unknown enrollment token"));
        // The real entry is a page or two away, not thousands.
        let recent = all_pages(&s, "", 5).await;
        assert!(recent.len() <= 10, "{recent:?}");
        assert!(recent
            .iter()
            .any(|e| e["action"] == "device.add" && e["device_id"] == real.as_str()));
        s.running.stop().await;
    }
);

both_backends!(
    the_audit_api_pages_by_cursor_and_filters,
    |backend| async move {
        let s = start(backend).await;
        let mut ids = Vec::new();
        for _ in 0..23 {
            let id = device_id("pg");
            s.register(&id, "cam").await;
            ids.push(id);
        }
        let (status, _) = s
            .admin_post(&format!("/v1/admin/devices/{}/revoke", ids[3]), json!({}))
            .await;
        assert_eq!(status, 200);

        let whole = all_pages(&s, "", 1000).await;
        let paged = all_pages(&s, "", 7).await;
        let id_of = |e: &Value| e["id"].as_i64().expect("id");
        assert_eq!(
            paged.iter().map(id_of).collect::<Vec<_>>(),
            whole.iter().map(id_of).collect::<Vec<_>>(),
            "pages of 7 give the whole log, once each"
        );
        assert!(
            whole.windows(2).all(|w| id_of(&w[0]) > id_of(&w[1])),
            "newest first"
        );
        assert_eq!(whole.len(), 24);

        let added = all_pages(&s, "&action=device.add", 5).await;
        assert_eq!(added.len(), 23);
        assert!(added.iter().all(|e| e["action"] == "device.add"));
        let one = all_pages(&s, &format!("&device={}", ids[3]), 5).await;
        assert_eq!(
            one.iter()
                .map(|e| e["action"].as_str().expect("action"))
                .collect::<Vec<_>>(),
            ["device.revoke", "device.add"]
        );
        let both = all_pages(
            &s,
            &format!(
                "&device={}&action=device.revoke&actor=admin:bootstrap",
                ids[3]
            ),
            5,
        )
        .await;
        assert_eq!(both.len(), 1);
        assert!(all_pages(&s, "&actor=admin:nobody", 5).await.is_empty());
        let (status, v) = s.admin_get("/v1/admin/audit?colour=red").await;
        assert_eq!(status, 400, "{v}");
        s.running.stop().await;
    }
);
