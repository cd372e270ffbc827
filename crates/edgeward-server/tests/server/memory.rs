//! Memory before authentication, measured on the real server process (its resident set from
//! /proc, not a timing): 400 unauthenticated enrollments declaring 2 MiB bodies and sending
//! all but the last byte, a few more sent chunked, and 60 forensic uploads of 16 MiB with a
//! valid client certificate but a forged token, all held open together. Nothing that cannot
//! be let through is read, so the server's memory stays within a stated bound.

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use crate::common::*;
use rustls::pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer, ServerName};
use serde_json::json;
use tokio::{io::AsyncWriteExt, net::TcpStream, sync::watch};

/// Attacking connections: 400 + 20 enrollments, 60 forensic uploads.
const ATTACKERS: usize = 480;
/// How much the server's resident set may grow under the whole attack.
const BOUND_MIB: u64 = 96;

/// The server binary, running on a data directory of its own; killed when dropped.
struct Process {
    child: Child,
    device: SocketAddr,
    admin: SocketAddr,
    dir: tempfile::TempDir,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Process {
    fn spawn() -> Process {
        let dir = tempfile::tempdir().expect("tmp");
        let config = dir.path().join("server.toml");
        // Caps and limits per address are lifted, so only the body defences are measured.
        std::fs::write(
            &config,
            format!(
                "data_dir = {:?}\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n\
                 enroll_listen = \"127.0.0.1:0\"\n\
                 ip_limit = {{ per_second = 100000, burst = 100000 }}\n\
                 [connections]\nmax_connections_per_address = 2000\n",
                dir.path().join("data")
            ),
        )
        .expect("config");
        let mut child = Command::new(env!("CARGO_BIN_EXE_edgeward-server"))
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("server binary");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(at) = line.find("https://") {
                    let addr = line[at + 8..].split_whitespace().next().unwrap_or("");
                    let which = if line.contains("device API") {
                        Some(true)
                    } else if line.contains("admin API") {
                        Some(false)
                    } else {
                        None
                    };
                    if let Some(is_device) = which {
                        let _ = tx.send((is_device, addr.to_string()));
                    }
                }
            }
        });
        let (mut device, mut admin) = (None, None);
        while device.is_none() || admin.is_none() {
            let (is_device, addr) = rx
                .recv_timeout(Duration::from_secs(60))
                .expect("the server logs its listeners");
            let addr: SocketAddr = addr.parse().expect("listener address");
            if is_device {
                device = Some(addr);
            } else {
                admin = Some(addr);
            }
        }
        Process {
            child,
            device: device.expect("device"),
            admin: admin.expect("admin"),
            dir,
        }
    }

    fn data(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join("data").join(name)
    }

    /// The server's resident set, in KiB.
    fn rss_kib(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).expect("status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("VmRSS")
    }
}

fn tls_config(ca: &std::path::Path, identity: Option<&Enrolled>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).expect("ca") {
        roots.add(c.expect("cert")).expect("add");
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots);
    Arc::new(match identity {
        Some(e) => {
            let chain = CertificateDer::pem_slice_iter(e.cert_pem.as_bytes())
                .map(|c| c.expect("cert"))
                .collect();
            let key = PrivateKeyDer::from_pem_slice(e.key_pem.as_bytes()).expect("key");
            builder
                .with_client_auth_cert(chain, key)
                .expect("client auth")
        }
        None => builder.with_no_client_auth(),
    })
}

