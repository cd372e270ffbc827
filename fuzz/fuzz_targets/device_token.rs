//! Device tokens (`Authorization: Device …`): parse any string, and verify what parses as v1
//! and as v2 against a fixed secret and request; nothing may panic, and a token made by
//! `create_v1` from the parsed fields must round-trip.
#![no_main]

use edgeward_proto::token::{self, Request, Token};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(t) = Token::parse(text) else {
        return;
    };
    let req = Request {
        method: "POST",
        target: "/v1/device/telemetry",
        body_sha256: token::body_sha256(b"{}"),
    };
    let _ = t.verify("fuzz-secret", t.timestamp, 300, Some(&req));
    let _ = t.verify("fuzz-secret", 0, 0, None);
    let remade = token::create_v1(t.device_id, "fuzz-secret", t.timestamp);
    let again = Token::parse(&remade).expect("a token create_v1 made must parse");
    assert_eq!(again.verify("fuzz-secret", t.timestamp, 0, None), Ok(()));
});
