//! The attacks TUF exists to stop, each against the client through a real HTTP server,
//! each refused with the exact error, and the trusted metadata and the already installed
//! target left as they were.

use std::path::PathBuf;
use std::time::Duration;

use edgeward_update::tuf::store::MetadataStore;
use edgeward_update::tuf::transport::{AnyTransport, FetchError, Limits};
use edgeward_update::tuf::{ClientConfig, TufError, Updater};
use serde_json::json;
use tempfile::TempDir;

use crate::sim::{expires_in, new_key, Behaviour, SimRepo};

/// A device's TUF state: trusted metadata and installed targets.
struct Device {
    dir: TempDir,
    transport: AnyTransport,
}

fn device(repo: &SimRepo) -> Device {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("metadata")).expect("mkdir");
    std::fs::create_dir(dir.path().join("targets")).expect("mkdir");
    MetadataStore::new(dir.path().join("metadata"))
        .write("root", &repo.initial_root())
        .expect("init");
    let limits = Limits {
        stall_timeout: Duration::from_secs(1),
        grace: Duration::from_secs(1),
        min_rate: 1000,
    };
    Device {
        dir,
        transport: AnyTransport::new(limits, None).expect("transport"),
    }
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

impl Device {
    fn updater(&self, repo: &SimRepo) -> Result<Updater<'_>, TufError> {
        Updater::new(
            MetadataStore::new(self.dir.path().join("metadata")),
            &repo.metadata_url(),
            &self.transport,
            ClientConfig::default(),
            now(),
        )
    }

    fn refresh(&self, repo: &SimRepo) -> Result<(), TufError> {
        self.updater(repo)?.refresh()
    }

    fn download(&self, repo: &SimRepo, path: &str) -> Result<PathBuf, TufError> {
        let mut u = self.updater(repo)?;
        u.refresh()?;
        let found = u.find_target(path)?;
        u.download_target(
            &found,
            &repo.targets_url(),
            &self.dir.path().join("targets"),
        )
    }

    fn version(&self, role: &str) -> Option<u64> {
        let bytes = std::fs::read(
            self.dir
                .path()
                .join("metadata")
                .join(format!("{role}.json")),
        )
        .ok()?;
        let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
        v["signed"]["version"].as_u64()
    }

    fn installed(&self, path: &str) -> Option<Vec<u8>> {
        std::fs::read(
            self.dir
                .path()
                .join("targets")
                .join(edgeward_update::tuf::store::quote(path)),
        )
        .ok()
    }
}

/// A repository with `app.bin` v1 published and installed on a device.
fn installed_v1() -> (SimRepo, Device) {
    let mut repo = SimRepo::new();
    repo.add_target("targets", "app.bin", b"app version 1", None);
    repo.publish(&["targets", "snapshot", "timestamp"]);
    let dev = device(&repo);
    dev.download(&repo, "app.bin").expect("v1 installs");
    assert_eq!(
        dev.installed("app.bin").as_deref(),
        Some(&b"app version 1"[..])
    );
    (repo, dev)
}

/// [`installed_v1`], then `app.bin` version 2 published and served with `behaviour`.
fn offering_v2(behaviour: Behaviour) -> (SimRepo, Device) {
    let (mut repo, dev) = installed_v1();
    repo.add_target("targets", "app.bin", b"app version 2", None);
    repo.publish(&["targets", "snapshot", "timestamp"]);
    repo.behave(&repo.target_file_path("targets", "app.bin"), behaviour);
    (repo, dev)
}

#[test]
fn rollback_of_timestamp_is_refused() {
    let (mut repo, dev) = installed_v1();
    repo.publish(&["timestamp"]);
    dev.refresh(&repo).expect("timestamp v3");
    repo.signed.get_mut("timestamp").unwrap()["version"] = json!(1);
    repo.sign_and_serve("timestamp");
    let err = dev.refresh(&repo).unwrap_err();
    assert_eq!(
        err.to_string(),
        "rollback refused: timestamp version 1 is lower than the trusted version 3"
    );
    assert_eq!(dev.version("timestamp"), Some(3));
}

#[test]
fn rollback_of_snapshot_is_refused() {
    let (mut repo, dev) = installed_v1();
    // The attacker replays snapshot v2 under a new, validly signed timestamp v4 (the
    // timestamp key is online, so assume it is stolen); the device has snapshot v3.
    repo.publish(&["snapshot", "timestamp"]);
    dev.refresh(&repo).expect("snapshot v3");
    repo.signed.get_mut("snapshot").unwrap()["version"] = json!(2);
    repo.sign_and_serve("snapshot");
    repo.publish(&["timestamp"]);
    let err = dev.refresh(&repo).unwrap_err();
    assert_eq!(
        err.to_string(),
        "rollback refused: snapshot (in timestamp) version 2 is lower than the trusted version 3"
    );
    assert_eq!(dev.version("snapshot"), Some(3));
}

