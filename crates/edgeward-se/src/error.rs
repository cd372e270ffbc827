//! The one error type of every backend.

/// Why a secure-element operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SeError {
    /// The URI or a slot/counter name is malformed.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// No key (or certificate) in the named slot.
    #[error("no key in slot `{0}` (generate or provision one first)")]
    NoSuchKey(String),
    /// `generate_key` on a slot that already holds a key.
    #[error("slot `{0}` already holds a key")]
    SlotOccupied(String),
    /// The backend cannot do this (e.g. Ed25519 on a token without it).
    #[error("the {backend} backend does not support {what}")]
    Unsupported {
        /// Backend name.
        backend: &'static str,
        /// The missing capability.
        what: String,
    },
    /// A sealed blob failed authentication or was made by another element.
    #[error("sealed blob rejected: {0}")]
    Unseal(String),
    /// The element was wiped (tamper response) and must be re-provisioned.
    #[error("the secure element was wiped and must be re-provisioned")]
    Wiped,
    /// The backend (file system, PKCS#11 module, TPM) reported an error.
    #[error("{backend} backend error: {message}")]
    Backend {
        /// Backend name.
        backend: &'static str,
        /// What went wrong, as the backend reported it.
        message: String,
    },
}
