//! Load generator for `bench/server.sh`: starts edgeward-server in process on loopback
//! (SQLite), enrolls one device per connection, then measures over mutual TLS with keep-alive:
//! unauthenticated `GET /healthz`, authenticated `POST /v1/device/telemetry` (v1 token, made
//! once per second per device and verified by the server on every request; registry
//! lookup, limits, insert), and full TLS handshakes per second (a new connection
//! for every request). The two keep-alive phases alternate for ROUNDS rounds. Prints one
//! JSON object. `LOADGEN_PHASES=telemetry` (a comma list) runs only the named phases, for
//! profiling one of them; `LOADGEN_TELEMETRY_SYNC=normal` runs the server with
//! `[database] telemetry_sync = "normal"` (default `full`), for `bench/telemetry-sync.sh`.
//!
//! `cargo run --release -p edgeward-server --example loadgen -- [SECONDS] [CONCURRENCY] [ROUNDS]`

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use edgeward_server::config::{DatabaseConfig, LimitConfig, TelemetrySync};
use reqwest::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use serde_json::{json, Value};

/// The same allocator as the `edgeward-server` binary, so the in-process server is measured
/// as it runs in production.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Builds the next request of connection `i` (the connection of device `i`).
type Maker = Arc<dyn Fn(usize, &reqwest::Client) -> reqwest::RequestBuilder + Send + Sync>;

/// CPU seconds this process (server and load generator, all threads) has used so far, from
/// `/proc/self/stat` (user + system time, in clock ticks of 1/100 s).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_name = stat.rsplit(')').next().unwrap_or_default();
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// One run of a phase.
struct Run {
    per_sec: f64,
    requests: u64,
    errors: u64,
    cpu_seconds: f64,
}

/// The rounds of one phase.
#[derive(Default)]
struct Phase {
    rates: Vec<f64>,
    requests: u64,
    errors: u64,
    cpu_seconds: f64,
}

impl Phase {
    fn add(&mut self, run: Run) {
        self.rates.push(run.per_sec);
        self.requests += run.requests;
        self.errors += run.errors;
        self.cpu_seconds += run.cpu_seconds;
    }

    /// Mean requests per second over the rounds.
    fn rate(&self) -> f64 {
        self.rates.iter().sum::<f64>() / self.rates.len().max(1) as f64
    }

    /// CPU microseconds (server and client together) per request.
    fn cpu_us(&self) -> f64 {
        self.cpu_seconds * 1e6 / self.requests.max(1) as f64
    }
}

