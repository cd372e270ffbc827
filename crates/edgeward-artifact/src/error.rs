//! Errors of on-disk signing and verification, split so a CLI can tell a rejected artifact
//! (exit 1) from an operator's mistake (exit 2).

use std::path::PathBuf;

/// Why signing or verifying an artifact on disk failed.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    /// A file the operator named (key, signature, trust root) could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The artifact itself is unusable: a symbolic link, a special file, a non-UTF-8 name, or
    /// a file that changed while it was read.
    #[error("artifact rejected: {0}")]
    Artifact(String),
    /// A format or trust decision from the core crate.
    #[error(transparent)]
    Core(#[from] edgeward_core::Error),
}

impl ArtifactError {
    /// Whether this error means the artifact or its signature was rejected, as opposed to
    /// an operator error (unreadable input, bad arguments, wrong passphrase).
    pub fn is_rejection(&self) -> bool {
        match self {
            ArtifactError::Io { .. } => false,
            ArtifactError::Artifact(_) => true,
            ArtifactError::Core(edgeward_core::Error::InvalidArgument(_)) => false,
            ArtifactError::Core(_) => true,
        }
    }

    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ArtifactError::Io {
            path: path.into(),
            source,
        }
    }
}
