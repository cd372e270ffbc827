//! The conformance suite on the soft backend, plus soft-only properties (file modes,
//! crash safety, encryption at rest).

use crate::common::Fixture;
use edgeward_se::{KeyAlgorithm, SeError};

fn soft() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let uri = format!("soft:{}", dir.path().join("se").display());
    Fixture {
        se: edgeward_se::open(&uri).unwrap(),
        ed25519: true,
        guards: vec![Box::new(dir)],
    }
}

conformance_suite!(soft);

#[test]
fn files_are_private_and_keys_encrypted_at_rest() {
    use std::os::unix::fs::PermissionsExt;
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("se");
    let se = edgeward_se::soft::SoftElement::open(&dir).unwrap();
    let public = se_gen(&se);
    let edgeward_core::keys::PublicKey::P256(_) = public else {
        panic!()
    };
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("keys")), 0o700);
    assert_eq!(mode(&dir.join("master.key")), 0o600);
    let key_file = dir.join("keys/device.key");
    assert_eq!(mode(&key_file), 0o600);
    let bytes = std::fs::read(&key_file).unwrap();
    assert_eq!(
        bytes.len(),
        edgeward_se::internal::soft_format::KEY_FILE_LEN
    );
    // The key file is useless without the master key it is encrypted under.
    std::fs::write(dir.join("master.key"), [7u8; 32]).unwrap();
    let err = edgeward_se::SecureElement::sign(&se, "device", b"m").unwrap_err();
    assert!(err.to_string().contains("does not decrypt"), "{err}");
    assert!(std::fs::read_dir(dir.join("keys")).unwrap().all(|e| !e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .starts_with(".tmp")));
}

#[test]
fn a_key_file_moved_to_another_slot_is_refused() {
    use edgeward_se::SecureElement;
    let dir = tempfile::tempdir().unwrap();
    let se = edgeward_se::soft::SoftElement::open(dir.path()).unwrap();
    se_gen(&se);
    std::fs::copy(
        dir.path().join("keys/device.key"),
        dir.path().join("keys/stolen.key"),
    )
    .unwrap();
    let err = se.sign("stolen", b"m").unwrap_err();
    assert!(matches!(err, SeError::Backend { .. }), "{err}");
    std::fs::write(dir.path().join("keys/short.key"), b"EWSK").unwrap();
    let err = se.sign("short", b"m").unwrap_err();
    assert!(
        matches!(&err, SeError::Backend { backend: "soft", message }
            if message.contains("key file is 4 bytes (a soft key file is exactly ")),
        "{err}"
    );
}

#[test]
fn a_second_handle_sees_the_same_state() {
    let dir = tempfile::tempdir().unwrap();
    let uri = format!("soft:{}", dir.path().display());
    let a = edgeward_se::open(&uri).unwrap();
    let public = a.generate_key("device", KeyAlgorithm::Ed25519).unwrap();
    a.increment_counter("boot").unwrap();
    let blob = a.seal(b"s").unwrap();
    drop(a);
    let b = edgeward_se::open(&uri).unwrap();
    assert_eq!(b.public_key("device").unwrap(), public);
    assert_eq!(b.counter("boot").unwrap(), 1);
    assert_eq!(b.unseal(&blob).unwrap().as_slice(), b"s");
}

#[test]
fn open_rejects_bad_uris_with_the_reason() {
    let err = edgeward_se::open("pkcs11:/nonexistent.so?token=t")
        .err()
        .unwrap();
    assert!(err.to_string().contains("pin-env"), "{err}");
    let err = edgeward_se::open("floppy:/dev/fd0").err().unwrap();
    assert!(
        matches!(&err, SeError::InvalidArgument(m)
            if m == "unknown element backend `floppy` (expected soft, pkcs11 or tpm)"),
        "{err}"
    );
}

fn se_gen(se: &edgeward_se::soft::SoftElement) -> edgeward_core::keys::PublicKey {
    use edgeward_se::SecureElement;
    se.generate_key("device", KeyAlgorithm::P256).unwrap()
}

#[test]
fn mtls_client_auth_signs_in_the_element() {
    let dir = tempfile::tempdir().unwrap();
    let se: std::sync::Arc<dyn edgeward_se::SecureElement> =
        edgeward_se::open(&format!("soft:{}", dir.path().display()))
            .unwrap()
            .into();
    se.generate_key("tls", KeyAlgorithm::P256).unwrap();
    crate::common::tls::mtls_handshake(std::sync::Arc::clone(&se), "tls");
    se.generate_key("tls-ed", KeyAlgorithm::Ed25519).unwrap();
    crate::common::tls::mtls_handshake(se, "tls-ed");
}
