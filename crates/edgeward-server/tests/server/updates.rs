//! The update repository over the device API: our TUF client (`edgeward-update`) refreshes
//! and downloads through mutual TLS and the device gate, resumes with range requests, and
//! the same repository directory works from a plain static HTTP server (Python's
//! `http.server`). Traversal out of the repository, and updates to a quarantined device,
//! are refused.

use std::{path::Path, sync::Arc};

use edgeward_update::{
    release::{Kind, ReleaseInfo},
    repo::{Expiry, Repository, RootKeys},
    tuf::{
        keys::Scheme,
        signer::SigningKey,
        store::MetadataStore,
        transport::{HttpTransport, Limits, TlsConfig, Transport},
        ClientConfig, Updater,
    },
};

use crate::common::*;

/// A repository directory with its keys.
pub(crate) struct TestRepo {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) targets: SigningKey,
    pub(crate) snapshot: SigningKey,
    pub(crate) timestamp: SigningKey,
}

fn key() -> SigningKey {
    SigningKey::generate(Scheme::Ed25519).expect("key").0
}

impl TestRepo {
    /// A new repository (keys made here).
    pub(crate) fn new() -> Self {
        let dir = tempfile::tempdir().expect("tmp");
        let root = key();
        let (targets, snapshot, timestamp) = (key(), key(), key());
        Repository::create(
            dir.path(),
            &RootKeys {
                root: vec![&root],
                targets: &targets,
                snapshot: &snapshot,
                timestamp: &timestamp,
            },
            Expiry::default(),
            unix_now() as i64,
        )
        .expect("create");
        TestRepo {
            dir,
            targets,
            snapshot,
            timestamp,
        }
    }

    /// Publishes `bytes` as target `path` of release `version` for hardware `class`.
    pub(crate) fn publish(&self, path: &str, bytes: &[u8], version: &str, class: &str) {
        let mut repo =
            Repository::open(self.dir.path(), Expiry::default(), unix_now() as i64).expect("open");
        let src = self.dir.path().join(".incoming");
        std::fs::write(&src, bytes).expect("write");
        let info = ReleaseInfo {
            version: version.into(),
            kind: Kind::Firmware,
            hardware: vec![class.into()],
            security_counter: 1,
        };
        repo.add_target("targets", path, &src, Some(info.to_custom()))
            .expect("add");
        std::fs::remove_file(&src).expect("rm");
        repo.publish(
            &[("targets", &[&self.targets])],
            &self.snapshot,
            &self.timestamp,
        )
        .expect("publish");
    }
}

/// Deterministic test bytes.
pub(crate) fn image(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[1] ^ seed)
        .collect()
}

/// What a device needs to run the TUF client against the device API.
#[derive(Clone)]
pub(crate) struct DeviceTls {
    pub(crate) id: String,
    pub(crate) secret: String,
    pub(crate) identity_pem: Vec<u8>,
    pub(crate) server_ca: Vec<u8>,
}

impl DeviceTls {
    pub(crate) fn of(s: &Server, e: &Enrolled) -> Self {
        DeviceTls {
            id: e.id.clone(),
            secret: e.secret.clone(),
            identity_pem: format!("{}{}", e.cert_pem, e.key_pem).into_bytes(),
            server_ca: std::fs::read(s.server_ca()).expect("ca"),
        }
    }

    /// An mTLS transport that sends a fresh v1 device token with every request.
    pub(crate) fn transport(&self) -> HttpTransport {
        let (id, secret) = (self.id.clone(), self.secret.clone());
        HttpTransport::with_tls(
            Limits::default(),
            &TlsConfig {
                roots_pem: self.server_ca.clone(),
                identity_pem: Some(self.identity_pem.clone()),
            },
        )
        .expect("transport")
        .with_authorization(Arc::new(move |_url: &str| {
            format!(
                "Device {}",
                edgeward_proto::token::create_v1(&id, &secret, unix_now())
            )
        }))
    }
}

