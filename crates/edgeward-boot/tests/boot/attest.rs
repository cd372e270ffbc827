//! Attestation: evidence produced inside the software element verifies against the root,
//! the nonce and the release's reference values; a stale nonce, an edited event log, a
//! measurement outside the release and evidence from another device are refused.

use crate::common::*;
use base64::{engine::general_purpose::STANDARD as B64, Engine};
use edgeward_boot::{
    attest::{produce, verify_evidence, AttestError, Expectations, ReferenceValues},
    example,
    measure::{BootLog, Register},
    provision,
};
use edgeward_core::{bundle::Bundle, dsse::pae, pem};
use serde_json::Value;

struct Fixture {
    _dir: tempfile::TempDir,
    root: Vec<Vec<u8>>,
    reference: ReferenceValues,
    log: BootLog,
    se: Box<dyn edgeward_se::SecureElement>,
    pki: std::path::PathBuf,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let ex = example(dir.path());
    let se = open_se(&ex.se_dir);
    let log = boot(&ex.chain, se.as_ref()).unwrap();
    let pki = dir.path().join("pki");
    let root =
        pem::parse_labelled(&std::fs::read(pki.join("root.pem")).unwrap(), "CERTIFICATE").unwrap();
    let mut reference = ReferenceValues::new();
    for sig in &ex.signatures {
        let bundle = Bundle::parse(&std::fs::read(sig).unwrap()).unwrap();
        reference.allow_bundle(&bundle, &root, unix_now()).unwrap();
    }
    Fixture {
        _dir: dir,
        root,
        reference,
        log,
        se,
        pki,
    }
}

fn expect<'a>(f: &'a Fixture, nonce: &'a [u8]) -> Expectations<'a> {
    Expectations {
        nonce,
        roots: &f.root,
        reference: &f.reference,
        device_key: None,
        now: unix_now(),
    }
}

/// Rewrites the evidence's claims with `edit` and re-signs them with the same device key
/// (a compromised agent lying about what booted).
fn resigned(f: &Fixture, evidence: &[u8], edit: impl Fn(&mut Value)) -> Vec<u8> {
    let mut env: Value = serde_json::from_slice(evidence).unwrap();
    let payload = B64.decode(env["payload"].as_str().unwrap()).unwrap();
    let mut claims: Value = serde_json::from_slice(&payload).unwrap();
    edit(&mut claims);
    let payload = serde_json::to_vec(&claims).unwrap();
    let sig =
        f.se.sign(
            "device",
            &pae(env["payload_type"].as_str().unwrap(), &payload),
        )
        .unwrap();
    env["payload"] = B64.encode(&payload).into();
    env["signature"] = B64.encode(sig).into();
    serde_json::to_vec(&env).unwrap()
}

#[test]
fn evidence_verifies() {
    let f = fixture();
    let nonce = [7u8; 32];
    let evidence = produce(f.se.as_ref(), &f.log, &nonce).unwrap();
    let device = f.se.public_key("device").unwrap();
    let mut exp = expect(&f, &nonce);
    exp.device_key = Some(&device);
    let claims = verify_evidence(&evidence, &exp).unwrap();
    assert_eq!(claims.register, f.log.register);
    assert_eq!(claims.events.len(), 5);
    assert_eq!(claims.backend, "soft");
}

#[test]
fn stale_nonce_is_refused() {
    let f = fixture();
    let evidence = produce(f.se.as_ref(), &f.log, &[1u8; 16]).unwrap();
    let err = verify_evidence(&evidence, &expect(&f, &[2u8; 16])).unwrap_err();
    assert!(matches!(err, AttestError::Nonce(_)), "{err}");
}

