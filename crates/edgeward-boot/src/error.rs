//! Errors of the boot crate: a stage refused (with the kind a recovery record names) and
//! everything else (files, the secure element, a malformed description).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Why a stage (or the chain as a whole) was refused; recovery records name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureKind {
    /// The stage's signature file is absent.
    MissingSignature,
    /// The signature does not verify under the signer's key.
    BadSignature,
    /// The signer is not endorsed by the root anchor in the secure element.
    NotEndorsed,
    /// The image differs from what was signed (a changed byte, a truncated file).
    Integrity,
    /// The signed security counter is below the element's counter for this stage.
    Rollback,
    /// The image is signed for another hardware class, or for none.
    WrongHardware,
    /// The image is signed as another stage of the chain, or as none.
    WrongStage,
    /// The chain description's security counter differs from the signed one.
    CounterMismatch,
    /// The signature or image is malformed or uses something unsupported.
    Malformed,
    /// A stage file could not be read.
    Unreadable,
    /// The chain description is missing or malformed.
    ChainDescription,
    /// The secure element holds no root anchor (never provisioned, or wiped).
    NotProvisioned,
    /// A tamper input tripped; the element was wiped.
    Tampered,
    /// The secure element failed.
    SecureElement,
    /// The CRL the policy relies on is missing, older than one this device already accepted,
    /// or not signed by the root.
    Revocation,
}

/// A refusal of one stage: which kind, and one sentence saying exactly what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct StageFailure {
    /// The kind of failure.
    pub kind: FailureKind,
    /// What was wrong.
    pub message: String,
}

impl StageFailure {
    /// A failure of `kind` with `message`.
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        StageFailure {
            kind,
            message: message.into(),
        }
    }
}

/// Errors outside stage verification.
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The chain description is malformed.
    #[error("chain description: {0}")]
    Chain(String),
    /// A state file (boot log, recovery record) is malformed.
    #[error("malformed {what}: {detail}")]
    Malformed {
        /// Which file or structure.
        what: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// The secure element failed.
    #[error("secure element: {0}")]
    Se(#[from] edgeward_se::SeError),
    /// A format or trust decision of the core crate.
    #[error(transparent)]
    Core(#[from] edgeward_core::Error),
    /// Hashing or signing an artifact failed.
    #[error(transparent)]
    Artifact(#[from] edgeward_artifact::ArtifactError),
    /// Provisioning could not issue or store what it needed.
    #[error("provisioning: {0}")]
    Provision(String),
}

impl BootError {
    /// Wraps an I/O error with its path.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        BootError::Io {
            path: path.into(),
            source,
        }
    }
}
