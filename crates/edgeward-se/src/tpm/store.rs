//! The TPM backend's state directory: per-slot key blobs (`keys/SLOT.pub`, `keys/SLOT.priv`),
//! the sealing object (`seal.pub`, `seal.priv`) and certificates (`certs/SLOT.der`). Nothing
//! here is secret in the clear — private parts are `TPM2B_PRIVATE` blobs only this TPM can
//! load, under a storage key that a wipe destroys — but the files are still 0600 in a 0700
//! directory and written atomically (temporary file, fsync, rename, directory fsync).

use std::{
    fs,
    path::{Path, PathBuf},
};

use super::BACKEND;
use crate::{
    files::{
        create_private_dir, destroy_slot_files, io_error, read_bounded, remove_if_present,
        sync_dir, write_atomic, Replace,
    },
    SeError,
};

/// Largest file the backend reads back (a marshalled `TPMT_PUBLIC` or `TPM2B_PRIVATE` is
/// well under 1 KiB; certificates are bounded separately and smaller than this).
pub(super) const MAX_FILE_LEN: usize = 64 * 1024;

/// The state directory.
#[derive(Debug)]
pub(super) struct Store {
    dir: PathBuf,
}

impl Store {
    /// Opens (creating with mode 0700 when absent) the state directory and its subdirectories.
    pub(super) fn open(dir: &Path) -> Result<Self, SeError> {
        for sub in ["", "keys", "certs"] {
            create_private_dir(BACKEND, &dir.join(sub))?;
        }
        Ok(Store {
            dir: dir.to_path_buf(),
        })
    }

    /// Path of `name` inside subdirectory `sub` (`""` for the top level).
    pub(super) fn path(&self, sub: &str, name: &str) -> PathBuf {
        self.dir.join(sub).join(name)
    }

    /// Writes `bytes` to `path` atomically (mode 0600); with `replace == false`, fails when
    /// the file exists.
    pub(super) fn write(&self, path: &Path, bytes: &[u8], replace: bool) -> Result<(), SeError> {
        let replace = if replace { Replace::Yes } else { Replace::No };
        write_atomic(path, bytes, replace).map_err(|e| io_error(BACKEND, path, e))
    }

    /// Reads `path` if it exists, refusing files longer than `max` bytes.
    pub(super) fn read(&self, path: &Path, max: usize) -> Result<Option<Vec<u8>>, SeError> {
        read_bounded(BACKEND, path, max)
    }

    /// Removes `path` if it exists.
    pub(super) fn remove(&self, path: &Path) -> Result<(), SeError> {
        remove_if_present(BACKEND, path)
    }

    /// Removes a slot's files, `private` first ([`crate::SeError::NoSuchKey`] when absent).
    pub(super) fn destroy_slot(
        &self,
        slot: &str,
        private: &Path,
        others: &[&Path],
    ) -> Result<(), SeError> {
        destroy_slot_files(BACKEND, slot, private, others)
    }

    /// Removes every file in subdirectory `sub` (`""`: only the top-level files).
    pub(super) fn remove_all_in(&self, sub: &str) -> Result<(), SeError> {
        let dir = self.dir.join(sub);
        let entries = fs::read_dir(&dir).map_err(|e| io_error(BACKEND, &dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| io_error(BACKEND, &dir, e))?;
            let is_file = entry
                .file_type()
                .map_err(|e| io_error(BACKEND, &entry.path(), e))?
                .is_file();
            if is_file {
                self.remove(&entry.path())?;
            }
        }
        sync_dir(&dir).map_err(|e| io_error(BACKEND, &dir, e))
    }
}
