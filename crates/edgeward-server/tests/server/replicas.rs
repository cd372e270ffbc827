//! Revocation across replicas: two servers on one PostgreSQL registry (and one Redis); a
//! device revoked through one loses its open connection on the other within a second and
//! cannot handshake there again; a device contained through one (the playbook's drop of its
//! sessions) loses its open connection on the other too.

use std::time::Duration;

use crate::common::*;
use serde_json::json;

/// Two replicas on one PostgreSQL registry and one Redis, and a device enrolled through the
/// first.
async fn two_replicas(
    prefix: &str,
) -> (
    Server,
    edgeward_server::Running,
    tempfile::TempDir,
    Enrolled,
) {
    let redis =
        std::env::var("EDGEWARD_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let shared = |c: &mut edgeward_server::Config| c.redis_url = Some(redis.clone());
    let a = start_with(Backend::Postgres, shared, None).await;
    let (b, b_dir) = replica(&a, shared).await;
    let e = a.enroll(&device_id(prefix), "cam").await;
    (a, b, b_dir, e)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_through_one_replica_reaches_the_other_within_a_second() {
    let (a, b, _b_dir, e) = two_replicas("fleet").await;

    // A keep-alive connection to replica b, answered once.
    let mut tls = held_connection(&a.server_ca(), b.device_addr, &e).await;

    let (status, v) = a
        .admin_post(&format!("/v1/admin/devices/{}/revoke", e.id), json!({}))
        .await;
    assert_eq!(status, 200, "{v}");
    let closed = closed_within(&mut tls, Duration::from_secs(1)).await;
    assert!(
        closed.is_some(),
        "replica b kept the revoked device's connection for more than 1 s"
    );
    let device_on_b = client(&a.server_ca(), Some(&e));
    let port = b.device_addr.port();
    assert!(
        device_on_b
            .get(format!("https://127.0.0.1:{port}/healthz"))
            .send()
            .await
            .is_err(),
        "a new handshake on replica b got in"
    );
    b.stop().await;
    a.running.stop().await;
}

/// Containment through one replica reaches the other: a tamper event sent to replica a
/// makes the default playbook contain the device there, and its open connection on replica
/// b is closed too (b follows a's session drop as it follows revocations), while the
/// device may connect again for its command channel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containment_through_one_replica_closes_the_devices_connection_on_the_other() {
    let (a, b, _b_dir, e) = two_replicas("contained").await;

    let mut tls = held_connection(&a.server_ca(), b.device_addr, &e).await;

    send_tamper(&a, &a.device_url("/v1/device/telemetry"), &e).await;
    let closed = closed_within(&mut tls, Duration::from_secs(3)).await;
    assert!(
        closed.is_some(),
        "replica b kept the contained device's connection for more than 3 s"
    );
    eprintln!("closed on replica b {closed:?} after the telemetry was answered");
    let (_, v) = a.admin_get(&format!("/v1/admin/devices/{}", e.id)).await;
    assert_eq!(v["device"]["status"], "quarantined", "{v}");
    let (_, v) = a.admin_get("/v1/admin/incidents").await;
    let incident = v["incidents"]
        .as_array()
        .and_then(|l| l.iter().find(|i| i["device_id"] == e.id.as_str()).cloned())
        .unwrap_or_else(|| panic!("no incident for the device: {v}"));
    let (_, shown) = a
        .admin_get(&format!("/v1/admin/incidents/{}", incident["id"]))
        .await;
    assert!(
        shown
            .to_string()
            .contains("the other replicas asked to close theirs"),
        "{shown}"
    );
    b.stop().await;
    a.running.stop().await;
}
