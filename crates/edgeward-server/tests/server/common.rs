//! A real server on loopback for each test, against SQLite or a fresh PostgreSQL database,
//! with helpers to register and enroll devices and to call the API as a device.

use std::{path::PathBuf, sync::Arc, time::Duration};

use edgeward_server::{clock::Clock, Config, Running};
use rustls::pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer, ServerName};
use serde_json::{json, Value};

/// Which database a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    Sqlite,
    Postgres,
}

/// Runs `$body` (an async block using `backend`) once per backend.
#[macro_export]
macro_rules! both_backends {
    ($name:ident, |$backend:ident| $body:expr) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let $backend = $crate::common::Backend::Sqlite;
                $body.await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let $backend = $crate::common::Backend::Postgres;
                $body.await
            }
        }
    };
}

/// A fresh PostgreSQL database on the local server (scripts/test.sh makes sure one runs).
pub(crate) async fn fresh_postgres() -> String {
    let admin = std::env::var("EDGEWARD_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&admin).await.unwrap_or_else(|e| {
        panic!("PostgreSQL at {admin} is needed (scripts/test.sh starts it): {e}")
    });
    let name = format!("edgeward_test_{}", hex::encode(rand_bytes::<8>()));
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&pool)
        .await
        .expect("create database");
    let base = admin
        .rsplit_once('/')
        .map(|(b, _)| b.to_string())
        .expect("url");
    format!("{base}/{name}")
}

pub(crate) fn rand_bytes<const N: usize>() -> [u8; N] {
    use rand_core::RngCore;
    let mut b = [0u8; N];
    rand_core::OsRng.fill_bytes(&mut b);
    b
}

/// A unique device id for a test.
pub(crate) fn device_id(prefix: &str) -> String {
    format!("{prefix}-{}", hex::encode(rand_bytes::<4>()))
}

pub(crate) struct Server {
    pub(crate) running: Running,
    pub(crate) dir: tempfile::TempDir,
    pub(crate) admin_key: String,
    pub(crate) admin: reqwest::Client,
}

pub(crate) async fn config(backend: Backend, dir: &std::path::Path) -> Config {
    let mut c = Config {
        data_dir: dir.to_path_buf(),
        listen: "127.0.0.1:0".parse().expect("addr"),
        admin_listen: "127.0.0.1:0".parse().expect("addr"),
        enroll_listen: "127.0.0.1:0".parse().expect("addr"),
        ..Config::default()
    };
    if backend == Backend::Postgres {
        c.database_url = Some(fresh_postgres().await);
    }
    c
}

pub(crate) async fn start(backend: Backend) -> Server {
    start_with(backend, |_| {}, None).await
}

pub(crate) async fn start_with(
    backend: Backend,
    edit: impl FnOnce(&mut Config),
    clock: Option<Arc<dyn Clock>>,
) -> Server {
    let dir = tempfile::tempdir().expect("tmp");
    let mut c = config(backend, dir.path()).await;
    edit(&mut c);
    serve(c, dir, clock).await
}

pub(crate) async fn serve(
    c: Config,
    dir: tempfile::TempDir,
    clock: Option<Arc<dyn Clock>>,
) -> Server {
    let running = match clock {
        Some(clock) => edgeward_server::start_with_clock(c, clock).await,
        None => edgeward_server::start(c).await,
    }
    .expect("server starts");
    let admin_key = std::fs::read_to_string(dir.path().join("admin-token")).expect("admin-token");
    let admin = client(&dir.path().join("server-ca.pem"), None);
    Server {
        running,
        dir,
        admin_key,
        admin,
    }
}

pub(crate) fn client(server_ca: &std::path::Path, identity: Option<&Enrolled>) -> reqwest::Client {
    let ca =
        reqwest::Certificate::from_pem(&std::fs::read(server_ca).expect("server ca")).expect("ca");
    let mut b = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca)
        .timeout(Duration::from_secs(20));
    if let Some(e) = identity {
        let pem = format!("{}{}", e.cert_pem, e.key_pem);
        b = b.identity(reqwest::Identity::from_pem(pem.as_bytes()).expect("identity"));
    }
    b.build().expect("client")
}

