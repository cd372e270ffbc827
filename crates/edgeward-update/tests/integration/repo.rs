//! Repositories written by `edgeward_update::repo`, read back by our own client (and by
//! python-tuf's ngclient as an independent peer): targets with Edgeward's custom fields,
//! path-scoped delegations, and root rotation signed by the old and the new keys.

use std::path::Path;

use edgeward_update::delta::{self, ChunkIndex, Params};
use edgeward_update::release::{Kind, ReleaseInfo};
use edgeward_update::repo::{Expiry, RepoError, Repository, RootKeys};
use edgeward_update::tuf::signer::SigningKey;
use edgeward_update::tuf::store::MetadataStore;
use edgeward_update::tuf::transport::{FileTransport, Limits};
use edgeward_update::tuf::{ClientConfig, TufError, Updater};
use serde_json::json;

use crate::delta::noise;
use crate::sim::new_key;

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

struct Keys {
    root: SigningKey,
    targets: SigningKey,
    snapshot: SigningKey,
    timestamp: SigningKey,
}

fn keys() -> Keys {
    Keys {
        root: new_key(),
        targets: new_key(),
        snapshot: new_key(),
        timestamp: new_key(),
    }
}

fn create(dir: &Path, k: &Keys) -> Repository {
    Repository::create(
        dir,
        &RootKeys {
            root: vec![&k.root],
            targets: &k.targets,
            snapshot: &k.snapshot,
            timestamp: &k.timestamp,
        },
        Expiry::default(),
        now(),
    )
    .expect("create")
}

fn custom(data: &[u8], version: &str) -> serde_json::Value {
    let mut c = ReleaseInfo {
        version: version.into(),
        kind: Kind::Firmware,
        hardware: vec!["rpi4".into()],
        security_counter: 3,
    }
    .to_custom();
    c["edgeward"]["chunks"] = ChunkIndex::build(data, Params::default())
        .expect("index")
        .to_json();
    c
}

/// A device trusting version 1 of the repository's root, fetching from `file://`.
struct Client {
    dir: tempfile::TempDir,
    transport: FileTransport,
}

impl Client {
    fn new(repo: &Path) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = std::fs::read(repo.join("metadata/1.root.json")).expect("root");
        std::fs::create_dir(dir.path().join("meta")).expect("mkdir");
        std::fs::create_dir(dir.path().join("targets")).expect("mkdir");
        MetadataStore::new(dir.path().join("meta"))
            .write("root", &root)
            .expect("store");
        Client {
            dir,
            transport: FileTransport::new(Limits::default()),
        }
    }

    fn download(&self, repo: &Path, path: &str) -> Result<(Vec<u8>, Updater<'_>), TufError> {
        let mut u = Updater::new(
            MetadataStore::new(self.dir.path().join("meta")),
            &format!("file://{}/metadata/", repo.display()),
            &self.transport,
            ClientConfig::default(),
            now(),
        )?;
        u.refresh()?;
        let found = u.find_target(path)?;
        let file = u.download_target(
            &found,
            &format!("file://{}/targets/", repo.display()),
            &self.dir.path().join("targets"),
        )?;
        Ok((std::fs::read(file).expect("read"), u))
    }
}

#[test]
fn a_published_target_verifies_with_its_release_fields_and_chunk_index() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo_dir = tmp.path().join("repo");
    let k = keys();
    let mut repo = create(&repo_dir, &k);
    let data = noise(300_000, 11);
    let src = tmp.path().join("fw.img");
    std::fs::write(&src, &data).expect("write");
    repo.add_target("targets", "fw/fw.img", &src, Some(custom(&data, "1.0.0")))
        .expect("add");
    repo.publish(&[("targets", &[&k.targets])], &k.snapshot, &k.timestamp)
        .expect("publish");

    let client = Client::new(&repo_dir);
    let (got, mut u) = client.download(&repo_dir, "fw/fw.img").expect("download");
    assert_eq!(got, data);
    let found = u.find_target("fw/fw.img").expect("found");
    let info = ReleaseInfo::from_target("fw/fw.img", &found.file).expect("fields");
    assert_eq!(info.version, "1.0.0");
    assert_eq!(info.check_device("fw/fw.img", "rpi4", 3), Ok(()));
    let index = delta::target_index(&found.file)
        .expect("valid")
        .expect("index");
    assert_eq!(index.total_length(), data.len() as u64);

    // A second release: new versions of targets, snapshot and timestamp, still verifying.
    let data2 = noise(200_000, 12);
    std::fs::write(&src, &data2).expect("write");
    let mut repo = Repository::open(&repo_dir, Expiry::default(), now()).expect("open");
    repo.add_target("targets", "fw/fw.img", &src, Some(custom(&data2, "1.1.0")))
        .expect("add");
    repo.publish(&[("targets", &[&k.targets])], &k.snapshot, &k.timestamp)
        .expect("publish");
    let (got, u) = client.download(&repo_dir, "fw/fw.img").expect("download");
    assert_eq!(got, data2);
    assert_eq!(u.trusted().timestamp().expect("ts").meta.common.version, 3);
}

#[test]
fn a_delegated_team_signs_only_inside_its_paths() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo_dir = tmp.path().join("repo");
    let k = keys();
    let mut repo = create(&repo_dir, &k);
    let models = new_key();
    repo.delegate("models", &["models/*"], &[&models], 1)
        .expect("delegate");
    let src = tmp.path().join("m.bin");
    std::fs::write(&src, b"weights").expect("write");
    repo.add_target("models", "models/m.bin", &src, None)
        .expect("inside");
    let err = repo
        .add_target("models", "fw/evil.img", &src, None)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "role models is not delegated target path \"fw/evil.img\" (its paths: [\"models/*\"])"
    );
    repo.publish(
        &[("targets", &[&k.targets]), ("models", &[&models])],
        &k.snapshot,
        &k.timestamp,
    )
    .expect("publish");
    let client = Client::new(&repo_dir);
    let (got, _) = client
        .download(&repo_dir, "models/m.bin")
        .expect("download");
    assert_eq!(got, b"weights");
}

