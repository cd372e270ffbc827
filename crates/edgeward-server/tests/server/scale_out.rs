//! Detection scaled out on the real NATS JetStream (127.0.0.1:4222) and PostgreSQL: two
//! server replicas publish the telemetry devices send to either of them, two detection
//! workers (the real `edgeward-server detect-worker` processes) share the partitions, and
//! every point is scored exactly once — also when one worker is killed with SIGKILL in the
//! middle of the stream, its partitions taken over by the other with their baselines
//! restored from the last checkpoint. Each test has a stream and subjects of its own.

use std::{
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use edgeward_detect::baseline::Baseline;
use edgeward_server::detect_nats::NatsConfig;
use serde_json::json;
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

fn worker(n: &NatsConfig, postgres: &str, id: &str, log: &std::path::Path) -> WorkerProcess {
    let log = std::fs::File::create(log).expect("log file");
    let child = Command::new(env!("CARGO_BIN_EXE_edgeward-server"))
        .args([
            "detect-worker",
            "--nats",
            NATS,
            "--postgres",
            postgres,
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

/// Posts `batches` numbered batches of `per_batch` points of `rate` for `e`, starting at
/// sequence number `first`, alternating between the replicas' device listeners.
async fn send(
    s: &Server,
    urls: &[String],
    e: &Enrolled,
    first: u64,
    batches: u64,
    per_batch: u64,
) -> u64 {
    let c = s.device_client(e);
    let mut seq = first;
    for b in 0..batches {
        let records: Vec<_> = (0..per_batch)
            .map(|i| json!({ "ts": 1_764_900_000 + (seq + i) * 60, "rate": 10.0 + ((seq + i) % 7) as f64 }))
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
    let w1 = worker(&n, &postgres, "w1", &logs.path().join("w1.log"));
    let _w2 = worker(&n, &postgres, "w2", &logs.path().join("w2.log"));

    let mut devices = Vec::new();
    for i in 0..6 {
        devices.push(a.enroll(&device_id(&format!("scale{i}")), "cam").await);
    }
    // Both workers hold partitions (they balance to four each).
    wait_for(30, "both workers to hold partitions", || async {
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
        "SELECT device_id, state FROM detect_state WHERE stream = $1 AND metric = 'rate'",
    )
    .bind(&n.stream)
    .fetch_all(&pool)
    .await
    .expect("states");
    assert_eq!(states.len(), devices.len());
    for row in states {
        let state: String = row.get("state");
        let b = Baseline::from_bytes(&hex::decode(state).expect("hex")).expect("baseline");
        assert_eq!(b.seen(), 100, "{}", row.get::<String, _>("device_id"));
    }
}
