//! Attestation: evidence of what booted — the register, the event log, the verifier's
//! nonce — signed by the device key inside the secure element and carrying the device
//! certificate chain; and the verifier (for the server) that checks the signature and chain,
//! the nonce, that the log replays to the register and that every measurement is one of the
//! signed release's reference values.
//!
//! The envelope is DSSE-like: the signature covers the pre-authentication encoding of the
//! claims' exact JSON bytes, so no canonical JSON is needed.

use base64::{engine::general_purpose::STANDARD as B64, Engine};
use edgeward_core::{
    bundle::Bundle,
    cert_policy::Policy,
    dsse::pae,
    keys::PublicKey,
    raw_signature,
    verify::{verify_bundle, Trust},
};
use edgeward_se::SecureElement;
use rustls_pki_types::{CertificateDer, UnixTime};
use serde::{Deserialize, Serialize};

use std::{io::Read, path::Path};

use edgeward_core::size_limits::MAX_BUNDLE_BYTES;

use crate::{
    chain::{StageFormat, StageSpec},
    measure::{hex_digest, BootLog, Event, Register, MAX_EVENTS},
    policy::{verify_policy_above, Floors},
    stage::{verify_stage, StageTrust},
    BootError,
};

/// The payload type the signature binds.
pub const EVIDENCE_PAYLOAD_TYPE: &str = "application/vnd.edgeward.attestation.v1+json";
/// The element's slot with the device key.
pub const DEVICE_KEY_SLOT: &str = "device";
/// The element's certificate slot with the device certificate.
pub const DEVICE_CERT_SLOT: &str = "device";
/// The element's certificate slot with the device CA certificate.
pub const DEVICE_CA_SLOT: &str = "device-ca";
/// Largest evidence accepted.
pub const MAX_EVIDENCE_BYTES: usize = 1024 * 1024;
/// Shortest nonce accepted (bytes).
pub const MIN_NONCE: usize = 16;
/// Longest nonce accepted (bytes).
pub const MAX_NONCE: usize = 64;

/// What the device claims.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claims {
    /// Format version (1).
    pub version: u32,
    /// The verifier's nonce, hex.
    pub nonce: String,
    /// The measurement register.
    #[serde(with = "hex_digest")]
    pub register: [u8; 32],
    /// The event log.
    pub events: Vec<Event>,
    /// The hardware class booted.
    pub hardware: String,
    /// The secure element's backend.
    pub backend: String,
    /// When the device booted (Unix seconds).
    pub booted_at: u64,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EvidenceJson {
    payload_type: String,
    payload: String,
    signature: String,
    certificates: Vec<String>,
}

/// Why evidence was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttestError {
    /// Not well-formed evidence.
    #[error("malformed evidence: {0}")]
    Malformed(String),
    /// The device certificate does not chain to the root.
    #[error("device certificate not trusted: {0}")]
    DeviceNotTrusted(String),
    /// The signature does not verify under the device certificate's key.
    #[error("evidence signature does not verify: {0}")]
    BadSignature(String),
    /// Signed by a device other than the expected one.
    #[error("evidence from another device: {0}")]
    WrongDevice(String),
    /// The nonce is not the one the verifier issued.
    #[error("stale or foreign nonce: {0}")]
    Nonce(String),
    /// The event log does not replay to the register.
    #[error("event log does not match the register: {0}")]
    LogMismatch(String),
    /// A measurement is not among the reference values.
    #[error("measurement not in the reference values: {0}")]
    UnknownMeasurement(String),
}

fn malformed(m: impl Into<String>) -> AttestError {
    AttestError::Malformed(m.into())
}

/// Checks a nonce's length.
pub fn check_nonce(nonce: &[u8]) -> Result<(), String> {
    if !(MIN_NONCE..=MAX_NONCE).contains(&nonce.len()) {
        return Err(format!(
            "a nonce has {MIN_NONCE} to {MAX_NONCE} bytes, not {}",
            nonce.len()
        ));
    }
    Ok(())
}

/// Produces evidence for the boot recorded in `log`, signed inside `se` by the key in
/// [`DEVICE_KEY_SLOT`], carrying the certificates of [`DEVICE_CERT_SLOT`] and
/// [`DEVICE_CA_SLOT`].
pub fn produce(se: &dyn SecureElement, log: &BootLog, nonce: &[u8]) -> Result<Vec<u8>, BootError> {
    let mut certificates = Vec::new();
    for slot in [DEVICE_CERT_SLOT, DEVICE_CA_SLOT] {
        match se.certificate(slot)? {
            Some(der) => certificates.push(der),
            None if slot == DEVICE_CERT_SLOT => {
                return Err(BootError::Provision(
                    "the secure element holds no device certificate".into(),
                ))
            }
            None => {}
        }
    }
    produce_with(se, DEVICE_KEY_SLOT, &certificates, log, nonce)
}

