//! The CLI contract: exit statuses (0 verified, 1 rejected, 2 operator error), one line on
//! stderr naming what failed, `--json` verdicts, the key-hierarchy commands and the demo.

use crate::common::*;
use std::fs;

fn json(out: &str) -> serde_json::Value {
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

#[test]
fn verify_exit_statuses_and_json_verdicts() {
    let t = tempfile::tempdir().expect("tmp");
    let d = t.path();
    let p = d.join("pki");
    pki(&p);
    let model = d.join("model");
    make_model(&model);
    let sig = d.join("model.sig");
    let signed = json(&ok(edgeward()
        .arg("sign")
        .arg(&model)
        .arg("--key")
        .arg(p.join("signing.key"))
        .arg("--cert-chain")
        .arg(p.join("signing-chain.pem"))
        .args(["--shard-size", "1MiB", "--json", "-o"])
        .arg(&sig)));
    assert_eq!(signed["mode"], "certificate");
    let verify = |extra: &[&str]| {
        let mut c = edgeward();
        c.arg("verify")
            .arg(&model)
            .arg("--signature")
            .arg(&sig)
            .arg("--trust-root")
            .arg(p.join("root.pem"));
        c.arg("--crl").arg(p.join("crl.pem")).args(extra);
        c
    };
    let v = json(&ok(&mut verify(&["--json"])));
    assert_eq!(v["verified"], true);
    assert_eq!(v["details"]["items"], 8, "{v}");
    assert!(v["details"]["certificate"]["subject"]
        .as_str()
        .expect("subject")
        .contains("Signing"));

    // Rejected: exit 1, exactly one line on stderr that names the file.
    let weights = model.join("model.safetensors");
    let mut w = fs::read(&weights).expect("read");
    w[2_500_000] ^= 0x10;
    fs::write(&weights, &w).expect("write");
    let err = fails(&mut verify(&[]), 1);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("\"model.safetensors\" bytes 2097152..3145728 was modified"),
        "{err}"
    );
    let out = run(&mut verify(&["--json"]));
    let v = json(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(
        (v["verified"].clone(), v["error"]["kind"].clone()),
        (false.into(), "rejected".into()),
        "{v}"
    );

    // Operator errors: exit 2.
    fails(
        edgeward()
            .arg("verify")
            .arg(&model)
            .arg("--signature")
            .arg(d.join("missing.sig"))
            .arg("--pubkey")
            .arg(p.join("signing.pem")),
        2,
    );
    fails(
        edgeward()
            .arg("verify")
            .arg(&model)
            .arg("--signature")
            .arg(&sig),
        2,
    );
    fails(edgeward().args(["sign", "--bogus-flag"]), 2);
    fs::write(d.join("garbage.pem"), "not a key").expect("write");
    let err = fails(
        edgeward()
            .arg("verify")
            .arg(&model)
            .arg("--signature")
            .arg(&sig)
            .arg("--pubkey")
            .arg(d.join("garbage.pem")),
        2,
    );
    assert!(err.contains("no PEM block"), "{err}");
    // A malformed signature file is a rejection.
    fs::write(d.join("broken.sig"), "{\"mediaType\":").expect("write");
    let err = fails(
        edgeward()
            .arg("verify")
            .arg(&model)
            .arg("--signature")
            .arg(d.join("broken.sig"))
            .arg("--pubkey")
            .arg(p.join("signing.pem")),
        1,
    );
    assert!(err.contains("malformed bundle JSON"), "{err}");
}

#[test]
fn pki_rotate_revoke_show_and_policy() {
    let t = tempfile::tempdir().expect("tmp");
    let p = t.path().join("pki");
    // More than 90 days is refused; a second init does not overwrite the root.
    let err = fails(
        edgeward()
            .args(["pki", "init", "--days", "91", "--dir"])
            .arg(&p),
        2,
    );
    assert!(
        err.starts_with("error: invalid value '91' for '--days <DAYS>': 91 is not in 1..=90\n"),
        "{err}"
    );
    assert!(!p.exists(), "a refused ceremony leaves no directory");
    ok(edgeward()
        .args(["pki", "init", "--days", "10", "--dir"])
        .arg(&p));
    let err = fails(edgeward().args(["pki", "init", "--dir"]).arg(&p), 2);
    assert!(err.contains("refusing to overwrite"), "{err}");

    // Within 14 days of expiry `show` warns.
    let out = run(edgeward().args(["pki", "show", "--dir"]).arg(&p));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("warning: the signing certificate expires in"),
        "{out:?}"
    );
    let shown = json(&ok(edgeward()
        .args(["pki", "show", "--json", "--dir"])
        .arg(&p)));
    let old_serial = shown["certificates"][1]["serial"]
        .as_str()
        .expect("serial")
        .to_string();
    assert_eq!(shown["certificates"][1]["role"], "signing");
    assert!(shown["warnings"][0]
        .as_str()
        .expect("warning")
        .contains("expires in"));

    // Rotation: new key and certificate; the old one is kept in previous/.
    let old_key = fs::read(p.join("signing.key")).expect("key");
    let err = fails(
        edgeward()
            .args(["pki", "rotate", "--dir"])
            .arg(&p)
            .env("EDGEWARD_ROOT_PASSPHRASE", "wrong passphrase"),
        2,
    );
    assert!(err.contains("wrong passphrase"), "{err}");
    let rotated = json(&ok(edgeward()
        .args(["pki", "rotate", "--json", "--dir"])
        .arg(&p)));
    assert_ne!(fs::read(p.join("signing.key")).expect("key"), old_key);
    assert!(p
        .join(format!("previous/signing-{old_serial}.pem"))
        .exists());
    let roles: Vec<&str> = rotated["certificates"]
        .as_array()
        .expect("certs")
        .iter()
        .map(|c| c["role"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(roles, ["root", "signing", "device-ca", "previous-signing"]);
    assert_eq!(
        rotated["warnings"].as_array().map(Vec::len),
        Some(0),
        "{rotated}"
    );

    // Artifacts signed with the previous key still verify (overlap) until it is revoked.
    let fw = t.path().join("fw.bin");
    fs::write(&fw, bytes(10_000, 1)).expect("write");
    let sig = t.path().join("fw.sig");
    let chain = t.path().join("old-chain.pem");
    let old_chain = format!(
        "{}{}",
        fs::read_to_string(p.join(format!("previous/signing-{old_serial}.pem"))).expect("old"),
        fs::read_to_string(p.join("root.pem")).expect("root")
    );
    fs::write(&chain, old_chain).expect("write");
    ok(edgeward()
        .arg("sign")
        .arg(&fw)
        .arg("--key")
        .arg(p.join(format!("previous/signing-{old_serial}.key")))
        .arg("--cert-chain")
        .arg(&chain)
        .arg("-o")
        .arg(&sig));
    let verify = || {
        let mut c = edgeward();
        c.arg("verify")
            .arg(&fw)
            .arg("--signature")
            .arg(&sig)
            .arg("--trust-root")
            .arg(p.join("root.pem"))
            .arg("--crl")
            .arg(p.join("crl.pem"));
        c
    };
    ok(&mut verify());
    ok(edgeward()
        .args(["pki", "revoke", "--serial", &old_serial, "--dir"])
        .arg(&p));
    let err = fails(&mut verify(), 1);
    assert!(
        err.contains(&format!(
            "certificate serial {old_serial} (or its issuer) is revoked"
        )),
        "{err}"
    );
    let err = fails(
        edgeward()
            .args(["pki", "revoke", "--serial", &old_serial, "--dir"])
            .arg(&p),
        2,
    );
    assert!(err.contains("already revoked"), "{err}");
    fails(
        edgeward()
            .args(["pki", "revoke", "--serial", "xyz", "--dir"])
            .arg(&p),
        2,
    );
}

#[test]
fn demo_runs_and_reports_steps() {
    let v = json(&ok(edgeward().args(["demo", "--json"])));
    assert_eq!(v["ok"], true, "{v}");
    let steps = v["steps"].as_array().expect("steps");
    assert!(steps.len() >= 8);
    for s in steps {
        assert_eq!(s["ok"], true, "{s}");
        assert!(s["name"].is_string());
    }
    let names: Vec<&str> = steps.iter().filter_map(|s| s["name"].as_str()).collect();
    assert!(names.iter().any(|n| n.contains("flipped byte")));
    assert!(names.iter().any(|n| n.contains("never endorsed")));
    let text = ok(edgeward().arg("demo"));
    assert!(text.contains("summary:"), "{text}");
}

#[test]
fn ed25519_signing_certificates_sign_bundles() {
    let t = tempfile::tempdir().expect("tmp");
    let p = t.path().join("pki");
    ok(edgeward()
        .args(["pki", "init", "--key-type", "ed25519", "--dir"])
        .arg(&p));
    let model = t.path().join("model");
    make_model(&model);
    let sig = t.path().join("m.sig");
    let signed = json(&ok(edgeward()
        .arg("sign")
        .arg(&model)
        .arg("--key")
        .arg(p.join("signing.key"))
        .arg("--cert-chain")
        .arg(p.join("signing-chain.pem"))
        .args(["--json", "-o"])
        .arg(&sig)));
    assert_eq!(signed["algorithm"], "ed25519");
    let v = json(&ok(edgeward()
        .arg("verify")
        .arg(&model)
        .arg("--signature")
        .arg(&sig)
        .arg("--trust-root")
        .arg(p.join("root.pem"))
        .arg("--json")));
    assert_eq!(v["details"]["algorithm"], "ed25519", "{v}");
    // The key file is one OpenSSL reads (PKCS#8 v1, RFC 8410).
    ok(openssl()
        .args(["pkey", "-noout", "-in"])
        .arg(p.join("signing.key")));
    fs::write(model.join("config.json"), b"{\"hidden\": 65}").expect("write");
    let err = fails(
        edgeward()
            .arg("verify")
            .arg(&model)
            .arg("--signature")
            .arg(&sig)
            .arg("--trust-root")
            .arg(p.join("root.pem")),
        1,
    );
    assert!(err.contains("\"config.json\" was modified"), "{err}");
}

#[test]
fn flag_conflicts_preflight_and_json_errors() {
    let t = tempfile::tempdir().expect("tmp");
    let d = t.path();
    let p = d.join("pki");
    pki(&p);
    let fw = d.join("fw.bin");
    fs::write(&fw, bytes(50_000, 3)).expect("write");
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
    // A CRL with a bare public key, or --raw with a trust root, is a usage error.
    fails(
        edgeward()
            .arg("verify")
            .arg(&fw)
            .arg("--signature")
            .arg(&sig)
            .arg("--pubkey")
            .arg(p.join("signing.pem"))
            .arg("--crl")
            .arg(p.join("crl.pem")),
        2,
    );
    fails(
        edgeward()
            .arg("verify")
            .arg(&fw)
            .arg("--signature")
            .arg(&sig)
            .arg("--raw")
            .arg("--trust-root")
            .arg(p.join("root.pem")),
        2,
    );
    // Without a CRL, revocation is not checked, and that is said.
    let out = run(edgeward()
        .arg("verify")
        .arg(&fw)
        .arg("--signature")
        .arg(&sig)
        .arg("--trust-root")
        .arg(p.join("root.pem"))
        .arg("--json"));
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("revocation of the signing certificate is not checked"));
    assert_eq!(
        json(&String::from_utf8_lossy(&out.stdout))["details"]["revocation_checked"],
        false
    );
    // A raw signature given without --raw gets a hint.
    let raw_sig = d.join("fw.rawsig");
    ok(edgeward()
        .args(["sign", "--raw"])
        .arg(&fw)
        .arg("--key")
        .arg(p.join("signing.key"))
        .arg("-o")
        .arg(&raw_sig));
    let err = fails(
        edgeward()
            .arg("verify")
            .arg(&fw)
            .arg("--signature")
            .arg(&raw_sig)
            .arg("--pubkey")
            .arg(p.join("signing.pem")),
        1,
    );
    assert!(err.contains("verify it with --raw"), "{err}");
    // Signing with a CA certificate is refused before anything is written.
    let ca_chain = d.join("ca-chain.pem");
    fs::write(
        &ca_chain,
        format!(
            "{}{}",
            fs::read_to_string(p.join("device-ca.pem")).expect("ca"),
            fs::read_to_string(p.join("root.pem")).expect("root")
        ),
    )
    .expect("write");
    let out = run(edgeward()
        .arg("sign")
        .arg(&fw)
        .arg("--key")
        .arg(p.join("device-ca.key"))
        .arg("--cert-chain")
        .arg(&ca_chain)
        .arg("--json")
        .arg("-o")
        .arg(d.join("ca.sig")));
    assert_eq!(out.status.code(), Some(2));
    let v = json(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(v["ok"], false);
    assert!(
        v["error"]["message"]
            .as_str()
            .expect("error")
            .contains("refusing to sign"),
        "{v}"
    );
    assert!(!d.join("ca.sig").exists());
}

#[test]
fn a_signature_stored_inside_the_model_is_not_an_unsigned_file() {
    let t = tempfile::tempdir().expect("tmp");
    let p = t.path().join("pki");
    pki(&p);
    let model = t.path().join("model");
    make_model(&model);
    let outside = t.path().join("model.sig");
    ok(edgeward()
        .arg("sign")
        .arg(&model)
        .arg("--key")
        .arg(p.join("signing.key"))
        .arg("-o")
        .arg(&outside));
    let inside = model.join("model.sig");
    fs::copy(&outside, &inside).expect("copy");
    ok(edgeward()
        .arg("verify")
        .arg(&model)
        .arg("--signature")
        .arg(&inside)
        .arg("--pubkey")
        .arg(p.join("signing.pem")));
    // Any other added file is still refused.
    fs::copy(&outside, model.join("other.sig")).expect("copy");
    let err = fails(
        edgeward()
            .arg("verify")
            .arg(&model)
            .arg("--signature")
            .arg(&inside)
            .arg("--pubkey")
            .arg(p.join("signing.pem")),
        1,
    );
    assert!(err.contains("\"other.sig\" is not covered"), "{err}");
}

#[test]
fn offline_root_key_and_crl_refresh() {
    let t = tempfile::tempdir().expect("tmp");
    let p = t.path().join("pki");
    pki(&p);
    // The root key leaves the directory (kept offline); ceremonies name it explicitly.
    let offline = t.path().join("usb-root.key");
    fs::rename(p.join("root.key"), &offline).expect("move");
    for cmd in ["rotate", "crl"] {
        let err = fails(edgeward().args(["pki", cmd, "--dir"]).arg(&p), 2);
        assert_eq!(
            err,
            format!(
                "edgeward: {} is not there (the root key is kept offline?): pass --root-key PATH to the encrypted root key\n",
                p.join("root.key").display()
            )
        );
    }
    ok(edgeward()
        .args(["pki", "rotate", "--dir"])
        .arg(&p)
        .arg("--root-key")
        .arg(&offline));
    // A key that is not the root's is refused.
    let err = fails(
        edgeward()
            .args(["pki", "crl", "--dir"])
            .arg(&p)
            .arg("--root-key")
            .arg(p.join("signing.key")),
        2,
    );
    assert!(err.contains("ENCRYPTED PRIVATE KEY"), "{err}");
    let before = ok(openssl()
        .args(["crl", "-noout", "-crlnumber", "-in"])
        .arg(p.join("crl.pem")));
    ok(edgeward()
        .args(["pki", "crl", "--dir"])
        .arg(&p)
        .arg("--root-key")
        .arg(&offline));
    let after = ok(openssl()
        .args(["crl", "-noout", "-crlnumber", "-in"])
        .arg(p.join("crl.pem")));
    assert_ne!(before, after);
    ok(openssl()
        .args(["crl", "-noout", "-CAfile"])
        .arg(p.join("root.pem"))
        .arg("-in")
        .arg(p.join("crl.pem")));
    // Unknown serials are revoked with a warning (a lost certificate must stay revocable).
    let out = run(edgeward()
        .args(["pki", "revoke", "--serial", "0a0b0c", "--dir"])
        .arg(&p)
        .arg("--root-key")
        .arg(&offline));
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a certificate in"));
    // Too short a passphrase leaves nothing behind.
    let fresh = t.path().join("fresh");
    fails(
        edgeward()
            .args(["pki", "init", "--dir"])
            .arg(&fresh)
            .env("EDGEWARD_ROOT_PASSPHRASE", "short"),
        2,
    );
    assert!(!fresh.exists());
}

/// With `--json`, every failure is one object of one shape on stdout:
/// `{"ok":false,"exit_code":N,"error":{"kind":K,"message":M}}` plus the command's context,
/// the message the same sentence as on stderr.
#[test]
fn every_failure_prints_one_json_error_shape() {
    let t = tempfile::tempdir().expect("tmp");
    let d = t.path();
    let p = d.join("pki");
    pki(&p);
    fs::write(d.join("fw.bin"), b"firmware").expect("write");
    let shape = |cmd: &mut std::process::Command, code: i32, kind: &str| {
        let out = run(cmd);
        assert_eq!(out.status.code(), Some(code), "{cmd:?}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(stdout.lines().count(), 1, "one JSON line: {stdout}");
        let v = json(&stdout);
        assert_eq!(v["ok"], false, "{v}");
        assert_eq!(v["exit_code"], code, "{v}");
        assert_eq!(v["error"]["kind"], kind, "{v}");
        let message = v["error"]["message"].as_str().expect("message").to_string();
        if kind != "usage" {
            assert_eq!(
                String::from_utf8_lossy(&out.stderr).lines().last(),
                Some(format!("edgeward: {message}").as_str())
            );
        }
        (v, message)
    };
    // verify: an operator error and a rejection, with the verify context.
    let (v, message) = shape(
        edgeward()
            .args(["verify", "--json"])
            .arg(d.join("fw.bin"))
            .arg("--signature")
            .arg(d.join("missing.sig"))
            .arg("--pubkey")
            .arg(p.join("signing.pem")),
        2,
        "operator-error",
    );
    assert_eq!(
        message,
        format!(
            "{}: No such file or directory (os error 2)",
            d.join("missing.sig").display()
        )
    );
    assert_eq!(v["verified"], false);
    assert_eq!(v["path"], d.join("fw.bin").to_str().expect("utf-8"));
    fs::write(d.join("fw.sig"), "{\"mediaType\":").expect("write");
    let (v, _) = shape(
        edgeward()
            .args(["verify", "--json"])
            .arg(d.join("fw.bin"))
            .arg("--signature")
            .arg(d.join("fw.sig"))
            .arg("--pubkey")
            .arg(p.join("signing.pem")),
        1,
        "rejected",
    );
    assert_eq!(v["signature"], d.join("fw.sig").to_str().expect("utf-8"));
    // mcuboot verify: a rejection and an operator error.
    let pubkey = d.join("signing.pub");
    ok(openssl()
        .args(["x509", "-pubkey", "-noout", "-in"])
        .arg(p.join("signing.pem"))
        .arg("-out")
        .arg(&pubkey));
    let (v, message) = shape(
        edgeward()
            .args(["mcuboot", "verify", "--json", "--key"])
            .arg(&pubkey)
            .arg(d.join("fw.bin")),
        1,
        "rejected",
    );
    assert_eq!(v["verified"], false);
    assert!(message.contains("malformed MCUboot image"), "{message}");
    let (_, message) = shape(
        edgeward()
            .args(["mcuboot", "verify", "--json", "--key"])
            .arg(d.join("nokey.pem"))
            .arg(d.join("fw.bin")),
        2,
        "operator-error",
    );
    assert!(
        message.ends_with("No such file or directory (os error 2)"),
        "{message}"
    );
    // sign and pki: operator errors.
    shape(
        edgeward()
            .args(["sign", "--json", "--key"])
            .arg(d.join("nokey.pem"))
            .arg("-o")
            .arg(d.join("x.sig"))
            .arg(d.join("fw.bin")),
        2,
        "operator-error",
    );
    shape(
        edgeward().args(["--json", "pki", "init", "--dir"]).arg(&p),
        2,
        "operator-error",
    );
    // A command line the parser refuses: its usage text on stderr, the same object on stdout.
    let (_, message) = shape(edgeward().args(["verify", "--json", "--bogus"]), 2, "usage");
    assert_eq!(message, "unexpected argument '--bogus' found");
}
