//! Transparency-log checkpoints: a signed note (the `golang.org/x/mod/sumdb/note` format
//! Rekor writes) stating the log's origin, tree size and root hash, followed by signature
//! lines `— NAME BASE64(key hint ‖ signature)`, split by [`crate::signed_note`].

use alloc::{format, string::String, vec::Vec};

use crate::{bundle::decode_b64, keys::PublicKey, raw_signature, signed_note, Error, Sha256Digest};

/// Longest checkpoint accepted.
pub const MAX_CHECKPOINT_BYTES: usize = 16 * 1024;

/// A parsed checkpoint (signatures not yet verified).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's origin line (e.g. `rekor.sigstore.dev - 1193050959916656506`).
    pub origin: String,
    /// The tree size.
    pub tree_size: u64,
    /// The root hash.
    pub root_hash: Sha256Digest,
    /// The signed text: every line up to the blank line, each with its newline.
    pub text: String,
    /// Signature lines: signer name, 4-byte key hint, signature.
    pub signatures: Vec<(String, [u8; 4], Vec<u8>)>,
}

impl Checkpoint {
    /// Parses a signed note (its envelope through [`crate::signed_note::split`]).
    pub fn parse(note: &str) -> Result<Self, Error> {
        let bad = |detail: &str| Error::malformed("checkpoint", detail);
        let note = signed_note::split(note, MAX_CHECKPOINT_BYTES).map_err(|e| bad(e.0))?;
        let mut lines = note.text.lines();
        let origin = lines.next().ok_or_else(|| bad("no origin line"))?;
        let size_line = lines.next().ok_or_else(|| bad("no tree-size line"))?;
        if size_line.is_empty()
            || size_line.len() > 20
            || !size_line.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(bad("the tree-size line is not a decimal number"));
        }
        let tree_size = size_line
            .parse::<u64>()
            .map_err(|_| bad("the tree size does not fit 64 bits"))?;
        let root_line = lines.next().ok_or_else(|| bad("no root-hash line"))?;
        let root_hash: Sha256Digest = decode_b64("checkpoint root hash", root_line)?
            .try_into()
            .map_err(|_| bad("the root hash is not 32 bytes"))?;
        Ok(Checkpoint {
            origin: String::from(origin),
            tree_size,
            root_hash,
            text: String::from(note.text),
            signatures: note
                .signatures
                .into_iter()
                .map(|s| (String::from(s.name), s.hint, s.signature))
                .collect(),
        })
    }

    /// Verifies that a signature line by `log_key` (found by its key hint: the first four
    /// bytes of SHA-256 of the key's DER SubjectPublicKeyInfo) signs the note.
    pub fn verify(&self, log_key: &PublicKey) -> Result<(), Error> {
        let spki_hash = crate::sha256(&log_key.to_spki_der());
        let ours = &spki_hash[..4];
        let (_, _, sig) = self
            .signatures
            .iter()
            .find(|(_, hint, _)| hint == ours)
            .ok_or_else(|| {
                Error::BadSignature(format!(
                    "the checkpoint of {} carries no signature by the log's key {} (hint {})",
                    self.origin,
                    log_key.fingerprint(),
                    hex::encode(ours)
                ))
            })?;
        raw_signature::verify_message(log_key, self.text.as_bytes(), sig).map_err(|e| match e {
            Error::BadSignature(_) => Error::BadSignature(format!(
                "the checkpoint of {} (tree size {}) is not signed by the log's key {}",
                self.origin,
                self.tree_size,
                log_key.fingerprint()
            )),
            other => other,
        })
    }
}