/// Produces evidence for the boot recorded in `log`, signed inside `se` by the key in
/// `key_slot` and carrying `certificates` (DER, the device certificate first): for a
/// device whose key lives in a slot of its own (the agent's `device-N`).
pub fn produce_with(
    se: &dyn SecureElement,
    key_slot: &str,
    certificates: &[Vec<u8>],
    log: &BootLog,
    nonce: &[u8],
) -> Result<Vec<u8>, BootError> {
    check_nonce(nonce).map_err(BootError::Provision)?;
    let claims = Claims {
        version: 1,
        nonce: hex::encode(nonce),
        register: log.register,
        events: log.events.clone(),
        hardware: log.hardware.clone(),
        backend: se.backend().to_string(),
        booted_at: log.booted_at,
    };
    let payload = serde_json::to_vec(&claims).map_err(|e| BootError::Malformed {
        what: "evidence claims",
        detail: e.to_string(),
    })?;
    let signature = se.sign(key_slot, &pae(EVIDENCE_PAYLOAD_TYPE, &payload))?;
    let json = EvidenceJson {
        payload_type: EVIDENCE_PAYLOAD_TYPE.into(),
        payload: B64.encode(&payload),
        signature: B64.encode(signature),
        certificates: certificates.iter().map(|c| B64.encode(c)).collect(),
    };
    serde_json::to_vec_pretty(&json).map_err(|e| BootError::Malformed {
        what: "evidence",
        detail: e.to_string(),
    })
}

/// The measurements a verifier accepts, stage by stage, in boot order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReferenceValues {
    stages: Vec<(String, Vec<[u8; 32]>)>,
}

impl ReferenceValues {
    /// No stages yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Accepts `digest` for `stage` (stages are expected in the order first added).
    pub fn allow(&mut self, stage: &str, digest: [u8; 32]) {
        match self.stages.iter_mut().find(|(s, _)| s == stage) {
            Some((_, d)) => d.push(digest),
            None => self.stages.push((stage.to_string(), vec![digest])),
        }
    }

    /// Accepts the stage a release's signature bundle is for, after verifying the bundle
    /// under `roots` (the measurement is the statement's root digest).
    pub fn allow_bundle(
        &mut self,
        bundle: &Bundle,
        roots: &[Vec<u8>],
        now: u64,
    ) -> Result<(), BootError> {
        let trust = Trust::Roots {
            roots,
            crls: &[],
            policy: Policy::default(),
        };
        let verified = verify_bundle(bundle, &trust, now)?;
        let stage = verified
            .statement
            .boot
            .stage
            .clone()
            .ok_or_else(|| BootError::Chain("the release bundle names no stage".into()))?;
        self.allow(&stage, verified.statement.manifest.root_digest());
        Ok(())
    }
}

impl ReferenceValues {
    /// The reference values a signed chain description stands for, as a verifier without a
    /// secure element (the server) takes them: the description at `chain_path` and its
    /// signature beside it are verified under `roots` at `now` (no element floors), then
    /// each stage's measurement is taken from signed data only: for a bundle stage the root
    /// digest of its signature bundle, verified under `roots` and the policy's CRL and
    /// signed for that stage and the policy's hardware class (the image itself is not
    /// needed); an MCUboot stage's image is verified as the device would. Returns the
    /// policy's hardware class with the values.
    pub fn from_policy(
        chain_path: &Path,
        roots: &[Vec<u8>],
        now: u64,
    ) -> Result<(String, ReferenceValues), BootError> {
        let policy = verify_policy_above(chain_path, roots, Floors::default(), now)
            .map_err(|f| BootError::Chain(format!("{}: {f}", chain_path.display())))?;
        let chain = &policy.chain;
        let trust = StageTrust {
            roots,
            crls: &policy.crls,
            now,
            hardware: &chain.hardware,
        };
        let mut reference = ReferenceValues::new();
        for spec in &chain.stages {
            let digest = match &spec.format {
                StageFormat::Bundle { signature } => bundle_measurement(spec, signature, &trust)?,
                StageFormat::Mcuboot { .. } => {
                    verify_stage(spec, &trust, 0)
                        .map_err(|f| BootError::Chain(format!("stage {:?}: {f}", spec.name)))?
                        .event
                        .digest
                }
            };
            reference.allow(&spec.name, digest);
        }
        Ok((chain.hardware.clone(), reference))
    }
}

