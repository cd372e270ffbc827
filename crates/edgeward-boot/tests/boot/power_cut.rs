//! Power cuts around an A/B update of one stage: a crash is injected after every install
//! step; on the next power-on the device must boot a validly signed image and the element's
//! counter must never be above the installed (active) image's counter. Raising the counter
//! before confirming is shown to break that.

use crate::common::*;
use edgeward_boot::{
    ab::{AbStage, Order, STEPS},
    example::{self, EXAMPLE_HARDWARE},
    signing::sign_stage,
    stage::StageTrust,
};
use edgeward_core::{pem, statement::BootClaims};

struct Release {
    image: std::path::PathBuf,
    sig: std::path::PathBuf,
}

fn release(dir: &std::path::Path, pki: &std::path::Path, counter: u64, seed: u64) -> Release {
    let image = dir.join(format!("os-v{counter}.img"));
    example::write_pseudo_random(&image, 1 << 20, seed).unwrap();
    let (key, chain) = example::signer(pki).unwrap();
    let claims = BootClaims {
        stage: Some("os".into()),
        hardware: Some(EXAMPLE_HARDWARE.into()),
        security_counter: Some(counter),
    };
    let bundle = sign_stage(&image, &key, Some(chain), claims, None, unix_now()).unwrap();
    let sig = dir.join(format!("os-v{counter}.img.sig"));
    std::fs::write(&sig, bundle.to_json()).unwrap();
    Release { image, sig }
}

/// Runs every crash point with `order`; returns the crash points that broke the invariant.
fn run(order: Order) -> Vec<String> {
    let base = tempfile::tempdir().unwrap();
    let pki_dir = base.path().join("pki");
    pki(&pki_dir, "Power Cut");
    let root = pem::parse_labelled(
        &std::fs::read(pki_dir.join("root.pem")).unwrap(),
        "CERTIFICATE",
    )
    .unwrap();
    let v1 = release(base.path(), &pki_dir, 1, 1);
    let v2 = release(base.path(), &pki_dir, 2, 2);
    let mut broken = Vec::new();
    let crash_points = STEPS.iter().map(Some).chain([None]);
    for (n, crash) in crash_points.enumerate() {
        let dev = base.path().join(format!("device-{n}"));
        let se = open_se(&dev.join("se"));
        let stage = AbStage {
            dir: dev.clone(),
            name: "os".into(),
            se: se.as_ref(),
            trust: StageTrust {
                roots: &root,
                crls: &[],
                now: unix_now(),
                hardware: EXAMPLE_HARDWARE,
            },
        };
        stage.factory_install(&v1.image, &v1.sig).unwrap();
        assert_eq!(stage.power_on().unwrap().counter, 1);
        stage
            .install(&v2.image, &v2.sig, order, crash.copied())
            .unwrap();
        // Power comes back (twice: a trial interrupted by the cut must resolve too).
        for _ in 0..2 {
            let booted = stage
                .power_on()
                .unwrap_or_else(|e| panic!("{crash:?}: device bricked: {e}"));
            assert!(stage.verify_slot(booted.slot).is_ok());
            let active = stage.state().unwrap().active;
            let active_counter = stage.verify_slot(active).ok();
            let counter = se.counter("boot.os").unwrap();
            if active_counter.is_none_or(|c| counter > c) || counter > booted.counter {
                broken.push(format!(
                    "{order:?} crash after {crash:?}: counter {counter}, active {active:?} ({active_counter:?}), booted {booted:?}"
                ));
            }
        }
        let end = stage.power_on().unwrap();
        if crash.is_none() {
            assert_eq!((end.counter, se.counter("boot.os").unwrap()), (2, 2));
        }
    }
    broken
}

#[test]
fn every_power_cut_leaves_a_signed_image_and_a_counter_not_above_it() {
    let broken = run(Order::CounterLast);
    assert!(broken.is_empty(), "{broken:#?}");
}

#[test]
fn raising_the_counter_before_confirm_is_unsafe() {
    let broken = run(Order::CounterBeforeConfirm);
    assert!(
        !broken.is_empty(),
        "the wrong order should have been caught"
    );
}
