//! `edgeward se keygen|pubkey|sign|destroy|wipe --se URI`: operate a device's secure element
//! (soft, PKCS#11 or TPM) from the command line, for factories, tests and debugging. Keys
//! are generated and used inside the element; nothing here ever sees a private key.

use std::{io::Read, path::PathBuf};

use base64::Engine;
use clap::{Args, Subcommand};
use edgeward_core::keys::PublicKey;
use edgeward_se::{KeyAlgorithm, SeError, SecureElement};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::outcome::{print_json, Failure, Outcome};

/// Largest file `se sign` reads for Ed25519 (which signs the whole message); P-256 files
/// are hashed as a stream and have no limit.
const MAX_ED25519_MESSAGE: u64 = 64 * 1024 * 1024;

/// Secure-element operations.
#[derive(Subcommand, Debug)]
pub(crate) enum SeCommand {
    /// Generate a key inside the element; prints its public key (PEM).
    Keygen(SeKeygenArgs),
    /// Print the public key of a slot (PEM).
    Pubkey(SeSlotArgs),
    /// Sign a file with a slot's key (ECDSA P-256 over SHA-256, DER; or Ed25519).
    Sign(SeSignArgs),
    /// Destroy the key (and certificate) of one slot; every other slot stays.
    Destroy(SeDestroyArgs),
    /// Destroy every key, sealing key and certificate in the element (counters remain).
    Wipe(SeWipeArgs),
}

/// The element to use.
#[derive(Args, Debug)]
pub(crate) struct SeElementArgs {
    /// The element URI: soft:DIR, pkcs11:MODULE?token=LABEL&pin-env=VAR or tpm:TCTI?state=DIR.
    #[arg(
        long = "se",
        visible_alias = "backend",
        value_name = "URI",
        env = "EDGEWARD_SE"
    )]
    pub(crate) se: String,
}

/// An element and a key slot.
#[derive(Args, Debug)]
pub(crate) struct SeSlotArgs {
    #[command(flatten)]
    pub(crate) element: SeElementArgs,
    /// The key slot (letters, digits, '.', '_', '-'; at most 64).
    #[arg(long)]
    pub(crate) slot: String,
}

/// Arguments of `se keygen`.
#[derive(Args, Debug)]
pub(crate) struct SeKeygenArgs {
    #[command(flatten)]
    pub(crate) slot: SeSlotArgs,
    /// Key type.
    #[arg(long, visible_alias = "alg", value_enum, default_value_t = KeyAlgorithm::P256)]
    pub(crate) key_type: KeyAlgorithm,
}

/// Arguments of `se sign`.
#[derive(Args, Debug)]
pub(crate) struct SeSignArgs {
    #[command(flatten)]
    pub(crate) slot: SeSlotArgs,
    /// The file to sign.
    #[arg(value_name = "PATH", required_unless_present = "input_flag")]
    pub(crate) input: Option<PathBuf>,
    /// The file to sign (the older spelling of PATH).
    #[arg(long = "in", value_name = "PATH", conflicts_with = "input")]
    pub(crate) input_flag: Option<PathBuf>,
    /// Write the raw signature here instead of printing it as base64.
    #[arg(short = 'o', long = "output", visible_alias = "out")]
    pub(crate) out: Option<PathBuf>,
}

/// Arguments of `se destroy`.
#[derive(Args, Debug)]
pub(crate) struct SeDestroyArgs {
    #[command(flatten)]
    pub(crate) slot: SeSlotArgs,
    /// Confirm: the slot's key is destroyed and cannot be recovered.
    #[arg(long)]
    pub(crate) yes: bool,
}

/// Arguments of `se wipe`.
#[derive(Args, Debug)]
pub(crate) struct SeWipeArgs {
    #[command(flatten)]
    pub(crate) element: SeElementArgs,
    /// Confirm: the element's keys are destroyed and cannot be recovered.
    #[arg(long)]
    pub(crate) yes: bool,
}

/// Runs `se …`.
pub(crate) fn run(cmd: SeCommand, json: bool) -> Outcome {
    match cmd {
        SeCommand::Keygen(a) => keygen(a, json),
        SeCommand::Pubkey(a) => pubkey(a, json),
        SeCommand::Sign(a) => sign(a, json),
        SeCommand::Destroy(a) => destroy(a, json),
        SeCommand::Wipe(a) => wipe(a, json),
    }
}

fn open(a: &SeElementArgs) -> Result<Box<dyn SecureElement>, Failure> {
    edgeward_se::open(&a.se).map_err(se_failure)
}