/// The measurement of a bundle stage, from its signature bundle alone.
fn bundle_measurement(
    spec: &StageSpec,
    signature: &Path,
    trust: &StageTrust<'_>,
) -> Result<[u8; 32], BootError> {
    let bad = |m: String| BootError::Chain(format!("stage {:?}: {m}", spec.name));
    let mut bytes = Vec::new();
    std::fs::File::open(signature)
        .and_then(|f| f.take(MAX_BUNDLE_BYTES as u64 + 1).read_to_end(&mut bytes))
        .map_err(|e| BootError::io(signature, e))?;
    if bytes.len() > MAX_BUNDLE_BYTES {
        return Err(bad(format!(
            "{} is larger than {MAX_BUNDLE_BYTES} bytes",
            signature.display()
        )));
    }
    let bundle = Bundle::parse(&bytes).map_err(|e| bad(format!("{}: {e}", signature.display())))?;
    let verified = verify_bundle(
        &bundle,
        &Trust::Roots {
            roots: trust.roots,
            crls: trust.crls,
            policy: Policy::default(),
        },
        trust.now,
    )
    .map_err(|e| bad(format!("{}: {e}", signature.display())))?;
    let claims = &verified.statement.boot;
    if claims.stage.as_deref() != Some(spec.name.as_str()) {
        return Err(bad(format!(
            "the bundle is signed for stage {:?}",
            claims.stage
        )));
    }
    if claims.hardware.as_deref() != Some(trust.hardware) {
        return Err(bad(format!(
            "the bundle is signed for hardware {:?}, the policy is for {:?}",
            claims.hardware, trust.hardware
        )));
    }
    Ok(verified.statement.manifest.root_digest())
}

/// What the verifier expects.
#[derive(Debug, Clone, Copy)]
pub struct Expectations<'a> {
    /// The nonce the verifier issued for this request.
    pub nonce: &'a [u8],
    /// The root anchors (DER) the device certificate must chain to.
    pub roots: &'a [Vec<u8>],
    /// The release's reference values.
    pub reference: &'a ReferenceValues,
    /// The device's registered key, when the verifier knows which device is asking.
    pub device_key: Option<&'a PublicKey>,
    /// The verifier's time (Unix seconds).
    pub now: u64,
}

fn decode(field: &str, s: &str) -> Result<Vec<u8>, AttestError> {
    B64.decode(s)
        .map_err(|e| malformed(format!("{field}: {e}")))
}

/// The envelope of evidence and its decoded certificates (device first), bounded; nothing
/// verified yet.
fn open(bytes: &[u8]) -> Result<(EvidenceJson, Vec<Vec<u8>>), AttestError> {
    if bytes.len() > MAX_EVIDENCE_BYTES {
        return Err(malformed(format!("larger than {MAX_EVIDENCE_BYTES} bytes")));
    }
    let env: EvidenceJson = serde_json::from_slice(bytes).map_err(|e| malformed(e.to_string()))?;
    if env.payload_type != EVIDENCE_PAYLOAD_TYPE {
        return Err(malformed(format!("payload type {:?}", env.payload_type)));
    }
    if env.certificates.is_empty() || env.certificates.len() > 4 {
        return Err(malformed(format!(
            "{} certificates (1 to 4: device first)",
            env.certificates.len()
        )));
    }
    let certs: Vec<Vec<u8>> = env
        .certificates
        .iter()
        .map(|c| decode("certificate", c))
        .collect::<Result<_, _>>()?;
    Ok((env, certs))
}

/// What evidence claims, before anything is verified: the nonce it answers and the device
/// certificate it carries. A verifier serving many devices picks its expectations with
/// these (is this a nonce it issued to the calling device, is this the certificate it
/// enrolled) and then checks everything with [`verify_evidence`]; none of it is trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unverified {
    /// The nonce the claims answer.
    pub nonce: Vec<u8>,
    /// The device certificate (DER), the first of the evidence's certificates.
    pub device_certificate: Vec<u8>,
}

/// Reads [`Unverified`] from evidence, as bounded and total as [`verify_evidence`] but
/// checking no signature.
pub fn unverified(bytes: &[u8]) -> Result<Unverified, AttestError> {
    let (env, mut certs) = open(bytes)?;
    let payload = decode("payload", &env.payload)?;
    let claims: Claims =
        serde_json::from_slice(&payload).map_err(|e| malformed(format!("claims: {e}")))?;
    let nonce = hex::decode(&claims.nonce).map_err(|e| malformed(format!("nonce: {e}")))?;
    check_nonce(&nonce).map_err(malformed)?;
    Ok(Unverified {
        nonce,
        device_certificate: certs.swap_remove(0),
    })
}

