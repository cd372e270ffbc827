//! Measured boot on a TPM: the example chain booted on a TPM element (swtpm on free loopback
//! ports) leaves PCR 16 equal to the software register replayed from the PCR's old value.

use edgeward_boot::{
    boot::{boot_chain, boot_chain_with_pcr, DEFAULT_PCR},
    example, measure, FailureKind,
};
use sha2::{Digest as _, Sha256};

#[test]
fn boot_extends_each_stage_into_the_tpm_pcr() {
    let swtpm = crate::swtpm::Swtpm::start();
    let base = tempfile::tempdir().unwrap();
    crate::common::pki(&base.path().join("pki"), "Boot TPM Test");
    let se = edgeward_se::open(&format!(
        "tpm:{}?state={}",
        swtpm.tcti(),
        base.path().join("tpm").display()
    ))
    .unwrap();
    let ex = example::write_example(
        &base.path().join("pki"),
        &base.path().join("example"),
        se.as_ref(),
        1 << 20,
        1 << 20,
        crate::common::now(),
    )
    .unwrap();
    // PCR 16 is all zero after TPM2_Startup(CLEAR), like the software register.
    let before = se.read_pcr(DEFAULT_PCR).unwrap();
    assert_eq!(before, [0u8; 32]);
    let log = boot_chain(
        &ex.chain,
        se.as_ref(),
        &edgeward_boot::boot::BootOptions {
            now: crate::common::unix_now(),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(log.events.len(), 5);
    let mut expected = before;
    for event in &log.events {
        let mut h = Sha256::new();
        h.update(expected);
        h.update(event.digest);
        expected = h.finalize().into();
    }
    assert_eq!(se.read_pcr(DEFAULT_PCR).unwrap(), expected);
    assert_eq!(expected, log.register);
    assert_eq!(measure::Register::replay(&log.events).0, log.register);

    // A PCR the element refuses stops the boot before the first stage counts as measured,
    // and leaves PCR 16 alone; `None` boots without touching any PCR.
    let options = edgeward_boot::boot::BootOptions {
        now: crate::common::unix_now(),
        ..Default::default()
    };
    let refused = boot_chain_with_pcr(&ex.chain, se.as_ref(), &options, Some(24)).unwrap_err();
    assert_eq!(refused.reason, FailureKind::SecureElement);
    assert_eq!(refused.measured, 0);
    assert!(refused.message.contains("PCR 24"), "{}", refused.message);
    boot_chain_with_pcr(&ex.chain, se.as_ref(), &options, None).unwrap();
    assert_eq!(se.read_pcr(DEFAULT_PCR).unwrap(), expected);
}
