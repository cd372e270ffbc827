//! The role matrix in full: every admin route called with a viewer's, an operator's and an
//! admin's key (refused with 403 `role` below the route's role, with nothing changed, and
//! served from it up); device credentials on the admin routes and admin keys on the device
//! routes refused; each API absent from the other's listener. The table must name every
//! admin route the server declares (`routes::declared`): a new route without its entry fails.

use std::collections::BTreeSet;

use crate::{common::*, routes};
use serde_json::{json, Value};

/// The roles, weakest first.
const ROLES: [&str; 3] = ["viewer", "operator", "admin"];

/// Every admin route and the least role that may call it.
const ADMIN_ROUTES: &[(&str, &str, &str)] = &[
    ("GET", "/v1/admin/devices", "viewer"),
    ("POST", "/v1/admin/devices", "operator"),
    ("GET", "/v1/admin/devices/{id}", "viewer"),
    ("POST", "/v1/admin/devices/{id}/quarantine", "operator"),
    ("POST", "/v1/admin/devices/{id}/release", "operator"),
    ("POST", "/v1/admin/devices/{id}/revoke", "admin"),
    ("POST", "/v1/admin/devices/{id}/reprovision", "admin"),
    ("POST", "/v1/admin/devices/{id}/commands", "operator"),
    ("GET", "/v1/admin/devices/{id}/commands/{command}", "viewer"),
    ("POST", "/v1/admin/devices/{id}/enrollment-token", "admin"),
    ("GET", "/v1/admin/audit", "viewer"),
    ("GET", "/v1/admin/audit/checkpoint", "viewer"),
    ("GET", "/v1/admin/audit/entries", "viewer"),
    ("GET", "/v1/admin/audit/proof/inclusion", "viewer"),
    ("GET", "/v1/admin/audit/proof/consistency", "viewer"),
    ("POST", "/v1/admin/keys", "admin"),
    // The rollout first: the status route needs one.
    ("POST", "/v1/admin/releases/{version}/rollout", "operator"),
    ("GET", "/v1/admin/releases/{version}/status", "viewer"),
    ("GET", "/v1/admin/alerts", "viewer"),
    ("GET", "/v1/admin/incidents", "viewer"),
    ("GET", "/v1/admin/incidents/{id}", "viewer"),
    ("POST", "/v1/admin/incidents/{id}/contain", "operator"),
    ("POST", "/v1/admin/incidents/{id}/approve", "admin"),
    ("POST", "/v1/admin/incidents/{id}/close", "operator"),
    ("GET", "/v1/admin/incidents/{id}/report", "viewer"),
    (
        "GET",
        "/v1/admin/incidents/{id}/evidence/{upload}",
        "operator",
    ),
];

fn rank(role: &str) -> usize {
    ROLES.iter().position(|r| *r == role).expect("role")
}