async fn run_phase(clients: Vec<reqwest::Client>, seconds: u64, make: Maker) -> Run {
    let done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for (i, c) in clients.into_iter().enumerate() {
        let (done, errors, make) = (done.clone(), errors.clone(), make.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                match make(i, &c).send().await {
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
    let (start, cpu_start) = (Instant::now(), cpu_seconds());
    for t in tasks {
        let _ = t.await;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let requests = done.load(Ordering::Relaxed);
    Run {
        per_sec: requests as f64 / elapsed,
        requests,
        errors: errors.load(Ordering::Relaxed),
        cpu_seconds: cpu_seconds() - cpu_start,
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let seconds: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(5);
    let concurrency: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(32);
    let rounds: u32 = args.next().and_then(|s| s.parse().ok()).unwrap_or(3);
    let phases =
        std::env::var("LOADGEN_PHASES").unwrap_or_else(|_| "healthz,telemetry,handshakes".into());
    let telemetry_sync = match std::env::var("LOADGEN_TELEMETRY_SYNC").as_deref() {
        Ok("normal") => TelemetrySync::Normal,
        Ok("full") | Err(_) => TelemetrySync::Full,
        Ok(other) => anyhow::bail!("LOADGEN_TELEMETRY_SYNC={other}: full or normal"),
    };
    let dir = tempfile::tempdir()?;
    let unlimited = LimitConfig {
        per_second: 1_000_000_000,
        burst: 1_000_000_000,
    };
    let server = edgeward_server::start(edgeward_server::Config {
        data_dir: dir.path().to_path_buf(),
        listen: ([127, 0, 0, 1], 0).into(),
        admin_listen: ([127, 0, 0, 1], 0).into(),
        enroll_listen: ([127, 0, 0, 1], 0).into(),
        ip_limit: unlimited,
        enroll_limit: unlimited,
        device_limit: unlimited,
        database: DatabaseConfig { telemetry_sync },
        connections: edgeward_server::config::ConnectionLimits {
            max_connections_per_address: 100_000,
            ..Default::default()
        },
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
    // One enrolled device per connection, as in a fleet: each has its own certificate,
    // secret, rate-limit state and place in the telemetry table's index.
    let mut devices = Vec::new();
    for i in 0..concurrency {
        let id = format!("bench-{i:04}");
        let v: Value = admin
            .post(admin_url("/v1/admin/devices"))
            .bearer_auth(admin_key.trim())
            .json(&json!({ "id": id, "hardware_class": "bench" }))
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
        devices.push((id, identity, secret));
    }
    let device_client = |identity: &str, keep_alive: bool| -> anyhow::Result<reqwest::Client> {
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
        devices
            .iter()
            .map(|(_, identity, _)| device_client(identity, keep_alive))
            .collect::<anyhow::Result<Vec<_>>>()
    };

    let healthz_url = url("/healthz");
    let healthz_make: Maker = Arc::new(move |_, c| c.get(&healthz_url));
    let telemetry_url = url("/v1/device/telemetry");
    // Shared, never copied: the client's own cost should be the request it must make.
    let body = axum::body::Bytes::from_static(
        br#"{"records":[{"fps":29.97,"temp_c":61.5,"npu_util":0.82}]}"#,
    );
    // Each device's current `Authorization` value. A v1 token names its second, so within
    // one second a device's token is the same string: it is made once per second, as a
    // device that reuses it would, and the server still verifies every request's token.
    let authorizations: Vec<std::sync::Mutex<(u64, HeaderValue)>> = devices
        .iter()
        .map(|_| std::sync::Mutex::new((0, HeaderValue::from_static(""))))
        .collect();
    let credentials: Vec<(String, String)> = devices
        .iter()
        .map(|(id, _, secret)| (id.clone(), secret.clone()))
        .collect();
    let telemetry_make: Maker = Arc::new(move |i, c| {
        let authorization = match authorizations[i].lock() {
            Ok(mut current) => {
                let second = now();
                if current.0 != second {
                    let (id, secret) = &credentials[i];
                    let token = edgeward_proto::token::create_v1(id, secret, second);
                    if let Ok(value) = HeaderValue::from_str(&format!("Device {token}")) {
                        *current = (second, value);
                    }
                }
                current.1.clone()
            }
            Err(_) => HeaderValue::from_static(""),
        };
        c.post(&telemetry_url)
            .header(AUTHORIZATION, authorization)
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .body(body.clone())
    });
    // The two keep-alive phases alternate over several rounds on the same connections, so
    // a background load that drifts during the run weighs on both alike.
    let (healthz_clients, telemetry_clients) = (clients(true)?, clients(true)?);
    let (mut healthz, mut telemetry) = (Phase::default(), Phase::default());
    for _ in 0..rounds {
        if phases.contains("healthz") {
            healthz.add(run_phase(healthz_clients.clone(), seconds, healthz_make.clone()).await);
        }
        if phases.contains("telemetry") {
            telemetry
                .add(run_phase(telemetry_clients.clone(), seconds, telemetry_make.clone()).await);
        }
    }
    let handshake_url = url("/healthz");
    let handshakes = if phases.contains("handshakes") {
        run_phase(
            clients(false)?,
            seconds,
            Arc::new(move |_, c| c.get(&handshake_url)),
        )
        .await
    } else {
        Run {
            per_sec: 0.0,
            requests: 0,
            errors: 0,
            cpu_seconds: 0.0,
        }
    };
    let (healthz_rate, telemetry_rate) = (healthz.rate(), telemetry.rate());
    let out = json!({
        "seconds": seconds,
        "telemetry_sync": format!("{telemetry_sync:?}").to_lowercase(),
        "concurrency": concurrency,
        "rounds": rounds,
        "healthz_per_sec": healthz_rate.round(),
        "telemetry_per_sec": telemetry_rate.round(),
        "telemetry_to_healthz": (telemetry_rate / healthz_rate * 1000.0).round() / 1000.0,
        "healthz_cpu_us": (healthz.cpu_us() * 10.0).round() / 10.0,
        "telemetry_cpu_us": (telemetry.cpu_us() * 10.0).round() / 10.0,
        "cpu_ratio": (healthz.cpu_us() / telemetry.cpu_us() * 1000.0).round() / 1000.0,
        "full_handshakes_per_sec": handshakes.per_sec.round(),
        "errors": { "healthz": healthz.errors, "telemetry": telemetry.errors, "handshakes": handshakes.errors },
    });
    println!("{out}");
    server.stop().await;
    Ok(())
}
