//! The boot policy cannot be edited or rolled back: the chain description is signed under
//! the root, and the element keeps floors for the policy's counter and the CRL's number.
//! Each attack is refused before any stage is opened, with the exact reason.

use std::cell::Cell;

use crate::common::*;
use edgeward_boot::{
    boot::{boot_chain, confirm, BootOptions},
    policy::{CRL_COUNTER, POLICY_COUNTER},
    recovery::RecoveryRecord,
    FailureKind,
};
use edgeward_pki::{Hierarchy, RootKey};

/// Boots and expects a refusal before the first stage: returns the record.
fn refused_before_stages(
    chain: &std::path::Path,
    se: &dyn edgeward_se::SecureElement,
) -> RecoveryRecord {
    let touched = Cell::new(false);
    let hook = |_: usize| touched.set(true);
    let record = boot_chain(
        chain,
        se,
        &BootOptions {
            now: unix_now(),
            hardware: None,
            before_stage: Some(&hook),
        },
    )
    .unwrap_err();
    assert!(record.stage.is_none(), "{record:?}");
    assert!(!touched.get(), "a stage was started under a refused policy");
    *record
}

fn root_key(pass: &[u8]) -> RootKey<'_> {
    RootKey {
        path: None,
        passphrase: pass,
    }
}

#[test]
fn deleting_the_crl_line_or_a_stage_is_refused() {
    let base = tempfile::tempdir().unwrap();
    let ex = example(base.path());
    let se = open_se(&ex.se_dir);
    let signed = std::fs::read_to_string(&ex.chain).unwrap();
    assert!(signed.contains("crl = \"crl.pem\""));

    std::fs::write(&ex.chain, signed.replace("crl = \"crl.pem\"\n", "")).unwrap();
    let r = refused_before_stages(&ex.chain, se.as_ref());
    assert_eq!(r.reason, FailureKind::Integrity, "{}", r.message);
    assert!(r.message.contains("chain.toml"), "{}", r.message);
    assert!(r.message.contains("was modified"), "{}", r.message);

    let without_model = signed
        .split("\n[[stage]]")
        .filter(|s| !s.contains("name = \"model\""))
        .collect::<Vec<_>>()
        .join("\n[[stage]]");
    std::fs::write(&ex.chain, without_model).unwrap();
    let r = refused_before_stages(&ex.chain, se.as_ref());
    assert_eq!(r.reason, FailureKind::Integrity, "{}", r.message);

    std::fs::write(&ex.chain, &signed).unwrap();
    std::fs::remove_file(base.path().join("example/chain.toml.sig")).unwrap();
    let r = refused_before_stages(&ex.chain, se.as_ref());
    assert_eq!(r.reason, FailureKind::MissingSignature, "{}", r.message);
    assert!(r.message.contains("chain.toml.sig"), "{}", r.message);
}

#[test]
fn a_stage_signature_cannot_stand_in_for_the_policy() {
    let base = tempfile::tempdir().unwrap();
    let ex = example(base.path());
    let se = open_se(&ex.se_dir);
    // A genuine bundle, but for stage 0's image and claims: not a policy signature.
    std::fs::copy(
        &ex.signatures[0],
        base.path().join("example/chain.toml.sig"),
    )
    .unwrap();
    let r = refused_before_stages(&ex.chain, se.as_ref());
    assert_eq!(r.reason, FailureKind::WrongStage, "{}", r.message);
    assert!(
        r.message.contains("not as the chain description"),
        "{}",
        r.message
    );
}

