//! The one behavioural suite every backend must pass. A backend's test file builds a
//! [`Fixture`] factory and expands [`conformance_suite!`] with it; each behaviour becomes
//! its own `#[test]`.

#![allow(dead_code)]

pub(crate) mod tls;

use edgeward_core::{keys::PublicKey, raw_signature};
use edgeward_se::{KeyAlgorithm, SeError, SecureElement};
use sha2::{Digest, Sha256};

/// An element under test plus whatever keeps it alive (temp dirs, simulator processes).
pub(crate) struct Fixture {
    /// The element.
    pub(crate) se: Box<dyn SecureElement>,
    /// Whether the backend must support Ed25519.
    pub(crate) ed25519: bool,
    /// Dropped after the element (fields drop in declaration order).
    pub(crate) guards: Vec<Box<dyn std::any::Any>>,
}

/// Expands to one `#[test]` per behaviour, each on a fresh element from `$make`.
#[macro_export]
macro_rules! conformance_suite {
    ($make:expr) => {
        #[test]
        fn p256_keygen_sign_verifies() {
            $crate::common::p256_keygen_sign_verifies(&$make());
        }
        #[test]
        fn ed25519_keygen_sign_verifies() {
            $crate::common::ed25519_keygen_sign_verifies(&$make());
        }
        #[test]
        fn sign_digest_verifies() {
            $crate::common::sign_digest_verifies(&$make());
        }
        #[test]
        fn ecdh_agrees_with_software_peer() {
            $crate::common::ecdh_agrees_with_software_peer(&$make());
        }
        #[test]
        fn random_differs() {
            $crate::common::random_differs(&$make());
        }
        #[test]
        fn counters_only_rise() {
            $crate::common::counters_only_rise(&$make());
        }
        #[test]
        fn time_floor_never_moves_back() {
            $crate::common::time_floor_never_moves_back(&$make());
        }
        #[test]
        fn seal_roundtrip_and_rejections() {
            $crate::common::seal_roundtrip_and_rejections(&$make(), &$make());
        }
        #[test]
        fn certificates_are_stored() {
            $crate::common::certificates_are_stored(&$make());
        }
        #[test]
        fn wipe_removes_keys_and_sealed_data() {
            $crate::common::wipe_removes_keys_and_sealed_data(&$make());
        }
        #[test]
        fn destroy_key_empties_one_slot_and_nothing_else() {
            $crate::common::destroy_key_empties_one_slot_and_nothing_else(&$make());
        }
        #[test]
        fn bad_names_and_missing_keys_are_typed_errors() {
            $crate::common::bad_names_and_missing_keys_are_typed_errors(&$make());
        }
    };
}

pub(crate) fn p256_keygen_sign_verifies(f: &Fixture) {
    let public = f.se.generate_key("device", KeyAlgorithm::P256).unwrap();
    assert!(matches!(public, PublicKey::P256(_)));
    assert_eq!(f.se.public_key("device").unwrap(), public);
    let message = b"firmware manifest v7";
    let sig = f.se.sign("device", message).unwrap();
    raw_signature::verify_message(&public, message, &sig).unwrap();
    assert_eq!(
        raw_signature::verify_message(&public, b"other message", &sig),
        Err(edgeward_core::Error::BadSignature(format!(
            "ECDSA P-256 signature (sha256) is not by key {} over this content",
            public.fingerprint()
        )))
    );
    assert!(matches!(
        f.se.generate_key("device", KeyAlgorithm::P256),
        Err(SeError::SlotOccupied(_))
    ));
    let other = f.se.generate_key("second", KeyAlgorithm::P256).unwrap();
    assert_ne!(other, public, "each slot gets its own key");
}

pub(crate) fn ed25519_keygen_sign_verifies(f: &Fixture) {
    let public = match f.se.generate_key("ed", KeyAlgorithm::Ed25519) {
        Err(SeError::Unsupported { .. }) if !f.ed25519 => return,
        other => other.unwrap(),
    };
    assert!(matches!(public, PublicKey::Ed25519(_)));
    assert_eq!(f.se.public_key("ed").unwrap(), public);
    let sig = f.se.sign("ed", b"hello").unwrap();
    assert_eq!(sig.len(), 64);
    raw_signature::verify_message(&public, b"hello", &sig).unwrap();
    assert!(matches!(
        f.se.sign_digest("ed", &[0; 32]),
        Err(SeError::InvalidArgument(_))
    ));
}

pub(crate) fn sign_digest_verifies(f: &Fixture) {
    let public = f.se.generate_key("d", KeyAlgorithm::P256).unwrap();
    let digest: [u8; 32] = Sha256::digest(b"a large model file").into();
    let sig = f.se.sign_digest("d", &digest).unwrap();
    raw_signature::verify_digest(&public, &digest, &sig).unwrap();
    raw_signature::verify_message(&public, b"a large model file", &sig).unwrap();
}

