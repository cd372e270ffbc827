//! Verifying a signature bundle: who signed (a trusted key, or a certificate endorsed by a
//! trust root), that the signature covers the statement, and what the statement says. The
//! caller then recomputes the manifest from the artifact and compares
//! ([`crate::manifest::Manifest::check_matches`]).

use alloc::{format, string::String, vec::Vec};

use crate::{
    bundle::{Bundle, Material},
    cert_policy::{verify_signing_chain, EndorsedSigner, Policy},
    cert_policy_upstream::verify_upstream_chain,
    civil::format_unix,
    digest::HashAlg,
    dsse::{pae, pae_v0_2},
    keys::PublicKey,
    raw_signature,
    sigstore::{verify_keyless, KeylessPolicy, KeylessSigner},
    statement::{Statement, StatementVersion},
    Error,
};

/// How far in the future a signing time may lie before it is refused (clock skew).
pub const MAX_FUTURE_SKEW_SECS: u64 = 300;

/// What the verifier trusts.
#[derive(Debug, Clone, Copy)]
pub enum Trust<'a> {
    /// Exactly this public key (model-signing's key mode).
    PublicKey(&'a PublicKey),
    /// Signing certificates endorsed by these roots (DER) under Edgeward's `policy`
    /// (bounded validity, code-signing EKU, end-entity signer), checked against these CRLs.
    Roots {
        /// Trust-root certificates.
        roots: &'a [Vec<u8>],
        /// CRLs issued by the roots.
        crls: &'a [Vec<u8>],
        /// The signing-certificate policy.
        policy: Policy,
    },
    /// Signing certificates chaining to these roots (DER) under the upstream model_signing
    /// verifier's rules ([`crate::cert_policy_upstream`]), for another organisation's PKI.
    ModelSigningRoots {
        /// Trust-root certificates.
        roots: &'a [Vec<u8>],
    },
    /// Keyless Sigstore: a Fulcio certificate for this identity, logged in Rekor.
    Sigstore(KeylessPolicy<'a>),
}

impl Trust<'_> {
    /// The name of the rules applied, as printed in results: `key`, `edgeward`,
    /// `model-signing` or `sigstore`.
    pub fn policy_name(&self) -> &'static str {
        match self {
            Trust::PublicKey(_) => "key",
            Trust::Roots { .. } => "edgeward",
            Trust::ModelSigningRoots { .. } => crate::cert_policy_upstream::POLICY_NAME,
            Trust::Sigstore(_) => "sigstore",
        }
    }
}

/// A bundle whose signature and signer are accepted.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The signed statement (its manifest must still be compared with the artifact).
    pub statement: Statement,
    /// Which statement layout the bundle used (v0.2's, or v1.0's).
    pub statement_version: StatementVersion,
    /// Whether the signature is over model_signing v0.2's legacy pre-authentication
    /// encoding ([`pae_v0_2`]).
    pub legacy_pae: bool,
    /// The key that signed.
    pub key: PublicKey,
    /// The endorsed signing certificate, in certificate and keyless modes.
    pub certificate: Option<EndorsedSigner>,
    /// What the keyless checks established, in keyless mode.
    pub keyless: Option<KeylessSigner>,
    /// The rules applied ([`Trust::policy_name`]).
    pub policy: &'static str,
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

/// The first 16 characters of a key hint: the key id `PublicKey::fingerprint` shows (a hint
/// in a `Bundle` built in code may be shorter, or not ASCII).
fn prefix16(hint: &str) -> &str {
    hint.char_indices()
        .nth(16)
        .map_or(hint, |(i, _)| &hint[..i])
}

/// The Sigstore `keyDetails` name of a key type.
fn key_details_name(key: &PublicKey) -> &'static str {
    match key {
        PublicKey::P256(_) => "PKIX_ECDSA_P256_SHA_256",
        PublicKey::P384(_) => "PKIX_ECDSA_P384_SHA_384",
        PublicKey::P521(_) => "PKIX_ECDSA_P521_SHA_512",
        PublicKey::Ed25519(_) => "PKIX_ED25519",
        PublicKey::Rsa(_) => "PKIX_RSA",
    }
}