impl Server {
    pub(crate) fn admin_url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.running.admin_addr.port())
    }
    pub(crate) fn device_url(&self, path: &str) -> String {
        format!(
            "https://127.0.0.1:{}{path}",
            self.running.device_addr.port()
        )
    }
    pub(crate) fn server_ca(&self) -> PathBuf {
        self.dir.path().join("server-ca.pem")
    }

    pub(crate) async fn admin_post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .admin
            .post(self.admin_url(path))
            .bearer_auth(self.admin_key.trim())
            .json(&body)
            .send()
            .await
            .expect("admin call");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub(crate) async fn admin_get(&self, path: &str) -> (u16, Value) {
        let r = self
            .admin
            .get(self.admin_url(path))
            .bearer_auth(self.admin_key.trim())
            .send()
            .await
            .expect("admin call");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Registers `id` and returns its enrollment token.
    pub(crate) async fn register(&self, id: &str, class: &str) -> String {
        let (status, v) = self
            .admin_post(
                "/v1/admin/devices",
                json!({ "id": id, "hardware_class": class }),
            )
            .await;
        assert_eq!(status, 201, "{v}");
        v["enrollment_token"].as_str().expect("token").to_string()
    }

    /// Registers and enrolls a device with a fresh P-256 key.
    pub(crate) async fn enroll(&self, id: &str, class: &str) -> Enrolled {
        let token = self.register(id, class).await;
        let (status, (v, enrolled)) = enroll_with(self, &token).await;
        assert_eq!(status, 200, "{v}");
        enrolled
    }

    /// A device client for `e`.
    pub(crate) fn device_client(&self, e: &Enrolled) -> reqwest::Client {
        client(&self.server_ca(), Some(e))
    }
}

pub(crate) struct Enrolled {
    pub(crate) id: String,
    pub(crate) key_pem: String,
    pub(crate) cert_pem: String,
    pub(crate) secret: String,
}

/// Enrolls with `token` and a fresh key; (status, (response, enrolled)).
pub(crate) async fn enroll_with(server: &Server, token: &str) -> (u16, (Value, Enrolled)) {
    enroll_at(&server.admin, &server.admin_url("/v1/enroll"), token).await
}

/// Enrolls with `token` and a fresh key through `admin` at `url`.
pub(crate) async fn enroll_at(
    admin: &reqwest::Client,
    url: &str,
    token: &str,
) -> (u16, (Value, Enrolled)) {
    let key = rcgen::KeyPair::generate().expect("key");
    let csr = rcgen::CertificateParams::new(Vec::<String>::new())
        .expect("params")
        .serialize_request(&key)
        .expect("csr");
    let r = admin
        .post(url)
        .json(&json!({ "token": token, "csr": csr.pem().expect("pem") }))
        .send()
        .await
        .expect("enroll call");
    let status = r.status().as_u16();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    let e = Enrolled {
        id: v["device_id"].as_str().unwrap_or_default().to_string(),
        key_pem: key.serialize_pem(),
        cert_pem: v["certificate"].as_str().unwrap_or_default().to_string(),
        secret: v["secret"].as_str().unwrap_or_default().to_string(),
    };
    (status, (v, e))
}

/// The system clock, as the programs read it.
pub(crate) use edgeward_core::civil::unix_now;

/// A v1 token for `e` at `ts`.
pub(crate) fn v1(e: &Enrolled, ts: u64) -> String {
    format!(
        "Device {}",
        edgeward_proto::token::create_v1(&e.id, &e.secret, ts)
    )
}

/// A second replica of `a` as a deployment would run one: a data directory of its own
/// (each server locks its own), holding copies of `a`'s server CA and master key, `a`'s
/// device CA, and `a`'s database (PostgreSQL, for replicas). The directory is returned to
/// be kept for the replica's lifetime.
pub(crate) async fn replica(
    a: &Server,
    edit: impl FnOnce(&mut Config),
) -> (Running, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tmp");
    for name in ["server-ca.pem", "server-ca.key", "master.key"] {
        std::fs::copy(a.dir.path().join(name), dir.path().join(name)).expect("copy identity");
    }
    let mut c = Config {
        data_dir: dir.path().to_path_buf(),
        listen: "127.0.0.1:0".parse().expect("addr"),
        admin_listen: "127.0.0.1:0".parse().expect("addr"),
        enroll_listen: "127.0.0.1:0".parse().expect("addr"),
        database_url: Some(a.running.app.config.database_url()),
        device_ca_cert: Some(a.dir.path().join("pki/device-ca.pem")),
        device_ca_key: Some(a.dir.path().join("pki/device-ca.key")),
        ..Config::default()
    };
    edit(&mut c);
    let running = edgeward_server::start(c).await.expect("replica starts");
    (running, dir)
}

