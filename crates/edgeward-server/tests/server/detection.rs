//! Detection and incident response end to end: real devices over mTLS send telemetry to the
//! real `edgeward-server` binary; its detector raises alerts to a real webhook receiver (HMAC checked, the first
//! delivery refused so the retry is seen) and a real Mosquitto broker; the playbook contains
//! the device (quarantine, sessions dropped, updates held, forensics requested); the device
//! uploads its bundle (investigating), an admin approves the wipe (remediated) and closes the
//! incident with its post-mortem. Five scenarios: an inference rate ×10, another continent, a
//! cloned certificate (one certificate from two addresses at once), a foreign model hash and
//! a tamper event. And detector state survives a restart, on SQLite and PostgreSQL.

use std::{
    net::{IpAddr, SocketAddr},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use crate::common::*;
use axum::{extract::State, http::HeaderMap, routing::post, Router};
use serde_json::{json, Value};

const CLASS: &str = "jetson";
const RELEASE_MODEL: &str = "1111111111111111111111111111111111111111111111111111111111111111";
pub(crate) const WEBHOOK_KEY: &str = "webhook-test-key-0123456789";

/// What the webhook receiver saw: (timestamp header, signature header, body).
pub(crate) type Received = Arc<Mutex<Vec<(String, String, String)>>>;

/// A webhook receiver on loopback that refuses its first delivery with 503.
pub(crate) async fn webhook_receiver() -> (SocketAddr, Received) {
    let seen: Received = Arc::default();
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    async fn hook(
        State((seen, calls)): State<(Received, Arc<std::sync::atomic::AtomicUsize>)>,
        headers: HeaderMap,
        body: String,
    ) -> axum::http::StatusCode {
        if calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
            return axum::http::StatusCode::SERVICE_UNAVAILABLE;
        }
        let h = |k: &str| {
            headers
                .get(k)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        seen.lock().expect("lock").push((
            h("x-edgeward-timestamp"),
            h("x-edgeward-signature"),
            body,
        ));
        axum::http::StatusCode::NO_CONTENT
    }
    let app = Router::new()
        .route("/hook", post(hook))
        .with_state((seen.clone(), calls));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, seen)
}

