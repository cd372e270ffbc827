//! Crash-safe file writes for the update client: a file is either its old content or its
//! new content, never a mix, whatever moment power fails. The one implementation is
//! `edgeward-fs`; metadata and progress records are public files. Each write is a set of
//! write points for the crash harness ([`crate::install::points`]).

use std::io;
use std::path::Path;

pub(crate) use edgeward_fs::{read_bounded, remove_durably};

/// Writes `bytes` to `path` through a fresh temporary file in the same directory: write,
/// fsync, rename over `path`, fsync the directory.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    crate::install::points::write_atomic(path, bytes, edgeward_fs::Access::Public)
}
