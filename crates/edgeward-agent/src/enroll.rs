//! Enrollment and the identity it leaves behind. The device key is generated inside the
//! secure element (in a fresh slot each time: `device-N`, N from a counter of the element
//! that never goes down, so a re-provisioned device never reuses a key), the CSR is signed
//! by the element, and the one-time token goes with it to the enrollment listener. What the
//! server answers is kept in the state directory: the certificate in `identity.json`, the
//! device token secret sealed by the element in `secret.sealed` (unreadable once the
//! element is wiped).

use std::{path::Path, sync::Arc};

use edgeward_core::keys::PublicKey;
use edgeward_se::{KeyAlgorithm, SecureElement};
use rustls_pki_types::{pem::PemObject, CertificateDer};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::{files, AgentError};

/// The element counter numbering device key slots.
pub const KEY_GENERATION_COUNTER: &str = "agent.key-generation";
const IDENTITY_FILE: &str = "identity.json";
const SECRET_FILE: &str = "secret.sealed";
const MAX_IDENTITY: u64 = 64 * 1024;

/// What the agent keeps about its enrolled identity (`identity.json`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct StoredIdentity {
    /// The device id (the certificate's common name).
    pub device_id: String,
    /// The element slot holding the device key.
    pub key_slot: String,
    /// The device certificate (PEM).
    pub certificate: String,
    /// The device CA certificate (PEM).
    pub device_ca: String,
    /// The server's command-signing public key (SPKI PEM), pinned at enrollment.
    pub command_key: String,
}

/// An enrolled identity, ready for mutual TLS.
pub struct Identity {
    /// What is stored on disk.
    pub stored: StoredIdentity,
    /// The device certificate, DER.
    pub certificate_der: CertificateDer<'static>,
    /// The device token secret (unsealed from the element; zeroized on drop).
    pub secret: Zeroizing<String>,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("device_id", &self.stored.device_id)
            .field("key_slot", &self.stored.key_slot)
            .finish_non_exhaustive()
    }
}

fn certificate_der(pem: &str) -> Result<CertificateDer<'static>, AgentError> {
    CertificateDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| AgentError::Protocol(format!("device certificate PEM: {e}")))
}

/// Loads the enrolled identity from `state_dir`, or `None` when the device is not enrolled.
pub fn load(state_dir: &Path, element: &dyn SecureElement) -> Result<Option<Identity>, AgentError> {
    let path = state_dir.join(IDENTITY_FILE);
    let Some(bytes) = files::read_bounded(&path, MAX_IDENTITY)? else {
        return Ok(None);
    };
    let stored: StoredIdentity = serde_json::from_slice(&bytes)
        .map_err(|e| AgentError::Protocol(format!("{}: {e}", path.display())))?;
    let sealed_path = state_dir.join(SECRET_FILE);
    let sealed = files::read_bounded(&sealed_path, 8192)?
        .ok_or_else(|| AgentError::Protocol(format!("{} is missing", sealed_path.display())))?;
    let secret = element.unseal(&sealed)?;
    let secret = Zeroizing::new(
        String::from_utf8(secret.to_vec())
            .map_err(|_| AgentError::Protocol("the sealed token secret is not UTF-8".into()))?,
    );
    Ok(Some(Identity {
        certificate_der: certificate_der(&stored.certificate)?,
        stored,
        secret,
    }))
}

/// Forgets the enrolled identity (after a wipe, or before a re-provisioning completes).
pub fn forget(state_dir: &Path) -> Result<(), AgentError> {
    files::remove(&state_dir.join(SECRET_FILE))?;
    files::remove(&state_dir.join(IDENTITY_FILE))
}

/// A CSR signer whose private key is a slot of the element.
struct ElementKey {
    element: Arc<dyn SecureElement>,
    slot: String,
    raw_public: Vec<u8>,
    algorithm: &'static rcgen::SignatureAlgorithm,
}

impl rcgen::PublicKeyData for ElementKey {
    fn der_bytes(&self) -> &[u8] {
        &self.raw_public
    }
    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        self.algorithm
    }
}

impl rcgen::SigningKey for ElementKey {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        self.element
            .sign(&self.slot, msg)
            .map_err(|_| rcgen::Error::RemoteKeyError)
    }
}

