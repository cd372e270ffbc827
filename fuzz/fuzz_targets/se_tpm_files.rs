//! The TPM element's state-dir files (a key's marshalled `TPMT_PUBLIC` and `TPM2B_PRIVATE`)
//! and its sealed-blob framing: every file in the state dir is untrusted. Parsing never
//! panics; what parses has the documented shape.
#![no_main]

use edgeward_se::tpm;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Input: u16 big-endian length of the public file ‖ public file ‖ private file.
    if let [hi, lo, rest @ ..] = data {
        let split = usize::from(u16::from_be_bytes([*hi, *lo])).min(rest.len());
        let (public, private) = rest.split_at(split);
        if let Ok(key) = tpm::parse_key_files(public, private) {
            assert!(matches!(key, edgeward_se::PublicKey::P256(_)));
        }
    }
    if let Ok((iv, ciphertext)) = tpm::parse_sealed_blob(data) {
        assert_eq!(iv.len(), 12);
        assert!(ciphertext.len() >= 16);
        assert!(data.len() <= 1 + 12 + edgeward_se::MAX_SEALED_LEN + 16);
    }
});
