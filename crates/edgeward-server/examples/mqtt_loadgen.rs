//! Load generator for `bench/mqtt.sh`: telemetry over MQTT/TLS through a real Mosquitto on
//! loopback. Starts edgeward-server in process (SQLite) with `[mqtt]`, generates the broker
//! configuration, starts Mosquitto, enrolls DEVICES devices, and connects each as an MQTT
//! publisher with its own certificate. Every publisher sends numbered one-record batches
//! with QoS 1 and at most WINDOW unacknowledged by the broker (a bounded load).
//!
//! 1. server: batches per second the server ingests (gate, dedup, group commit; counted in
//!    the registry) while every publisher sends as fast as the window lets it;
//! 2. revocation: for REVOKE further connected devices, time from the revocation request to
//!    the device's connection being closed by the broker;
//! 3. broker alone: the server stops; a plain subscriber with the server's MQTT identity
//!    reads `devices/+/telemetry`, and the same publishers send again: messages per second
//!    the broker delivers to it.
//!
//! The registry is SQLite in a temporary directory, or with `EDGEWARD_BENCH_POSTGRES` set to
//! a PostgreSQL URL (e.g. `postgres://postgres@127.0.0.1:5432/postgres`) a fresh database
//! created on that server.
//!
//! Prints one JSON object.
//! `cargo run --release -p edgeward-server --example mqtt_loadgen -- [SECONDS] [DEVICES] [WINDOW] [REVOKE]`

use std::{
    process::{Command, Stdio},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use edgeward_server::{
    config::LimitConfig,
    mqtt::{broker_config, credentials::SERVER_IDENTITY, MqttConfig},
    Config,
};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS, TlsConfiguration, Transport};
use rustls::pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::{json, Value};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn arg(i: usize, default: u64) -> u64 {
    std::env::args()
        .nth(i)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

fn tls(
    roots_pem: &[u8],
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(roots_pem) {
        roots.add(c.expect("cert")).expect("root");
    }
    Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .expect("client auth"),
    )
}

/// An MQTT connection; `on_event` sees every event, `lost` turns true at the first error.
fn connect(
    id: &str,
    port: u16,
    tls: Arc<rustls::ClientConfig>,
    window: u16,
    on_publish: Option<Arc<AtomicU64>>,
    lost: Arc<AtomicBool>,
) -> (AsyncClient, tokio::sync::mpsc::UnboundedReceiver<Instant>) {
    let mut o = MqttOptions::new(id, "127.0.0.1", port);
    o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(tls)))
        .set_inflight(window)
        .set_keep_alive(Duration::from_secs(60));
    let (client, mut eventloop) = AsyncClient::new(o, 64);
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::Publish(_))) => {
                    if let Some(c) = &on_publish {
                        c.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Ok(Event::Incoming(Packet::ConnAck(_))) => {}
                Ok(_) => {}
                Err(_) => {
                    lost.store(true, Ordering::SeqCst);
                    let _ = tx.send(Instant::now());
                    return;
                }
            }
        }
    });
    (client, rx)
}

