//! Attestation evidence and boot logs: reading what untrusted evidence claims (the server
//! picks its nonce and certificate by it) and verifying it against a fixed root, nonce and
//! reference values must never panic, a claimed nonce is always of a valid length, and a
//! boot log that parses replays to its register.
#![no_main]

use std::sync::OnceLock;

use edgeward_boot::{
    attest::{check_nonce, unverified, verify_evidence, Expectations, ReferenceValues},
    measure::{BootLog, Register},
};
use libfuzzer_sys::fuzz_target;

fn root() -> &'static Vec<Vec<u8>> {
    static ROOT: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    ROOT.get_or_init(|| {
        let key = rcgen::KeyPair::generate().expect("keygen");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        vec![params.self_signed(&key).expect("root").der().to_vec()]
    })
}

fuzz_target!(|data: &[u8]| {
    let reference = ReferenceValues::new();
    let exp = Expectations {
        nonce: &[7u8; 16],
        roots: root(),
        reference: &reference,
        device_key: None,
        now: 1_800_000_000,
    };
    if let Ok(claimed) = unverified(data) {
        assert!(check_nonce(&claimed.nonce).is_ok());
    }
    let _ = verify_evidence(data, &exp);
    if let Ok(log) = BootLog::parse(data) {
        assert_eq!(Register::replay(&log.events).0, log.register);
    }
});
