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

/// The key id of `edgeward sign`'s output line (`… with ALG key ID → SIG`).
fn signed_with(out: &str) -> String {
    out.split(" key ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no key id in {out:?}"))
        .to_string()
}

#[test]
fn sign_verify_and_a_key_mismatch_name_a_key_the_same_way() {
    let t = tempfile::tempdir().expect("tmp");
    let d = t.path();
    let fw = d.join("fw.bin");
    fs::write(&fw, bytes(10_000, 2)).expect("write");
    for who in ["a", "b"] {
        fs::create_dir_all(d.join(who)).expect("mkdir");
    }
    let (a_key, a_pub) = ed25519_keypair(&d.join("a"));
    let (b_key, b_pub) = ed25519_keypair(&d.join("b"));
    let sign = |key: &Path, out: &Path| {
        signed_with(&ok(edgeward()
            .arg("sign")
            .arg(&fw)
            .arg("--key")
            .arg(key)
            .arg("-o")
            .arg(out)))
    };
    let (a_sig, b_sig) = (d.join("a.sig"), d.join("b.sig"));
    let a_id = sign(&a_key, &a_sig);
    let b_id = sign(&b_key, &b_sig);
    assert_ne!(a_id, b_id);

    // The id is the model-signing hint's first 16 hex digits: SHA-256 of the PEM public key
    // as OpenSSL writes it.
    let pem = ok(openssl().args(["pkey", "-pubin", "-in"]).arg(&a_pub));
    assert_eq!(
        a_id,
        hex::encode(edgeward_core::sha256(pem.as_bytes()))[..16]
    );
    // verify reports the same id.
    let v: serde_json::Value = serde_json::from_str(&ok(verify(&fw, &a_sig)
        .arg("--pubkey")
        .arg(&a_pub)
        .arg("--json")))
    .expect("json");
    assert_eq!(v["details"]["key"], a_id.as_str(), "{v}");

    // A's bundle given B's public key: both named by those ids, and what to pass instead.
    let err = fails(verify(&fw, &a_sig).arg("--pubkey").arg(&b_pub), 1);
    assert_eq!(
        err,
        format!(
            "edgeward: key mismatch: the bundle was signed by key {a_id}, not by the trusted key {b_id} (pass the public key of key {a_id}, the key id that sign printed, as --pubkey)\n"
        )
    );
}
