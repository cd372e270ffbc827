//! Verified secure loading: the one call a device makes to turn an encrypted, signed model
//! into bytes a runtime may parse.
//!
//! Order, and why: the signature bundle is verified first (trust root, chain, CRL,
//! validity), so a bad signature stops the load before the element is even asked to
//! decrypt. The bundle signs the *plaintext* model (the same bundle `edgeward sign` makes
//! for the unencrypted file, and one that survives `rewrap`); so after decryption — in
//! zeroizing memory, with the key agreement inside the element — the manifest is recomputed
//! over exactly those in-memory bytes and compared before they are handed out. The file is
//! read once; the bytes verified are the bytes parsed. No [`VerifiedModel`] can be built any
//! other way, so no tensor is ever built from unverified bytes.

use std::{
    collections::BTreeSet,
    fs::File,
    io::Read,
    path::{Path, PathBuf},
};

use edgeward_core::{
    bundle::Bundle,
    manifest::{ItemKey, Manifest, Method},
    verify::{verify_bundle, Trust, Verified},
    Sha256Digest,
};
use edgeward_se::SecureElement;
use rayon::prelude::*;
use sha2::{Digest, Sha256};

use crate::crypt::{self, container::MAX_PLAINTEXT_LEN, CryptError, Plaintext};

/// Largest container file read (the plaintext limit plus a generous header and tags).
pub const MAX_CONTAINER_LEN: u64 = MAX_PLAINTEXT_LEN + MAX_PLAINTEXT_LEN / 256;

/// Why a verified load failed. Every variant but [`LoadError::Io`] and
/// [`LoadError::Element`] rejects the model.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The container file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The signature bundle was rejected (signature, signer, chain, revocation, validity).
    #[error("signature rejected: {0}")]
    Signature(edgeward_core::Error),
    /// The decrypted model differs from what was signed.
    #[error("the decrypted model does not match its signature: {0}")]
    Integrity(edgeward_core::Error),
    /// The bundle signs something other than one file.
    #[error("the signature covers {0}, not a single model file")]
    NotSingleFile(String),
    /// The container was rejected or this device cannot open it.
    #[error(transparent)]
    Decrypt(#[from] CryptError),
    /// The verified bytes are not a valid model for the runtime asked for.
    #[error("the model does not parse as {format}: {message}")]
    Parse {
        /// `safetensors` or `onnx`.
        format: &'static str,
        /// The parser's message.
        message: String,
    },
}

impl LoadError {
    /// Whether the model (its signature, container or contents) was rejected, as opposed to
    /// an I/O or element failure.
    pub fn is_rejection(&self) -> bool {
        match self {
            LoadError::Io { .. } => false,
            LoadError::Decrypt(e) => e.is_rejection(),
            _ => true,
        }
    }
}

/// A model whose signature verified and whose decrypted bytes match what was signed. The
/// bytes are zeroized when it is dropped.
pub struct VerifiedModel {
    bytes: Plaintext,
    verified: Verified,
}

impl std::fmt::Debug for VerifiedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedModel")
            .field("len", &self.bytes.len())
            .field("signer", &self.verified.key.fingerprint())
            .finish_non_exhaustive()
    }
}

impl VerifiedModel {
    /// The verified plaintext model.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Who signed, and what.
    pub fn verification(&self) -> &Verified {
        &self.verified
    }

    /// Parses the bytes as safetensors (zero-copy: the tensors borrow the verified buffer).
    pub fn safetensors(&self) -> Result<safetensors::SafeTensors<'_>, LoadError> {
        safetensors::SafeTensors::deserialize(&self.bytes).map_err(|e| LoadError::Parse {
            format: "safetensors",
            message: e.to_string(),
        })
    }

    /// Parses the bytes as an ONNX model with tract, ready to optimise and run.
    #[cfg(feature = "onnx")]
    pub fn tract_onnx(&self) -> Result<tract_onnx::prelude::InferenceModel, LoadError> {
        use tract_onnx::prelude::Framework;
        tract_onnx::onnx()
            .model_for_read(&mut std::io::Cursor::new(&self.bytes[..]))
            .map_err(|e| LoadError::Parse {
                format: "onnx",
                message: format!("{e:#}"),
            })
    }
}