#[test]
fn edited_event_log_is_refused() {
    let f = fixture();
    let nonce = [3u8; 16];
    let evidence = produce(f.se.as_ref(), &f.log, &nonce).unwrap();
    // Edited without the key: the signature breaks.
    let mut env: Value = serde_json::from_slice(&evidence).unwrap();
    let payload = B64.decode(env["payload"].as_str().unwrap()).unwrap();
    let mut claims: Value = serde_json::from_slice(&payload).unwrap();
    claims["events"][2]["digest"] = hex::encode([0u8; 32]).into();
    env["payload"] = B64.encode(serde_json::to_vec(&claims).unwrap()).into();
    let err = verify_evidence(&serde_json::to_vec(&env).unwrap(), &expect(&f, &nonce)).unwrap_err();
    assert!(matches!(err, AttestError::BadSignature(_)), "{err}");
    // Edited and re-signed by the device (the register stays honest): it does not replay.
    let lying = resigned(&f, &evidence, |c| {
        c["events"][2]["digest"] = c["events"][1]["digest"].clone();
    });
    let err = verify_evidence(&lying, &expect(&f, &nonce)).unwrap_err();
    assert!(matches!(err, AttestError::LogMismatch(_)), "{err}");
    // A dropped event does not replay either.
    let dropped = resigned(&f, &evidence, |c| {
        c["events"].as_array_mut().unwrap().pop();
    });
    let err = verify_evidence(&dropped, &expect(&f, &nonce)).unwrap_err();
    assert!(matches!(err, AttestError::LogMismatch(_)), "{err}");
}

#[test]
fn measurement_outside_the_release_is_refused() {
    let f = fixture();
    let nonce = [4u8; 16];
    // A consistent log and register, but the OS measurement is not a signed release image.
    let mut log = f.log.clone();
    log.events[2].digest = [9u8; 32];
    log.register = Register::replay(&log.events).0;
    let evidence = produce(f.se.as_ref(), &log, &nonce).unwrap();
    let err = verify_evidence(&evidence, &expect(&f, &nonce)).unwrap_err();
    assert!(matches!(err, AttestError::UnknownMeasurement(_)), "{err}");
    assert!(err.to_string().contains("stage 2 (os)"), "{err}");
}

#[test]
fn evidence_from_another_device_is_refused() {
    let f = fixture();
    let nonce = [5u8; 16];
    // Another device of the same fleet, with its own element and certificate.
    let other_dir = tempfile::tempdir().unwrap();
    let other = open_se(other_dir.path());
    let read = |n: &str| std::fs::read_to_string(f.pki.join(n)).unwrap();
    provision::provision(
        other.as_ref(),
        &f.root[0],
        &read("device-ca.pem"),
        &read("device-ca.key"),
        "sim-device-2",
        now(),
    )
    .unwrap();
    let evidence = produce(other.as_ref(), &f.log, &nonce).unwrap();
    let expected = f.se.public_key("device").unwrap();
    let mut exp = expect(&f, &nonce);
    exp.device_key = Some(&expected);
    let err = verify_evidence(&evidence, &exp).unwrap_err();
    assert!(matches!(err, AttestError::WrongDevice(_)), "{err}");

    // The other device's signature presented under this device's certificate.
    let mine = produce(f.se.as_ref(), &f.log, &nonce).unwrap();
    let mut env: Value = serde_json::from_slice(&mine).unwrap();
    let theirs: Value = serde_json::from_slice(&evidence).unwrap();
    env["signature"] = theirs["signature"].clone();
    let err = verify_evidence(&serde_json::to_vec(&env).unwrap(), &exp).unwrap_err();
    assert!(matches!(err, AttestError::BadSignature(_)), "{err}");

    // A device whose certificate was issued by a CA outside the root.
    let rogue = other_dir.path().join("rogue");
    pki(&rogue, "Rogue");
    let rogue_se = open_se(&other_dir.path().join("rogue-se"));
    let rr = |n: &str| std::fs::read_to_string(rogue.join(n)).unwrap();
    let rogue_root = pem::parse_labelled(rr("root.pem").as_bytes(), "CERTIFICATE").unwrap();
    provision::provision(
        rogue_se.as_ref(),
        &rogue_root[0],
        &rr("device-ca.pem"),
        &rr("device-ca.key"),
        "sim-device-1",
        now(),
    )
    .unwrap();
    let evidence = produce(rogue_se.as_ref(), &f.log, &nonce).unwrap();
    let err = verify_evidence(&evidence, &expect(&f, &nonce)).unwrap_err();
    assert!(matches!(err, AttestError::DeviceNotTrusted(_)), "{err}");
    let _ = example::EXAMPLE_HARDWARE;
}
