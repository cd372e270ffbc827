//! The usual mix-ups get a refusal that says what to do instead: a root certificate as
//! `--pubkey`, a public key as `--trust-root`, a certificate or public key as `sign --key`, a
//! directory as `--signature`, no trust flag at all; and one key identifier in every message.

use crate::common::*;
use std::{fs, path::Path};

fn verify(path: &Path, sig: &Path) -> std::process::Command {
    let mut c = edgeward();
    c.arg("verify").arg(path).arg("--signature").arg(sig);
    c
}

#[test]
fn mixed_up_files_get_a_hint_naming_the_right_flag() {
    let t = tempfile::tempdir().expect("tmp");
    let d = t.path();
    let p = d.join("pki");
    pki(&p);
    let fw = d.join("fw.bin");
    fs::write(&fw, bytes(10_000, 1)).expect("write");
    let sig = d.join("fw.sig");
    ok(edgeward()
        .arg("sign")
        .arg(&fw)
        .arg("--key")
        .arg(p.join("signing.key"))
        .arg("--cert-chain")
        .arg(p.join("signing-chain.pem"))
        .arg("-o")
        .arg(&sig));
    let root = p.join("root.pem");

    // A root certificate as --pubkey.
    let err = fails(verify(&fw, &sig).arg("--pubkey").arg(&root), 1);
    let root_subject = "CN=Edgeward Root CA,O=Edgeward";
    assert!(
        err.ends_with(&format!(
            " ({} is a root certificate ({root_subject}): to trust the signing certificates it endorses, use --trust-root {})\n",
            root.display(),
            root.display()
        )),
        "{err}"
    );
    assert!(err.starts_with("edgeward: key mismatch: "), "{err}");

    // A public key as --trust-root.
    let public = d.join("signing.pub");
    ok(openssl()
        .args(["x509", "-pubkey", "-noout", "-in"])
        .arg(p.join("signing.pem"))
        .arg("-out")
        .arg(&public));
    let err = fails(verify(&fw, &sig).arg("--trust-root").arg(&public), 2);
    assert_eq!(
        err,
        format!(
            "edgeward: {} holds a public key, not a root certificate: to trust exactly this key, use --pubkey {}\n",
            public.display(),
            public.display()
        )
    );

    // A certificate, or a public key, as sign --key.
    for (given, what) in [
        (p.join("signing.pem"), "a certificate"),
        (public.clone(), "a public key"),
    ] {
        let err = fails(
            edgeward()
                .arg("sign")
                .arg(&fw)
                .arg("--key")
                .arg(&given)
                .arg("-o")
                .arg(d.join("x.sig")),
            2,
        );
        let tail = if what == "a certificate" {
            "--key takes the signing key (e.g. pki/signing.key), and the certificate chain goes in --cert-chain"
        } else {
            "--key takes the signing key (e.g. pki/signing.key)"
        };
        assert_eq!(
            err,
            format!(
                "edgeward: {} holds {what}, not a private key: {tail}\n",
                given.display()
            )
        );
    }

    // A directory as --signature.
    let err = fails(verify(&fw, d).arg("--pubkey").arg(&public), 2);
    assert_eq!(
        err,
        format!(
            "edgeward: {} is a directory: --signature takes the signature file (a bundle such as model.sig, or a raw signature with --raw)\n",
            d.display()
        )
    );

    // Nothing to trust: the message names both flags.
    let err = fails(&mut verify(&fw, &sig), 2);
    assert_eq!(
        err,
        "edgeward: nothing to trust: give --pubkey PUB (exactly this signer's public key) or --trust-root ROOT (signing certificates this root endorses), or --sigstore-trusted-root for a keyless Sigstore bundle\n"
    );

    // The right flags verify.
    ok(verify(&fw, &sig).arg("--pubkey").arg(&public));
    ok(verify(&fw, &sig).arg("--trust-root").arg(&root));
}
