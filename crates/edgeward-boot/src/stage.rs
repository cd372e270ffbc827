//! Verifying one stage: who signed it (a chain to the root anchor), that the image is what
//! was signed, and the signed claims — stage name, hardware class, security counter — against
//! the chain description, the device and the element's anti-rollback counter.
//!
//! The cheap checks (signature, chain, claims, counter) run before the image is hashed, so a
//! rolled-back or foreign 1 GiB model is refused without reading it. Large bundle images are
//! hashed shard by shard on every core (`edgeward_artifact`).

use std::{io::Read, path::Path};

use edgeward_artifact::{bundle_signing::verify_path, ArtifactError, NoProgress};
use edgeward_core::{
    bundle::Bundle,
    cert_policy::{cert_info, verify_signing_chain, Policy},
    keys::PublicKey,
    pem,
    size_limits::{MAX_BUNDLE_BYTES, MAX_PEM_BYTES},
    verify::{verify_bundle, Trust},
    Error as CoreError,
};

use crate::{
    chain::{StageFormat, StageSpec},
    mcuboot::{Image, McubootError, MAX_IMAGE_BYTES},
    measure::Event,
    FailureKind, StageFailure,
};

/// What a stage is judged against.
#[derive(Debug, Clone, Copy)]
pub struct StageTrust<'a> {
    /// The root anchors (DER), from the secure element.
    pub roots: &'a [Vec<u8>],
    /// Root-signed CRLs (DER).
    pub crls: &'a [Vec<u8>],
    /// The device's judged time (Unix seconds): max(clock, the element's time floor).
    pub now: u64,
    /// The device's hardware class.
    pub hardware: &'a str,
}

/// A stage that passed, as measured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedStage {
    /// The event to extend and log.
    pub event: Event,
    /// The signing time the signature records (bundles), if any.
    pub signed_at: Option<u64>,
}

fn fail(kind: FailureKind, m: impl Into<String>) -> StageFailure {
    StageFailure::new(kind, m)
}

/// Verifies stage `spec`; `counter_floor` is the element's anti-rollback counter for it.
pub fn verify_stage(
    spec: &StageSpec,
    trust: &StageTrust<'_>,
    counter_floor: u64,
) -> Result<VerifiedStage, StageFailure> {
    match &spec.format {
        StageFormat::Bundle { signature } => {
            verify_bundle_stage(spec, signature, trust, counter_floor)
        }
        StageFormat::Mcuboot { certificate } => {
            verify_mcuboot_stage(spec, certificate, trust, counter_floor)
        }
    }
}

/// Reads at most `limit` bytes of `path`; a missing file is reported with `missing`.
fn read_bounded(
    path: &Path,
    limit: usize,
    missing: FailureKind,
    what: &str,
) -> Result<Vec<u8>, StageFailure> {
    let file = std::fs::File::open(path).map_err(|e| {
        let kind = if e.kind() == std::io::ErrorKind::NotFound {
            missing
        } else {
            FailureKind::Unreadable
        };
        fail(
            kind,
            format!("{what} {} cannot be read: {e}", path.display()),
        )
    })?;
    let mut out = Vec::new();
    file.take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| {
            fail(
                FailureKind::Unreadable,
                format!("{what} {}: {e}", path.display()),
            )
        })?;
    if out.len() > limit {
        return Err(fail(
            FailureKind::Malformed,
            format!("{what} {} is larger than {limit} bytes", path.display()),
        ));
    }
    Ok(out)
}

/// Maps a core decision to a failure kind.
pub(crate) fn core_kind(e: &CoreError) -> FailureKind {
    match e {
        CoreError::BadSignature(_) => FailureKind::BadSignature,
        CoreError::NotEndorsed { .. } | CoreError::KeyMismatch(_) => FailureKind::NotEndorsed,
        CoreError::Integrity(_) => FailureKind::Integrity,
        CoreError::Malformed { .. }
        | CoreError::Unsupported { .. }
        | CoreError::InvalidArgument(_) => FailureKind::Malformed,
    }
}

fn check_claims(
    spec: &StageSpec,
    trust: &StageTrust<'_>,
    counter_floor: u64,
    stage: Option<&str>,
    hardware: Option<&str>,
    counter: Option<u64>,
) -> Result<u64, StageFailure> {
    if let Some(stage) = stage {
        if stage != spec.name {
            return Err(fail(
                FailureKind::WrongStage,
                format!(
                    "the image is signed as stage {stage:?}, not {:?}",
                    spec.name
                ),
            ));
        }
    }
    match hardware {
        Some(h) if h == trust.hardware => {}
        Some(h) => {
            return Err(fail(
                FailureKind::WrongHardware,
                format!(
                    "the image is signed for hardware {h:?}, this device is {:?}",
                    trust.hardware
                ),
            ))
        }
        None => {
            return Err(fail(
                FailureKind::WrongHardware,
                format!(
                    "the image's signature names no hardware class (this device is {:?})",
                    trust.hardware
                ),
            ))
        }
    }
    let Some(counter) = counter else {
        return Err(fail(
            FailureKind::CounterMismatch,
            "the image's signature carries no security counter",
        ));
    };
    if counter != spec.security_counter {
        return Err(fail(
            FailureKind::CounterMismatch,
            format!(
                "the chain description says security counter {}, the signature says {counter}",
                spec.security_counter
            ),
        ));
    }
    if counter < counter_floor {
        return Err(fail(
            FailureKind::Rollback,
            format!(
                "security counter {counter} is below the secure element's counter {counter_floor} for this stage (rollback refused)"
            ),
        ));
    }
    Ok(counter)
}

