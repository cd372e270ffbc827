//! What the agent remembers about commands across restarts (`commands.json` in the state
//! directory, written atomically): the last command id executed, so a replayed or
//! reordered command is refused even after a restart, and whether the device is
//! quarantined, so a reboot does not lift a quarantine the server imposed.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{files, AgentError};

const FILE: &str = "commands.json";

/// The persisted command state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandState {
    /// The last command executed (0: none).
    pub last_id: i64,
    /// Whether the device is quarantined.
    pub quarantined: bool,
    /// Why, as the quarantine command said.
    #[serde(default)]
    pub quarantine_reason: Option<String>,
}

/// The state file of `state_dir`.
pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join(FILE)
}

impl CommandState {
    /// Loads the state of `state_dir` (the default when none was saved).
    pub fn load(state_dir: &Path) -> Result<Self, AgentError> {
        let p = path(state_dir);
        match files::read_bounded(&p, 64 * 1024)? {
            Some(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| AgentError::Protocol(format!("{}: {e}", p.display()))),
            None => Ok(CommandState::default()),
        }
    }

    /// Saves the state durably.
    pub fn save(&self, state_dir: &Path) -> Result<(), AgentError> {
        let bytes = serde_json::to_vec(self).map_err(|e| AgentError::Protocol(e.to_string()))?;
        files::write_atomic(&path(state_dir), &bytes, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn survives_a_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(
            CommandState::load(dir.path()).expect("load"),
            CommandState::default()
        );
        let s = CommandState {
            last_id: 7,
            quarantined: true,
            quarantine_reason: Some("beaconing".into()),
        };
        s.save(dir.path()).expect("save");
        assert_eq!(CommandState::load(dir.path()).expect("load"), s);
    }
}
