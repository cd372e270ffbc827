//! The one error type of the core crate: every rejection names what failed and why.

use alloc::string::String;

/// Why a key, signature, bundle, statement or certificate chain was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Bytes that do not parse as the format they claim to be.
    #[error("malformed {what}: {detail}")]
    Malformed {
        /// Which thing was malformed (e.g. "bundle JSON", "ECDSA signature DER").
        what: &'static str,
        /// What exactly was wrong.
        detail: String,
    },
    /// Well-formed input that uses an algorithm, version or mode Edgeward does not accept.
    #[error("unsupported {what}: {detail}")]
    Unsupported {
        /// Which field or feature.
        what: &'static str,
        /// The value found.
        detail: String,
    },
    /// The cryptographic signature does not verify under the key.
    #[error("signature does not verify: {0}")]
    BadSignature(String),
    /// The bundle names a key other than the one the verifier trusts.
    #[error("key mismatch: {0}")]
    KeyMismatch(String),
    /// The signing certificate does not chain to the trust root under the policy.
    #[error("signature by key {key} is not endorsed by the root: {reason}")]
    NotEndorsed {
        /// Fingerprint (SHA-256 of the SPKI, first 8 bytes hex) of the signing key.
        key: String,
        /// Why the chain was refused.
        reason: String,
    },
    /// The signed manifest and the artifact on disk differ.
    #[error("{0}")]
    Integrity(String),
    /// A caller-supplied argument that can never be valid (a programming or operator error).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

impl Error {
    /// Shorthand for [`Error::Malformed`].
    pub fn malformed(what: &'static str, detail: impl core::fmt::Display) -> Self {
        Error::Malformed {
            what,
            detail: alloc::format!("{detail}"),
        }
    }

    /// Shorthand for [`Error::Unsupported`].
    pub fn unsupported(what: &'static str, detail: impl core::fmt::Display) -> Self {
        Error::Unsupported {
            what,
            detail: alloc::format!("{detail}"),
        }
    }
}
