//! `pki init` never replaces a key: any output of an earlier ceremony stops it (exit 2, the
//! files untouched), `--force` moves the old files aside instead of deleting them, and a path
//! that is not a directory is named as such.

use std::fs;

use crate::common::*;

/// Every file and directory an earlier ceremony may have left, one at a time.
const OUTPUTS: [&str; 9] = [
    "root.key",
    "root.pem",
    "signing.key",
    "signing.pem",
    "signing-chain.pem",
    "device-ca.key",
    "device-ca.pem",
    "crl.pem",
    "previous",
];

#[test]
fn init_refuses_a_directory_holding_any_output() {
    for name in OUTPUTS {
        let t = tempfile::tempdir().expect("tmp");
        let dir = t.path().join("pki");
        fs::create_dir(&dir).unwrap();
        fs::write(dir.join(name), b"an old key\n").unwrap();
        let err = fails(edgeward().args(["pki", "init", "--dir"]).arg(&dir), 2);
        assert_eq!(
            err.trim_end(),
            format!(
                "edgeward: {} already holds {name}; refusing to overwrite it (--force moves the old files aside)",
                dir.display()
            ),
            "{name}"
        );
        assert_eq!(fs::read(dir.join(name)).unwrap(), b"an old key\n", "{name}");
        assert_eq!(
            fs::read_dir(&dir).unwrap().count(),
            1,
            "{name}: init wrote files"
        );
    }
}

#[test]
fn init_force_moves_the_old_hierarchy_aside() {
    let t = tempfile::tempdir().expect("tmp");
    let dir = t.path().join("pki");
    pki(&dir);
    let old_key = fs::read(dir.join("signing.key")).unwrap();
    let old_root = fs::read(dir.join("root.key")).unwrap();

    let err = fails(edgeward().args(["pki", "init", "--dir"]).arg(&dir), 2);
    assert!(
        err.contains("already holds root.key, root.pem, signing.key, signing.pem, signing-chain.pem, device-ca.key, device-ca.pem, crl.pem;"),
        "{err}"
    );

    let out = run(edgeward()
        .args(["pki", "init", "--force", "--dir"])
        .arg(&dir));
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 8, "{stderr}");
    // Each old file is kept under NAME.old-<UTC time>, byte for byte.
    let aside = |name: &str| {
        let prefix = format!("{name}.old-");
        let found: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|f| f.starts_with(&prefix))
            .collect();
        assert_eq!(found.len(), 1, "{name}: {found:?}");
        let stamp = &found[0][prefix.len()..];
        assert_eq!(stamp.len(), "20261205T045100Z".len(), "{stamp}");
        assert!(stderr.contains(&format!(
            "moved {} aside to {}",
            dir.join(name).display(),
            dir.join(&found[0]).display()
        )));
        dir.join(&found[0])
    };
    assert_eq!(fs::read(aside("signing.key")).unwrap(), old_key);
    assert_eq!(fs::read(aside("root.key")).unwrap(), old_root);
    assert_ne!(fs::read(dir.join("signing.key")).unwrap(), old_key);
    assert_ne!(fs::read(dir.join("root.key")).unwrap(), old_root);
    // The new hierarchy is whole.
    ok(edgeward().args(["pki", "show", "--dir"]).arg(&dir));
}

#[test]
fn init_names_a_path_that_is_not_a_directory() {
    let t = tempfile::tempdir().expect("tmp");
    let file = t.path().join("pki");
    fs::write(&file, b"not a directory").unwrap();
    for dir in [file.clone(), file.join("sub")] {
        let err = fails(edgeward().args(["pki", "init", "--dir"]).arg(&dir), 2);
        assert_eq!(
            err.trim_end(),
            format!("edgeward: {} is not a directory", file.display())
        );
    }
    assert_eq!(fs::read(&file).unwrap(), b"not a directory");
}
