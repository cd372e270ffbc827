//! Revocation: an open keep-alive connection is closed within one second, a new handshake
//! with the revoked certificate fails (also for `openssl s_client`), and the device CRL
//! lists it.

use std::time::Duration;

use crate::common::*;
use serde_json::json;

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
        let mut tls = held_connection(&s.server_ca(), s.running.device_addr, &e).await;

        let (status, v) = s
            .admin_post(&format!("/v1/admin/devices/{}/revoke", e.id), json!({}))
            .await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(
            v["connections_closed"], 2,
            "the warm client's and the raw connection"
        );
        let closed = closed_within(&mut tls, Duration::from_secs(1)).await;
        assert!(
            closed.is_some(),
            "the connection stayed open after revocation"
        );

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
