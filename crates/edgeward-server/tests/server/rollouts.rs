//! Staged rollouts end to end, on SQLite and PostgreSQL: an operator rolls a published
//! release out to some devices, they are offered it (and others are not), they report
//! each phase as themselves only, and the stage halts itself — one audit entry — when
//! reverts pass the threshold; a new stage resumes it.

use serde_json::{json, Value};

use crate::common::*;
use crate::updates::{image, TestRepo};

async fn offer(s: &Server, e: &Enrolled) -> (u16, Value) {
    let r = s
        .device_client(e)
        .get(s.device_url("/v1/device/update/offer"))
        .header("authorization", v1(e, unix_now()))
        .send()
        .await
        .expect("offer");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn report(s: &Server, e: &Enrolled, body: Value) -> (u16, Value) {
    let r = s
        .device_client(e)
        .post(s.device_url(edgeward_proto::update_report::PATH))
        .header("authorization", v1(e, unix_now()))
        .json(&body)
        .send()
        .await
        .expect("report");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn body(device: &str, version: &str, phase: &str, reason: Option<&str>) -> Value {
    let mut b = json!({
        "v": 1, "device_id": device, "target": "fw/cam.img", "version": version,
        "phase": phase, "at": unix_now(),
    });
    if let Some(r) = reason {
        b["reason"] = json!(r);
        b["detail"] = json!("probe exited 1");
    }
    b
}

both_backends!(a_failing_stage_halts_itself, |backend| async move {
    let repo = TestRepo::new();
    // One target path holds one release: 1.0.0 stays published beside 2.0.0.
    repo.publish("fw/cam-1.0.0.img", &image(5000, 1), "1.0.0", "cam");
    repo.publish("fw/cam.img", &image(5000, 2), "2.0.0", "cam");
    let dir = repo.dir.path().to_path_buf();
    let s = start_with(backend, |c| c.update_repo = Some(dir), None).await;
    let d: Vec<Enrolled> = {
        let mut v = Vec::new();
        for _ in 0..4 {
            v.push(s.enroll(&device_id("ro"), "cam").await);
        }
        v
    };
    let orin = s.enroll(&device_id("ro"), "orin").await;

    // Refusals: an unknown version, a bad share, no selector or two of them.
    for (path, b, status, needle) in [
        ("9.9.9", json!({"percent": 10}), 404, "unknown version"),
        ("2.0.0", json!({"percent": 0}), 400, "percent must"),
        ("2.0.0", json!({"percent": 100.5}), 400, "percent must"),
        ("2.0.0", json!({}), 400, "exactly one"),
        (
            "2.0.0",
            json!({"percent": 5, "hardware": "cam"}),
            400,
            "exactly one",
        ),
        ("2.0.0", json!({"devices": ["a:b"]}), 400, "devices: "),
    ] {
        let (st, v) = s
            .admin_post(&format!("/v1/admin/releases/{path}/rollout"), b.clone())
            .await;
        assert_eq!(st, status, "{b}: {v}");
        assert!(
            v["message"].as_str().unwrap_or("").contains(needle),
            "{b}: {v}"
        );
    }
    let (st, _) = s.admin_get("/v1/admin/releases/2.0.0/status").await;
    assert_eq!(st, 404, "no rollout yet");

    // Stage 1: three named devices; halts once 2 have finished with > 5 % reverted.
    let ids = [d[0].id.clone(), d[1].id.clone(), d[2].id.clone()];
    let (st, v) = s
        .admin_post(
            "/v1/admin/releases/2.0.0/rollout",
            json!({"devices": ids, "min_sample": 2}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["stage"], 1);
    assert_eq!(v["threshold"], 5.0);
    let (st, v) = offer(&s, &d[0]).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["version"], "2.0.0");
    assert_eq!(v["targets"], json!(["fw/cam.img"]));
    assert_eq!(offer(&s, &d[3]).await.1["version"], Value::Null);
    assert_eq!(offer(&s, &orin).await.1["version"], Value::Null);

    // A device reports only about itself; about a release it was not offered (or one no
    // rollout offers) its report is stored but counts in no stage, so it cannot halt one.
    let (st, v) = report(&s, &d[0], body(&d[1].id, "2.0.0", "installed", None)).await;
    assert_eq!(
        (st, v["error"].as_str()),
        (403, Some("wrong_device")),
        "{v}"
    );
    for _ in 0..3 {
        let (st, v) = report(
            &s,
            &d[3],
            body(&d[3].id, "2.0.0", "reverted", Some("timeout")),
        )
        .await;
        assert_eq!(
            (st, v["stage"].as_i64(), v["halted"].as_bool()),
            (200, Some(0), Some(false)),
            "{v}"
        );
    }
    let (st, v) = report(&s, &d[0], body(&d[0].id, "7.0.0", "installed", None)).await;
    assert_eq!((st, v["stage"].as_i64()), (200, Some(0)), "{v}");
    let (st, v) = report(&s, &d[0], body(&d[0].id, "2.0.0", "reverted", None)).await;
    assert_eq!(st, 400, "{v}");

    for phase in ["downloaded", "installed", "confirmed"] {
        let (st, v) = report(&s, &d[0], body(&d[0].id, "2.0.0", phase, None)).await;
        assert_eq!(st, 200, "{v}");
        assert_eq!(v["halted"], false);
    }
    // d1 never asked for an offer but is selected: its reports count in stage 1.
    for phase in ["downloaded", "installed"] {
        assert_eq!(
            report(&s, &d[1], body(&d[1].id, "2.0.0", phase, None))
                .await
                .0,
            200
        );
    }
    let (st, v) = report(
        &s,
        &d[1],
        body(&d[1].id, "2.0.0", "reverted", Some("health_check_failed")),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["halted"], true, "1 of 2 reverted is above 5 %");
    // The same report again is not counted twice.
    let (st, v) = report(
        &s,
        &d[1],
        body(&d[1].id, "2.0.0", "reverted", Some("health_check_failed")),
    )
    .await;
    assert_eq!((st, v["recorded"].as_bool()), (200, Some(false)), "{v}");
    // A halted stage offers nothing more.
    assert_eq!(offer(&s, &d[2]).await.1["version"], Value::Null);

    let (st, v) = s.admin_get("/v1/admin/releases/2.0.0/status").await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["halted"], true);
    assert_eq!(
        v["stage_counts"],
        json!({"offered": 2, "downloaded": 2, "installed": 2, "confirmed": 1, "reverted": 1})
    );
    // Overall, d3's report outside the rollout is there too.
    assert_eq!(
        v["counts"],
        json!({"offered": 3, "downloaded": 2, "installed": 2, "confirmed": 1, "reverted": 2})
    );
    assert_eq!(
        v["revert_reasons"],
        json!({"health_check_failed": 1, "timeout": 1})
    );
    assert!(
        v["halt_reason"]
            .as_str()
            .expect("reason")
            .contains("1 of 2 finished updates reverted (50.0 %)"),
        "{v}"
    );
    let (_, audit) = s
        .admin_get("/v1/admin/audit?action=release.rollout.halted")
        .await;
    let entries = audit["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), 1, "{audit}");
    assert_eq!(entries[0]["actor"], "server");

    // Another release by hardware class: only cam devices have a target for it.
    let (st, v) = s
        .admin_post(
            "/v1/admin/releases/1.0.0/rollout",
            json!({"hardware": "cam"}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(offer(&s, &d[3]).await.1["version"], "1.0.0");
    assert_eq!(offer(&s, &orin).await.1["version"], Value::Null);

    // Stage 2 of 2.0.0 resumes it for everyone (and is now the newest rollout).
    let (st, v) = s
        .admin_post("/v1/admin/releases/2.0.0/rollout", json!({"percent": 100}))
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        (v["stage"].as_i64(), v["halted"].as_bool()),
        (Some(2), Some(false))
    );
    assert_eq!(
        offer(&s, &d[2]).await.1,
        json!({"version": "2.0.0", "targets": ["fw/cam.img"], "stage": 2})
    );
    s.running.stop().await;
});

/// A quarantined device is offered nothing and its reports are refused at the gate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quarantined_device_gets_no_offer() {
    let repo = TestRepo::new();
    repo.publish("fw/cam.img", &image(100, 1), "2.0.0", "cam");
    let dir = repo.dir.path().to_path_buf();
    let s = start_with(Backend::Sqlite, |c| c.update_repo = Some(dir), None).await;
    let e = s.enroll(&device_id("rq"), "cam").await;
    let (st, _) = s
        .admin_post("/v1/admin/releases/2.0.0/rollout", json!({"percent": 100}))
        .await;
    assert_eq!(st, 200);
    assert_eq!(offer(&s, &e).await.1["version"], "2.0.0");
    let (st, _) = s
        .admin_post(&format!("/v1/admin/devices/{}/quarantine", e.id), json!({}))
        .await;
    assert_eq!(st, 200);
    let (st, v) = offer(&s, &e).await;
    assert_eq!((st, v["error"].as_str()), (403, Some("quarantined")), "{v}");
    let (st, v) = report(&s, &e, body(&e.id, "2.0.0", "installed", None)).await;
    assert_eq!((st, v["error"].as_str()), (403, Some("quarantined")), "{v}");
    s.running.stop().await;
}

/// While an open incident holds a device's updates (containment), the device is offered
/// nothing and served no target, though it is active again (its quarantine lifted) and
/// its rollout selects it; once the hold is lifted the offer is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incident_hold_offers_nothing_and_serves_no_target() {
    let repo = TestRepo::new();
    let fw = image(100, 1);
    repo.publish("fw/cam.img", &fw, "2.0.0", "cam");
    let dir = repo.dir.path().to_path_buf();
    let s = start_with(Backend::Sqlite, |c| c.update_repo = Some(dir), None).await;
    let (held, free) = (
        s.enroll(&device_id("rh"), "cam").await,
        s.enroll(&device_id("rh"), "cam").await,
    );
    let (st, _) = s
        .admin_post("/v1/admin/releases/2.0.0/rollout", json!({"percent": 100}))
        .await;
    assert_eq!(st, 200);
    let db = &s.running.app.db;
    edgeward_server::incidents::store::hold_updates(db, &held.id, 1, 0)
        .await
        .expect("hold");
    let (st, v) = offer(&s, &held).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v, json!({"version": null, "targets": [], "held": true}));
    assert_eq!(offer(&s, &free).await.1["version"], "2.0.0");
    let sha = hex::encode(edgeward_core::sha256(&fw));
    let target = s.device_url(&format!("/v1/device/update/targets/fw/{sha}.cam.img"));
    let get = |e: &Enrolled| {
        s.device_client(e)
            .get(&target)
            .header("authorization", v1(e, unix_now()))
            .send()
    };
    let r = get(&held).await.expect("call");
    assert_eq!(r.status(), 403);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["error"], "updates_held", "{v}");
    assert_eq!(get(&free).await.expect("call").status(), 200);
    let (_, v) = s.admin_get("/v1/admin/releases/2.0.0/status").await;
    assert_eq!(
        v["counts"]["offered"], 1,
        "a held device is not counted offered: {v}"
    );

    edgeward_server::incidents::store::release_updates(db, &held.id)
        .await
        .expect("lift");
    assert_eq!(offer(&s, &held).await.1["version"], "2.0.0");
    assert_eq!(get(&held).await.expect("call").status(), 200);
    s.running.stop().await;
}
