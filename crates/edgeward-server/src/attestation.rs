//! Verified attestation on the device API. Evidence (what `edgeward-agent attest` prints:
//! the boot's event log and register, signed inside the device's secure element) is only
//! worth something when it answers a fresh question from the server and is checked against
//! what may boot. So:
//!
//! - `POST /v1/device/attestation/nonce` issues a nonce bound to the calling device and to
//!   the time: `issued_at ‖ random ‖ HMAC(key, device ‖ issued_at ‖ random)`, the key
//!   derived from the master key, so every replica can check it and no device can mint one.
//!   It is valid for `nonce_ttl_secs` and may be used once (the shared nonce store).
//! - `POST /v1/device/attestation` takes the evidence and verifies it with the boot crate's
//!   verifier: its device certificate must chain to the device CA and be the certificate
//!   this device enrolled with (its current serial in the registry), the signature must be
//!   that key's, the nonce one issued to this device, unexpired and unused, the event log
//!   must replay to the register, and every measurement must be a reference value of the
//!   signed boot policy (`chain.toml` + `chain.toml.sig`, verified under the root at start)
//!   for the device's hardware class.
//!
//! Every outcome is audited: `attestation.verified`, or `attestation.failed` with what failed
//! (the security event detection consumes), and counted in
//! `edgeward_attestations_total{outcome}`.

use std::{collections::BTreeMap, path::PathBuf};

use axum::{extract::State, http::StatusCode, Json};
use edgeward_boot::attest::{self, AttestError, Expectations, ReferenceValues};
use hmac::{Hmac, Mac};
use rand_core::{OsRng, RngCore};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::{
    app::{ApiError, Shared},
    config::Config,
    device_api::Gated,
    identity::Identity,
};

/// The `[attestation]` table of the configuration.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct AttestationConfig {
    /// Signed chain descriptions (`chain.toml`, each with its `chain.toml.sig` beside it and
    /// its stages' signature bundles where it names them), one per hardware class: their
    /// stages are the reference measurements. None: every attestation is refused.
    pub policies: Vec<PathBuf>,
    /// The root certificate(s) (PEM) the policies are signed under; default: the
    /// development PKI's `pki/root.pem` in the data directory.
    pub roots: Option<PathBuf>,
    /// Seconds an issued nonce stays valid.
    pub nonce_ttl_secs: u64,
}

impl Default for AttestationConfig {
    fn default() -> Self {
        AttestationConfig {
            policies: Vec::new(),
            roots: None,
            nonce_ttl_secs: 120,
        }
    }
}

/// Length of a nonce: issued-at (8), random (8), MAC (32).
pub const NONCE_LEN: usize = 48;
/// What the nonce MAC's input starts with (domain separation from device tokens).
const NONCE_DOMAIN: &[u8] = b"edgeward attestation nonce v1\0";
/// The label the nonce key is derived under: no device id can contain a NUL.
const NONCE_KEY_LABEL: &str = "\0attestation-nonce";

/// Why evidence was refused; each is its own error code on the wire.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// The evidence verifier refused it.
    #[error(transparent)]
    Evidence(#[from] AttestError),
    /// The nonce was used before.
    #[error("the nonce was used before (replay)")]
    Replayed,
    /// The device's hardware class has no signed boot policy here.
    #[error(
        "no signed boot policy for hardware class {0:?}: nothing to compare measurements with"
    )]
    NoReference(String),
    /// The claims name a hardware class other than the device's.
    #[error(
        "the evidence is for hardware {claimed:?}, the device is registered as {registered:?}"
    )]
    WrongHardware {
        /// What the evidence says.
        claimed: String,
        /// What the registry says.
        registered: String,
    },
}

impl Refusal {
    /// The error code the API answers with.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::Evidence(e) => match e {
                AttestError::Malformed(_) => "attestation_malformed",
                AttestError::DeviceNotTrusted(_) => "attestation_device_not_trusted",
                AttestError::BadSignature(_) => "attestation_bad_signature",
                AttestError::WrongDevice(_) => "attestation_wrong_device",
                AttestError::Nonce(_) => "attestation_bad_nonce",
                AttestError::LogMismatch(_) => "attestation_log_mismatch",
                AttestError::UnknownMeasurement(_) => "attestation_unknown_measurement",
            },
            Refusal::Replayed => "attestation_replayed_nonce",
            Refusal::NoReference(_) => "attestation_no_reference",
            Refusal::WrongHardware { .. } => "attestation_wrong_hardware",
        }
    }

    fn into_api(self) -> ApiError {
        let status = match &self {
            Refusal::Evidence(AttestError::Malformed(_)) => StatusCode::BAD_REQUEST,
            _ => StatusCode::FORBIDDEN,
        };
        ApiError::new(status, self.code(), self.to_string())
    }
}