#[test]
fn rollback_of_targets_is_refused_and_the_installed_target_kept() {
    let (mut repo, dev) = installed_v1();
    // The device is at targets v2 with app.bin version 1; an attacker with the online
    // snapshot and timestamp keys lists targets v1 again.
    repo.signed.get_mut("targets").unwrap()["version"] = json!(1);
    repo.sign_and_serve("targets");
    repo.publish(&["snapshot", "timestamp"]);
    let err = dev.download(&repo, "app.bin").unwrap_err();
    assert_eq!(
        err.to_string(),
        "rollback refused: targets.json (in snapshot) version 1 is lower than the trusted version 2"
    );
    assert_eq!(dev.version("targets"), Some(2));
    assert_eq!(
        dev.installed("app.bin").as_deref(),
        Some(&b"app version 1"[..])
    );
}

#[test]
fn freeze_with_an_expired_timestamp_is_refused() {
    let (mut repo, dev) = installed_v1();
    repo.signed.get_mut("timestamp").unwrap()["expires"] = json!(expires_in(-1));
    repo.publish(&["timestamp"]);
    let err = dev.refresh(&repo).unwrap_err();
    assert!(
        matches!(&err, TufError::Expired { role, .. } if role == "timestamp"),
        "{err}"
    );
    assert!(
        err.to_string()
            .starts_with("timestamp metadata expired at "),
        "{err}"
    );
    assert_eq!(dev.version("timestamp"), Some(2));
}

#[test]
fn expired_targets_metadata_is_refused() {
    let (mut repo, dev) = installed_v1();
    repo.add_target("targets", "app.bin", b"app version 2", None);
    repo.signed.get_mut("targets").unwrap()["expires"] = json!(expires_in(-1));
    repo.publish(&["targets", "snapshot", "timestamp"]);
    let err = dev.download(&repo, "app.bin").unwrap_err();
    assert!(
        matches!(&err, TufError::Expired { role, .. } if role == "targets"),
        "{err}"
    );
    assert_eq!(
        dev.installed("app.bin").as_deref(),
        Some(&b"app version 1"[..])
    );
}

#[test]
fn mix_and_match_snapshot_is_refused() {
    let (mut repo, dev) = installed_v1();
    // Timestamp v3 pins snapshot v3 by hash; the server answers with another, validly
    // signed snapshot v3 (say, one listing an older targets).
    repo.publish(&["snapshot"]);
    let genuine = repo.file("metadata/3.snapshot.json").unwrap();
    let digest = hex::encode(edgeward_update::tuf::hash::sha256(&genuine));
    repo.signed.get_mut("timestamp").unwrap()["meta"]["snapshot.json"] =
        json!({"version": 3, "length": genuine.len(), "hashes": {"sha256": digest}});
    repo.publish(&["timestamp"]);
    repo.signed.get_mut("snapshot").unwrap()["expires"] = json!(expires_in(29));
    repo.sign_and_serve("snapshot");
    let err = dev.refresh(&repo).unwrap_err();
    assert!(
        matches!(&err, TufError::Hash { what, .. } if what == "snapshot metadata"),
        "{err}"
    );
    assert_eq!(dev.version("snapshot"), Some(2));
}

#[test]
fn snapshot_of_another_version_is_refused() {
    let (mut repo, dev) = installed_v1();
    // 3.snapshot.json holds a snapshot that says it is version 2.
    let old = repo.file("metadata/2.snapshot.json").unwrap();
    repo.publish(&["snapshot", "timestamp"]);
    repo.serve_file("metadata/3.snapshot.json", old);
    let err = dev.refresh(&repo).unwrap_err();
    assert_eq!(
        err.to_string(),
        "snapshot metadata is version 2, but timestamp says version 3"
    );
}

#[test]
fn endless_target_is_cut_at_its_signed_length() {
    let (repo, dev) = offering_v2(Behaviour::Endless);
    let err = dev.download(&repo, "app.bin").unwrap_err();
    assert!(
        matches!(
            &err,
            TufError::Fetch(FetchError::TooLarge { limit: 13, .. })
        ),
        "{err}"
    );
    assert_eq!(
        dev.installed("app.bin").as_deref(),
        Some(&b"app version 1"[..])
    );
}

#[test]
fn endless_timestamp_is_cut_at_the_cap() {
    let (repo, dev) = installed_v1();
    repo.behave("metadata/timestamp.json", Behaviour::Endless);
    let err = dev.refresh(&repo).unwrap_err();
    assert!(
        matches!(
            &err,
            TufError::Fetch(FetchError::TooLarge { limit: 16384, .. })
        ),
        "{err}"
    );
}

#[test]
fn stalled_download_is_abandoned() {
    let (repo, dev) = offering_v2(Behaviour::Stall);
    let err = dev.download(&repo, "app.bin").unwrap_err();
    assert!(
        matches!(
            &err,
            TufError::Fetch(FetchError::Stalled {
                secs: 1,
                bytes: 0,
                ..
            })
        ),
        "{err}"
    );
    assert_eq!(
        dev.installed("app.bin").as_deref(),
        Some(&b"app version 1"[..])
    );
}

