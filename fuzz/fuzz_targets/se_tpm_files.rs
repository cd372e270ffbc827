//! The TPM element's state-dir files (a key's marshalled `TPMT_PUBLIC` and `TPM2B_PRIVATE`):
//! every file in the state dir is untrusted. Parsing never panics; what parses has the
//! documented shape. (Sealed blobs, the same layout for every backend, are `se_soft_files`'.)
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
});
