//! The hierarchy's files on disk: private keys are 0600 even when a stale world-readable
//! temporary file of the old fixed name (`signing.tmp-edgeward`, shared by `signing.key` and
//! `signing.pem`) is lying in the directory, and that file never receives a key.

#![cfg(unix)]

use std::{fs, os::unix::fs::PermissionsExt, path::Path};

use edgeward_core::keys::KeyAlgorithm;
use edgeward_pki::Hierarchy;

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn a_stale_world_readable_temporary_file_never_receives_a_private_key() {
    let dir = tempfile::tempdir().unwrap();
    let planted: Vec<_> = [
        "root.tmp-edgeward",
        "signing.tmp-edgeward",
        "device-ca.tmp-edgeward",
    ]
    .iter()
    .map(|n| dir.path().join(n))
    .collect();
    for p in &planted {
        fs::write(p, b"").unwrap();
        fs::set_permissions(p, fs::Permissions::from_mode(0o666)).unwrap();
    }
    Hierarchy::init(
        dir.path(),
        "Store Test",
        b"correct horse battery",
        90,
        KeyAlgorithm::P256,
        time::OffsetDateTime::now_utc(),
    )
    .unwrap();
    for p in &planted {
        assert_eq!(fs::read(p).unwrap(), b"", "{} received a key", p.display());
    }
    for key in ["root.key", "signing.key", "device-ca.key"] {
        assert_eq!(mode(&dir.path().join(key)), 0o600, "{key}");
    }
    for cert in [
        "root.pem",
        "signing.pem",
        "signing-chain.pem",
        "device-ca.pem",
        "crl.pem",
    ] {
        assert_eq!(mode(&dir.path().join(cert)) & 0o600, 0o600, "{cert}");
        assert!(
            fs::metadata(dir.path().join(cert)).unwrap().len() > 0,
            "{cert}"
        );
    }
    let leftovers: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
