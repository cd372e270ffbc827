//! The server's keys and certificates: the device CA that signs device identities at
//! enrollment (from the key hierarchy, or a development one created in the data directory),
//! the server's own TLS certificate under a server CA (`server-ca.pem` is what clients
//! trust), the master key that device token secrets derive from, and the first admin key.

use std::{fs, path::Path};

use rand_core::{OsRng, RngCore};
use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};
use zeroize::Zeroizing;

use crate::config::Config;
pub use edgeward_pki::device_ca::{DeviceCa, IssuedDevice};

/// A failure to create or load the server's identity.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct IdentityError(pub String);

fn read(path: &Path) -> Result<String, IdentityError> {
    fs::read_to_string(path).map_err(|e| IdentityError(format!("{}: {e}", path.display())))
}

fn write(path: &Path, data: &[u8], secret: bool) -> Result<(), IdentityError> {
    edgeward_pki::store::write_atomic(path, data, secret)
        .map_err(|e| IdentityError(format!("{}: {e}", path.display())))
}

/// Everything the server needs to speak TLS and mint identities.
pub struct Identity {
    /// The device CA.
    pub device_ca: DeviceCa,
    /// The server CA certificate (PEM), what clients trust.
    pub server_ca_pem: String,
    /// The server certificate chain (leaf, server CA) and key, DER.
    pub server_chain: Vec<Vec<u8>>,
    /// The server key, PKCS#8 DER.
    pub server_key: Zeroizing<Vec<u8>>,
    /// Derives device secrets from the master key (only HKDF's extract output is kept).
    pub secrets: edgeward_proto::secret::Deriver,
}

/// Loads the identity from the (existing, locked) data directory, creating on the embedded
/// default whatever is missing: a development key hierarchy (`pki/`), the server CA and
/// certificate, and the master key.
pub fn load_or_create(config: &Config, now: OffsetDateTime) -> Result<Identity, IdentityError> {
    let file = |name: &str| config.data_dir.join(name);
    let device_ca = match (&config.device_ca_cert, &config.device_ca_key) {
        (Some(cert), Some(key)) => DeviceCa::load(cert, key).map_err(IdentityError)?,
        (None, None) => {
            let pki = file("pki");
            if !pki.join(edgeward_pki::files::DEVICE_CA_CERT).exists() {
                let mut pass = [0u8; 24];
                OsRng.fill_bytes(&mut pass);
                let pass = Zeroizing::new(hex::encode(pass));
                edgeward_pki::Hierarchy::init(
                    &pki,
                    "Edgeward Development",
                    pass.as_bytes(),
                    90,
                    edgeward_core::keys::KeyAlgorithm::P256,
                    now,
                )
                .map_err(|e| IdentityError(format!("creating the development PKI: {e}")))?;
                write(&file("pki-root-passphrase"), pass.as_bytes(), true)?;
            }
            DeviceCa::load(
                &pki.join(edgeward_pki::files::DEVICE_CA_CERT),
                &pki.join(edgeward_pki::files::DEVICE_CA_KEY),
            )
            .map_err(IdentityError)?
        }
        _ => {
            return Err(IdentityError(
                "device_ca_cert and device_ca_key go together".into(),
            ))
        }
    };

    let (ca_cert_path, ca_key_path) = (file("server-ca.pem"), file("server-ca.key"));
    if !ca_cert_path.exists() {
        let key = KeyPair::generate().map_err(|e| IdentityError(e.to_string()))?;
        let mut p = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "Edgeward Server CA");
        p.distinguished_name = dn;
        p.is_ca = IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        p.not_before = now - Duration::minutes(5);
        p.not_after = now + Duration::days(3650);
        p.serial_number = Some(edgeward_pki::issue::random_serial());
        let cert = p
            .self_signed(&key)
            .map_err(|e| IdentityError(e.to_string()))?;
        write(&ca_key_path, key.serialize_pem().as_bytes(), true)?;
        write(&ca_cert_path, cert.pem().as_bytes(), false)?;
    }
    let server_ca_pem = read(&ca_cert_path)?;
    let server_ca_key = KeyPair::from_pem(&Zeroizing::new(read(&ca_key_path)?))
        .map_err(|e| IdentityError(e.to_string()))?;
    let server_ca = Issuer::from_ca_cert_pem(&server_ca_pem, server_ca_key)
        .map_err(|e| IdentityError(e.to_string()))?;

    // The server leaf is re-issued at every start (short-lived, names from the config).
    let key = KeyPair::generate().map_err(|e| IdentityError(e.to_string()))?;
    let mut names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    names.extend(config.server_names.iter().cloned());
    let mut p = CertificateParams::new(names).map_err(|e| IdentityError(e.to_string()))?;
    p.distinguished_name = DistinguishedName::new();
    p.distinguished_name
        .push(DnType::CommonName, "edgeward-server");
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    p.not_before = now - Duration::minutes(5);
    p.not_after = now + Duration::days(30);
    p.use_authority_key_identifier_extension = true;
    let leaf = p
        .signed_by(&key, &server_ca)
        .map_err(|e| IdentityError(e.to_string()))?;
    let ca_der = edgeward_core::pem::parse_labelled(server_ca_pem.as_bytes(), "CERTIFICATE")
        .map_err(|e| IdentityError(e.to_string()))?
        .swap_remove(0);

    let master_path = config
        .master_key_file
        .clone()
        .unwrap_or_else(|| file("master.key"));
    if !master_path.exists() {
        let mut k = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(k.as_mut());
        write(&master_path, hex::encode(k.as_ref()).as_bytes(), true)?;
    }
    let master_hex = Zeroizing::new(read(&master_path)?);
    let master_key = Zeroizing::new(
        hex::decode(master_hex.trim())
            .map_err(|e| IdentityError(format!("{}: not hex ({e})", master_path.display())))?,
    );
    if master_key.len() < edgeward_proto::secret::MIN_MASTER_KEY_LEN {
        return Err(IdentityError(format!(
            "{}: the master key must have at least {} bytes",
            master_path.display(),
            edgeward_proto::secret::MIN_MASTER_KEY_LEN
        )));
    }
    Ok(Identity {
        device_ca,
        server_ca_pem,
        server_chain: vec![leaf.der().to_vec(), ca_der],
        server_key: Zeroizing::new(key.serialize_der()),
        secrets: edgeward_proto::secret::Deriver::new(&master_key),
    })
}
