//! Interop with the real `openssl` CLI, in both directions: raw signatures made by
//! `openssl dgst -sha256 -sign` (EC P-256, RSA-3072 PKCS#1 v1.5 and PSS) and
//! `openssl pkeyutl -sign -rawin` (Ed25519) verify with `edgeward verify --raw`, and
//! `edgeward sign --raw` output verifies with openssl. The hierarchy's files are read by
//! openssl: the encrypted root key, the chains and the CRL.

use crate::common::*;
use std::fs;

#[test]
fn ec_p256_raw_signatures_interoperate_both_ways() {
    let t = tempfile::tempdir().expect("tmp");
    let d = t.path();
    let fw = d.join("firmware.bin");
    fs::write(&fw, bytes(3_000_001, 1)).expect("write");
    // PKCS#8 (genpkey) and SEC1 (ecparam -genkey) keys, as teams have them.
    ok(openssl()
        .args([
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
        ])
        .arg(d.join("k8.pem")));
    ok(openssl()
        .args([
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
        ])
        .arg(d.join("sec1.pem")));
    for key in ["k8.pem", "sec1.pem"] {
        let key = d.join(key);
        let pubkey = d.join("pub.pem");
        ok(openssl()
            .args(["pkey", "-pubout", "-in"])
            .arg(&key)
            .arg("-out")
            .arg(&pubkey));

        let osig = d.join("openssl.sig");
        ok(openssl()
            .args(["dgst", "-sha256", "-sign"])
            .arg(&key)
            .arg("-out")
            .arg(&osig)
            .arg(&fw));
        ok(edgeward()
            .args(["verify", "--raw"])
            .arg(&fw)
            .arg("--signature")
            .arg(&osig)
            .arg("--pubkey")
            .arg(&pubkey));

        let esig = d.join("edgeward.sig");
        ok(edgeward()
            .args(["sign", "--raw"])
            .arg(&fw)
            .arg("--key")
            .arg(&key)
            .arg("-o")
            .arg(&esig));
        let len = fs::metadata(&esig).expect("sig").len();
        assert!(
            (8..=72).contains(&len),
            "DER ECDSA signature of {len} bytes"
        );
        assert!(openssl_verifies(&pubkey, &esig, &fw));

        // The same signature over a one-byte-different file is refused by both.
        let mut other = fs::read(&fw).expect("read");
        other[1_500_000] ^= 1;
        let fw2 = d.join("tampered.bin");
        fs::write(&fw2, other).expect("write");
        let err = fails(
            edgeward()
                .args(["verify", "--raw"])
                .arg(&fw2)
                .arg("--signature")
                .arg(&esig)
                .arg("--pubkey")
                .arg(&pubkey),
            1,
        );
        assert!(err.contains("is not by key"), "{err}");
        assert!(!openssl_verifies(&pubkey, &esig, &fw2));
    }
}

#[test]
fn rsa_3072_signatures_from_openssl_verify() {
    let t = tempfile::tempdir().expect("tmp");
    let d = t.path();
    let fw = d.join("fw.bin");
    fs::write(&fw, bytes(100_000, 2)).expect("write");
    let key = d.join("rsa.pem");
    let pubkey = d.join("rsa.pub");
    ok(openssl()
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:3072",
            "-out",
        ])
        .arg(&key));
    ok(openssl()
        .args(["pkey", "-pubout", "-in"])
        .arg(&key)
        .arg("-out")
        .arg(&pubkey));
    for extra in [
        &[][..],
        &["-sigopt", "rsa_padding_mode:pss"][..],
        &[
            "-sigopt",
            "rsa_padding_mode:pss",
            "-sigopt",
            "rsa_pss_saltlen:digest",
        ][..],
    ] {
        let sig = d.join("rsa.sig");
        ok(openssl()
            .args(["dgst", "-sha256", "-sign"])
            .arg(&key)
            .args(extra)
            .arg("-out")
            .arg(&sig)
            .arg(&fw));
        ok(edgeward()
            .args(["verify", "--raw"])
            .arg(&fw)
            .arg("--signature")
            .arg(&sig)
            .arg("--pubkey")
            .arg(&pubkey));
        let mut bad = fs::read(&sig).expect("sig");
        bad[100] ^= 0x40;
        fs::write(&sig, bad).expect("write");
        fails(
            edgeward()
                .args(["verify", "--raw"])
                .arg(&fw)
                .arg("--signature")
                .arg(&sig)
                .arg("--pubkey")
                .arg(&pubkey),
            1,
        );
    }
    // RSA keys sign nothing in Edgeward: an operator error, not a crash.
    fails(
        edgeward()
            .args(["sign", "--raw"])
            .arg(&fw)
            .arg("--key")
            .arg(&key)
            .arg("-o")
            .arg(d.join("x.sig")),
        2,
    );
}

