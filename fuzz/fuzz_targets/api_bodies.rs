//! Every JSON body of the device and admin APIs (telemetry, command result, attestation,
//! device registration, command, admin key, enrollment, update report): bounded, typed
//! parsing; nothing may panic, and what parses must satisfy the documented bounds.
#![no_main]

use edgeward_proto::api;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(b) = api::telemetry(data) {
        assert!((1..=api::MAX_RECORDS).contains(&b.records));
        if let Some((first, last)) = b.seq {
            assert!(first >= 1 && last - first + 1 == b.records as u64);
        }
    }
    if let Ok(r) = api::command_result(data) {
        assert!(r.output.len() <= api::MAX_OUTPUT);
    }
    let _ = api::attestation(data);
    if let Ok(d) = api::new_device(data) {
        assert!(edgeward_proto::device_id::validate(&d.id).is_ok());
        assert!(!d.id.contains(':'));
    }
    let _ = api::new_command(data);
    if let Ok(k) = api::new_key(data) {
        assert!(matches!(k.role.as_str(), "viewer" | "operator" | "admin"));
    }
    if let Ok(e) = api::enrollment(data) {
        assert!(e.csr.len() <= api::MAX_CSR && e.token.len() <= api::MAX_ENROLLMENT_TOKEN);
    }
    if let Ok(r) = edgeward_proto::update_report::parse(data) {
        assert!(r.validate().is_ok());
        assert_eq!(edgeward_proto::update_report::parse(&r.to_json()), Ok(r));
    }
});
