//! Signature bundles for artifacts on disk: sign a file or directory, verify one against a
//! trusted key or a trust root.

use std::path::Path;

use edgeward_core::{
    bundle::Bundle,
    keys::SigningKey,
    manifest::{Method, Serialization},
    sign::sign_manifest,
    verify::{verify_bundle, Trust, Verified},
};

use crate::{hashing, walk, ArtifactError, Progress};

/// How to sign.
#[derive(Debug, Clone)]
pub struct SignOptions {
    /// Shard size in bytes; `None` signs one digest per file (model-signing's default).
    pub shard_size: Option<u64>,
    /// Extra paths (relative to the artifact root) to leave out of the signature.
    pub ignore_paths: Vec<String>,
    /// Also leave out git metadata (`.git`, `.gitattributes`, `.github`, `.gitignore`).
    pub ignore_git_paths: bool,
    /// The signing time to record (Unix seconds).
    pub signed_at: u64,
}

/// Signs the artifact at `root`; `chain` (DER, signing certificate first) selects
/// certificate mode.
pub fn sign_path(
    root: &Path,
    key: &SigningKey,
    chain: Option<Vec<Vec<u8>>>,
    options: &SignOptions,
    progress: &dyn Progress,
) -> Result<Bundle, ArtifactError> {
    let mut ignore_paths = options.ignore_paths.clone();
    if options.ignore_git_paths {
        ignore_paths.extend(walk::DEFAULT_IGNORES.iter().map(|s| s.to_string()));
    }
    for p in &ignore_paths {
        edgeward_core::manifest::validate_path(p)?;
    }
    ignore_paths.sort();
    ignore_paths.dedup();
    let serialization = Serialization {
        method: match options.shard_size {
            None => Method::Files,
            Some(0) => {
                return Err(edgeward_core::Error::InvalidArgument(
                    "shard size must be positive".into(),
                )
                .into())
            }
            Some(shard_size) => Method::Shards { shard_size },
        },
        allow_symlinks: false,
        ignore_paths,
    };
    let manifest = hashing::manifest_of(root, &serialization, progress)?;
    Ok(sign_manifest(
        manifest,
        Some(options.signed_at),
        key,
        chain,
    )?)
}

/// Verifies the artifact at `root` against `bundle`: the signature under `trust` at time
/// `now`, then every file and shard digest, with no file missing and none unsigned.
/// `extra_ignores` (relative paths) are left out on disk besides the signed ignore paths:
/// the signature file itself when it is stored inside the model, as model-signing does.
pub fn verify_path(
    root: &Path,
    bundle: &Bundle,
    trust: &Trust<'_>,
    now: u64,
    extra_ignores: &[String],
    progress: &dyn Progress,
) -> Result<Verified, ArtifactError> {
    let verified = verify_bundle(bundle, trust, now)?;
    let signed = &verified.statement.manifest;
    let mut serialization = signed.serialization.clone();
    for extra in extra_ignores {
        if !signed.items.keys().any(|k| &k.path == extra) {
            serialization.ignore_paths.push(extra.clone());
        }
    }
    if let Some(shape) = shape_mismatch(signed, root) {
        return Err(ArtifactError::Core(edgeward_core::Error::Integrity(shape)));
    }
    let actual = hashing::manifest_of(root, &serialization, progress)?;
    signed.check_matches(&actual)?;
    Ok(verified)
}

/// A clearer message than a list of differences when a file's signature is checked
/// against a directory or the other way round.
fn shape_mismatch(signed: &edgeward_core::manifest::Manifest, root: &Path) -> Option<String> {
    let signed_file = !signed.items.is_empty() && signed.items.keys().all(|k| k.path == ".");
    let signed_dir = signed.items.keys().any(|k| k.path != ".");
    if signed_file && root.is_dir() {
        return Some(format!(
            "the signature covers a single file ({}), but {} is a directory",
            signed.model_name,
            root.display()
        ));
    }
    if signed_dir && !root.is_dir() {
        return Some(format!(
            "the signature covers a directory ({}), but {} is not one",
            signed.model_name,
            root.display()
        ));
    }
    None
}
