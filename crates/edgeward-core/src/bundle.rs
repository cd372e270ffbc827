//! The Sigstore bundle v0.3 JSON as OpenSSF model-signing writes it, in every released
//! version: key mode (a public-key hint; v0.3–v1.0 instead carry the PEM key as
//! `publicKey.rawBytes` with its `keyDetails` and write `"keyid": null`), certificate mode
//! (an X.509 chain, the signing certificate first) and keyless Sigstore (a Fulcio
//! certificate and a Rekor transparency-log entry), each with a DSSE envelope.
//!
//! Unknown fields are refused: nothing outside the signed payload may change what a bundle
//! means, so a bundle that carries anything this parser would ignore is not accepted.

use alloc::{format, string::String, vec, vec::Vec};

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::{
    dsse::IN_TOTO_PAYLOAD_TYPE,
    sigstore::tlog::{TlogEntry, TlogEntryJson},
    size_limits::{MAX_BUNDLE_BYTES, MAX_CERT_BYTES, MAX_CHAIN_CERTS},
    Error,
};

/// Most transparency-log entries or RFC 3161 timestamps a bundle may carry.
pub const MAX_TLOG_ENTRIES: usize = 8;
/// Largest embedded public key (`publicKey.rawBytes`, a PEM file).
pub const MAX_EMBEDDED_KEY_BYTES: usize = 8 * 1024;

/// The bundle media type model-signing writes and accepts.
pub const BUNDLE_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";

/// A parsed bundle, with every base64 field decoded and every bound checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bundle {
    /// Who signed: a key hint or a certificate chain.
    pub material: Material,
    /// The DSSE payload type (checked to be in-toto JSON).
    pub payload_type: String,
    /// The DSSE payload: the in-toto statement JSON, exactly as signed.
    pub payload: Vec<u8>,
    /// The signature over the DSSE pre-authentication encoding.
    pub signature: Vec<u8>,
    /// The signer's key as model_signing v0.3–v1.0 embedded it (`publicKey.rawBytes`, PEM)
    /// with its `keyDetails`, in key mode. A verifier still trusts only its own key; this
    /// one must match it.
    pub embedded_key: Option<EmbeddedKey>,
    /// Transparency-log entries (keyless Sigstore bundles carry exactly one).
    pub tlog_entries: Vec<TlogEntry>,
    /// RFC 3161 timestamps (DER), carried by newer keyless bundles. Edgeward takes the
    /// signing time from the log entry's signed timestamp and reports these as unused.
    pub rfc3161_timestamps: Vec<Vec<u8>>,
}

/// A public key embedded in an old key-mode bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbeddedKey {
    /// The PEM public key as written (`publicKey.rawBytes`, base64-decoded).
    pub pem: Vec<u8>,
    /// The Sigstore key-details name, e.g. `PKIX_ECDSA_P384_SHA_384`.
    pub details: Option<String>,
}

/// The verification material of a bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Material {
    /// Key mode: hex SHA-256 of the signer's PEM public key (may be absent in old bundles).
    KeyHint(Option<String>),
    /// Certificate mode: DER certificates, the signing certificate first.
    Chain(Vec<Vec<u8>>),
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct BundleJson {
    media_type: String,
    verification_material: MaterialJson,
    dsse_envelope: EnvelopeJson,
}

