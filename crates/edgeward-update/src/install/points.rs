//! Write points: every place where the installer has just changed something on disk (a
//! write, an fsync, a rename). The crash harness installs a hook that ends the process at
//! the N-th point, for every N, to show that an interruption at any of them leaves a device
//! that comes up on a complete, validly signed slot. Without a hook a point costs one
//! atomic load.

use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use edgeward_fs::{Access, AtomicFile};

/// Called with the point's number (from 1) and what was just done.
pub type Hook = Box<dyn Fn(u64, &str) + Send + Sync>;

static HOOK: OnceLock<Hook> = OnceLock::new();
static COUNT: AtomicU64 = AtomicU64::new(0);

/// Installs the process-wide hook (once; later calls are ignored and return false).
pub fn set_hook(hook: Hook) -> bool {
    HOOK.set(hook).is_ok()
}

/// Write points reached so far in this process.
pub fn count() -> u64 {
    COUNT.load(Ordering::SeqCst)
}

/// Marks a write point: `what` was just done.
pub fn reached(what: &str) {
    if let Some(hook) = HOOK.get() {
        let n = COUNT.fetch_add(1, Ordering::SeqCst) + 1;
        hook(n, what);
    }
}

/// Writes `bytes` to `path` atomically (temporary file, fsync, rename, fsync of the
/// directory), with a write point after the write, the fsync and the rename.
pub fn write_atomic(path: &Path, bytes: &[u8], access: Access) -> io::Result<()> {
    let mut file = AtomicFile::create(path, access)?;
    file.write_all(bytes)?;
    reached("write temporary file");
    file.as_file().sync_all()?;
    reached("fsync temporary file");
    file.commit()?;
    reached("rename over the target");
    Ok(())
}
