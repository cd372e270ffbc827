//! The local inference sockets' decoders (edgeward_proto::inference): requests the worker
//! reads from the application, responses the application reads, metrics reports the agent
//! reads, and the framing around them. Total (no panic), bounded, and what decodes encodes
//! back to the same message.
#![no_main]

use edgeward_proto::inference::{
    read_frame, MetricsReport, Request, Response, MAX_FRAME, MAX_VALUES,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = Request::decode(data) {
        if let Request::Infer(v) = &r {
            assert!(!v.is_empty() && v.len() <= MAX_VALUES && v.iter().all(|x| x.is_finite()));
        }
        assert_eq!(Request::decode(&r.encode()), Ok(r));
    }
    if let Ok(r) = Response::decode(data) {
        assert_eq!(Response::decode(&r.encode()), Ok(r));
    }
    if let Ok(m) = MetricsReport::decode(data) {
        assert_eq!(m.model_sha256.len(), 64);
    }
    let mut rest = data;
    while let Ok(Some(body)) = read_frame(&mut rest) {
        assert!(!body.is_empty() && body.len() <= MAX_FRAME);
    }
});
