//! The agent's state directory: the last boot log (read by attestation and confirm) and the
//! last recovery record, each replaced atomically.

use std::path::{Path, PathBuf};

use crate::{measure::BootLog, recovery::RecoveryRecord, BootError};

/// File name of the boot log.
pub const BOOT_LOG: &str = "boot-log.json";
/// File name of the recovery record.
pub const RECOVERY: &str = "recovery.json";

/// A state directory.
#[derive(Debug, Clone)]
pub struct StateDir {
    dir: PathBuf,
}

impl StateDir {
    /// Opens (creating) `dir`.
    pub fn open(dir: &Path) -> Result<StateDir, BootError> {
        std::fs::create_dir_all(dir).map_err(|e| BootError::io(dir, e))?;
        Ok(StateDir {
            dir: dir.to_path_buf(),
        })
    }

    /// A file of the directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Records a successful boot: writes the log and removes a stale recovery record.
    pub fn record_boot(&self, log: &BootLog) -> Result<(), BootError> {
        let json = serde_json::to_vec_pretty(log).map_err(|e| BootError::Malformed {
            what: "boot log",
            detail: e.to_string(),
        })?;
        self.write(BOOT_LOG, &json)?;
        match std::fs::remove_file(self.path(RECOVERY)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(BootError::io(self.path(RECOVERY), e)),
        }
    }

    /// Records a failed boot: writes the recovery record and removes the boot log (nothing
    /// of a failed boot may be attested as booted).
    pub fn record_recovery(&self, record: &RecoveryRecord) -> Result<(), BootError> {
        let json = serde_json::to_vec_pretty(record).map_err(|e| BootError::Malformed {
            what: "recovery record",
            detail: e.to_string(),
        })?;
        self.write(RECOVERY, &json)?;
        match std::fs::remove_file(self.path(BOOT_LOG)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(BootError::io(self.path(BOOT_LOG), e)),
        }
    }

    /// The last boot log.
    pub fn boot_log(&self) -> Result<BootLog, BootError> {
        let path = self.path(BOOT_LOG);
        let bytes = std::fs::read(&path).map_err(|e| BootError::io(&path, e))?;
        BootLog::parse(&bytes)
    }

    fn write(&self, name: &str, data: &[u8]) -> Result<(), BootError> {
        let path = self.path(name);
        edgeward_fs::write_atomic(&path, data, edgeward_fs::Access::Public)
            .map_err(|e| BootError::io(&path, e))
    }
}
