//! Running the chain: the root anchor from the secure element, then each stage verified,
//! measured and logged in order. The first failure stops everything — later stages are
//! never opened — and becomes a [`RecoveryRecord`]. Counters are not raised here: that is
//! [`confirm`]'s job, once the booted images are known good.

use std::path::Path;

use edgeward_core::{pem, size_limits::MAX_CRL_BYTES};
use edgeward_se::{SeError, SecureElement};

use crate::{
    chain::counter_name,
    measure::{BootLog, Register},
    policy::{confirm_policy, verify_policy},
    recovery::{FailedStage, RecoveryRecord},
    stage::{verify_stage, StageTrust},
    BootError, FailureKind,
};

/// The element's certificate slot holding the root anchor (the root CA certificate).
pub const ROOT_SLOT: &str = "root";

/// The PCR [`boot_chain`] extends each stage digest into on elements with PCRs (the TPM):
/// 16, the debug PCR, which firmware leaves to software.
pub const DEFAULT_PCR: u8 = 16;

/// How to boot.
#[derive(Default)]
pub struct BootOptions<'a> {
    /// The device clock (Unix seconds); the element's time floor is used when later.
    pub now: u64,
    /// The device's hardware class; the chain's must equal it. `None` trusts the chain's.
    pub hardware: Option<&'a str>,
    /// Called with a stage's index just before any of its files is opened (tests use it to
    /// prove that later stages are never touched).
    pub before_stage: Option<&'a dyn Fn(usize)>,
}

fn se_failure(e: SeError, at: u64) -> Box<RecoveryRecord> {
    let kind = match e {
        SeError::Wiped => FailureKind::NotProvisioned,
        _ => FailureKind::SecureElement,
    };
    Box::new(RecoveryRecord::before_chain(
        kind,
        format!("secure element: {e}"),
        at,
    ))
}

/// The root anchor stored in the element.
pub fn root_anchor(se: &dyn SecureElement) -> Result<Vec<u8>, Box<RecoveryRecord>> {
    match se.certificate(ROOT_SLOT) {
        Ok(Some(der)) => Ok(der),
        Ok(None) => Err(Box::new(RecoveryRecord::before_chain(
            FailureKind::NotProvisioned,
            "the secure element holds no root anchor: it was never provisioned or was wiped (tamper); re-provision it",
            0,
        ))),
        Err(e) => Err(se_failure(e, 0)),
    }
}

/// Boots the chain described at `chain_path` on `se`, extending each stage digest into
/// [`DEFAULT_PCR`] too when the element has PCRs (see [`boot_chain_with_pcr`]).
pub fn boot_chain(
    chain_path: &Path,
    se: &dyn SecureElement,
    options: &BootOptions<'_>,
) -> Result<BootLog, Box<RecoveryRecord>> {
    boot_chain_with_pcr(chain_path, se, options, Some(DEFAULT_PCR))
}

