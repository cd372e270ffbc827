//! The boot policy — which stages boot, for which hardware class, checked against which CRL —
//! must come from data that someone who can write the device's storage cannot change
//! unnoticed. Otherwise deleting one line of `chain.toml` (its `crl`) or one stage would
//! switch that check off.
//!
//! So the chain description is itself signed under the root anchor (`chain.toml.sig`, a
//! certificate-mode bundle over the file's exact bytes, with the boot claims `stage =
//! "chain.toml"`, the hardware class and a security counter), and two floors live in the
//! secure element: the policy's security counter (`policy.chain`, so an older signed policy
//! cannot come back) and the CRL's number (`policy.crl`, so an older root-signed CRL that
//! still lists fewer revocations cannot come back, and a CRL cannot be dropped once one was
//! seen). Both floors are raised at confirm, like the stages' counters, so a revert to the
//! previous release stays possible until the new one is known good.

use std::{
    io::Read,
    path::{Path, PathBuf},
};

use edgeward_core::{
    bundle::Bundle,
    cert_policy::{crl_number_signed_by_root, Policy},
    manifest::{ItemKey, Manifest, Method, Serialization},
    size_limits::MAX_BUNDLE_BYTES,
    verify::{verify_bundle, Trust},
};
use edgeward_se::SecureElement;
use serde::{Deserialize, Serialize};

use crate::{
    boot::read_crl,
    chain::{Chain, MAX_CHAIN_BYTES},
    measure::hex_digest,
    stage::core_kind,
    FailureKind, StageFailure,
};

/// The stage name the chain description's signature claims; no stage may take it.
pub const POLICY_CLAIM: &str = "chain.toml";
/// The element's counter holding the newest confirmed policy's security counter.
pub const POLICY_COUNTER: &str = "policy.chain";
/// The element's counter holding the newest confirmed CRL's number.
pub const CRL_COUNTER: &str = "policy.crl";

/// Where the signature of the chain description at `chain` lives: beside it, `+ ".sig"`.
pub fn signature_path(chain: &Path) -> PathBuf {
    let mut name = chain.as_os_str().to_owned();
    name.push(".sig");
    PathBuf::from(name)
}

/// What the boot log records of the policy a boot ran under (confirm raises the element's
/// floors to these values).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyRecord {
    /// SHA-256 of the chain description's bytes.
    #[serde(with = "hex_digest")]
    pub digest: [u8; 32],
    /// The policy's signed security counter.
    pub security_counter: u64,
    /// The number of the CRL it named, if it named one.
    pub crl_number: Option<u64>,
    /// Fingerprint of the key that signed the policy.
    pub signer: String,
}

/// A chain description whose signature, counter and CRL passed.
#[derive(Debug, Clone)]
pub struct VerifiedPolicy {
    /// The parsed description.
    pub chain: Chain,
    /// The CRL it names (DER), checked against the element's floor.
    pub crls: Vec<Vec<u8>>,
    /// What to log and later confirm.
    pub record: PolicyRecord,
    /// When the policy was signed (a trustworthy lower bound on the time, like a stage's).
    pub signed_at: Option<u64>,
}

fn fail(kind: FailureKind, m: impl Into<String>) -> StageFailure {
    StageFailure::new(kind, m)
}

fn read_bounded(path: &Path, limit: usize, what: &str) -> Result<Vec<u8>, StageFailure> {
    let missing_kind = if what == "signature" {
        FailureKind::MissingSignature
    } else {
        FailureKind::ChainDescription
    };
    let file = std::fs::File::open(path).map_err(|e| {
        let kind = if e.kind() == std::io::ErrorKind::NotFound {
            missing_kind
        } else {
            FailureKind::Unreadable
        };
        fail(
            kind,
            format!(
                "the chain description's {what} {} cannot be read: {e}",
                path.display()
            ),
        )
    })?;
    let mut out = Vec::new();
    file.take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| fail(FailureKind::Unreadable, format!("{}: {e}", path.display())))?;
    if out.len() > limit {
        return Err(fail(
            FailureKind::Malformed,
            format!("{} is larger than {limit} bytes", path.display()),
        ));
    }
    Ok(out)
}

/// Reads, verifies and parses the chain description at `chain_path`: its signature under
/// `roots` at `now` (checking the signer against the CRL it names), its claims against the
/// element's policy counter, and that CRL against the element's CRL floor. The bytes parsed
/// are the bytes verified (read once).
pub fn verify_policy(
    chain_path: &Path,
    roots: &[Vec<u8>],
    se: &dyn SecureElement,
    now: u64,
) -> Result<VerifiedPolicy, StageFailure> {
    let se_error =
        |e: edgeward_se::SeError| fail(FailureKind::SecureElement, format!("secure element: {e}"));
    let floors = Floors {
        crl: se.counter(CRL_COUNTER).map_err(se_error)?,
        policy: se.counter(POLICY_COUNTER).map_err(se_error)?,
    };
    verify_policy_above(chain_path, roots, floors, now)
}

/// The floors a chain description is held to: on a device, the element's counters; on a
/// verifier without an element (the server deriving reference values), zero.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Floors {
    /// The lowest CRL number accepted ([`CRL_COUNTER`]).
    pub crl: u64,
    /// The lowest policy security counter accepted ([`POLICY_COUNTER`]).
    pub policy: u64,
}