/// What the server verifies evidence with, loaded at start.
pub struct Verifier {
    /// The device CA certificate (DER): the anchor device certificates must chain to.
    device_ca: Vec<Vec<u8>>,
    /// Reference measurements by hardware class.
    reference: BTreeMap<String, ReferenceValues>,
    /// The nonce MAC key.
    nonce_key: Zeroizing<String>,
    /// Seconds a nonce stays valid.
    ttl_secs: u64,
}

impl Verifier {
    /// Loads the signed boot policies of `config` (each verified under the roots at `now`)
    /// and derives the nonce key from `identity`'s master key.
    pub fn load(config: &Config, identity: &Identity, now: u64) -> Result<Self, String> {
        let a = &config.attestation;
        let mut reference = BTreeMap::new();
        if !a.policies.is_empty() {
            let roots_path = a.roots.clone().unwrap_or_else(|| {
                config
                    .data_dir
                    .join("pki")
                    .join(edgeward_pki::files::ROOT_CERT)
            });
            let pem = std::fs::read(&roots_path)
                .map_err(|e| format!("attestation roots {}: {e}", roots_path.display()))?;
            let roots = edgeward_core::pem::parse_labelled(&pem, "CERTIFICATE")
                .map_err(|e| format!("attestation roots {}: {e}", roots_path.display()))?;
            for path in &a.policies {
                let (hardware, values) = ReferenceValues::from_policy(path, &roots, now)
                    .map_err(|e| format!("attestation policy: {e}"))?;
                if reference.insert(hardware.clone(), values).is_some() {
                    return Err(format!(
                        "attestation policy {}: a second policy for hardware class {hardware:?}",
                        path.display()
                    ));
                }
            }
        }
        Ok(Verifier {
            device_ca: vec![identity.device_ca.cert_der.clone()],
            reference,
            nonce_key: identity.secrets.derive(NONCE_KEY_LABEL),
            ttl_secs: a.nonce_ttl_secs.max(1),
        })
    }

    /// The MAC over a nonce's head (issued-at and random) for `device`.
    fn mac(&self, device: &str, head: &[u8]) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256>>::new_from_slice(self.nonce_key.as_bytes())
            .expect("HMAC takes keys of any length");
        mac.update(NONCE_DOMAIN);
        mac.update(device.as_bytes());
        mac.update(&[0]);
        mac.update(head);
        mac
    }

    /// A fresh nonce for `device` at `now` (Unix seconds).
    pub fn issue(&self, device: &str, now: u64) -> [u8; NONCE_LEN] {
        let mut nonce = [0u8; NONCE_LEN];
        nonce[..8].copy_from_slice(&now.to_be_bytes());
        OsRng.fill_bytes(&mut nonce[8..16]);
        let mac = self.mac(device, &nonce[..16]).finalize().into_bytes();
        nonce[16..].copy_from_slice(&mac);
        nonce
    }

    /// Checks that `nonce` was issued to `device` by a server with this master key and is
    /// still valid at `now` (whether it was used is the nonce store's to say).
    pub fn check_nonce(&self, device: &str, nonce: &[u8], now: u64) -> Result<(), AttestError> {
        let foreign = || {
            AttestError::Nonce(format!(
                "nonce {} was not issued to device {device} by this server",
                hex::encode(nonce)
            ))
        };
        if nonce.len() != NONCE_LEN {
            return Err(foreign());
        }
        // Compared in constant time.
        self.mac(device, &nonce[..16])
            .verify_slice(&nonce[16..])
            .map_err(|_| foreign())?;
        let mut at = [0u8; 8];
        at.copy_from_slice(&nonce[..8]);
        let issued = u64::from_be_bytes(at);
        if issued > now.saturating_add(5) || now - issued.min(now) > self.ttl_secs {
            return Err(AttestError::Nonce(format!(
                "the nonce was issued at {issued}, it is now {now}: nonces are valid for {} s",
                self.ttl_secs
            )));
        }
        Ok(())
    }

    /// Verifies `evidence` from `device` (registered with `hardware_class` and enrolled with
    /// the certificate of serial `cert_serial`) at `now`. The nonce's single use is checked
    /// by the caller (it needs the shared store), after this accepted its form.
    pub fn verify(
        &self,
        device: &str,
        hardware_class: &str,
        cert_serial: Option<&str>,
        evidence: &[u8],
        now: u64,
    ) -> Result<(Vec<u8>, attest::Claims), Refusal> {
        let claimed = attest::unverified(evidence)?;
        self.check_nonce(device, &claimed.nonce, now)?;
        let serial = crate::tls::serial_of(&claimed.device_certificate);
        if serial.is_none() || serial.as_deref() != cert_serial {
            return Err(AttestError::WrongDevice(format!(
                "the evidence carries certificate serial {}, device {device} is enrolled with {}",
                serial.as_deref().unwrap_or("(unreadable)"),
                cert_serial.unwrap_or("none")
            ))
            .into());
        }
        let reference = self
            .reference
            .get(hardware_class)
            .ok_or_else(|| Refusal::NoReference(hardware_class.to_string()))?;
        let claims = attest::verify_evidence(
            evidence,
            &Expectations {
                nonce: &claimed.nonce,
                roots: &self.device_ca,
                reference,
                device_key: None,
                now,
            },
        )?;
        if claims.hardware != hardware_class {
            return Err(Refusal::WrongHardware {
                claimed: claims.hardware,
                registered: hardware_class.to_string(),
            });
        }
        Ok((claimed.nonce, claims))
    }
}

