//! Keyed layer shuffling of safetensors models: obfuscation, not encryption.
//!
//! A shuffled file is a valid safetensors file whose tensors are stored in a key-derived
//! order under opaque names (`t0000`, `t0001`, …) as flat `U8` byte blobs, each with its
//! rows (first dimension; the elements of a 1-D tensor) permuted by its own key-derived
//! permutation. The permutations of consecutive layers are independent, so they do not
//! cancel: the file is not a working model. The original header (names, dtypes, shapes,
//! metadata) and the SHA-256 of the original file travel in `__metadata__`, encrypted and
//! authenticated with ChaCha20-Poly1305; [`unshuffle`] restores the original bit for bit
//! and fails closed on a wrong key or any change.
//!
//! Every key is derived from the [`ModelKey`] and a random per-file salt, so two files
//! shuffled with one key share no permutation. See `docs/watermark.md` for what this does
//! and does not protect against.

use std::collections::BTreeMap;

use chacha20poly1305::{aead::Aead, ChaCha20Poly1305, KeyInit, Nonce};
use rand::{rngs::OsRng, seq::SliceRandom, RngCore};
use safetensors::Dtype;
use sha2::{Digest, Sha256};

use crate::{
    model_key::ModelKey,
    tensors::{self, NewTensor, TensorEntry, TensorFile, TensorFileError},
};

/// `__metadata__` key marking a shuffled file and giving the scheme version.
pub const META_FORMAT: &str = "edgeward.shuffle";
/// `__metadata__` key of the per-file salt (hex).
pub const META_SALT: &str = "edgeward.shuffle.salt";
/// `__metadata__` key of the encrypted original header (hex).
pub const META_HEADER: &str = "edgeward.shuffle.header";

const VERSION: &str = "1";
const SALT_LEN: usize = 16;
const AAD: &[u8] = b"edgeward-shuffle-v1";

/// Why shuffling or unshuffling failed.
#[derive(Debug, thiserror::Error)]
pub enum ShuffleError {
    /// The input is not a valid safetensors file.
    #[error(transparent)]
    Tensors(#[from] TensorFileError),
    /// The input to `shuffle` is already shuffled.
    #[error("the model is already shuffled")]
    AlreadyShuffled,
    /// The input to `unshuffle` is not a shuffled file, or its shuffle metadata is damaged.
    #[error("not a shuffled model: {0}")]
    NotShuffled(String),
    /// The encrypted header does not open: another key, or the file was changed.
    #[error("the shuffled model does not open with this key (wrong key, or the file was changed)")]
    WrongKeyOrTampered,
    /// The restored file differs from the one that was shuffled.
    #[error("restored model does not match the original's SHA-256: the shuffled data was changed")]
    DigestMismatch,
}

/// Shuffles a safetensors model under `key`.
pub fn shuffle(model: &[u8], key: &ModelKey) -> Result<Vec<u8>, ShuffleError> {
    let file = TensorFile::parse(model)?;
    if file.metadata().contains_key(META_FORMAT) {
        return Err(ShuffleError::AlreadyShuffled);
    }
    let mut salt = [0u8; SALT_LEN];
    OsRng.fill_bytes(&mut salt);
    let entries = file.tensors();
    let order = storage_order(key, &salt, entries.len());
    let blobs: Vec<Vec<u8>> = order
        .iter()
        .map(|&i| permute_rows(key, &salt, i, &entries[i], file.data(&entries[i]), false))
        .collect();

    let mut plaintext = zeroize::Zeroizing::new(Sha256::digest(model).to_vec());
    plaintext.extend_from_slice(file.header());
    let sealed = header_cipher(key, &salt)
        .encrypt(
            &Nonce::default(),
            chacha20poly1305::aead::Payload {
                msg: &plaintext,
                aad: AAD,
            },
        )
        .map_err(|_| ShuffleError::NotShuffled("header encryption failed".into()))?;
    let metadata = BTreeMap::from([
        (META_FORMAT.to_string(), VERSION.to_string()),
        (META_SALT.to_string(), hex::encode(salt)),
        (META_HEADER.to_string(), hex::encode(sealed)),
    ]);
    let new: Vec<NewTensor<'_>> = blobs
        .iter()
        .enumerate()
        .map(|(pos, data)| NewTensor {
            name: format!("t{pos:04}"),
            dtype: Dtype::U8,
            shape: vec![data.len()],
            data,
        })
        .collect();
    Ok(tensors::write(&metadata, &new))
}

/// Restores the original model from a shuffled one, bit for bit.
pub fn unshuffle(shuffled: &[u8], key: &ModelKey) -> Result<Vec<u8>, ShuffleError> {
    let file = TensorFile::parse(shuffled)?;
    let meta = file.metadata();
    match meta.get(META_FORMAT).map(String::as_str) {
        Some(VERSION) => {}
        Some(v) => return Err(ShuffleError::NotShuffled(format!("unknown version {v:?}"))),
        None => return Err(ShuffleError::NotShuffled("no shuffle metadata".into())),
    }
    let salt: [u8; SALT_LEN] = meta
        .get(META_SALT)
        .and_then(|s| hex::decode(s).ok())
        .and_then(|v| v.try_into().ok())
        .ok_or_else(|| ShuffleError::NotShuffled("bad salt".into()))?;
    let sealed = meta
        .get(META_HEADER)
        .and_then(|s| hex::decode(s).ok())
        .ok_or_else(|| ShuffleError::NotShuffled("bad encrypted header".into()))?;
    let plaintext = zeroize::Zeroizing::new(
        header_cipher(key, &salt)
            .decrypt(
                &Nonce::default(),
                chacha20poly1305::aead::Payload {
                    msg: &sealed,
                    aad: AAD,
                },
            )
            .map_err(|_| ShuffleError::WrongKeyOrTampered)?,
    );
    let (digest, header) = plaintext
        .split_at_checked(32)
        .ok_or_else(|| ShuffleError::NotShuffled("encrypted header too short".into()))?;

    let stored = file.tensors();
    let data_len: usize = stored.iter().map(|t| t.range.len()).sum();
    let mut original = Vec::with_capacity(8 + header.len() + data_len);
    original.extend_from_slice(&(header.len() as u64).to_le_bytes());
    original.extend_from_slice(header);
    original.resize(8 + header.len() + data_len, 0);
    // The original's layout, checked with the same validation as any input.
    let layout = TensorFile::parse(&original)
        .map_err(|e| ShuffleError::NotShuffled(format!("original header: {e}")))?;
    let entries = layout.tensors().to_vec();
    let order = storage_order(key, &salt, entries.len());
    if stored.len() != entries.len() {
        return Err(ShuffleError::NotShuffled(format!(
            "{} tensors stored, {} in the original header",
            stored.len(),
            entries.len()
        )));
    }
    for (pos, &i) in order.iter().enumerate() {
        let blob = file.data(&stored[pos]);
        let entry = &entries[i];
        if blob.len() != entry.range.len() || stored[pos].name != format!("t{pos:04}") {
            return Err(ShuffleError::NotShuffled(format!(
                "stored tensor {pos} does not fit original tensor {:?}",
                entry.name
            )));
        }
        let restored = permute_rows(key, &salt, i, entry, blob, true);
        original[entry.range.clone()].copy_from_slice(&restored);
    }
    if Sha256::digest(&original).as_slice() != digest {
        return Err(ShuffleError::DigestMismatch);
    }
    Ok(original)
}

/// Whether a file carries shuffle metadata (without checking the key).
pub fn is_shuffled(model: &[u8]) -> bool {
    TensorFile::parse(model).is_ok_and(|f| f.metadata().contains_key(META_FORMAT))
}

fn header_cipher(key: &ModelKey, salt: &[u8]) -> ChaCha20Poly1305 {
    let k = key.derive("edgeward/shuffle/v1/header", salt);
    ChaCha20Poly1305::new(chacha20poly1305::Key::from_slice(k.as_ref()))
}

/// Position `pos` of the shuffled file holds original tensor `order[pos]`.
fn storage_order(key: &ModelKey, salt: &[u8], n: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut key.rng("edgeward/shuffle/v1/order", salt));
    order
}

