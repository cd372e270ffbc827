//! Helpers for the CLI's integration tests: run `edgeward` and the real peer tools.
//! A missing peer tool fails the test with a message; nothing is skipped.
#![allow(dead_code)]

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

pub(crate) const PASS: &str = "integration-test-passphrase";

/// The `edgeward` binary under test: Cargo's, or `$EDGEWARD_BIN` (for a target directory
/// shared by several worktrees, where Cargo's copy may be another worktree's build).
pub(crate) fn edgeward_bin() -> std::ffi::OsString {
    std::env::var_os("EDGEWARD_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_edgeward").into())
}

/// `edgeward` ([`edgeward_bin`]) with the test root passphrase in its environment.
pub(crate) fn edgeward() -> Command {
    let mut c = Command::new(edgeward_bin());
    c.env("EDGEWARD_ROOT_PASSPHRASE", PASS);
    c
}

/// The Python with `cryptography` and `model_signing` that scripts/test.sh installs.
pub(crate) fn python() -> PathBuf {
    tool("EDGEWARD_PYTHON", "/var/cache/edgeward/venv/bin/python")
}

/// The `model_signing` CLI that scripts/test.sh installs.
pub(crate) fn model_signing() -> PathBuf {
    tool(
        "EDGEWARD_MODEL_SIGNING",
        "/var/cache/edgeward/venv/bin/model_signing",
    )
}

fn tool(var: &str, default: &str) -> PathBuf {
    let p = std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(default));
    assert!(
        p.exists(),
        "{} not found (set {var} or run scripts/test.sh, which installs it)",
        p.display()
    );
    p
}

/// Runs a command, returning its output (never panics on a non-zero exit).
pub(crate) fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// Runs a command that must succeed; returns stdout.
pub(crate) fn ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a command that must exit with `code`; returns stderr.
pub(crate) fn fails(cmd: &mut Command, code: i32) -> String {
    let out = run(cmd);
    assert_eq!(
        out.status.code(),
        Some(code),
        "{cmd:?}:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub(crate) fn openssl() -> Command {
    Command::new("openssl")
}

/// Whether `openssl dgst -sha256 -verify PUBKEY -signature SIG DATA` accepts the signature.
pub(crate) fn openssl_verifies(pubkey: &Path, signature: &Path, data: &Path) -> bool {
    let out = run(openssl()
        .args(["dgst", "-sha256", "-verify"])
        .arg(pubkey)
        .arg("-signature")
        .arg(signature)
        .arg(data));
    out.status.success() && String::from_utf8_lossy(&out.stdout).contains("Verified OK")
}

/// Deterministic pseudo-random bytes.
pub(crate) fn bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// A small model directory: a config, weights over several shards, a nested file, git junk.
pub(crate) fn make_model(dir: &Path) {
    std::fs::create_dir_all(dir.join("tokenizer")).expect("mkdir");
    std::fs::create_dir_all(dir.join(".git")).expect("mkdir");
    std::fs::write(dir.join("config.json"), br#"{"hidden": 64}"#).expect("write");
    std::fs::write(
        dir.join("model.safetensors"),
        bytes(5 * 1024 * 1024 + 17, 3),
    )
    .expect("write");
    std::fs::write(dir.join("tokenizer/vocab.txt"), b"a\nb\n").expect("write");
    std::fs::write(dir.join(".git/HEAD"), b"ref: refs/heads/main\n").expect("write");
}

/// Runs `edgeward pki init` in `dir`.
pub(crate) fn pki(dir: &Path) {
    ok(edgeward().args(["pki", "init", "--dir"]).arg(dir));
}

/// An Ed25519 key made by `openssl genpkey` in `dir`, and its public key: (key, pub).
pub(crate) fn ed25519_keypair(dir: &Path) -> (PathBuf, PathBuf) {
    let (key, pubkey) = (dir.join("ed.pem"), dir.join("ed.pub"));
    ok(openssl()
        .args(["genpkey", "-algorithm", "ed25519", "-out"])
        .arg(&key));
    ok(openssl()
        .args(["pkey", "-pubout", "-in"])
        .arg(&key)
        .arg("-out")
        .arg(&pubkey));
    (key, pubkey)
}
