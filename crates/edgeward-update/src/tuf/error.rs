//! Why an update was refused.

use super::hash::HashError;
use super::metadata::MetadataError;
use super::transport::FetchError;

/// A refusal or failure of the TUF client workflow. Each variant names the role or file
/// and what was wrong; none leaves untrusted data in the trusted set or on disk.
#[derive(Debug, thiserror::Error)]
pub enum TufError {
    /// Metadata does not parse or has a wrong field.
    #[error("{role} metadata is malformed: {source}")]
    Malformed {
        /// Role name.
        role: String,
        /// What is wrong.
        source: MetadataError,
    },
    /// Too few valid signatures.
    #[error("{role} metadata has {valid} valid signature(s), {threshold} required{by}")]
    Threshold {
        /// Role name.
        role: String,
        /// Distinct keys that signed validly.
        valid: u64,
        /// Signatures required.
        threshold: u64,
        /// Which key set was counted, e.g. " by the trusted root's keys".
        by: &'static str,
    },
    /// A version is lower than the one already trusted (rollback attack).
    #[error("rollback refused: {what} version {new} is lower than the trusted version {trusted}")]
    Rollback {
        /// What rolled back, e.g. `timestamp` or `targets.json in snapshot`.
        what: String,
        /// Trusted version.
        trusted: u64,
        /// Offered version.
        new: u64,
    },
    /// A version differs from the one the referring metadata signed for (mix and match).
    #[error("{role} metadata is version {got}, but {by} says version {expected}")]
    VersionMismatch {
        /// Role name.
        role: String,
        /// Version the referrer signed for.
        expected: u64,
        /// Version received.
        got: u64,
        /// The referrer (`timestamp`, `snapshot`, the URL).
        by: &'static str,
    },
    /// A role the trusted snapshot listed has disappeared from the new snapshot.
    #[error("rollback refused: the new snapshot no longer lists {0}")]
    RemovedFromSnapshot(String),
    /// A delegated role is not listed in the snapshot.
    #[error("snapshot does not list {0}")]
    NotInSnapshot(String),
    /// Expired metadata (freeze attack).
    #[error("{role} metadata expired at {expires}, not after the update's start time {now}")]
    Expired {
        /// Role name.
        role: String,
        /// Its expiry (RFC 3339).
        expires: String,
        /// The fixed update start time (RFC 3339).
        now: String,
    },
    /// Bytes do not match what metadata signed for them.
    #[error("{what} {source}")]
    Hash {
        /// The file, e.g. `snapshot metadata` or `target firmware.bin`.
        what: String,
        /// The mismatch.
        source: HashError,
    },
    /// The target is not in any targets metadata the search may use.
    #[error("no trusted metadata describes target {0:?}")]
    TargetNotFound(String),
    /// Fetching failed.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// Local storage failed.
    #[error("{path}: {source}")]
    Storage {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The locally trusted root is missing or not valid.
    #[error("trusted root: {0}")]
    TrustedRoot(String),
}
