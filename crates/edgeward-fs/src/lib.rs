//! Crash-safe file writes, the one implementation every Edgeward crate uses for keys,
//! certificates, CRLs, element state and downloaded metadata.
//!
//! A write goes to a fresh temporary file in the target's directory, named after the target
//! plus random characters and created exclusively (`O_EXCL`), so no stale or planted file
//! is ever reused and two targets never share one. A secret's temporary file is created
//! with mode 0600, before a single byte is written. The data is fsynced, the file renamed
//! over the target, and the directory fsynced so the rename itself survives a power cut:
//! afterwards the target holds its old content or its new content, never a mix.

use std::{
    ffi::OsString,
    fs::{self, File},
    io::{self, Read, Write},
    path::{Path, PathBuf},
};

use tempfile::NamedTempFile;

/// Who may read a file once written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Only the owner (mode 0600): private keys, secrets, element state.
    Private,
    /// Everyone (mode 0644 less the umask): certificates, CRLs, public metadata.
    Public,
}

impl Access {
    #[cfg(unix)]
    fn mode(self) -> u32 {
        match self {
            Access::Private => 0o600,
            Access::Public => 0o644,
        }
    }
}

/// A file being written beside its target; nothing is visible at the target until
/// [`AtomicFile::commit`] (or [`AtomicFile::commit_new`]). Dropped without committing, the
/// temporary file is removed.
pub struct AtomicFile {
    tmp: NamedTempFile,
    target: PathBuf,
    dir: PathBuf,
}

impl AtomicFile {
    /// Creates the temporary file for `target` with `access`'s mode.
    pub fn create(target: &Path, access: Access) -> io::Result<AtomicFile> {
        let dir = directory_of(target);
        let name = target.file_name().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} names no file", target.display()),
            )
        })?;
        let mut prefix = OsString::from(".");
        prefix.push(name);
        prefix.push(".");
        let mut builder = tempfile::Builder::new();
        builder.prefix(&prefix).suffix(".tmp");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            builder.permissions(fs::Permissions::from_mode(access.mode()));
        }
        #[cfg(not(unix))]
        let _ = access;
        let tmp = builder.tempfile_in(&dir)?;
        Ok(AtomicFile {
            tmp,
            target: target.to_path_buf(),
            dir,
        })
    }

    /// The temporary file's path (for messages and tests).
    pub fn temp_path(&self) -> &Path {
        self.tmp.path()
    }

    /// The open temporary file (to sync or seek it; writes go through [`Write`]).
    pub fn as_file(&self) -> &File {
        self.tmp.as_file()
    }

    /// Fsyncs the data, renames it over the target and fsyncs the directory.
    pub fn commit(self) -> io::Result<()> {
        self.tmp.as_file().sync_all()?;
        self.tmp.persist(&self.target).map_err(|e| e.error)?;
        sync_dir(&self.dir)
    }

    /// Like [`AtomicFile::commit`], but fails with `AlreadyExists` if the target exists
    /// (keys that must never be replaced).
    pub fn commit_new(self) -> io::Result<()> {
        self.tmp.as_file().sync_all()?;
        self.tmp
            .persist_noclobber(&self.target)
            .map_err(|e| e.error)?;
        sync_dir(&self.dir)
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.tmp.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.tmp.flush()
    }
}

/// Writes `data` to `path` atomically, replacing any existing file.
pub fn write_atomic(path: &Path, data: &[u8], access: Access) -> io::Result<()> {
    let mut file = AtomicFile::create(path, access)?;
    file.write_all(data)?;
    file.commit()
}

/// Writes `data` to `path` atomically, failing with `AlreadyExists` if `path` exists.
pub fn write_new(path: &Path, data: &[u8], access: Access) -> io::Result<()> {
    let mut file = AtomicFile::create(path, access)?;
    file.write_all(data)?;
    file.commit_new()
}

/// Removes `path` if it exists and fsyncs its directory.
pub fn remove_durably(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Ok(()) => sync_dir(&directory_of(path)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Fsyncs a directory so a rename or removal in it survives a power cut.
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

/// Reads `path` if it exists: `None` when it does not, `InvalidData` when it is longer than
/// `limit` bytes (read no further than one byte past the limit).
pub fn read_bounded(path: &Path, limit: u64) -> io::Result<Option<Vec<u8>>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    file.take(limit.saturating_add(1)).read_to_end(&mut out)?;
    if out.len() as u64 > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("longer than {limit} bytes"),
        ));
    }
    Ok(Some(out))
}

/// The directory a path's file lives in (`.` for a bare file name).
fn directory_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}
