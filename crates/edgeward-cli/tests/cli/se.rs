//! `edgeward se`: keys generated in a (soft) secure element, signatures checked by
//! `openssl dgst -sha256 -verify` and `openssl pkeyutl -verify`.

use std::process::Command;

use crate::common::{edgeward, ok, openssl_verifies, run};

fn se(dir: &std::path::Path) -> String {
    format!("soft:{}", dir.join("se").display())
}

#[test]
fn p256_signature_verifies_with_openssl() {
    let dir = tempfile::tempdir().unwrap();
    let backend = se(dir.path());
    let pem = ok(edgeward().args(["se", "keygen", "--backend", &backend, "--slot", "device"]));
    assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"), "{pem}");
    let again = ok(edgeward().args(["se", "pubkey", "--backend", &backend, "--slot", "device"]));
    assert_eq!(pem, again);
    let pub_path = dir.path().join("device.pub.pem");
    std::fs::write(&pub_path, &pem).unwrap();
    let data = dir.path().join("firmware.bin");
    std::fs::write(&data, vec![0xa5u8; 300_000]).unwrap();
    let sig = dir.path().join("firmware.sig");
    let out = ok(edgeward()
        .args(["se", "sign", "--backend", &backend, "--slot", "device"])
        .arg("--in")
        .arg(&data)
        .arg("--out")
        .arg(&sig));
    assert!(out.contains("signed"), "{out}");
    assert!(openssl_verifies(&pub_path, &sig, &data));
    // The grammar of `sign PATH -o SIG` and `--se` is the same call (the old spellings
    // above stay as aliases).
    let sig2 = dir.path().join("firmware.2.sig");
    let out = ok(edgeward()
        .args(["se", "sign", "--se", &backend, "--slot", "device"])
        .arg(&data)
        .arg("-o")
        .arg(&sig2));
    assert!(out.contains("signed"), "{out}");
    assert!(openssl_verifies(&pub_path, &sig2, &data));

    // --json prints the base64 signature; it verifies too.
    let json = ok(edgeward()
        .args([
            "se",
            "sign",
            "--json",
            "--backend",
            &backend,
            "--slot",
            "device",
        ])
        .arg("--in")
        .arg(&data));
    let v: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(v["algorithm"], "ecdsa-p256-sha256");
    use base64::Engine;
    let der = base64::engine::general_purpose::STANDARD
        .decode(v["signature_base64"].as_str().unwrap())
        .unwrap();
    std::fs::write(&sig, der).unwrap();
    let mut tampered = std::fs::read(&data).unwrap();
    tampered[7] ^= 1;
    let tampered_path = dir.path().join("tampered.bin");
    std::fs::write(&tampered_path, tampered).unwrap();
    assert!(!openssl_verifies(&pub_path, &sig, &tampered_path));
    assert!(openssl_verifies(&pub_path, &sig, &data));
}

#[test]
fn ed25519_signature_verifies_with_openssl() {
    let dir = tempfile::tempdir().unwrap();
    let backend = se(dir.path());
    let json = ok(edgeward().args([
        "se",
        "keygen",
        "--json",
        "--alg",
        "ed25519",
        "--backend",
        &backend,
        "--slot",
        "ed",
    ]));
    let v: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(v["algorithm"], "ed25519");
    let pub_path = dir.path().join("ed.pub.pem");
    std::fs::write(&pub_path, v["public_key_pem"].as_str().unwrap()).unwrap();
    let data = dir.path().join("msg");
    std::fs::write(&data, b"hello edge").unwrap();
    let sig = dir.path().join("msg.sig");
    ok(edgeward()
        .args(["se", "sign", "--backend", &backend, "--slot", "ed"])
        .arg("--in")
        .arg(&data)
        .arg("--out")
        .arg(&sig));
    let verified = ok(Command::new("openssl")
        .args(["pkeyutl", "-verify", "-rawin", "-pubin", "-inkey"])
        .arg(&pub_path)
        .arg("-sigfile")
        .arg(&sig)
        .arg("-in")
        .arg(&data));
    assert!(
        verified.contains("Signature Verified Successfully"),
        "{verified}"
    );
}

