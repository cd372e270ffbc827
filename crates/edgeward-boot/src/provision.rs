//! Factory provisioning: putting a device's root anchor, device key and device certificate
//! (issued under the device CA) into its secure element, what a factory does once. Behind
//! the `provision` feature, so a device build does not link the certificate tooling.

use edgeward_core::keys::PublicKey;
use edgeward_se::{KeyAlgorithm, SecureElement};
use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};

use crate::{
    attest::{DEVICE_CA_SLOT, DEVICE_CERT_SLOT, DEVICE_KEY_SLOT},
    boot::ROOT_SLOT,
    BootError,
};

/// Issues a device certificate (client auth, `days` long) for `public` under the device CA.
pub fn issue_device_certificate(
    device_ca_pem: &str,
    device_ca_key_pem: &str,
    public: &PublicKey,
    device_id: &str,
    days: i64,
    now: OffsetDateTime,
) -> Result<Vec<u8>, BootError> {
    let err = |e: rcgen::Error| BootError::Provision(e.to_string());
    let ca_key = KeyPair::from_pem(device_ca_key_pem).map_err(err)?;
    let issuer = edgeward_pki::issue::issuer_from_pem(device_ca_pem, ca_key).map_err(err)?;
    let spki = rcgen::SubjectPublicKeyInfo::from_der(&public.to_spki_der()).map_err(err)?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, device_id);
    params.distinguished_name = dn;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.not_before = now - Duration::minutes(5);
    params.not_after = now + Duration::days(days);
    params.serial_number = Some(edgeward_pki::issue::random_serial());
    params.use_authority_key_identifier_extension = true;
    let cert = params.signed_by(&spki, &issuer).map_err(err)?;
    Ok(cert.der().to_vec())
}

/// Provisions `se`: the root anchor, a new P-256 device key, and its certificate issued by
/// the device CA (whose certificate is stored too). Returns the device's public key.
pub fn provision(
    se: &dyn SecureElement,
    root_der: &[u8],
    device_ca_pem: &str,
    device_ca_key_pem: &str,
    device_id: &str,
    now: OffsetDateTime,
) -> Result<PublicKey, BootError> {
    let public = se.generate_key(DEVICE_KEY_SLOT, KeyAlgorithm::P256)?;
    let cert = issue_device_certificate(
        device_ca_pem,
        device_ca_key_pem,
        &public,
        device_id,
        365,
        now,
    )?;
    let ca_der = edgeward_core::pem::parse_labelled(device_ca_pem.as_bytes(), "CERTIFICATE")?
        .into_iter()
        .next()
        .ok_or_else(|| BootError::Provision("the device CA PEM holds no certificate".into()))?;
    se.store_certificate(ROOT_SLOT, root_der)?;
    se.store_certificate(DEVICE_CERT_SLOT, &cert)?;
    se.store_certificate(DEVICE_CA_SLOT, &ca_der)?;
    Ok(public)
}
