//! Quarantine cuts the device's open connections: a keep-alive connection opened before the
//! quarantine is closed at once (it cannot carry another call, so nothing a quarantined
//! device may no longer do rides on a connection admitted while it was active), and on a new
//! connection only the command channel and the forensic upload are served.

use std::time::Duration;

use crate::common::*;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

both_backends!(
    quarantine_closes_kept_alive_connections,
    |backend| async move {
        let s = start(backend).await;
        let e = s.enroll(&device_id("cam"), "cam").await;
        let mut tls = tls_connect(&s.server_ca(), s.running.device_addr, &e).await;
        let get = format!(
            "GET /v1/device/commands HTTP/1.1\r\nhost: localhost\r\nauthorization: {}\r\nconnection: keep-alive\r\n\r\n",
            v1(&e, unix_now())
        );
        tls.write_all(get.as_bytes()).await.expect("write");
        let mut buf = vec![0u8; 4096];
        let n = tls.read(&mut buf).await.expect("read");
        let answer = String::from_utf8_lossy(&buf[..n]).to_string();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

        let (status, v) = s
            .admin_post(&format!("/v1/admin/devices/{}/quarantine", e.id), json!({}))
            .await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["connections_closed"], 1, "{v}");

        // The kept-alive connection carries nothing more: a telemetry call on it gets no
        // answer, the server has closed it.
        let body = r#"{"records":[{"cpu":1}]}"#;
        let post = format!(
            "POST /v1/device/telemetry HTTP/1.1\r\nhost: localhost\r\nauthorization: {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            v1(&e, unix_now()),
            body.len()
        );
        let _ = tls.write_all(post.as_bytes()).await;
        let mut after = Vec::new();
        let ended = tokio::time::timeout(Duration::from_secs(2), async {
            loop {
                match tls.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => after.extend_from_slice(&buf[..n]),
                }
            }
        })
        .await;
        assert!(ended.is_ok(), "the connection stayed open after quarantine");
        assert!(
            after.is_empty(),
            "answered on the old connection: {}",
            String::from_utf8_lossy(&after)
        );
        assert_eq!(s.running.app.conns.count(), 0);

        // A new connection: telemetry refused, the command channel still open.
        let c = s.device_client(&e);
        let r = c
            .post(s.device_url("/v1/device/telemetry"))
            .header("authorization", v1(&e, unix_now()))
            .body(body)
            .send()
            .await
            .expect("call");
        assert_eq!(r.status(), 403);
        let r = c
            .get(s.device_url("/v1/device/commands"))
            .header("authorization", v1(&e, unix_now()))
            .send()
            .await
            .expect("call");
        assert_eq!(r.status(), 200);
        s.running.stop().await;
    }
);
