//! Load generator for `bench/server.sh`: starts edgeward-server in process on loopback
//! (SQLite), enrolls one device, then measures over mutual TLS with keep-alive:
//! unauthenticated `GET /healthz`, authenticated `POST /v1/device/telemetry` (v1 token,
//! registry lookup, limits, insert), and full TLS handshakes per second (a new connection
//! for every request). Prints one JSON object.
//!
//! `cargo run --release -p edgeward-server --example loadgen -- [SECONDS] [CONCURRENCY]`

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use edgeward_server::config::LimitConfig;
use serde_json::{json, Value};

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

async fn run_phase(
    clients: Vec<reqwest::Client>,
    seconds: u64,
    make: Arc<dyn Fn(&reqwest::Client) -> reqwest::RequestBuilder + Send + Sync>,
) -> (f64, u64) {
    let done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for c in clients {
        let (done, errors, make) = (done.clone(), errors.clone(), make.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                match make(&c).send().await {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    let start = Instant::now();
    for t in tasks {
        let _ = t.await;
    }
    let elapsed = start.elapsed().as_secs_f64();
    (
        done.load(Ordering::Relaxed) as f64 / elapsed,
        errors.load(Ordering::Relaxed),
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let seconds: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(5);
    let concurrency: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(32);
    let dir = tempfile::tempdir()?;
    let unlimited = LimitConfig {
        per_second: 1_000_000_000,
        burst: 1_000_000_000,
    };
    let server = edgeward_server::start(edgeward_server::Config {
        data_dir: dir.path().to_path_buf(),
        listen: ([127, 0, 0, 1], 0).into(),
        admin_listen: ([127, 0, 0, 1], 0).into(),
        ip_limit: unlimited,
        device_limit: unlimited,
        ..Default::default()
    })
    .await?;
    let ca = reqwest::Certificate::from_pem(&std::fs::read(dir.path().join("server-ca.pem"))?)?;
    let admin_key = std::fs::read_to_string(dir.path().join("admin-token"))?;
    let admin = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca.clone())
        .build()?;
    let admin_url = |p: &str| format!("https://127.0.0.1:{}{p}", server.admin_addr.port());
    let v: Value = admin
        .post(admin_url("/v1/admin/devices"))
        .bearer_auth(admin_key.trim())
        .json(&json!({ "id": "bench-001", "hardware_class": "bench" }))
        .send()
        .await?
        .json()
        .await?;
    let key = rcgen::KeyPair::generate()?;
    let csr = rcgen::CertificateParams::new(Vec::<String>::new())?
        .serialize_request(&key)?
        .pem()?;
    let e: Value = admin
        .post(admin_url("/v1/enroll"))
        .json(&json!({ "token": v["enrollment_token"], "csr": csr }))
        .send()
        .await?
        .json()
        .await?;
    let identity = format!(
        "{}{}",
        e["certificate"].as_str().unwrap_or_default(),
        key.serialize_pem()
    );
    let secret = e["secret"].as_str().unwrap_or_default().to_string();
    let device_client = |keep_alive: bool| -> anyhow::Result<reqwest::Client> {
        let mut b = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(ca.clone())
            .identity(reqwest::Identity::from_pem(identity.as_bytes())?)
            .http1_only();
        if !keep_alive {
            b = b.pool_max_idle_per_host(0);
        }
        Ok(b.build()?)
    };
    let url = |p: &str| format!("https://127.0.0.1:{}{p}", server.device_addr.port());
    let clients = |keep_alive: bool| {
        (0..concurrency)
            .map(|_| device_client(keep_alive))
            .collect::<anyhow::Result<Vec<_>>>()
    };

    let healthz_url = url("/healthz");
    let (healthz, healthz_errors) = run_phase(
        clients(true)?,
        seconds,
        Arc::new(move |c| c.get(&healthz_url)),
    )
    .await;
    let telemetry_url = url("/v1/device/telemetry");
    let body = br#"{"records":[{"fps":29.97,"temp_c":61.5,"npu_util":0.82}]}"#.to_vec();
    let (telemetry, telemetry_errors) = run_phase(
        clients(true)?,
        seconds,
        Arc::new(move |c| {
            let token = edgeward_proto::token::create_v1("bench-001", &secret, now());
            c.post(&telemetry_url)
                .header("authorization", format!("Device {token}"))
                .header("content-type", "application/json")
                .body(body.clone())
        }),
    )
    .await;
    let handshake_url = url("/healthz");
    let (handshakes, handshake_errors) = run_phase(
        clients(false)?,
        seconds,
        Arc::new(move |c| c.get(&handshake_url)),
    )
    .await;
    let out = json!({
        "seconds": seconds,
        "concurrency": concurrency,
        "healthz_per_sec": healthz.round(),
        "telemetry_per_sec": telemetry.round(),
        "telemetry_to_healthz": (telemetry / healthz * 1000.0).round() / 1000.0,
        "full_handshakes_per_sec": handshakes.round(),
        "errors": { "healthz": healthz_errors, "telemetry": telemetry_errors, "handshakes": handshake_errors },
    });
    println!("{out}");
    server.stop().await;
    Ok(())
}
