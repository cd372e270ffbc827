//! Crash-safe file writes for the agent's state directory: a write goes to a temporary file
//! in the same directory, is flushed to disk, then renamed over the target, and the
//! directory is synced, so a crash leaves either the old or the new content, never a mix.

use std::{
    fs,
    io::Write,
    path::{Path, PathBuf},
};

use crate::AgentError;

/// Writes `data` to `path` atomically; `secret` files are created 0600.
pub fn write_atomic(path: &Path, data: &[u8], secret: bool) -> Result<(), AgentError> {
    let dir = parent(path);
    let mut tmp = tempfile::NamedTempFile::new_in(&dir).map_err(|e| AgentError::io(&dir, e))?;
    if secret {
        set_mode(tmp.path(), 0o600)?;
    }
    tmp.write_all(data).map_err(|e| AgentError::io(path, e))?;
    tmp.as_file()
        .sync_all()
        .map_err(|e| AgentError::io(path, e))?;
    tmp.persist(path)
        .map_err(|e| AgentError::io(path, e.error))?;
    sync_dir(&dir)
}

/// Reads `path` if it exists, refusing files over `max` bytes.
pub fn read_bounded(path: &Path, max: u64) -> Result<Option<Vec<u8>>, AgentError> {
    match fs::metadata(path) {
        Ok(m) if m.len() > max => Err(AgentError::Protocol(format!(
            "{} is {} bytes, more than the {max} allowed",
            path.display(),
            m.len()
        ))),
        Ok(_) => fs::read(path)
            .map(Some)
            .map_err(|e| AgentError::io(path, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(AgentError::io(path, e)),
    }
}

/// Removes `path` if present and syncs its directory.
pub fn remove(path: &Path) -> Result<(), AgentError> {
    match fs::remove_file(path) {
        Ok(()) => sync_dir(&parent(path)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(AgentError::io(path, e)),
    }
}

/// Creates `dir` (0700) if missing.
pub fn ensure_private_dir(dir: &Path) -> Result<(), AgentError> {
    fs::create_dir_all(dir).map_err(|e| AgentError::io(dir, e))?;
    set_mode(dir, 0o700)
}

/// Flushes a directory's entries (a rename is durable only once its directory is).
pub fn sync_dir(dir: &Path) -> Result<(), AgentError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| AgentError::io(dir, e))
}

fn parent(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn set_mode(path: &Path, mode: u32) -> Result<(), AgentError> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(|e| AgentError::io(path, e))
}
