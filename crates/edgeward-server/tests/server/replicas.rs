//! Revocation across replicas: two servers on one PostgreSQL registry (and one Redis); a
//! device revoked through one loses its open connection on the other within a second and
//! cannot handshake there again.

use std::time::{Duration, Instant};

use crate::common::*;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_through_one_replica_reaches_the_other_within_a_second() {
    let redis =
        std::env::var("EDGEWARD_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let shared = |c: &mut edgeward_server::Config| c.redis_url = Some(redis.clone());
    let a = start_with(Backend::Postgres, shared, None).await;
    let (b, _b_dir) = replica(&a, shared).await;
    let e = a.enroll(&device_id("fleet"), "cam").await;

    // A keep-alive connection to replica b, answered once.
    let mut tls = tls_connect(&a.server_ca(), b.device_addr, &e).await;
    let request = format!(
        "GET /v1/device/commands HTTP/1.1\r\nhost: localhost\r\nauthorization: {}\r\n\r\n",
        v1(&e, unix_now())
    );
    tls.write_all(request.as_bytes()).await.expect("write");
    let mut buf = vec![0u8; 4096];
    let n = tls.read(&mut buf).await.expect("read");
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );

    let (status, v) = a
        .admin_post(&format!("/v1/admin/devices/{}/revoke", e.id), json!({}))
        .await;
    assert_eq!(status, 200, "{v}");
    let revoked = Instant::now();
    let closed = tokio::time::timeout(Duration::from_secs(1), async {
        loop {
            match tls.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => continue,
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "replica b kept the revoked device's connection for {:?}",
        revoked.elapsed()
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