#[test]
fn ed25519_raw_signatures_interoperate_with_pkeyutl() {
    let t = tempfile::tempdir().expect("tmp");
    let d = t.path();
    let fw = d.join("fw.bin");
    fs::write(&fw, bytes(777_777, 4)).expect("write");
    let (key, pubkey) = ed25519_keypair(d);
    let osig = d.join("o.sig");
    ok(openssl()
        .args(["pkeyutl", "-sign", "-rawin", "-inkey"])
        .arg(&key)
        .arg("-in")
        .arg(&fw)
        .arg("-out")
        .arg(&osig));
    assert_eq!(fs::metadata(&osig).expect("sig").len(), 64);
    ok(edgeward()
        .args(["verify", "--raw"])
        .arg(&fw)
        .arg("--signature")
        .arg(&osig)
        .arg("--pubkey")
        .arg(&pubkey));
    let esig = d.join("e.sig");
    ok(edgeward()
        .args(["sign", "--raw"])
        .arg(&fw)
        .arg("--key")
        .arg(&key)
        .arg("-o")
        .arg(&esig));
    assert_eq!(
        fs::read(&esig).expect("sig"),
        fs::read(&osig).expect("sig"),
        "Ed25519 is deterministic"
    );
    let out = ok(openssl()
        .args(["pkeyutl", "-verify", "-rawin", "-pubin", "-inkey"])
        .arg(&pubkey)
        .arg("-in")
        .arg(&fw)
        .arg("-sigfile")
        .arg(&esig));
    assert!(out.contains("Signature Verified Successfully"), "{out}");
}

#[test]
fn openssl_reads_the_hierarchy() {
    let t = tempfile::tempdir().expect("tmp");
    let p = t.path().join("pki");
    pki(&p);
    // The root key is encrypted PKCS#8 that openssl opens with the passphrase, and only with it.
    let key_text = fs::read_to_string(p.join("root.key")).expect("root.key");
    assert!(key_text.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"));
    ok(openssl()
        .args([
            "pkey",
            "-noout",
            "-passin",
            "env:EDGEWARD_ROOT_PASSPHRASE",
            "-in",
        ])
        .arg(p.join("root.key"))
        .env("EDGEWARD_ROOT_PASSPHRASE", PASS));
    assert!(!run(openssl()
        .args(["pkey", "-noout", "-passin", "pass:wrong-passphrase", "-in"])
        .arg(p.join("root.key")))
    .status
    .success());
    // Chains verify under the root, with code signing where it belongs.
    for cert in ["signing.pem", "device-ca.pem"] {
        ok(openssl()
            .args(["verify", "-CAfile"])
            .arg(p.join("root.pem"))
            .arg(p.join(cert)));
    }
    let eku = ok(openssl()
        .args([
            "x509",
            "-noout",
            "-ext",
            "extendedKeyUsage,basicConstraints",
            "-in",
        ])
        .arg(p.join("signing.pem")));
    assert!(
        eku.contains("Code Signing") && eku.contains("CA:FALSE"),
        "{eku}"
    );
    let chain = fs::read_to_string(p.join("signing-chain.pem")).expect("chain");
    assert_eq!(chain.matches("BEGIN CERTIFICATE").count(), 2);
    let crl = ok(openssl()
        .args(["crl", "-noout", "-text", "-CAfile"])
        .arg(p.join("root.pem"))
        .arg("-in")
        .arg(p.join("crl.pem")));
    assert!(crl.contains("No Revoked Certificates"), "{crl}");
    // Private keys are 0600.
    #[cfg(unix)]
    for k in ["root.key", "signing.key", "device-ca.key"] {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(p.join(k)).expect("key").permissions().mode() & 0o777,
            0o600,
            "{k}"
        );
    }
}