/// Refreshes a client that trusts `repo`'s first root from `metadata_url` and downloads
/// `target` from `targets_url`; the downloaded bytes.
pub(crate) fn client_download(
    repo: &Path,
    transport: &dyn Transport,
    metadata_url: &str,
    targets_url: &str,
    target: &str,
) -> Result<Vec<u8>, edgeward_update::tuf::TufError> {
    let dir = tempfile::tempdir().expect("tmp");
    let meta = dir.path().join("meta");
    std::fs::create_dir(&meta).expect("mkdir");
    let store = MetadataStore::new(&meta);
    store
        .write(
            "root",
            &std::fs::read(repo.join("metadata/1.root.json")).expect("root"),
        )
        .expect("trust root");
    let mut updater = Updater::new(
        store,
        metadata_url,
        transport,
        ClientConfig::default(),
        unix_now() as i64,
    )?;
    updater.refresh()?;
    let found = updater.find_target(target)?;
    let path = updater.download_target(&found, targets_url, dir.path())?;
    Ok(std::fs::read(path).expect("read"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_updates_through_the_gate_and_resumes_with_ranges() {
    let repo = TestRepo::new();
    let fw = image(300_000, 7);
    repo.publish("fw/cam.img", &fw, "1.0.0", "cam");
    let dir = repo.dir.path().to_path_buf();
    let s = start_with(Backend::Sqlite, |c| c.update_repo = Some(dir.clone()), None).await;
    let e = s.enroll(&device_id("upd"), "cam").await;
    let tls = DeviceTls::of(&s, &e);
    let (meta_url, targets_url) = (
        s.device_url("/v1/device/update/metadata/"),
        s.device_url("/v1/device/update/targets/"),
    );
    let got = {
        let (tls, dir, meta_url, targets_url) = (
            tls.clone(),
            dir.clone(),
            meta_url.clone(),
            targets_url.clone(),
        );
        tokio::task::spawn_blocking(move || {
            let t = tls.transport();
            let got = client_download(&dir, &t, &meta_url, &targets_url, "fw/cam.img")
                .expect("update over the device API");
            // A resumed download: the client asks for a range and gets exactly it.
            let sha = hex::encode(edgeward_core::sha256(&got));
            let url = format!("{targets_url}fw/{sha}.cam.img");
            let mut part = Vec::new();
            t.fetch_range(&url, 123_456, 50_000, &mut |c| {
                part.extend_from_slice(c);
                Ok(())
            })
            .expect("range");
            assert_eq!(part, got[123_456..173_456]);
            let mut tail = Vec::new();
            t.fetch(&url, 299_000, 1000, &mut |c| {
                tail.extend_from_slice(c);
                Ok(())
            })
            .expect("resume from an offset");
            assert_eq!(tail, got[299_000..]);
            got
        })
        .await
        .expect("join")
    };
    assert_eq!(got, fw);

    // Raw HTTP: a suffix range, an unsatisfiable one, no token, and a quarantined device.
    let c = s.device_client(&e);
    let sha = hex::encode(edgeward_core::sha256(&fw));
    let url = s.device_url(&format!("/v1/device/update/targets/fw/{sha}.cam.img"));
    let r = c
        .get(&url)
        .header("authorization", v1(&e, unix_now()))
        .header("range", "bytes=-10")
        .send()
        .await
        .expect("call");
    assert_eq!(r.status(), 206);
    assert_eq!(r.headers()["content-range"], "bytes 299990-299999/300000");
    assert_eq!(r.bytes().await.expect("body")[..], fw[299_990..]);
    let r = c
        .get(&url)
        .header("authorization", v1(&e, unix_now()))
        .header("range", "bytes=300000-")
        .send()
        .await
        .expect("call");
    assert_eq!(r.status(), 416);
    assert_eq!(r.headers()["content-range"], "bytes */300000");
    let r = c.get(&url).send().await.expect("call");
    assert_eq!(r.status(), 401);

    let (status, v) = s
        .admin_post(
            &format!("/v1/admin/devices/{}/quarantine", e.id),
            serde_json::json!({}),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    for path in [
        "/v1/device/update/metadata/timestamp.json".to_string(),
        format!("/v1/device/update/targets/fw/{sha}.cam.img"),
    ] {
        let r = c
            .get(s.device_url(&path))
            .header("authorization", v1(&e, unix_now()))
            .send()
            .await
            .expect("call");
        assert_eq!(r.status(), 403, "{path}");
        let v: serde_json::Value = r.json().await.expect("json");
        assert_eq!(v["error"], "quarantined", "{path}");
    }
    let refused = tokio::task::spawn_blocking(move || {
        client_download(
            &dir,
            &tls.transport(),
            &meta_url,
            &targets_url,
            "fw/cam.img",
        )
        .expect_err("a quarantined device gets no update")
        .to_string()
    })
    .await
    .expect("join");
    assert!(refused.contains("timestamp.json"), "{refused}");
    s.running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_outside_the_repository_is_served() {
    let repo = TestRepo::new();
    repo.publish("app.bin", b"application", "1", "cam");
    // A symbolic link inside the repository that points out of it.
    std::os::unix::fs::symlink("/etc/hostname", repo.dir.path().join("targets/escape"))
        .expect("symlink");
    std::fs::create_dir(repo.dir.path().join("targets/x")).expect("mkdir");
    let dir = repo.dir.path().to_path_buf();
    let s = start_with(Backend::Sqlite, |c| c.update_repo = Some(dir), None).await;
    let e = s.enroll(&device_id("trav"), "cam").await;
    let c = s.device_client(&e);
    for (path, status) in [
        ("/v1/device/update/targets/..%2F..%2Fadmin-token", 400),
        ("/v1/device/update/targets/..%2Fmetadata%2F1.root.json", 400),
        ("/v1/device/update/targets/a/..%2F..%2Fx", 400),
        ("/v1/device/update/targets/%2Fetc%2Fpasswd", 400),
        ("/v1/device/update/targets/a%5C..%5Cb", 400),
        ("/v1/device/update/metadata/..%2Fadmin-token", 400),
        ("/v1/device/update/metadata/root.txt", 400),
        ("/v1/device/update/targets/escape", 404),
        ("/v1/device/update/targets/no-such-file", 404),
        ("/v1/device/update/metadata/9.root.json", 404),
        // A directory is not a file.
        ("/v1/device/update/targets/x", 404),
    ] {
        let r = c
            .get(s.device_url(path))
            .header("authorization", v1(&e, unix_now()))
            .send()
            .await
            .expect("call");
        assert_eq!(r.status(), status, "{path}");
    }
    let r = c
        .get(s.device_url("/v1/device/update/metadata/1.root.json"))
        .header("authorization", v1(&e, unix_now()))
        .send()
        .await
        .expect("call");
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.bytes().await.expect("body")[..],
        std::fs::read(repo.dir.path().join("metadata/1.root.json")).expect("root")[..]
    );
    s.running.stop().await;
}

/// A server with no `update_repo` says so rather than serving anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_repository_configured_is_not_found() {
    let s = start(Backend::Sqlite).await;
    let e = s.enroll(&device_id("norepo"), "cam").await;
    let r = s
        .device_client(&e)
        .get(s.device_url("/v1/device/update/metadata/timestamp.json"))
        .header("authorization", v1(&e, unix_now()))
        .send()
        .await
        .expect("call");
    assert_eq!(r.status(), 404);
    let v: serde_json::Value = r.json().await.expect("json");
    assert!(
        v["message"]
            .as_str()
            .expect("message")
            .contains("update_repo"),
        "{v}"
    );
    s.running.stop().await;
}

/// The same directory from Python's static `http.server`: the client needs nothing from
/// edgeward-server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_repository_works_from_a_static_http_server() {
    let repo = TestRepo::new();
    let fw = image(100_000, 3);
    repo.publish("fw/cam.img", &fw, "1.0.0", "cam");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port();
    let mut python = std::process::Command::new("python3")
        .args([
            "-m",
            "http.server",
            "--bind",
            "127.0.0.1",
            &port.to_string(),
            "--directory",
        ])
        .arg(repo.dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("python3 -m http.server (python3 is needed)");
    let dir = repo.dir.path().to_path_buf();
    let got = tokio::task::spawn_blocking(move || {
        let base = format!("http://127.0.0.1:{port}");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let t = HttpTransport::new(Limits::default()).expect("transport");
        client_download(
            &dir,
            &t,
            &format!("{base}/metadata/"),
            &format!("{base}/targets/"),
            "fw/cam.img",
        )
    })
    .await
    .expect("join");
    python.kill().expect("kill");
    python.wait().expect("wait");
    assert_eq!(got.expect("update from http.server"), fw);
}

/// Target downloads are charged by the KiB to the device's `update_limit` (at least
/// `request_kib` a request), not to its request limit: a whole target larger than the
/// burst is refused outright, ranges pass until the budget is spent, then 429 until it
/// refills; metadata still counts against the request limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn target_downloads_are_counted_by_the_kib() {
    use edgeward_server::{
        clock::{Clock, ManualClock},
        config::{LimitConfig, UpdateLimitConfig},
    };
    let repo = TestRepo::new();
    let fw = image(300_000, 3);
    repo.publish("fw/cam.img", &fw, "1.0.0", "cam");
    let dir = repo.dir.path().to_path_buf();
    let clock = ManualClock::at(unix_now() * 1_000_000_000);
    let s = start_with(
        Backend::Sqlite,
        |c| {
            c.update_repo = Some(dir);
            c.device_limit = LimitConfig {
                per_second: 1,
                burst: 2,
            };
            c.update_limit = UpdateLimitConfig {
                kib_per_second: 16,
                burst_kib: 256,
                request_kib: 16,
            };
        },
        Some(Arc::new(clock.clone())),
    )
    .await;
    let e = s.enroll(&device_id("kib"), "cam").await;
    let c = s.device_client(&e);
    let sha = hex::encode(edgeward_core::sha256(&fw));
    let url = s.device_url(&format!("/v1/device/update/targets/fw/{sha}.cam.img"));
    let get = |range: Option<&str>| {
        let mut r = c
            .get(&url)
            .header("authorization", v1(&e, clock.now_ns() / 1_000_000_000));
        if let Some(range) = range {
            r = r.header("range", range.to_string());
        }
        r.send()
    };
    // 293 KiB at once is more than the burst: never, however long the device waits.
    let r = get(None).await.expect("call");
    assert_eq!(r.status(), 403);
    let v: serde_json::Value = r.json().await.expect("json");
    assert_eq!(v["error"], "update_burst", "{v}");
    // 200 KiB, then three 1-byte ranges at 16 KiB each: 248 of 256 KiB, all beyond the
    // request limit's burst of 2.
    let r = get(Some("bytes=0-204799")).await.expect("call");
    assert_eq!(r.status(), 206);
    assert_eq!(r.bytes().await.expect("body")[..], fw[..204_800]);
    for i in 0..3 {
        assert_eq!(
            get(Some("bytes=5-5")).await.expect("call").status(),
            206,
            "{i}"
        );
    }
    let r = get(Some("bytes=5-5")).await.expect("call");
    assert_eq!(r.status(), 429, "8 KiB left, a request costs 16");
    assert_eq!(r.headers()["retry-after"], "1");
    clock.advance(1_000_000_000);
    assert_eq!(get(Some("bytes=5-5")).await.expect("call").status(), 206);
    assert_eq!(get(Some("bytes=5-5")).await.expect("call").status(), 429);
    // Metadata is still counted by the request.
    let meta = s.device_url("/v1/device/update/metadata/timestamp.json");
    let statuses = {
        let mut v = Vec::new();
        for _ in 0..3 {
            let r = c
                .get(&meta)
                .header("authorization", v1(&e, clock.now_ns() / 1_000_000_000))
                .send()
                .await
                .expect("call");
            v.push(r.status().as_u16());
        }
        v
    };
    assert_eq!(statuses, [200, 200, 429]);
    s.running.stop().await;
}
