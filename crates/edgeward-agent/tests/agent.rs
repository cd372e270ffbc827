//! The agent binary end to end: an example chain (made with the boot library) boots (exit
//! 0), attests, then a tampered stage sends it into recovery (exit 3, the record names the
//! stage), and a tripped tamper input wipes the element so that it refuses to boot.

use std::process::Command;

use edgeward_boot::example;

fn agent() -> Command {
    Command::new(env!("CARGO_BIN_EXE_edgeward-agent"))
}

#[test]
fn boot_attest_tamper() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    let now = time::OffsetDateTime::now_utc();
    edgeward_pki::Hierarchy::init(
        &pki,
        "Agent Test",
        b"agent-test-pass",
        90,
        edgeward_core::keys::KeyAlgorithm::P256,
        now,
    )
    .unwrap();
    let out = dir.path().join("ex");
    let se = edgeward_se::open(&format!("soft:{}", out.join("se").display())).unwrap();
    let ex = example::write_example(&pki, &out, se.as_ref(), 1 << 20, 1 << 20, now).unwrap();
    drop(se);
    let se_uri = format!("soft:{}", ex.se_dir.display());
    let state = dir.path().join("state");
    let base = |c: &mut Command| {
        c.arg("--se").arg(&se_uri).arg("--state").arg(&state);
    };

    let mut boot = agent();
    boot.arg("boot").arg("--chain").arg(&ex.chain);
    base(&mut boot);
    let o = boot.output().unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    let mut attest = agent();
    attest.args(["attest", "--nonce", &"ab".repeat(16)]);
    base(&mut attest);
    let o = attest.output().unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let ev: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(ev["signature"].is_string());

    // A tampered OS image: recovery mode, the record names stage 2.
    let mut bytes = std::fs::read(&ex.images[2]).unwrap();
    bytes[1000] ^= 0x80;
    std::fs::write(&ex.images[2], bytes).unwrap();
    let o = boot.output().unwrap();
    assert_eq!(o.status.code(), Some(3));
    let record: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(record["stage"]["name"], "os");
    assert_eq!(record["reason"], "integrity");
    assert!(state.join("recovery.json").exists());

    // A tripped tamper input wipes the element; afterwards the device refuses to boot.
    let gpio = dir.path().join("gpio-value");
    std::fs::write(&gpio, "1\n").unwrap();
    let mut tampered = agent();
    tampered
        .arg("boot")
        .arg("--chain")
        .arg(&ex.chain)
        .arg("--tamper")
        .arg(&gpio);
    base(&mut tampered);
    let o = tampered.output().unwrap();
    assert_eq!(o.status.code(), Some(3));
    let record: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(record["reason"], "tampered");
    std::fs::write(&gpio, "0\n").unwrap();
    let o = boot.output().unwrap();
    assert_eq!(o.status.code(), Some(3));
    let record: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(record["reason"], "not-provisioned");
}
