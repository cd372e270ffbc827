//! The trust policy for signing certificates: the chain must reach one of the trust roots,
//! the signing certificate must carry the code-signing EKU, be valid at the judged time,
//! not be revoked by a root-signed CRL, and not be valid for longer than the rotation policy
//! allows (90 days by default).
//!
//! Path building and signature checks are rustls-webpki's; this module adds the rotation
//! and CRL-issuer rules and turns every refusal into a sentence an operator can act on.

use alloc::{format, string::String, string::ToString, vec::Vec};
use core::time::Duration;

use rustls_pki_types::{CertificateDer, UnixTime};
use x509_cert::der::{Decode, Encode};

use crate::{
    civil::{format_date, format_unix},
    keys::PublicKey,
    size_limits::{MAX_CERT_BYTES, MAX_CRL_BYTES},
    Error,
};

/// DER contents of the code-signing EKU OID, 1.3.6.1.5.5.7.3.3.
pub const EKU_CODE_SIGNING: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x03];

/// The default longest validity of a signing certificate: 90 days.
pub const DEFAULT_MAX_SIGNING_VALIDITY_SECS: u64 = 90 * 86_400;

/// What a signing certificate must satisfy beyond chaining to a root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Longest allowed `notAfter - notBefore` of the signing certificate, in seconds.
    pub max_signing_validity_secs: u64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            max_signing_validity_secs: DEFAULT_MAX_SIGNING_VALIDITY_SECS,
        }
    }
}

/// Facts about a signing certificate that passed the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndorsedSigner {
    /// The signing certificate's subject, RFC 4514.
    pub subject: String,
    /// Its serial number, hex.
    pub serial: String,
    /// Its validity start, Unix seconds.
    pub not_before: i64,
    /// Its validity end, Unix seconds.
    pub not_after: i64,
    /// Its public key.
    pub key: PublicKey,
}

/// Parsed facts of one certificate, for policy and messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// Subject, RFC 4514.
    pub subject: String,
    /// Issuer, RFC 4514.
    pub issuer: String,
    /// Serial number, hex (as `openssl x509 -serial` prints it, lowercase).
    pub serial: String,
    /// Validity start, Unix seconds.
    pub not_before: i64,
    /// Validity end, Unix seconds.
    pub not_after: i64,
    /// Raw DER of the subject name (to compare issuers exactly).
    pub subject_der: Vec<u8>,
}

/// Parses the facts of a DER certificate.
pub fn cert_info(der: &[u8]) -> Result<CertInfo, Error> {
    if der.len() > MAX_CERT_BYTES {
        return Err(Error::malformed(
            "certificate",
            "larger than the size limit",
        ));
    }
    let cert = x509_cert::Certificate::from_der(der)
        .map_err(|e| Error::malformed("certificate DER", e))?;
    let tbs = &cert.tbs_certificate;
    let secs = |t: &x509_cert::time::Time| t.to_unix_duration().as_secs() as i64;
    Ok(CertInfo {
        subject: tbs.subject.to_string(),
        issuer: tbs.issuer.to_string(),
        serial: hex::encode(tbs.serial_number.as_bytes()),
        not_before: secs(&tbs.validity.not_before),
        not_after: secs(&tbs.validity.not_after),
        subject_der: tbs
            .subject
            .to_der()
            .map_err(|e| Error::malformed("certificate subject", e))?,
    })
}

