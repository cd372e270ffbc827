//! The installer's state file: which slot is active, which one is on trial, which one the
//! device goes back to, what each slot holds (as signed metadata described it), and the
//! reports not yet delivered. It is the one authority the installer, the start-up check
//! and the boot integration read; every change is one crash-safe write of the whole file,
//! so a device always finds either the state before a step or the state after it.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use edgeward_proto::update_report::UpdateReport;
use serde::{Deserialize, Serialize};

use super::points;
use crate::tuf::metadata::Hashes;

/// Format version of the state file.
pub const STATE_VERSION: u32 = 1;
/// Largest state file read.
const MAX_STATE: u64 = 1024 * 1024;
/// Most undelivered reports kept (the oldest are dropped beyond it).
pub const MAX_OUTBOX: usize = 64;
/// Most reverted releases remembered (so a bad release is not installed again and again).
pub const MAX_REJECTED: usize = 32;

/// A release as the signed targets metadata described it, installed in a slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Installed {
    /// TUF target path.
    pub target: String,
    /// Release version.
    pub version: String,
    /// Signed length.
    pub length: u64,
    /// Signed hashes.
    pub hashes: Hashes,
    /// The release's security counter.
    pub security_counter: u64,
}

impl Installed {
    /// The release's identity: its signed SHA-256 (or its first listed hash).
    pub fn id(&self) -> String {
        release_id(&self.hashes)
    }
}

/// The identity of a release with these signed hashes.
pub fn release_id(hashes: &Hashes) -> String {
    hashes
        .get("sha256")
        .or_else(|| hashes.values().next())
        .cloned()
        .unwrap_or_default()
}

/// The slot running on trial.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trial {
    /// The slot (it is also `active`).
    pub slot: String,
    /// Starts since the switch without confirmation.
    pub starts: u32,
    /// When the switch happened (Unix seconds, device clock).
    pub since: i64,
    /// The boot the switch happened in (A/B slots: the trial starts at the next boot).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot: Option<String>,
}

/// The last revert, kept for `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Revert {
    /// The release given up.
    pub version: String,
    /// Reason code (`edgeward_proto::update_report::Reason::code`).
    pub reason: String,
    /// The error behind it.
    pub detail: String,
    /// When (Unix seconds).
    pub at: i64,
}

/// The whole state file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlotState {
    /// [`STATE_VERSION`].
    pub v: u32,
    /// The slot in use (booted, or linked as `current`).
    pub active: String,
    /// The slot to go back to while a trial runs, or by hand later.
    #[serde(default)]
    pub previous: Option<String>,
    /// The active slot's trial, until the health check confirms it.
    #[serde(default)]
    pub trial: Option<Trial>,
    /// A slot being written: its content is not valid until the download completes.
    #[serde(default)]
    pub writing: Option<(String, Installed)>,
    /// A confirmation whose anti-rollback counter raise may not have happened yet.
    #[serde(default)]
    pub raise_counter: Option<u64>,
    /// What each complete slot holds (slots written before the installer knew them, such
    /// as a factory image, are absent).
    #[serde(default)]
    pub slots: BTreeMap<String, Installed>,
    /// Releases reverted on this device (their ids), not offered again.
    #[serde(default)]
    pub rejected: Vec<String>,
    /// The last revert.
    #[serde(default)]
    pub last_revert: Option<Revert>,
    /// Reports not yet delivered to the server, oldest first.
    #[serde(default)]
    pub outbox: Vec<UpdateReport>,
}

/// The state file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Reading or writing failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: io::Error,
    },
    /// The file is not a state file of this version.
    #[error("{path} is not a valid installer state: {reason}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

/// Where the state lives.
#[derive(Debug, Clone)]
pub struct StateFile {
    path: PathBuf,
}

impl StateFile {
    /// The state file `state.json` in `dir`.
    pub fn new(dir: &Path) -> Self {
        StateFile {
            path: dir.join("state.json"),
        }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The stored state, or `initial` (not yet written) when there is none.
    pub fn load_or(&self, initial: &str) -> Result<SlotState, StateError> {
        let path = self.path.display().to_string();
        let bytes =
            edgeward_fs::read_bounded(&self.path, MAX_STATE).map_err(|source| StateError::Io {
                path: path.clone(),
                source,
            })?;
        let Some(bytes) = bytes else {
            return Ok(SlotState {
                v: STATE_VERSION,
                active: initial.to_string(),
                previous: None,
                trial: None,
                writing: None,
                raise_counter: None,
                slots: BTreeMap::new(),
                rejected: Vec::new(),
                last_revert: None,
                outbox: Vec::new(),
            });
        };
        let state: SlotState = serde_json::from_slice(&bytes).map_err(|e| StateError::Invalid {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        if state.v != STATE_VERSION {
            return Err(StateError::Invalid {
                path,
                reason: format!("version {} (expected {STATE_VERSION})", state.v),
            });
        }
        Ok(state)
    }

    /// Replaces the stored state (crash-safe; three write points).
    pub fn save(&self, state: &SlotState) -> Result<(), StateError> {
        let mut bytes = serde_json::to_vec_pretty(state).map_err(|e| StateError::Invalid {
            path: self.path.display().to_string(),
            reason: e.to_string(),
        })?;
        bytes.push(b'\n');
        points::write_atomic(&self.path, &bytes, edgeward_fs::Access::Private).map_err(|source| {
            StateError::Io {
                path: self.path.display().to_string(),
                source,
            }
        })
    }
}

impl SlotState {
    /// Queues a report, dropping the oldest beyond [`MAX_OUTBOX`].
    pub fn report(&mut self, report: UpdateReport) {
        self.outbox.push(report);
        let excess = self.outbox.len().saturating_sub(MAX_OUTBOX);
        self.outbox.drain(..excess);
    }

    /// Remembers a reverted release.
    pub fn reject(&mut self, id: String) {
        if !self.rejected.contains(&id) {
            self.rejected.push(id);
        }
        let excess = self.rejected.len().saturating_sub(MAX_REJECTED);
        self.rejected.drain(..excess);
    }

    /// What the active slot holds, when known.
    pub fn active_release(&self) -> Option<&Installed> {
        self.slots.get(&self.active)
    }
}
