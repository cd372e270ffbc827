//! File primitives for the file-backed parts of the backends (the soft element's keys and
//! state, the TPM's wrapped blobs): every write is `edgeward-fs`'s crash-safe write of a
//! 0600 file, so a crash leaves either the old or the new file, never a torn one; reads are
//! bounded. Errors name the backend they happened in.

use std::{
    fs::{self, File},
    io::{self, Read},
    path::Path,
};

use edgeward_fs::Access;

use crate::SeError;

/// Whether an atomic write may replace an existing file.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Replace {
    /// Replace the file if it exists (counters, time floor, certificates).
    Yes,
    /// Fail with `AlreadyExists` if the file exists (keys, the master key).
    No,
}

/// Writes `bytes` to `path` atomically with mode 0600.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8], replace: Replace) -> io::Result<()> {
    match replace {
        Replace::Yes => edgeward_fs::write_atomic(path, bytes, Access::Private),
        Replace::No => edgeward_fs::write_new(path, bytes, Access::Private),
    }
}

/// Reads `path` if it exists, refusing files longer than `max` bytes.
pub(crate) fn read_bounded(
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

/// Destroys a file-backed key slot: removes `private` (the file that makes the slot occupied)
/// first, so the slot cannot sign from then on even if the rest fails, then `others`
/// (public part, certificate), syncing each directory touched. [`SeError::NoSuchKey`] when
/// `private` is not there.
pub(crate) fn destroy_slot_files(
    backend: &'static str,
    slot: &str,
    private: &Path,
    others: &[&Path],
) -> Result<(), SeError> {
    match fs::remove_file(private) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(SeError::NoSuchKey(slot.to_owned()))
        }
        Err(e) => return Err(io_error(backend, private, e)),
    }
    sync_parent(backend, private)?;
    for path in others {
        match fs::remove_file(path) {
            Ok(()) => sync_parent(backend, path)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error(backend, path, e)),
        }
    }
    Ok(())
}

fn sync_parent(backend: &'static str, path: &Path) -> Result<(), SeError> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    sync_dir(dir).map_err(|e| io_error(backend, dir, e))
}

/// Removes `path` if it exists.
pub(crate) fn remove_if_present(backend: &'static str, path: &Path) -> Result<(), SeError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_error(backend, path, e)),
    }
}

/// Creates `dir` (and parents) with mode 0700 if it does not exist; an existing directory
/// keeps its mode (the element never changes the permissions of a directory it did not make).
pub(crate) fn create_private_dir(backend: &'static str, dir: &Path) -> Result<(), SeError> {
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

pub(crate) use edgeward_fs::sync_dir;

/// A file-system error naming the path.
pub(crate) fn io_error(backend: &'static str, path: &Path, e: io::Error) -> SeError {
    SeError::Backend {
        backend,
        message: format!("{}: {e}", path.display()),
    }
}
