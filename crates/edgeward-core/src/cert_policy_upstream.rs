//! The certificate rules of the upstream `model_signing` verifier, for artifacts signed under
//! another organisation's PKI (`--policy model-signing`): the chain must lead from the
//! signing certificate through the bundle's intermediates to one of the given roots, every
//! certificate valid at the signing certificate's `notBefore` (upstream judges the chain at
//! that instant), intermediates must be CAs allowed to sign certificates, and the signing
//! certificate must allow digital signatures (key usage) or code signing (extended key
//! usage). Unlike Edgeward's own policy ([`crate::cert_policy`]) there is no bound on validity
//! periods, the signing certificate may itself be a CA, and no CRL is consulted.
//!
//! rustls-webpki refuses a CA certificate as the signer, so the path is built here; each
//! signature is checked by [`crate::x509sig`] with the key crates.

use alloc::{format, string::String, string::ToString, vec::Vec};

use x509_cert::{
    der::{oid::db::rfc5280, Decode, Encode},
    ext::pkix::{BasicConstraints, ExtendedKeyUsage, KeyUsage, KeyUsages},
    Certificate,
};

use crate::{
    cert_policy::EndorsedSigner,
    civil::format_unix,
    keys::PublicKey,
    size_limits::{MAX_CERT_BYTES, MAX_CHAIN_CERTS},
    x509sig::verify_cert_signature,
    Error,
};

/// The name printed for this policy.
pub const POLICY_NAME: &str = "model-signing";

/// Extensions whose meaning this module checks or that do not restrict use; any other
/// critical extension is refused, as OpenSSL does.
const UNDERSTOOD: &[&str] = &[
    "2.5.29.14", // subject key identifier
    "2.5.29.15", // key usage
    "2.5.29.17", // subject alternative name
    "2.5.29.19", // basic constraints
    "2.5.29.32", // certificate policies
    "2.5.29.35", // authority key identifier
    "2.5.29.37", // extended key usage
];

struct Parsed<'a> {
    der: &'a [u8],
    cert: Certificate,
}

fn parse(der: &[u8]) -> Result<Parsed<'_>, Error> {
    if der.len() > MAX_CERT_BYTES {
        return Err(Error::malformed(
            "certificate",
            "larger than the size limit",
        ));
    }
    Ok(Parsed {
        der,
        cert: Certificate::from_der(der).map_err(|e| Error::malformed("certificate DER", e))?,
    })
}

fn extension<'c, T: Decode<'c>>(
    cert: &'c Certificate,
    oid: x509_cert::der::oid::ObjectIdentifier,
) -> Result<Option<T>, Error> {
    for ext in cert.tbs_certificate.extensions.iter().flatten() {
        if ext.extn_id == oid {
            return T::from_der(ext.extn_value.as_bytes())
                .map(Some)
                .map_err(|e| Error::malformed("certificate extension", e));
        }
    }
    Ok(None)
}

fn secs(t: &x509_cert::time::Time) -> i64 {
    t.to_unix_duration().as_secs() as i64
}

/// Verifies `chain` (signing certificate first, then intermediates in any order) against
/// `roots` under the upstream verifier's rules.
pub fn verify_upstream_chain(
    chain: &[Vec<u8>],
    roots: &[Vec<u8>],
) -> Result<EndorsedSigner, Error> {
    let leaf_der = chain
        .first()
        .ok_or_else(|| Error::malformed("certificate chain", "empty"))?;
    let key = PublicKey::from_certificate_der(leaf_der)?;
    let refuse = |reason: String| Error::NotEndorsed {
        key: key.fingerprint(),
        reason,
    };
    let leaf = parse(leaf_der)?;
    let at = secs(&leaf.cert.tbs_certificate.validity.not_before);
    let intermediates: Vec<Parsed<'_>> = chain[1..]
        .iter()
        .map(|c| parse(c))
        .collect::<Result<_, _>>()?;
    let anchors: Vec<Parsed<'_>> = roots.iter().map(|c| parse(c)).collect::<Result<_, _>>()?;

    let mut used = alloc::vec![false; intermediates.len()];
    let mut current = &leaf;
    let mut below = 0usize; // intermediates between `current` and the signing certificate
    loop {
        check_common(current, at).map_err(&refuse)?;
        let issuer = current
            .cert
            .tbs_certificate
            .issuer
            .to_der()
            .map_err(|e| Error::malformed("certificate issuer", e))?;
        let subject_of = |p: &Parsed<'_>| p.cert.tbs_certificate.subject.to_der().ok();
        if let Some(root) = anchors.iter().find(|r| {
            subject_of(r).as_deref() == Some(issuer.as_slice())
                && PublicKey::from_certificate_der(r.der)
                    .and_then(|k| verify_cert_signature(current.der, &current.cert, &k))
                    .is_ok()
        }) {
            check_valid_at(root, at).map_err(&refuse)?;
            break;
        }
        let next = intermediates.iter().enumerate().find(|(i, c)| {
            !used[*i]
                && subject_of(c).as_deref() == Some(issuer.as_slice())
                && PublicKey::from_certificate_der(c.der)
                    .and_then(|k| verify_cert_signature(current.der, &current.cert, &k))
                    .is_ok()
        });
        let Some((i, next)) = next else {
            return Err(refuse(format!(
                "no chain from {} to a trust root: issuer {} is not a trust root and no certificate of the bundle signed it",
                subject_name(&leaf),
                current.cert.tbs_certificate.issuer
            )));
        };
        check_issuer(next, below).map_err(&refuse)?;
        used[i] = true;
        below += 1;
        current = next;
        if below > MAX_CHAIN_CERTS {
            return Err(refuse(String::from("the chain is too long")));
        }
    }
    if let Some(i) = used.iter().position(|u| !u) {
        let extra = &intermediates[i];
        if !roots.iter().any(|r| r.as_slice() == extra.der) {
            return Err(refuse(format!(
                "certificate #{} of the bundle's chain is neither on the path to the trust root nor a trust root",
                i + 2
            )));
        }
    }
    check_signing_usage(&leaf).map_err(&refuse)?;
    let tbs = &leaf.cert.tbs_certificate;
    Ok(EndorsedSigner {
        subject: tbs.subject.to_string(),
        serial: hex::encode(tbs.serial_number.as_bytes()),
        not_before: secs(&tbs.validity.not_before),
        not_after: secs(&tbs.validity.not_after),
        key,
    })
}

