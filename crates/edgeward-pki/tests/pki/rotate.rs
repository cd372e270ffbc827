//! Signing-key rotation: the current key and certificate move to `previous/` (the key still
//! 0600), a new certificate is issued under the root, expired previous keys are pruned at
//! the next rotation (and not a second before they expire), and every refusal leaves the
//! directory exactly as it was.

use std::{fs, os::unix::fs::PermissionsExt};

use edgeward_core::keys::{KeyAlgorithm, PublicKey};
use edgeward_pki::{files, hierarchy::BACKDATE, PkiError, RootKey};
use time::Duration;

use crate::common::{init, listing, now, openssl, refused, root, serial_of, snapshot, PASS};

#[test]
fn rotation_moves_the_current_key_aside_and_issues_the_next_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t0 = now();
    let h = init(dir.path(), 90, t0);
    let old_serial = serial_of(&h.path(files::SIGNING_CERT));
    let old_key = fs::read(h.path(files::SIGNING_KEY)).expect("key");
    let old_cert = fs::read(h.path(files::SIGNING_CERT)).expect("cert");

    let new = h
        .rotate(&root(), 30, KeyAlgorithm::Ed25519, t0)
        .expect("rotate");

    assert_eq!(new.role, "signing");
    assert_eq!(new.serial, serial_of(&h.path(files::SIGNING_CERT)));
    assert_ne!(new.serial, old_serial);
    assert_eq!(
        new.not_after,
        edgeward_core::civil::format_unix((t0 - BACKDATE + Duration::days(30)).unix_timestamp())
    );
    let der = edgeward_core::pem::parse_labelled(
        &fs::read(h.path(files::SIGNING_CERT)).expect("cert"),
        "CERTIFICATE",
    )
    .expect("pem");
    assert!(matches!(
        PublicKey::from_certificate_der(&der[0]).expect("key"),
        PublicKey::Ed25519(_)
    ));

    let previous = h.path(files::PREVIOUS);
    assert_eq!(
        listing(&previous),
        [
            format!("signing-{old_serial}.key"),
            format!("signing-{old_serial}.pem")
        ]
    );
    let kept_key = previous.join(format!("signing-{old_serial}.key"));
    assert_eq!(fs::read(&kept_key).expect("kept key"), old_key);
    assert_eq!(
        fs::metadata(&kept_key)
            .expect("kept key")
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    assert_eq!(
        fs::read(previous.join(format!("signing-{old_serial}.pem"))).expect("kept cert"),
        old_cert
    );
    let roles: Vec<(String, String)> = h
        .show(t0)
        .expect("show")
        .into_iter()
        .map(|c| (c.role, c.serial))
        .collect();
    assert!(
        roles.contains(&("previous-signing".into(), old_serial)),
        "{roles:?}"
    );
    assert!(roles.contains(&("signing".into(), new.serial)), "{roles:?}");

    // The chain certificate-mode bundles carry is the new certificate, then the root.
    let chain = fs::read_to_string(h.path(files::SIGNING_CHAIN)).expect("chain");
    let cert = fs::read_to_string(h.path(files::SIGNING_CERT)).expect("cert");
    let root_pem = fs::read_to_string(h.path(files::ROOT_CERT)).expect("root");
    assert_eq!(chain, format!("{cert}{root_pem}"));
    let (ok, text) = openssl(
        dir.path(),
        &["verify", "-CAfile", files::ROOT_CERT, files::SIGNING_CERT],
    );
    assert!(ok, "{text}");
    assert_eq!(text.trim(), format!("{}: OK", files::SIGNING_CERT));
}

#[test]
fn a_previous_key_is_pruned_at_the_first_rotation_after_it_expired() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t0 = now();
    let h = init(dir.path(), 1, t0);
    let s1 = serial_of(&h.path(files::SIGNING_CERT));
    let s1_expiry = t0 - BACKDATE + Duration::days(1);
    let s2 = h
        .rotate(&root(), 90, KeyAlgorithm::P256, t0)
        .expect("rotate")
        .serial;
    let previous = h.path(files::PREVIOUS);
    assert_eq!(
        listing(&previous),
        [format!("signing-{s1}.key"), format!("signing-{s1}.pem")]
    );

    // At the instant it expires the old certificate still verifies what it signed: kept.
    let s3 = h
        .rotate(&root(), 90, KeyAlgorithm::P256, s1_expiry)
        .expect("rotate at expiry")
        .serial;
    let mut expected = vec![
        format!("signing-{s1}.key"),
        format!("signing-{s1}.pem"),
        format!("signing-{s2}.key"),
        format!("signing-{s2}.pem"),
    ];
    expected.sort();
    assert_eq!(listing(&previous), expected);

    // One second later it is pruned, key and certificate; the unexpired ones stay.
    h.rotate(
        &root(),
        90,
        KeyAlgorithm::P256,
        s1_expiry + Duration::seconds(1),
    )
    .expect("rotate after expiry");
    expected = vec![
        format!("signing-{s2}.key"),
        format!("signing-{s2}.pem"),
        format!("signing-{s3}.key"),
        format!("signing-{s3}.pem"),
    ];
    expected.sort();
    assert_eq!(listing(&previous), expected);
}

#[test]
fn each_refused_rotation_says_why_and_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let other = tempfile::tempdir().expect("tempdir");
    let t0 = now();
    let h = init(dir.path(), 90, t0);
    init(other.path(), 90, t0);
    let before = snapshot(dir.path());

    for days in [0, 91, -1] {
        assert_eq!(
            refused(h.rotate(&root(), days, KeyAlgorithm::P256, t0)),
            format!("a signing certificate may be valid for 1 to 90 days, not {days}")
        );
    }
    let wrong = RootKey {
        path: None,
        passphrase: b"not the passphrase",
    };
    assert_eq!(
        refused(h.rotate(&wrong, 30, KeyAlgorithm::P256, t0)),
        format!(
            "{}: wrong passphrase for the root key",
            h.path(files::ROOT_KEY).display()
        )
    );
    // Another hierarchy's root key decrypts, but is not the key of this root certificate.
    let foreign_key = other.path().join(files::ROOT_KEY);
    let foreign = RootKey {
        path: Some(&foreign_key),
        passphrase: PASS,
    };
    assert_eq!(
        refused(h.rotate(&foreign, 30, KeyAlgorithm::P256, t0)),
        format!(
            "{} is not the key of {}",
            foreign_key.display(),
            h.path(files::ROOT_CERT).display()
        )
    );
    assert_eq!(snapshot(dir.path()), before);

    // With the root key taken offline and no --root-key, the read fails and names the file.
    let offline = dir.path().join("offline.key");
    fs::rename(h.path(files::ROOT_KEY), &offline).expect("move root key");
    let before = snapshot(dir.path());
    match h.rotate(&root(), 30, KeyAlgorithm::P256, t0) {
        Err(PkiError::Io { path, source }) => {
            assert_eq!(path, h.path(files::ROOT_KEY));
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("expected the missing root key, got {other:?}"),
    }
    assert_eq!(snapshot(dir.path()), before);
    let offline_root = RootKey {
        path: Some(&offline),
        passphrase: PASS,
    };
    h.rotate(&offline_root, 30, KeyAlgorithm::P256, t0)
        .expect("the offline key signs");
}
