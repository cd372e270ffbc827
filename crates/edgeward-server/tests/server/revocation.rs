//! Revocation: an open keep-alive connection is closed within one second, a new handshake
//! with the revoked certificate fails (also for `openssl s_client`), and the device CRL
//! lists it.

use std::time::{Duration, Instant};

use crate::common::*;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

both_backends!(
    revocation_closes_open_connections_within_a_second,
    |backend| async move {
        let s = start(backend).await;
        let e = s.enroll(&device_id("cam"), "cam").await;
        // A client that has completed a handshake before (and could try to resume it).
        let warm = s.device_client(&e);
        let r = warm
            .get(s.device_url("/v1/device/commands"))
            .header("authorization", v1(&e, unix_now()))
            .send()
            .await
            .expect("call");
        assert_eq!(r.status(), 200);
        let mut tls = tls_connect(&s.server_ca(), s.running.device_addr, &e).await;
        let request = format!(
        "GET /v1/device/commands HTTP/1.1\r\nhost: localhost\r\nauthorization: {}\r\nconnection: keep-alive\r\n\r\n",
        v1(&e, unix_now())
    );
        tls.write_all(request.as_bytes()).await.expect("write");
        let mut buf = vec![0u8; 4096];
        let n = tls.read(&mut buf).await.expect("read");
        assert!(
            String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&buf[..n])
        );

        let (status, v) = s
            .admin_post(&format!("/v1/admin/devices/{}/revoke", e.id), json!({}))
            .await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(
            v["connections_closed"], 2,
            "the warm client's and the raw connection"
        );
        let started = Instant::now();
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
            "the connection stayed open after revocation"
        );
        assert!(started.elapsed() < Duration::from_secs(1));

        // A new handshake with the revoked certificate fails, and so does resuming an
        // earlier session (resumption would skip the certificate check).
        let c = s.device_client(&e);
        assert!(c.get(s.device_url("/healthz")).send().await.is_err());
        assert!(
            warm.get(s.device_url("/healthz")).send().await.is_err(),
            "a resumed session got in"
        );
        // The device CRL lists the serial.
        let crl = std::fs::read_to_string(s.dir.path().join("device-crl.pem")).expect("crl");
        let text = std::process::Command::new("openssl")
            .args(["crl", "-noout", "-text", "-in"])
            .arg(s.dir.path().join("device-crl.pem"))
            .output()
            .expect("openssl");
        let (_, d) = s.admin_get(&format!("/v1/admin/devices/{}", e.id)).await;
        let serial = d["device"]["cert_serial"]
            .as_str()
            .expect("serial")
            .to_ascii_uppercase();
        assert!(
            String::from_utf8_lossy(&text.stdout).contains(&serial),
            "{crl}"
        );
        s.running.stop().await;
    }
);
