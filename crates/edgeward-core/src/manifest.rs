//! A model manifest: every file (or file shard) of an artifact paired with its SHA-256, and
//! the serialization parameters needed to recompute it. Ordering and naming follow OpenSSF
//! model-signing exactly, because the statement's root digest depends on them.

use alloc::{
    collections::{BTreeMap, BTreeSet},
    format,
    string::{String, ToString},
    vec::Vec,
};
use core::cmp::Ordering;

use crate::{size_limits::MAX_NAME_BYTES, Error, Sha256Digest};

/// How an artifact is cut into manifest items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// One SHA-256 per file (model-signing's default).
    Files,
    /// One SHA-256 per `shard_size` bytes of every file; shards are hashed in parallel.
    Shards {
        /// Shard length in bytes (the last shard of a file may be shorter).
        shard_size: u64,
    },
}

/// The serialization parameters recorded in (and authenticated by) a signed statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Serialization {
    /// Files or shards.
    pub method: Method,
    /// Whether symbolic links were followed (Edgeward always signs with `false`).
    pub allow_symlinks: bool,
    /// Paths relative to the artifact root that are not part of the signature.
    pub ignore_paths: Vec<String>,
}

impl Serialization {
    /// The resource `algorithm` string for this method: `sha256` or `sha256-sharded-<size>`.
    pub fn item_algorithm(&self) -> String {
        match self.method {
            Method::Files => String::from("sha256"),
            Method::Shards { shard_size } => format!("sha256-sharded-{shard_size}"),
        }
    }
}

/// What a manifest item names: a whole file, or the bytes `start..end` of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemKey {
    /// POSIX path relative to the artifact root (`.` when the artifact is a single file).
    pub path: String,
    /// The shard's byte range, for the shards method.
    pub range: Option<(u64, u64)>,
}

impl ItemKey {
    /// The resource name as written in statements: `path` or `path:start:end`.
    pub fn name(&self) -> String {
        match self.range {
            None => self.path.clone(),
            Some((s, e)) => format!("{}:{s}:{e}", self.path),
        }
    }

    /// Parses and validates a resource name for the given method.
    pub fn parse(name: &str, method: Method) -> Result<Self, Error> {
        if name.is_empty() || name.len() > MAX_NAME_BYTES {
            return Err(Error::malformed(
                "resource name",
                format!("length {} (expected 1–{MAX_NAME_BYTES})", name.len()),
            ));
        }
        let key = match method {
            Method::Files => ItemKey {
                path: name.to_string(),
                range: None,
            },
            Method::Shards { shard_size } => {
                let parts: Vec<&str> = name.split(':').collect();
                let [path, start, end] = parts.as_slice() else {
                    return Err(Error::malformed(
                        "shard name",
                        format!("{name:?} is not path:start:end"),
                    ));
                };
                let num = |s: &str| {
                    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
                        return Err(Error::malformed(
                            "shard name",
                            format!("{name:?}: bad offset"),
                        ));
                    }
                    s.parse::<u64>().map_err(|_| {
                        Error::malformed("shard name", format!("{name:?}: bad offset"))
                    })
                };
                let (start, end) = (num(start)?, num(end)?);
                if end <= start || end - start > shard_size {
                    return Err(Error::malformed(
                        "shard name",
                        format!(
                            "{name:?}: range is empty or longer than the shard size {shard_size}"
                        ),
                    ));
                }
                ItemKey {
                    path: path.to_string(),
                    range: Some((start, end)),
                }
            }
        };
        validate_path(&key.path)?;
        Ok(key)
    }
}

/// Accepts `.` or a relative POSIX path with no empty, `.` or `..` component and no NUL.
pub fn validate_path(path: &str) -> Result<(), Error> {
    if path == "." {
        return Ok(());
    }
    let bad = path.starts_with('/')
        || path.contains('\0')
        || path
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..");
    if bad {
        return Err(Error::malformed(
            "resource path",
            format!("{path:?} is not a relative path inside the artifact"),
        ));
    }
    Ok(())
}

impl Ord for ItemKey {
    /// model-signing sorts by path components (Python `PurePosixPath` order), then range.
    fn cmp(&self, other: &Self) -> Ordering {
        self.path
            .split('/')
            .cmp(other.path.split('/'))
            .then(self.range.cmp(&other.range))
    }
}

impl PartialOrd for ItemKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// An artifact's manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// Informative name (the directory or file name); not part of integrity.
    pub model_name: String,
    /// How the items were computed.
    pub serialization: Serialization,
    /// Every item with its SHA-256, in canonical order.
    pub items: BTreeMap<ItemKey, Sha256Digest>,
    /// Empty files of a shards manifest. model-signing's shard serialization gives an empty
    /// file no item at all, so without this list an added empty file would go unnoticed;
    /// Edgeward records them in its predicate extension and checks them.
    pub empty_files: BTreeSet<String>,
}

