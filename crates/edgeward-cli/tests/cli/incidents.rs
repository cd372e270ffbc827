//! `edgeward incidents …` and `edgeward alerts list` against a real edgeward-server on
//! loopback: a device enrolled with `edgeward device enroll` reports a tamper event; the
//! alert is listed, the incident shown, contained, its wipe approved, closed with the
//! post-mortem's fields, and reported in Markdown and HTML; bad requests are refused.

use crate::common::*;
use std::{fs, path::PathBuf};

fn edgeward_at(server: &str, ca: &PathBuf, token: &PathBuf) -> std::process::Command {
    let mut c = edgeward();
    c.env("EDGEWARD_SERVER", server)
        .env("EDGEWARD_SERVER_CA", ca)
        .env("EDGEWARD_ADMIN_TOKEN_FILE", token);
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incidents_from_alert_to_post_mortem() {
    let data = tempfile::tempdir().expect("tmp");
    let running = edgeward_server::start(edgeward_server::Config {
        data_dir: data.path().to_path_buf(),
        listen: ([127, 0, 0, 1], 0).into(),
        admin_listen: ([127, 0, 0, 1], 0).into(),
        enroll_listen: ([127, 0, 0, 1], 0).into(),
        ..Default::default()
    })
    .await
    .expect("server");
    let server = format!("https://localhost:{}", running.admin_addr.port());
    let (ca, token_file) = (
        data.path().join("server-ca.pem"),
        data.path().join("admin-token"),
    );
    let out = tempfile::tempdir().expect("tmp");
    let dev = out.path().join("cam-9");
    let (s, c, t, d) = (server.clone(), ca.clone(), token_file.clone(), dev.clone());
    tokio::task::spawn_blocking(move || {
        let token = ok(edgeward_at(&s, &c, &t).args([
            "fleet",
            "add-device",
            "cam-9",
            "--hardware",
            "jetson",
        ]));
        ok(edgeward_at(&s, &c, &t)
            .args(["device", "enroll", "--token", token.trim(), "--out"])
            .arg(&d));
    })
    .await
    .expect("join");

    // The device reports a tamper event over mTLS with its written credentials.
    let secret = fs::read_to_string(dev.join("secret")).expect("secret");
    let identity = format!(
        "{}{}",
        fs::read_to_string(dev.join("cert.pem")).expect("cert"),
        fs::read_to_string(dev.join("key.pem")).expect("key")
    );
    let device = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(
            reqwest::Certificate::from_pem(&fs::read(dev.join("ca.pem")).expect("ca")).expect("ca"),
        )
        .identity(reqwest::Identity::from_pem(identity.as_bytes()).expect("identity"))
        .build()
        .expect("client");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let auth = format!(
        "Device {}",
        edgeward_proto::token::create_v1("cam-9", secret.trim(), now)
    );
    let r = device
        .post(format!("https://localhost:{}/v1/device/telemetry", running.device_addr.port()))
        .header("authorization", auth)
        .json(&serde_json::json!({"records": [{"type": "event", "at": now, "event": "tamper", "detail": "lid"}]}))
        .send()
        .await
        .expect("telemetry");
    assert_eq!(r.status(), 200);

    let report_md = out.path().join("pm.md");
    let report_html = out.path().join("pm.html");
    let (rmd, rhtml) = (report_md.clone(), report_html.clone());
    tokio::task::spawn_blocking(move || {
        let cli = || edgeward_at(&server, &ca, &token_file);
        // The playbook acts on its own task: wait for the incident to be contained.
        let mut shown = serde_json::Value::Null;
        for _ in 0..200 {
            let list: serde_json::Value =
                serde_json::from_str(&ok(cli().args(["incidents", "list", "--json"])))
                    .expect("json");
            if list["incidents"][0]["status"] == "contained" {
                shown = serde_json::from_str(&ok(cli().args(["incidents", "show", "1", "--json"])))
                    .expect("json");
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        assert_eq!(shown["incident"]["device_id"], "cam-9", "{shown}");
        assert!(shown["containment_ms"].is_i64(), "{shown}");

        let alerts: serde_json::Value = serde_json::from_str(&ok(
            cli().args(["alerts", "list", "--device", "cam-9", "--json"])
        ))
        .expect("json");
        assert_eq!(alerts["alerts"][0]["kind"], "tamper", "{alerts}");
        assert!(ok(cli().args(["alerts", "list"])).contains("tamper"));

        // Containing again is harmless: the device is already quarantined.
        let text = ok(cli().args(["incidents", "contain", "1"]));
        assert!(text.contains("already quarantined"), "{text}");
        let approved: serde_json::Value =
            serde_json::from_str(&ok(cli().args(["incidents", "approve", "1", "--json"])))
                .expect("json");
        assert_eq!(approved["approved"][0]["name"], "wipe", "{approved}");
        let err = fails(cli().args(["incidents", "approve", "1"]), 1);
        assert!(
            err.contains("404") && err.contains("no pending actions"),
            "{err}"
        );
        ok(cli().args([
            "incidents",
            "close",
            "1",
            "--root-cause",
            "lid opened in transit",
            "--lessons",
            "seal the lids",
        ]));
        let err = fails(cli().args(["incidents", "close", "1"]), 1);
        assert!(err.contains("409"), "{err}");
        ok(cli()
            .args(["incidents", "report", "1", "--format", "md", "-o"])
            .arg(&rmd));
        ok(cli()
            .args(["incidents", "report", "1", "--format", "html", "-o"])
            .arg(&rhtml));
        let err = fails(cli().args(["incidents", "show", "77"]), 1);
        assert!(err.contains("404"), "{err}");
    })
    .await
    .expect("join");
    let md = fs::read_to_string(&report_md).expect("md");
    for part in [
        "# Post-mortem: incident 1",
        "lid opened in transit",
        "seal the lids",
        "playbook:contain-compromise",
        "admin:",
    ] {
        assert!(md.contains(part), "{part} not in\n{md}");
    }
    let html = fs::read_to_string(&report_html).expect("html");
    assert!(html.starts_with("<!doctype html>") && html.contains("Timeline"));
    running.stop().await;
}
