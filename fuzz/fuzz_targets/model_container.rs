//! The encrypted-model container header (and the payload checks behind it): bounded, total
//! parsing; what parses re-encodes to the same bytes, and decrypting any payload under any
//! key fails with a typed error (or succeeds) without panicking.
#![no_main]

use edgeward_model::crypt::{
    container::{Header, MAX_CHUNK_SIZE, MAX_PLAINTEXT_LEN, MAX_RECIPIENTS, MIN_CHUNK_SIZE},
    stream::StreamKey,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok((header, len)) = Header::parse(data) else {
        return;
    };
    assert_eq!(len, header.encoded_len());
    assert_eq!(&header.encode()[..], &data[..len]);
    assert!((1..=MAX_RECIPIENTS).contains(&header.recipients.len()));
    assert!((MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&header.fixed.chunk_size));
    assert!(header.fixed.plaintext_len <= MAX_PLAINTEXT_LEN);
    if let Ok(key) = StreamKey::derive(&[0x42; 32], &header.fixed) {
        let _ = key.decrypt(&data[len..]);
    }
});
