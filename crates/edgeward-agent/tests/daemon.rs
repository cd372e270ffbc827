//! The agent binary as a daemon against the real server: it enrolls from the secure element
//! through the enrollment listener (which serves nothing of the admin API), sends telemetry
//! over mutual TLS that lands in the registry, answers `status` on its socket, and stops
//! cleanly on SIGTERM; the incident commands (daemon/incident.rs) and the isolated inference
//! worker (daemon/inference.rs).

mod common;
#[path = "daemon/incident.rs"]
mod incident;
#[path = "daemon/inference.rs"]
mod inference;
#[path = "daemon/update.rs"]
mod update;

use std::process::{Command, Stdio};

use common::*;

fn agent() -> Command {
    Command::new(env!("CARGO_BIN_EXE_edgeward-agent"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrolls_sends_telemetry_reports_status_and_stops_on_sigterm() {
    let server = Server::start().await;
    let id = device_id("cam");
    let token = server.register(&id).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = agent_config(
        &server,
        dir.path(),
        &token,
        "[location]\nlatitude = 48.85\nlongitude = 2.35\n",
    );

    // The enrollment listener answers enrollment only: no admin route behind it.
    let (_, _, enroll) = server.ports();
    let r = server
        .admin
        .get(format!("https://localhost:{enroll}/v1/admin/devices"))
        .bearer_auth(&server.admin_key)
        .send()
        .await
        .expect("call");
    assert_eq!(r.status(), 404);

    let mut child = agent()
        .args(["run", "--config"])
        .arg(&config)
        .stderr(Stdio::piped())
        .spawn()
        .expect("agent starts");

    wait_for(30, "telemetry from the agent", || async {
        !server.telemetry(&id).await.is_empty()
    })
    .await;
    let device = server.device(&id).await;
    assert_eq!(device["device"]["status"], "active");
    let batches = server.telemetry(&id).await;
    let record = &batches[0]["records"][0];
    assert_eq!(record["type"], "device");
    assert!(
        record["metrics"]["processes"].as_u64().unwrap_or(0) > 0,
        "{record}"
    );
    assert_eq!(record["location"]["source"], "configured");
    // The token was used and removed; the key is in the element, not in the state dir.
    assert!(!dir.path().join("enrollment-token").exists());
    let state: Vec<String> = std::fs::read_dir(dir.path().join("state"))
        .expect("state")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!state.iter().any(|n| n.contains("key")), "{state:?}");

    let out = agent()
        .args(["status", "--json", "--config"])
        .arg(&config)
        .output()
        .expect("status");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status JSON");
    assert_eq!(status["state"], "running");
    assert_eq!(status["device_id"], id.as_str());
    assert_eq!(status["key_slot"], "device-1");
    let out = agent()
        .args(["status", "--config"])
        .arg(&config)
        .output()
        .expect("status");
    assert!(String::from_utf8_lossy(&out.stdout)
        .contains(&format!("device: {id} (key in slot device-1)")));

    let kill = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .expect("kill");
    assert!(kill.success());
    let exit = child.wait().expect("wait");
    assert_eq!(exit.code(), Some(0));
    let mut log = String::new();
    use std::io::Read;
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut log)
        .expect("log");
    assert!(
        log.contains("SIGTERM: shutting down") && log.contains("stopped"),
        "{log}"
    );
    assert!(!dir.path().join("state/status.sock").exists());
    let out = agent()
        .args(["status", "--config"])
        .arg(&config)
        .output()
        .expect("status");
    assert_eq!(out.status.code(), Some(1));

    // A restart uses the stored identity: no second enrollment (the token is gone).
    let mut child = agent()
        .args(["run", "--config"])
        .arg(&config)
        .stderr(Stdio::null())
        .spawn()
        .expect("agent");
    let before = server.telemetry(&id).await.len();
    wait_for(30, "telemetry after a restart", || async {
        server.telemetry(&id).await.len() > before
    })
    .await;
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    assert_eq!(child.wait().expect("wait").code(), Some(0));
}

/// Three agents, one on HTTPS, one on MQTT 3.1.1 and one on MQTT 5 through a real
/// Mosquitto: all enroll from their element, all streams land in the registry; revoking the
/// MQTT devices closes their live broker sessions (the dynamic-security kick) while the
/// HTTPS agent carries on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_on_https_mqtt_3_and_mqtt_5_land_telemetry_and_revocation_closes_the_mqtt_sessions()
{
    let (server, broker) = broker::server_and_broker().await;
    let https_id = device_id("cam-https");
    // (device, mqtt_version, the protocol level Mosquitto logs: p2 is 3.1.1, p5 is 5)
    let mqtt = [
        (device_id("cam-mqtt3"), "3.1.1", "p2"),
        (device_id("cam-mqtt5"), "5", "p5"),
    ];
    let dirs: Vec<_> = (0..3)
        .map(|_| tempfile::tempdir().expect("tempdir"))
        .collect();
    let mut configs = vec![agent_config(
        &server,
        dirs[0].path(),
        &server.register(&https_id).await,
        "",
    )];
    for (k, (id, version, _)) in mqtt.iter().enumerate() {
        configs.push(agent_config(
            &server,
            dirs[k + 1].path(),
            &server.register(id).await,
            &format!(
                "transport = \"mqtt\"\nmqtt_broker = \"127.0.0.1:{}\"\nmqtt_version = \"{version}\"\n",
                broker.port
            ),
        ));
    }
    let mut children: Vec<std::process::Child> = configs
        .iter()
        .map(|c| {
            agent()
                .args(["run", "--config"])
                .arg(c)
                .stderr(Stdio::null())
                .spawn()
                .expect("agent starts")
        })
        .collect();
    let ids: Vec<&String> = std::iter::once(&https_id)
        .chain(mqtt.iter().map(|m| &m.0))
        .collect();
    for id in &ids {
        wait_for(60, "telemetry from every agent", || async {
            !server.telemetry(id).await.is_empty()
        })
        .await;
    }
    for (id, version, level) in &mqtt {
        let connected = format!(" as {id} ({level},");
        assert!(
            broker.log().contains(&connected),
            "the MQTT {version} agent never connected to the broker with {level}:\n{}",
            broker.log()
        );
        // Numbered batches, each stored once.
        let batches = server.telemetry(id).await;
        assert_eq!(batches[0]["first_seq"], 1, "{}", batches[0]);
    }

    for (id, _, _) in &mqtt {
        let (status, v) = server
            .admin_call(
                reqwest::Method::POST,
                &format!("/v1/admin/devices/{id}/revoke"),
                serde_json::json!({}),
            )
            .await;
        assert_eq!(status, 200, "{v}");
    }
    for (id, version, _) in &mqtt {
        let kicked = format!("Client {id} been disconnected by administrative action");
        wait_for(5, "the revoked agents' sessions to be closed", || async {
            broker.log().contains(&kicked)
        })
        .await;
        eprintln!("MQTT {version}: {kicked}");
    }
    // The HTTPS agent is untouched.
    let before = server.telemetry(&https_id).await.len();
    wait_for(30, "more telemetry from the HTTPS agent", || async {
        server.telemetry(&https_id).await.len() > before
    })
    .await;
    for child in &mut children {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let _ = child.wait();
    }
}
