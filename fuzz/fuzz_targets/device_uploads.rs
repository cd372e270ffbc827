//! The server's side of what devices send back: a command result (a signed envelope, its
//! base64 and the result payload) and a forensic bundle's header line (found within its
//! bound, signed envelope, header fields). Nothing may panic, and what parses keeps the
//! documented bounds.
#![no_main]

use edgeward_proto::{command, forensics};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(signed) = serde_json::from_slice::<command::Signed>(data) {
        if let Ok((payload, _)) = signed.decode() {
            if let Ok(r) = command::parse_result(&payload) {
                assert_eq!(r.v, command::VERSION);
            }
        }
    }
    let _ = command::parse_result(data);
    if let Ok(line) = forensics::parse_header(data) {
        assert!(line.body_offset <= data.len());
        assert!(line.body_offset <= forensics::MAX_HEADER_LINE + 1);
        assert_eq!(data[line.body_offset - 1], b'\n');
        assert_eq!(line.header.body_sha256.len(), 64);
        assert_eq!(line.header.v, forensics::VERSION);
    }
});