fn verify_bundle_stage(
    spec: &StageSpec,
    signature: &Path,
    trust: &StageTrust<'_>,
    counter_floor: u64,
) -> Result<VerifiedStage, StageFailure> {
    let bytes = read_bounded(
        signature,
        MAX_BUNDLE_BYTES,
        FailureKind::MissingSignature,
        "signature",
    )?;
    let bundle = Bundle::parse(&bytes).map_err(|e| {
        fail(
            FailureKind::Malformed,
            format!("signature {}: {e}", signature.display()),
        )
    })?;
    let core_trust = Trust::Roots {
        roots: trust.roots,
        crls: trust.crls,
        policy: Policy::default(),
    };
    // Signature, signer and claims first: cheap, and nothing of the image is read yet.
    let verified = verify_bundle(&bundle, &core_trust, trust.now)
        .map_err(|e| fail(core_kind(&e), e.to_string()))?;
    let claims = &verified.statement.boot;
    let counter = check_claims(
        spec,
        trust,
        counter_floor,
        Some(claims.stage.as_deref().ok_or_else(|| {
            fail(
                FailureKind::WrongStage,
                "the image's signature names no stage",
            )
        })?),
        claims.hardware.as_deref(),
        claims.security_counter,
    )?;
    let verified = verify_path(
        &spec.image,
        &bundle,
        &core_trust,
        trust.now,
        &[],
        &NoProgress,
    )
    .map_err(|e| match e {
        ArtifactError::Io { path, source } => fail(
            FailureKind::Unreadable,
            format!("image {}: {source}", path.display()),
        ),
        ArtifactError::Artifact(m) => fail(FailureKind::Integrity, m),
        ArtifactError::Core(c) => fail(
            core_kind(&c),
            format!("image {}: {c}", spec.image.display()),
        ),
    })?;
    Ok(VerifiedStage {
        event: Event {
            index: spec.index,
            stage: spec.name.clone(),
            format: "bundle".into(),
            digest: verified.statement.manifest.root_digest(),
            security_counter: counter,
            hardware: Some(trust.hardware.to_string()),
            signer: verified.key.fingerprint(),
        },
        signed_at: verified.statement.signed_at,
    })
}

/// Checks an MCUboot signer's certificate chain against the roots and returns its key.
/// MCUboot images carry no signing time, so the chain is judged at the signing
/// certificate's start of validity (an image signed while it was valid stays bootable after
/// it expires); revocation by a root-signed CRL still applies.
pub fn mcuboot_signer(
    chain_pem: &[u8],
    roots: &[Vec<u8>],
    crls: &[Vec<u8>],
) -> Result<PublicKey, StageFailure> {
    let chain = pem::parse_labelled(chain_pem, "CERTIFICATE").map_err(|e| {
        fail(
            FailureKind::Malformed,
            format!("signer certificate chain: {e}"),
        )
    })?;
    let leaf = chain.first().ok_or_else(|| {
        fail(
            FailureKind::Malformed,
            "the signer certificate chain is empty",
        )
    })?;
    let info = cert_info(leaf).map_err(|e| fail(FailureKind::Malformed, e.to_string()))?;
    let at = u64::try_from(info.not_before.saturating_add(1)).unwrap_or(0);
    let endorsed = verify_signing_chain(&chain, roots, crls, at, &Policy::default())
        .map_err(|e| fail(core_kind(&e), e.to_string()))?;
    Ok(endorsed.key)
}

fn mcuboot_failure(e: McubootError) -> StageFailure {
    let kind = match &e {
        McubootError::Malformed(_) | McubootError::Unsupported(_) => FailureKind::Malformed,
        McubootError::Integrity(_) => FailureKind::Integrity,
        McubootError::KeyMismatch(_) => FailureKind::NotEndorsed,
        McubootError::BadSignature(_) => FailureKind::BadSignature,
    };
    fail(kind, e.to_string())
}

fn verify_mcuboot_stage(
    spec: &StageSpec,
    certificate: &Path,
    trust: &StageTrust<'_>,
    counter_floor: u64,
) -> Result<VerifiedStage, StageFailure> {
    let chain_pem = read_bounded(
        certificate,
        MAX_PEM_BYTES,
        FailureKind::MissingSignature,
        "signer certificate chain",
    )?;
    let key = mcuboot_signer(&chain_pem, trust.roots, trust.crls)?;
    let bytes = read_bounded(
        &spec.image,
        MAX_IMAGE_BYTES,
        FailureKind::Unreadable,
        "image",
    )?;
    let image = Image::parse(&bytes).map_err(mcuboot_failure)?;
    let verified = image.verify(&key).map_err(mcuboot_failure)?;
    let counter = check_claims(
        spec,
        trust,
        counter_floor,
        None,
        verified.hardware.as_deref(),
        verified.security_counter.map(u64::from),
    )?;
    Ok(VerifiedStage {
        event: Event {
            index: spec.index,
            stage: spec.name.clone(),
            format: "mcuboot".into(),
            digest: verified.hash,
            security_counter: counter,
            hardware: verified.hardware,
            signer: key.fingerprint(),
        },
        signed_at: None,
    })
}
