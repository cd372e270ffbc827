//! Raw detached signatures: strict ECDSA DER parsing, and `verify_digest`/`verify_message`
//! under fixed P-256, Ed25519 and RSA-2048 keys, over a fixed message and over a digest
//! taken from the input.
#![no_main]

use edgeward_core::{raw_signature, sha256};
use edgeward_fuzz::raw_keys;
use libfuzzer_sys::fuzz_target;

const MESSAGE: &[u8] = b"edgeward fuzz message";

fuzz_target!(|data: &[u8]| {
    if let Ok(sig) = raw_signature::parse_ecdsa_der(data) {
        // Strict DER: the parsed signature re-encodes to exactly the input.
        assert_eq!(sig.to_der().as_bytes(), data);
    }
    let fixed_digest = sha256(MESSAGE);
    // The input's first 32 bytes as a digest, the rest as the signature.
    let split = (data.len() >= 32).then(|| {
        let (d, s) = data.split_at(32);
        let mut digest = [0u8; 32];
        digest.copy_from_slice(d);
        (digest, s)
    });
    for key in raw_keys() {
        let _ = raw_signature::verify_digest(key, &fixed_digest, data);
        let _ = raw_signature::verify_message(key, MESSAGE, data);
        if let Some((digest, sig)) = &split {
            let _ = raw_signature::verify_digest(key, digest, sig);
            let _ = raw_signature::verify_message(key, &digest[..], sig);
        }
    }
});
