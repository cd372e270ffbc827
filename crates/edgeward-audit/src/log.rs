//! The audit entries as the log hashes them, and the verifier of a whole log against a
//! signed checkpoint and the last checkpoint the verifier trusted.
//!
//! An entry's leaf is its canonical JSON (fixed field order, as serde writes this struct), so
//! any change to any field of any entry changes the tree head; dropping or reordering entries
//! changes it too. The verifier keeps the last checkpoint it accepted outside the server: a
//! new checkpoint must be at least as large and its first entries must hash to the old head,
//! so deleting the tail of the log (and re-signing a shorter head) is caught as well.

use serde::{Deserialize, Serialize};

use crate::checkpoint::Checkpoint;
use crate::merkle::{self, Hash};
use crate::note::{NoteError, NoteSigner, NoteVerifier};

/// One audit-log entry, as the server stores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Position in the log (0-based, contiguous).
    pub index: u64,
    /// When (Unix seconds).
    pub at: i64,
    /// Who acted (an admin key's name, `device`, `enrollment`, `detector`…).
    pub actor: String,
    /// What was done.
    pub action: String,
    /// The device concerned, if any.
    pub device_id: Option<String>,
    /// Free-form detail.
    pub detail: String,
}

impl Entry {
    /// The bytes hashed into the tree.
    pub fn canonical(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an entry always serializes")
    }

    /// The entry's leaf hash.
    pub fn leaf_hash(&self) -> Hash {
        merkle::leaf_hash(&self.canonical())
    }
}

/// Why a log failed verification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuditError {
    /// The checkpoint's signature is missing or wrong.
    #[error("checkpoint: {0}")]
    Note(#[from] NoteError),
    /// The checkpoint text is malformed.
    #[error("{0}")]
    Checkpoint(#[from] crate::checkpoint::CheckpointError),
    /// The checkpoint is for another log.
    #[error("the checkpoint is for log {found:?}, expected {expected:?}")]
    Origin {
        /// The origin expected.
        expected: String,
        /// The origin found.
        found: String,
    },
    /// Entry indices are not 0, 1, 2… (an entry was dropped, inserted or moved).
    #[error("entry at position {position} has index {index}: entries were dropped, inserted or reordered")]
    Sequence {
        /// Position in the list.
        position: u64,
        /// The index it carries.
        index: u64,
    },
    /// The number of entries differs from the checkpoint's tree size.
    #[error("the log has {entries} entries but its checkpoint covers {size}")]
    Size {
        /// Entries supplied.
        entries: u64,
        /// The checkpoint's size.
        size: u64,
    },
    /// The entries do not hash to the checkpoint's root.
    #[error("the {size} entries do not hash to the signed root: an entry was edited, dropped or reordered")]
    Root {
        /// The checkpoint's size.
        size: u64,
    },
    /// The new checkpoint is smaller than one already trusted.
    #[error("the log shrank from {trusted} to {size} entries: its tail was deleted")]
    Truncated {
        /// Size of the trusted checkpoint.
        trusted: u64,
        /// Size of the new one.
        size: u64,
    },
    /// The first entries no longer hash to the trusted root.
    #[error("the first {trusted} entries no longer hash to the root trusted earlier: history was rewritten")]
    Forked {
        /// Size of the trusted checkpoint.
        trusted: u64,
    },
}

/// Signs the checkpoint of `entries` as `signer` (whose name is the log's origin).
pub fn sign_checkpoint(
    signer: &NoteSigner,
    entries: &[Entry],
) -> Result<(Checkpoint, String), NoteError> {
    let leaves: Vec<Hash> = entries.iter().map(Entry::leaf_hash).collect();
    let cp = Checkpoint {
        origin: signer.name().to_string(),
        size: leaves.len() as u64,
        root: merkle::root(&leaves),
    };
    let note = signer.sign(&cp.to_text())?;
    Ok((cp, note))
}

/// Verifies a whole log: the checkpoint note's signature by `verifier`, that `entries` are
/// exactly the entries it covers, and that it extends `trusted` (the last checkpoint this
/// verifier accepted). Returns the new checkpoint, to be kept as the next `trusted`.
pub fn verify_log(
    verifier: &NoteVerifier,
    note: &str,
    entries: &[Entry],
    trusted: Option<&Checkpoint>,
) -> Result<Checkpoint, AuditError> {
    let cp = Checkpoint::parse(verifier.open(note)?)?;
    if cp.origin != verifier.name() {
        return Err(AuditError::Origin {
            expected: verifier.name().to_string(),
            found: cp.origin,
        });
    }
    for (position, e) in entries.iter().enumerate() {
        if e.index != position as u64 {
            return Err(AuditError::Sequence {
                position: position as u64,
                index: e.index,
            });
        }
    }
    if let Some(old) = trusted {
        if cp.size < old.size {
            return Err(AuditError::Truncated {
                trusted: old.size,
                size: cp.size,
            });
        }
    }
    if entries.len() as u64 != cp.size {
        return Err(AuditError::Size {
            entries: entries.len() as u64,
            size: cp.size,
        });
    }
    let leaves: Vec<Hash> = entries.iter().map(Entry::leaf_hash).collect();
    if merkle::root(&leaves) != cp.root {
        return Err(AuditError::Root { size: cp.size });
    }
    if let Some(old) = trusted {
        // The trusted head must be the head of this log's first `old.size` entries.
        if old.origin != cp.origin || merkle::root(&leaves[..old.size as usize]) != old.root {
            return Err(AuditError::Forked { trusted: old.size });
        }
    }
    Ok(cp)
}
