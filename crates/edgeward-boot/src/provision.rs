//! Provisioning and signing for boot chains: signing a stage image with its boot claims,
//! and putting a device's root anchor, device key and device certificate into its secure
//! element (what a factory does once).

use std::path::Path;

use edgeward_core::{
    bundle::Bundle,
    keys::{PublicKey, SigningKey},
    manifest::{Method, Serialization},
    sign::sign_statement,
    statement::{BootClaims, Statement},
};
use edgeward_model::{hashing::manifest_of, NoProgress};
use edgeward_se::{KeyAlgorithm, SecureElement};
use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};

use crate::{
    attest::{DEVICE_CA_SLOT, DEVICE_CERT_SLOT, DEVICE_KEY_SLOT},
    boot::ROOT_SLOT,
    policy::{signature_path, POLICY_CLAIM},
    BootError,
};

/// Signs the image at `image` as a boot stage. `chain` (DER, signing certificate first)
/// selects certificate mode; `shard_size` splits large images so that verification uses
/// every core.
pub fn sign_stage(
    image: &Path,
    key: &SigningKey,
    chain: Option<Vec<Vec<u8>>>,
    claims: BootClaims,
    shard_size: Option<u64>,
    signed_at: u64,
) -> Result<Bundle, BootError> {
    let serialization = Serialization {
        method: match shard_size {
            Some(shard_size) if shard_size > 0 => Method::Shards { shard_size },
            _ => Method::Files,
        },
        allow_symlinks: false,
        ignore_paths: Vec::new(),
    };
    let manifest = manifest_of(image, &serialization, &NoProgress)?;
    Ok(sign_statement(
        Statement {
            manifest,
            signed_at: Some(signed_at),
            boot: claims,
        },
        key,
        chain,
    )?)
}

/// Signs the chain description at `chain_path` as the boot policy (claims: stage
/// [`POLICY_CLAIM`], `hardware`, `security_counter`; one file, files method) and writes the
/// bundle to its [`signature_path`]. Returns that path.
pub fn sign_policy(
    chain_path: &Path,
    key: &SigningKey,
    chain: Vec<Vec<u8>>,
    hardware: &str,
    security_counter: u64,
    signed_at: u64,
) -> Result<std::path::PathBuf, BootError> {
    let claims = BootClaims {
        stage: Some(POLICY_CLAIM.to_string()),
        hardware: Some(hardware.to_string()),
        security_counter: Some(security_counter),
    };
    let bundle = sign_stage(chain_path, key, Some(chain), claims, None, signed_at)?;
    let out = signature_path(chain_path);
    std::fs::write(&out, bundle.to_json()).map_err(|e| BootError::io(&out, e))?;
    Ok(out)
}

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
