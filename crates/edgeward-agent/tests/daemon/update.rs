//! Updates end to end, through the server: the real server (in process, SQLite) serving a
//! TUF repository, agent daemons (soft secure elements) fetching metadata and targets
//! over the mTLS device API with their element-held keys, and the server's rollouts
//! deciding what each is offered. A 50 % rollout installs on the devices its buckets
//! choose and on no other (their periodic check and the signed `update` command both ask
//! the server); a chosen device whose updates an incident holds gets nothing; a release
//! whose health check fails is reverted on the device, the revert reaches the server with
//! its reason, and the stage halts itself, so the next device is offered nothing. The
//! one-shot `edgeward-agent update` asks the server the same way.

use std::path::{Path, PathBuf};
use std::process::Child;

use edgeward_update::{
    release::{Kind, ReleaseInfo},
    repo::{Expiry, Repository, RootKeys},
    tuf::{keys::Scheme, signer::SigningKey},
};
use serde_json::{json, Value};

use crate::common::*;

fn now() -> i64 {
    i64::try_from(edgeward_core::civil::unix_now()).expect("time")
}

fn key() -> SigningKey {
    SigningKey::generate(Scheme::Ed25519).expect("key").0
}

/// A TUF repository with its online keys.
struct Repo {
    dir: tempfile::TempDir,
    targets: SigningKey,
    snapshot: SigningKey,
    timestamp: SigningKey,
}

impl Repo {
    fn new() -> Repo {
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
            now(),
        )
        .expect("create");
        Repo {
            dir,
            targets,
            snapshot,
            timestamp,
        }
    }

    /// Publishes `bytes` as the app target `path` of release `version` for `cam` devices.
    fn publish(&self, path: &str, bytes: &[u8], version: &str) {
        let mut repo = Repository::open(self.dir.path(), Expiry::default(), now()).expect("open");
        let src = self.dir.path().join(".incoming");
        std::fs::write(&src, bytes).expect("write");
        let info = ReleaseInfo {
            version: version.into(),
            kind: Kind::App,
            hardware: vec!["cam".into()],
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

    fn root(&self) -> PathBuf {
        self.dir.path().join("metadata/1.root.json")
    }
}

/// An agent daemon updating one app component from the server; its health check fails
/// while the file `unhealthy` exists.
struct Device {
    id: String,
    dir: tempfile::TempDir,
    config: PathBuf,
    child: Child,
}

const TARGET: &str = "app/cam.bin";

impl Device {
    async fn start(server: &Server, id: &str, root: &Path) -> Device {
        let token = server.register(id).await;
        let dir = tempfile::tempdir().expect("tempdir");
        let unhealthy = dir.path().join("unhealthy");
        let extra = format!(
            "[update]\nhardware = \"cam\"\ntrusted_root = \"{}\"\ncheck_interval_secs = 3600\n\
             [[update.component]]\nname = \"app\"\ntarget = \"{TARGET}\"\ndirectory = \"{}\"\n\
             health_command = [\"sh\", \"-c\", \"test ! -e {}\"]\nhealth_deadline_secs = 60\n",
            root.display(),
            dir.path().join("app").display(),
            unhealthy.display(),
        );
        let config = agent_config(server, dir.path(), &token, &extra);
        let log = std::fs::File::create(dir.path().join("agent.log")).expect("log");
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_edgeward-agent"))
            .args(["run", "--config"])
            .arg(&config)
            .env("RUST_LOG", "info")
            .stderr(log)
            .spawn()
            .expect("agent starts");
        Device {
            id: id.to_string(),
            dir,
            config,
            child,
        }
    }

    /// The bytes of the app version in use, if any.
    fn app(&self) -> Option<Vec<u8>> {
        std::fs::read(self.dir.path().join("app/current/cam.bin")).ok()
    }

    fn fail_health_checks(&self) {
        std::fs::write(self.dir.path().join("unhealthy"), b"").expect("marker");
    }

    /// Runs the signed `update` command; the component's result (status, version…).
    async fn update(&self, server: &Server) -> Value {
        let (cid, _) = server.command(&self.id, "update", json!({})).await;
        let outcome = server.answered(&self.id, cid).await;
        let payload: Value =
            serde_json::from_str(outcome["result"].as_str().expect("result")).expect("payload");
        let components = &payload["output"]["components"];
        assert_eq!(components.as_array().map(Vec::len), Some(1), "{payload}");
        components[0].clone()
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(self.dir.path().join("agent.log"));
            eprintln!("agent {}:\n{}", self.id, log.unwrap_or_default());
        }
    }
}

async fn status(server: &Server, version: &str) -> Value {
    let (st, v) = server
        .admin_call(
            reqwest::Method::GET,
            &format!("/v1/admin/releases/{version}/status"),
            Value::Null,
        )
        .await;
    assert_eq!(st, 200, "{v}");
    v
}

