//! The client's trusted metadata directory: one `ROLE.json` per role, holding exactly the
//! bytes that were verified, written atomically. Role names are percent-encoded into file
//! names (and URLs) so that a delegated role named `../x` or `a/b` stays one plain file.

use std::path::{Path, PathBuf};

use super::error::TufError;
use crate::fsio;

/// Percent-encodes every byte but `A-Z a-z 0-9 _ . - ~` (Python's `quote(s, safe="")`,
/// which TUF repositories use for role names in URLs).
pub fn quote(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for &b in name.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A directory of trusted metadata.
#[derive(Debug, Clone)]
pub struct MetadataStore {
    dir: PathBuf,
}

impl MetadataStore {
    /// The store in `dir` (which must exist).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        MetadataStore { dir: dir.into() }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, role: &str) -> PathBuf {
        let name = quote(role);
        // `.` and `..` are valid role names but not valid file names on their own.
        self.dir.join(format!("{name}.json"))
    }

    fn storage(&self, role: &str, source: std::io::Error) -> TufError {
        TufError::Storage {
            path: self.path(role).display().to_string(),
            source,
        }
    }

    /// The stored bytes of `role`, if any, at most `limit` bytes.
    pub fn read(&self, role: &str, limit: u64) -> Result<Option<Vec<u8>>, TufError> {
        fsio::read_bounded(&self.path(role), limit).map_err(|e| self.storage(role, e))
    }

    /// Stores `bytes` as `role`, atomically.
    pub fn write(&self, role: &str, bytes: &[u8]) -> Result<(), TufError> {
        fsio::write_atomic(&self.path(role), bytes).map_err(|e| self.storage(role, e))
    }

    /// Forgets `role`.
    pub fn remove(&self, role: &str) -> Result<(), TufError> {
        fsio::remove_durably(&self.path(role)).map_err(|e| self.storage(role, e))
    }
}

#[cfg(test)]
mod tests {
    use super::quote;

    #[test]
    fn quotes_like_python_with_no_safe_characters() {
        assert_eq!(quote("../delegatedrole"), "..%2Fdelegatedrole");
        assert_eq!(quote("?"), "%3F");
        assert_eq!(quote("#"), "%23");
        assert_eq!(quote("a b~é"), "a%20b~%C3%A9");
    }
}
