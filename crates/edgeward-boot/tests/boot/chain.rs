//! The boot chain end to end on a real key hierarchy and the software secure element: a
//! valid five-stage chain boots and its log replays; for every stage, each attack stops the
//! chain at that stage with the right reason, and the later stages are never touched (their
//! files are removed before booting, and the stage hook never sees a later index).

use std::{cell::Cell, path::Path};

use crate::common::*;
use edgeward_boot::{
    boot::{boot_chain, confirm, BootOptions},
    example::{self, EXAMPLE_HARDWARE},
    measure::{BootLog, Register},
    signing::sign_stage,
    state::StateDir,
    FailureKind,
};
use edgeward_core::statement::BootClaims;

#[derive(Clone, Copy, Debug)]
enum Attack {
    FlipByte,
    MissingSignature,
    UnendorsedKey,
    RolledBack,
    WrongHardware,
}

fn resign(dir: &Path, pki: &Path, i: usize, hardware: &str, counter: u64) {
    let (image, sig) = stage_files(dir, i);
    let (key, chain) = example::signer(pki).unwrap();
    let claims = BootClaims {
        stage: Some(example::stages(0, 0)[i].name.into()),
        hardware: Some(hardware.into()),
        security_counter: Some(counter),
    };
    let bundle = sign_stage(&image, &key, Some(chain), claims, None, unix_now()).unwrap();
    std::fs::write(sig, bundle.to_json()).unwrap();
}

#[test]
fn valid_chain_boots_and_every_attack_stops_at_its_stage() {
    let base = tempfile::tempdir().unwrap();
    let ex = example(base.path());
    let good_dir = base.path().join("example");

    // The valid chain boots; the log replays to the register and survives the state file.
    let se = open_se(&ex.se_dir);
    let log = boot(&ex.chain, se.as_ref()).unwrap();
    assert_eq!(log.events.len(), 5);
    assert_eq!(Register::replay(&log.events).0, log.register);
    let names: Vec<&str> = log.events.iter().map(|e| e.stage.as_str()).collect();
    assert_eq!(names, ["fsbl", "ssbl", "os", "app", "model"]);
    let state = StateDir::open(&base.path().join("state")).unwrap();
    state.record_boot(&log).unwrap();
    assert_eq!(state.boot_log().unwrap(), log);
    drop(se);

    // A hierarchy the device does not trust.
    let rogue = base.path().join("rogue-pki");
    pki(&rogue, "Rogue");

    let attacks = [
        (Attack::FlipByte, FailureKind::Integrity, "modified"),
        (
            Attack::MissingSignature,
            FailureKind::MissingSignature,
            "signature",
        ),
        (
            Attack::UnendorsedKey,
            FailureKind::NotEndorsed,
            "not endorsed",
        ),
        (
            Attack::RolledBack,
            FailureKind::Rollback,
            "below the secure element's counter 2",
        ),
        (
            Attack::WrongHardware,
            FailureKind::WrongHardware,
            "other-board",
        ),
    ];
    for i in 0..5 {
        for (attack, kind, words) in attacks {
            let dir = base.path().join(format!("case-{i}-{attack:?}"));
            copy_tree(&good_dir, &dir);
            let (image, sig) = stage_files(&dir, i);
            let se = open_se(&dir.join("se"));
            match attack {
                Attack::FlipByte => {
                    let mut b = std::fs::read(&image).unwrap();
                    let at = b.len() / 3;
                    b[at] ^= 0x01;
                    std::fs::write(&image, b).unwrap();
                }
                Attack::MissingSignature => std::fs::remove_file(&sig).unwrap(),
                Attack::UnendorsedKey => resign(&dir, &rogue, i, EXAMPLE_HARDWARE, 1),
                Attack::RolledBack => {
                    let name = format!("boot.{}", example::stages(0, 0)[i].name);
                    se.advance_counter(&name, 2).unwrap();
                }
                Attack::WrongHardware => {
                    resign(&dir, &good_dir.join("../pki"), i, "other-board", 1)
                }
            }
            // Later stages are removed: a boot that touched them would fail differently.
            for later in i + 1..5 {
                let (img, s) = stage_files(&dir, later);
                std::fs::remove_file(img).unwrap();
                std::fs::remove_file(s).unwrap();
            }
            let highest = Cell::new(0usize);
            let hook = |index: usize| highest.set(highest.get().max(index));
            let record = boot_chain(
                &dir.join("chain.toml"),
                se.as_ref(),
                &BootOptions {
                    now: unix_now(),
                    hardware: None,
                    before_stage: Some(&hook),
                },
            )
            .unwrap_err();
            let failed = record.stage.as_ref().unwrap();
            assert_eq!(failed.index, i, "{attack:?} at {i}: {record:?}");
            assert_eq!(record.reason, kind, "{attack:?} at {i}: {}", record.message);
            assert!(
                record.message.contains(words),
                "{attack:?} at {i}: {}",
                record.message
            );
            assert_eq!(highest.get(), i, "a later stage was started");
            assert_eq!(record.measured, i);
            assert_eq!(record.register, Register::replay(&log.events[..i]).to_hex());
        }
    }
}

