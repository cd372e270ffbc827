//! CRL numbering: the ceremony writes number 1, every re-issue (revocation or refresh) takes
//! the next number, the number and the entries live in `crl.pem` itself (a new `Hierarchy`
//! over the same directory continues from them), and a refused re-issue spends no number.

use std::fs;

use edgeward_pki::{files, hierarchy::CRL_VALIDITY_DAYS, Hierarchy, RootKey};
use time::Duration;

use crate::common::{crl, init, now, openssl, refused, root};

#[test]
fn the_ceremony_writes_crl_number_1_signed_by_the_root() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t0 = now();
    init(dir.path(), 90, t0);
    let c = crl(dir.path());
    assert_eq!(c.number, 1);
    assert!(c.serials.is_empty(), "{c:?}");
    assert_eq!(c.this_update, t0.unix_timestamp());
    assert_eq!(c.next_update - c.this_update, CRL_VALIDITY_DAYS * 86_400);
    let (ok, text) = openssl(
        dir.path(),
        &[
            "crl",
            "-in",
            files::CRL,
            "-CAfile",
            files::ROOT_CERT,
            "-noout",
        ],
    );
    assert!(ok, "{text}");
    assert_eq!(text.trim(), "verify OK");
}

#[test]
fn every_reissue_takes_the_next_number_and_keeps_the_entries_across_reopening() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t0 = now();
    let h = init(dir.path(), 90, t0);
    h.revoke(&root(), "01", t0).expect("revoke 01");
    assert_eq!(crl(dir.path()).number, 2);
    h.refresh_crl(&root(), t0 + Duration::hours(1))
        .expect("refresh");
    let c = crl(dir.path());
    assert_eq!(
        (c.number, c.serials.as_slice()),
        (3, ["01".to_string()].as_slice())
    );
    assert_eq!(c.this_update, (t0 + Duration::hours(1)).unix_timestamp());
    drop(h);

    // Nothing is remembered outside crl.pem: a fresh handle continues the sequence.
    let h = Hierarchy::open(dir.path()).expect("open");
    h.refresh_crl(&root(), t0 + Duration::hours(2))
        .expect("refresh");
    assert_eq!(crl(dir.path()).number, 4);
    h.revoke(&root(), "02", t0 + Duration::hours(3))
        .expect("revoke 02");
    let c = crl(dir.path());
    assert_eq!(c.number, 5);
    assert_eq!(c.serials, ["01", "02"]);
    assert_eq!(c.this_update, (t0 + Duration::hours(3)).unix_timestamp());
}

#[test]
fn a_refused_reissue_leaves_the_crl_and_spends_no_number() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t0 = now();
    let h = init(dir.path(), 90, t0);
    let before = fs::read(h.path(files::CRL)).expect("crl");
    let wrong = RootKey {
        path: None,
        passphrase: b"not the passphrase",
    };
    assert_eq!(
        refused(h.refresh_crl(&wrong, t0)),
        format!(
            "{}: wrong passphrase for the root key",
            h.path(files::ROOT_KEY).display()
        )
    );
    assert_eq!(fs::read(h.path(files::CRL)).expect("crl"), before);
    h.refresh_crl(&root(), t0).expect("refresh");
    assert_eq!(crl(dir.path()).number, 2);
}
