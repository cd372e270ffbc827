//! Certificate profiles of the hierarchy, and issuing them with rcgen.
//!
//! The functions here apply no rotation policy (tests need to make expired, too-long or
//! EKU-less certificates on purpose); [`crate::Hierarchy`] applies it.

use rand_core::{OsRng, RngCore};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SerialNumber,
};
use time::OffsetDateTime;

use edgeward_core::keys::KeyAlgorithm;

/// Generates a key pair.
pub fn generate_key(alg: KeyAlgorithm) -> Result<KeyPair, rcgen::Error> {
    KeyPair::generate_for(match alg {
        KeyAlgorithm::P256 => &rcgen::PKCS_ECDSA_P256_SHA256,
        KeyAlgorithm::Ed25519 => &rcgen::PKCS_ED25519,
    })
}

/// A random positive 16-byte serial number.
pub fn random_serial() -> SerialNumber {
    let mut s = [0u8; 16];
    OsRng.fill_bytes(&mut s);
    s[0] &= 0x7f;
    s[0] |= 0x01;
    SerialNumber::from_slice(&s)
}

fn name(common_name: &str, org: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, org);
    dn.push(DnType::CommonName, common_name);
    dn
}

fn base(
    common_name: &str,
    org: &str,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name = name(common_name, org);
    p.not_before = not_before;
    p.not_after = not_after;
    p.serial_number = Some(random_serial());
    p.use_authority_key_identifier_extension = true;
    p
}

/// Parameters of the root CA (path length 1: root → device CA → device).
pub fn root_params(
    org: &str,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> CertificateParams {
    let mut p = base(&format!("{org} Root CA"), org, not_before, not_after);
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(1));
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.use_authority_key_identifier_extension = false;
    p
}

/// Parameters of a signing certificate: an end entity with digitalSignature and, unless
/// `code_signing` is false (for tests), the code-signing EKU.
pub fn signing_params(
    org: &str,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    code_signing: bool,
) -> CertificateParams {
    let date = not_before.date();
    let mut p = base(&format!("{org} Signing {date}"), org, not_before, not_after);
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    if code_signing {
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
    }
    p
}

/// Parameters of the device CA (issues device identity certificates, no further CAs).
pub fn device_ca_params(
    org: &str,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> CertificateParams {
    let mut p = base(&format!("{org} Device CA"), org, not_before, not_after);
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p
}

/// Builds an issuer from a CA certificate's PEM and its key.
pub fn issuer_from_pem(
    cert_pem: &str,
    key: KeyPair,
) -> Result<Issuer<'static, KeyPair>, rcgen::Error> {
    Issuer::from_ca_cert_pem(cert_pem, key)
}
