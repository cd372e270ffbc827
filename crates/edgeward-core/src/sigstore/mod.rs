//! Keyless Sigstore bundles verified offline: the signer's short-lived Fulcio certificate
//! must chain to a Fulcio CA of the trusted root at the time the Rekor log integrated the
//! entry (attested by the log's signed entry timestamp); the entry must be in the log (its
//! inclusion proof up to a checkpoint signed by the log, when the bundle carries one) and
//! record exactly this envelope; and the certificate must name the expected identity and
//! identity provider. Nothing is fetched: a device checks against the trusted root it holds.

pub mod checkpoint;
pub mod identity;
pub mod tlog;
pub mod trusted_root;

use alloc::{format, string::String, vec::Vec};

use crate::{
    bundle::Bundle,
    cert_policy::{verify_signing_chain, EndorsedSigner, Policy},
    civil::format_unix,
    Error,
};

pub use identity::Identity;
pub use trusted_root::TrustedRoot;

/// Who a keyless signature must come from.
#[derive(Debug, Clone, Copy)]
pub struct KeylessPolicy<'a> {
    /// The trusted root (Fulcio CAs and Rekor keys).
    pub root: &'a TrustedRoot,
    /// The signer's identity, exactly as in the certificate's subject alternative name
    /// (an email address or a URI, e.g. a CI workflow).
    pub identity: &'a str,
    /// The OIDC issuer that vouched for it (Fulcio's issuer extension).
    pub issuer: &'a str,
}

/// What a verified keyless signature established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeylessSigner {
    /// The certificate's identity and issuer.
    pub identity: Identity,
    /// The signing certificate.
    pub certificate: EndorsedSigner,
    /// The Fulcio CA that issued it.
    pub certificate_authority: String,
    /// The transparency log.
    pub log_url: String,
    /// The entry's index in the log.
    pub log_index: u64,
    /// When the log integrated the entry (Unix seconds, attested by the log).
    pub integrated_time: u64,
    /// Whether an inclusion proof and its signed checkpoint were verified too.
    pub inclusion_proof_checked: bool,
    /// RFC 3161 timestamps the bundle carried, not used.
    pub unused_timestamps: usize,
}

/// Checks the log entry, certificate chain and identity of a keyless `bundle` whose DSSE
/// signature verifies under the key of its certificate `chain[0]`.
pub fn verify_keyless(
    bundle: &Bundle,
    chain: &[Vec<u8>],
    policy: &KeylessPolicy<'_>,
) -> Result<KeylessSigner, Error> {
    let [leaf] = chain else {
        return Err(Error::malformed(
            "keyless bundle",
            format!(
                "{} certificates (expected the Fulcio signing certificate alone)",
                chain.len()
            ),
        ));
    };
    let key = crate::keys::PublicKey::from_certificate_der(leaf)?;
    let refuse = |reason: String| Error::NotEndorsed {
        key: key.fingerprint(),
        reason,
    };
    let [entry] = bundle.tlog_entries.as_slice() else {
        return Err(refuse(format!(
            "a keyless bundle needs exactly one transparency-log entry, this one has {}",
            bundle.tlog_entries.len()
        )));
    };
    let log = policy.root.log(&entry.log_id).ok_or_else(|| {
        refuse(format!(
            "the log entry is from log {}, which the trusted root does not list",
            hex::encode(&entry.log_id)
        ))
    })?;
    entry.verify_set(&log.key)?;
    let t = entry.integrated_time;
    if !log.validity.contains(t as i64) {
        return Err(refuse(format!(
            "log {} was not trusted at the entry's time {}",
            log.base_url,
            format_unix(t as i64)
        )));
    }
    let inclusion_proof_checked = entry.inclusion_proof.is_some();
    if inclusion_proof_checked {
        entry.verify_inclusion(&log.key)?;
    }
    entry.check_dsse_body(&bundle.payload, &bundle.signature, leaf)?;

    let mut last_reason = String::from("the trusted root lists no Fulcio certificate authority");
    let mut endorsed = None;
    for ca in &policy.root.certificate_authorities {
        if !ca.validity.contains(t as i64) {
            last_reason = format!(
                "no Fulcio certificate authority of the trusted root was valid at {}",
                format_unix(t as i64)
            );
            continue;
        }
        let Some((anchor, intermediates)) = ca.chain.split_last() else {
            continue;
        };
        let mut path = alloc::vec![leaf.clone()];
        path.extend(intermediates.iter().cloned());
        match verify_signing_chain(
            &path,
            core::slice::from_ref(anchor),
            &[],
            t,
            &Policy::default(),
        ) {
            Ok(signer) => {
                endorsed = Some((signer, ca.uri.clone()));
                break;
            }
            Err(Error::NotEndorsed { reason, .. }) => last_reason = reason,
            Err(other) => return Err(other),
        }
    }
    let (certificate, certificate_authority) =
        endorsed.ok_or_else(|| refuse(format!("Fulcio certificate: {last_reason}")))?;

    let identity = Identity::of_certificate(leaf)?;
    if !identity.names.iter().any(|n| n == policy.identity) {
        return Err(refuse(format!(
            "the certificate was issued to {}, not to the expected identity {}",
            identity.names.join(", "),
            policy.identity
        )));
    }
    match &identity.issuer {
        Some(issuer) if issuer == policy.issuer => {}
        Some(issuer) => {
            return Err(refuse(format!(
                "the certificate's identity was vouched for by {issuer}, not by the expected identity provider {}",
                policy.issuer
            )))
        }
        None => {
            return Err(refuse(String::from(
                "the certificate names no identity provider (no Fulcio issuer extension)",
            )))
        }
    }
    Ok(KeylessSigner {
        identity,
        certificate,
        certificate_authority,
        log_url: log.base_url.clone(),
        log_index: entry.log_index,
        integrated_time: t,
        inclusion_proof_checked,
        unused_timestamps: bundle.rfc3161_timestamps.len(),
    })
}