pub(crate) fn ecdh_agrees_with_software_peer(f: &Fixture) {
    let public = f.se.generate_key("kex", KeyAlgorithm::P256).unwrap();
    let PublicKey::P256(se_point) = public else {
        panic!("not P-256")
    };
    let peer = p256::SecretKey::random(&mut rand_core::OsRng);
    let peer_sec1 = peer.public_key().to_sec1_bytes();
    let ours = f.se.ecdh("kex", &peer_sec1).unwrap();
    let se_public = p256::PublicKey::from(&se_point);
    let theirs = p256::ecdh::diffie_hellman(peer.to_nonzero_scalar(), se_public.as_affine());
    assert_eq!(ours.as_slice(), theirs.raw_secret_bytes().as_slice());
    assert!(matches!(
        f.se.ecdh("kex", &[4u8; 65]),
        Err(SeError::InvalidArgument(_))
    ));
}

pub(crate) fn random_differs(f: &Fixture) {
    let mut a = [0u8; 32];
    let mut b = [0u8; 32];
    f.se.random(&mut a).unwrap();
    f.se.random(&mut b).unwrap();
    assert_ne!(a, b);
    assert_ne!(a, [0u8; 32]);
    let mut big = vec![0u8; 1000];
    f.se.random(&mut big).unwrap();
    assert!(big.iter().any(|&x| x != 0));
}

pub(crate) fn counters_only_rise(f: &Fixture) {
    assert_eq!(f.se.counter("boot").unwrap(), 0);
    assert_eq!(f.se.increment_counter("boot").unwrap(), 1);
    assert_eq!(f.se.increment_counter("boot").unwrap(), 2);
    assert_eq!(f.se.counter("boot").unwrap(), 2);
    assert_eq!(f.se.advance_counter("boot", 5).unwrap(), 5);
    assert_eq!(f.se.advance_counter("boot", 3).unwrap(), 5, "never lowered");
    assert_eq!(f.se.counter("boot").unwrap(), 5);
    assert_eq!(
        f.se.counter("other").unwrap(),
        0,
        "counters are independent"
    );
    f.se.wipe().unwrap();
    assert_eq!(f.se.counter("boot").unwrap(), 5, "a wipe keeps counters");
}

pub(crate) fn time_floor_never_moves_back(f: &Fixture) {
    assert_eq!(f.se.time_floor().unwrap(), 0);
    assert_eq!(f.se.raise_time_floor(1_750_000_000).unwrap(), 1_750_000_000);
    assert_eq!(f.se.raise_time_floor(1_700_000_000).unwrap(), 1_750_000_000);
    assert_eq!(f.se.time_floor().unwrap(), 1_750_000_000);
    assert_eq!(f.se.raise_time_floor(1_760_000_000).unwrap(), 1_760_000_000);
    assert_eq!(f.se.time_floor().unwrap(), 1_760_000_000);
}

pub(crate) fn seal_roundtrip_and_rejections(f: &Fixture, other: &Fixture) {
    let secret = b"model decryption key 0123456789abcdef";
    let blob = f.se.seal(secret).unwrap();
    assert!(
        !blob.windows(8).any(|w| w == &secret[..8]),
        "blob is encrypted"
    );
    assert_eq!(f.se.unseal(&blob).unwrap().as_slice(), secret);
    assert_eq!(f.se.unseal(&f.se.seal(b"").unwrap()).unwrap().len(), 0);
    let max = vec![0x5a; edgeward_se::MAX_SEALED_LEN];
    assert_eq!(
        f.se.unseal(&f.se.seal(&max).unwrap()).unwrap().as_slice(),
        &max[..]
    );
    assert!(matches!(
        f.se.seal(&vec![0; edgeward_se::MAX_SEALED_LEN + 1]),
        Err(SeError::InvalidArgument(_))
    ));
    for i in [0, blob.len() / 2, blob.len() - 1] {
        let mut tampered = blob.clone();
        tampered[i] ^= 1;
        assert!(
            matches!(f.se.unseal(&tampered), Err(SeError::Unseal(_))),
            "flip at {i} accepted: {:?}",
            f.se.unseal(&tampered)
        );
    }
    assert!(matches!(
        f.se.unseal(&blob[..blob.len() - 1]),
        Err(SeError::Unseal(_))
    ));
    assert!(matches!(f.se.unseal(&[]), Err(SeError::Unseal(_))));
    // Make sure the other element has its own sealing key, then try ours there.
    other.se.seal(b"x").unwrap();
    assert!(matches!(other.se.unseal(&blob), Err(SeError::Unseal(_))));
}

