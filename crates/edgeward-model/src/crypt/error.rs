//! Why encrypting, decrypting or rewrapping a model container failed. Every rejection of
//! a container names what was wrong, and none releases plaintext.

use edgeward_se::SeError;

/// Errors of the encrypted-model container.
#[derive(Debug, thiserror::Error)]
pub enum CryptError {
    /// The bytes do not start with the container magic.
    #[error("not an Edgeward encrypted model (bad magic)")]
    NotAContainer,
    /// A version, cipher, HPKE suite or recipient type this build does not know.
    #[error("unsupported container: {0}")]
    Unsupported(String),
    /// The header's structure or bounds are wrong.
    #[error("malformed container header: {0}")]
    MalformedHeader(String),
    /// The device's key is not among the recipients (e.g. the model was copied from another
    /// device).
    #[error(
        "this model is not encrypted for this device: its key {device} (slot `{slot}`) is not a recipient; recipients: {}",
        recipients.join(", ")
    )]
    NotARecipient {
        /// Fingerprint of the device key that was asked to decrypt.
        device: String,
        /// The element slot holding it.
        slot: String,
        /// Fingerprints of the listed recipients.
        recipients: Vec<String>,
    },
    /// The recipient entry names this device's key but does not open with it.
    #[error("the file key wrapped for recipient {0} does not open with this device's key (entry modified, or made for another key)")]
    UnwrapFailed(String),
    /// An HPKE ciphertext failed authentication.
    #[error("HPKE ciphertext rejected")]
    WrapRejected,
    /// The header MAC does not match: a header byte was changed.
    #[error("header authentication failed: the container header was modified")]
    HeaderTampered,
    /// The payload is shorter than the header declares, with every chunk present in order.
    #[error("truncated payload: {found} bytes of {expected} (the final chunk is missing)")]
    Truncated {
        /// Payload length the header implies.
        expected: u64,
        /// Payload length found.
        found: u64,
    },
    /// Bytes follow the final chunk.
    #[error("{extra} unexpected bytes after the final chunk")]
    TrailingData {
        /// How many.
        extra: u64,
    },
    /// A chunk is missing from the middle of the payload.
    #[error("chunk {index} is missing (the chunk found there is chunk {found})")]
    ChunkDropped {
        /// The missing chunk's index.
        index: u64,
        /// The chunk found in its place.
        found: u64,
    },
    /// A chunk appears twice.
    #[error("chunk {position} is a duplicate of chunk {copy_of}")]
    ChunkDuplicated {
        /// Where the copy was found.
        position: u64,
        /// The chunk it copies.
        copy_of: u64,
    },
    /// A chunk is out of order.
    #[error("chunk at position {position} belongs at position {belongs_at} (chunks reordered)")]
    ChunkReordered {
        /// Where it was found.
        position: u64,
        /// Where it belongs.
        belongs_at: u64,
    },
    /// A chunk failed authentication and is no chunk of this file at another position.
    #[error("chunk {index} failed authentication (modified)")]
    ChunkCorrupted {
        /// The chunk's index.
        index: u64,
    },
    /// A recipient key is unusable (not P-256).
    #[error("recipient key rejected: {0}")]
    BadRecipient(String),
    /// A caller error (bad chunk size, empty recipient list, removing the last recipient).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The secure element failed.
    #[error("secure element: {0}")]
    Element(#[from] SeError),
    /// Reading the container or writing the plaintext failed (not a rejection).
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// The AEAD backend failed in a way that is not an authentication failure.
    #[error("cipher backend failure: {0}")]
    Backend(String),
}

impl CryptError {
    /// Whether the container (or the device's entitlement to it) was rejected, as opposed
    /// to a caller or element error.
    pub fn is_rejection(&self) -> bool {
        !matches!(
            self,
            CryptError::InvalidArgument(_)
                | CryptError::Element(_)
                | CryptError::Backend(_)
                | CryptError::Io { .. }
                | CryptError::BadRecipient(_)
        )
    }
}