/// Verifies evidence; returns the claims when every check passes.
pub fn verify_evidence(bytes: &[u8], exp: &Expectations<'_>) -> Result<Claims, AttestError> {
    let (env, certs) = open(bytes)?;
    let device_key = verify_device_chain(&certs, exp.roots, exp.now)?;
    if let Some(expected) = exp.device_key {
        if expected != &device_key {
            return Err(AttestError::WrongDevice(format!(
                "signed by device key {}, expected {}",
                device_key.fingerprint(),
                expected.fingerprint()
            )));
        }
    }
    let payload = decode("payload", &env.payload)?;
    let signature = decode("signature", &env.signature)?;
    raw_signature::verify_message(&device_key, &pae(&env.payload_type, &payload), &signature)
        .map_err(|e| {
            AttestError::BadSignature(format!("device key {}: {e}", device_key.fingerprint()))
        })?;
    let claims: Claims =
        serde_json::from_slice(&payload).map_err(|e| malformed(format!("claims: {e}")))?;
    if claims.version != 1 {
        return Err(malformed(format!("claims version {}", claims.version)));
    }
    if claims.nonce != hex::encode(exp.nonce) {
        return Err(AttestError::Nonce(format!(
            "the evidence answers nonce {}, this request's nonce is {}",
            claims.nonce,
            hex::encode(exp.nonce)
        )));
    }
    if claims.events.len() > MAX_EVENTS {
        return Err(malformed(format!("{} events", claims.events.len())));
    }
    let replayed = Register::replay(&claims.events);
    if replayed.0 != claims.register {
        return Err(AttestError::LogMismatch(format!(
            "the log replays to {}, the register is {}",
            replayed.to_hex(),
            hex::encode(claims.register)
        )));
    }
    check_reference(&claims.events, exp.reference)?;
    Ok(claims)
}

fn check_reference(events: &[Event], reference: &ReferenceValues) -> Result<(), AttestError> {
    for (i, (stage, digests)) in reference.stages.iter().enumerate() {
        let Some(e) = events.get(i) else {
            return Err(AttestError::UnknownMeasurement(format!(
                "stage {i} ({stage}) was not measured"
            )));
        };
        if &e.stage != stage || e.index != i {
            return Err(AttestError::UnknownMeasurement(format!(
                "event {i} is stage {:?} (index {}), the release expects {stage:?}",
                e.stage, e.index
            )));
        }
        if !digests.contains(&e.digest) {
            return Err(AttestError::UnknownMeasurement(format!(
                "stage {i} ({stage}) measured {}, which is not a signed release image",
                hex::encode(e.digest)
            )));
        }
    }
    if events.len() > reference.stages.len() {
        return Err(AttestError::UnknownMeasurement(format!(
            "{} stages measured, the release has {}",
            events.len(),
            reference.stages.len()
        )));
    }
    Ok(())
}

/// Checks the device certificate (first) chains to a root with the client-auth EKU at
/// `now`; returns its key.
fn verify_device_chain(
    certs: &[Vec<u8>],
    roots: &[Vec<u8>],
    now: u64,
) -> Result<PublicKey, AttestError> {
    let untrusted = |m: String| AttestError::DeviceNotTrusted(m);
    let leaf = &certs[0];
    let key = PublicKey::from_certificate_der(leaf).map_err(|e| untrusted(e.to_string()))?;
    let root_ders: Vec<CertificateDer<'_>> = roots
        .iter()
        .map(|r| CertificateDer::from(r.as_slice()))
        .collect();
    let anchors = root_ders
        .iter()
        .map(|r| webpki::anchor_from_trusted_cert(r).map_err(|e| untrusted(format!("root: {e:?}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let intermediates: Vec<CertificateDer<'_>> = certs[1..]
        .iter()
        .map(|c| CertificateDer::from(c.as_slice()))
        .collect();
    let leaf_der = CertificateDer::from(leaf.as_slice());
    let ee = webpki::EndEntityCert::try_from(&leaf_der).map_err(|e| untrusted(format!("{e:?}")))?;
    ee.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &anchors,
        &intermediates,
        UnixTime::since_unix_epoch(std::time::Duration::from_secs(now)),
        webpki::KeyUsage::client_auth(),
        None,
        None,
    )
    .map_err(|e| untrusted(format!("{e:?} (device key {})", key.fingerprint())))?;
    Ok(key)
}
