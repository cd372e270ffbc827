//! Verifying a signature bundle: who signed (a trusted key, or a certificate endorsed by a
//! trust root), that the signature covers the statement, and what the statement says. The
//! caller then recomputes the manifest from the artifact and compares
//! ([`crate::manifest::Manifest::check_matches`]).

use alloc::{format, string::String, vec::Vec};

use crate::{
    bundle::{Bundle, Material},
    chain::{verify_signing_chain, EndorsedSigner, Policy},
    civil::format_unix,
    dsse::pae,
    keys::PublicKey,
    rawsig,
    statement::Statement,
    Error,
};

/// How far in the future a signing time may lie before it is refused (clock skew).
pub const MAX_FUTURE_SKEW_SECS: u64 = 300;

/// What the verifier trusts.
#[derive(Debug, Clone, Copy)]
pub enum Trust<'a> {
    /// Exactly this public key (model-signing's key mode).
    PublicKey(&'a PublicKey),
    /// Signing certificates endorsed by these roots (DER), under `policy`, checked against
    /// these CRLs (DER).
    Roots {
        /// Trust-root certificates.
        roots: &'a [Vec<u8>],
        /// CRLs issued by the roots.
        crls: &'a [Vec<u8>],
        /// The signing-certificate policy.
        policy: Policy,
    },
}

/// A bundle whose signature and signer are accepted.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The signed statement (its manifest must still be compared with the artifact).
    pub statement: Statement,
    /// The key that signed.
    pub key: PublicKey,
    /// The endorsed signing certificate, in certificate mode.
    pub certificate: Option<EndorsedSigner>,
    /// The time the certificate was judged at (Unix seconds).
    pub judged_at: u64,
}

/// The signing certificate of a chain. `Bundle::parse` refuses empty chains, but a `Bundle`
/// built in code may hold one.
fn first_cert(chain: &[Vec<u8>]) -> Result<&[u8], Error> {
    chain
        .first()
        .map(Vec::as_slice)
        .ok_or_else(|| Error::malformed("bundle certificate chain", "no certificates"))
}

/// The first 16 characters of a key hint, for messages (a hint in a `Bundle` built in code
/// may be shorter, or not ASCII).
fn prefix16(hint: &str) -> &str {
    hint.char_indices()
        .nth(16)
        .map_or(hint, |(i, _)| &hint[..i])
}

/// Verifies `bundle` under `trust`. `now` is the verifier's time in Unix seconds (on a
/// device: the later of its clock and its secure element's time floor). A certificate is
/// judged at the signing time the statement records, else at `now`.
pub fn verify_bundle(bundle: &Bundle, trust: &Trust<'_>, now: u64) -> Result<Verified, Error> {
    let key = match (&bundle.material, trust) {
        (Material::KeyHint(hint), Trust::PublicKey(trusted)) => {
            if let Some(hint) = hint {
                let ours = trusted.hint();
                if *hint != ours {
                    return Err(Error::KeyMismatch(format!(
                        "the bundle was signed by the key with hint {}…, not by the trusted key {} (hint {}…)",
                        prefix16(hint),
                        trusted.fingerprint(),
                        prefix16(&ours)
                    )));
                }
            }
            (*trusted).clone()
        }
        (Material::Chain(chain), Trust::PublicKey(trusted)) => {
            let leaf = PublicKey::from_certificate_der(first_cert(chain)?)?;
            if &&leaf != trusted {
                return Err(Error::KeyMismatch(format!(
                    "the bundle's signing certificate holds key {}, not the trusted key {}",
                    leaf.fingerprint(),
                    trusted.fingerprint()
                )));
            }
            leaf
        }
        (Material::Chain(chain), Trust::Roots { .. }) => {
            PublicKey::from_certificate_der(first_cert(chain)?)?
        }
        (Material::KeyHint(_), Trust::Roots { .. }) => {
            return Err(Error::NotEndorsed {
                key: String::from("(none)"),
                reason: String::from(
                    "the bundle carries no certificate chain (key mode); verify it with --pubkey",
                ),
            })
        }
    };

    rawsig::verify_message(
        &key,
        &pae(&bundle.payload_type, &bundle.payload),
        &bundle.signature,
    )
    .map_err(|e| match e {
        Error::BadSignature(detail) => Error::BadSignature(format!("DSSE envelope: {detail}")),
        other => other,
    })?;
    let statement = Statement::parse(&bundle.payload)?;

    let mut judged_at = now;
    let certificate = match (&bundle.material, trust) {
        (
            Material::Chain(chain),
            Trust::Roots {
                roots,
                crls,
                policy,
            },
        ) => {
            if let Some(signed_at) = statement.signed_at {
                if signed_at > now.saturating_add(MAX_FUTURE_SKEW_SECS) {
                    return Err(Error::NotEndorsed {
                        key: key.fingerprint(),
                        reason: format!(
                            "the statement claims it was signed at {}, later than the verifier's time {}",
                            format_unix(signed_at as i64),
                            format_unix(now as i64)
                        ),
                    });
                }
                judged_at = signed_at;
            }
            Some(verify_signing_chain(chain, roots, crls, judged_at, policy)?)
        }
        _ => None,
    };
    Ok(Verified {
        statement,
        key,
        certificate,
        judged_at,
    })
}