pub(crate) fn certificates_are_stored(f: &Fixture) {
    assert_eq!(f.se.certificate("device").unwrap(), None);
    let cert = rcgen_like_der();
    f.se.store_certificate("device", &cert).unwrap();
    assert_eq!(f.se.certificate("device").unwrap(), Some(cert.clone()));
    let mut newer = cert;
    newer.push(0);
    f.se.store_certificate("device", &newer).unwrap();
    assert_eq!(f.se.certificate("device").unwrap(), Some(newer));
    let err = f.se.store_certificate("device", &[]).unwrap_err();
    assert!(
        matches!(&err, SeError::InvalidArgument(m) if m.starts_with("certificate is 0 bytes (1 to ")),
        "{err}"
    );
}

pub(crate) fn wipe_removes_keys_and_sealed_data(f: &Fixture) {
    f.se.generate_key("device", KeyAlgorithm::P256).unwrap();
    f.se.store_certificate("device", &rcgen_like_der()).unwrap();
    let blob = f.se.seal(b"secret").unwrap();
    f.se.wipe().unwrap();
    assert!(matches!(
        f.se.public_key("device"),
        Err(SeError::NoSuchKey(_))
    ));
    assert!(matches!(
        f.se.sign("device", b"m"),
        Err(SeError::NoSuchKey(_))
    ));
    assert_eq!(f.se.certificate("device").unwrap(), None);
    assert!(matches!(f.se.unseal(&blob), Err(SeError::Unseal(_))));
    // Re-provisioning works after a wipe, and old blobs stay dead.
    let public = f.se.generate_key("device", KeyAlgorithm::P256).unwrap();
    raw_signature::verify_message(&public, b"m", &f.se.sign("device", b"m").unwrap()).unwrap();
    let fresh = f.se.seal(b"new").unwrap();
    assert_eq!(f.se.unseal(&fresh).unwrap().as_slice(), b"new");
    assert!(matches!(f.se.unseal(&blob), Err(SeError::Unseal(_))));
}

pub(crate) fn destroy_key_empties_one_slot_and_nothing_else(f: &Fixture) {
    let old = f.se.generate_key("device-1", KeyAlgorithm::P256).unwrap();
    f.se.store_certificate("device-1", &rcgen_like_der())
        .unwrap();
    let new = f.se.generate_key("device-2", KeyAlgorithm::P256).unwrap();
    f.se.store_certificate("device-2", &rcgen_like_der())
        .unwrap();
    let blob = f.se.seal(b"token secret").unwrap();
    let counter = f.se.increment_counter("generation").unwrap();

    f.se.destroy_key("device-1").unwrap();

    assert!(matches!(
        f.se.public_key("device-1"),
        Err(SeError::NoSuchKey(slot)) if slot == "device-1"
    ));
    assert!(matches!(
        f.se.sign("device-1", b"m"),
        Err(SeError::NoSuchKey(_))
    ));
    let peer = p256::SecretKey::random(&mut rand_core::OsRng);
    assert!(matches!(
        f.se.ecdh("device-1", &peer.public_key().to_sec1_bytes()),
        Err(SeError::NoSuchKey(_))
    ));
    assert_eq!(f.se.certificate("device-1").unwrap(), None);
    // Everything else is as it was.
    assert_eq!(f.se.public_key("device-2").unwrap(), new);
    raw_signature::verify_message(&new, b"m", &f.se.sign("device-2", b"m").unwrap()).unwrap();
    assert_eq!(
        f.se.certificate("device-2").unwrap(),
        Some(rcgen_like_der())
    );
    assert_eq!(f.se.unseal(&blob).unwrap().as_slice(), b"token secret");
    assert_eq!(f.se.counter("generation").unwrap(), counter);
    // A second destroy says the slot is empty; the slot can hold a new key.
    assert!(matches!(
        f.se.destroy_key("device-1"),
        Err(SeError::NoSuchKey(_))
    ));
    let again = f.se.generate_key("device-1", KeyAlgorithm::P256).unwrap();
    assert_ne!(again, old, "a destroyed key never comes back");
    assert!(matches!(
        f.se.destroy_key("../device-2"),
        Err(SeError::InvalidArgument(_))
    ));
}

pub(crate) fn bad_names_and_missing_keys_are_typed_errors(f: &Fixture) {
    assert!(matches!(
        f.se.public_key("nothing"),
        Err(SeError::NoSuchKey(_))
    ));
    assert!(matches!(
        f.se.generate_key("../etc", KeyAlgorithm::P256),
        Err(SeError::InvalidArgument(_))
    ));
    assert!(matches!(
        f.se.counter("a/b"),
        Err(SeError::InvalidArgument(_))
    ));
    assert!(matches!(
        f.se.certificate(""),
        Err(SeError::InvalidArgument(_))
    ));
}

/// A DER-shaped certificate stand-in (backends store certificates as opaque bytes).
fn rcgen_like_der() -> Vec<u8> {
    let mut der = vec![0x30, 0x82, 0x01, 0x00];
    der.extend((0..256).map(|i| i as u8));
    der
}
