//! PEM: decode every block; each block re-encoded with `pem::encode` decodes to itself.
#![no_main]

use edgeward_core::pem;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(blocks) = pem::parse_all(data) else {
        assert!(pem::parse_labelled(data, "CERTIFICATE").is_err());
        return;
    };
    assert!(!blocks.is_empty());
    for block in &blocks {
        let encoded = pem::encode(&block.label, &block.der);
        if encoded.is_empty() {
            continue; // a label pem-rfc7468 decodes but will not encode
        }
        let again = pem::parse_all(encoded.as_bytes()).expect("pem::encode output parses");
        assert_eq!(again.as_slice(), std::slice::from_ref(block));
    }
    let certs = pem::parse_labelled(data, "CERTIFICATE");
    let expected = blocks.iter().filter(|b| b.label == "CERTIFICATE").count();
    match certs {
        Ok(c) => assert_eq!(c.len(), expected),
        Err(_) => assert_eq!(expected, 0),
    }
});
