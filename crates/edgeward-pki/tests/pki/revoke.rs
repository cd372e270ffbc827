//! Revocation: the serial goes into a root-signed CRL that openssl then enforces, in any of
//! the spellings `pki show` and `openssl x509 -serial` print; a serial is revoked once; bad
//! serials and wrong root keys are refused with the CRL untouched.

use std::fs;

use edgeward_pki::{files, Hierarchy, RootKey};

use crate::common::{crl, init, now, openssl, refused, root, serial_of};

/// `openssl verify` of the signing certificate against the root, checking the CRL.
fn verify_with_crl(dir: &std::path::Path) -> (bool, String) {
    openssl(
        dir,
        &[
            "verify",
            "-crl_check",
            "-CRLfile",
            files::CRL,
            "-CAfile",
            files::ROOT_CERT,
            files::SIGNING_CERT,
        ],
    )
}

#[test]
fn a_revoked_signing_certificate_is_listed_warned_about_and_refused_by_openssl() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t0 = now();
    let h = init(dir.path(), 90, t0);
    let serial = serial_of(&h.path(files::SIGNING_CERT));
    let (ok, text) = verify_with_crl(dir.path());
    assert!(ok, "before revocation: {text}");

    assert!(
        h.revoke(&root(), &serial, t0).expect("revoke"),
        "a known serial"
    );

    assert_eq!(crl(dir.path()).serials, std::slice::from_ref(&serial));
    let summaries = h.show(t0).expect("show");
    let signing = summaries
        .iter()
        .find(|c| c.role == "signing")
        .expect("signing");
    assert!(signing.revoked);
    assert!(
        Hierarchy::warnings(&summaries).contains(&format!(
            "the signing certificate (serial {serial}) is revoked"
        )),
        "{:?}",
        Hierarchy::warnings(&summaries)
    );
    let (ok, text) = verify_with_crl(dir.path());
    assert!(!ok, "{text}");
    assert!(
        text.contains("error 23 at 0 depth lookup: certificate revoked"),
        "{text}"
    );
}

#[test]
fn a_serial_is_revoked_once_whatever_its_spelling() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t0 = now();
    let h = init(dir.path(), 90, t0);
    let serial = serial_of(&h.path(files::DEVICE_CA_CERT));
    // As `openssl x509 -serial` prints it (upper case), with a 0X prefix and colons.
    let spelled = format!(
        "0X{}",
        serial
            .to_ascii_uppercase()
            .as_bytes()
            .chunks(2)
            .map(|pair| std::str::from_utf8(pair).expect("ascii"))
            .collect::<Vec<_>>()
            .join(":")
    );
    assert!(h.revoke(&root(), &spelled, t0).expect("revoke"));
    assert_eq!(crl(dir.path()).serials, std::slice::from_ref(&serial));

    let before = fs::read(h.path(files::CRL)).expect("crl");
    assert_eq!(
        refused(h.revoke(&root(), &serial, t0)),
        format!("serial {serial} is already revoked")
    );
    assert_eq!(fs::read(h.path(files::CRL)).expect("crl"), before);
}

#[test]
fn a_serial_of_no_certificate_here_is_revoked_and_reported_unknown() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t0 = now();
    let h = init(dir.path(), 90, t0);
    assert!(!h.revoke(&root(), "0123abcd", t0).expect("revoke"));
    assert_eq!(crl(dir.path()).serials, ["0123abcd"]);
}

#[test]
fn bad_serials_and_wrong_root_keys_are_refused_and_the_crl_is_untouched() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t0 = now();
    let h = init(dir.path(), 90, t0);
    let before = fs::read(h.path(files::CRL)).expect("crl");
    let wrong = RootKey {
        path: None,
        passphrase: b"not the passphrase",
    };
    // The serial is checked first: a typo never costs a passphrase prompt.
    for bad in ["", "abc", "xyz1", "12 34"] {
        assert_eq!(
            refused(h.revoke(&wrong, bad, t0)),
            format!("{bad:?} is not a hex serial number")
        );
    }
    assert_eq!(
        refused(h.revoke(&wrong, "01", t0)),
        format!(
            "{}: wrong passphrase for the root key",
            h.path(files::ROOT_KEY).display()
        )
    );
    assert_eq!(fs::read(h.path(files::CRL)).expect("crl"), before);
    assert_eq!(crl(dir.path()).number, 1);
}