#[test]
fn a_policy_without_a_crl_is_refused_once_a_crl_was_confirmed() {
    let base = tempfile::tempdir().unwrap();
    let ex = example(base.path());
    let dir = base.path().join("example");
    let se = open_se(&ex.se_dir);
    // Before any CRL was confirmed, a signed policy without one boots.
    let signed = std::fs::read_to_string(&ex.chain).unwrap();
    std::fs::write(&ex.chain, signed.replace("crl = \"crl.pem\"\n", "")).unwrap();
    resign_policy(&dir, &base.path().join("pki"), 1);
    boot(&ex.chain, se.as_ref()).unwrap();
    // Confirming the CRL-carrying policy sets the floor; the CRL-less one is then refused,
    // even though its signature is valid.
    let without = std::fs::read(&ex.chain).unwrap();
    let without_sig = std::fs::read(dir.join("chain.toml.sig")).unwrap();
    std::fs::write(&ex.chain, &signed).unwrap();
    resign_policy(&dir, &base.path().join("pki"), 1);
    let log = boot(&ex.chain, se.as_ref()).unwrap();
    assert_eq!(log.policy.as_ref().unwrap().crl_number, Some(1));
    confirm(se.as_ref(), &log).unwrap();
    assert_eq!(se.counter(CRL_COUNTER).unwrap(), 1);
    std::fs::write(&ex.chain, without).unwrap();
    std::fs::write(dir.join("chain.toml.sig"), without_sig).unwrap();
    let r = refused_before_stages(&ex.chain, se.as_ref());
    assert_eq!(r.reason, FailureKind::Revocation, "{}", r.message);
    assert!(
        r.message
            .contains("names no CRL, but this device requires one numbered 1 or later"),
        "{}",
        r.message
    );
}

#[test]
fn an_older_crl_is_refused_after_a_newer_one_was_confirmed() {
    let base = tempfile::tempdir().unwrap();
    let ex = example(base.path());
    let pki_dir = base.path().join("pki");
    let crl = base.path().join("example/crl.pem");
    let se = open_se(&ex.se_dir);
    let first = std::fs::read(&crl).unwrap();
    Hierarchy::open(&pki_dir)
        .unwrap()
        .refresh_crl(&root_key(PASS), now())
        .unwrap();
    std::fs::copy(pki_dir.join("crl.pem"), &crl).unwrap();
    let log = boot(&ex.chain, se.as_ref()).unwrap();
    assert_eq!(log.policy.as_ref().unwrap().crl_number, Some(2));
    // Not yet confirmed: the older CRL still boots (a revert stays possible).
    std::fs::write(&crl, &first).unwrap();
    boot(&ex.chain, se.as_ref()).unwrap();
    std::fs::copy(pki_dir.join("crl.pem"), &crl).unwrap();
    confirm(se.as_ref(), &log).unwrap();
    std::fs::write(&crl, &first).unwrap();
    let r = refused_before_stages(&ex.chain, se.as_ref());
    assert_eq!(r.reason, FailureKind::Revocation, "{}", r.message);
    assert!(
        r.message
            .contains("is number 1, older than number 2 this device already accepted"),
        "{}",
        r.message
    );
}

#[test]
fn a_crl_from_another_root_is_refused() {
    let base = tempfile::tempdir().unwrap();
    let ex = example(base.path());
    let se = open_se(&ex.se_dir);
    let rogue = base.path().join("rogue");
    pki(&rogue, "Rogue");
    std::fs::copy(rogue.join("crl.pem"), base.path().join("example/crl.pem")).unwrap();
    let r = refused_before_stages(&ex.chain, se.as_ref());
    assert_eq!(r.reason, FailureKind::Revocation, "{}", r.message);
    assert!(
        r.message.contains("issued by CN=Rogue Root CA"),
        "{}",
        r.message
    );
    assert!(r.message.contains("not the trust root"), "{}", r.message);
}

#[test]
fn a_crl_forged_under_the_roots_name_is_refused() {
    let base = tempfile::tempdir().unwrap();
    let ex = example(base.path());
    let se = open_se(&ex.se_dir);
    // Same organisation, so the impostor root has the real root's name but another key.
    let impostor = base.path().join("impostor");
    pki(&impostor, "Boot Test");
    std::fs::copy(
        impostor.join("crl.pem"),
        base.path().join("example/crl.pem"),
    )
    .unwrap();
    let r = refused_before_stages(&ex.chain, se.as_ref());
    assert_eq!(r.reason, FailureKind::Revocation, "{}", r.message);
    assert!(
        r.message
            .contains("the CRL names the root as its issuer but was not signed by the root's key"),
        "{}",
        r.message
    );
}