/// [`verify_policy`] against given `floors` instead of an element's.
pub fn verify_policy_above(
    chain_path: &Path,
    roots: &[Vec<u8>],
    floors: Floors,
    now: u64,
) -> Result<VerifiedPolicy, StageFailure> {
    let bytes = read_bounded(chain_path, MAX_CHAIN_BYTES, "file")?;
    let sig_path = signature_path(chain_path);
    let sig = read_bounded(&sig_path, MAX_BUNDLE_BYTES, "signature")?;
    let base = chain_path.parent().unwrap_or_else(|| Path::new("."));
    let chain = Chain::parse(&bytes, base)
        .map_err(|e| fail(FailureKind::ChainDescription, e.to_string()))?;

    // The CRL first: the policy's own signer is checked against it too.
    let crl_floor = floors.crl;
    let (crls, crl_number) = match &chain.crl {
        // Once a CRL numbered n was confirmed, a policy without one would silently switch
        // revocation off: refused.
        None if crl_floor > 0 => {
            return Err(fail(
                FailureKind::Revocation,
                format!(
                    "the chain description names no CRL, but this device requires one numbered {crl_floor} or later"
                ),
            ))
        }
        None => (Vec::new(), None),
        Some(path) => {
            let der =
                read_crl(path).map_err(|e| fail(FailureKind::Revocation, e.to_string()))?;
            let number = crl_number_signed_by_root(&der, roots).map_err(|e| {
                fail(
                    FailureKind::Revocation,
                    format!("CRL {}: {e}", path.display()),
                )
            })?;
            // An older root-signed CRL is genuine but may lack newer revocations.
            if number < crl_floor {
                return Err(fail(
                    FailureKind::Revocation,
                    format!(
                        "CRL {} is number {number}, older than number {crl_floor} this device already accepted",
                        path.display()
                    ),
                ));
            }
            (vec![der], Some(number))
        }
    };

    let bundle = Bundle::parse(&sig).map_err(|e| {
        fail(
            FailureKind::Malformed,
            format!("signature {}: {e}", sig_path.display()),
        )
    })?;
    let trust = Trust::Roots {
        roots,
        crls: &crls,
        policy: Policy::default(),
    };
    let verified = verify_bundle(&bundle, &trust, now).map_err(|e| {
        fail(
            core_kind(&e),
            format!("the chain description's signature: {e}"),
        )
    })?;
    let claims = &verified.statement.boot;
    if claims.stage.as_deref() != Some(POLICY_CLAIM) {
        return Err(fail(
            FailureKind::WrongStage,
            format!(
                "{} is signed as {}, not as the chain description ({POLICY_CLAIM:?})",
                sig_path.display(),
                claims
                    .stage
                    .as_deref()
                    .map_or_else(|| "no stage".to_string(), |s| format!("stage {s:?}"))
            ),
        ));
    }
    if claims.hardware.as_deref() != Some(chain.hardware.as_str()) {
        return Err(fail(
            FailureKind::WrongHardware,
            format!(
                "the chain description is for hardware {:?} but its signature says {:?}",
                chain.hardware, claims.hardware
            ),
        ));
    }
    let counter = claims.security_counter.ok_or_else(|| {
        fail(
            FailureKind::CounterMismatch,
            "the chain description's signature carries no security counter",
        )
    })?;
    let policy_floor = floors.policy;
    if counter < policy_floor {
        return Err(fail(
            FailureKind::Rollback,
            format!(
                "the chain description's security counter {counter} is below the secure element's {policy_floor} (an older policy; rollback refused)"
            ),
        ));
    }
    if verified.statement.manifest.serialization.method != Method::Files {
        return Err(fail(
            FailureKind::Malformed,
            format!(
                "{} signs the chain description in shards; it must be signed per file",
                sig_path.display()
            ),
        ));
    }
    let digest = edgeward_core::sha256(&bytes);
    verified
        .statement
        .manifest
        .check_matches(&single_file_manifest(&verified.statement.manifest, digest))
        .map_err(|e| {
            fail(
                FailureKind::Integrity,
                format!("{}: {e}", chain_path.display()),
            )
        })?;
    Ok(VerifiedPolicy {
        chain,
        crls,
        record: PolicyRecord {
            digest,
            security_counter: counter,
            crl_number,
            signer: verified.key.fingerprint(),
        },
        signed_at: verified.statement.signed_at,
    })
}

/// The manifest of one file whose SHA-256 is `digest`, as the files method records it (the
/// chain description is signed per file: it is small).
fn single_file_manifest(signed: &Manifest, digest: [u8; 32]) -> Manifest {
    Manifest {
        model_name: signed.model_name.clone(),
        serialization: Serialization {
            method: Method::Files,
            allow_symlinks: false,
            ignore_paths: Vec::new(),
        },
        items: [(
            ItemKey {
                path: ".".into(),
                range: None,
            },
            digest,
        )]
        .into_iter()
        .collect(),
        empty_files: Default::default(),
    }
}

/// Raises the element's policy floors to what `record` booted under (never lowers them).
pub fn confirm_policy(
    se: &dyn SecureElement,
    record: &PolicyRecord,
) -> Result<Vec<(String, u64)>, edgeward_se::SeError> {
    let mut out = vec![(
        POLICY_COUNTER.to_string(),
        se.advance_counter(POLICY_COUNTER, record.security_counter)?,
    )];
    if let Some(n) = record.crl_number {
        out.push((CRL_COUNTER.to_string(), se.advance_counter(CRL_COUNTER, n)?));
    }
    Ok(out)
}