#[derive(Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct MaterialJson {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    public_key: Option<PublicKeyJson>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    x509_certificate_chain: Option<ChainJson>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    certificate: Option<CertJson>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    tlog_entries: Vec<TlogEntryJson>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    timestamp_verification_data: Option<TimestampDataJson>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TimestampDataJson {
    #[serde(default)]
    rfc3161_timestamps: Vec<SignedTimestampJson>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SignedTimestampJson {
    signed_timestamp: String,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PublicKeyJson {
    #[serde(default)]
    hint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    raw_bytes: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key_details: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChainJson {
    certificates: Vec<CertJson>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CertJson {
    raw_bytes: String,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct EnvelopeJson {
    payload: String,
    payload_type: String,
    signatures: Vec<SignatureJson>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignatureJson {
    sig: String,
    /// model_signing before v1.1 writes `null`, v1.1 `""`, keyless bundles omit it.
    #[serde(default)]
    keyid: Option<String>,
}

/// Decodes standard (padded) base64, naming the field on error.
pub fn decode_b64(field: &'static str, s: &str) -> Result<Vec<u8>, Error> {
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .map_err(|e| Error::malformed(field, format!("bad base64: {e}")))
}

fn encode_b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

impl Bundle {
    /// Parses bundle JSON. Checks the media type, the bounds, the base64, that there is
    /// exactly one signature and exactly one kind of verification material.
    pub fn parse(json: &[u8]) -> Result<Self, Error> {
        if json.len() > MAX_BUNDLE_BYTES {
            return Err(Error::malformed(
                "bundle",
                format!(
                    "{} bytes exceeds the {MAX_BUNDLE_BYTES}-byte limit",
                    json.len()
                ),
            ));
        }
        let raw: BundleJson =
            serde_json::from_slice(json).map_err(|e| Error::malformed("bundle JSON", e))?;
        if raw.media_type != BUNDLE_MEDIA_TYPE {
            return Err(Error::unsupported(
                "bundle media type",
                format!("{:?} (expected {BUNDLE_MEDIA_TYPE})", raw.media_type),
            ));
        }
        let mut vm = raw.verification_material;
        if vm.tlog_entries.len() > MAX_TLOG_ENTRIES {
            return Err(Error::malformed(
                "bundle verification material",
                format!(
                    "{} transparency-log entries (at most {MAX_TLOG_ENTRIES})",
                    vm.tlog_entries.len()
                ),
            ));
        }
        let tlog_entries = core::mem::take(&mut vm.tlog_entries)
            .into_iter()
            .map(TlogEntry::from_json)
            .collect::<Result<Vec<_>, _>>()?;
        let rfc3161_timestamps = parse_timestamps(vm.timestamp_verification_data.take())?;
        let embedded_key = vm
            .public_key
            .as_mut()
            .map(|pk| parse_embedded_key(pk.raw_bytes.take(), pk.key_details.take()))
            .transpose()?
            .flatten();
        let material = parse_material(vm)?;
        let envelope = raw.dsse_envelope;
        if envelope.payload_type != IN_TOTO_PAYLOAD_TYPE {
            return Err(Error::unsupported(
                "DSSE payload type",
                format!(
                    "{:?} (expected {IN_TOTO_PAYLOAD_TYPE})",
                    envelope.payload_type
                ),
            ));
        }
        let [sig] = envelope.signatures.as_slice() else {
            return Err(Error::malformed(
                "DSSE envelope",
                format!(
                    "{} signatures (expected exactly one)",
                    envelope.signatures.len()
                ),
            ));
        };
        Ok(Bundle {
            material,
            payload_type: envelope.payload_type,
            payload: decode_b64("DSSE payload", &envelope.payload)?,
            signature: decode_b64("DSSE signature", &sig.sig)?,
            embedded_key,
            tlog_entries,
            rfc3161_timestamps,
        })
    }

    /// Serializes to the JSON model-signing writes (compact, the same field names).
    pub fn to_json(&self) -> String {
        let material = match &self.material {
            Material::KeyHint(hint) => MaterialJson {
                public_key: Some(PublicKeyJson {
                    hint: hint.clone(),
                    raw_bytes: None,
                    key_details: None,
                }),
                ..MaterialJson::default()
            },
            Material::Chain(certs) => MaterialJson {
                x509_certificate_chain: Some(ChainJson {
                    certificates: certs
                        .iter()
                        .map(|c| CertJson {
                            raw_bytes: encode_b64(c),
                        })
                        .collect(),
                }),
                ..MaterialJson::default()
            },
        };
        let json = BundleJson {
            media_type: String::from(BUNDLE_MEDIA_TYPE),
            verification_material: material,
            dsse_envelope: EnvelopeJson {
                payload: encode_b64(&self.payload),
                payload_type: self.payload_type.clone(),
                signatures: vec![SignatureJson {
                    sig: encode_b64(&self.signature),
                    keyid: Some(String::new()),
                }],
            },
        };
        serde_json::to_string(&json).unwrap_or_default()
    }
}

/// Decodes old key-mode bundles' embedded PEM key (`None` when neither field is present).
fn parse_embedded_key(
    raw_bytes: Option<String>,
    details: Option<String>,
) -> Result<Option<EmbeddedKey>, Error> {
    let Some(raw) = raw_bytes else {
        return match details {
            None => Ok(None),
            Some(_) => Err(Error::malformed(
                "bundle public key",
                "keyDetails without rawBytes",
            )),
        };
    };
    let pem = decode_b64("bundle public key", &raw)?;
    if pem.is_empty() || pem.len() > MAX_EMBEDDED_KEY_BYTES {
        return Err(Error::malformed(
            "bundle public key",
            format!("{} bytes (expected 1–{MAX_EMBEDDED_KEY_BYTES})", pem.len()),
        ));
    }
    if details.as_ref().is_some_and(|d| d.len() > 64) {
        return Err(Error::malformed("bundle public key", "keyDetails too long"));
    }
    Ok(Some(EmbeddedKey { pem, details }))
}

fn parse_timestamps(data: Option<TimestampDataJson>) -> Result<Vec<Vec<u8>>, Error> {
    let stamps = data.map(|d| d.rfc3161_timestamps).unwrap_or_default();
    if stamps.len() > MAX_TLOG_ENTRIES {
        return Err(Error::malformed(
            "bundle timestamps",
            format!(
                "{} RFC 3161 timestamps (at most {MAX_TLOG_ENTRIES})",
                stamps.len()
            ),
        ));
    }
    stamps
        .iter()
        .map(|t| {
            let der = decode_b64("RFC 3161 timestamp", &t.signed_timestamp)?;
            if der.len() > MAX_CERT_BYTES {
                return Err(Error::malformed(
                    "RFC 3161 timestamp",
                    format!("{} bytes (at most {MAX_CERT_BYTES})", der.len()),
                ));
            }
            Ok(der)
        })
        .collect()
}

fn parse_material(m: MaterialJson) -> Result<Material, Error> {
    let certs: Option<Vec<CertJson>> = match (m.x509_certificate_chain, m.certificate) {
        (Some(chain), None) => Some(chain.certificates),
        (None, Some(cert)) => Some(vec![cert]),
        (None, None) => None,
        (Some(_), Some(_)) => {
            return Err(Error::malformed(
                "bundle verification material",
                "both x509CertificateChain and certificate are present",
            ))
        }
    };
    match (m.public_key, certs) {
        (Some(pk), None) => {
            if let Some(h) = &pk.hint {
                if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(Error::malformed(
                        "bundle public-key hint",
                        "not 64 hex digits",
                    ));
                }
            }
            Ok(Material::KeyHint(pk.hint))
        }
        (None, Some(certs)) => {
            if certs.is_empty() || certs.len() > MAX_CHAIN_CERTS {
                return Err(Error::malformed(
                    "bundle certificate chain",
                    format!(
                        "{} certificates (expected 1–{MAX_CHAIN_CERTS})",
                        certs.len()
                    ),
                ));
            }
            let mut ders = Vec::with_capacity(certs.len());
            for c in certs {
                let der = decode_b64("bundle certificate", &c.raw_bytes)?;
                if der.is_empty() || der.len() > MAX_CERT_BYTES {
                    return Err(Error::malformed(
                        "bundle certificate",
                        format!("{} bytes (expected 1–{MAX_CERT_BYTES})", der.len()),
                    ));
                }
                ders.push(der);
            }
            Ok(Material::Chain(ders))
        }
        (None, None) => Err(Error::malformed(
            "bundle verification material",
            "neither a public key nor a certificate chain",
        )),
        (Some(_), Some(_)) => Err(Error::malformed(
            "bundle verification material",
            "both a public key and a certificate chain",
        )),
    }
}