/// Checks `chain` (signing certificate first, then any intermediates) against `roots` at
/// time `at` (Unix seconds) under `policy`, consulting `crls`. Every CRL must be issued by
/// one of the roots or by a certificate of the chain.
pub fn verify_signing_chain(
    chain: &[Vec<u8>],
    roots: &[Vec<u8>],
    crls: &[Vec<u8>],
    at: u64,
    policy: &Policy,
) -> Result<EndorsedSigner, Error> {
    let leaf_der = chain
        .first()
        .ok_or_else(|| Error::malformed("certificate chain", "empty"))?;
    let key = PublicKey::from_certificate_der(leaf_der)?;
    let refuse = |reason: String| Error::NotEndorsed {
        key: key.fingerprint(),
        reason,
    };
    let leaf = cert_info(leaf_der)?;

    let lifetime = leaf.not_after.saturating_sub(leaf.not_before);
    if lifetime > policy.max_signing_validity_secs as i64 {
        return Err(refuse(format!(
            "signing certificate {} is valid for {} days, longer than the {}-day rotation policy",
            leaf.subject,
            (lifetime + 86_399) / 86_400,
            policy.max_signing_validity_secs / 86_400
        )));
    }

    if !has_code_signing_eku(leaf_der)? {
        return Err(refuse(String::from(
            "signing certificate lacks the code-signing extended key usage",
        )));
    }

    let root_certs: Vec<CertificateDer<'_>> = roots
        .iter()
        .map(|r| CertificateDer::from(r.as_slice()))
        .collect();
    let mut anchors = Vec::with_capacity(root_certs.len());
    for (i, root) in root_certs.iter().enumerate() {
        let anchor = webpki::anchor_from_trusted_cert(root).map_err(|e| {
            Error::malformed("trust root certificate", format!("#{}: {e:?}", i + 1))
        })?;
        anchors.push(anchor);
    }
    let root_infos: Vec<CertInfo> = roots
        .iter()
        .map(|r| cert_info(r))
        .collect::<Result<_, _>>()?;

    let mut crl_issuers: Vec<Vec<u8>> = root_infos.iter().map(|r| r.subject_der.clone()).collect();
    for c in &chain[1..] {
        crl_issuers.push(cert_info(c)?.subject_der);
    }
    let mut parsed_crls = Vec::with_capacity(crls.len());
    for crl in crls {
        parsed_crls.push(parse_crl(crl, &crl_issuers)?);
    }
    let crl_refs: Vec<&webpki::CertRevocationList<'_>> = parsed_crls.iter().collect();

    let ee_der = CertificateDer::from(leaf_der.as_slice());
    let ee = webpki::EndEntityCert::try_from(&ee_der)
        .map_err(|e| Error::malformed("signing certificate", format!("{e:?}")))?;
    let intermediates: Vec<CertificateDer<'_>> = chain[1..]
        .iter()
        .map(|c| CertificateDer::from(c.as_slice()))
        .collect();
    let revocation = if crl_refs.is_empty() {
        None
    } else {
        webpki::RevocationOptionsBuilder::new(&crl_refs)
            .ok()
            .map(|b| {
                b.with_depth(webpki::RevocationCheckDepth::Chain)
                    .with_status_policy(webpki::UnknownStatusPolicy::Allow)
                    .with_expiration_policy(webpki::ExpirationPolicy::Ignore)
                    .build()
            })
    };
    let time = UnixTime::since_unix_epoch(Duration::from_secs(at));
    let verified = ee.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &anchors,
        &intermediates,
        time,
        // The leaf's EKU was checked above; CAs on the path may omit EKUs (RFC 5280), and if
        // they list any, code signing must be among them.
        webpki::KeyUsage::required_if_present(EKU_CODE_SIGNING),
        revocation,
        None,
    );
    let path = verified.map_err(|e| refuse(explain(&e, &leaf, at)))?;

    // Every certificate the bundle carries must be one the decision rests on: an
    // intermediate of the verified path or a byte-exact copy of a trust root. Anything else
    // (a corrupted or planted extra certificate) is refused rather than ignored.
    for (i, extra) in chain.iter().enumerate().skip(1) {
        let on_path = path
            .intermediate_certificates()
            .any(|c| c.der().as_ref() == extra.as_slice());
        if !on_path && !roots.iter().any(|r| r == extra) {
            return Err(refuse(format!(
                "certificate #{} of the bundle's chain is neither on the path to the trust root nor a trust root",
                i + 1
            )));
        }
    }

    // webpki trusts an anchor's key without looking at the anchor's own validity; the
    // root certificate must also have been valid at the judged time.
    let anchor_spki = path.anchor().subject_public_key_info.as_ref();
    for (der, info) in roots.iter().zip(&root_infos) {
        if spki_of(der).as_deref() == Some(anchor_spki)
            && !(info.not_before..=info.not_after).contains(&(at as i64))
        {
            return Err(refuse(format!(
                "root certificate {} was not valid at {} (valid {} to {})",
                info.subject,
                format_unix(at as i64),
                format_date(info.not_before),
                format_date(info.not_after)
            )));
        }
    }

    Ok(EndorsedSigner {
        subject: leaf.subject,
        serial: leaf.serial,
        not_before: leaf.not_before,
        not_after: leaf.not_after,
        key,
    })
}

