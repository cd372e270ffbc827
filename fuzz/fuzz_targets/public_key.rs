//! Public keys from SPKI DER, PEM and certificate DER; every key that parses survives
//! `to_spki_der`/`to_pem` round trips. Certificate facts (`cert_policy::cert_info`) too.
#![no_main]

use edgeward_core::{cert_policy, keys::PublicKey};
use libfuzzer_sys::fuzz_target;

fn exercise(key: &PublicKey) {
    let der = key.to_spki_der();
    assert!(!der.is_empty());
    assert_eq!(PublicKey::from_spki_der(&der).as_ref(), Ok(key));
    let pem = key.to_pem();
    assert_eq!(PublicKey::from_pem(pem.as_bytes()).as_ref(), Ok(key));
    assert_eq!(key.hint().len(), 64);
    assert_eq!(key.fingerprint().len(), 16);
    let _ = key.algorithm();
}

fuzz_target!(|data: &[u8]| {
    if let Ok(key) = PublicKey::from_spki_der(data) {
        exercise(&key);
    }
    if let Ok(key) = PublicKey::from_pem(data) {
        exercise(&key);
    }
    if let Ok(key) = PublicKey::from_certificate_der(data) {
        exercise(&key);
    }
    if let Ok(info) = cert_policy::cert_info(data) {
        let _ = (info.subject.len(), info.issuer.len(), info.serial.len());
    }
});
