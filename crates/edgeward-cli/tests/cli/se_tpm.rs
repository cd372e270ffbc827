//! `edgeward se` on a TPM (swtpm on free loopback ports, built with `--features tpm`): the key
//! is generated in the TPM, `openssl dgst -sha256 -verify` accepts its signature, Ed25519 is
//! refused as unsupported, and a wipe empties the slot.

use crate::common::{edgeward, ok, openssl_verifies, run};

#[test]
fn tpm_key_signs_and_openssl_verifies() {
    let swtpm = crate::swtpm::Swtpm::start();
    let dir = tempfile::tempdir().unwrap();
    let backend = format!(
        "tpm:{}?state={}",
        swtpm.tcti(),
        dir.path().join("tpm").display()
    );
    let pem = ok(edgeward().args(["se", "keygen", "--backend", &backend, "--slot", "device"]));
    assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"), "{pem}");
    let pub_path = dir.path().join("device.pub.pem");
    std::fs::write(&pub_path, &pem).unwrap();
    let data = dir.path().join("firmware.bin");
    std::fs::write(&data, vec![0x5au8; 100_000]).unwrap();
    let sig = dir.path().join("firmware.sig");
    ok(edgeward()
        .args(["se", "sign", "--backend", &backend, "--slot", "device"])
        .arg("--in")
        .arg(&data)
        .arg("--out")
        .arg(&sig));
    assert!(openssl_verifies(&pub_path, &sig, &data));

    let ed = run(edgeward().args([
        "se",
        "keygen",
        "--backend",
        &backend,
        "--slot",
        "ed",
        "--alg",
        "ed25519",
    ]));
    assert!(!ed.status.success());
    assert!(
        String::from_utf8_lossy(&ed.stderr).contains("does not support Ed25519"),
        "{}",
        String::from_utf8_lossy(&ed.stderr)
    );

    ok(edgeward().args(["se", "wipe", "--backend", &backend, "--yes"]));
    let gone = run(edgeward().args(["se", "pubkey", "--backend", &backend, "--slot", "device"]));
    assert!(!gone.status.success());
}
