//! Private keys: PEM (PKCS#8, SEC1, encrypted PKCS#8 with the passphrase "passphrase") and
//! PKCS#8 DER. A key that parses must sign, and its signatures must verify.
#![no_main]

use edgeward_core::{keys::SigningKey, raw_signature, sha256};
use libfuzzer_sys::fuzz_target;

fn exercise(key: &SigningKey) {
    let public = key.public_key();
    let message = b"edgeward fuzz message";
    let sig = key.sign(message);
    raw_signature::verify_message(&public, message, &sig).expect("own signature verifies");
    if let SigningKey::P256(_) = key {
        let digest = sha256(message);
        let sig = key
            .sign_sha256_digest(&digest)
            .expect("P-256 signs a digest");
        raw_signature::verify_digest(&public, &digest, &sig).expect("own digest signature verifies");
    }
    let _ = format!("{key:?}");
}

fuzz_target!(|data: &[u8]| {
    if let Ok(key) = SigningKey::from_pem(data, Some(b"passphrase")) {
        exercise(&key);
    }
    if let Ok(key) = SigningKey::from_pkcs8_der(data) {
        exercise(&key);
    }
});