#[test]
fn trickled_download_is_abandoned() {
    let (repo, dev) = offering_v2(Behaviour::Trickle);
    let err = dev.download(&repo, "app.bin").unwrap_err();
    assert!(
        matches!(
            &err,
            TufError::Fetch(FetchError::TooSlow { min_rate: 1000, .. })
        ),
        "{err}"
    );
    assert_eq!(
        dev.installed("app.bin").as_deref(),
        Some(&b"app version 1"[..])
    );
}

#[test]
fn substituted_target_bytes_are_refused() {
    let (mut repo, dev) = installed_v1();
    repo.add_target("targets", "app.bin", b"app version 2", None);
    repo.publish(&["targets", "snapshot", "timestamp"]);
    repo.serve_file(
        &repo.target_file_path("targets", "app.bin"),
        b"evil version 2".to_vec(),
    );
    let err = dev.download(&repo, "app.bin").unwrap_err();
    assert!(
        matches!(
            &err,
            TufError::Fetch(FetchError::TooLarge { limit: 13, .. })
        ),
        "{err}"
    );
    repo.serve_file(
        &repo.target_file_path("targets", "app.bin"),
        b"app version 3".to_vec(),
    );
    let err = dev.download(&repo, "app.bin").unwrap_err();
    assert!(
        err.to_string().starts_with("target app.bin sha256 digest "),
        "{err}"
    );
    assert_eq!(
        dev.installed("app.bin").as_deref(),
        Some(&b"app version 1"[..])
    );
}

#[test]
fn targets_signed_by_an_unknown_key_are_refused() {
    let (mut repo, dev) = installed_v1();
    repo.add_target("targets", "app.bin", b"evil", None);
    repo.signers.insert("targets".into(), vec![new_key()]);
    repo.publish(&["targets", "snapshot", "timestamp"]);
    let err = dev.download(&repo, "app.bin").unwrap_err();
    assert_eq!(
        err.to_string(),
        "targets metadata has 0 valid signature(s), 1 required by its delegator's keys"
    );
    assert_eq!(dev.version("targets"), Some(2));
    assert_eq!(
        dev.installed("app.bin").as_deref(),
        Some(&b"app version 1"[..])
    );
}

#[test]
fn a_revoked_targets_key_signs_nothing_after_the_root_rotation() {
    let (mut repo, dev) = installed_v1();
    // Revocation is a root rotation: root v2 names a new targets key.
    let old_targets_key = repo.signers.remove("targets").unwrap().remove(0);
    repo.set_role_keys("targets", vec![new_key()], 1);
    repo.publish(&["root", "targets", "snapshot", "timestamp"]);
    dev.refresh(&repo)
        .expect("root v2 and the re-signed targets");
    assert_eq!(dev.version("root"), Some(2));
    // Whoever kept the revoked key signs a new targets version.
    repo.signers.insert("targets".into(), vec![old_targets_key]);
    repo.add_target("targets", "app.bin", b"evil", None);
    repo.publish(&["targets", "snapshot", "timestamp"]);
    let err = dev.download(&repo, "app.bin").unwrap_err();
    assert_eq!(
        err.to_string(),
        "targets metadata has 0 valid signature(s), 1 required by its delegator's keys"
    );
    assert_eq!(
        dev.installed("app.bin").as_deref(),
        Some(&b"app version 1"[..])
    );
}

#[test]
fn root_rotation_needs_the_old_and_the_new_keys() {
    let (mut repo, dev) = installed_v1();
    let old_root = repo.signers.remove("root").unwrap().remove(0);
    repo.set_role_keys("root", vec![new_key()], 1);
    // Signed by the new key only: the old root never endorsed it.
    repo.publish(&["root"]);
    let err = dev.refresh(&repo).unwrap_err();
    assert_eq!(
        err.to_string(),
        "root metadata has 0 valid signature(s), 1 required by the trusted root's keys"
    );
    assert_eq!(dev.version("root"), Some(1));
    // Signed by both: accepted.
    repo.sign_and_serve_with("root", &[&old_root]);
    dev.refresh(&repo)
        .expect("rotation signed by old and new keys");
    assert_eq!(dev.version("root"), Some(2));
}

#[test]
fn delegated_key_cannot_sign_outside_its_paths() {
    let (mut repo, dev) = installed_v1();
    repo.delegate("targets", "models", &["models/*"], false);
    repo.add_target("models", "models/detector.onnx", b"weights", None);
    // The model team's key is compromised: it also lists firmware.
    repo.add_target("models", "firmware/fw.bin", b"evil firmware", None);
    repo.publish(&["models", "targets", "snapshot", "timestamp"]);
    dev.download(&repo, "models/detector.onnx")
        .expect("in scope");
    let err = dev.download(&repo, "firmware/fw.bin").unwrap_err();
    assert_eq!(
        err.to_string(),
        "no trusted metadata describes target \"firmware/fw.bin\""
    );
    assert!(dev.installed("firmware/fw.bin").is_none());
}
