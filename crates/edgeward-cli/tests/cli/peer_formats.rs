//! `edgeward verify` on files the peer tools made: upstream model_signing's golden bundles of
//! every released version (key mode with its P-384 key, certificate mode under
//! `--policy model-signing`, keyless Sigstore offline) and raw P-384/P-521 signatures made by
//! `openssl dgst`. Each is accepted with the right key, root or identity and refused with
//! another, with the exact message and exit status.

use crate::common::*;
use std::path::{Path, PathBuf};

const IDENTITY: &str = "stefanb@us.ibm.com";
const ISSUER: &str = "https://sigstore.verify.ibm.com/oauth2";

/// A file of upstream's golden test data (copied into edgeward-core's tests).
fn golden(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../edgeward-core/tests/data")
        .join(rel)
}

fn json(out: &str) -> serde_json::Value {
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

/// `edgeward verify DIR --signature DIR/model.sig` plus `extra`. Bundles before v1.1 did
/// not record that their signer left `ignore-me` out, so it is named here, as upstream's
/// own verification of these files does.
/// The v0.3.1 and v1.0.0 key-mode bundles were made over the single file `signme-1`.
fn verify_golden(dir: &str, extra: &[&str]) -> std::process::Command {
    let root = golden(&format!("model-transparency/{dir}"));
    let signed = if root.join("signme-2").exists() {
        root.clone()
    } else {
        root.join("signme-1")
    };
    let mut c = edgeward();
    c.arg("verify")
        .arg(&signed)
        .arg("--signature")
        .arg(root.join("model.sig"));
    if root.join("ignore-me").exists() {
        c.args(["--ignore-paths", "ignore-me"]);
    }
    c.args(extra);
    c
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// A P-384 or P-521 key from `openssl genpkey` and its public key.
fn ec_keypair(dir: &Path, curve: &str) -> (PathBuf, PathBuf) {
    let (key, public) = (
        dir.join(format!("{curve}.key")),
        dir.join(format!("{curve}.pub")),
    );
    ok(openssl()
        .args(["genpkey", "-algorithm", "EC", "-pkeyopt"])
        .arg(format!("ec_paramgen_curve:{curve}"))
        .arg("-out")
        .arg(&key));
    ok(openssl()
        .args(["pkey", "-pubout", "-in"])
        .arg(&key)
        .arg("-out")
        .arg(&public));
    (key, public)
}

/// The key id `edgeward` prints for a public key file, computed by OpenSSL as
/// docs/formats.md says (the first 16 hex digits of SHA-256 over the PEM public key), and
/// checked against edgeward-core's.
fn fingerprint(public: &Path) -> String {
    let pem = ok(openssl().args(["pkey", "-pubin", "-in"]).arg(public));
    let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(pem.as_bytes()));
    let key = edgeward_core::keys::PublicKey::from_pem(&std::fs::read(public).expect("read"))
        .expect("public key");
    assert_eq!(key.fingerprint(), digest[..16], "{}", public.display());
    key.fingerprint()
}

#[test]
fn key_mode_bundles_of_every_model_signing_version_verify_with_their_p384_key_only() {
    let t = tempfile::tempdir().expect("tmp");
    let (_, other) = ec_keypair(t.path(), "secp384r1");
    let public = golden("model-transparency/keys/signing-key-pub.pem");
    let fp = fingerprint(&public);
    for dir in [
        "v0.3.1-elliptic-key",
        "v1.0.0-elliptic-key",
        "v1.0.1-elliptic-key",
        "v1.1.0-elliptic-key",
    ] {
        let v = json(&ok(&mut verify_golden(
            dir,
            &["--pubkey", path_str(&public), "--json"],
        )));
        assert_eq!(v["verified"], true, "{dir}: {v}");
        assert_eq!(v["details"]["policy"], "key", "{dir}");
        assert_eq!(v["details"]["algorithm"], "ecdsa-p384-sha384", "{dir}");
        assert_eq!(v["details"]["key"], fp.as_str(), "{dir}");
        let text = ok(&mut verify_golden(dir, &["--pubkey", path_str(&public)]));
        assert!(
            text.ends_with(&format!("(policy key: key {fp})\n")),
            "{dir}: {text}"
        );

        let err = fails(&mut verify_golden(dir, &["--pubkey", path_str(&other)]), 1);
        assert!(
            err.starts_with("edgeward: key mismatch: the bundle was signed by "),
            "{dir}: {err}"
        );
        assert!(err.contains(&fingerprint(&other)), "{dir}: {err}");
        // One key id: the error names the signer by the id `verify` prints for it.
        assert!(err.contains(&fp), "{dir}: {err}");
    }
    // The old versions carry the key itself and say so by algorithm.
    let err = fails(
        &mut verify_golden("v1.0.0-elliptic-key", &["--pubkey", path_str(&other)]),
        1,
    );
    assert_eq!(
        err,
        format!(
            "edgeward: key mismatch: the bundle was signed by the ecdsa-p384-sha384 key {fp}, not by the trusted ecdsa-p384-sha384 key {}\n",
            fingerprint(&other)
        )
    );
}

#[test]
fn without_ignore_paths_an_unsigned_file_of_an_old_bundle_is_refused() {
    let root = golden("model-transparency/v1.0.1-elliptic-key");
    let err = fails(
        edgeward()
            .arg("verify")
            .arg(&root)
            .arg("--signature")
            .arg(root.join("model.sig"))
            .arg("--pubkey")
            .arg(golden("model-transparency/keys/signing-key-pub.pem")),
        1,
    );
    assert!(
        err.contains("file \"ignore-me\" is not covered by the signature"),
        "{err}"
    );
    let err = fails(
        edgeward()
            .arg("verify")
            .arg(&root)
            .arg("--signature")
            .arg(root.join("model.sig"))
            .arg("--pubkey")
            .arg(golden("model-transparency/keys/signing-key-pub.pem"))
            .args(["--ignore-paths", "../elsewhere"]),
        2,
    );
    assert_eq!(
        err,
        format!(
            "edgeward: --ignore-paths ../elsewhere: not inside {}\n",
            root.display()
        )
    );
}

#[test]
fn certificate_bundles_verify_under_the_model_signing_policy_only() {
    let root = golden("model-transparency/keys/ca-cert.pem");
    let fp = fingerprint(&golden("model-transparency/keys/signing-key-pub.pem"));
    let t = tempfile::tempdir().expect("tmp");
    let p = t.path().join("pki");
    pki(&p);
    for dir in [
        "v0.2.0-certificate",
        "v0.3.1-certificate",
        "v1.0.0-certificate",
        "v1.0.1-certificate",
        "v1.1.0-certificate",
    ] {
        let v = json(&ok(&mut verify_golden(
            dir,
            &[
                "--trust-root",
                path_str(&root),
                "--policy",
                "model-signing",
                "--json",
            ],
        )));
        assert_eq!(v["details"]["policy"], "model-signing", "{dir}: {v}");
        assert_eq!(
            v["details"]["certificate"]["subject"], "CN=intermediate-ca",
            "{dir}"
        );
        assert_eq!(
            v["details"]["statement"],
            if dir.starts_with("v0.2") {
                "v0.2"
            } else {
                "v1.0"
            },
            "{dir}"
        );
        assert!(v["details"].get("revocation_checked").is_none(), "{dir}");
        let text = ok(&mut verify_golden(
            dir,
            &["--trust-root", path_str(&root), "--policy", "model-signing"],
        ));
        assert!(
            text.ends_with(&format!(
                "(policy model-signing: key {fp}, certificate CN=intermediate-ca)\n"
            )),
            "{dir}: {text}"
        );

        // Edgeward's policy stays the default, and says why it refuses a ten-year signer.
        let err = fails(
            &mut verify_golden(dir, &["--trust-root", path_str(&root)]),
            1,
        );
        assert_eq!(
            err,
            format!(
                "warning: no --crl given: revocation of the signing certificate is not checked\nedgeward: signature by key {fp} is not endorsed by the root: signing certificate CN=intermediate-ca is valid for 3650 days, longer than the 90-day rotation policy\n"
            ),
            "{dir}"
        );
        // Another organisation's root does not endorse it under either policy.
        let err = fails(
            &mut verify_golden(
                dir,
                &[
                    "--trust-root",
                    path_str(&p.join("root.pem")),
                    "--policy",
                    "model-signing",
                ],
            ),
            1,
        );
        assert_eq!(
            err,
            format!(
                "edgeward: signature by key {fp} is not endorsed by the root: no chain from CN=intermediate-ca to a trust root: issuer CN=root-ca is not a trust root and no certificate of the bundle signed it\n"
            ),
            "{dir}"
        );
    }
    let err = fails(
        &mut verify_golden(
            "v1.0.0-certificate",
            &[
                "--trust-root",
                path_str(&root),
                "--policy",
                "model-signing",
                "--crl",
                path_str(&p.join("crl.pem")),
            ],
        ),
        2,
    );
    assert_eq!(
        err,
        "edgeward: --crl is not checked under --policy model-signing (the upstream verifier has no revocation); use --policy edgeward to check a CRL\n"
    );
}

#[test]
fn keyless_sigstore_bundles_verify_offline_for_their_identity_only() {
    let trusted = golden("sigstore/trusted_root.json");
    let keyless = |dir: &str, identity: &str, issuer: &str, extra: &[&str]| {
        let mut c = verify_golden(
            dir,
            &[
                "--sigstore-trusted-root",
                path_str(&trusted),
                "--identity",
                identity,
                "--identity-provider",
                issuer,
            ],
        );
        c.args(extra);
        c
    };
    for dir in [
        "v0.3.1-sigstore",
        "v1.0.0-sigstore",
        "v1.0.1-sigstore",
        "v1.1.0-sigstore",
    ] {
        let v = json(&ok(&mut keyless(dir, IDENTITY, ISSUER, &["--json"])));
        let d = &v["details"];
        assert_eq!(d["policy"], "sigstore", "{dir}: {v}");
        assert_eq!(d["sigstore"]["identity"], IDENTITY, "{dir}");
        assert_eq!(d["sigstore"]["identity_provider"], ISSUER, "{dir}");
        assert_eq!(
            d["sigstore"]["log_url"], "https://rekor.sigstore.dev",
            "{dir}"
        );
        assert_eq!(
            d["sigstore"]["certificate_authority"], "https://fulcio.sigstore.dev",
            "{dir}"
        );
        assert_eq!(d["sigstore"]["inclusion_proof_checked"], true, "{dir}");
        let fp = d["key"].as_str().expect("key").to_string();
        let text = ok(&mut keyless(dir, IDENTITY, ISSUER, &[]));
        assert!(
            text.contains(&format!(
                "(policy sigstore: {IDENTITY} via {ISSUER}, log entry "
            )),
            "{dir}: {text}"
        );

        let err = fails(&mut keyless(dir, "mallory@example.com", ISSUER, &[]), 1);
        assert_eq!(
            err,
            format!("edgeward: signature by key {fp} is not endorsed by the root: the certificate was issued to {IDENTITY}, not to the expected identity mallory@example.com\n"),
            "{dir}"
        );
        let err = fails(
            &mut keyless(dir, IDENTITY, "https://accounts.google.com", &[]),
            1,
        );
        assert_eq!(
            err,
            format!("edgeward: signature by key {fp} is not endorsed by the root: the certificate's identity was vouched for by {ISSUER}, not by the expected identity provider https://accounts.google.com\n"),
            "{dir}"
        );
    }
    // Without the identity and its provider, nothing would tie the signature to a signer.
    for extra in [
        vec!["--identity", IDENTITY],
        vec!["--identity-provider", ISSUER],
        vec![],
    ] {
        let mut c = verify_golden(
            "v1.0.0-sigstore",
            &["--sigstore-trusted-root", path_str(&trusted)],
        );
        c.args(&extra);
        assert_eq!(
            fails(&mut c, 2),
            "edgeward: keyless verification needs the signer's --identity and --identity-provider: without them a signature by anyone with a Sigstore certificate would verify\n",
            "{extra:?}"
        );
    }
    // A keyless bundle is not mistaken for a key-mode one.
    let err = fails(
        &mut verify_golden(
            "v1.0.0-sigstore",
            &[
                "--pubkey",
                path_str(&golden("model-transparency/keys/signing-key-pub.pem")),
            ],
        ),
        1,
    );
    assert_eq!(
        err,
        "edgeward: signature by key (keyless) is not endorsed by the root: the bundle is a keyless Sigstore bundle (it carries a transparency-log entry); verify it against a Sigstore trusted root with the signer's identity and identity provider\n"
    );
}

#[test]
fn raw_p384_and_p521_signatures_from_openssl_verify_with_their_key_only() {
    let t = tempfile::tempdir().expect("tmp");
    let data = t.path().join("firmware.bin");
    std::fs::write(&data, bytes(3 * 1024 * 1024 + 5, 11)).expect("write");
    for (curve, hash, alg, name) in [
        ("secp384r1", "-sha384", "ecdsa-p384-sha384", "P-384"),
        ("secp521r1", "-sha512", "ecdsa-p521-sha512", "P-521"),
    ] {
        let (key, public) = ec_keypair(t.path(), curve);
        let other_dir = t.path().join(format!("other-{curve}"));
        std::fs::create_dir_all(&other_dir).expect("mkdir");
        let (_, other) = ec_keypair(&other_dir, curve);
        let sig = t.path().join(format!("{curve}.sig"));
        ok(openssl()
            .args(["dgst", hash, "-sign"])
            .arg(&key)
            .arg("-out")
            .arg(&sig)
            .arg(&data));
        let raw = |public: &Path| {
            let mut c = edgeward();
            c.arg("verify")
                .arg(&data)
                .arg("--raw")
                .arg("--signature")
                .arg(&sig)
                .arg("--pubkey")
                .arg(public);
            c
        };
        let v = json(&ok(raw(&public).arg("--json")));
        assert_eq!(v["details"]["algorithm"], alg, "{v}");
        assert_eq!(v["details"]["format"], "raw");
        let err = fails(&mut raw(&other), 1);
        let hash_name = &hash[1..];
        assert_eq!(
            err,
            format!(
                "edgeward: signature does not verify: ECDSA {name} signature ({hash_name}) is not by key {} over this content\n",
                fingerprint(&other)
            ),
            "{curve}"
        );
    }
}