fn keygen(a: SeKeygenArgs, json: bool) -> Outcome {
    let se = open(&a.slot.element)?;
    let public = se
        .generate_key(&a.slot.slot, a.key_type)
        .map_err(se_failure)?;
    report_key(se.backend(), &a.slot, &public, true, json);
    Ok(())
}

fn pubkey(a: SeSlotArgs, json: bool) -> Outcome {
    let se = open(&a.element)?;
    let public = se.public_key(&a.slot).map_err(se_failure)?;
    report_key(se.backend(), &a, &public, false, json);
    Ok(())
}

fn report_key(backend: &str, a: &SeSlotArgs, public: &PublicKey, generated: bool, json: bool) {
    if json {
        print_json(&json!({
            "ok": true,
            "backend": backend,
            "slot": a.slot,
            "generated": generated,
            "algorithm": public.algorithm(),
            "key": public.fingerprint(),
            "public_key_pem": public.to_pem(),
        }));
    } else {
        print!("{}", public.to_pem());
    }
}

fn sign(a: SeSignArgs, json: bool) -> Outcome {
    let se = open(&a.slot.element)?;
    let slot = &a.slot.slot;
    let public = se.public_key(slot).map_err(se_failure)?;
    let input = a
        .input
        .or(a.input_flag)
        .ok_or_else(|| Failure::operator("se sign needs the file to sign (PATH)"))?;
    let file = std::fs::File::open(&input)
        .map_err(|e| Failure::operator(format!("{}: {e}", input.display())))?;
    let signature = match public {
        PublicKey::Ed25519(_) => {
            let mut message = Vec::new();
            file.take(MAX_ED25519_MESSAGE + 1)
                .read_to_end(&mut message)
                .map_err(|e| Failure::operator(format!("{}: {e}", input.display())))?;
            if message.len() as u64 > MAX_ED25519_MESSAGE {
                return Err(Failure::operator(format!(
                    "{} is larger than {} MiB, the most an Ed25519 element signs in one piece",
                    input.display(),
                    MAX_ED25519_MESSAGE >> 20
                )));
            }
            se.sign(slot, &message).map_err(se_failure)?
        }
        _ => {
            let mut hasher = Sha256::new();
            std::io::copy(&mut std::io::BufReader::new(file), &mut hasher)
                .map_err(|e| Failure::operator(format!("{}: {e}", input.display())))?;
            se.sign_digest(slot, &hasher.finalize().into())
                .map_err(se_failure)?
        }
    };
    let encoded = base64::engine::general_purpose::STANDARD.encode(&signature);
    if let Some(out) = &a.out {
        std::fs::write(out, &signature)
            .map_err(|e| Failure::operator(format!("{}: {e}", out.display())))?;
    }
    if json {
        print_json(&json!({
            "ok": true,
            "backend": se.backend(),
            "slot": slot,
            "signed": input,
            "algorithm": public.algorithm(),
            "key": public.fingerprint(),
            "signature": a.out,
            "signature_base64": encoded,
        }));
    } else if let Some(out) = &a.out {
        println!(
            "signed {} with {} key {} in slot {slot} → {}",
            input.display(),
            public.algorithm(),
            public.fingerprint(),
            out.display()
        );
    } else {
        println!("{encoded}");
    }
    Ok(())
}

fn destroy(a: SeDestroyArgs, json: bool) -> Outcome {
    let slot = &a.slot.slot;
    if !a.yes {
        return Err(Failure::operator(format!(
            "destroy removes the key in slot `{slot}` for good: add --yes to confirm"
        )));
    }
    let se = open(&a.slot.element)?;
    se.destroy_key(slot).map_err(se_failure)?;
    if json {
        print_json(
            &json!({ "ok": true, "backend": se.backend(), "slot": slot, "destroyed": true }),
        );
    } else {
        println!(
            "destroyed the key in slot `{slot}` of the {} element",
            se.backend()
        );
    }
    Ok(())
}

fn wipe(a: SeWipeArgs, json: bool) -> Outcome {
    if !a.yes {
        return Err(Failure::operator(
            "wipe destroys every key, sealing key and certificate in the element: add --yes to confirm",
        ));
    }
    let se = open(&a.element)?;
    se.wipe().map_err(se_failure)?;
    if json {
        print_json(&json!({ "ok": true, "backend": se.backend(), "wiped": true }));
    } else {
        println!(
            "wiped the {} element: keys, sealing key and certificates destroyed",
            se.backend()
        );
    }
    Ok(())
}

/// A sealed blob that does not open is a rejection; everything else is the operator's to fix.
fn se_failure(e: SeError) -> Failure {
    match e {
        SeError::Unseal(_) => Failure::rejected(e),
        other => Failure::operator(other),
    }
}
