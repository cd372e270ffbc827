//! Detection scaled out on the real NATS JetStream (127.0.0.1:4222) and PostgreSQL: two
//! server replicas publish the telemetry devices send to either of them, two detection
//! workers (the real `edgeward-server detect-worker` processes) share the partitions, and
//! every point is scored exactly once — also when one worker is killed with SIGKILL in the
//! middle of the stream, its partitions taken over by the other with their baselines
//! restored from the last checkpoint. The workers run the whole in-process detector (rules,
//! geography, cohorts, cloned certificates) and raise alerts through the server's own path:
//! a tamper event and an impossible journey, scored by a worker, are stored, sent to a real
//! webhook receiver and acted on by the default playbook (the tampered device quarantined);
//! an alert a dead worker committed but never raised is raised by the partition's next owner;
//! a burst of bad tokens split over the replicas is counted as one by the device's worker.
//! Each test has a stream and subjects of its own.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use edgeward_detect::fleet::DeviceSnapshot;
use edgeward_server::detect_nats::NatsConfig;
use serde_json::{json, Value};
use sqlx::Row;

use crate::common::*;

const NATS: &str = "nats://127.0.0.1:4222";
const PARTITIONS: u32 = 8;

fn nats_config() -> NatsConfig {
    let tag = hex::encode(rand_bytes::<6>());
    NatsConfig {
        url: NATS.into(),
        stream: format!("EW_TEST_{tag}"),
        subject_prefix: format!("ewtest{tag}"),
        partitions: PARTITIONS,
    }
}