#[test]
fn destroy_needs_yes_and_empties_only_its_slot() {
    let dir = tempfile::tempdir().unwrap();
    let backend = se(dir.path());
    let slot = |name: &str| {
        [
            "--se".to_string(),
            backend.clone(),
            "--slot".into(),
            name.into(),
        ]
    };
    ok(edgeward().args(["se", "keygen"]).args(slot("device-1")));
    let kept = ok(edgeward().args(["se", "keygen"]).args(slot("device-2")));
    let refused = run(edgeward().args(["se", "destroy"]).args(slot("device-1")));
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&refused.stderr)
            .contains("destroy removes the key in slot `device-1` for good: add --yes to confirm"),
        "{refused:?}"
    );
    ok(edgeward().args(["se", "pubkey"]).args(slot("device-1")));
    let json = ok(edgeward()
        .args(["se", "destroy", "--yes", "--json"])
        .args(slot("device-1")));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        (&v["slot"], &v["destroyed"]),
        (&serde_json::json!("device-1"), &serde_json::json!(true))
    );
    let gone = run(edgeward().args(["se", "pubkey"]).args(slot("device-1")));
    assert_eq!(gone.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&gone.stderr).contains("no key in slot `device-1`"),
        "{gone:?}"
    );
    assert_eq!(
        ok(edgeward().args(["se", "pubkey"]).args(slot("device-2"))),
        kept
    );
    let again = run(edgeward()
        .args(["se", "destroy", "--yes"])
        .args(slot("device-1")));
    assert_eq!(again.status.code(), Some(2));
}

#[test]
fn wipe_needs_yes_and_destroys_keys() {
    let dir = tempfile::tempdir().unwrap();
    let backend = se(dir.path());
    ok(edgeward().args(["se", "keygen", "--backend", &backend, "--slot", "device"]));
    let refused = run(edgeward().args(["se", "wipe", "--backend", &backend]));
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--yes"));
    ok(edgeward().args(["se", "pubkey", "--backend", &backend, "--slot", "device"]));
    let json = ok(edgeward().args(["se", "wipe", "--yes", "--json", "--backend", &backend]));
    assert!(json.contains("\"wiped\":true"), "{json}");
    let gone = run(edgeward().args([
        "se",
        "pubkey",
        "--json",
        "--backend",
        &backend,
        "--slot",
        "device",
    ]));
    assert_eq!(gone.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_slice(&gone.stdout).unwrap();
    assert_eq!(v["ok"], false);
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("no key in slot `device`"));
}

#[test]
fn bad_backend_uris_and_occupied_slots_are_operator_errors() {
    let dir = tempfile::tempdir().unwrap();
    let backend = se(dir.path());
    let out = run(edgeward().args([
        "se",
        "pubkey",
        "--backend",
        "pkcs11:/x.so?token=t",
        "--slot",
        "a",
    ]));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("pin-env"));
    ok(edgeward().args(["se", "keygen", "--backend", &backend, "--slot", "a"]));
    let out = run(edgeward().args(["se", "keygen", "--backend", &backend, "--slot", "a"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already holds a key"));
}

#[test]
fn pkcs11_token_key_signs_and_openssl_verifies() {
    const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
    assert!(
        std::path::Path::new(MODULE).exists(),
        "{MODULE} is missing: apt-get install softhsm2"
    );
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::create_dir(&tokens).unwrap();
    let conf = dir.path().join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nlog.level = ERROR\n",
            tokens.display()
        ),
    )
    .unwrap();
    ok(Command::new("softhsm2-util")
        .env("SOFTHSM2_CONF", &conf)
        .args([
            "--init-token",
            "--free",
            "--label",
            "cli",
            "--pin",
            "4321",
            "--so-pin",
            "so-4321",
        ]));
    let backend = format!("pkcs11:{MODULE}?token=cli&pin-env=EDGEWARD_TEST_TOKEN_PIN");
    let se = |args: &[&str]| {
        let mut c = edgeward();
        c.env("SOFTHSM2_CONF", &conf)
            .env("EDGEWARD_TEST_TOKEN_PIN", "4321")
            .arg("se")
            .args(args)
            .args(["--backend", &backend]);
        c
    };
    let pem = ok(&mut se(&["keygen", "--slot", "device"]));
    let pub_path = dir.path().join("device.pub.pem");
    std::fs::write(&pub_path, &pem).unwrap();
    let data = dir.path().join("model.bin");
    std::fs::write(&data, b"weights").unwrap();
    let sig = dir.path().join("model.sig");
    ok(se(&["sign", "--slot", "device"])
        .arg("--in")
        .arg(&data)
        .arg("--out")
        .arg(&sig));
    assert!(openssl_verifies(&pub_path, &sig, &data));
    let wrong_pin = run(se(&["pubkey", "--slot", "device"]).env("EDGEWARD_TEST_TOKEN_PIN", "0000"));
    assert_eq!(wrong_pin.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&wrong_pin.stderr).contains("wrong user PIN"));
    ok(&mut se(&["wipe", "--yes"]));
    assert_eq!(
        run(&mut se(&["pubkey", "--slot", "device"])).status.code(),
        Some(2)
    );
}
