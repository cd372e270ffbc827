//! MCUboot images made by the real `imgtool` (PyPI): ECDSA P-256 and Ed25519 images verify
//! with their key and their security counter and hardware TLVs are read; a flipped byte, a
//! flipped protected TLV, another key and a truncated file are refused; an MCUboot stage
//! signed with the hierarchy's signing key boots in a chain.

mod common;

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use common::*;
use edgeward_boot::{
    chain::{StageFormat, StageSpec},
    mcuboot::{Image, McubootError},
    stage::{verify_stage, StageTrust},
};
use edgeward_core::{keys::PublicKey, pem};

fn imgtool() -> PathBuf {
    let python = std::env::var_os("EDGEWARD_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/edgeward/venv/bin/python"));
    let tool = python.with_file_name("imgtool");
    assert!(
        tool.exists(),
        "{} not found: pip install imgtool into the venv (scripts/test.sh)",
        tool.display()
    );
    tool
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn keygen(dir: &Path, kind: &str) -> (PathBuf, PublicKey) {
    let key = dir.join(format!("{kind}.pem"));
    run(Command::new(imgtool())
        .args(["keygen", "-t", kind, "-k"])
        .arg(&key));
    let out = Command::new(imgtool())
        .args(["getpub", "-e", "pem", "-k"])
        .arg(&key)
        .output()
        .unwrap();
    (key, PublicKey::from_pem(&out.stdout).unwrap())
}

fn sign(dir: &Path, key: &Path, name: &str, extra: &[&str]) -> Vec<u8> {
    let input = dir.join(format!("{name}.bin"));
    std::fs::write(
        &input,
        (0..20_000u32).map(|i| (i * 7) as u8).collect::<Vec<_>>(),
    )
    .unwrap();
    let output = dir.join(format!("{name}.signed.bin"));
    run(Command::new(imgtool())
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
            "0x20000",
            "-k",
        ])
        .arg(key)
        .args(extra)
        .arg(&input)
        .arg(&output));
    std::fs::read(output).unwrap()
}

#[test]
fn imgtool_images_verify_and_attacks_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for kind in ["ecdsa-p256", "ed25519"] {
        let (key, public) = keygen(dir.path(), kind);
        let other_dir = dir.path().join(format!("other-{kind}"));
        std::fs::create_dir_all(&other_dir).unwrap();
        let (_, other) = keygen(&other_dir, kind);
        let bytes = sign(
            dir.path(),
            &key,
            kind,
            &[
                "--security-counter",
                "5",
                "--custom-tlv",
                "0xa0",
                "edgeward-sim-v1",
            ],
        );
        let image = Image::parse(&bytes).unwrap();
        let v = image
            .verify(&public)
            .unwrap_or_else(|e| panic!("{kind}: {e}"));
        assert_eq!(v.security_counter, Some(5));
        assert_eq!(v.hardware.as_deref(), Some("edgeward-sim-v1"));
        assert_eq!(v.version.to_string(), "1.2.3+4");

        let mut flipped = bytes.clone();
        flipped[0x200 + 100] ^= 1;
        let err = Image::parse(&flipped).unwrap().verify(&public).unwrap_err();
        assert!(matches!(err, McubootError::Integrity(_)), "{kind}: {err}");

        // The security counter is protected: raising it breaks the hash.
        let image_end = 0x200 + image.header.img_size as usize;
        let sec = image.protected.iter().find(|t| t.kind == 0x50).unwrap();
        assert!(sec.offset > image_end);
        let mut raised = bytes.clone();
        raised[sec.offset] = 9;
        let err = Image::parse(&raised).unwrap().verify(&public).unwrap_err();
        assert!(matches!(err, McubootError::Integrity(_)), "{kind}: {err}");

        let err = image.verify(&other).unwrap_err();
        assert!(matches!(err, McubootError::KeyMismatch(_)), "{kind}: {err}");

        for cut in [20, 0x200, image_end + 2] {
            assert!(Image::parse(&bytes[..cut]).is_err(), "{kind}: cut at {cut}");
        }
    }
    // imgtool --pad-sig pads ECDSA signatures to a fixed length.
    let (key, public) = keygen(dir.path(), "ecdsa-p256");
    let padded = sign(dir.path(), &key, "padded", &["--pad-sig"]);
    Image::parse(&padded).unwrap().verify(&public).unwrap();
}

#[test]
fn mcuboot_stage_signed_by_the_hierarchy_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let pki_dir = dir.path().join("pki");
    pki(&pki_dir, "MCU Test");
    let bytes = sign(
        dir.path(),
        &pki_dir.join("signing.key"),
        "mcu",
        &[
            "--security-counter",
            "3",
            "--custom-tlv",
            "0xa0",
            "edgeward-sim-v1",
        ],
    );
    let image = dir.path().join("mcu.img");
    std::fs::write(&image, &bytes).unwrap();
    let root = pem::parse_labelled(
        &std::fs::read(pki_dir.join("root.pem")).unwrap(),
        "CERTIFICATE",
    )
    .unwrap();
    let trust = StageTrust {
        roots: &root,
        crls: &[],
        now: unix_now(),
        hardware: "edgeward-sim-v1",
    };
    let spec = StageSpec {
        index: 0,
        name: "mcu".into(),
        image,
        format: StageFormat::Mcuboot {
            certificate: pki_dir.join("signing-chain.pem"),
        },
        security_counter: 3,
    };
    let v = verify_stage(&spec, &trust, 2).unwrap();
    assert_eq!(v.event.format, "mcuboot");
    let err = verify_stage(&spec, &trust, 4).unwrap_err();
    assert_eq!(err.kind, edgeward_boot::FailureKind::Rollback);
    // A rogue root does not endorse the signer.
    let rogue = dir.path().join("rogue");
    pki(&rogue, "Rogue");
    let rogue_root = pem::parse_labelled(
        &std::fs::read(rogue.join("root.pem")).unwrap(),
        "CERTIFICATE",
    )
    .unwrap();
    let err = verify_stage(
        &spec,
        &StageTrust {
            roots: &rogue_root,
            ..trust
        },
        0,
    )
    .unwrap_err();
    assert_eq!(err.kind, edgeward_boot::FailureKind::NotEndorsed, "{err}");
}