/// Whether the certificate's extended key usage lists code signing (absent EKU: no).
fn has_code_signing_eku(der: &[u8]) -> Result<bool, Error> {
    let cert = x509_cert::Certificate::from_der(der)
        .map_err(|e| Error::malformed("certificate DER", e))?;
    let eku_oid = x509_cert::der::oid::db::rfc5280::ID_CE_EXT_KEY_USAGE;
    let code_signing = x509_cert::der::oid::db::rfc5280::ID_KP_CODE_SIGNING;
    for ext in cert.tbs_certificate.extensions.iter().flatten() {
        if ext.extn_id == eku_oid {
            let eku = x509_cert::ext::pkix::ExtendedKeyUsage::from_der(ext.extn_value.as_bytes())
                .map_err(|e| Error::malformed("extended key usage", e))?;
            return Ok(eku.0.contains(&code_signing));
        }
    }
    Ok(false)
}

fn spki_of(cert_der: &[u8]) -> Option<Vec<u8>> {
    let cert = x509_cert::Certificate::from_der(cert_der).ok()?;
    let spki = cert.tbs_certificate.subject_public_key_info.to_der().ok()?;
    // webpki's anchor SPKI is the contents of the SEQUENCE, without its tag and length.
    let header = x509_cert::der::Header::from_der(&spki).ok()?;
    let header_len = u32::from(header.encoded_len().ok()?) as usize;
    Some(spki[header_len..].to_vec())
}

/// Checks that `der` parses as a CRL (so an operator learns of a broken file before any
/// artifact is judged).
pub fn check_crl_der(der: &[u8]) -> Result<(), Error> {
    if der.len() > MAX_CRL_BYTES {
        return Err(Error::malformed("CRL", "larger than the size limit"));
    }
    x509_cert::crl::CertificateList::from_der(der)
        .map(|_| ())
        .map_err(|e| Error::malformed("CRL DER", e))
}

/// The number (RFC 5280 §5.2.3) of a CRL that one of `roots` signed. The signature is
/// checked here, not only when webpki consults the CRL for a path, because a caller that
/// keeps a floor of CRL numbers (the boot policy) must never raise it on a forged CRL: that
/// would refuse every later, genuine CRL.
pub fn crl_number_signed_by_root(der: &[u8], roots: &[Vec<u8>]) -> Result<u64, Error> {
    use x509_cert::der::asn1::ObjectIdentifier;
    if der.len() > MAX_CRL_BYTES {
        return Err(Error::malformed("CRL", "larger than the size limit"));
    }
    let crl = x509_cert::crl::CertificateList::from_der(der)
        .map_err(|e| Error::malformed("CRL DER", e))?;
    let issuer = crl
        .tbs_cert_list
        .issuer
        .to_der()
        .map_err(|e| Error::malformed("CRL issuer", e))?;
    let root = roots
        .iter()
        .find(|r| cert_info(r).is_ok_and(|i| i.subject_der == issuer))
        .ok_or_else(|| {
            Error::InvalidArgument(format!(
                "the CRL is issued by {}, which is not the trust root",
                crl.tbs_cert_list.issuer
            ))
        })?;
    let key = PublicKey::from_certificate_der(root)?;
    // The signature algorithm named by the CRL must be the one the root's key makes: a CRL
    // may not pick a weaker or different scheme than its issuer's key.
    const ECDSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
    const ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
    let alg = crl.signature_algorithm.oid;
    let matches = matches!(
        (&key, alg),
        (PublicKey::P256(_), ECDSA_SHA256) | (PublicKey::Ed25519(_), ED25519)
    );
    if !matches {
        return Err(Error::Unsupported {
            what: "CRL signature algorithm",
            detail: format!("{alg} with a {} root key", key.algorithm()),
        });
    }
    let tbs = crl
        .tbs_cert_list
        .to_der()
        .map_err(|e| Error::malformed("CRL to-be-signed list", e))?;
    let signature = crl
        .signature
        .as_bytes()
        .ok_or_else(|| Error::malformed("CRL signature", "not a whole number of bytes"))?;
    crate::raw_signature::verify_message(&key, &tbs, signature).map_err(|_| {
        Error::NotEndorsed {
            key: key.fingerprint(),
            reason: String::from(
                "the CRL names the root as its issuer but was not signed by the root's key",
            ),
        }
    })?;
    let number_oid = x509_cert::der::oid::db::rfc5280::ID_CE_CRL_NUMBER;
    for ext in crl.tbs_cert_list.crl_extensions.iter().flatten() {
        if ext.extn_id == number_oid {
            let number = x509_cert::ext::pkix::CrlNumber::from_der(ext.extn_value.as_bytes())
                .map_err(|e| Error::malformed("CRL number", e))?;
            // DER INTEGER magnitude, big-endian, without the sign byte `Uint` strips.
            let bytes = number.0.as_bytes();
            if bytes.len() > 8 {
                return Err(Error::malformed("CRL number", "larger than 64 bits"));
            }
            return Ok(bytes.iter().fold(0u64, |n, b| (n << 8) | u64::from(*b)));
        }
    }
    Err(Error::malformed("CRL", "it carries no CRL number"))
}