/// Device `e` reports a tamper event to the telemetry endpoint at `url` (answered 200).
pub(crate) async fn send_tamper(s: &Server, url: &str, e: &Enrolled) {
    let r = s
        .device_client(e)
        .post(url)
        .header("authorization", v1(e, unix_now()))
        .json(&json!({ "records": [
            { "type": "event", "at": unix_now(), "event": "tamper", "detail": "enclosure opened" }
        ] }))
        .send()
        .await
        .expect("telemetry");
    assert_eq!(r.status(), 200);
}

/// A keep-alive connection of device `e` to the device listener at `addr`, answered once
/// (a command poll, 200): for tests that watch the server close it.
pub(crate) async fn held_connection(
    server_ca: &std::path::Path,
    addr: std::net::SocketAddr,
    e: &Enrolled,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tls = tls_connect(server_ca, addr, e).await;
    let request = format!(
        "GET /v1/device/commands HTTP/1.1\r\nhost: localhost\r\nauthorization: {}\r\nconnection: keep-alive\r\n\r\n",
        v1(e, unix_now())
    );
    tls.write_all(request.as_bytes()).await.expect("write");
    let mut buf = vec![0u8; 4096];
    let n = tls.read(&mut buf).await.expect("read");
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    tls
}

/// How long the server took to close `tls` (reading until the end), or `None` if it was
/// still open after `limit`.
pub(crate) async fn closed_within(
    tls: &mut tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    limit: Duration,
) -> Option<Duration> {
    use tokio::io::AsyncReadExt;
    let start = std::time::Instant::now();
    let mut buf = vec![0u8; 4096];
    tokio::time::timeout(limit, async {
        loop {
            match tls.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => continue,
            }
        }
    })
    .await
    .ok()
    .map(|()| start.elapsed())
}

/// A raw TLS connection to the device listener at `addr` as device `e` (its certificate and
/// key), trusting the server CA at `server_ca`: for tests that hold a connection open.
pub(crate) async fn tls_connect(
    server_ca: &std::path::Path,
    addr: std::net::SocketAddr,
    e: &Enrolled,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(server_ca).expect("ca") {
        roots.add(c.expect("cert")).expect("add");
    }
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(e.cert_pem.as_bytes())
        .map(|c| c.expect("cert"))
        .collect();
    let key = PrivateKeyDer::from_pem_slice(e.key_pem.as_bytes()).expect("key");
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_client_auth_cert(chain, key)
    .expect("client auth");
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("tcp");
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").expect("name"), tcp)
        .await
        .expect("handshake")
}

impl Enrolled {
    /// Signs `context ‖ payload` with the device key, as the device's element would.
    pub(crate) fn sign(&self, context: &[u8], payload: &[u8]) -> Vec<u8> {
        let key = edgeward_core::keys::SigningKey::from_pem(self.key_pem.as_bytes(), None)
            .expect("device key");
        key.sign(&edgeward_proto::command::signed_message(context, payload))
    }

    /// A result of command `id`, signed by the device key.
    pub(crate) fn signed_result(&self, id: i64, ok: bool, output: Value) -> Value {
        let payload = serde_json::to_vec(&edgeward_proto::command::ResultPayload {
            v: 1,
            device_id: self.id.clone(),
            command_id: id,
            ok,
            output,
            executed_at: unix_now() as i64,
        })
        .expect("json");
        let sig = self.sign(edgeward_proto::command::RESULT_CONTEXT, &payload);
        serde_json::to_value(edgeward_proto::command::Signed::new(&payload, &sig)).expect("json")
    }

    /// A forensic bundle with `body`, its header signed by the device key.
    pub(crate) fn bundle(&self, command_id: i64, body: &[u8]) -> Vec<u8> {
        use edgeward_proto::forensics;
        let header = serde_json::to_vec(&forensics::BundleHeader {
            v: 1,
            device_id: self.id.clone(),
            command_id,
            created_at: unix_now() as i64,
            body_bytes: body.len() as u64,
            body_sha256: hex::encode(edgeward_core::sha256(body)),
        })
        .expect("json");
        let sig = self.sign(forensics::BUNDLE_CONTEXT, &header);
        forensics::assemble(&edgeward_proto::command::Signed::new(&header, &sig), body)
    }
}