#[test]
fn root_rotation_is_signed_by_old_and_new_keys_and_revokes_the_old_signing_key() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo_dir = tmp.path().join("repo");
    let k = keys();
    let mut repo = create(&repo_dir, &k);
    let client = Client::new(&repo_dir);
    let src = tmp.path().join("a.bin");
    std::fs::write(&src, b"one").expect("write");
    repo.add_target("targets", "a.bin", &src, None)
        .expect("add");
    repo.publish(&[("targets", &[&k.targets])], &k.snapshot, &k.timestamp)
        .expect("publish");
    client
        .download(&repo_dir, "a.bin")
        .expect("before rotation");

    let new_root = new_key();
    let new_targets = new_key();
    let v = repo
        .rotate(
            &[&k.root],
            &[("root", vec![&new_root]), ("targets", vec![&new_targets])],
            &new_targets,
            &k.snapshot,
            &k.timestamp,
        )
        .expect("rotate");
    assert_eq!(v, 2);
    let (got, u) = client.download(&repo_dir, "a.bin").expect("after rotation");
    assert_eq!(got, b"one");
    assert_eq!(u.trusted().root().meta.common.version, 2);
    let root2: serde_json::Value = serde_json::from_slice(
        &std::fs::read(repo_dir.join("metadata/2.root.json")).expect("read"),
    )
    .expect("json");
    let signers: Vec<&str> = root2["signatures"]
        .as_array()
        .expect("sigs")
        .iter()
        .map(|s| s["keyid"].as_str().expect("id"))
        .collect();
    assert_eq!(signers, vec![k.root.keyid(), new_root.keyid()]);

    // The old signing key can no longer publish.
    let mut repo = Repository::open(&repo_dir, Expiry::default(), now()).expect("open");
    repo.add_target("targets", "b.bin", &src, None)
        .expect("add");
    let err = repo
        .publish(&[("targets", &[&k.targets])], &k.snapshot, &k.timestamp)
        .unwrap_err();
    assert!(matches!(err, RepoError::WrongKey { ref role, .. } if role == "targets"));
    assert_eq!(
        err.to_string(),
        format!(
            "key {} is not a key of role targets in the current root",
            k.targets.keyid()
        )
    );
}

/// python-tuf's ngclient, the reference client, reads the repository we wrote.
#[test]
fn python_tuf_ngclient_reads_our_repository() {
    let python = Path::new("/var/cache/edgeward/venv/bin/python");
    let probe = std::process::Command::new(python)
        .args(["-c", "import tuf.ngclient"])
        .output();
    match probe {
        Ok(o) if o.status.success() => {}
        _ => {
            eprintln!("python-tuf interop: NOT RUN (no python-tuf in /var/cache/edgeward/venv; scripts/test.sh makes it)");
            return;
        }
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo_dir = tmp.path().join("repo");
    let k = keys();
    let mut repo = create(&repo_dir, &k);
    let models = new_key();
    repo.delegate("models", &["models/*"], &[&models], 1)
        .expect("delegate");
    let data = noise(100_000, 13);
    let src = tmp.path().join("src.bin");
    std::fs::write(&src, &data).expect("write");
    repo.add_target("targets", "fw/fw.img", &src, Some(custom(&data, "2.0.0")))
        .expect("add");
    repo.add_target("models", "models/m.bin", &src, None)
        .expect("add");
    repo.publish(
        &[("targets", &[&k.targets]), ("models", &[&models])],
        &k.snapshot,
        &k.timestamp,
    )
    .expect("publish");
    repo.rotate(
        &[&k.root],
        &[("root", vec![&new_key()])],
        &k.targets,
        &k.snapshot,
        &k.timestamp,
    )
    .expect("rotate");
    let script = r#"
import http.server, os, sys, threading, functools, json
from tuf.ngclient import Updater
repo, work = sys.argv[1], sys.argv[2]
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=repo)
handler.log_message = lambda *a: None
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
threading.Thread(target=srv.serve_forever, daemon=True).start()
base = "http://127.0.0.1:%d/" % srv.server_address[1]
os.makedirs(work + "/meta"); os.makedirs(work + "/targets")
root = open(repo + "/metadata/1.root.json", "rb").read()
u = Updater(work + "/meta", base + "metadata/", work + "/targets", base + "targets/", bootstrap=root)
u.refresh()
out = {"root": json.load(open(work + "/meta/root.json"))["signed"]["version"]}
for path in ["fw/fw.img", "models/m.bin"]:
    info = u.get_targetinfo(path)
    out[path] = {"length": info.length,
                 "custom": info.custom.get("edgeward", {}).get("version") if info.custom else None}
    u.download_target(info)
print(json.dumps(out, sort_keys=True))
srv.shutdown()
"#;
    let work = tmp.path().join("py");
    let out = std::process::Command::new(python)
        .arg("-c")
        .arg(script)
        .arg(&repo_dir)
        .arg(&work)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "ngclient failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        v,
        json!({"root": 2, "fw/fw.img": {"length": 100_000, "custom": "2.0.0"},
               "models/m.bin": {"length": 100_000, "custom": null}})
    );
    assert_eq!(
        std::fs::read(work.join("targets/fw%2Ffw.img")).expect("downloaded"),
        data
    );
}