fn subject_name(p: &Parsed<'_>) -> String {
    p.cert.tbs_certificate.subject.to_string()
}

fn check_valid_at(p: &Parsed<'_>, at: i64) -> Result<(), String> {
    let v = &p.cert.tbs_certificate.validity;
    if !(secs(&v.not_before)..=secs(&v.not_after)).contains(&at) {
        return Err(format!(
            "certificate {} was not valid when the signing certificate was issued ({}; valid {} to {})",
            subject_name(p),
            format_unix(at),
            format_unix(secs(&v.not_before)),
            format_unix(secs(&v.not_after))
        ));
    }
    Ok(())
}

fn check_common(p: &Parsed<'_>, at: i64) -> Result<(), String> {
    check_valid_at(p, at)?;
    for ext in p.cert.tbs_certificate.extensions.iter().flatten() {
        if ext.critical && !UNDERSTOOD.contains(&ext.extn_id.to_string().as_str()) {
            return Err(format!(
                "certificate {} has a critical extension {} that is not understood",
                subject_name(p),
                ext.extn_id
            ));
        }
    }
    Ok(())
}

/// An intermediate must be a CA whose path length allows `below` CAs under it and, when it
/// states key usage, may sign certificates.
fn check_issuer(p: &Parsed<'_>, below: usize) -> Result<(), String> {
    let bc: Option<BasicConstraints> =
        extension(&p.cert, rfc5280::ID_CE_BASIC_CONSTRAINTS).map_err(|e| e.to_string())?;
    let Some(bc) = bc.filter(|bc| bc.ca) else {
        return Err(format!(
            "certificate {} signed another certificate but is not a CA",
            subject_name(p)
        ));
    };
    if bc
        .path_len_constraint
        .is_some_and(|n| usize::from(n) < below)
    {
        return Err(format!(
            "certificate {} allows {} CAs below it, the chain has {below}",
            subject_name(p),
            bc.path_len_constraint.unwrap_or(0)
        ));
    }
    let ku: Option<KeyUsage> =
        extension(&p.cert, rfc5280::ID_CE_KEY_USAGE).map_err(|e| e.to_string())?;
    if ku.is_some_and(|ku| !ku.0.contains(KeyUsages::KeyCertSign)) {
        return Err(format!(
            "certificate {} signed another certificate but its key usage excludes certificate signing",
            subject_name(p)
        ));
    }
    Ok(())
}

/// The signing certificate must allow digital signatures or code signing.
fn check_signing_usage(p: &Parsed<'_>) -> Result<(), String> {
    let ku: Option<KeyUsage> =
        extension(&p.cert, rfc5280::ID_CE_KEY_USAGE).map_err(|e| e.to_string())?;
    if ku.is_some_and(|ku| ku.digital_signature()) {
        return Ok(());
    }
    let eku: Option<ExtendedKeyUsage> =
        extension(&p.cert, rfc5280::ID_CE_EXT_KEY_USAGE).map_err(|e| e.to_string())?;
    if eku.is_some_and(|eku| eku.0.contains(&rfc5280::ID_KP_CODE_SIGNING)) {
        return Ok(());
    }
    Err(format!(
        "signing certificate {} allows neither digital signatures (key usage) nor code signing (extended key usage)",
        subject_name(p)
    ))
}
