//! `edgeward boot example` writes a chain that the boot library boots on the provisioned
//! software element (stage files sort in chain order); `edgeward mcuboot verify` accepts an
//! image made by the real `imgtool` and rejects a tampered one with the reason (exit 1).

use std::{path::PathBuf, process::Command};

use crate::common::*;

#[test]
fn boot_example_boots() {
    let dir = tempfile::tempdir().unwrap();
    let pki_dir = dir.path().join("pki");
    pki(&pki_dir);
    let out = dir.path().join("ex");
    let stdout = ok(edgeward()
        .args([
            "boot",
            "example",
            "--json",
            "--os-size",
            "1MiB",
            "--model-size",
            "2MiB",
            "--pki",
        ])
        .arg(&pki_dir)
        .arg("--out")
        .arg(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["stages"].as_array().unwrap().len(), 5);
    let mut names: Vec<String> = std::fs::read_dir(out.join("stages"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".sig"))
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "0-fsbl.bin",
            "1-ssbl.bin",
            "2-os.img",
            "3-app.bin",
            "4-model.bin"
        ]
    );
    let se = edgeward_se::open(&format!("soft:{}", out.join("se").display())).unwrap();
    let log = edgeward_boot::boot::boot_chain(
        &out.join("chain.toml"),
        se.as_ref(),
        &edgeward_boot::boot::BootOptions {
            now: time::OffsetDateTime::now_utc().unix_timestamp() as u64,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(log.events.len(), 5);
    // The upstream model_signing still verifies a stage bundle carrying the boot claims.
    let stage = out.join("stages/2-os.img");
    let script = "import sys, model_signing\nmodel_signing.verifying.Config().use_certificate_verifier(certificate_chain=[sys.argv[3]]).verify(sys.argv[1], sys.argv[2])\nprint('Verification succeeded')\n";
    let verified = ok(Command::new(python())
        .arg("-c")
        .arg(script)
        .arg(&stage)
        .arg(out.join("stages/2-os.img.sig"))
        .arg(pki_dir.join("root.pem")));
    assert!(verified.contains("Verification succeeded"));
    // A second run refuses to overwrite.
    fails(
        edgeward()
            .args(["boot", "example", "--pki"])
            .arg(&pki_dir)
            .arg("--out")
            .arg(&out),
        2,
    );
}

#[test]
fn mcuboot_verify_with_imgtool_images() {
    let imgtool = python().with_file_name("imgtool");
    assert!(
        imgtool.exists(),
        "{} missing: pip install imgtool",
        imgtool.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("k.pem");
    let public = dir.path().join("k.pub.pem");
    ok(Command::new(&imgtool)
        .args(["keygen", "-t", "ecdsa-p256", "-k"])
        .arg(&key));
    let pem = ok(Command::new(&imgtool)
        .args(["getpub", "-e", "pem", "-k"])
        .arg(&key));
    std::fs::write(&public, pem).unwrap();
    let input = dir.path().join("fw.bin");
    std::fs::write(&input, bytes(30_000, 9)).unwrap();
    let image: PathBuf = dir.path().join("fw.signed.bin");
    ok(Command::new(&imgtool)
        .args([
            "sign",
            "--header-size",
            "0x200",
            "--pad-header",
            "--align",
            "8",
            "--version",
            "2.0.1",
            "--slot-size",
            "0x10000",
            "--security-counter",
            "4",
            "-k",
        ])
        .arg(&key)
        .arg(&input)
        .arg(&image));
    let out = ok(edgeward()
        .args(["mcuboot", "verify", "--json", "--key"])
        .arg(&public)
        .arg(&image));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["verified"], true);
    assert_eq!(v["security_counter"], 4);
    assert_eq!(v["version"], "2.0.1+0");
    assert_eq!(v["bootable"], true);
    assert_eq!(v["flags"]["names"], serde_json::json!([]));
    assert_eq!(v["load_address"], serde_json::Value::Null);
    assert_eq!(v["warnings"], serde_json::json!([]));
    assert_eq!(v["signature_algorithm"], "ecdsa-p256-sha256");
    assert_eq!(v["key_reference"]["kind"], "hash");
    assert_eq!(v["hash_algorithm"], "sha256");
    assert_eq!(
        v["hash"], v["measurement"],
        "a SHA-256 image measures what it records"
    );

    // Flags and dependencies as imgtool writes them; a non-bootable image is called out.
    let flagged: PathBuf = dir.path().join("fw.flags.bin");
    ok(Command::new(&imgtool)
        .args([
            "sign",
            "--header-size",
            "0x200",
            "--pad-header",
            "--align",
            "8",
            "--version",
            "1.2.3+4",
            "--slot-size",
            "0x10000",
            "--non-bootable",
            "--load-addr",
            "0x20000000",
            "--dependencies",
            "(1, 2.3.4+5)",
            "-k",
        ])
        .arg(&key)
        .arg(&input)
        .arg(&flagged));
    let out = run(edgeward()
        .args(["mcuboot", "verify", "--json", "--key"])
        .arg(&public)
        .arg(&flagged));
    assert_eq!(out.status.code(), Some(0));
    let warning = "the image is marked NON_BOOTABLE: MCUboot will not boot it (a data or dependency-only image)";
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!("warning: {warning}\n")
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["version"], "1.2.3+4");
    assert_eq!(v["build"], 4);
    assert_eq!(v["bootable"], false);
    assert_eq!(
        v["flags"],
        serde_json::json!({
            "value": "0x00000030",
            "names": ["NON_BOOTABLE", "RAM_LOAD"],
            "non_bootable": true,
            "ram_load": true,
            "encrypted": false,
            "compressed": false,
        })
    );
    assert_eq!(v["load_address"], "0x20000000");
    assert_eq!(
        v["dependencies"],
        serde_json::json!([{ "image_id": 1, "min_version": "2.3.4+5" }])
    );
    assert_eq!(v["warnings"], serde_json::json!([warning]));
    let text = ok(edgeward()
        .args(["mcuboot", "verify", "--key"])
        .arg(&public)
        .arg(&flagged));
    assert!(
        text.contains("  flags      NON_BOOTABLE, RAM_LOAD (load address 0x20000000)\n  depends on image 1 at version 2.3.4+5 or later\n"),
        "{text}"
    );
    let mut b = std::fs::read(&image).unwrap();
    b[0x200 + 5] ^= 1;
    std::fs::write(&image, b).unwrap();
    let err = fails(
        edgeward()
            .args(["mcuboot", "verify", "--key"])
            .arg(&public)
            .arg(&image),
        1,
    );
    assert!(err.contains("hash mismatch"), "{err}");
}
