//! `edgeward model encrypt | decrypt | rewrap | inspect` with real `soft` secure elements
//! as the devices.

use std::path::{Path, PathBuf};

use crate::common::{bytes, edgeward, fails, ok};
use edgeward_se::KeyAlgorithm;

struct Device {
    uri: String,
    fingerprint: String,
    pubkey_pem: PathBuf,
}

/// A device: a soft element with a P-256 key in slot `device`, its public key as PEM and,
/// with `cert`, a device certificate over that key.
fn device(dir: &Path, name: &str, cert: bool) -> Device {
    let se_dir = dir.join(format!("{name}-se"));
    let uri = format!("soft:{}", se_dir.display());
    let se = edgeward_se::open(&uri).unwrap();
    let key = se.generate_key("device", KeyAlgorithm::P256).unwrap();
    let pubkey_pem = dir.join(format!("{name}.pem"));
    if cert {
        let ca_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut ca = rcgen::CertificateParams::new(vec![]).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let spki = rcgen::SubjectPublicKeyInfo::from_der(&key.to_spki_der()).unwrap();
        let cert = rcgen::CertificateParams::new(vec![format!("{name}.devices.example")])
            .unwrap()
            .signed_by(&spki, &issuer)
            .unwrap();
        std::fs::write(&pubkey_pem, cert.pem()).unwrap();
    } else {
        std::fs::write(&pubkey_pem, key.to_pem()).unwrap();
    }
    Device {
        uri,
        fingerprint: key.fingerprint(),
        pubkey_pem,
    }
}

/// `edgeward model decrypt ENC -o OUT --se URI`.
fn decrypt(enc: &Path, out: &Path, se: &str) -> std::process::Command {
    let mut c = edgeward();
    c.args(["model", "decrypt"])
        .arg(enc)
        .arg("-o")
        .arg(out)
        .args(["--se", se]);
    c
}

