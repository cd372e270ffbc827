//! Crash-safe writes: the attacks on the old fixed-name temporary file (a planted or stale
//! world-readable temporary receiving a private key, two targets with the same stem sharing
//! one temporary) fail, secrets are 0600 from creation, nothing is visible before commit,
//! and a key that must not be replaced is not.

use std::{fs, io::Write, path::Path, sync::Arc};

use edgeward_fs::{read_bounded, sync_dir, write_atomic, write_new, Access, AtomicFile};

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[cfg(unix)]
#[test]
fn a_secret_is_0600_and_a_public_file_is_not_private() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("signing.key");
    write_atomic(&key, b"private key", Access::Private).unwrap();
    assert_eq!(mode(&key), 0o600);
    let cert = dir.path().join("signing.pem");
    write_atomic(&cert, b"certificate", Access::Public).unwrap();
    assert_eq!(mode(&cert) & 0o600, 0o600);
    assert_eq!(fs::read(&key).unwrap(), b"private key");
    assert_eq!(fs::read(&cert).unwrap(), b"certificate");
}

#[cfg(unix)]
#[test]
fn the_temporary_file_of_a_secret_is_0600_before_any_byte_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let file = AtomicFile::create(&dir.path().join("root.key"), Access::Private).unwrap();
    assert_eq!(mode(file.temp_path()), 0o600);
    assert_eq!(fs::metadata(file.temp_path()).unwrap().len(), 0);
}

#[cfg(unix)]
#[test]
fn a_stale_world_readable_temporary_file_never_receives_the_secret() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    // The fixed name the old writer used, and names shaped like the new writer's, planted
    // world-readable (as a stale file or an attacker's would be).
    let planted: Vec<_> = [
        "signing.tmp-edgeward",
        ".signing.key.tmp",
        ".signing.key.x.tmp",
    ]
    .iter()
    .map(|n| dir.path().join(n))
    .collect();
    for p in &planted {
        fs::write(p, b"").unwrap();
        fs::set_permissions(p, fs::Permissions::from_mode(0o666)).unwrap();
    }
    let key = dir.path().join("signing.key");
    write_atomic(&key, b"SECRET", Access::Private).unwrap();
    for p in &planted {
        assert_eq!(
            fs::read(p).unwrap(),
            b"",
            "{} received the secret",
            p.display()
        );
        assert_eq!(mode(p), 0o666);
    }
    assert_eq!(fs::read(&key).unwrap(), b"SECRET");
    assert_eq!(mode(&key), 0o600);
}

#[test]
fn two_targets_with_the_same_stem_never_share_a_temporary_file() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("signing.key");
    let pem = dir.path().join("signing.pem");
    let a = AtomicFile::create(&key, Access::Private).unwrap();
    let b = AtomicFile::create(&pem, Access::Public).unwrap();
    assert_ne!(a.temp_path(), b.temp_path());
    // Writing both at once, over and over: each file only ever holds its own content (with a
    // shared temporary file one write would land in the other's file).
    let dir = Arc::new(dir);
    let writers: Vec<_> = [("signing.key", b'k'), ("signing.pem", b'p')]
        .into_iter()
        .map(|(name, byte)| {
            let dir = Arc::clone(&dir);
            std::thread::spawn(move || {
                let path = dir.path().join(name);
                for i in 0..200usize {
                    let data = vec![byte; 1000 + i];
                    write_atomic(&path, &data, Access::Private).unwrap();
                    assert_eq!(fs::read(&path).unwrap(), data, "{name} after write {i}");
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
}

#[test]
fn nothing_is_visible_before_commit_and_an_abandoned_write_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("crl.pem");
    fs::write(&target, b"old").unwrap();
    let mut file = AtomicFile::create(&target, Access::Public).unwrap();
    file.write_all(b"new").unwrap();
    assert_eq!(fs::read(&target).unwrap(), b"old");
    drop(file);
    assert_eq!(fs::read(&target).unwrap(), b"old");
    let names: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["crl.pem"]);

    let mut file = AtomicFile::create(&target, Access::Public).unwrap();
    file.write_all(b"new").unwrap();
    file.commit().unwrap();
    assert_eq!(fs::read(&target).unwrap(), b"new");
}

#[test]
fn write_new_never_replaces_an_existing_file() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("master.key");
    write_new(&key, b"first", Access::Private).unwrap();
    let err = write_new(&key, b"second", Access::Private).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
    assert_eq!(fs::read(&key).unwrap(), b"first");
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn the_directory_is_synced_after_the_rename_and_its_failure_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    sync_dir(dir.path()).unwrap();
    let gone = dir.path().join("gone");
    assert_eq!(
        sync_dir(&gone).unwrap_err().kind(),
        std::io::ErrorKind::NotFound
    );
    // A target in a missing directory fails before anything is written.
    let err = write_atomic(&gone.join("state"), b"x", Access::Public).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
}

#[test]
fn a_path_that_names_no_file_is_refused() {
    let err = write_atomic(Path::new("/"), b"x", Access::Public).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert_eq!(err.to_string(), "/ names no file");
}

#[test]
fn reads_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("root.json");
    assert_eq!(read_bounded(&path, 4).unwrap(), None);
    fs::write(&path, b"12345").unwrap();
    assert_eq!(read_bounded(&path, 5).unwrap().unwrap(), b"12345");
    let err = read_bounded(&path, 4).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    assert_eq!(err.to_string(), "longer than 4 bytes");
}
