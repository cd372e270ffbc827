//! Signing for boot chains: a stage image with its boot claims, and the chain description
//! as the boot policy. Needs only the signing key, so a device build has it too.

use std::path::Path;

use edgeward_artifact::{hashing::manifest_of, NoProgress};
use edgeward_core::{
    bundle::Bundle,
    keys::SigningKey,
    manifest::{Method, Serialization},
    sign::sign_statement,
    statement::{BootClaims, Statement},
};

use crate::{
    policy::{signature_path, POLICY_CLAIM},
    BootError,
};

/// Signs the image at `image` as a boot stage. `chain` (DER, signing certificate first)
/// selects certificate mode; `shard_size` splits large images so that verification uses
/// every core.
pub fn sign_stage(
    image: &Path,
    key: &SigningKey,
    chain: Option<Vec<Vec<u8>>>,
    claims: BootClaims,
    shard_size: Option<u64>,
    signed_at: u64,
) -> Result<Bundle, BootError> {
    let serialization = Serialization {
        method: match shard_size {
            Some(shard_size) if shard_size > 0 => Method::Shards { shard_size },
            _ => Method::Files,
        },
        allow_symlinks: false,
        ignore_paths: Vec::new(),
    };
    let manifest = manifest_of(image, &serialization, &NoProgress)?;
    Ok(sign_statement(
        Statement {
            manifest,
            signed_at: Some(signed_at),
            boot: claims,
        },
        key,
        chain,
    )?)
}

/// Signs the chain description at `chain_path` as the boot policy (claims: stage
/// [`POLICY_CLAIM`], `hardware`, `security_counter`; one file, files method) and writes the
/// bundle to its [`signature_path`]. Returns that path.
pub fn sign_policy(
    chain_path: &Path,
    key: &SigningKey,
    chain: Vec<Vec<u8>>,
    hardware: &str,
    security_counter: u64,
    signed_at: u64,
) -> Result<std::path::PathBuf, BootError> {
    let claims = BootClaims {
        stage: Some(POLICY_CLAIM.to_string()),
        hardware: Some(hardware.to_string()),
        security_counter: Some(security_counter),
    };
    let bundle = sign_stage(chain_path, key, Some(chain), claims, None, signed_at)?;
    let out = signature_path(chain_path);
    std::fs::write(&out, bundle.to_json()).map_err(|e| BootError::io(&out, e))?;
    Ok(out)
}
