//! Sigstore's `trusted_root.json` (media type `application/vnd.dev.sigstore.trustedroot+json`):
//! the transparency logs' keys and the Fulcio certificate authorities, each with the period
//! it is valid for. The public-good instance's file ships with the `sigstore` package on
//! PyPI; a device keeps its copy offline and updates it with its other trust material.

use alloc::{format, string::String, vec::Vec};

use serde::Deserialize;

use crate::{
    bundle::decode_b64, civil::parse_rfc3339_utc, keys::PublicKey, size_limits::MAX_CERT_BYTES,
    Error,
};

/// Largest trusted-root file accepted.
pub const MAX_TRUSTED_ROOT_BYTES: usize = 1024 * 1024;
/// Most logs or certificate authorities one trusted root may list.
pub const MAX_AUTHORITIES: usize = 64;

/// The media-type prefix of a trusted root.
pub const TRUSTED_ROOT_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.trustedroot+json";

/// A period of validity, Unix seconds; `end` absent means "still valid".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    /// Start (inclusive).
    pub start: i64,
    /// End (inclusive), if the authority was retired.
    pub end: Option<i64>,
}

impl Validity {
    /// Whether `t` (Unix seconds) lies inside the period.
    pub fn contains(&self, t: i64) -> bool {
        t >= self.start && self.end.is_none_or(|end| t <= end)
    }
}

/// A transparency log (Rekor) and its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransparencyLog {
    /// Its URL, for messages.
    pub base_url: String,
    /// Its log ID: SHA-256 of its key's DER SubjectPublicKeyInfo.
    pub log_id: Vec<u8>,
    /// Its key.
    pub key: PublicKey,
    /// When the key signs.
    pub validity: Validity,
}

/// A certificate authority (Fulcio) and its chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateAuthority {
    /// Its URL, for messages.
    pub uri: String,
    /// Its certificates (DER), issuing intermediate first, root last.
    pub chain: Vec<Vec<u8>>,
    /// When it issues.
    pub validity: Validity,
}

/// A parsed trusted root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedRoot {
    /// Transparency logs.
    pub tlogs: Vec<TransparencyLog>,
    /// Fulcio certificate authorities.
    pub certificate_authorities: Vec<CertificateAuthority>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RootJson {
    media_type: String,
    #[serde(default)]
    tlogs: Vec<LogJson>,
    #[serde(default)]
    certificate_authorities: Vec<CaJson>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LogJson {
    base_url: String,
    hash_algorithm: String,
    public_key: KeyJson,
    log_id: LogIdJson,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct KeyJson {
    raw_bytes: String,
    valid_for: ValidForJson,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LogIdJson {
    key_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CaJson {
    uri: String,
    cert_chain: ChainJson,
    valid_for: ValidForJson,
}

#[derive(Deserialize)]
struct ChainJson {
    certificates: Vec<RawJson>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawJson {
    raw_bytes: String,
}

#[derive(Deserialize)]
struct ValidForJson {
    start: String,
    #[serde(default)]
    end: Option<String>,
}

fn validity(v: &ValidForJson) -> Result<Validity, Error> {
    let t = |s: &str| {
        parse_rfc3339_utc(s).ok_or_else(|| {
            Error::malformed("trusted root", format!("{s:?} is not an RFC 3339 UTC time"))
        })
    };
    Ok(Validity {
        start: t(&v.start)?,
        end: v.end.as_deref().map(t).transpose()?,
    })
}

impl TrustedRoot {
    /// Parses `trusted_root.json`. Transparency logs whose hash is not SHA-256, CT logs and
    /// timestamp authorities are not used (Edgeward takes the signing time from the log's
    /// signed entry timestamp).
    pub fn parse(json: &[u8]) -> Result<Self, Error> {
        if json.len() > MAX_TRUSTED_ROOT_BYTES {
            return Err(Error::malformed(
                "trusted root",
                format!("{} bytes (at most {MAX_TRUSTED_ROOT_BYTES})", json.len()),
            ));
        }
        let raw: RootJson =
            serde_json::from_slice(json).map_err(|e| Error::malformed("trusted root JSON", e))?;
        if !raw.media_type.starts_with(TRUSTED_ROOT_MEDIA_TYPE) {
            return Err(Error::unsupported(
                "trusted root media type",
                format!("{:?} (expected {TRUSTED_ROOT_MEDIA_TYPE})", raw.media_type),
            ));
        }
        if raw.tlogs.len() > MAX_AUTHORITIES || raw.certificate_authorities.len() > MAX_AUTHORITIES
        {
            return Err(Error::malformed(
                "trusted root",
                "too many logs or authorities",
            ));
        }
        let mut tlogs = Vec::with_capacity(raw.tlogs.len());
        for log in &raw.tlogs {
            if log.hash_algorithm != "SHA2_256" {
                continue;
            }
            let der = decode_b64("trusted root log key", &log.public_key.raw_bytes)?;
            if der.len() > MAX_CERT_BYTES {
                return Err(Error::malformed("trusted root log key", "too long"));
            }
            tlogs.push(TransparencyLog {
                base_url: log.base_url.clone(),
                log_id: decode_b64("trusted root log ID", &log.log_id.key_id)?,
                key: PublicKey::from_spki_der(&der)?,
                validity: validity(&log.public_key.valid_for)?,
            });
        }
        let mut certificate_authorities = Vec::with_capacity(raw.certificate_authorities.len());
        for ca in &raw.certificate_authorities {
            let certs = &ca.cert_chain.certificates;
            if certs.is_empty() || certs.len() > crate::size_limits::MAX_CHAIN_CERTS {
                return Err(Error::malformed(
                    "trusted root",
                    format!(
                        "certificate authority {} has {} certificates",
                        ca.uri,
                        certs.len()
                    ),
                ));
            }
            let chain = certs
                .iter()
                .map(|c| {
                    let der = decode_b64("trusted root certificate", &c.raw_bytes)?;
                    if der.len() > MAX_CERT_BYTES {
                        return Err(Error::malformed("trusted root certificate", "too long"));
                    }
                    Ok(der)
                })
                .collect::<Result<Vec<_>, Error>>()?;
            certificate_authorities.push(CertificateAuthority {
                uri: ca.uri.clone(),
                chain,
                validity: validity(&ca.valid_for)?,
            });
        }
        Ok(TrustedRoot {
            tlogs,
            certificate_authorities,
        })
    }

    /// The transparency log with `log_id`.
    pub fn log(&self, log_id: &[u8]) -> Option<&TransparencyLog> {
        self.tlogs.iter().find(|l| l.log_id == log_id)
    }
}
