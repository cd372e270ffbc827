//! Checking that one certificate was signed by another's key, for the certificate rules that
//! rustls-webpki cannot express (model_signing's, where the signing certificate may be a CA):
//! the signed TBS bytes as they are in the file, the algorithm the certificate names, and the
//! signature check from the key crates ([`crate::raw_signature`]).

use alloc::{format, string::ToString};

use x509_cert::der::{Decode, Encode, Header};

use crate::{digest::HashAlg, keys::PublicKey, raw_signature, Error};

/// The DER bytes of the `tbsCertificate` exactly as they appear in `cert_der` (a re-encoding
/// could differ from what was signed).
pub fn tbs_bytes(cert_der: &[u8]) -> Result<&[u8], Error> {
    let bad = |e: x509_cert::der::Error| Error::malformed("certificate DER", e);
    let header = |bytes: &[u8]| -> Result<Header, Error> {
        let mut reader = x509_cert::der::SliceReader::new(bytes).map_err(bad)?;
        Header::decode(&mut reader).map_err(bad)
    };
    let outer = header(cert_der)?;
    let start = usize::try_from(u32::from(outer.encoded_len().map_err(bad)?))
        .map_err(|_| Error::malformed("certificate DER", "header too long"))?;
    let rest = cert_der
        .get(start..)
        .ok_or_else(|| Error::malformed("certificate DER", "cut off"))?;
    let inner = header(rest)?;
    let len =
        u32::from(inner.encoded_len().map_err(bad)?) as usize + u32::from(inner.length) as usize;
    rest.get(..len)
        .ok_or_else(|| Error::malformed("certificate DER", "the TBS certificate is cut off"))
}

/// Verifies that `cert` was signed by `issuer_key`.
pub fn verify_cert_signature(
    cert_der: &[u8],
    cert: &x509_cert::Certificate,
    issuer_key: &PublicKey,
) -> Result<(), Error> {
    let tbs = tbs_bytes(cert_der)?;
    let sig = cert
        .signature
        .as_bytes()
        .ok_or_else(|| Error::malformed("certificate", "signature is not whole bytes"))?;
    let oid = cert.signature_algorithm.oid.to_string();
    let hash = match oid.as_str() {
        "1.2.840.113549.1.1.11" | "1.2.840.10045.4.3.2" => HashAlg::Sha256,
        "1.2.840.113549.1.1.12" | "1.2.840.10045.4.3.3" => HashAlg::Sha384,
        "1.2.840.113549.1.1.13" | "1.2.840.10045.4.3.4" => HashAlg::Sha512,
        "1.3.101.112" => return raw_signature::verify_message(issuer_key, tbs, sig),
        other => {
            return Err(Error::unsupported(
                "certificate signature algorithm",
                format!("OID {other}"),
            ))
        }
    };
    let is_rsa_oid = oid.starts_with("1.2.840.113549");
    if is_rsa_oid != matches!(issuer_key, PublicKey::Rsa(_)) {
        return Err(Error::BadSignature(format!(
            "the certificate's signature algorithm {oid} does not fit the issuer's {} key",
            issuer_key.algorithm()
        )));
    }
    raw_signature::verify_prehash(issuer_key, hash, &hash.digest(tbs), sig)
}