/// Subscribes to the alert topics; returns once the broker acknowledged the subscription.
async fn subscribe(port: u16) -> Arc<Mutex<Vec<(String, Value)>>> {
    let got: Arc<Mutex<Vec<(String, Value)>>> = Arc::default();
    let mut options = rumqttc::MqttOptions::new("detection-test", "127.0.0.1", port);
    options.set_keep_alive(Duration::from_secs(30));
    let (client, mut events) = rumqttc::AsyncClient::new(options, 64);
    client
        .subscribe("edgeward/alerts/#", rumqttc::QoS::AtLeastOnce)
        .await
        .expect("subscribe");
    let (subscribed, wait) = tokio::sync::oneshot::channel();
    let mut subscribed = Some(subscribed);
    let sink = got.clone();
    tokio::spawn(async move {
        let _client = client;
        while let Ok(event) = events.poll().await {
            match event {
                rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_)) => {
                    if let Some(s) = subscribed.take() {
                        let _ = s.send(());
                    }
                }
                rumqttc::Event::Incoming(rumqttc::Packet::Publish(p)) => {
                    let v = serde_json::from_slice(&p.payload).unwrap_or(Value::Null);
                    sink.lock().expect("lock").push((p.topic, v));
                }
                _ => {}
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(20), wait)
        .await
        .expect("SUBACK in time")
        .expect("subscribed");
    got
}

/// The real `edgeward-server` binary (`$EDGEWARD_SERVER_BIN` or Cargo's) on free loopback
/// ports with a configuration file; its log is collected; killed when dropped.
struct Binary {
    child: std::process::Child,
    dir: tempfile::TempDir,
    device_port: u16,
    admin_port: u16,
    admin_key: String,
    admin: reqwest::Client,
    log: Arc<Mutex<Vec<String>>>,
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Binary {
    fn start(dir: tempfile::TempDir, config: &str) -> Binary {
        use std::io::BufRead;
        std::fs::write(dir.path().join("server.toml"), config).expect("config");
        let bin = std::env::var_os("EDGEWARD_SERVER_BIN")
            .unwrap_or_else(|| env!("CARGO_BIN_EXE_edgeward-server").into());
        let mut child = std::process::Command::new(bin)
            .arg("--config")
            .arg(dir.path().join("server.toml"))
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            .args(["--enroll-listen", "127.0.0.1:0"])
            .env("RUST_LOG", "info")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("server binary");
        let mut lines = std::io::BufReader::new(child.stderr.take().expect("stderr")).lines();
        let port = |line: &str| -> u16 {
            line.rsplit(':')
                .next()
                .and_then(|p| p.trim().parse().ok())
                .unwrap_or_else(|| panic!("no port in {line:?}"))
        };
        let (mut device_port, mut admin_port) = (0, 0);
        let log: Arc<Mutex<Vec<String>>> = Arc::default();
        for line in lines.by_ref().map_while(Result::ok) {
            log.lock().expect("lock").push(line.clone());
            if line.contains("device API (mTLS) listening on") {
                device_port = port(&line);
            } else if line.contains("admin API listening on") {
                admin_port = port(&line);
            } else if line.contains("enrollment listening on") {
                break;
            }
        }
        assert!(
            device_port > 0 && admin_port > 0,
            "{:?}",
            log.lock().expect("lock")
        );
        // Keep reading the log, so the server never blocks on a full pipe.
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                sink.lock().expect("lock").push(line);
            }
        });
        let data = dir.path().join("data");
        let admin_key = std::fs::read_to_string(data.join("admin-token")).expect("admin-token");
        let admin = client(&data.join("server-ca.pem"), None);
        Binary {
            child,
            dir,
            device_port,
            admin_port,
            admin_key,
            admin,
            log,
        }
    }

    fn server_ca(&self) -> std::path::PathBuf {
        self.dir.path().join("data/server-ca.pem")
    }
    fn admin_url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.admin_port)
    }
    fn device_url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.device_port)
    }
    async fn admin_get(&self, path: &str) -> (u16, Value) {
        let r = self
            .admin
            .get(self.admin_url(path))
            .bearer_auth(self.admin_key.trim())
            .send()
            .await
            .expect("admin call");
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }
    async fn admin_post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .admin
            .post(self.admin_url(path))
            .bearer_auth(self.admin_key.trim())
            .json(&body)
            .send()
            .await
            .expect("admin call");
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }
    async fn enroll(&self, id: &str, class: &str) -> Enrolled {
        let (status, v) = self
            .admin_post(
                "/v1/admin/devices",
                json!({ "id": id, "hardware_class": class }),
            )
            .await;
        assert_eq!(status, 201, "{v}");
        let token = v["enrollment_token"].as_str().expect("token");
        let (status, (v, e)) = enroll_at(&self.admin, &self.admin_url("/v1/enroll"), token).await;
        assert_eq!(status, 200, "{v}");
        e
    }
}

/// What the scenario needs of a server: the real binary, or one in process.
trait Target {
    fn server_ca(&self) -> std::path::PathBuf;
    fn device_url(&self, path: &str) -> String;
    async fn admin_get(&self, path: &str) -> (u16, Value);
}

impl Target for Binary {
    fn server_ca(&self) -> std::path::PathBuf {
        Binary::server_ca(self)
    }
    fn device_url(&self, path: &str) -> String {
        Binary::device_url(self, path)
    }
    async fn admin_get(&self, path: &str) -> (u16, Value) {
        Binary::admin_get(self, path).await
    }
}

impl Target for Server {
    fn server_ca(&self) -> std::path::PathBuf {
        Server::server_ca(self)
    }
    fn device_url(&self, path: &str) -> String {
        Server::device_url(self, path)
    }
    async fn admin_get(&self, path: &str) -> (u16, Value) {
        Server::admin_get(self, path).await
    }
}

const PLAYBOOK: &str = r#"
[[rule]]
name = "contain-compromise"
kinds = ["tamper", "attestation_failure", "foreign_model", "cloned_certificate", "impossible_travel", "behaviour"]
min_severity = "medium"
actions = ["quarantine", "drop_sessions", "hold_updates", "collect_forensics", "notify", "wipe"]
"#;