#[test]
fn the_table_names_every_admin_route() {
    let declared: BTreeSet<(String, String)> = routes::declared()
        .into_iter()
        .filter(|(_, p)| p.starts_with("/v1/admin/"))
        .collect();
    let table: BTreeSet<(String, String)> = ADMIN_ROUTES
        .iter()
        .map(|(m, p, _)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(
        declared.difference(&table).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "admin routes without a role in ADMIN_ROUTES"
    );
    assert_eq!(
        table.difference(&declared).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "ADMIN_ROUTES names routes the server does not declare"
    );
}

/// A key of `role`, made by the bootstrap admin.
async fn key(s: &Server, role: &str) -> String {
    let (status, v) = s
        .admin_post(
            "/v1/admin/keys",
            json!({ "name": device_id(role), "role": role }),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    v["key"].as_str().expect("key").to_string()
}

/// A device in the state the route needs to succeed, the route's body, and the path to call
/// (`{id}` filled in: the device, or for an incident route the incident the device's tamper
/// report opened; `{upload}`: its forensic bundle; `{command}`: a command queued for it).
async fn prepare(s: &Server, path: &str) -> (String, Value, String) {
    let id = device_id("matrix");
    let body = match path {
        "/v1/admin/devices" => json!({ "id": id, "hardware_class": "cam" }),
        "/v1/admin/keys" => json!({ "name": id, "role": "viewer" }),
        p if p.ends_with("/commands") => json!({ "kind": "reboot", "body": {} }),
        p if p.ends_with("/rollout") => json!({ "percent": 10 }),
        _ => json!({}),
    };
    let mut target = path.replace("{id}", &id);
    if path.contains("{id}") {
        let e = s.enroll(&id, "cam").await;
        if path.starts_with("/v1/admin/incidents/") {
            target = incident_route(s, &e, path).await;
        }
        if path.ends_with("/release") {
            let (status, v) = s
                .admin_post(&format!("/v1/admin/devices/{id}/quarantine"), json!({}))
                .await;
            assert_eq!(status, 200, "{v}");
        }
        if path.contains("{command}") {
            let (status, v) = s
                .admin_post(
                    &format!("/v1/admin/devices/{id}/commands"),
                    json!({ "kind": "reboot", "body": {} }),
                )
                .await;
            assert_eq!(status, 201, "{v}");
            target = target.replace("{command}", &v["id"].to_string());
        }
    }
    (id, body, target)
}

/// Opens an incident for `e` (a tamper report, contained by the default playbook) and
/// returns `path` with the incident (and, for `{upload}`, a forensic bundle) filled in.
async fn incident_route(s: &Server, e: &Enrolled, path: &str) -> String {
    let c = s.device_client(e);
    let r = c
        .post(s.device_url("/v1/device/telemetry"))
        .header("authorization", v1(e, unix_now()))
        .json(&json!({"records": [{"type": "event", "event": "tamper", "detail": "matrix"}]}))
        .send()
        .await
        .expect("telemetry");
    assert_eq!(r.status(), 200);
    let mut incident = None;
    for _ in 0..200 {
        let (_, v) = s.admin_get("/v1/admin/incidents?limit=500").await;
        incident = v["incidents"].as_array().and_then(|is| {
            is.iter()
                .find(|i| i["device_id"] == e.id.as_str() && i["status"] == "contained")
                .and_then(|i| i["id"].as_i64())
        });
        if incident.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    let incident = incident.expect("the tamper report opened a contained incident");
    let mut out = path.replace("{id}", &incident.to_string());
    if path.contains("{upload}") {
        let r = c
            .post(s.device_url("/v1/device/forensics"))
            .header("authorization", v1(e, unix_now()))
            .body(e.bundle(0, b"bundle"))
            .send()
            .await
            .expect("forensics");
        let v: Value = r.json().await.expect("json");
        out = out.replace("{upload}", &v["id"].to_string());
    }
    out
}

/// The query a GET route needs to succeed (the audit log has entries by then: keys were
/// made).
fn query(route: &str) -> &'static str {
    match route {
        "/v1/admin/audit/entries" => "?start=0&end=1",
        "/v1/admin/audit/proof/inclusion" => "?index=0&size=1",
        "/v1/admin/audit/proof/consistency" => "?old_size=1&size=1",
        _ => "",
    }
}

async fn status_of(s: &Server, id: &str) -> Value {
    let (_, v) = s.admin_get(&format!("/v1/admin/devices/{id}")).await;
    v["device"]["status"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_admin_route_for_every_role() {
    // A repository with release 1.0.0, for the rollout routes.
    let repo = crate::updates::TestRepo::new();
    repo.publish("fw.img", b"firmware", "1.0.0", "cam");
    let dir = repo.dir.path().to_path_buf();
    let s = start_with(Backend::Sqlite, |c| c.update_repo = Some(dir), None).await;
    let mut keys = Vec::new();
    for role in ROLES {
        keys.push((role, key(&s, role).await));
    }
    for (method, route, least) in ADMIN_ROUTES {
        for (role, secret) in &keys {
            let (id, body, target) = prepare(&s, route).await;
            let before = status_of(&s, &id).await;
            let path = target.replace("{version}", "1.0.0");
            let url = s.admin_url(&format!("{path}{}", query(route)));
            let mut call = s
                .admin
                .request(method.parse().expect("method"), url)
                .bearer_auth(secret);
            if *method == "POST" {
                call = call.json(&body);
            }
            let r = call.send().await.expect("call");
            let status = r.status().as_u16();
            let v: Value = r.json().await.unwrap_or(Value::Null);
            if rank(role) < rank(least) {
                assert_eq!(
                    (status, v["error"].as_str()),
                    (403, Some("role")),
                    "{role} on {method} {route}: {v}"
                );
                assert_eq!(
                    status_of(&s, &id).await,
                    before,
                    "{role} was refused {method} {route}, yet the device changed"
                );
            } else {
                assert!(
                    (200..300).contains(&status),
                    "{role} on {method} {route}: {status} {v}"
                );
            }
        }
    }
    s.running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_credentials_and_admin_keys_stay_on_their_own_side() {
    let s = start(Backend::Sqlite).await;
    let e = s.enroll(&device_id("side"), "cam").await;
    let device = s.device_client(&e);
    let admin_key = s.admin_key.trim().to_string();
    let declared = routes::declared();

    let bearer = format!("Bearer {admin_key}");
    // The status of `method url` through `client` with `authorization`, or None when the
    // connection was refused.
    let status = |client: &reqwest::Client, method: &reqwest::Method, url: String, auth: &str| {
        let call = client
            .request(method.clone(), url)
            .header("authorization", auth)
            .body("{}")
            .send();
        async move { call.await.ok().map(|r| r.status().as_u16()) }
    };

    for (method, route) in &declared {
        let path = route.replace("{id}", &e.id);
        let method: reqwest::Method = method.parse().expect("method");
        if route.starts_with("/v1/admin/") {
            // A device's certificate and token on the admin listener: not an admin.
            let token = v1(&e, unix_now());
            let got = status(&device, &method, s.admin_url(&path), &token).await;
            assert_eq!(got, Some(401), "device token on {method} {route}");
            // The admin API is not served on the device listener at all.
            let got = status(&device, &method, s.device_url(&path), &bearer).await;
            assert_eq!(got, Some(404), "{method} {route} on the device listener");
        }
        if route.starts_with("/v1/device/") {
            // An admin key on the device listener: with a device certificate it is no device
            // token (401); without one the handshake itself is refused.
            let got = status(&device, &method, s.device_url(&path), &bearer).await;
            assert_eq!(got, Some(401), "admin key on {method} {route}");
            let got = status(&s.admin, &method, s.device_url(&path), &bearer).await;
            assert_eq!(
                got, None,
                "an admin key without a device certificate on {method} {route}"
            );
            // The device API is not served on the admin listener.
            let got = status(&s.admin, &method, s.admin_url(&path), &bearer).await;
            assert_eq!(got, Some(404), "{method} {route} on the admin listener");
        }
    }
    s.running.stop().await;
}
