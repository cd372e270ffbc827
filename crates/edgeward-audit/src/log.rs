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
use crate::merkle::{self, Frontier, Hash};
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
    /// How many events the entry stands for (repeated refusals are counted into one).
    pub count: u64,
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
    /// A proof the log gave does not verify.
    #[error("the log's {0} proof does not verify against its signed checkpoints")]
    Proof(&'static str),
}

impl AuditError {
    /// A short stable name of what was found, for machine-readable output.
    pub fn code(&self) -> &'static str {
        match self {
            AuditError::Note(_) => "signature",
            AuditError::Checkpoint(_) => "checkpoint",
            AuditError::Origin { .. } => "origin",
            AuditError::Sequence { .. } => "sequence",
            AuditError::Size { .. } => "size",
            AuditError::Root { .. } => "root",
            AuditError::Truncated { .. } => "truncated",
            AuditError::Forked { .. } => "forked",
            AuditError::Proof(_) => "proof",
        }
    }
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
    let mut v = LogVerifier::new(verifier, note, trusted)?;
    for e in entries {
        v.push(e)?;
    }
    v.finish()
}

/// Verifies a log read in pages, in constant memory: made from the signed checkpoint and
/// the last trusted one, fed every entry in order, then finished. The checks are those of
/// [`verify_log`].
#[derive(Debug)]
pub struct LogVerifier {
    checkpoint: Checkpoint,
    trusted: Option<Checkpoint>,
    tree: Frontier,
    forked: bool,
}

impl LogVerifier {
    /// Opens the checkpoint `note` with `verifier` and checks it is for this log and no
    /// smaller than `trusted`.
    pub fn new(
        verifier: &NoteVerifier,
        note: &str,
        trusted: Option<&Checkpoint>,
    ) -> Result<Self, AuditError> {
        let cp = Checkpoint::parse(verifier.open(note)?)?;
        if cp.origin != verifier.name() {
            return Err(AuditError::Origin {
                expected: verifier.name().to_string(),
                found: cp.origin,
            });
        }
        if let Some(old) = trusted {
            if cp.size < old.size {
                return Err(AuditError::Truncated {
                    trusted: old.size,
                    size: cp.size,
                });
            }
            if old.origin != cp.origin {
                return Err(AuditError::Forked { trusted: old.size });
            }
        }
        Ok(LogVerifier {
            checkpoint: cp,
            trusted: trusted.cloned(),
            tree: Frontier::new(),
            forked: false,
        })
    }

    /// The signed checkpoint being verified against.
    pub fn checkpoint(&self) -> &Checkpoint {
        &self.checkpoint
    }

    /// Entries taken so far.
    pub fn size(&self) -> u64 {
        self.tree.size()
    }

    /// Takes the next entry.
    pub fn push(&mut self, e: &Entry) -> Result<(), AuditError> {
        let position = self.tree.size();
        if e.index != position {
            return Err(AuditError::Sequence {
                position,
                index: e.index,
            });
        }
        if position >= self.checkpoint.size {
            return Err(AuditError::Size {
                entries: position + 1,
                size: self.checkpoint.size,
            });
        }
        self.tree.push(e.leaf_hash());
        if let Some(old) = &self.trusted {
            if self.tree.size() == old.size && self.tree.root() != old.root {
                self.forked = true;
            }
        }
        Ok(())
    }

    /// Checks that the entries taken are all the checkpoint covers, hash to its root and
    /// extend the trusted checkpoint; returns the checkpoint, to be trusted next.
    pub fn finish(self) -> Result<Checkpoint, AuditError> {
        let cp = self.checkpoint;
        if self.tree.size() != cp.size {
            return Err(AuditError::Size {
                entries: self.tree.size(),
                size: cp.size,
            });
        }
        if self.tree.root() != cp.root {
            return Err(AuditError::Root { size: cp.size });
        }
        // The trusted head must be the head of this log's first `old.size` entries (for an
        // empty trusted log, any log extends it).
        if let Some(old) = &self.trusted {
            let empty = old.size == 0 && old.root == merkle::empty_root();
            if self.forked || (old.size == 0 && !empty) {
                return Err(AuditError::Forked { trusted: old.size });
            }
        }
        Ok(cp)
    }
}