#[test]
fn a_revoked_signing_certificate_cannot_sign_the_policy() {
    let base = tempfile::tempdir().unwrap();
    let ex = example(base.path());
    let pki_dir = base.path().join("pki");
    let se = open_se(&ex.se_dir);
    let h = Hierarchy::open(&pki_dir).unwrap();
    let serial = h
        .show(now())
        .unwrap()
        .into_iter()
        .find(|c| c.role == "signing")
        .unwrap()
        .serial;
    h.revoke(&root_key(PASS), &serial, now()).unwrap();
    std::fs::copy(pki_dir.join("crl.pem"), base.path().join("example/crl.pem")).unwrap();
    let r = refused_before_stages(&ex.chain, se.as_ref());
    assert_eq!(r.reason, FailureKind::NotEndorsed, "{}", r.message);
    assert!(
        r.message.contains(&format!(
            "certificate serial {serial} (or its issuer) is revoked by the CRL"
        )),
        "{}",
        r.message
    );
}

#[test]
fn an_older_policy_is_refused_after_a_newer_one_was_confirmed() {
    let base = tempfile::tempdir().unwrap();
    let ex = example(base.path());
    let dir = base.path().join("example");
    let se = open_se(&ex.se_dir);
    let old_sig = std::fs::read(dir.join("chain.toml.sig")).unwrap();
    resign_policy(&dir, &base.path().join("pki"), 2);
    let log = boot(&ex.chain, se.as_ref()).unwrap();
    assert_eq!(log.policy.as_ref().unwrap().security_counter, 2);
    confirm(se.as_ref(), &log).unwrap();
    assert_eq!(se.counter(POLICY_COUNTER).unwrap(), 2);
    std::fs::write(dir.join("chain.toml.sig"), old_sig).unwrap();
    let r = refused_before_stages(&ex.chain, se.as_ref());
    assert_eq!(r.reason, FailureKind::Rollback, "{}", r.message);
    assert!(
        r.message.contains(
            "security counter 1 is below the secure element's 2 (an older policy; rollback refused)"
        ),
        "{}",
        r.message
    );
}

#[test]
fn validity_is_judged_at_the_later_of_the_clock_and_the_elements_floor() {
    let base = tempfile::tempdir().unwrap();
    let ex = example(base.path());
    let se = open_se(&ex.se_dir);
    assert_eq!(se.time_floor().unwrap(), 0);
    // A clock reading 1970 with no floor yet: the policy's signature is from the future.
    let r = boot_at(&ex.chain, se.as_ref(), 0).unwrap_err();
    assert_eq!(r.reason, FailureKind::NotEndorsed, "{}", r.message);
    assert!(
        r.message
            .contains("later than the verifier's time 1970-01-01T00:00:00Z"),
        "{}",
        r.message
    );
    // A boot on a good clock raises the floor to the newest signing time…
    boot_at(&ex.chain, se.as_ref(), unix_now()).unwrap();
    let floor = se.time_floor().unwrap();
    assert!(floor > 0 && floor <= unix_now());
    // …so the same 1970 clock now boots: judged at the floor.
    let log = boot_at(&ex.chain, se.as_ref(), 0).unwrap();
    assert_eq!(log.booted_at, floor);
    // A clock later than the floor is believed.
    let in_a_year = unix_now() + 365 * 86_400;
    assert_eq!(
        boot_at(&ex.chain, se.as_ref(), in_a_year)
            .unwrap()
            .booted_at,
        in_a_year
    );
    // A policy signed an hour after the floor: a 1970 clock judges at the floor, so the
    // signature is from the future and refused; a clock past it boots and raises the floor.
    let signed_at = floor + 3600;
    let (key, chain) = edgeward_boot::example::signer(&base.path().join("pki")).unwrap();
    edgeward_boot::signing::sign_policy(
        &ex.chain,
        &key,
        chain,
        edgeward_boot::example::EXAMPLE_HARDWARE,
        1,
        signed_at,
    )
    .unwrap();
    let r = boot_at(&ex.chain, se.as_ref(), 0).unwrap_err();
    assert_eq!(r.reason, FailureKind::NotEndorsed, "{}", r.message);
    assert!(
        r.message.contains("later than the verifier's time"),
        "{}",
        r.message
    );
    boot_at(&ex.chain, se.as_ref(), signed_at + 60).unwrap();
    assert_eq!(se.time_floor().unwrap(), signed_at);
    assert_eq!(
        boot_at(&ex.chain, se.as_ref(), 0).unwrap().booted_at,
        signed_at
    );
}