/// Sends `head`, then `body_len` bytes in 64 KiB writes (stopping quietly if the server
/// closes), then holds the connection until `release`.
async fn hold(
    config: Arc<rustls::ClientConfig>,
    to: SocketAddr,
    head: String,
    body_len: usize,
    chunked: bool,
    sent: Arc<AtomicUsize>,
    mut release: watch::Receiver<bool>,
) {
    let tcp = TcpStream::connect(to).await.expect("connect");
    let Ok(mut tls) = tokio_rustls::TlsConnector::from(config)
        .connect(ServerName::try_from("localhost").expect("name"), tcp)
        .await
    else {
        sent.fetch_add(1, Ordering::AcqRel);
        return;
    };
    let chunk = vec![b'x'; 64 * 1024];
    let mut open = tls.write_all(head.as_bytes()).await.is_ok();
    let mut left = body_len;
    while open && left > 0 {
        let n = left.min(chunk.len());
        open = if chunked {
            let frame = [format!("{n:x}\r\n").as_bytes(), &chunk[..n], b"\r\n"].concat();
            tls.write_all(&frame).await.is_ok()
        } else {
            tls.write_all(&chunk[..n]).await.is_ok()
        };
        left -= n;
    }
    let _ = tls.flush().await;
    sent.fetch_add(1, Ordering::AcqRel);
    let _ = release.changed().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_bodies_do_not_hold_the_servers_memory() {
    let p = Process::spawn();
    let ca = p.data("server-ca.pem");
    let admin = client(&ca, None);
    let admin_key = std::fs::read_to_string(p.data("admin-token")).expect("admin-token");
    let id = device_id("mem");
    let r = admin
        .post(format!("https://{}/v1/admin/devices", p.admin))
        .bearer_auth(admin_key.trim())
        .json(&json!({ "id": id, "hardware_class": "cam" }))
        .send()
        .await
        .expect("register");
    let token = r.json::<serde_json::Value>().await.expect("json")["enrollment_token"]
        .as_str()
        .expect("token")
        .to_string();
    let (status, (_, e)) =
        enroll_at(&admin, &format!("https://{}/v1/enroll", p.admin), &token).await;
    assert_eq!(status, 200);
    let before = p.rss_kib();

    let (release, held) = watch::channel(false);
    let sent = Arc::new(AtomicUsize::new(0));
    let mut attackers = tokio::task::JoinSet::new();
    let anonymous = tls_config(&ca, None);
    let two_mib = 2 * 1024 * 1024;
    for i in 0..420 {
        let chunked = i >= 400;
        let head = if chunked {
            "POST /v1/enroll HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n".to_string()
        } else {
            format!("POST /v1/enroll HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {two_mib}\r\n\r\n")
        };
        attackers.spawn(hold(
            anonymous.clone(),
            p.admin,
            head,
            two_mib - 1,
            chunked,
            sent.clone(),
            held.clone(),
        ));
    }
    let device = tls_config(&ca, Some(&e));
    let forged = format!("{}:{}:{}", e.id, unix_now(), "0".repeat(64));
    let sixteen_mib = 16 * 1024 * 1024;
    for _ in 0..60 {
        let head = format!("POST /v1/device/forensics HTTP/1.1\r\nhost: x\r\nauthorization: Device {forged}\r\ncontent-length: {sixteen_mib}\r\n\r\n");
        attackers.spawn(hold(
            device.clone(),
            p.device,
            head,
            sixteen_mib - 1,
            false,
            sent.clone(),
            held.clone(),
        ));
    }
    // Until every attacker has sent what the server would take from it (all are then still
    // connected, or were refused), the server's resident set is sampled.
    let mut peak = 0;
    tokio::time::timeout(Duration::from_secs(180), async {
        while sent.load(Ordering::Acquire) < ATTACKERS {
            peak = peak.max(p.rss_kib());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the attackers finished sending");
    tokio::time::sleep(Duration::from_millis(500)).await;
    peak = peak.max(p.rss_kib());
    let _ = release.send(true);
    let grown_mib = peak.saturating_sub(before) / 1024;
    eprintln!(
        "server resident set: {} MiB idle, {} MiB peak under the attack",
        before / 1024,
        peak / 1024
    );
    assert!(
        grown_mib < BOUND_MIB,
        "the server's resident set grew by {grown_mib} MiB (from {} MiB), bound {BOUND_MIB} MiB",
        before / 1024
    );
    // Nothing of the forged uploads reached the disk.
    let kept = std::fs::read_dir(p.data("forensics"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(kept, 0, "forged forensic uploads were stored");
}
