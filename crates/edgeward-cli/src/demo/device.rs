//! `edgeward demo`, the device part: a device key generated and used inside a software
//! secure element, then a simulated device that boots its signed five-stage chain on that
//! element, attests, and goes into recovery when a stage is tampered with.

use super::fail;
use std::{fs, path::Path};

use edgeward_boot::{
    attest,
    boot::{boot_chain, BootOptions},
    example, FailureKind,
};
use edgeward_se::KeyAlgorithm;
use time::OffsetDateTime;

use crate::demo::{read, Demo};

pub(crate) fn story(demo: &mut Demo, dir: &Path, pki_dir: &Path) {
    demo.step(
        "device key generated and used inside a secure element",
        || {
            let se = edgeward_se::open(&format!("soft:{}", dir.join("device-se").display()))?;
            let public = se.generate_key("device", KeyAlgorithm::P256)?;
            let sig = se.sign("device", b"attestation nonce")?;
            edgeward_core::raw_signature::verify_message(&public, b"attestation nonce", &sig)?;
            let blob = se.seal(b"model key")?;
            se.wipe()?;
            if se.unseal(&blob).is_ok() {
                return Err("sealed data survived a wipe".into());
            }
            Ok(format!(
                "key {} signs in the element; wipe destroyed the sealing key",
                public.fingerprint()
            ))
        },
    );
    let ex_dir = dir.join("boot");
    let se = match edgeward_se::open(&format!("soft:{}", ex_dir.join("se").display())) {
        Ok(se) => se,
        Err(e) => return demo.step("simulated device: secure element", || Err(e.into())),
    };
    let now = OffsetDateTime::now_utc();
    let opts = BootOptions {
        now: now.unix_timestamp() as u64,
        ..Default::default()
    };
    let (mut images, mut sigs, mut log) = (Vec::new(), Vec::new(), None);
    demo.step(
        "simulated device: provisioned element, signed five-stage chain",
        || {
            let ex = example::write_example(pki_dir, &ex_dir, se.as_ref(), 4 << 20, 8 << 20, now)?;
            (images, sigs) = (ex.images, ex.signatures);
            Ok(format!(
                "root anchor + device key in soft:{}; {}",
                ex.se_dir.display(),
                ex.chain.display()
            ))
        },
    );
    let chain = ex_dir.join("chain.toml");
    demo.step("boot: each stage verified, then measured, in order", || {
        let l = boot_chain(&chain, se.as_ref(), &opts).map_err(|r| r.summary())?;
        let s = format!(
            "{} stages booted, register {}…",
            l.events.len(),
            &hex::encode(l.register)[..16]
        );
        log = Some(l);
        Ok(s)
    });
    demo.step(
        "attest: evidence signed inside the element verifies",
        || {
            let log = log.as_ref().ok_or("nothing booted")?;
            let root = edgeward_core::pem::parse_labelled(
                &read(&pki_dir.join(edgeward_pki::files::ROOT_CERT))?,
                "CERTIFICATE",
            )?;
            let mut reference = attest::ReferenceValues::new();
            for s in &sigs {
                let b = edgeward_core::bundle::Bundle::parse(&read(s)?)?;
                reference.allow_bundle(&b, &root, opts.now)?;
            }
            let nonce = [0x5a; 32];
            let ev = attest::produce(se.as_ref(), log, &nonce)?;
            let exp = attest::Expectations {
                nonce: &nonce,
                roots: &root,
                reference: &reference,
                device_key: None,
                now: opts.now,
            };
            attest::verify_evidence(&ev, &exp)?;
            Ok("device chain, signature, nonce, log replay and reference values check out".into())
        },
    );
    demo.step(
        "attack: a tampered OS image sends the device into recovery",
        || {
            let os = images.get(2).ok_or("no OS image")?;
            let mut b = read(os)?;
            b[4096] ^= 1;
            fs::write(os, b)?;
            match boot_chain(&chain, se.as_ref(), &opts) {
                Err(r)
                    if r.reason == FailureKind::Integrity
                        && r.stage.as_ref().is_some_and(|s| s.index == 2) =>
                {
                    Ok(format!("recovery mode (agent exit 3): {}", r.summary()))
                }
                Err(r) => fail(format!("refused for the wrong reason: {}", r.summary())),
                Ok(_) => Err("the tampered chain booted".into()),
            }
        },
    );
}