fn parse_crl<'a>(
    der: &'a [u8],
    allowed_issuers: &[Vec<u8>],
) -> Result<webpki::CertRevocationList<'a>, Error> {
    if der.len() > MAX_CRL_BYTES {
        return Err(Error::malformed("CRL", "larger than the size limit"));
    }
    let parsed = x509_cert::crl::CertificateList::from_der(der)
        .map_err(|e| Error::malformed("CRL DER", e))?;
    let issuer = parsed
        .tbs_cert_list
        .issuer
        .to_der()
        .map_err(|e| Error::malformed("CRL issuer", e))?;
    if !allowed_issuers.contains(&issuer) {
        return Err(Error::InvalidArgument(format!(
            "the CRL is issued by {}, which is not the trust root or a CA of the chain",
            parsed.tbs_cert_list.issuer
        )));
    }
    webpki::BorrowedCertRevocationList::from_der(der)
        .map(webpki::CertRevocationList::from)
        .map_err(|e| Error::malformed("CRL", format!("{e:?}")))
}

fn explain(e: &webpki::Error, leaf: &CertInfo, at: u64) -> String {
    let when = format_unix(at as i64);
    match e {
        webpki::Error::CertExpired { not_after, .. } => format!(
            "certificate expired {} (judged at {when})",
            format_unix(not_after.as_secs() as i64)
        ),
        webpki::Error::CertNotValidYet { not_before, .. } => format!(
            "certificate not valid until {} (judged at {when})",
            format_unix(not_before.as_secs() as i64)
        ),
        webpki::Error::CertRevoked => {
            format!(
                "certificate serial {} (or its issuer) is revoked by the CRL",
                leaf.serial
            )
        }
        webpki::Error::UnknownIssuer => format!(
            "issuer {} is not a trust root and no chain to a trust root was found",
            leaf.issuer
        ),
        webpki::Error::RequiredEkuNotFoundContext(_) => {
            String::from("signing certificate lacks the code-signing extended key usage")
        }
        webpki::Error::CaUsedAsEndEntity => {
            String::from("a CA certificate cannot sign artifacts directly")
        }
        webpki::Error::InvalidSignatureForPublicKey => format!(
            "certificate names {} as its issuer but was not signed by that key (an impostor CA with the same name?)",
            leaf.issuer
        ),
        webpki::Error::InvalidCrlSignatureForPublicKey => {
            String::from("the CRL names the root as its issuer but was not signed by the root's key")
        }
        other => format!("{other:?}"),
    }
}
