//! The soft element's on-disk formats (key files, counter files) and the sealed-blob layout
//! every backend shares: every file in an element directory is untrusted.
//! Parsing never panics; what parses has the documented sizes.
#![no_main]

use edgeward_se::internal::{
    sealed::{self, MAX_SEALED_BLOB_LEN, NONCE_LEN, TAG_LEN},
    soft_format::{self as format, KEY_FILE_LEN},
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(key) = format::parse_key_file(data) {
        assert_eq!(data.len(), KEY_FILE_LEN);
        assert_eq!(key.ciphertext.len(), 32 + TAG_LEN);
        assert_eq!(key.nonce.len(), NONCE_LEN);
    }
    if let Ok(blob) = sealed::parse_sealed_blob(data) {
        assert!(data.len() <= MAX_SEALED_BLOB_LEN);
        assert!(blob.ciphertext.len() >= TAG_LEN);
        assert_eq!(sealed::encode_sealed_blob(blob.nonce, blob.ciphertext), data);
    }
    if format::parse_u64_file("counter", data).is_ok() {
        assert_eq!(data.len(), 8);
    }
});