/// `POST /v1/device/attestation/nonce`: a nonce for the calling device.
pub async fn nonce(State(app): State<Shared>, call: Gated) -> Json<Value> {
    let now = app.clock.now_secs();
    let nonce = app.attestation.issue(&call.device, now);
    Json(json!({
        "nonce": hex::encode(nonce),
        "expires_at": now.saturating_add(app.attestation.ttl_secs),
    }))
}

/// `POST /v1/device/attestation`: verifies the evidence, records and audits the outcome.
pub async fn submit(State(app): State<Shared>, call: Gated) -> Result<Json<Value>, ApiError> {
    let dev = call.device.clone();
    let device = app
        .registry
        .device(&app.db, &dev)
        .await?
        .ok_or_else(|| ApiError::forbidden("unknown_device", "the device is not registered"))?;
    let now = app.clock.now_secs();
    let sha = hex::encode(edgeward_core::sha256(&call.body));
    let outcome = match app.attestation.verify(
        &dev,
        &device.hardware_class,
        device.cert_serial.as_deref(),
        &call.body,
        now,
    ) {
        Ok((nonce, claims)) => {
            let key = format!("attest:{dev}:{}", hex::encode(&nonce[..16]));
            let ttl = app.attestation.ttl_secs.saturating_mul(2);
            match app.store.first_use(&key, ttl, app.clock.now_ns()).await {
                Ok(true) => Ok(claims),
                Ok(false) => Err(Refusal::Replayed),
                Err(e) => return Err(ApiError::unavailable(e)),
            }
        }
        Err(refusal) => Err(refusal),
    };
    let actor = format!("device:{dev}");
    match outcome {
        Ok(claims) => {
            let register = hex::encode(claims.register);
            let record = json!({
                "verified": true,
                "register": register,
                "hardware": claims.hardware,
                "backend": claims.backend,
                "booted_at": claims.booted_at,
                "stages": claims.events.iter().map(|e| &e.stage).collect::<Vec<_>>(),
            });
            let id = app
                .db
                .insert_upload(&dev, "attestation", &sha, &record.to_string(), app.now())
                .await?;
            app.metrics
                .inc("edgeward_attestations_total", "outcome=\"verified\"".into());
            app.audit(
                &actor,
                "attestation.verified",
                Some(&dev),
                &format!("evidence sha256 {sha}, register {register}"),
            )
            .await;
            Ok(Json(
                json!({ "id": id, "sha256": sha, "verified": true, "register": register }),
            ))
        }
        Err(refusal) => {
            // A missing policy is the server's gap, not the device's failure.
            if !matches!(refusal, Refusal::NoReference(_)) {
                crate::detection::on_refusal(
                    &app,
                    &dev,
                    crate::detection::Refusal::AttestationFailed,
                )
                .await;
            }
            app.metrics.inc(
                "edgeward_attestations_total",
                format!("outcome=\"{}\"", refusal.code()),
            );
            app.audit(
                &actor,
                "attestation.failed",
                Some(&dev),
                &format!("{}: {refusal} (evidence sha256 {sha})", refusal.code()),
            )
            .await;
            Err(refusal.into_api())
        }
    }
}
