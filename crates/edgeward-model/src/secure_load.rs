//! Verified secure loading: the one call a device makes to turn an encrypted, signed model
//! into bytes a runtime may parse.
//!
//! Order, and why: the signature bundle is verified first (trust root, chain, CRL,
//! validity), so a bad signature stops the load before the element is even asked to
//! decrypt. The bundle signs the *plaintext* model (the same bundle `edgeward sign` makes
//! for the unencrypted file, and one that survives `rewrap`); so after decryption — in
//! zeroizing memory, with the key agreement inside the element — the manifest is recomputed
//! over exactly those in-memory bytes (fused with decryption, chunk by chunk, when the
//! signature is sharded) and compared before they are handed out. The file is read once,
//! straight into the buffer it is decrypted in; the bytes verified are the bytes parsed. No [`VerifiedModel`] can be built any
//! other way, so no tensor is ever built from unverified bytes.

use std::{
    collections::BTreeSet,
    fs::File,
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

use crate::crypt::{
    self, container::MAX_PLAINTEXT_LEN, stream::StreamKey, CryptError, PayloadSource, Plaintext,
};

/// Plaintext bytes per decryption task when hashing cannot follow the chunks.
const UNFUSED_UNIT: usize = 1 << 20;

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

/// Verifies `bundle` under `trust` at `now`, then reads the container at `path` once,
/// straight into the zeroizing buffer it is decrypted in (with the key in the element's
/// `slot`), and checks the plaintext against the signed manifest.
pub fn open_verified(
    path: &Path,
    bundle: &Bundle,
    trust: &Trust<'_>,
    now: u64,
    se: &dyn SecureElement,
    slot: &str,
) -> Result<VerifiedModel, LoadError> {
    // The signature is checked before the file is even opened.
    let verified = verify_signature(bundle, trust, now)?;
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
    let (key, payload) = crypt::open_file(&file, se, slot)?;
    finish(&key, &payload, verified)
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
    let (key, payload) = crypt::open_bytes(container, se, slot)?;
    finish(&key, &payload, verified)
}

/// A model's file key, released by the element only after the model's signature verified
/// and the container's header authenticated under it: what a device hands to the isolated
/// process that decrypts the weights (which then calls [`open_with_key`]). Zeroized when
/// dropped.
pub struct ReleasedKey {
    /// The container's file key.
    pub file_key: crypt::envelope::FileKey,
    /// Who signed, and the signed statement the plaintext must match.
    pub verified: Verified,
}

impl std::fmt::Debug for ReleasedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReleasedKey")
            .field("signer", &self.verified.key.fingerprint())
            .finish_non_exhaustive()
    }
}

/// Verifies `bundle` under `trust` at `now`, then — only then — unwraps the file key of the
/// container `file` with the element's `slot` and checks the header MAC. Nothing is
/// decrypted: the key goes to whoever decrypts ([`open_with_key`]).
pub fn release_key(
    file: &File,
    bundle: &Bundle,
    trust: &Trust<'_>,
    now: u64,
    se: &dyn SecureElement,
    slot: &str,
) -> Result<ReleasedKey, LoadError> {
    let verified = verify_signature(bundle, trust, now)?;
    let (header, _, len) = crypt::read_header(file)?;
    if len > MAX_CONTAINER_LEN {
        return Err(LoadError::Decrypt(CryptError::MalformedHeader(format!(
            "the container is {len} bytes, more than the limit {MAX_CONTAINER_LEN}"
        ))));
    }
    let file_key = crypt::open_file_key(&header, se, slot)?;
    Ok(ReleasedKey { file_key, verified })
}

/// Decrypts the container `file` with a released `file_key` (no element needed) and checks
/// the plaintext against `signed`, the manifest of the statement whose signature verified
/// before the key was released. The plaintext is returned only when it matches.
pub fn open_with_key(
    file: &File,
    file_key: &[u8; 32],
    signed: &Manifest,
) -> Result<Plaintext, LoadError> {
    let (key, payload) = crypt::open_file_with_key(file, file_key)?;
    decrypt_checked(&key, &payload, signed)
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

/// Decrypts the payload and checks it against the verified statement ([`decrypt_checked`]).
fn finish(
    key: &StreamKey,
    payload: &dyn PayloadSource,
    verified: Verified,
) -> Result<VerifiedModel, LoadError> {
    let bytes = decrypt_checked(key, payload, &verified.statement.manifest)?;
    Ok(VerifiedModel { bytes, verified })
}

/// Decrypts the payload, recomputes the `signed` manifest over the plaintext and compares.
/// When the signature is sharded on chunk boundaries, each shard is hashed chunk by chunk
/// right after the chunk authenticated (in cache, one shard per task on every core);
/// otherwise the plaintext is hashed after decryption.
fn decrypt_checked(
    key: &StreamKey,
    payload: &dyn PayloadSource,
    signed: &Manifest,
) -> Result<Plaintext, LoadError> {
    let fused_unit = match signed.serialization.method {
        Method::Shards { shard_size } => usize::try_from(shard_size)
            .ok()
            .filter(|&s| s >= key.chunk_size() && s % key.chunk_size() == 0),
        Method::Files => None,
    };
    let (bytes, actual) = match fused_unit {
        Some(unit) => {
            let (bytes, hashers) =
                key.decrypt_with(payload, unit, &Sha256::new, &|h, body| h.update(body))?;
            let digests = hashers.into_iter().map(|h| h.finalize().into()).collect();
            let actual = shard_manifest(bytes.len(), unit, digests, signed);
            (bytes, actual)
        }
        None => {
            let (bytes, _) = key.decrypt_with(payload, UNFUSED_UNIT, &|| (), &|_, _| ())?;
            let actual = manifest_of_bytes(&bytes, signed);
            (bytes, actual)
        }
    };
    signed
        .check_matches(&actual)
        .map_err(LoadError::Integrity)?;
    Ok(bytes)
}

/// The manifest of a single file of `len` bytes whose shards of `shard_size` have `digests`.
fn shard_manifest(
    len: usize,
    shard_size: usize,
    digests: Vec<Sha256Digest>,
    signed: &Manifest,
) -> Manifest {
    let mut empty_files = BTreeSet::new();
    if len == 0 {
        empty_files.insert(".".to_string());
    }
    let items = digests.into_iter().enumerate().map(|(i, digest)| {
        let start = (i * shard_size) as u64;
        let end = len.min((i + 1).saturating_mul(shard_size)) as u64;
        (
            ItemKey {
                path: ".".into(),
                range: Some((start, end)),
            },
            digest,
        )
    });
    Manifest {
        model_name: signed.model_name.clone(),
        serialization: signed.serialization.clone(),
        items: items.collect(),
        empty_files,
    }
}

/// The manifest of a single in-memory file under the signed serialization (shards are
/// hashed on every core).
fn manifest_of_bytes(bytes: &[u8], signed: &Manifest) -> Manifest {
    match signed.serialization.method {
        Method::Files => Manifest {
            model_name: signed.model_name.clone(),
            serialization: signed.serialization.clone(),
            items: [(
                ItemKey {
                    path: ".".into(),
                    range: None,
                },
                sha256(bytes),
            )]
            .into_iter()
            .collect(),
            empty_files: BTreeSet::new(),
        },
        Method::Shards { shard_size } => {
            let step = usize::try_from(shard_size).unwrap_or(usize::MAX).max(1);
            let digests = bytes.par_chunks(step).map(sha256).collect();
            shard_manifest(bytes.len(), step, digests, signed)
        }
    }
}

fn sha256(bytes: &[u8]) -> Sha256Digest {
    Sha256::digest(bytes).into()
}
