//! The Sigstore bundle v0.3 JSON as OpenSSF model-signing writes it for its key and
//! certificate modes: verification material (a public-key hint, or an X.509 chain with the
//! signing certificate first) and a DSSE envelope.
//!
//! Unknown fields are refused: nothing outside the signed payload may change what a bundle
//! means, so a bundle that carries anything this parser would ignore is not accepted.

use alloc::{format, string::String, vec, vec::Vec};

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::{
    dsse::IN_TOTO_PAYLOAD_TYPE,
    limits::{MAX_BUNDLE_BYTES, MAX_CERT_BYTES, MAX_CHAIN_CERTS},
    Error,
};

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
    #[serde(default)]
    tlog_entries: Vec<serde_json::Value>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PublicKeyJson {
    #[serde(default)]
    hint: Option<String>,
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
    #[serde(default)]
    keyid: String,
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
        let material = parse_material(raw.verification_material)?;
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
        })
    }

    /// Serializes to the JSON model-signing writes (compact, the same field names).
    pub fn to_json(&self) -> String {
        let material = match &self.material {
            Material::KeyHint(hint) => MaterialJson {
                public_key: Some(PublicKeyJson { hint: hint.clone() }),
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
                    keyid: String::new(),
                }],
            },
        };
        serde_json::to_string(&json).unwrap_or_default()
    }
}

fn parse_material(m: MaterialJson) -> Result<Material, Error> {
    if !m.tlog_entries.is_empty() {
        return Err(Error::unsupported(
            "bundle verification material",
            "transparency-log entries (Sigstore keyless bundles are not accepted here)",
        ));
    }
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
