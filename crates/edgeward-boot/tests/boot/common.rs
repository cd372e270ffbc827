//! Fixtures for the boot tests: a real key hierarchy, a five-stage example chain signed
//! under it, and a software secure element provisioned with its root.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use edgeward_boot::{
    boot::{boot_chain, BootOptions},
    example::{self, Example},
    measure::BootLog,
    recovery::RecoveryRecord,
};
use edgeward_se::SecureElement;
use time::OffsetDateTime;

pub(crate) const PASS: &[u8] = b"boot-test-passphrase";

pub(crate) fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

pub(crate) use edgeward_core::civil::unix_now;

/// `edgeward pki init` in `dir`.
pub(crate) fn pki(dir: &Path, org: &str) {
    edgeward_pki::Hierarchy::init(
        dir,
        org,
        PASS,
        90,
        edgeward_core::keys::KeyAlgorithm::P256,
        now(),
    )
    .unwrap();
}

pub(crate) fn open_se(dir: &Path) -> Box<dyn SecureElement> {
    edgeward_se::open(&format!("soft:{}", dir.display())).unwrap()
}

/// A hierarchy in `base/pki` and the example chain in `base/example` (small stages).
pub(crate) fn example(base: &Path) -> Example {
    pki(&base.join("pki"), "Boot Test");
    let out = base.join("example");
    let se = open_se(&out.join("se"));
    example::write_example(
        &base.join("pki"),
        &out,
        se.as_ref(),
        2 << 20,
        3 << 20,
        now(),
    )
    .unwrap()
}

/// Copies a directory tree.
pub(crate) fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), &dest).unwrap();
        }
    }
}

pub(crate) fn boot(chain: &Path, se: &dyn SecureElement) -> Result<BootLog, Box<RecoveryRecord>> {
    boot_chain(
        chain,
        se,
        &BootOptions {
            now: unix_now(),
            ..BootOptions::default()
        },
    )
}

/// The files of stage `i` of an example rooted at `dir`: (image, signature).
pub(crate) fn stage_files(dir: &Path, i: usize) -> (PathBuf, PathBuf) {
    let stages = example::stages(0, 0);
    let image = dir.join("stages").join(&stages[i].file);
    let sig = dir.join("stages").join(format!("{}.sig", stages[i].file));
    (image, sig)
}

/// Re-signs the example's chain description (as it now is on disk) with the hierarchy in
/// `pki`, at policy security counter `counter`.
pub(crate) fn resign_policy(dir: &Path, pki: &Path, counter: u64) {
    let (key, chain) = example::signer(pki).unwrap();
    edgeward_boot::signing::sign_policy(
        &dir.join("chain.toml"),
        &key,
        chain,
        example::EXAMPLE_HARDWARE,
        counter,
        unix_now(),
    )
    .unwrap();
}

/// Boots with the device clock reading `clock` (Unix seconds).
pub(crate) fn boot_at(
    chain: &Path,
    se: &dyn SecureElement,
    clock: u64,
) -> Result<BootLog, Box<RecoveryRecord>> {
    boot_chain(
        chain,
        se,
        &BootOptions {
            now: clock,
            ..BootOptions::default()
        },
    )
}
