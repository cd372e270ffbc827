//! The TPM backend's state directory: per-slot key blobs (`keys/SLOT.pub`, `keys/SLOT.priv`),
//! the sealing object (`seal.pub`, `seal.priv`) and certificates (`certs/SLOT.der`). Nothing
//! here is secret in the clear — private parts are `TPM2B_PRIVATE` blobs only this TPM can
//! load, under a storage key that a wipe destroys — but the files are still 0600 in a 0700
//! directory and written atomically (temporary file, fsync, rename, directory fsync).

use std::{
    fs::{self, File},
    io::{self, Read, Write},
    path::{Path, PathBuf},
};

use crate::SeError;

use super::backend_error;

/// Largest file the backend reads back (a marshalled `TPMT_PUBLIC` or `TPM2B_PRIVATE` is
/// well under 1 KiB; certificates are bounded separately and smaller than this).
pub const MAX_FILE_LEN: usize = 64 * 1024;

/// The state directory.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    /// Opens (creating with mode 0700 when absent) the state directory and its subdirectories.
    pub fn open(dir: &Path) -> Result<Self, SeError> {
        for sub in ["", "keys", "certs"] {
            create_private_dir(&dir.join(sub))?;
        }
        Ok(Store {
            dir: dir.to_path_buf(),
        })
    }

    /// Path of `name` inside subdirectory `sub` (`""` for the top level).
    pub fn path(&self, sub: &str, name: &str) -> PathBuf {
        self.dir.join(sub).join(name)
    }

    /// Writes `bytes` to `path` atomically (mode 0600); with `replace == false`, fails when
    /// the file exists.
    pub fn write(&self, path: &Path, bytes: &[u8], replace: bool) -> Result<(), SeError> {
        write_atomic(path, bytes, replace).map_err(|e| io_error(path, e))
    }

    /// Reads `path` if it exists, refusing files longer than `max` bytes.
    pub fn read(&self, path: &Path, max: usize) -> Result<Option<Vec<u8>>, SeError> {
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_error(path, e)),
        };
        let mut bytes = Vec::new();
        let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
        file.take(limit)
            .read_to_end(&mut bytes)
            .map_err(|e| io_error(path, e))?;
        if bytes.len() > max {
            return Err(backend_error(format!(
                "{} is longer than {max} bytes",
                path.display()
            )));
        }
        Ok(Some(bytes))
    }

    /// Removes `path` if it exists.
    pub fn remove(&self, path: &Path) -> Result<(), SeError> {
        match fs::remove_file(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error(path, e)),
        }
    }

    /// Removes every file in subdirectory `sub` (`""`: only the top-level files).
    pub fn remove_all_in(&self, sub: &str) -> Result<(), SeError> {
        let dir = self.dir.join(sub);
        let entries = fs::read_dir(&dir).map_err(|e| io_error(&dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| io_error(&dir, e))?;
            let is_file = entry
                .file_type()
                .map_err(|e| io_error(&entry.path(), e))?
                .is_file();
            if is_file {
                self.remove(&entry.path())?;
            }
        }
        sync_dir(&dir).map_err(|e| io_error(&dir, e))
    }
}

fn write_atomic(path: &Path, bytes: &[u8], replace: bool) -> io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no directory"))?;
    // tempfile creates the file with mode 0600 on Unix.
    let mut tmp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    if replace {
        tmp.persist(path).map_err(|e| e.error)?;
    } else {
        tmp.persist_noclobber(path).map_err(|e| e.error)?;
    }
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn create_private_dir(dir: &Path) -> Result<(), SeError> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| io_error(dir, e))
}

fn io_error(path: &Path, e: io::Error) -> SeError {
    backend_error(format!("{}: {e}", path.display()))
}