/// Device ids until `n` fall in the first half of `version`'s buckets and `n` in the other.
fn split(version: &str, n: usize) -> (Vec<String>, Vec<String>) {
    let (mut chosen, mut other) = (Vec::new(), Vec::new());
    while chosen.len() < n || other.len() < n {
        let id = device_id("upd");
        if edgeward_server::rollout::bucket(version, &id) < 5000 {
            if chosen.len() < n {
                chosen.push(id);
            }
        } else if other.len() < n {
            other.push(id);
        }
    }
    (chosen, other)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollouts_decide_what_devices_install_through_the_server() {
    let repo = Repo::new();
    let v2 = b"app 2.0.0\n".repeat(5000);
    repo.publish(TARGET, &v2, "2.0.0");
    let repo_dir = repo.dir.path().to_path_buf();
    let server = Server::start_with(|c| c.update_repo = Some(repo_dir)).await;
    let (st, v) = server
        .admin_call(
            reqwest::Method::POST,
            "/v1/admin/releases/2.0.0/rollout",
            json!({"percent": 50, "min_sample": 1}),
        )
        .await;
    assert_eq!(st, 200, "{v}");

    // Three devices in the chosen half (the third held by an incident), two outside it.
    let (chosen, other) = split("2.0.0", 3);
    edgeward_server::incidents::store::hold_updates(&server.running.app.db, &chosen[2], 1, 0)
        .await
        .expect("hold");
    let mut devices = Vec::new();
    for id in chosen.iter().chain(&other) {
        devices.push(Device::start(&server, id, &repo.root()).await);
    }
    let (a, b, held) = (&devices[0], &devices[1], &devices[2]);

    // Each asks the server (its periodic check ran at start; the command asks again):
    // the chosen run 2.0.0 (installed and confirmed by whichever pass came first; after
    // that the server offers them nothing more), the others nothing.
    for d in [a, b] {
        let r = d.update(&server).await;
        assert!(
            ["confirmed", "not_offered"].contains(&r["status"].as_str().unwrap_or("")),
            "{}: {r}",
            d.id
        );
        assert_eq!(r["version"], "2.0.0", "{r}");
        assert_eq!(d.app().as_deref(), Some(&v2[..]), "{}", d.id);
    }
    let r = held.update(&server).await;
    assert_eq!(r["status"], "held", "{r}");
    assert_eq!(r.get("version"), None, "{r}");
    assert_eq!(held.app(), None);
    for d in &devices[3..] {
        let r = d.update(&server).await;
        assert_eq!(r["status"], "not_offered", "{}: {r}", d.id);
        assert_eq!(r.get("version"), None, "{}: {r}", d.id);
        assert_eq!(d.app(), None, "{}", d.id);
    }
    // The one-shot `edgeward-agent update` asks the server the same way (daemon stopped).
    let d = &mut devices[3];
    let _ = d.child.kill();
    let _ = d.child.wait();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_edgeward-agent"))
        .args(["update", "--json", "--config"])
        .arg(&d.config)
        .output()
        .expect("edgeward-agent update");
    let results: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    assert_eq!(out.status.code(), Some(0), "{results}");
    assert_eq!(results[0]["status"], "not_offered", "{results}");
    let (a, b) = (&devices[0], &devices[1]);
    let s = status(&server, "2.0.0").await;
    assert_eq!(
        s["stage_counts"],
        json!({"offered": 2, "downloaded": 2, "installed": 2, "confirmed": 2, "reverted": 0}),
        "{s}"
    );
    assert_eq!(s["halted"], false);

    // 3.0.0 fails its health check on a: reverted there (2.0.0 in use again), the revert
    // and its reason reach the server, and the stage halts itself before b takes it.
    let v3 = b"app 3.0.0\n".repeat(5000);
    repo.publish(TARGET, &v3, "3.0.0");
    let (st, v) = server
        .admin_call(
            reqwest::Method::POST,
            "/v1/admin/releases/3.0.0/rollout",
            json!({"devices": [a.id, b.id], "min_sample": 1}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    a.fail_health_checks();
    let r = a.update(&server).await;
    assert_eq!(
        (
            r["status"].as_str(),
            r["version"].as_str(),
            r["reason"].as_str()
        ),
        (Some("reverted"), Some("3.0.0"), Some("health_check_failed")),
        "{r}"
    );
    assert_eq!(a.app().as_deref(), Some(&v2[..]));
    let s = status(&server, "3.0.0").await;
    assert_eq!(s["halted"], true, "{s}");
    assert_eq!(s["stage_counts"]["reverted"], 1, "{s}");
    assert_eq!(
        s["revert_reasons"],
        json!({"health_check_failed": 1}),
        "{s}"
    );
    let r = b.update(&server).await;
    assert_eq!(
        r["status"], "not_offered",
        "a halted stage offers nothing: {r}"
    );
    assert_eq!(b.app().as_deref(), Some(&v2[..]));
    drop(devices);
    server.stop().await;
}