#[test]
fn chain_description_edits_are_caught_by_the_signed_claims() {
    let base = tempfile::tempdir().unwrap();
    let ex = example(base.path());
    let chain = std::fs::read_to_string(&ex.chain).unwrap();
    let se = open_se(&ex.se_dir);

    let dir = base.path().join("example");
    let pki = base.path().join("pki");

    // Unsigned edits are refused before any stage (the policy signature, tests/policy.rs);
    // even a description re-signed by the signing key cannot contradict the stages' own
    // signed claims. Claiming a higher counter does not change the signed one:
    let edited = chain.replacen("security_counter = 1", "security_counter = 9", 1);
    std::fs::write(&ex.chain, edited).unwrap();
    let r = boot(&ex.chain, se.as_ref()).unwrap_err();
    assert_eq!(r.reason, FailureKind::Integrity, "{}", r.message);
    assert!(r.stage.is_none());
    resign_policy(&dir, &pki, 1);
    let r = boot(&ex.chain, se.as_ref()).unwrap_err();
    assert_eq!(r.reason, FailureKind::CounterMismatch, "{}", r.message);

    // A validly signed image of another stage in this stage's place.
    let edited = chain.replacen("stages/0-fsbl.bin", "stages/1-ssbl.bin", 2);
    std::fs::write(&ex.chain, edited).unwrap();
    resign_policy(&dir, &pki, 1);
    let r = boot(&ex.chain, se.as_ref()).unwrap_err();
    assert_eq!(r.reason, FailureKind::WrongStage, "{}", r.message);

    // A device of another class refuses the whole chain before any stage.
    std::fs::write(&ex.chain, &chain).unwrap();
    resign_policy(&dir, &pki, 1);
    let r = boot_chain(
        &ex.chain,
        se.as_ref(),
        &BootOptions {
            now: unix_now(),
            hardware: Some("other-board"),
            before_stage: None,
        },
    )
    .unwrap_err();
    assert_eq!(r.reason, FailureKind::WrongHardware);
    assert!(r.stage.is_none());
}

#[test]
fn confirm_raises_counters_and_an_older_image_is_then_refused() {
    let base = tempfile::tempdir().unwrap();
    let ex = example(base.path());
    let se = open_se(&ex.se_dir);
    let dir = base.path().join("example");
    // Release 2 of the OS stage.
    let old_sig = std::fs::read(stage_files(&dir, 2).1).unwrap();
    resign(&dir, &base.path().join("pki"), 2, EXAMPLE_HARDWARE, 2);
    let chain = std::fs::read_to_string(&ex.chain).unwrap();
    let v2 = chain.replace(
        "signature = \"stages/2-os.img.sig\"\nsecurity_counter = 1",
        "signature = \"stages/2-os.img.sig\"\nsecurity_counter = 2",
    );
    let chain_sig = std::fs::read(dir.join("chain.toml.sig")).unwrap();
    std::fs::write(&ex.chain, &v2).unwrap();
    resign_policy(&dir, &base.path().join("pki"), 1);
    let log: BootLog = boot(&ex.chain, se.as_ref()).unwrap();
    // Not confirmed yet: the old release still boots.
    std::fs::write(stage_files(&dir, 2).1, &old_sig).unwrap();
    std::fs::write(&ex.chain, &chain).unwrap();
    std::fs::write(dir.join("chain.toml.sig"), &chain_sig).unwrap();
    boot(&ex.chain, se.as_ref()).unwrap();
    // Confirmed: the old release is a rollback.
    confirm(se.as_ref(), &log).unwrap();
    assert_eq!(se.counter("boot.os").unwrap(), 2);
    let r = boot(&ex.chain, se.as_ref()).unwrap_err();
    assert_eq!(r.reason, FailureKind::Rollback);
    assert_eq!(r.stage.unwrap().name, "os");
}

#[test]
fn a_wiped_element_refuses_to_boot() {
    let base = tempfile::tempdir().unwrap();
    let ex = example(base.path());
    let se = open_se(&ex.se_dir);
    se.wipe().unwrap();
    let r = boot(&ex.chain, se.as_ref()).unwrap_err();
    assert_eq!(r.reason, FailureKind::NotProvisioned, "{}", r.message);
}
