//! MCUboot images made by the real `imgtool` (PyPI) with every key type it signs with
//! (ECDSA P-256 and P-384, Ed25519 over the hash and pure, RSA-2048 and RSA-3072) verify with
//! their key and are refused with another key of the same type and with a key of another
//! type, each with the exact cause; their security counter and hardware TLVs are read; a
//! flipped byte, a flipped protected TLV and a truncated file are refused; every header flag
//! and dependency imgtool writes is reported; an MCUboot stage signed with the hierarchy's
//! signing key boots in a chain.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use crate::common::*;
use edgeward_boot::{
    chain::{StageFormat, StageSpec},
    mcuboot::{Image, KeyReference, McubootError},
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

/// A new imgtool key of `kind` and its public half as PEM.
fn keygen_pem(dir: &Path, kind: &str) -> (PathBuf, Vec<u8>) {
    let key = dir.join(format!("{kind}.pem"));
    run(Command::new(imgtool())
        .args(["keygen", "-t", kind, "-k"])
        .arg(&key));
    let out = Command::new(imgtool())
        .args(["getpub", "-e", "pem", "-k"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(out.status.success(), "getpub {kind}");
    (key, out.stdout)
}

fn keygen(dir: &Path, kind: &str) -> (PathBuf, PublicKey) {
    let (key, pem) = keygen_pem(dir, kind);
    (key, PublicKey::from_pem(&pem).unwrap())
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

/// imgtool's key type, the extra `sign` arguments, the algorithm Edgeward reports, the
/// image-hash TLV and what the key type is called in messages.
const KINDS: [(&str, &[&str], &str, u16, &str); 6] = [
    ("ecdsa-p256", &[], "ecdsa-p256-sha256", 0x10, "ECDSA P-256"),
    ("ecdsa-p384", &[], "ecdsa-p384-sha384", 0x11, "ECDSA P-384"),
    ("ed25519", &[], "ed25519-over-sha256", 0x10, "Ed25519"),
    ("ed25519", &["--pure"], "ed25519-pure", 0x12, "Ed25519"),
    ("rsa-2048", &[], "rsa2048-pss-sha256", 0x10, "RSA-2048"),
    ("rsa-3072", &[], "rsa3072-pss-sha256", 0x10, "RSA-3072"),
];

#[test]
fn imgtool_images_of_every_key_type_verify_with_their_key_only() {
    let dir = tempfile::tempdir().unwrap();
    let keys: Vec<(PathBuf, PublicKey, PublicKey)> = KINDS
        .iter()
        .enumerate()
        .map(|(i, (kind, ..))| {
            let sub = dir.path().join(format!("{i}"));
            std::fs::create_dir_all(sub.join("other")).unwrap();
            let (key, public) = keygen(&sub, kind);
            let (_, other) = keygen(&sub.join("other"), kind);
            (key, public, other)
        })
        .collect();
    for (i, (kind, extra, alg, hash_tlv, type_name)) in KINDS.iter().enumerate() {
        let (key, public, other) = &keys[i];
        let mut args = vec![
            "--security-counter",
            "5",
            "--custom-tlv",
            "0xa0",
            "edgeward-sim-v1",
        ];
        args.extend_from_slice(extra);
        let bytes = sign(dir.path(), key, &format!("{i}"), &args);
        let image = Image::parse(&bytes).unwrap();
        assert!(
            image.unprotected.iter().any(|t| t.kind == *hash_tlv),
            "{alg}"
        );
        let v = image
            .verify(public)
            .unwrap_or_else(|e| panic!("{alg}: {e}"));
        assert_eq!(v.signature_alg, *alg);
        assert_eq!(v.security_counter, Some(5));
        assert_eq!(v.hardware.as_deref(), Some("edgeward-sim-v1"));
        assert_eq!(v.version.to_string(), "1.2.3+4");
        assert!(matches!(v.key_reference, KeyReference::Hash(_)), "{alg}");
        assert_eq!(v.pure, extra.contains(&"--pure"));

        // Same type, another key: the key hash names the real cause.
        let err = image.verify(other).unwrap_err();
        assert!(matches!(err, McubootError::KeyMismatch(_)), "{alg}: {err}");
        assert!(
            err.to_string().starts_with(&format!(
                "MCUboot key mismatch: signed by the {type_name} key with "
            )),
            "{alg}: {err}"
        );
        // Another type: the message says which type the image wants, before any hash.
        for (j, (other_kind, ..)) in KINDS.iter().enumerate() {
            if other_kind == kind {
                continue;
            }
            let wrong = &keys[j].1;
            let err = image.verify(wrong).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!(
                    "MCUboot key mismatch: the image is signed with {type_name}, the trusted key {} is {}",
                    wrong.fingerprint(),
                    KINDS[j].4
                ),
                "{alg} with {other_kind}"
            );
        }

        let mut flipped = bytes.clone();
        flipped[0x200 + 100] ^= 1;
        let err = Image::parse(&flipped).unwrap().verify(public).unwrap_err();
        assert!(matches!(err, McubootError::Integrity(_)), "{alg}: {err}");

        // The security counter is protected: raising it breaks the hash.
        let image_end = 0x200 + image.header.img_size as usize;
        let sec = image.protected.iter().find(|t| t.kind == 0x50).unwrap();
        assert!(sec.offset > image_end);
        let mut raised = bytes.clone();
        raised[sec.offset] = 9;
        let err = Image::parse(&raised).unwrap().verify(public).unwrap_err();
        assert!(matches!(err, McubootError::Integrity(_)), "{alg}: {err}");

        for (cut, says) in [
            (20, "is shorter than the 32-byte header"),
            (0x200, "exceeds the file"),
            (image_end + 2, "TLV area claims"),
        ] {
            match Image::parse(&bytes[..cut]) {
                Err(McubootError::Malformed(m)) => {
                    assert!(m.contains(says), "{alg}: cut at {cut}: {m}")
                }
                other => panic!("{alg}: cut at {cut}: {:?}", other.map(|_| ())),
            }
        }
    }
    // imgtool --pad-sig pads ECDSA signatures to a fixed length; --public-key-format full
    // embeds the key instead of its hash.
    for (i, kind) in [(0, "ecdsa-p256"), (1, "ecdsa-p384")] {
        let (key, public, _) = &keys[i];
        let padded = sign(dir.path(), key, &format!("padded-{kind}"), &["--pad-sig"]);
        Image::parse(&padded)
            .unwrap()
            .verify(public)
            .unwrap_or_else(|e| panic!("{kind}: {e}"));
    }
    for (i, (_, _, alg, ..)) in KINDS.iter().enumerate() {
        let (key, public, other) = &keys[i];
        let full = sign(
            dir.path(),
            key,
            &format!("full-{i}"),
            &["--public-key-format", "full"],
        );
        let image = Image::parse(&full).unwrap();
        let v = image
            .verify(public)
            .unwrap_or_else(|e| panic!("{alg}: {e}"));
        assert_eq!(v.key_reference, KeyReference::Full);
        let err = image.verify(other).unwrap_err();
        assert!(
            err.to_string().contains("the image carries another"),
            "{alg}: {err}"
        );
    }
}

#[test]
fn imgtool_flags_and_dependencies_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = keygen(dir.path(), "ecdsa-p256");
    let bytes = sign(
        dir.path(),
        &key,
        "flags",
        &[
            "--non-bootable",
            "--load-addr",
            "0x20000000",
            "--dependencies",
            "(1, 2.3.4+5)",
        ],
    );
    let v = Image::parse(&bytes).unwrap().verify(&public).unwrap();
    assert!(v.info.non_bootable() && v.info.ram_load());
    assert_eq!(v.info.flag_names, ["NON_BOOTABLE", "RAM_LOAD"]);
    assert_eq!(v.info.load_addr, 0x2000_0000);
    assert_eq!(v.info.dependencies.len(), 1);
    assert_eq!(v.info.dependencies[0].image_id, 1);
    assert_eq!(v.info.dependencies[0].min_version.to_string(), "2.3.4+5");

    // Compressed: the signature covers the compressed payload and verifies.
    let compressed = sign(dir.path(), &key, "lzma", &["--compression", "lzma2"]);
    let v = Image::parse(&compressed).unwrap().verify(&public).unwrap();
    assert!(v.info.compressed(), "{:?}", v.info.flag_names);
    assert_eq!(v.info.flag_names, ["COMPRESSED_LZMA2"]);

    // Encrypted: the flags are read, and verification says why it cannot be done.
    // imgtool encrypts to a key of the signing key's type (ECIES-P256 here).
    let enc_dir = dir.path().join("enc");
    std::fs::create_dir_all(&enc_dir).unwrap();
    let (_, enc_pem) = keygen_pem(&enc_dir, "ecdsa-p256");
    let enc_pub = dir.path().join("enc.pub.pem");
    std::fs::write(&enc_pub, enc_pem).unwrap();
    let encrypted = sign(dir.path(), &key, "enc", &["-E", enc_pub.to_str().unwrap()]);
    let image = Image::parse(&encrypted).unwrap();
    assert!(image.info().unwrap().encrypted());
    assert_eq!(
        image.verify(&public).unwrap_err().to_string(),
        "unsupported MCUboot image: encrypted image (ENCRYPTED_AES128): its hash covers the plaintext, which only the device's decryption key reveals; verify the image before encryption"
    );
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