/// Reads the container at `path` once, then as [`open_verified_bytes`].
pub fn open_verified(
    path: &Path,
    bundle: &Bundle,
    trust: &Trust<'_>,
    now: u64,
    se: &dyn SecureElement,
    slot: &str,
) -> Result<VerifiedModel, LoadError> {
    // The signature is checked before the file is even read.
    let verified = verify_signature(bundle, trust, now)?;
    let container = read_bounded(path)?;
    finish(&container, verified, se, slot)
}

/// Verifies `bundle` under `trust` at `now`, decrypts `container` in memory with the key in
/// the element's `slot`, and checks the plaintext against the signed manifest.
pub fn open_verified_bytes(
    container: &[u8],
    bundle: &Bundle,
    trust: &Trust<'_>,
    now: u64,
    se: &dyn SecureElement,
    slot: &str,
) -> Result<VerifiedModel, LoadError> {
    let verified = verify_signature(bundle, trust, now)?;
    finish(container, verified, se, slot)
}

fn verify_signature(bundle: &Bundle, trust: &Trust<'_>, now: u64) -> Result<Verified, LoadError> {
    let verified = verify_bundle(bundle, trust, now).map_err(LoadError::Signature)?;
    let manifest = &verified.statement.manifest;
    if manifest.items.keys().any(|k| k.path != ".") || manifest.empty_files.iter().any(|p| p != ".")
    {
        return Err(LoadError::NotSingleFile(format!(
            "the directory {}",
            manifest.model_name
        )));
    }
    Ok(verified)
}

fn finish(
    container: &[u8],
    verified: Verified,
    se: &dyn SecureElement,
    slot: &str,
) -> Result<VerifiedModel, LoadError> {
    let bytes = crypt::decrypt(container, se, slot)?;
    let signed = &verified.statement.manifest;
    let actual = manifest_of_bytes(&bytes, signed);
    signed
        .check_matches(&actual)
        .map_err(LoadError::Integrity)?;
    Ok(VerifiedModel { bytes, verified })
}

/// The manifest of a single in-memory file under the signed serialization (shards are
/// hashed on every core).
fn manifest_of_bytes(bytes: &[u8], signed: &Manifest) -> Manifest {
    let len = bytes.len() as u64;
    let mut empty_files = BTreeSet::new();
    let items = match signed.serialization.method {
        Method::Files => vec![(
            ItemKey {
                path: ".".into(),
                range: None,
            },
            sha256(bytes),
        )],
        Method::Shards { shard_size } => {
            if len == 0 {
                empty_files.insert(".".to_string());
            }
            let step = usize::try_from(shard_size).unwrap_or(usize::MAX);
            bytes
                .par_chunks(step.max(1))
                .enumerate()
                .map(|(i, shard)| {
                    let start = i as u64 * shard_size;
                    (
                        ItemKey {
                            path: ".".into(),
                            range: Some((start, start + shard.len() as u64)),
                        },
                        sha256(shard),
                    )
                })
                .collect()
        }
    };
    Manifest {
        model_name: signed.model_name.clone(),
        serialization: signed.serialization.clone(),
        items: items.into_iter().collect(),
        empty_files,
    }
}

fn sha256(bytes: &[u8]) -> Sha256Digest {
    Sha256::digest(bytes).into()
}

fn read_bounded(path: &Path) -> Result<Vec<u8>, LoadError> {
    let io = |source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    if len > MAX_CONTAINER_LEN {
        return Err(LoadError::Decrypt(CryptError::MalformedHeader(format!(
            "the container is {len} bytes, more than the limit {MAX_CONTAINER_LEN}"
        ))));
    }
    let mut out = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    file.take(MAX_CONTAINER_LEN + 1)
        .read_to_end(&mut out)
        .map_err(io)?;
    Ok(out)
}
