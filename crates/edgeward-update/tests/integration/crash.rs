//! The crash harness: the installer is killed at every write point — after each write,
//! fsync and rename of an update and of the start that confirms it — and the device must
//! come up on a complete slot whose bytes match the signed release it is recorded as, with
//! the anti-rollback counter equal to that release's counter; then the update must finish.
//!
//! Each run starts from a copy of the same device (v1 installed and confirmed, v2 offered);
//! a child process runs update + start with a hook that exits at write point N, for
//! N = 1, 2, … until a child finishes without reaching N. The number of points is printed
//! and checked against the count the uninterrupted child reports.

use std::path::Path;
use std::process::Command;

use edgeward_update::install::{Outcome, Started};

use crate::delta::noise;
use crate::install::{publish, Device, Kinds, CRASHED};
use crate::sim::SimRepo;

fn copy_dir(from: &Path, to: &Path) {
    let status = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .expect("cp");
    assert!(status.success());
}

/// Kills the installer at every write point of a v1 → v2 update; returns how many.
fn every_write_point(kind: Kinds) -> u64 {
    let mut repo = SimRepo::new();
    let template = Device::new(&repo, kind);
    let v1 = noise(64 << 10, 1);
    publish(&mut repo, "fw.img", &v1, "1.0.0", "rpi4", 3);
    template.update().expect("v1");
    assert!(matches!(
        template.start(),
        Started::Confirmed { counter: 3, .. }
    ));
    let mut v2 = v1.clone();
    v2[20_000..21_000].copy_from_slice(&noise(1000, 5));
    v2.extend_from_slice(&noise(8 << 10, 6));
    publish(&mut repo, "fw.img", &v2, "2.0.0", "rpi4", 5);

    let scratch = tempfile::tempdir().expect("tempdir");
    let mut n = 1;
    loop {
        let dir = scratch.path().join(format!("run-{n}"));
        copy_dir(&template.dir, &dir);
        let d = Device::at(&dir, &repo.metadata_url(), &repo.targets_url(), kind);
        let (code, out) = d.in_child(kind, "update+start", Some(n), None);
        if code == 0 {
            let points: u64 = out
                .lines()
                .find_map(|l| l.split("POINTS ").nth(1))
                .and_then(|p| p.trim().parse().ok())
                .unwrap_or_else(|| panic!("no point count in {out}"));
            assert_eq!(points, n - 1, "the uninterrupted run counted differently");
            let mut kinds = std::collections::BTreeMap::<&str, u32>::new();
            for what in out
                .lines()
                .filter_map(|l| l.split_once("POINT ")?.1.split_once(": "))
            {
                *kinds.entry(what.1).or_default() += 1;
            }
            println!("{kind:?}: {kinds:?}");
            assert_eq!(d.active_bytes(), Some(v2.clone()));
            assert_eq!(d.counter(), 5);
            return points;
        }
        assert_eq!(code, CRASHED, "run {n} failed rather than crashed: {out}");

        // The device comes up: whatever the start decides, it runs a complete, signed
        // release with consistent counters.
        let started = d.start();
        let state = d.state();
        assert!(
            state.trial.is_none(),
            "run {n}: still on trial after a start"
        );
        assert_eq!(state.raise_counter, None, "run {n}");
        let release = state
            .active_release()
            .unwrap_or_else(|| panic!("run {n}: active slot {} unknown", state.active));
        let bytes = d
            .active_bytes()
            .unwrap_or_else(|| panic!("run {n}: no active slot"));
        let expected = if release.version == "2.0.0" { &v2 } else { &v1 };
        assert!(
            bytes == *expected,
            "run {n}: the active slot does not hold {}",
            release.version
        );
        assert_eq!(
            d.counter(),
            release.security_counter,
            "run {n}: counter after {started:?}"
        );
        if kind == Kinds::Versions {
            assert_eq!(
                d.current_bytes().as_ref(),
                Some(expected),
                "run {n}: current link"
            );
        }

        // And the update completes from there.
        match d
            .update()
            .unwrap_or_else(|e| panic!("run {n}: resuming: {e}"))
        {
            Outcome::Installed { .. } => {
                assert!(
                    matches!(d.start(), Started::Confirmed { counter: 5, .. }),
                    "run {n}"
                )
            }
            Outcome::Nothing(v) => assert_eq!(v, "2.0.0", "run {n}"),
        }
        assert_eq!(d.active_bytes(), Some(v2.clone()), "run {n}");
        assert_eq!(d.counter(), 5, "run {n}");
        n += 1;
    }
}

#[test]
fn a_crash_at_any_write_point_of_an_ab_update_leaves_a_bootable_slot() {
    let points = every_write_point(Kinds::Slots);
    println!("A/B slots: {points} write points, each survived");
    assert!(points >= 20, "suspiciously few write points: {points}");
}

#[test]
fn a_crash_at_any_write_point_of_a_versioned_update_leaves_a_working_link() {
    let points = every_write_point(Kinds::Versions);
    println!("versioned directories: {points} write points, each survived");
    assert!(points >= 20, "suspiciously few write points: {points}");
}
