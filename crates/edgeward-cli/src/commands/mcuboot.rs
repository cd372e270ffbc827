//! `edgeward mcuboot verify IMAGE --key PUB.pem`: exit 0 valid, 1 rejected with the reason,
//! 2 operator error; `--json` verdict.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use edgeward_boot::mcuboot::{Image, MAX_IMAGE_BYTES};
use edgeward_core::keys::PublicKey;
use serde_json::json;

use crate::outcome::{print_json, read_operator_file, Failure, Outcome};

/// MCUboot images (as `imgtool sign` makes them).
#[derive(Subcommand, Debug)]
pub enum McubootCommand {
    /// Verify an image's hash, key and signature (ECDSA P-256 or Ed25519).
    Verify(McubootVerifyArgs),
}

/// Arguments of `mcuboot verify`.
#[derive(Args, Debug)]
pub struct McubootVerifyArgs {
    /// The signed image.
    pub image: PathBuf,
    /// The public key (PEM, e.g. `imgtool getpub -e pem`) or a certificate holding it.
    #[arg(long)]
    pub key: PathBuf,
}

/// Runs `mcuboot …`.
pub fn run(cmd: McubootCommand, json: bool) -> Outcome {
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
            if json {
                print_json(&json!({
                    "verified": true,
                    "image": a.image,
                    "version": v.version.to_string(),
                    "hash": hex::encode(v.hash),
                    "security_counter": v.security_counter,
                    "hardware": v.hardware,
                    "image_size": v.img_size,
                    "key": key.fingerprint(),
                    "algorithm": key.algorithm(),
                }));
            } else {
                println!(
                    "verified {} version {} (security counter {})",
                    a.image.display(),
                    v.version,
                    v.security_counter.map_or("none".into(), |c| c.to_string())
                );
            }
            Ok(())
        }
        Err(reason) => {
            if json {
                print_json(
                    &json!({ "verified": false, "image": a.image, "error": reason, "kind": "rejected" }),
                );
            }
            let mut f = Failure::rejected(format!("{}: {reason}", a.image.display()));
            f.reported = json;
            Err(f)
        }
    }
}
