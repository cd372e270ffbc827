//! The recovery record: written when the chain stops, it says which stage failed and why,
//! and what had been measured before. The agent prints it and exits in recovery mode.

use serde::{Deserialize, Serialize};

use crate::FailureKind;

/// The stage that failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedStage {
    /// Its position in the chain.
    pub index: usize,
    /// Its name.
    pub name: String,
    /// Its image file.
    pub image: String,
}

/// Why the device is in recovery mode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoveryRecord {
    /// Always `true` (so a JSON reader can tell this from a boot log).
    pub recovery: bool,
    /// The stage that failed; `None` when the chain could not start (no anchor, tamper,
    /// unreadable description).
    pub stage: Option<FailedStage>,
    /// The kind of failure.
    pub reason: FailureKind,
    /// One sentence: what exactly was wrong.
    pub message: String,
    /// Stages measured before the failure (they passed).
    pub measured: usize,
    /// The register after those stages, hex.
    pub register: String,
    /// When (the device's judged time, Unix seconds).
    pub at: u64,
}

impl RecoveryRecord {
    /// A record for a failure before any stage ran.
    pub fn before_chain(reason: FailureKind, message: impl Into<String>, at: u64) -> Self {
        RecoveryRecord {
            recovery: true,
            stage: None,
            reason,
            message: message.into(),
            measured: 0,
            register: hex::encode([0u8; 32]),
            at,
        }
    }

    /// One line for people: `stage 2 (os): integrity: …`.
    pub fn summary(&self) -> String {
        let reason = serde_json::to_value(self.reason)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        match &self.stage {
            Some(s) => format!("stage {} ({}): {reason}: {}", s.index, s.name, self.message),
            None => format!("{reason}: {}", self.message),
        }
    }
}
