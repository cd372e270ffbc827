//! The data directory is one server's: it holds the registry (on the embedded default), the
//! master key and the CA keys, and the in-memory registry cache assumes this process is the
//! registry's only writer. So a server creates it private (0700, its files 0600), holds an
//! exclusive lock on it for as long as it runs (a second server on the same directory is
//! refused), and removes it again if this start created it and then failed, so a failed
//! start never leaves a half-made directory with keys in it.

use std::{
    fs::{self, File, OpenOptions},
    io::{Read, Seek, Write},
    os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
};

use rustix::fs::{flock, FlockOperation};

/// The lock file's name inside the data directory.
pub const LOCK_FILE: &str = "lock";

/// A data directory this process holds the lock of. Dropping it releases the lock; if the
/// directory was created by this start and [`DataDir::started`] was never called, dropping
/// it also removes the directory.
pub struct DataDir {
    path: PathBuf,
    _lock: File,
    created: bool,
}

impl DataDir {
    /// Creates `path` (0700) if it is missing, makes it 0700 if it is not, and takes the
    /// exclusive lock. Refuses, naming the holder's process id, when another server holds it.
    pub fn lock(path: &Path) -> Result<Self, String> {
        let created = !path.exists();
        if created {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(path)
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
        Self::lock_existing(path, created).inspect_err(|_| {
            if created {
                let _ = fs::remove_dir_all(path);
            }
        })
    }

    fn lock_existing(path: &Path, created: bool) -> Result<Self, String> {
        let meta = fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
        if !meta.is_dir() {
            return Err(format!(
                "the data directory {} is not a directory",
                path.display()
            ));
        }
        fs::set_permissions(path, fs::Permissions::from_mode(0o700))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let lock_path = path.join(LOCK_FILE);
        let mut lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&lock_path)
            .map_err(|e| format!("{}: {e}", lock_path.display()))?;
        if let Err(e) = flock(&lock, FlockOperation::NonBlockingLockExclusive) {
            if e == rustix::io::Errno::WOULDBLOCK {
                let mut holder = String::new();
                let _ = lock.read_to_string(&mut holder);
                let holder = holder.trim();
                return Err(format!(
                    "the data directory {} is in use by another edgeward-server{} (it holds {}); \
                     one server per data directory: give this one another --data-dir",
                    path.display(),
                    if holder.is_empty() {
                        String::new()
                    } else {
                        format!(" (process {holder})")
                    },
                    lock_path.display()
                ));
            }
            return Err(format!("locking {}: {e}", lock_path.display()));
        }
        // The holder's process id, for the message above (the lock is what counts).
        lock.set_len(0)
            .and_then(|()| lock.rewind())
            .and_then(|()| write!(lock, "{}", std::process::id()))
            .map_err(|e| format!("{}: {e}", lock_path.display()))?;
        Ok(DataDir {
            path: path.to_path_buf(),
            _lock: lock,
            created,
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The start succeeded: the directory stays when this is dropped. Also makes every file
    /// under it 0600 and every directory 0700 (what other code created with wider modes,
    /// e.g. the public certificates of the development hierarchy).
    pub fn started(&mut self) -> Result<(), String> {
        self.created = false;
        restrict(&self.path)
    }
}

impl Drop for DataDir {
    fn drop(&mut self) {
        if self.created {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// Makes `dir` 0700, the files under it 0600 and the directories 0700 (symbolic links are
/// left alone).
fn restrict(dir: &Path) -> Result<(), String> {
    let err = |p: &Path, e: std::io::Error| format!("{}: {e}", p.display());
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(|e| err(dir, e))?;
    for entry in fs::read_dir(dir).map_err(|e| err(dir, e))? {
        let entry = entry.map_err(|e| err(dir, e))?;
        let path = entry.path();
        let kind = entry.file_type().map_err(|e| err(&path, e))?;
        if kind.is_dir() {
            restrict(&path)?;
        } else if kind.is_file() {
            let mode = entry.metadata().map_err(|e| err(&path, e))?.permissions();
            if mode.mode() & 0o077 != 0 {
                fs::set_permissions(&path, fs::Permissions::from_mode(0o600))
                    .map_err(|e| err(&path, e))?;
            }
        }
    }
    Ok(())
}

/// Creates the SQLite database file at `path` with mode 0600 if it is missing (SQLite gives
/// its `-wal` and `-shm` files the database file's mode), and makes an existing one and its
/// companions 0600.
pub fn private_sqlite_file(path: &Path) -> Result<(), String> {
    let err = |p: &Path, e: std::io::Error| format!("{}: {e}", p.display());
    if !path.exists() {
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(|e| err(path, e))?;
    }
    for suffix in ["", "-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        let p = PathBuf::from(name);
        if p.exists() {
            fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).map_err(|e| err(&p, e))?;
        }
    }
    Ok(())
}