#[test]
fn encrypt_inspect_decrypt_rewrap_and_refusals() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let (a, b, c) = (
        device(d, "a", false),
        device(d, "b", true),
        device(d, "c", false),
    );
    let model = d.join("model.bin");
    let plain = bytes(300_000, 5);
    std::fs::write(&model, &plain).unwrap();
    let enc = d.join("model.ewm");

    let out = ok(edgeward()
        .args(["model", "encrypt"])
        .arg(&model)
        .arg("-o")
        .arg(&enc)
        .arg("--recipient")
        .arg(&a.pubkey_pem)
        .arg("--recipient")
        .arg(&b.pubkey_pem)
        .args(["--chunk-size", "16KiB", "--json"]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v["recipients"],
        serde_json::json!([a.fingerprint, b.fingerprint])
    );

    let out = ok(edgeward().args(["model", "inspect", "--json"]).arg(&enc));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["chunk_size"], 16384);
    assert_eq!(v["plaintext_bytes"], 300_000);
    assert_eq!(v["cipher"], "AES-256-GCM STREAM");
    assert_eq!(v["recipients"][1]["fingerprint"], b.fingerprint.as_str());
    assert_eq!(v["payload"], "complete length");
    // Version 2 names recipients by the key id every other command prints.
    assert_eq!(v["version"], 2);
    assert_eq!(v["recipient_ids"], "sha256-pem");
    let text = ok(edgeward().args(["model", "inspect"]).arg(&enc));
    assert!(
        text.contains(&a.fingerprint)
            && text.contains("16384")
            && text.contains("edgeward-model-crypt v2")
            && text.contains("(key id, sha256 pem "),
        "{text}"
    );

    // Each recipient decrypts (with a warning that plaintext is written).
    for dev in [&a, &b] {
        let out_path = d.join(format!("plain-{}.bin", dev.fingerprint));
        let o = crate::common::run(&mut decrypt(&enc, &out_path, &dev.uri));
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(String::from_utf8_lossy(&o.stderr).contains("warning"));
        assert_eq!(std::fs::read(&out_path).unwrap(), plain);
    }

    // `-o -` streams the plaintext to standard output (for pipes; nothing else is printed).
    let o = crate::common::run(
        edgeward()
            .args(["model", "decrypt"])
            .arg(&enc)
            .args(["-o", "-", "--se", &a.uri]),
    );
    assert!(o.status.success());
    assert_eq!(o.stdout, plain);

    // The model copied to device c: refused (exit 1), naming c's key.
    let no_out = d.join("never.bin");
    let err = fails(&mut decrypt(&enc, &no_out, &c.uri), 1);
    assert!(
        err.contains("not encrypted for this device") && err.contains(&c.fingerprint),
        "{err}"
    );
    assert!(!no_out.exists(), "no plaintext written");

    // A flipped payload bit: refused, nothing written.
    let mut bad = std::fs::read(&enc).unwrap();
    let n = bad.len();
    bad[n - 100] ^= 4;
    let bad_path = d.join("bad.ewm");
    std::fs::write(&bad_path, &bad).unwrap();
    let err = fails(&mut decrypt(&bad_path, &no_out, &a.uri), 1);
    assert!(err.contains("failed authentication"), "{err}");
    assert!(!no_out.exists());

    // Rewrap: add c, remove b (in place, through a's element); the payload is unchanged.
    let before = std::fs::read(&enc).unwrap();
    ok(edgeward()
        .args(["model", "rewrap"])
        .arg(&enc)
        .arg("--add")
        .arg(&c.pubkey_pem)
        .args(["--remove", &b.fingerprint, "--se", &a.uri]));
    let after = std::fs::read(&enc).unwrap();
    assert_eq!(after.len(), before.len(), "one recipient in, one out");
    let hl = 44 + 2 + 2 * 146 + 32;
    assert_eq!(&after[hl..], &before[hl..], "payload untouched");
    let c_out = d.join("plain-c.bin");
    ok(&mut decrypt(&enc, &c_out, &c.uri));
    assert_eq!(std::fs::read(&c_out).unwrap(), plain);
    let err = fails(&mut decrypt(&enc, &no_out, &b.uri), 1);
    assert!(err.contains(&b.fingerprint), "{err}");

    // Operator errors exit 2: not a container for inspect is a rejection (1), a missing
    // element slot and a bad fingerprint are operator errors.
    fails(edgeward().args(["model", "inspect"]).arg(&model), 1);
    fails(
        edgeward()
            .args(["model", "decrypt"])
            .arg(&enc)
            .arg("-o")
            .arg(&no_out)
            .args(["--se", &a.uri, "--slot", "other"]),
        2,
    );
    fails(
        edgeward()
            .args(["model", "rewrap"])
            .arg(&enc)
            .args(["--remove", "xyz", "--se", &a.uri]),
        2,
    );
    let out = crate::common::run(
        edgeward()
            .args(["model", "decrypt", "--json"])
            .arg(&bad_path)
            .arg("-o")
            .arg(&no_out)
            .args(["--se", &a.uri]),
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], false);
}

/// `--format-version 1` writes the container older Edgeward agents read (recipients named
/// by SHA-256 of the key's DER); this one decrypts it as well; other versions are refused
/// by the argument parser.
#[test]
fn format_version_1_is_written_for_older_agents() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let a = device(d, "a", false);
    let model = d.join("model.bin");
    let plain = bytes(70_000, 9);
    std::fs::write(&model, &plain).unwrap();
    let enc = d.join("model-v1.ewm");
    let out = ok(edgeward()
        .args(["model", "encrypt"])
        .arg(&model)
        .arg("-o")
        .arg(&enc)
        .arg("--recipient")
        .arg(&a.pubkey_pem)
        .args(["--format-version", "1", "--json"]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["version"], 1);
    let out = ok(edgeward().args(["model", "inspect", "--json"]).arg(&enc));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["version"], 1);
    assert_eq!(v["recipient_ids"], "sha256-spki");
    let back = d.join("back.bin");
    ok(&mut decrypt(&enc, &back, &a.uri));
    assert_eq!(std::fs::read(&back).unwrap(), plain);
    let err = fails(
        edgeward()
            .args(["model", "encrypt"])
            .arg(&model)
            .arg("-o")
            .arg(d.join("never.ewm"))
            .arg("--recipient")
            .arg(&a.pubkey_pem)
            .args(["--format-version", "3"]),
        2,
    );
    assert!(err.contains("3 is not in 1..=2"), "{err}");
}
