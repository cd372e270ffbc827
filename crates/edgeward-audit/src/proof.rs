//! The audit API's proofs as JSON (`{"index", "size", "proof": [base64 hash, …]}` and
//! `{"old_size", "size", "proof": […]}`), decoded with bounds: the server that sends them is
//! what is being checked, so a proof is untrusted input.

use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};

use crate::merkle::Hash;

/// Most hashes in a proof (a tree of 2^64 leaves needs at most 64 for an inclusion proof
/// and 2·64 for a consistency proof).
pub const MAX_PROOF_HASHES: usize = 128;

/// Longest proof document accepted.
pub const MAX_PROOF_BYTES: usize = 16 * 1024;

/// Why a proof document was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// Longer than [`MAX_PROOF_BYTES`].
    #[error("the proof is longer than {MAX_PROOF_BYTES} bytes")]
    TooLong,
    /// Not the JSON shape, or a hash that is not 32 bytes of base64.
    #[error("malformed proof: {0}")]
    Malformed(String),
    /// More hashes than any tree needs.
    #[error("the proof has more than {MAX_PROOF_HASHES} hashes")]
    TooManyHashes,
}

/// That leaf `index` is in the tree of `size` leaves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InclusionProof {
    /// The leaf's position.
    pub index: u64,
    /// The tree's size.
    pub size: u64,
    /// The audit path, from the leaf up.
    #[serde(with = "b64_hashes")]
    pub proof: Vec<Hash>,
}

/// That the tree of `size` leaves extends the tree of `old_size`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsistencyProof {
    /// The older tree's size.
    pub old_size: u64,
    /// The newer tree's size.
    pub size: u64,
    /// The proof's hashes.
    #[serde(with = "b64_hashes")]
    pub proof: Vec<Hash>,
}

fn parse<T: for<'de> Deserialize<'de>>(
    bytes: &[u8],
    hashes: impl Fn(&T) -> usize,
) -> Result<T, ProofError> {
    if bytes.len() > MAX_PROOF_BYTES {
        return Err(ProofError::TooLong);
    }
    let v: T = serde_json::from_slice(bytes).map_err(|e| ProofError::Malformed(e.to_string()))?;
    if hashes(&v) > MAX_PROOF_HASHES {
        return Err(ProofError::TooManyHashes);
    }
    Ok(v)
}

impl InclusionProof {
    /// Decodes a proof document.
    pub fn parse(bytes: &[u8]) -> Result<Self, ProofError> {
        parse(bytes, |p: &Self| p.proof.len())
    }
}

impl ConsistencyProof {
    /// Decodes a proof document.
    pub fn parse(bytes: &[u8]) -> Result<Self, ProofError> {
        parse(bytes, |p: &Self| p.proof.len())
    }
}

mod b64_hashes {
    use super::{Hash, B64};
    use base64::Engine as _;
    use serde::{de::Error as _, Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(hashes: &[Hash], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(hashes.iter().map(|h| B64.encode(h)))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Hash>, D::Error> {
        let texts = Vec::<String>::deserialize(d)?;
        if texts.len() > super::MAX_PROOF_HASHES {
            return Err(D::Error::custom("too many hashes"));
        }
        texts
            .iter()
            .map(|t| {
                B64.decode(t)
                    .ok()
                    .and_then(|v| Hash::try_from(v).ok())
                    .ok_or_else(|| D::Error::custom("a hash is not 32 bytes of base64"))
            })
            .collect()
    }
}