/// The raw public key rcgen wants (SEC1 point or Ed25519 bytes): the tail of the SPKI.
fn raw_public(
    key: &PublicKey,
) -> Result<(Vec<u8>, &'static rcgen::SignatureAlgorithm), AgentError> {
    let spki = key.to_spki_der();
    let (len, alg) = match key {
        PublicKey::P256(_) => (65, &rcgen::PKCS_ECDSA_P256_SHA256),
        PublicKey::Ed25519(_) => (32, &rcgen::PKCS_ED25519),
        other => {
            return Err(AgentError::Protocol(format!(
                "device keys are P-256 or Ed25519, not {}",
                other.algorithm()
            )))
        }
    };
    let start = spki
        .len()
        .checked_sub(len)
        .ok_or_else(|| AgentError::Protocol("public key encoding too short".into()))?;
    Ok((spki[start..].to_vec(), alg))
}

/// Generates a fresh device key in the element and returns its slot and a PEM CSR signed
/// inside the element.
pub fn new_key_and_csr(element: &Arc<dyn SecureElement>) -> Result<(String, String), AgentError> {
    let generation = element.increment_counter(KEY_GENERATION_COUNTER)?;
    let slot = format!("device-{generation}");
    let public = element.generate_key(&slot, KeyAlgorithm::P256)?;
    let (raw, algorithm) = raw_public(&public)?;
    let key = ElementKey {
        element: Arc::clone(element),
        slot: slot.clone(),
        raw_public: raw,
        algorithm,
    };
    let csr = rcgen::CertificateParams::new(Vec::<String>::new())
        .and_then(|p| p.serialize_request(&key))
        .and_then(|c| c.pem())
        .map_err(|e| AgentError::Protocol(format!("CSR: {e}")))?;
    Ok((slot, csr))
}

/// The enrollment listener's answer.
#[derive(Deserialize)]
struct Answer {
    device_id: String,
    certificate: String,
    device_ca: String,
    secret: String,
    command_key: String,
}

/// A key made for enrollment and its CSR, kept across attempts so that a server that is
/// away for a while does not cost a key slot per retry.
#[derive(Debug, Clone)]
pub struct Request {
    /// The element slot of the new key.
    pub slot: String,
    /// The PEM CSR signed by that key.
    pub csr: String,
}

impl Request {
    /// A fresh key in `element` and its CSR.
    pub fn new(element: &Arc<dyn SecureElement>) -> Result<Self, AgentError> {
        let (slot, csr) = new_key_and_csr(element)?;
        Ok(Request { slot, csr })
    }
}

/// Enrolls `request`'s key with the one-time `token`; checks that the issued certificate is
/// for that key, then stores the identity in `state_dir`.
pub async fn enroll(
    enroll_server: &str,
    server_ca: &Path,
    state_dir: &Path,
    element: &Arc<dyn SecureElement>,
    request: &Request,
    token: &str,
) -> Result<Identity, AgentError> {
    let (slot, csr) = (request.slot.clone(), &request.csr);
    let client = crate::net::enrollment_client(server_ca)?;
    let body = serde_json::to_vec(&serde_json::json!({ "token": token.trim(), "csr": csr }))
        .map_err(|e| AgentError::Protocol(e.to_string()))?;
    let url = format!("{}/v1/enroll", enroll_server.trim_end_matches('/'));
    let response = client
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .map_err(|e| crate::net::unreachable("enrollment", e))?;
    let bytes = crate::net::read("enrollment", response).await?;
    let answer: Answer = serde_json::from_slice(&bytes)
        .map_err(|e| AgentError::Protocol(format!("enrollment answer: {e}")))?;
    let secret = Zeroizing::new(answer.secret);
    let der = certificate_der(&answer.certificate)?;
    let issued_for = PublicKey::from_certificate_der(&der)
        .map_err(|e| AgentError::Protocol(format!("issued certificate: {e}")))?;
    if issued_for.to_spki_der() != element.public_key(&slot)?.to_spki_der() {
        return Err(AgentError::Protocol(
            "the issued certificate is not for the key in the element".into(),
        ));
    }
    crate::commands::verify::parse_command_key(&answer.command_key)?;
    let stored = StoredIdentity {
        device_id: answer.device_id,
        key_slot: slot,
        certificate: answer.certificate,
        device_ca: answer.device_ca,
        command_key: answer.command_key,
    };
    files::ensure_private_dir(state_dir)?;
    files::write_atomic(
        &state_dir.join(SECRET_FILE),
        &element.seal(secret.as_bytes())?,
        true,
    )?;
    let json =
        serde_json::to_vec_pretty(&stored).map_err(|e| AgentError::Protocol(e.to_string()))?;
    files::write_atomic(&state_dir.join(IDENTITY_FILE), &json, false)?;
    Ok(Identity {
        stored,
        certificate_der: der,
        secret,
    })
}