/// Applies (or, with `inverse`, undoes) tensor `index`'s row permutation. A row is one
/// slice along the first dimension; a 1-D tensor's rows are its elements. Tensors with
/// fewer than two rows, or whose rows are not whole bytes (sub-byte dtypes), are left as
/// they are.
fn permute_rows(
    key: &ModelKey,
    salt: &[u8],
    index: usize,
    entry: &TensorEntry,
    data: &[u8],
    inverse: bool,
) -> Vec<u8> {
    let rows = entry.shape.first().copied().unwrap_or(0);
    if rows < 2 || !data.len().is_multiple_of(rows) {
        return data.to_vec();
    }
    let row_bytes = data.len() / rows;
    let mut context = salt.to_vec();
    context.extend_from_slice(&(index as u64).to_le_bytes());
    let mut perm: Vec<usize> = (0..rows).collect();
    perm.shuffle(&mut key.rng("edgeward/shuffle/v1/rows", &context));
    let mut out = vec![0u8; data.len()];
    for (dst, &src) in perm.iter().enumerate() {
        let (from, to) = if inverse { (dst, src) } else { (src, dst) };
        out[to * row_bytes..(to + 1) * row_bytes]
            .copy_from_slice(&data[from * row_bytes..(from + 1) * row_bytes]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> Vec<u8> {
        let w: Vec<u8> = (0..48u8).collect();
        let b: Vec<u8> = (100..112u8).collect();
        tensors::write(
            &BTreeMap::from([("format".to_string(), "pt".to_string())]),
            &[
                NewTensor {
                    name: "fc1.weight".into(),
                    dtype: Dtype::F32,
                    shape: vec![4, 3],
                    data: &w,
                },
                NewTensor {
                    name: "fc1.bias".into(),
                    dtype: Dtype::F32,
                    shape: vec![3],
                    data: &b,
                },
            ],
        )
    }

    #[test]
    fn round_trip_and_refusals() {
        let key = ModelKey::generate();
        let original = model();
        let shuffled = shuffle(&original, &key).unwrap();
        assert!(is_shuffled(&shuffled));
        assert!(!shuffled.windows(4).any(|w| w == b"fc1."));
        assert_eq!(unshuffle(&shuffled, &key).unwrap(), original);
        assert!(matches!(
            unshuffle(&shuffled, &ModelKey::generate()),
            Err(ShuffleError::WrongKeyOrTampered)
        ));
        assert!(matches!(
            shuffle(&shuffled, &key),
            Err(ShuffleError::AlreadyShuffled)
        ));
        assert!(matches!(
            unshuffle(&original, &key),
            Err(ShuffleError::NotShuffled(_))
        ));
        let mut changed = shuffled;
        let last = changed.len() - 1;
        changed[last] ^= 1;
        assert!(matches!(
            unshuffle(&changed, &key),
            Err(ShuffleError::DigestMismatch)
        ));
    }
}
