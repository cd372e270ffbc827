//! Crash-safe file primitives for the file-backed parts of the backends (the soft element's
//! keys and state, the TPM's wrapped blobs): every write goes to a 0600 temporary file in the
//! same directory, is fsynced, renamed over (or next to) the target and the directory
//! fsynced, so a crash leaves either the old or the new file, never a torn one. Errors name
//! the backend they happened in.

use std::{
    fs::{self, File},
    io::{self, Read, Write},
    path::Path,
};

use crate::SeError;

/// Whether an atomic write may replace an existing file.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Replace {
    /// Replace the file if it exists (counters, time floor, certificates).
    Yes,
    /// Fail with `AlreadyExists` if the file exists (keys, the master key).
    No,
}

/// Writes `bytes` to `path` atomically with mode 0600.
pub fn write_atomic(path: &Path, bytes: &[u8], replace: Replace) -> io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no directory"))?;
    // tempfile creates the file with mode 0600 on Unix.
    let mut tmp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    match replace {
        Replace::Yes => tmp.persist(path).map_err(|e| e.error)?,
        Replace::No => tmp.persist_noclobber(path).map_err(|e| e.error)?,
    };
    sync_dir(dir)
}

/// Reads `path` if it exists, refusing files longer than `max` bytes.
pub fn read_bounded(
    backend: &'static str,
    path: &Path,
    max: usize,
) -> Result<Option<Vec<u8>>, SeError> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error(backend, path, e)),
    };
    let mut bytes = Vec::new();
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    file.take(limit)
        .read_to_end(&mut bytes)
        .map_err(|e| io_error(backend, path, e))?;
    if bytes.len() > max {
        return Err(SeError::Backend {
            backend,
            message: format!("{} is longer than {max} bytes", path.display()),
        });
    }
    Ok(Some(bytes))
}

/// Removes `path` if it exists.
pub fn remove_if_present(backend: &'static str, path: &Path) -> Result<(), SeError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_error(backend, path, e)),
    }
}

/// Creates `dir` (and parents) with mode 0700 if it does not exist; an existing directory
/// keeps its mode (the element never changes the permissions of a directory it did not make).
pub fn create_private_dir(backend: &'static str, dir: &Path) -> Result<(), SeError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| io_error(backend, dir, e))
    }
    #[cfg(not(unix))]
    {
        fs::create_dir_all(dir).map_err(|e| io_error(backend, dir, e))
    }
}

/// Fsyncs a directory so a rename or removal in it is durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// A file-system error naming the path.
pub fn io_error(backend: &'static str, path: &Path, e: io::Error) -> SeError {
    SeError::Backend {
        backend,
        message: format!("{}: {e}", path.display()),
    }
}