impl Manifest {
    /// The subject digest: SHA-256 over the item digests in canonical order.
    pub fn root_digest(&self) -> Sha256Digest {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        for d in self.items.values() {
            h.update(d);
        }
        h.finalize().into()
    }

    /// Total bytes covered by the items (for shards: the sum of range lengths); `None` for
    /// the files method, or if the sum does not fit in a `u64` (a parsed statement may list
    /// ranges of any length).
    pub fn covered_bytes(&self) -> Option<u64> {
        self.items.keys().try_fold(0u64, |sum, k| {
            let (start, end) = k.range?;
            sum.checked_add(end.checked_sub(start)?)
        })
    }

    /// Checks that `actual` (recomputed from disk) equals `self` (signed). The error names
    /// the first difference in canonical order and counts the rest.
    pub fn check_matches(&self, actual: &Manifest) -> Result<(), Error> {
        let mut problems: Vec<String> = Vec::new();
        let signed_sizes = self.file_sizes();
        let found_sizes = actual.file_sizes();
        for (path, signed) in &signed_sizes {
            match found_sizes.get(path) {
                None => problems.push(format!("file {path:?} is signed but missing")),
                Some(found) if found != signed => problems.push(format!(
                    "file {path:?} changed size: signed {} bytes, found {}",
                    signed.unwrap_or(0),
                    found.unwrap_or(0)
                )),
                _ => {}
            }
        }
        for path in found_sizes.keys() {
            if !signed_sizes.contains_key(path) {
                problems.push(format!("file {path:?} is not covered by the signature"));
            }
        }
        for path in &self.empty_files {
            if !actual.empty_files.contains(path) {
                problems.push(format!("empty file {path:?} is signed but missing"));
            }
        }
        for path in &actual.empty_files {
            if !self.empty_files.contains(path) {
                problems.push(format!(
                    "empty file {path:?} is not covered by the signature"
                ));
            }
        }
        if problems.is_empty() {
            for (key, want) in &self.items {
                match actual.items.get(key) {
                    Some(got) if got == want => {}
                    Some(got) => problems.push(format!(
                        "{} was modified: signed sha256 {}…, found {}…",
                        describe(key),
                        hex::encode(&want[..6]),
                        hex::encode(&got[..6])
                    )),
                    None => problems.push(format!("{} is signed but missing", describe(key))),
                }
            }
            for key in actual.items.keys() {
                if !self.items.contains_key(key) {
                    problems.push(format!("{} is not covered by the signature", describe(key)));
                }
            }
        }
        match problems.len() {
            0 => Ok(()),
            1 => Err(Error::Integrity(problems.remove(0))),
            n => Err(Error::Integrity(format!(
                "{} (and {} more difference{})",
                problems.remove(0),
                n - 1,
                if n == 2 { "" } else { "s" }
            ))),
        }
    }

    /// Per file: its size for shard manifests (the largest shard end), else `None`; used to
    /// tell added, removed and resized files apart from modified ones.
    fn file_sizes(&self) -> BTreeMap<String, Option<u64>> {
        let mut sizes: BTreeMap<String, Option<u64>> = BTreeMap::new();
        for key in self.items.keys() {
            let entry = sizes.entry(key.path.clone()).or_insert(None);
            if let Some((_, end)) = key.range {
                *entry = Some(entry.map_or(end, |e| e.max(end)));
            }
        }
        sizes
    }
}

fn describe(key: &ItemKey) -> String {
    match key.range {
        None => format!("file {:?}", key.path),
        Some((s, e)) => format!("file {:?} bytes {s}..{e}", key.path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_is_by_path_components_like_python() {
        let a = ItemKey {
            path: "a/b".into(),
            range: None,
        };
        let b = ItemKey {
            path: "a.txt".into(),
            range: None,
        };
        assert!(
            a < b,
            "Python's PurePosixPath('a/b') < PurePosixPath('a.txt')"
        );
        let s1 = ItemKey {
            path: "f".into(),
            range: Some((0, 4)),
        };
        let s2 = ItemKey {
            path: "f".into(),
            range: Some((4, 6)),
        };
        assert!(s1 < s2);
    }

    #[test]
    fn names_are_validated() {
        let shards = Method::Shards { shard_size: 10 };
        assert!(ItemKey::parse("a:0:10", shards).is_ok());
        for bad in [
            "a:0:11", "a:5:5", "a:0", "a:x:1", "../a:0:1", "/a:0:1", "a//b:0:1", "a:+1:2",
        ] {
            assert!(ItemKey::parse(bad, shards).is_err(), "{bad}");
        }
        assert!(ItemKey::parse(".", Method::Files).is_ok());
        assert!(ItemKey::parse("a/../b", Method::Files).is_err());
    }
}