/// Boots the chain described at `chain_path` on `se`. With `pcr`, each verified stage's
/// digest is also extended into that PCR of the element (`SecureElement::extend_pcr`), so on
/// a TPM the measurement lives in a real PCR a quote can report; elements without PCRs
/// (`SeError::Unsupported`) keep only the software register. Any other PCR error stops the
/// boot: a measurement that could not be recorded must not be skipped silently.
pub fn boot_chain_with_pcr(
    chain_path: &Path,
    se: &dyn SecureElement,
    options: &BootOptions<'_>,
    pcr: Option<u8>,
) -> Result<BootLog, Box<RecoveryRecord>> {
    let root = root_anchor(se)?;
    let floor = se.time_floor().map_err(|e| se_failure(e, options.now))?;
    let now = options.now.max(floor);
    let early = |kind: FailureKind, message: String| {
        Box::new(RecoveryRecord::before_chain(kind, message, now))
    };
    let roots = [root];
    // The policy (stages, hardware class, CRL) is itself signed and floored in the element:
    // nothing below is taken from an unverified description.
    let policy =
        verify_policy(chain_path, &roots, se, now).map_err(|f| early(f.kind, f.message))?;
    let chain = &policy.chain;
    let hardware = options.hardware.unwrap_or(&chain.hardware);
    if hardware != chain.hardware {
        return Err(early(
            FailureKind::WrongHardware,
            format!(
                "the chain is for hardware {:?}, this device is {hardware:?}",
                chain.hardware
            ),
        ));
    }
    let trust = StageTrust {
        roots: &roots,
        crls: &policy.crls,
        now,
        hardware,
    };
    let mut register = Register::default();
    let mut events = Vec::with_capacity(chain.stages.len());
    let mut newest_signature = policy.signed_at.unwrap_or(0);
    for spec in &chain.stages {
        if let Some(hook) = options.before_stage {
            hook(spec.index);
        }
        let stop = |kind: FailureKind, message: String, register: &Register, measured: usize| {
            Box::new(RecoveryRecord {
                recovery: true,
                stage: Some(FailedStage {
                    index: spec.index,
                    name: spec.name.clone(),
                    image: spec.image.display().to_string(),
                }),
                reason: kind,
                message,
                measured,
                register: register.to_hex(),
                at: now,
            })
        };
        let counter_floor = se.counter(&spec.counter_name()).map_err(|e| {
            stop(
                FailureKind::SecureElement,
                format!("secure element: {e}"),
                &register,
                events.len(),
            )
        })?;
        let verified = verify_stage(spec, &trust, counter_floor)
            .map_err(|f| stop(f.kind, f.message, &register, events.len()))?;
        if let Some(pcr) = pcr {
            match se.extend_pcr(pcr, &verified.event.digest) {
                Ok(_) | Err(SeError::Unsupported { .. }) => {}
                Err(e) => {
                    return Err(stop(
                        FailureKind::SecureElement,
                        format!("secure element: extending PCR {pcr}: {e}"),
                        &register,
                        events.len(),
                    ))
                }
            }
        }
        register.extend(&verified.event.digest);
        newest_signature = newest_signature.max(verified.signed_at.unwrap_or(0));
        events.push(verified.event);
    }
    if newest_signature > floor {
        se.raise_time_floor(newest_signature.min(now))
            .map_err(|e| se_failure(e, now))?;
    }
    Ok(BootLog {
        version: 1,
        hardware: hardware.to_string(),
        register: register.0,
        events,
        booted_at: now,
        policy: Some(policy.record),
    })
}

/// Marks the booted images good: raises each stage's counter to its signed value, and the
/// policy's floors (its counter, the CRL number) to what the boot ran under; never lowers
/// one. Returns `(counter, value)` pairs.
pub fn confirm(se: &dyn SecureElement, log: &BootLog) -> Result<Vec<(String, u64)>, BootError> {
    let mut out = Vec::with_capacity(log.events.len() + 2);
    if let Some(policy) = &log.policy {
        out.extend(confirm_policy(se, policy)?);
    }
    for e in &log.events {
        let name = counter_name(&e.stage);
        let value = se.advance_counter(&name, e.security_counter)?;
        out.push((name, value));
    }
    Ok(out)
}

/// Reads a CRL (PEM or DER, bounded).
pub fn read_crl(path: &Path) -> Result<Vec<u8>, BootError> {
    let bytes = std::fs::read(path).map_err(|e| BootError::io(path, e))?;
    if bytes.len() > MAX_CRL_BYTES * 2 {
        return Err(BootError::Chain(format!(
            "{}: CRL too large",
            path.display()
        )));
    }
    let der = if bytes.starts_with(b"-----") {
        pem::parse_labelled(&bytes, "X509 CRL")?
            .into_iter()
            .next()
            .ok_or_else(|| BootError::Chain(format!("{}: no CRL in the PEM", path.display())))?
    } else {
        bytes
    };
    edgeward_core::cert_policy::check_crl_der(&der)?;
    Ok(der)
}
