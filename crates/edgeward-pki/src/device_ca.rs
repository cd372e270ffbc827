//! The device CA at work: issuing a device identity certificate from a CSR at enrollment
//! (the CSR's self-signature must verify, its key must be P-256 or Ed25519, the subject is
//! set by the CA, never taken from the CSR) and signing the device CRL.

use std::path::Path;

use rcgen::{
    CertificateParams, CertificateSigningRequestParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use time::{Duration, OffsetDateTime};
use zeroize::Zeroizing;

/// Longest CSR accepted, in bytes.
pub const MAX_CSR_BYTES: usize = 16 * 1024;

/// The device CA: issues device certificates and signs the device CRL.
pub struct DeviceCa {
    /// The CA certificate, PEM.
    pub cert_pem: String,
    /// The CA certificate, DER (the trust anchor of the device listener).
    pub cert_der: Vec<u8>,
    issuer: Issuer<'static, KeyPair>,
}

/// A certificate issued to a device.
pub struct IssuedDevice {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// Its serial, lowercase hex.
    pub serial: String,
}

impl DeviceCa {
    /// Loads a device CA from its certificate and (unencrypted PKCS#8) key files.
    pub fn load(cert: &Path, key: &Path) -> Result<Self, String> {
        let cert_pem =
            std::fs::read_to_string(cert).map_err(|e| format!("{}: {e}", cert.display()))?;
        let key_pem = Zeroizing::new(
            std::fs::read_to_string(key).map_err(|e| format!("{}: {e}", key.display()))?,
        );
        Self::from_pem(&cert_pem, &key_pem)
            .map_err(|e| format!("{} / {}: {e}", cert.display(), key.display()))
    }

    /// A device CA from its certificate and key PEM.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, String> {
        let key = KeyPair::from_pem(key_pem).map_err(|e| e.to_string())?;
        let issuer = Issuer::from_ca_cert_pem(cert_pem, key).map_err(|e| e.to_string())?;
        let cert_der = edgeward_core::pem::parse_labelled(cert_pem.as_bytes(), "CERTIFICATE")
            .map_err(|e| e.to_string())?
            .swap_remove(0);
        Ok(DeviceCa {
            cert_pem: cert_pem.to_string(),
            cert_der,
            issuer,
        })
    }

    /// Issues a client certificate for `device_id` to the key of `csr_pem` (whose
    /// self-signature must verify). Only P-256 and Ed25519 device keys are accepted.
    pub fn issue(
        &self,
        csr_pem: &str,
        device_id: &str,
        days: i64,
        now: OffsetDateTime,
    ) -> Result<IssuedDevice, String> {
        if csr_pem.len() > MAX_CSR_BYTES {
            return Err("the CSR is larger than 16 KiB".into());
        }
        let csr = CertificateSigningRequestParams::from_pem(csr_pem).map_err(|e| {
            format!("the CSR does not parse or its signature does not verify ({e})")
        })?;
        let alg = csr.public_key.algorithm();
        if alg != &rcgen::PKCS_ECDSA_P256_SHA256 && alg != &rcgen::PKCS_ED25519 {
            return Err("the CSR's key must be ECDSA P-256 or Ed25519".into());
        }
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, device_id);
        params.distinguished_name = dn;
        params.subject_alt_names = vec![SanType::DnsName(
            device_id
                .to_ascii_lowercase()
                .try_into()
                .map_err(|_| "the device id is not usable as a DNS name".to_string())?,
        )];
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.not_before = now - Duration::minutes(5);
        params.not_after = now + Duration::days(days);
        let serial = crate::issue::random_serial();
        let serial_hex = hex::encode(serial.to_bytes());
        params.serial_number = Some(serial);
        params.use_authority_key_identifier_extension = true;
        let cert = params
            .signed_by(&csr.public_key, &self.issuer)
            .map_err(|e| format!("issuing the certificate: {e}"))?;
        Ok(IssuedDevice {
            cert_pem: cert.pem(),
            serial: serial_hex,
        })
    }

    /// Issues a client certificate named `name` to `key` for one of the fleet's own services
    /// (the server's MQTT client, whose name the broker's ACL grants the service's rights):
    /// callers pick a `name` no device id can be, so no device ever holds it. DER.
    pub fn issue_service(
        &self,
        name: &str,
        key: &KeyPair,
        days: i64,
        now: OffsetDateTime,
    ) -> Result<Vec<u8>, String> {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name);
        params.distinguished_name = dn;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.not_before = now - Duration::minutes(5);
        params.not_after = now + Duration::days(days);
        params.serial_number = Some(crate::issue::random_serial());
        params.use_authority_key_identifier_extension = true;
        let cert = params
            .signed_by(key, &self.issuer)
            .map_err(|e| format!("issuing the {name} certificate: {e}"))?;
        Ok(cert.der().to_vec())
    }

    /// A CRL of the device CA listing `serials` (hex), as PEM.
    pub fn crl(
        &self,
        serials: &[String],
        number: u64,
        now: OffsetDateTime,
    ) -> Result<String, String> {
        let revoked = serials
            .iter()
            .filter_map(|s| hex::decode(s).ok())
            .map(|bytes| rcgen::RevokedCertParams {
                serial_number: rcgen::SerialNumber::from_slice(&bytes),
                revocation_time: now,
                reason_code: None,
                invalidity_date: None,
            })
            .collect();
        rcgen::CertificateRevocationListParams {
            this_update: now,
            next_update: now + Duration::days(7),
            crl_number: rcgen::SerialNumber::from(number),
            issuing_distribution_point: None,
            revoked_certs: revoked,
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        }
        .signed_by(&self.issuer)
        .and_then(|c| c.pem())
        .map_err(|e| e.to_string())
    }
}
