//! The identity a Fulcio certificate vouches for: its subject alternative names (an email
//! address, or a URI such as a CI workflow) and the OIDC issuer recorded in Fulcio's
//! extensions (1.3.6.1.4.1.57264.1.8, a DER UTF8String; the older 1.3.6.1.4.1.57264.1.1,
//! raw bytes).

use alloc::{string::String, string::ToString, vec::Vec};

use x509_cert::{
    der::{asn1::Utf8StringRef, oid::ObjectIdentifier, Decode},
    ext::pkix::{name::GeneralName, SubjectAltName},
    Certificate,
};

use crate::Error;

const OID_SAN: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.17");
const OID_ISSUER_V2: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.8");
const OID_ISSUER_V1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.1");
/// Longest identity or issuer string accepted.
const MAX_NAME_BYTES: usize = 1024;

/// A certificate's identities and issuer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Email addresses and URIs of the subject alternative name.
    pub names: Vec<String>,
    /// The OIDC issuer, if the certificate records one.
    pub issuer: Option<String>,
}

impl Identity {
    /// Reads the identity of a DER certificate.
    pub fn of_certificate(der: &[u8]) -> Result<Self, Error> {
        let cert =
            Certificate::from_der(der).map_err(|e| Error::malformed("certificate DER", e))?;
        let mut names = Vec::new();
        let mut issuer_v1 = None;
        let mut issuer_v2 = None;
        for ext in cert.tbs_certificate.extensions.iter().flatten() {
            let value = ext.extn_value.as_bytes();
            if ext.extn_id == OID_SAN {
                let san = SubjectAltName::from_der(value)
                    .map_err(|e| Error::malformed("subject alternative name", e))?;
                for name in san.0 {
                    match name {
                        GeneralName::Rfc822Name(s) => names.push(s.to_string()),
                        GeneralName::UniformResourceIdentifier(s) => names.push(s.to_string()),
                        _ => {}
                    }
                }
            } else if ext.extn_id == OID_ISSUER_V2 {
                let s = Utf8StringRef::from_der(value)
                    .map_err(|e| Error::malformed("Fulcio issuer extension", e))?;
                issuer_v2 = Some(s.as_str().to_string());
            } else if ext.extn_id == OID_ISSUER_V1 {
                let s = core::str::from_utf8(value)
                    .map_err(|_| Error::malformed("Fulcio issuer extension", "not UTF-8"))?;
                issuer_v1 = Some(s.to_string());
            }
        }
        let issuer = issuer_v2.or(issuer_v1);
        if names
            .iter()
            .chain(issuer.iter())
            .any(|n| n.len() > MAX_NAME_BYTES)
        {
            return Err(Error::malformed(
                "certificate identity",
                "a name is too long",
            ));
        }
        Ok(Identity { names, issuer })
    }
}
