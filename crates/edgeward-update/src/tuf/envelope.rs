//! A metadata file as received: its exact bytes, its `signed` object and signatures, and
//! the threshold check over the canonical form.
//!
//! The client stores exactly the bytes it verified (never a re-serialisation), so a file
//! on disk always hashes to what the snapshot or timestamp signed for it.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::canonical;
use super::keys::PublicKey;
use super::metadata::{MetadataError, Role};

/// Signed metadata of any role, before its payload is interpreted.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// The bytes as received.
    pub raw: Vec<u8>,
    /// The `signed` object.
    pub signed: Value,
    /// Its canonical JSON: the bytes the signatures cover.
    pub canonical: Vec<u8>,
    /// `keyid` → signature bytes (a signature that is not hex is kept as empty, and so
    /// never verifies).
    pub signatures: BTreeMap<String, Vec<u8>>,
}

/// The outcome of counting signatures for a role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignatureCount {
    /// Distinct keys whose signature verified.
    pub valid: u64,
    /// Signatures required.
    pub threshold: u64,
}

impl SignatureCount {
    /// Whether the threshold is met.
    pub fn is_met(self) -> bool {
        self.valid >= self.threshold
    }
}

impl Envelope {
    /// Parses `{"signed": …, "signatures": [{"keyid", "sig"}, …]}`. A key id may sign once:
    /// a list naming one key id twice is refused, as the specification requires.
    pub fn parse(raw: Vec<u8>) -> Result<Self, MetadataError> {
        let doc: Value = serde_json::from_slice(&raw).map_err(|e| MetadataError {
            field: "(document)".into(),
            reason: format!("is not JSON: {e}"),
        })?;
        let obj = doc.as_object().ok_or_else(|| MetadataError {
            field: "(document)".into(),
            reason: "is not a JSON object".into(),
        })?;
        let signed = obj.get("signed").cloned().ok_or_else(|| MetadataError {
            field: "signed".into(),
            reason: "is missing".into(),
        })?;
        if !signed.is_object() {
            return Err(MetadataError {
                field: "signed".into(),
                reason: "must be an object".into(),
            });
        }
        let list = obj
            .get("signatures")
            .and_then(Value::as_array)
            .ok_or_else(|| MetadataError {
                field: "signatures".into(),
                reason: "must be a list".into(),
            })?;
        let mut signatures = BTreeMap::new();
        for (i, entry) in list.iter().enumerate() {
            let field = format!("signatures[{i}]");
            let keyid = entry.get("keyid").and_then(Value::as_str);
            let sig = entry.get("sig").and_then(Value::as_str);
            let (Some(keyid), Some(sig)) = (keyid, sig) else {
                return Err(MetadataError {
                    field,
                    reason: "must have string keyid and sig".into(),
                });
            };
            let bytes = hex::decode(sig).unwrap_or_default();
            if signatures.insert(keyid.to_string(), bytes).is_some() {
                return Err(MetadataError {
                    field,
                    reason: format!("key {keyid} signs twice"),
                });
            }
        }
        let canonical = canonical::encode(&signed).map_err(|e| MetadataError {
            field: "signed".into(),
            reason: e.to_string(),
        })?;
        Ok(Envelope {
            raw,
            signed,
            canonical,
            signatures,
        })
    }

    /// Counts the distinct keys of `role` (looked up in `keys`) with a valid signature.
    /// Two key ids for the same key material count once.
    pub fn count_signatures(
        &self,
        role: &Role,
        keys: &BTreeMap<String, PublicKey>,
    ) -> SignatureCount {
        let mut signers = BTreeSet::new();
        for keyid in &role.keyids {
            let (Some(key), Some(sig)) = (keys.get(keyid), self.signatures.get(keyid)) else {
                continue;
            };
            if let Some(identity) = key.identity() {
                if !signers.contains(&identity) && key.verifies(&self.canonical, sig) {
                    signers.insert(identity);
                }
            }
        }
        SignatureCount {
            valid: signers.len() as u64,
            threshold: role.threshold,
        }
    }
}
