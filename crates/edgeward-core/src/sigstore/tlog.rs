//! A Rekor (v1) transparency-log entry as a Sigstore bundle carries it, and its checks: the
//! signed entry timestamp (SET) by the log's key, the inclusion proof up to a signed
//! checkpoint, and that the logged body records this very envelope and certificate.

use alloc::{format, string::String, vec::Vec};

use serde::{Deserialize, Serialize};

use crate::{
    bundle::decode_b64, keys::PublicKey, merkle, raw_signature, sigstore::checkpoint::Checkpoint,
    Error, Sha256Digest,
};

/// Largest canonicalized log-entry body accepted.
pub const MAX_BODY_BYTES: usize = 256 * 1024;
/// Most hashes an inclusion proof may carry (a tree of 2^64 leaves needs 64).
pub const MAX_PROOF_HASHES: usize = 64;

/// The bundle JSON of one entry (protobuf JSON: 64-bit integers are strings).
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct TlogEntryJson {
    #[serde(with = "int64")]
    log_index: u64,
    log_id: LogIdJson,
    kind_version: KindVersionJson,
    #[serde(with = "int64")]
    integrated_time: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    inclusion_promise: Option<PromiseJson>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    inclusion_proof: Option<ProofJson>,
    canonicalized_body: String,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct LogIdJson {
    key_id: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KindVersionJson {
    kind: String,
    version: String,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PromiseJson {
    signed_entry_timestamp: String,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ProofJson {
    #[serde(with = "int64")]
    log_index: u64,
    root_hash: String,
    #[serde(with = "int64")]
    tree_size: u64,
    hashes: Vec<String>,
    checkpoint: CheckpointJson,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckpointJson {
    envelope: String,
}

/// 64-bit integers as protobuf JSON writes them (a decimal string), or as a plain number.
mod int64 {
    use alloc::string::{String, ToString};

    use serde::{Deserialize, Deserializer, Serializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Int {
        Text(String),
        Number(u64),
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        match Int::deserialize(d)? {
            Int::Number(n) => Ok(n),
            Int::Text(s)
                if !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit()) =>
            {
                s.parse().map_err(serde::de::Error::custom)
            }
            Int::Text(s) => Err(serde::de::Error::custom(alloc::format!(
                "{s:?} is not a non-negative 64-bit integer"
            ))),
        }
    }

    pub(super) fn serialize<S: Serializer>(n: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&n.to_string())
    }
}

/// A parsed transparency-log entry (nothing verified yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlogEntry {
    /// The entry's index in the log (its shard's global index).
    pub log_index: u64,
    /// The log's ID: SHA-256 of its public key (DER SubjectPublicKeyInfo).
    pub log_id: Vec<u8>,
    /// Entry kind (`dsse`, `hashedrekord`, …).
    pub kind: String,
    /// Entry kind version (`0.0.1`).
    pub version: String,
    /// When the log integrated the entry (Unix seconds; trusted only once the SET verifies).
    pub integrated_time: u64,
    /// The signed entry timestamp (DER ECDSA), if any.
    pub signed_entry_timestamp: Option<Vec<u8>>,
    /// The inclusion proof, if any.
    pub inclusion_proof: Option<InclusionProof>,
    /// The canonicalized body exactly as logged (JSON bytes).
    pub body: Vec<u8>,
    /// The body's base64 exactly as the bundle carries it (the SET signs this text).
    body_b64: String,
}

/// An RFC 6962 inclusion proof with the checkpoint that signs its root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InclusionProof {
    /// Index of the entry in this tree (the shard-local index).
    pub log_index: u64,
    /// The tree's root hash.
    pub root_hash: Sha256Digest,
    /// The tree's size.
    pub tree_size: u64,
    /// The audit path, leaf upwards.
    pub hashes: Vec<Sha256Digest>,
    /// The signed note (checkpoint) text.
    pub checkpoint: String,
}

fn digest32(what: &'static str, b64: &str) -> Result<Sha256Digest, Error> {
    decode_b64(what, b64)?
        .try_into()
        .map_err(|v: Vec<u8>| Error::malformed(what, format!("{} bytes (expected 32)", v.len())))
}

impl TlogEntry {
    pub(crate) fn from_json(j: TlogEntryJson) -> Result<Self, Error> {
        let body = decode_b64("log entry body", &j.canonicalized_body)?;
        if body.len() > MAX_BODY_BYTES {
            return Err(Error::malformed(
                "log entry body",
                format!("{} bytes (at most {MAX_BODY_BYTES})", body.len()),
            ));
        }
        let inclusion_proof = match j.inclusion_proof {
            None => None,
            Some(p) => {
                if p.hashes.len() > MAX_PROOF_HASHES {
                    return Err(Error::malformed(
                        "inclusion proof",
                        format!("{} hashes (at most {MAX_PROOF_HASHES})", p.hashes.len()),
                    ));
                }
                if p.checkpoint.envelope.len() > crate::sigstore::checkpoint::MAX_CHECKPOINT_BYTES {
                    return Err(Error::malformed("checkpoint", "too long"));
                }
                Some(InclusionProof {
                    log_index: p.log_index,
                    root_hash: digest32("inclusion proof root hash", &p.root_hash)?,
                    tree_size: p.tree_size,
                    hashes: p
                        .hashes
                        .iter()
                        .map(|h| digest32("inclusion proof hash", h))
                        .collect::<Result<_, _>>()?,
                    checkpoint: p.checkpoint.envelope,
                })
            }
        };
        let log_id = decode_b64("log ID", &j.log_id.key_id)?;
        if log_id.len() != 32 {
            return Err(Error::malformed(
                "log ID",
                format!("{} bytes (expected 32)", log_id.len()),
            ));
        }
        let signed_entry_timestamp = j
            .inclusion_promise
            .map(|p| decode_b64("signed entry timestamp", &p.signed_entry_timestamp))
            .transpose()?;
        if j.kind_version.kind.len() > 32 || j.kind_version.version.len() > 32 {
            return Err(Error::malformed("log entry", "kind or version too long"));
        }
        Ok(TlogEntry {
            log_index: j.log_index,
            log_id,
            kind: j.kind_version.kind,
            version: j.kind_version.version,
            integrated_time: j.integrated_time,
            signed_entry_timestamp,
            inclusion_proof,
            body,
            body_b64: j.canonicalized_body,
        })
    }

    /// Parses one entry from its bundle JSON (for fuzzing and tools).
    pub fn parse(json: &[u8]) -> Result<Self, Error> {
        if json.len() > 2 * MAX_BODY_BYTES {
            return Err(Error::malformed("log entry", "larger than the size limit"));
        }
        let j: TlogEntryJson =
            serde_json::from_slice(json).map_err(|e| Error::malformed("log entry JSON", e))?;
        Self::from_json(j)
    }

    /// Checks the signed entry timestamp: the log's signature over the canonical JSON of
    /// body, integrated time, log ID and index. Only then is `integrated_time` trusted.
    pub fn verify_set(&self, log_key: &PublicKey) -> Result<(), Error> {
        let set = self.signed_entry_timestamp.as_ref().ok_or_else(|| {
            Error::unsupported(
                "log entry",
                "no signed entry timestamp, so the signing time is not attested (RFC 3161 timestamps are not used)",
            )
        })?;
        // RFC 8785 canonical JSON of four fields: keys sorted, no spaces, integers plain.
        let payload = format!(
            "{{\"body\":\"{}\",\"integratedTime\":{},\"logID\":\"{}\",\"logIndex\":{}}}",
            self.body_b64,
            self.integrated_time,
            hex::encode(&self.log_id),
            self.log_index
        );
        raw_signature::verify_message(log_key, payload.as_bytes(), set).map_err(|e| match e {
            Error::BadSignature(_) => Error::BadSignature(format!(
                "the signed entry timestamp of log entry {} is not by the log's key {}",
                self.log_index,
                log_key.fingerprint()
            )),
            other => other,
        })
    }

    /// Checks the inclusion proof: the entry's leaf hash leads to the proof's root, and the
    /// checkpoint signed by the log's key names the same tree size and root.
    pub fn verify_inclusion(&self, log_key: &PublicKey) -> Result<(), Error> {
        let proof = self
            .inclusion_proof
            .as_ref()
            .ok_or_else(|| Error::malformed("log entry", "no inclusion proof"))?;
        let leaf = merkle::leaf_hash(&self.body);
        let root = merkle::root_from_inclusion_proof(
            proof.log_index,
            proof.tree_size,
            &leaf,
            &proof.hashes,
        )?;
        if root != proof.root_hash {
            return Err(Error::BadSignature(format!(
                "the inclusion proof of log entry {} leads to root {}, not to the stated root {}",
                self.log_index,
                hex::encode(root),
                hex::encode(proof.root_hash)
            )));
        }
        let checkpoint = Checkpoint::parse(&proof.checkpoint)?;
        checkpoint.verify(log_key)?;
        if checkpoint.tree_size != proof.tree_size || checkpoint.root_hash != proof.root_hash {
            return Err(Error::BadSignature(format!(
                "the signed checkpoint is for tree size {} root {}, the inclusion proof for size {} root {}",
                checkpoint.tree_size,
                hex::encode(checkpoint.root_hash),
                proof.tree_size,
                hex::encode(proof.root_hash)
            )));
        }
        Ok(())
    }

    /// Checks that the logged body is a `dsse` 0.0.1 entry for exactly this envelope: its
    /// payload hash, its one signature and the certificate that verifies it.
    pub fn check_dsse_body(
        &self,
        payload: &[u8],
        signature: &[u8],
        certificate_der: &[u8],
    ) -> Result<(), Error> {
        if (self.kind.as_str(), self.version.as_str()) != ("dsse", "0.0.1") {
            return Err(Error::unsupported(
                "log entry kind",
                format!(
                    "{} {} (a DSSE bundle is logged as dsse 0.0.1)",
                    self.kind, self.version
                ),
            ));
        }
        let body: DsseBodyJson = serde_json::from_slice(&self.body)
            .map_err(|e| Error::malformed("log entry body", e))?;
        if body.kind != self.kind || body.api_version != self.version {
            return Err(Error::malformed(
                "log entry body",
                format!(
                    "records kind {} {}, the entry says {} {}",
                    body.kind, body.api_version, self.kind, self.version
                ),
            ));
        }
        let spec = body.spec;
        if spec.payload_hash.algorithm != "sha256"
            || spec.payload_hash.value != hex::encode(crate::sha256(payload))
        {
            return Err(Error::Integrity(format!(
                "log entry {} records payload hash {} {}, not this bundle's payload",
                self.log_index, spec.payload_hash.algorithm, spec.payload_hash.value
            )));
        }
        let [logged] = spec.signatures.as_slice() else {
            return Err(Error::malformed(
                "log entry body",
                format!("{} signatures (expected one)", spec.signatures.len()),
            ));
        };
        if decode_b64("logged signature", &logged.signature)? != signature {
            return Err(Error::Integrity(format!(
                "log entry {} records another signature than the bundle's",
                self.log_index
            )));
        }
        let verifier = decode_b64("logged verifier", &logged.verifier)?;
        let logged_cert = crate::pem::parse_labelled(&verifier, "CERTIFICATE")?;
        if logged_cert.first().map(Vec::as_slice) != Some(certificate_der) {
            return Err(Error::Integrity(format!(
                "log entry {} records another signing certificate than the bundle's",
                self.log_index
            )));
        }
        Ok(())
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DsseBodyJson {
    api_version: String,
    kind: String,
    spec: DsseSpecJson,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DsseSpecJson {
    payload_hash: HashJson,
    signatures: Vec<LoggedSignatureJson>,
}

#[derive(Deserialize)]
struct HashJson {
    algorithm: String,
    value: String,
}

#[derive(Deserialize)]
struct LoggedSignatureJson {
    signature: String,
    verifier: String,
}