/// The binary's configuration: the test playbook, a release for the class, both sinks.
fn configuration(dir: &std::path::Path, webhook: SocketAddr, mqtt: u16) -> String {
    std::fs::write(dir.join("playbook.toml"), PLAYBOOK).expect("playbook");
    std::fs::write(dir.join("webhook.key"), WEBHOOK_KEY).expect("key");
    format!(
        "[detection]\nplaybook = {playbook:?}\n\n[detection.release_models]\n{CLASS} = [\"{RELEASE_MODEL}\"]\n\n\
         [detection.webhook]\nurl = \"http://{webhook}/hook\"\nsecret_file = {key:?}\nattempts = 5\n\n\
         [detection.mqtt]\nhost = \"127.0.0.1\"\nport = {mqtt}\ntopic = \"edgeward/alerts\"\n",
        playbook = dir.join("playbook.toml").display().to_string(),
        key = dir.join("webhook.key").display().to_string(),
    )
}

/// A device client whose connections come from `local` (a loopback address).
fn device_from(s: &impl Target, e: &Enrolled, local: IpAddr) -> reqwest::Client {
    let ca =
        reqwest::Certificate::from_pem(&std::fs::read(s.server_ca()).expect("ca")).expect("ca");
    let pem = format!("{}{}", e.cert_pem, e.key_pem);
    reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca)
        .identity(reqwest::Identity::from_pem(pem.as_bytes()).expect("identity"))
        .local_address(local)
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client")
}

/// Sends `records` as batches of at most 1,000; returns the first status that is not 200
/// (or 200).
async fn send(s: &impl Target, c: &reqwest::Client, e: &Enrolled, records: Vec<Value>) -> u16 {
    for batch in records.chunks(1000) {
        let status = c
            .post(s.device_url("/v1/device/telemetry"))
            .header("authorization", v1(e, unix_now()))
            .json(&json!({ "records": batch }))
            .send()
            .await
            .expect("telemetry call")
            .status()
            .as_u16();
        if status != 200 {
            return status;
        }
    }
    200
}

/// A healthy history: `n` points of `inference_rate` a minute apart, ending a minute ago.
/// The baseline needs about a day of points a minute apart (1,000 or more) before a tenfold
/// jump scores as an alert: its surprise is judged against the series' own record.
fn history(n: i64) -> Vec<Value> {
    let now = unix_now() as i64;
    (0..n)
        .map(|k| {
            let at = now - 60 * (n - k);
            let wobble = ((k * 7919) % 11) as f64 - 5.0;
            json!({"type": "device", "at": at, "firmware": "1.4.2",
                   "metrics": {"inference_rate": 100.0 + wobble}})
        })
        .collect()
}