struct WorkerProcess {
    child: Child,
    id: String,
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A worker's configuration, as a deployment gives it: the replicas' database and device
/// CA, copies of their server CA, master key, command key and audit key in a data
/// directory of its own, and the detection settings (the default playbook, a webhook sink).
fn worker_config(a: &Server, dir: &std::path::Path, webhook: std::net::SocketAddr) -> PathBuf {
    let data = dir.join("data");
    std::fs::create_dir_all(&data).expect("data dir");
    for name in [
        "server-ca.pem",
        "server-ca.key",
        "master.key",
        "command.key",
    ] {
        let from = a.dir.path().join(name);
        if from.exists() {
            std::fs::copy(&from, data.join(name)).expect("copy identity");
        }
    }
    std::fs::write(dir.join("webhook.key"), crate::detection::WEBHOOK_KEY).expect("key");
    let config = format!(
        "data_dir = {data:?}\ndatabase_url = {db:?}\ndevice_ca_cert = {cert:?}\ndevice_ca_key = {key:?}\n\n\
         [detection.webhook]\nurl = \"http://{webhook}/hook\"\nsecret_file = {secret:?}\n",
        data = data.display().to_string(),
        db = a.running.app.config.database_url(),
        cert = a.dir.path().join("pki/device-ca.pem").display().to_string(),
        key = a.dir.path().join("pki/device-ca.key").display().to_string(),
        secret = dir.join("webhook.key").display().to_string(),
    );
    let path = dir.join("worker.toml");
    std::fs::write(&path, config).expect("config");
    path
}

fn worker(
    n: &NatsConfig,
    config: &std::path::Path,
    id: &str,
    log: &std::path::Path,
) -> WorkerProcess {
    let log = std::fs::File::create(log).expect("log file");
    let child = Command::new(env!("CARGO_BIN_EXE_edgeward-server"))
        .arg("--config")
        .arg(config)
        .args([
            "detect-worker",
            "--nats",
            NATS,
            "--stream",
            &n.stream,
            "--subject-prefix",
            &n.subject_prefix,
            "--partitions",
            &PARTITIONS.to_string(),
            "--id",
            id,
            "--lease-ms",
            "1500",
        ])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start detect-worker");
    WorkerProcess {
        child,
        id: id.into(),
    }
}

/// Posts `batches` numbered batches of `per_batch` points of `rate` for `e` (device records
/// as the agent sends them, a minute apart over the last day), starting at sequence number
/// `first`, alternating between the replicas' device listeners.
async fn send(
    s: &Server,
    urls: &[String],
    e: &Enrolled,
    first: u64,
    batches: u64,
    per_batch: u64,
) -> u64 {
    let c = s.device_client(e);
    let day_ago = unix_now() - 86_400;
    let mut seq = first;
    for b in 0..batches {
        let records: Vec<_> = (0..per_batch)
            .map(|i| {
                json!({ "type": "device", "at": day_ago + (seq + i) * 60,
                        "metrics": { "rate": 10.0 + ((seq + i) % 7) as f64 } })
            })
            .collect();
        let body = json!({ "first_seq": seq, "last_seq": seq + per_batch - 1, "records": records });
        let url = &urls[(b as usize) % urls.len()];
        let r = c
            .post(url)
            .header("authorization", v1(e, unix_now()))
            .json(&body)
            .send()
            .await
            .expect("telemetry");
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
        seq += per_batch;
    }
    seq
}

async fn scored(pool: &sqlx::AnyPool, stream: &str) -> Vec<(String, i64)> {
    sqlx::query("SELECT device_id, points FROM detect_scored WHERE stream = $1 ORDER BY device_id")
        .bind(stream)
        .fetch_all(pool)
        .await
        .expect("scored")
        .iter()
        .map(|r| (r.get("device_id"), r.get("points")))
        .collect()
}

async fn total(pool: &sqlx::AnyPool, stream: &str) -> i64 {
    scored(pool, stream).await.iter().map(|(_, n)| n).sum()
}

/// Waits until `check` holds, or fails after `secs` naming `what`.
async fn wait_for<F, Fut>(secs: u64, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(
            start.elapsed() < Duration::from_secs(secs),
            "timed out after {secs} s waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn owners(pool: &sqlx::AnyPool, stream: &str) -> Vec<(i64, Option<String>, i64, i64)> {
    sqlx::query("SELECT part, owner, epoch, last_seq FROM detect_partitions WHERE stream = $1 ORDER BY part")
        .bind(stream)
        .fetch_all(pool)
        .await
        .expect("partitions")
        .iter()
        .map(|r| (r.get("part"), r.get("owner"), r.get("epoch"), r.get("last_seq")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_point_is_scored_once_across_replicas_workers_and_a_killed_worker() {
    let n = nats_config();
    let a = start_with(Backend::Postgres, |c| c.nats = Some(n.clone()), None).await;
    let (b, _b_dir) = replica(&a, |c| c.nats = Some(n.clone())).await;
    let postgres = a.running.app.config.database_url();
    let pool = sqlx::AnyPool::connect(&postgres).await.expect("pg");
    let urls = vec![
        a.device_url("/v1/device/telemetry"),
        format!(
            "https://127.0.0.1:{}/v1/device/telemetry",
            b.device_addr.port()
        ),
    ];
    let logs = tempfile::tempdir().expect("tmp");
    let (hook, received) = crate::detection::webhook_receiver().await;
    let config = worker_config(&a, logs.path(), hook);
    // A worker that died between committing a round and raising its alert left the alert in
    // its partition's outbox: the partition's next owner raises it.
    let orphan = a.enroll(&device_id("scaleorphan"), "cam").await;
    let left = edgeward_detect::alert::Alert {
        device: orphan.id.clone(),
        kind: edgeward_detect::alert::AlertKind::Tamper,
        severity: edgeward_detect::alert::Severity::Critical,
        at: unix_now() as i64,
        detail: "enclosure opened (committed by a worker that died)".into(),
    };
    let entry: i64 = sqlx::query(
        "INSERT INTO detect_alert_outbox (stream, part, alert, received_ms) VALUES ($1, 3, $2, $3) RETURNING id",
    )
    .bind(&n.stream)
    .bind(serde_json::to_string(&left).expect("alert"))
    .bind(unix_now() as i64 * 1000)
    .fetch_one(&pool)
    .await
    .expect("outbox")
    .get("id");
    // It even got as far as storing the alert (not yet linked to an incident) before it
    // died: the next owner's raise finds it instead of storing a copy.
    sqlx::query(
        "INSERT INTO alerts (device_id, kind, severity, at, received_ms, detail, body, origin) VALUES ($1, 'tamper', 'critical', $2, $3, $4, $5, $6)",
    )
    .bind(&orphan.id)
    .bind(left.at)
    .bind(unix_now() as i64 * 1000)
    .bind(&left.detail)
    .bind(serde_json::to_string(&left).expect("alert"))
    .bind(format!("nats:{}:{entry}", n.stream))
    .execute(&pool)
    .await
    .expect("the alert stored before the crash");
    let w1 = worker(&n, &config, "w1", &logs.path().join("w1.log"));
    // The first worker takes every partition; one started later gets its share (a worker
    // holding nothing yet still counts, by its heartbeat).
    wait_for(120, "w1 to hold every partition", || async {
        let o = owners(&pool, &n.stream).await;
        o.iter().filter(|p| p.1.as_deref() == Some("w1")).count() == PARTITIONS as usize
    })
    .await;
    let _w2 = worker(&n, &config, "w2", &logs.path().join("w2.log"));

    let mut devices = Vec::new();
    for i in 0..6 {
        devices.push(a.enroll(&device_id(&format!("scale{i}")), "cam").await);
    }
    // They balance to four each (generous: worker processes on a loaded 2-core machine).
    wait_for(120, "both workers to hold partitions", || async {
        let o = owners(&pool, &n.stream).await;
        let held = |w: &str| o.iter().filter(|p| p.1.as_deref() == Some(w)).count();
        held("w1") == 4 && held("w2") == 4
    })
    .await;

    // First half of the stream.
    let mut next = vec![1u64; devices.len()];
    for (i, e) in devices.iter().enumerate() {
        next[i] = send(&a, &urls, e, next[i], 10, 5).await;
    }
    let half = (devices.len() * 50) as i64;
    wait_for(60, "the first half to be scored", || async {
        total(&pool, &n.stream).await == half
    })
    .await;
    let before = owners(&pool, &n.stream).await;
    let w1_parts: Vec<i64> = before
        .iter()
        .filter(|p| p.1.as_deref() == Some("w1") && p.3 > 0)
        .map(|p| p.0)
        .collect();
    assert!(
        !w1_parts.is_empty(),
        "w1 scored nothing before it was killed: {before:?}"
    );

    // SIGKILL: no goodbye, no last checkpoint.
    let mut w1 = w1;
    w1.child.kill().expect("kill -9");
    w1.child.wait().expect("reaped");
    eprintln!("killed {}", w1.id);

    // Second half, and a batch sent again (the device lost its acknowledgement).
    for (i, e) in devices.iter().enumerate() {
        next[i] = send(&a, &urls, e, next[i], 10, 5).await;
    }
    send(&a, &urls[1..], &devices[0], next[0] - 5, 1, 5).await;
    let sent: i64 = (devices.len() * 100) as i64;
    wait_for(60, "every point to be scored", || async {
        total(&pool, &n.stream).await >= sent
    })
    .await;
    // Settle, then count: nothing scored twice.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let counts = scored(&pool, &n.stream).await;
    assert_eq!(counts.len(), devices.len(), "{counts:?}");
    for (device, points) in &counts {
        assert_eq!(*points, 100, "device {device}: {counts:?}");
    }

    // w1's partitions moved to w2 (a new epoch), and their baselines carry on from the
    // checkpoint: each device's baseline has seen every one of its points, which it could
    // not have if the takeover had started from nothing.
    let after = owners(&pool, &n.stream).await;
    for part in &w1_parts {
        let p = after.iter().find(|p| p.0 == *part).expect("partition");
        let old = before.iter().find(|p| p.0 == *part).expect("partition");
        assert_eq!(p.1.as_deref(), Some("w2"), "{after:?}");
        assert!(
            p.2 > old.2,
            "partition {part} was not taken over: {after:?}"
        );
    }
    let states = sqlx::query(
        "SELECT key, state FROM detect_partition_state WHERE stream = $1 AND key LIKE 'dev:%'",
    )
    .bind(&n.stream)
    .fetch_all(&pool)
    .await
    .expect("states");
    assert_eq!(states.len(), devices.len());
    for row in states {
        let state: String = row.get("state");
        let snapshot: DeviceSnapshot = serde_json::from_str(&state).expect("device state");
        let (metric, b) = &snapshot.baselines[0];
        assert_eq!(metric, "rate");
        assert_eq!(b.seen(), 100, "{}", row.get::<String, _>("key"));
    }

    // A rule and a geographic alert, from the workers (the replicas only publish), through
    // the server's own path: stored, sent to the webhook, acted on by the default playbook.
    let tampered = a.enroll(&device_id("scaletamper"), "cam").await;
    send_tamper(&a, &urls[1], &tampered).await;
    let traveller = a.enroll(&device_id("scalegeo"), "cam").await;
    let c = a.device_client(&traveller);
    let hour_ago = unix_now() - 3600;
    for (k, (lat, lon)) in [(40.7128, -74.0060), (34.0522, -118.2437)]
        .iter()
        .enumerate()
    {
        let r = c
            .post(&urls[k % urls.len()])
            .header("authorization", v1(&traveller, unix_now()))
            .json(&json!({ "records": [
                { "type": "device", "at": hour_ago - 3600 + 3600 * k as u64,
                  "location": { "latitude": lat, "longitude": lon } }
            ] }))
            .send()
            .await
            .expect("telemetry");
        assert_eq!(r.status(), 200);
    }
    let alert = |id: String, kind: &'static str| {
        let a = &a;
        async move {
            let (_, v) = a.admin_get(&format!("/v1/admin/alerts?device={id}")).await;
            v["alerts"]
                .as_array()
                .is_some_and(|l| l.iter().any(|x| x["kind"] == kind))
        }
    };
    wait_for(60, "the tamper alert", || {
        alert(tampered.id.clone(), "tamper")
    })
    .await;
    // A burst of bad tokens split over the replicas (3 + 2; the rule fires at 5 in a
    // minute): neither replica alone sees a burst, the device's worker counts all five.
    let guesser = a.enroll(&device_id("scaleauth"), "cam").await;
    let gc = a.device_client(&guesser);
    let commands = [
        a.device_url("/v1/device/commands"),
        format!(
            "https://127.0.0.1:{}/v1/device/commands",
            b.device_addr.port()
        ),
    ];
    for k in 0..5 {
        let r = gc
            .get(&commands[usize::from(k >= 3)])
            .header("authorization", v1(&guesser, unix_now() - 3600))
            .send()
            .await
            .expect("call");
        assert_eq!(r.status(), 401);
    }
    wait_for(60, "the auth-failure burst counted across replicas", || {
        alert(guesser.id.clone(), "auth_failure_burst")
    })
    .await;
    wait_for(
        60,
        "the dead worker's alert, raised from the outbox",
        || alert(orphan.id.clone(), "tamper"),
    )
    .await;
    wait_for(60, "the impossible-travel alert", || {
        alert(traveller.id.clone(), "impossible_travel")
    })
    .await;
    // The default playbook contained the tampered device (the worker quarantined it in
    // the registry every replica reads) and opened an incident for the journey.
    for device in [&tampered.id, &orphan.id] {
        wait_for(30, "the tampered devices to be quarantined", || async {
            let (_, v) = a.admin_get(&format!("/v1/admin/devices/{device}")).await;
            v["device"]["status"] == "quarantined"
        })
        .await;
    }
    // Raised again after the crash, stored once; the playbook still acted on it.
    let (_, v) = a
        .admin_get(&format!("/v1/admin/alerts?device={}", orphan.id))
        .await;
    assert_eq!(
        v["alerts"].as_array().map(Vec::len),
        Some(1),
        "the orphan's tamper alert was stored twice: {v}"
    );
    // Every raised alert left the outbox.
    wait_for(30, "the outbox to be empty", || async {
        sqlx::query("SELECT id FROM detect_alert_outbox WHERE stream = $1")
            .bind(&n.stream)
            .fetch_all(&pool)
            .await
            .expect("outbox")
            .is_empty()
    })
    .await;
    // The playbook marks the incident contained after its other actions.
    wait_for(30, "the incidents", || async {
        let (_, v) = a.admin_get("/v1/admin/incidents").await;
        let status = |id: &str| {
            v["incidents"].as_array().and_then(|l| {
                l.iter()
                    .find(|i| i["device_id"] == id)
                    .map(|i| i["status"].clone())
            })
        };
        status(&tampered.id) == Some(json!("contained")) && status(&traveller.id).is_some()
    })
    .await;
    let (_, v) = a.admin_get("/v1/admin/incidents").await;
    let incident = |id: &str| -> Value {
        v["incidents"]
            .as_array()
            .and_then(|l| l.iter().find(|i| i["device_id"] == id).cloned())
            .unwrap_or(Value::Null)
    };
    assert_eq!(incident(&tampered.id)["status"], "contained", "{v}");
    assert_eq!(incident(&tampered.id)["rule"], "contain-compromise", "{v}");
    assert_eq!(incident(&traveller.id)["rule"], "notify-high", "{v}");
    // Both alerts reached the webhook sink (signed; the receiver refused its first
    // delivery, so the retry is seen too).
    wait_for(30, "the webhook deliveries", || async {
        let seen = received.lock().expect("lock");
        let kinds: Vec<Value> = seen
            .iter()
            .filter_map(|(_, _, body)| serde_json::from_str::<Value>(body).ok())
            .map(|v| v["kind"].clone())
            .collect();
        kinds.contains(&json!("tamper")) && kinds.contains(&json!("impossible_travel"))
    })
    .await;
}
