//! `edgeward mcuboot verify IMAGE --key PUB.pem`: exit 0 valid, 1 rejected with the reason,
//! 2 operator error; `--json` verdict.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use edgeward_boot::mcuboot::{Image, KeyReference, VerifiedImage, MAX_IMAGE_BYTES};
use edgeward_core::keys::PublicKey;
use serde_json::{json, Value};

use crate::outcome::{print_json, read_operator_file, Failure, Outcome};

/// MCUboot images (as `imgtool sign` makes them).
#[derive(Subcommand, Debug)]
pub(crate) enum McubootCommand {
    /// Verify an image's hash, key and signature (ECDSA P-256/P-384, Ed25519, RSA-2048/3072).
    Verify(McubootVerifyArgs),
}

/// Arguments of `mcuboot verify`.
#[derive(Args, Debug)]
pub(crate) struct McubootVerifyArgs {
    /// The signed image.
    pub(crate) image: PathBuf,
    /// The public key (PEM, e.g. `imgtool getpub -e pem`) or a certificate holding it.
    #[arg(long)]
    pub(crate) key: PathBuf,
}

/// Runs `mcuboot …`.
pub(crate) fn run(cmd: McubootCommand, json: bool) -> Outcome {
    match cmd {
        McubootCommand::Verify(a) => verify(a, json),
    }
}

fn verify(a: McubootVerifyArgs, json: bool) -> Outcome {
    let key = PublicKey::from_pem(&read_operator_file(&a.key)?)
        .map_err(|e| Failure::operator(format!("{}: {e}", a.key.display())))?;
    let size = std::fs::metadata(&a.image)
        .map_err(|e| Failure::operator(format!("{}: {e}", a.image.display())))?
        .len();
    let result = if size > MAX_IMAGE_BYTES as u64 {
        Err(format!(
            "{size} bytes exceeds the limit of {MAX_IMAGE_BYTES}"
        ))
    } else {
        let bytes = read_operator_file(&a.image)?;
        Image::parse(&bytes)
            .and_then(|img| img.verify(&key))
            .map_err(|e| e.to_string())
    };
    match result {
        Ok(v) => {
            let report = describe(&v, &key);
            if json {
                let mut out = json!({ "verified": true, "image": a.image });
                if let (Some(out), Some(fields)) = (out.as_object_mut(), report.as_object()) {
                    out.extend(fields.clone());
                }
                print_json(&out);
            } else {
                print_text(&a.image, &v, &key);
            }
            if v.info.non_bootable() {
                eprintln!("warning: {NON_BOOTABLE_WARNING}");
            }
            Ok(())
        }
        Err(reason) => Err(
            Failure::rejected(format!("{}: {reason}", a.image.display()))
                .with_context(json!({ "verified": false, "image": a.image })),
        ),
    }
}

/// What `--json` says of a non-bootable image, and the warning on stderr.
const NON_BOOTABLE_WARNING: &str =
    "the image is marked NON_BOOTABLE: MCUboot will not boot it (a data or dependency-only image)";

/// The verified image's facts as JSON (documented field by field in docs/boot.md).
fn describe(v: &VerifiedImage, key: &PublicKey) -> Value {
    let info = &v.info;
    json!({
        "version": v.version.to_string(),
        "build": v.version.build,
        "security_counter": v.security_counter,
        "hardware": v.hardware,
        "image_size": v.img_size,
        "hash": hex::encode(&v.image_hash),
        "hash_algorithm": v.hash_alg.name(),
        "measurement": hex::encode(v.hash),
        "key": key.fingerprint(),
        "algorithm": key.algorithm(),
        "signature_algorithm": v.signature_alg,
        "key_reference": match &v.key_reference {
            KeyReference::Hash(h) => json!({ "kind": "hash", "hash": h }),
            KeyReference::Full => json!({ "kind": "full" }),
        },
        "flags": {
            "value": format!("0x{:08x}", info.flags),
            "names": info.flag_names,
            "non_bootable": info.non_bootable(),
            "ram_load": info.ram_load(),
            "encrypted": info.encrypted(),
            "compressed": info.compressed(),
        },
        "bootable": !info.non_bootable(),
        "load_address": info.ram_load().then(|| format!("0x{:08x}", info.load_addr)),
        "dependencies": info.dependencies.iter().map(|d| json!({
            "image_id": d.image_id,
            "min_version": d.min_version.to_string(),
        })).collect::<Vec<_>>(),
        "warnings": if info.non_bootable() { vec![NON_BOOTABLE_WARNING] } else { vec![] },
    })
}

/// The text report: one line with the verdict, then one line per fact.
fn print_text(image: &Path, v: &VerifiedImage, key: &PublicKey) {
    let info = &v.info;
    println!(
        "verified {} version {} (security counter {})",
        image.display(),
        v.version,
        v.security_counter
            .map_or_else(|| "none".into(), |c| c.to_string())
    );
    let named_by = match &v.key_reference {
        KeyReference::Hash(_) => "key hash",
        KeyReference::Full => "full public key",
    };
    println!(
        "  signature  {} by key {} (named by {named_by})",
        v.signature_alg,
        key.fingerprint()
    );
    println!(
        "  hash       {} {}",
        v.hash_alg.name(),
        hex::encode(&v.image_hash)
    );
    let mut flags = if info.flag_names.is_empty() {
        "none".to_string()
    } else {
        info.flag_names.join(", ")
    };
    if info.ram_load() {
        flags.push_str(&format!(" (load address 0x{:08x})", info.load_addr));
    }
    println!("  flags      {flags}");
    for d in &info.dependencies {
        println!(
            "  depends on image {} at version {} or later",
            d.image_id, d.min_version
        );
    }
}
