//! Fixtures: a hierarchy made at a fixed instant, the root key to sign with, the CRL as a
//! verifier reads it, and `refused`, which insists on a policy refusal and returns its text.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use edgeward_core::keys::KeyAlgorithm;
use edgeward_pki::{files, Hierarchy, PkiError, RootKey};
use time::OffsetDateTime;
use x509_parser::prelude::FromDer;

/// The root passphrase of every test hierarchy.
pub(crate) const PASS: &[u8] = b"pki-test-passphrase";

/// Now, to whole seconds (certificates and CRLs keep whole seconds).
pub(crate) fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc().replace_nanosecond(0).unwrap()
}

/// The ceremony in `dir` at `now` with a P-256 signing certificate valid for `days`.
pub(crate) fn init(dir: &Path, days: i64, now: OffsetDateTime) -> Hierarchy {
    Hierarchy::init(dir, "PKI Test", PASS, days, KeyAlgorithm::P256, now).expect("init")
}

/// The root key at `DIR/root.key` with the right passphrase.
pub(crate) fn root() -> RootKey<'static> {
    RootKey {
        path: None,
        passphrase: PASS,
    }
}

/// The text of a policy refusal; any other outcome fails the test with what happened.
pub(crate) fn refused<T: std::fmt::Debug>(result: Result<T, PkiError>) -> String {
    match result {
        Err(PkiError::Refused(text)) => text,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// Serial (lowercase hex, as `pki show` prints it) of the certificate in a PEM file.
pub(crate) fn serial_of(path: &Path) -> String {
    let pem = fs::read(path).expect("certificate");
    let der = edgeward_core::pem::parse_labelled(&pem, "CERTIFICATE").expect("pem");
    edgeward_core::cert_policy::cert_info(&der[0])
        .expect("certificate")
        .serial
}

/// The CRL of a hierarchy as a verifier reads it.
#[derive(Debug)]
pub(crate) struct Crl {
    /// The CRL number.
    pub(crate) number: u64,
    /// Revoked serials, lowercase hex.
    pub(crate) serials: Vec<String>,
    /// thisUpdate and nextUpdate, Unix seconds.
    pub(crate) this_update: i64,
    pub(crate) next_update: i64,
}

/// Parses `DIR/crl.pem` (x509-parser, not the rcgen that wrote it).
pub(crate) fn crl(dir: &Path) -> Crl {
    let pem = fs::read(dir.join(files::CRL)).expect("crl.pem");
    let der = edgeward_core::pem::parse_labelled(&pem, "X509 CRL").expect("pem");
    let (_, crl) =
        x509_parser::revocation_list::CertificateRevocationList::from_der(&der[0]).expect("crl");
    Crl {
        number: u64::try_from(crl.crl_number().expect("a CRL number").clone()).expect("u64"),
        serials: crl
            .iter_revoked_certificates()
            .map(|r| hex::encode(r.raw_serial()))
            .collect(),
        this_update: crl.last_update().timestamp(),
        next_update: crl.next_update().expect("nextUpdate").timestamp(),
    }
}

/// Runs openssl with `args` in `dir`; returns whether it succeeded and its stdout + stderr.
pub(crate) fn openssl(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs (scripts/test.sh installs it)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The names in `dir`, sorted.
pub(crate) fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|entries| {
            entries
                .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Every file of the hierarchy and its bytes, to show a refusal changed nothing.
pub(crate) fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).expect("dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let bytes = fs::read(&path).expect("file");
                out.push((path, bytes));
            }
        }
    }
    out.sort();
    out
}