/// Waits (up to 20 s, for a loaded machine) until the device is quarantined; returns the
/// time since `since`.
async fn quarantined(s: &impl Target, id: &str, since: Instant) -> Duration {
    for _ in 0..400 {
        let (_, v) = s.admin_get(&format!("/v1/admin/devices/{id}")).await;
        if v["device"]["status"] == "quarantined" {
            return since.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{id} was not quarantined");
}

/// The one incident of `id`, with its details.
async fn incident_of(s: &impl Target, id: &str) -> Value {
    let (status, v) = s.admin_get("/v1/admin/incidents").await;
    assert_eq!(status, 200, "{v}");
    let mine: Vec<&Value> = v["incidents"]
        .as_array()
        .expect("incidents")
        .iter()
        .filter(|i| i["device_id"] == id)
        .collect();
    assert_eq!(mine.len(), 1, "{v}");
    let (status, d) = s
        .admin_get(&format!("/v1/admin/incidents/{}", mine[0]["id"]))
        .await;
    assert_eq!(status, 200, "{d}");
    d
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_scenarios_on_the_real_binary_are_detected_alerted_contained_investigated_remediated_and_reported(
) {
    let (hook, received) = webhook_receiver().await;
    let broker = crate::mosquitto::Mosquitto::plain();
    let published = subscribe(broker.port).await;
    let dir = tempfile::tempdir().expect("tmp");
    let config = configuration(dir.path(), hook, broker.port);
    let s = Binary::start(dir, &config);
    let home: IpAddr = "127.0.0.1".parse().expect("ip");
    let elsewhere: IpAddr = "127.0.1.1".parse().expect("ip");
    let now = || unix_now() as i64;

    // Each scenario: (name, expected alert kind, the device's history, the trigger).
    let scenarios: Vec<(&str, &str, Vec<Value>, Vec<Value>)> = vec![
        (
            "rate",
            "behaviour",
            history(1500),
            vec![json!({"type": "device", "at": now(), "metrics": {"inference_rate": 1000.0}})],
        ),
        (
            "travel",
            "impossible_travel",
            vec![json!({"type": "device", "at": now() - 3600, "metrics": {},
                        "location": {"latitude": 40.7128, "longitude": -74.0060}})],
            vec![json!({"type": "device", "at": now(), "metrics": {},
                        "location": {"latitude": -33.8688, "longitude": 151.2093}})],
        ),
        ("clone", "cloned_certificate", history(5), vec![]),
        (
            "model",
            "foreign_model",
            vec![
                json!({"type": "event", "at": now() - 60, "event": "model_loaded", "hash": RELEASE_MODEL}),
            ],
            vec![
                json!({"type": "event", "at": now(), "event": "model_loaded", "hash": "22".repeat(32)}),
            ],
        ),
        (
            "tamper",
            "tamper",
            history(5),
            vec![
                json!({"type": "event", "at": now(), "event": "tamper", "detail": "enclosure opened"}),
            ],
        ),
    ];
    let mut timings = Vec::new();
    for (name, kind, before, trigger) in scenarios {
        let e = s.enroll(&device_id(name), CLASS).await;
        let c = device_from(&s, &e, home);
        assert_eq!(send(&s, &c, &e, before).await, 200);
        let (_, quiet) = s
            .admin_get(&format!("/v1/admin/alerts?device={}", e.id))
            .await;
        assert_eq!(
            quiet["alerts"],
            json!([]),
            "{name}: alerts before the trigger"
        );

        let started = Instant::now();
        let status = if name == "clone" {
            // The same certificate from another network at once.
            let twin = device_from(&s, &e, elsewhere);
            let record =
                vec![json!({"type": "device", "at": now(), "metrics": {"inference_rate": 100.0}})];
            send(&s, &twin, &e, record).await
        } else {
            send(&s, &c, &e, trigger).await
        };
        assert_eq!(status, 200, "{name}: the triggering batch is stored");
        let took = quarantined(&s, &e.id, started).await;

        // Alerted: the alert is stored with its kind.
        let (_, alerts) = s
            .admin_get(&format!("/v1/admin/alerts?device={}", e.id))
            .await;
        let kinds: Vec<&str> = alerts["alerts"]
            .as_array()
            .expect("alerts")
            .iter()
            .filter_map(|a| a["kind"].as_str())
            .collect();
        assert!(kinds.contains(&kind), "{name}: {kinds:?}");

        // Contained by the playbook: timeline, command, hold, and the device is cut off.
        // The quarantine is the playbook's first action; the incident is marked contained
        // after the others.
        let mut d = incident_of(&s, &e.id).await;
        for _ in 0..400 {
            if d["containment_ms"].is_i64() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            d = incident_of(&s, &e.id).await;
        }
        let containment = d["containment_ms"].as_i64().expect("contained");
        timings.push((name, containment, took));
        assert_eq!(d["incident"]["status"], "contained", "{d}");
        assert_eq!(d["updates_held"], true);
        let acted: Vec<(&str, &str)> = d["timeline"]
            .as_array()
            .expect("timeline")
            .iter()
            .map(|e| {
                (
                    e["actor"].as_str().unwrap_or(""),
                    e["kind"].as_str().unwrap_or(""),
                )
            })
            .collect();
        for step in [
            "quarantine",
            "drop_sessions",
            "hold_updates",
            "collect_forensics",
            "notify",
            "approval.requested",
        ] {
            assert!(
                acted.contains(&("playbook:contain-compromise", step)),
                "{name}: {step} missing from {acted:?}"
            );
        }
        assert_eq!(
            send(&s, &c, &e, history(1)).await,
            403,
            "{name}: quarantined"
        );

        // Investigated: the device (still allowed to) fetches the forensics command and
        // uploads its bundle.
        let r = c
            .get(s.device_url("/v1/device/commands"))
            .header("authorization", v1(&e, unix_now()))
            .send()
            .await
            .expect("commands");
        assert_eq!(r.status(), 200);
        let commands: Value = r.json().await.expect("json");
        assert_eq!(
            commands["commands"][0]["kind"], "collect_forensics",
            "{commands}"
        );
        let command = commands["commands"][0]["id"].as_i64().expect("command id");
        let bundle = e.bundle(command, format!("forensic bundle of {}", e.id).as_bytes());
        let r = c
            .post(s.device_url("/v1/device/forensics"))
            .header("authorization", v1(&e, unix_now()))
            .body(bundle.clone())
            .send()
            .await
            .expect("forensics");
        assert_eq!(r.status(), 200);
        let d = incident_of(&s, &e.id).await;
        assert_eq!(d["incident"]["status"], "investigating", "{d}");
        let sha = hex::encode(edgeward_core::sha256(&bundle));
        assert_eq!(d["evidence"][0]["sha256"], sha.as_str());

        // Chain of custody: reading the evidence is checked against its hash and recorded.
        let id = d["incident"]["id"].as_i64().expect("id");
        let upload = d["evidence"][0]["upload"].as_i64().expect("upload");
        let r = s
            .admin
            .get(s.admin_url(&format!("/v1/admin/incidents/{id}/evidence/{upload}")))
            .bearer_auth(s.admin_key.trim())
            .send()
            .await
            .expect("evidence");
        assert_eq!(r.status(), 200);
        assert_eq!(r.bytes().await.expect("bytes").as_ref(), bundle.as_slice());
        let d = incident_of(&s, &e.id).await;
        assert!(
            d["timeline"]
                .as_array()
                .expect("timeline")
                .iter()
                .any(|t| t["kind"] == "evidence.accessed"
                    && t["actor"].as_str().is_some_and(|a| a.starts_with("admin:"))),
            "{d}"
        );

        // Remediated: the wipe waited for approval; an admin approves it.
        assert_eq!(d["actions"][0]["action"], "wipe");
        assert_eq!(d["actions"][0]["status"], "pending");
        let (status, v) = s
            .admin_post(&format!("/v1/admin/incidents/{id}/approve"), json!({}))
            .await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["incident"]["status"], "remediated", "{v}");
        let (status, v) = s
            .admin_post(
                &format!("/v1/admin/incidents/{id}/close"),
                json!({"root_cause": format!("{name} scenario"), "lessons": "the playbook held"}),
            )
            .await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["incident"]["status"], "closed");
        assert_eq!(v["updates_held"], false);

        // Reported.
        let r = s
            .admin
            .get(s.admin_url(&format!("/v1/admin/incidents/{id}/report?format=md")))
            .bearer_auth(s.admin_key.trim())
            .send()
            .await
            .expect("report");
        assert_eq!(r.status(), 200);
        let md = r.text().await.expect("text");
        for part in [
            "## Timeline",
            "playbook:contain-compromise",
            sha.as_str(),
            "the playbook held",
            kind,
        ] {
            assert!(md.contains(part), "{name}: {part} not in the report:\n{md}");
        }
    }
    for (name, ms, seen) in &timings {
        eprintln!("{name}: contained {ms} ms after the triggering telemetry (seen by the operator after {seen:?})");
    }

    // Alerted on every sink: the webhook (HMAC over "timestamp.body", after one refused
    // delivery was retried) and the MQTT topic.
    let want = 5;
    for _ in 0..200 {
        let hooks = received
            .lock()
            .expect("lock")
            .iter()
            .filter(|r| r.2.contains("\"type\":\"alert\""))
            .count();
        let mqtt = published
            .lock()
            .expect("lock")
            .iter()
            .filter(|p| p.1["type"] == "alert")
            .count();
        if hooks >= want && mqtt >= want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let hooks = received.lock().expect("lock").clone();
    let alerts: Vec<&(String, String, String)> = hooks
        .iter()
        .filter(|r| r.2.contains("\"type\":\"alert\""))
        .collect();
    assert!(alerts.len() >= want, "webhook got {} alerts", alerts.len());
    for (ts, signature, body) in &hooks {
        let ts: u64 = ts.parse().expect("timestamp header");
        assert_eq!(
            signature,
            &edgeward_server::detection::sinks::signature(
                WEBHOOK_KEY.as_bytes(),
                ts,
                body.as_bytes()
            )
        );
    }
    let mqtt = published.lock().expect("lock").clone();
    let kinds: Vec<&str> = mqtt
        .iter()
        .filter(|p| p.1["type"] == "alert")
        .filter_map(|p| p.1["kind"].as_str())
        .collect();
    for kind in [
        "behaviour",
        "impossible_travel",
        "cloned_certificate",
        "foreign_model",
        "tamper",
    ] {
        assert!(kinds.contains(&kind), "MQTT: {kind} not in {kinds:?}");
    }
    assert!(mqtt.iter().all(|p| p.0.starts_with("edgeward/alerts/")));
    // And the log sink.
    let log = s.log.lock().expect("lock").join("\n");
    assert!(
        log.contains("edgeward alert") && log.contains("tamper"),
        "{log}"
    );
}

both_backends!(detector_state_survives_a_restart, |backend| async move {
    let dir = tempfile::tempdir().expect("tmp");
    let mut c = config(backend, dir.path()).await;
    c.detection.checkpoint_secs = 1;
    let s = serve(c.clone(), dir, None).await;
    let e = s.enroll(&device_id("restart"), CLASS).await;
    let client = s.device_client(&e);
    assert_eq!(send(&s, &client, &e, history(1500)).await, 200);
    let Server { running, dir, .. } = s;
    // Stopping checkpoints what changed.
    running.stop().await;

    let s = serve(c, dir, None).await;
    let client = s.device_client(&e);
    // A fresh baseline would still be warming up (50 points) and say nothing; the restored
    // one knows 1,500 points and flags the jump at once.
    let spike =
        vec![json!({"type": "device", "at": unix_now(), "metrics": {"inference_rate": 1000.0}})];
    assert_eq!(send(&s, &client, &e, spike).await, 200);
    let mut kinds = Vec::new();
    for _ in 0..100 {
        let (_, v) = s
            .admin_get(&format!("/v1/admin/alerts?device={}", e.id))
            .await;
        kinds = v["alerts"]
            .as_array()
            .expect("alerts")
            .iter()
            .filter_map(|a| a["kind"].as_str().map(str::to_string))
            .collect();
        if !kinds.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(kinds, vec!["behaviour".to_string()]);
    s.running.stop().await;
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_alerts_are_deduplicated_and_bad_requests_refused() {
    let s = start(Backend::Sqlite).await;
    let e = s.enroll(&device_id("dedup"), CLASS).await;
    let c = s.device_client(&e);
    let tamper =
        |d: &str| json!({"type": "event", "at": unix_now(), "event": "tamper", "detail": d});
    assert_eq!(
        send(&s, &c, &e, vec![tamper("lid"), tamper("lid again")]).await,
        200
    );
    quarantined(&s, &e.id, Instant::now()).await;
    let (_, v) = s
        .admin_get(&format!("/v1/admin/alerts?device={}", e.id))
        .await;
    assert_eq!(v["alerts"].as_array().map(Vec::len), Some(1), "{v}");
    let id = incident_of(&s, &e.id).await["incident"]["id"]
        .as_i64()
        .expect("id");
    let (status, v) = s
        .admin_post(
            &format!("/v1/admin/incidents/{id}/close"),
            json!({"cause": "x"}),
        )
        .await;
    assert_eq!(status, 400, "{v}");
    let (status, _) = s
        .admin_post(
            &format!("/v1/admin/incidents/{id}/approve"),
            json!({"action": 999}),
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = s.admin_get("/v1/admin/incidents?status=open").await;
    assert_eq!(status, 400);
    let (status, _) = s.admin_get("/v1/admin/incidents/9999").await;
    assert_eq!(status, 404);
    s.running.stop().await;
}

/// The incident of `id` (with its details) once it has `status` (waits up to 20 s): an
/// alert is stored before the playbook opens its incident and acts.
async fn incident_when(s: &impl Target, id: &str, status: &str) -> Value {
    for _ in 0..400 {
        let (_, v) = s.admin_get("/v1/admin/incidents").await;
        let found = v["incidents"].as_array().is_some_and(|l| {
            l.iter()
                .any(|i| i["device_id"] == id && i["status"] == status)
        });
        if found {
            return incident_of(s, id).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no {status} incident for {id}");
}

/// The alerts of `id` once one of `kind` is among them (waits up to 20 s).
async fn alert_of(s: &impl Target, id: &str, kind: &str) -> Vec<Value> {
    for _ in 0..400 {
        let (_, v) = s.admin_get(&format!("/v1/admin/alerts?device={id}")).await;
        let alerts = v["alerts"].as_array().cloned().unwrap_or_default();
        if alerts.iter().any(|a| a["kind"] == kind) {
            return alerts;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no {kind} alert for {id}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gate_refusals_and_a_failed_attestation_raise_alerts_and_incidents_on_the_real_binary() {
    // The default playbook; one class with a tight per-device limit.
    let dir = tempfile::tempdir().expect("tmp");
    let s = Binary::start(dir, "[class_limits.tight]\nper_second = 1\nburst = 2\n");

    // A burst of bad tokens (outside the token window) from a device's own certificate.
    let e = s.enroll(&device_id("badtok"), CLASS).await;
    let c = device_from(&s, &e, "127.0.0.1".parse().expect("ip"));
    for _ in 0..12 {
        let r = c
            .get(s.device_url("/v1/device/commands"))
            .header("authorization", v1(&e, unix_now() - 3600))
            .send()
            .await
            .expect("call");
        assert_eq!(r.status(), 401);
    }
    let alerts = alert_of(&s, &e.id, "auth_failure_burst").await;
    assert_eq!(alerts.len(), 1, "one burst, deduplicated: {alerts:?}");
    assert_eq!(alerts[0]["severity"], "high");
    // High severity: the default playbook's notify rule opens an incident and notifies.
    let i = incident_when(&s, &e.id, "detected").await;
    assert_eq!(i["incident"]["rule"], "notify-high", "{i}");
    assert_eq!(i["incident"]["status"], "detected", "{i}");

    // Rate-limit hits.
    let r = s.enroll(&device_id("ratey"), "tight").await;
    let rc = device_from(&s, &r, "127.0.0.1".parse().expect("ip"));
    let mut limited = 0;
    for _ in 0..60 {
        let status = rc
            .get(s.device_url("/v1/device/commands"))
            .header("authorization", v1(&r, unix_now()))
            .send()
            .await
            .expect("call")
            .status();
        limited += usize::from(status == 429);
    }
    assert!(limited >= 20, "only {limited} calls were rate-limited");
    let alerts = alert_of(&s, &r.id, "rate_limit_burst").await;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0]["severity"], "medium");
    // Medium severity: the default playbook opens no incident for it.
    let (_, v) = s.admin_get("/v1/admin/incidents").await;
    assert!(
        !v["incidents"]
            .as_array()
            .expect("incidents")
            .iter()
            .any(|i| i["device_id"] == r.id.as_str()),
        "{v}"
    );

    // A failed attestation: the default playbook contains the device.
    let a = s.enroll(&device_id("attest"), CLASS).await;
    let ac = device_from(&s, &a, "127.0.0.1".parse().expect("ip"));
    let since = Instant::now();
    let answer = ac
        .post(s.device_url("/v1/device/attestation"))
        .header("authorization", v1(&a, unix_now()))
        .body("this is not evidence")
        .send()
        .await;
    // The playbook drops the device's sessions, which may close this connection before
    // the refusal is written; when the answer arrives, it is the refusal.
    if let Ok(r) = answer {
        assert_eq!(r.status(), 400);
    }
    let took = quarantined(&s, &a.id, since).await;
    eprintln!("attestation failure to quarantine: {took:?}");
    let alerts = alert_of(&s, &a.id, "attestation_failure").await;
    assert_eq!(alerts[0]["severity"], "critical");
    // The quarantine is the playbook's first action; the incident is marked contained
    // after the others.
    let i = incident_when(&s, &a.id, "contained").await;
    assert_eq!(i["incident"]["rule"], "contain-compromise", "{i}");
    assert_eq!(i["incident"]["status"], "contained", "{i}");

    // The refusals were counted; at most the rules' thresholds of them were fed.
    let metrics = s
        .admin
        .get(s.admin_url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let count = |labels: &str| -> u64 {
        metrics
            .lines()
            .find(|l| l.starts_with(&format!("edgeward_detection_refusals_total{{{labels}}}")))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    let fed = count("kind=\"auth_failure\",outcome=\"fed\"");
    let counted = count("kind=\"auth_failure\",outcome=\"counted\"");
    assert_eq!(fed + counted, 12, "{metrics}");
    assert!(fed >= 5, "{metrics}");
}