/// Runs every publisher as fast as its window lets it for `seconds`.
async fn publish_for(publishers: &[(String, AsyncClient, Arc<AtomicU64>)], seconds: u64) {
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = publishers
        .iter()
        .map(|(id, client, seq)| {
            let (id, client, seq, stop) = (id.clone(), client.clone(), seq.clone(), stop.clone());
            tokio::spawn(async move {
                let topic = format!("devices/{id}/telemetry");
                while !stop.load(Ordering::Relaxed) {
                    let n = seq.fetch_add(1, Ordering::Relaxed) + 1;
                    let body = json!({"first_seq": n, "last_seq": n, "records": [{"type": "device", "n": n}]});
                    if client
                        .publish(&topic, QoS::AtLeastOnce, false, body.to_string())
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
}

/// A new database on the PostgreSQL server `admin` connects to; its URL.
async fn fresh_postgres(admin: &str) -> String {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(admin).await.expect("PostgreSQL");
    let mut name = [0u8; 8];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut name);
    let name = format!("edgeward_bench_{}", hex::encode(name));
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&pool)
        .await
        .expect("create database");
    let base = admin
        .rsplit_once('/')
        .map(|(b, _)| b)
        .expect("database URL");
    format!("{base}/{name}")
}

#[tokio::main]
async fn main() {
    let seconds = arg(1, 5);
    let devices = arg(2, 32) as usize;
    let window = arg(3, 16) as u16;
    let revoke = arg(4, 5) as usize;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let dir = tempfile::tempdir().expect("tmp");
    let bdir = tempfile::tempdir().expect("tmp");
    let database_url = match std::env::var("EDGEWARD_BENCH_POSTGRES") {
        Ok(admin) => Some(fresh_postgres(&admin).await),
        Err(_) => None,
    };
    let backend = if database_url.is_some() {
        "postgres"
    } else {
        "sqlite"
    };
    let config = Config {
        database_url,
        data_dir: dir.path().to_path_buf(),
        listen: ([127, 0, 0, 1], 0).into(),
        admin_listen: ([127, 0, 0, 1], 0).into(),
        enroll_listen: ([127, 0, 0, 1], 0).into(),
        device_limit: LimitConfig {
            per_second: 1_000_000,
            burst: 1_000_000,
        },
        enroll_limit: LimitConfig {
            per_second: 1_000_000,
            burst: 1_000_000,
        },
        mqtt: Some(MqttConfig {
            broker: format!("127.0.0.1:{port}"),
            client_id: "edgeward-server".into(),
            workers: 32,
            reload_pid_file: Some(bdir.path().join("mosquitto.pid")),
        }),
        ..Config::default()
    };
    let running = edgeward_server::start(config).await.expect("server");
    let run_as = std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
        .then(|| "root".to_string());
    let conf = broker_config::write(
        dir.path(),
        &broker_config::BrokerOptions {
            listen: ([127, 0, 0, 1], port).into(),
            names: Vec::new(),
            run_as,
            plugin: broker_config::DEFAULT_PLUGIN.into(),
            root_ca: None,
            out: bdir.path().to_path_buf(),
        },
        time::OffsetDateTime::now_utc(),
    )
    .expect("broker config");
    let mut mosquitto = Command::new("/usr/sbin/mosquitto")
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("mosquitto");
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Devices, enrolled through the admin API.
    let server_ca = std::fs::read(dir.path().join("server-ca.pem")).expect("server CA");
    let admin_key = std::fs::read_to_string(dir.path().join("admin-token")).expect("admin key");
    let admin = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&server_ca).expect("ca"))
        .build()
        .expect("client");
    let admin_url = |p: &str| format!("https://localhost:{}{p}", running.admin_addr.port());
    let mut enrolled = Vec::new();
    for i in 0..devices + revoke {
        let id = format!("bench-{i}");
        let v: Value = admin
            .post(admin_url("/v1/admin/devices"))
            .bearer_auth(admin_key.trim())
            .json(&json!({"id": id, "hardware_class": "bench"}))
            .send()
            .await
            .expect("register")
            .json()
            .await
            .expect("json");
        let key = rcgen::KeyPair::generate().expect("key");
        let csr = rcgen::CertificateParams::new(Vec::<String>::new())
            .expect("params")
            .serialize_request(&key)
            .expect("csr");
        let e: Value = admin
            .post(format!(
                "https://localhost:{}/v1/enroll",
                running.enroll_addr.port()
            ))
            .json(&json!({"token": v["enrollment_token"], "csr": csr.pem().expect("pem")}))
            .send()
            .await
            .expect("enroll")
            .json()
            .await
            .expect("json");
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(e["certificate"].as_str().expect("cert").as_bytes())
                .map(|c| c.expect("cert"))
                .collect();
        let key = PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).expect("key");
        enrolled.push((id, tls(&server_ca, chain, key)));
    }
    let publishers: Vec<(String, AsyncClient, Arc<AtomicU64>)> = enrolled[..devices]
        .iter()
        .map(|(id, tls)| {
            let (client, _) = connect(
                id,
                port,
                tls.clone(),
                window,
                None,
                Arc::new(AtomicBool::new(false)),
            );
            (id.clone(), client, Arc::new(AtomicU64::new(0)))
        })
        .collect();

    // Warm-up, then the server phase: batches stored per second.
    publish_for(&publishers, 1).await;
    let stored = |running: &edgeward_server::Running| {
        let app = running.app.clone();
        let ids: Vec<String> = publishers.iter().map(|p| p.0.clone()).collect();
        async move {
            let mut n = 0;
            for id in &ids {
                n += app.db.telemetry_count(id).await.unwrap_or(0);
            }
            n
        }
    };
    let before = stored(&running).await;
    let start = Instant::now();
    publish_for(&publishers, seconds).await;
    let stored_n = stored(&running).await - before;
    let server_rate = stored_n as f64 / start.elapsed().as_secs_f64();

    // Revocation to disconnect.
    let mut kicks = Vec::new();
    for (id, tls) in &enrolled[devices..] {
        let lost = Arc::new(AtomicBool::new(false));
        let (client, mut closed) = connect(id, port, tls.clone(), window, None, lost.clone());
        client
            .publish(
                format!("devices/{id}/telemetry"),
                QoS::AtLeastOnce,
                false,
                json!({"records":[{"t":1}]}).to_string(),
            )
            .await
            .expect("publish");
        tokio::time::sleep(Duration::from_millis(300)).await;
        let t0 = Instant::now();
        admin
            .post(admin_url(&format!("/v1/admin/devices/{id}/revoke")))
            .bearer_auth(admin_key.trim())
            .json(&json!({}))
            .send()
            .await
            .expect("revoke");
        match tokio::time::timeout(Duration::from_secs(5), closed.recv()).await {
            Ok(Some(at)) => kicks.push(at.duration_since(t0).as_secs_f64() * 1000.0),
            _ => kicks.push(f64::INFINITY),
        }
    }

    // The broker alone: the server stops; a subscriber with its identity reads.
    let now = time::OffsetDateTime::now_utc();
    let sink_key = rcgen::KeyPair::generate().expect("key");
    let sink_cert = running
        .app
        .identity
        .device_ca
        .issue_service(SERVER_IDENTITY, &sink_key, 1, now)
        .expect("sink certificate");
    running.stop().await;
    let received = Arc::new(AtomicU64::new(0));
    let (sink, _) = connect(
        "bench-sink",
        port,
        tls(
            &server_ca,
            vec![CertificateDer::from(sink_cert)],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(sink_key.serialize_der())),
        ),
        window,
        Some(received.clone()),
        Arc::new(AtomicBool::new(false)),
    );
    sink.subscribe("devices/+/telemetry", QoS::AtLeastOnce)
        .await
        .expect("subscribe");
    tokio::time::sleep(Duration::from_millis(500)).await;
    publish_for(&publishers, 1).await;
    let before = received.load(Ordering::Relaxed);
    let start = Instant::now();
    publish_for(&publishers, seconds).await;
    let broker_rate =
        (received.load(Ordering::Relaxed) - before) as f64 / start.elapsed().as_secs_f64();

    let _ = mosquitto.kill();
    let _ = mosquitto.wait();
    kicks.sort_by(|a, b| a.total_cmp(b));
    println!(
        "{}",
        json!({
            "seconds": seconds,
            "backend": backend,
            "devices": devices,
            "window": window,
            "server_ingested_per_sec": server_rate.round(),
            "broker_alone_per_sec": broker_rate.round(),
            "ratio": (server_rate / broker_rate * 1000.0).round() / 1000.0,
            "revocation_to_disconnect_ms": kicks.iter().map(|k| (k * 10.0).round() / 10.0).collect::<Vec<_>>(),
        })
    );
}