/// The key that must have signed: the trusted key (key mode), or the signing certificate's.
fn signer_key(bundle: &Bundle, trust: &Trust<'_>) -> Result<PublicKey, Error> {
    if !bundle.tlog_entries.is_empty() && !matches!(trust, Trust::Sigstore(_)) {
        return Err(Error::NotEndorsed {
            key: String::from("(keyless)"),
            reason: String::from(
                "the bundle is a keyless Sigstore bundle (it carries a transparency-log entry); verify it against a Sigstore trusted root with the signer's identity and identity provider",
            ),
        });
    }
    match (&bundle.material, trust) {
        (Material::KeyHint(hint), Trust::PublicKey(trusted)) => {
            if let Some(hint) = hint {
                let ours = trusted.hint();
                if *hint != ours {
                    return Err(Error::KeyMismatch(format!(
                        "the bundle was signed by key {}, not by the trusted key {}",
                        prefix16(hint),
                        trusted.fingerprint()
                    )));
                }
            }
            if let Some(embedded) = &bundle.embedded_key {
                let key = PublicKey::from_pem(&embedded.pem)?;
                if let Some(details) = &embedded.details {
                    if !details.starts_with(key_details_name(&key)) {
                        return Err(Error::malformed(
                            "bundle public key",
                            format!(
                                "keyDetails says {details}, but the key is {}",
                                key.algorithm()
                            ),
                        ));
                    }
                }
                if &&key != trusted {
                    return Err(Error::KeyMismatch(format!(
                        "the bundle was signed by the {} key {}, not by the trusted {} key {}",
                        key.algorithm(),
                        key.fingerprint(),
                        trusted.algorithm(),
                        trusted.fingerprint()
                    )));
                }
            }
            Ok((*trusted).clone())
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
            Ok(leaf)
        }
        (Material::Chain(chain), _) => PublicKey::from_certificate_der(first_cert(chain)?),
        (Material::KeyHint(_), Trust::Sigstore(_)) => Err(Error::NotEndorsed {
            key: String::from("(none)"),
            reason: String::from(
                "the bundle carries no Fulcio certificate (key mode); verify it with the signer's public key",
            ),
        }),
        (Material::KeyHint(_), _) => Err(Error::NotEndorsed {
            key: String::from("(none)"),
            reason: String::from(
                "the bundle carries no certificate chain (key mode); verify it with --pubkey",
            ),
        }),
    }
}

/// Checks the DSSE signature; returns whether it is over v0.2's legacy encoding.
///
/// model_signing v0.2 signed [`pae_v0_2`] and, whatever the curve, over SHA-256; its bundles
/// (and only those: their statement has the v0.2 layout) are also tried that way.
fn check_envelope_signature(bundle: &Bundle, key: &PublicKey) -> Result<bool, Error> {
    let standard = raw_signature::verify_message(
        key,
        &pae(&bundle.payload_type, &bundle.payload),
        &bundle.signature,
    );
    let Err(first) = standard else {
        return Ok(false);
    };
    let legacy = matches!(
        Statement::parse_any(&bundle.payload),
        Ok((_, StatementVersion::V0_2))
    ) && matches!(
        key,
        PublicKey::P256(_) | PublicKey::P384(_) | PublicKey::P521(_)
    );
    if legacy {
        let message = pae_v0_2(&bundle.payload_type, &bundle.payload);
        for hash in [HashAlg::Sha256, key.hash_alg()] {
            if raw_signature::verify_prehash(key, hash, &hash.digest(&message), &bundle.signature)
                .is_ok()
            {
                return Ok(true);
            }
        }
    }
    Err(match first {
        Error::BadSignature(detail) => Error::BadSignature(format!("DSSE envelope: {detail}")),
        other => other,
    })
}

/// Verifies `bundle` under `trust`. `now` is the verifier's time in Unix seconds (on a
/// device: the later of its clock and its secure element's time floor). Under Edgeward's
/// policy a certificate is judged at the signing time the statement records, else at `now`;
/// under model_signing's at its own `notBefore`; a keyless certificate at the time the log
/// integrated the entry.
pub fn verify_bundle(bundle: &Bundle, trust: &Trust<'_>, now: u64) -> Result<Verified, Error> {
    let key = signer_key(bundle, trust)?;
    let legacy_pae = check_envelope_signature(bundle, &key)?;
    let (statement, statement_version) = Statement::parse_any(&bundle.payload)?;

    let mut judged_at = now;
    let mut keyless = None;
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
        (Material::Chain(chain), Trust::ModelSigningRoots { roots }) => {
            let signer = verify_upstream_chain(chain, roots)?;
            judged_at = signer.not_before.max(0) as u64;
            Some(signer)
        }
        (Material::Chain(chain), Trust::Sigstore(policy)) => {
            let signer = verify_keyless(bundle, chain, policy)?;
            judged_at = signer.integrated_time;
            let certificate = signer.certificate.clone();
            keyless = Some(signer);
            Some(certificate)
        }
        _ => None,
    };
    Ok(Verified {
        statement,
        statement_version,
        legacy_pae,
        key,
        certificate,
        keyless,
        policy: trust.policy_name(),
        judged_at,
    })
}
