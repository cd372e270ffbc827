//! Which chunks of a new target the device already has, and which it must fetch.
//!
//! The device cuts its own data — the active slot, the previous version of a model — with
//! the parameters the new target's index names, and hashes each chunk; a chunk store (a
//! directory of chunks named by their SHA-256) may add more. Content-defined chunking
//! makes unchanged regions cut the same way in old and new data, wherever they moved.
//! Nothing found here is trusted: assembly re-hashes every local chunk before using it.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use super::index::{ChunkIndex, Params};
use crate::tuf::hash::sha256;

/// Where a copy of a chunk may be found on the device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// In local source number `source` (see [`LocalChunks::sources`]) at `offset`.
    Source {
        /// Index into the scanned sources.
        source: usize,
        /// Byte offset in that source.
        offset: u64,
    },
    /// A file of the chunk store.
    Store(PathBuf),
}

/// Chunks available on the device, by SHA-256.
#[derive(Debug, Default)]
pub struct LocalChunks {
    sources: Vec<PathBuf>,
    by_hash: HashMap<[u8; 32], (usize, u64)>,
    store: Option<PathBuf>,
}

impl LocalChunks {
    /// Cuts each of `sources` (at most `limit` bytes of each) with `params` and records
    /// where each chunk is. A source that does not exist is skipped (a device without an
    /// old model simply has nothing to reuse).
    pub fn scan(params: &Params, sources: &[PathBuf], limit: u64) -> io::Result<Self> {
        params
            .validate()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        let mut by_hash = HashMap::new();
        for (i, path) in sources.iter().enumerate() {
            let file = match File::open(path) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            params.chunk(io::BufReader::new(file).take(limit), |offset, data| {
                by_hash.entry(sha256(data)).or_insert((i, offset));
                Ok(())
            })?;
        }
        Ok(LocalChunks {
            sources: sources.to_vec(),
            by_hash,
            store: None,
        })
    }

    /// Also looks in `dir`, a chunk store of files named by the lowercase hex SHA-256 of
    /// their content.
    pub fn with_store(mut self, dir: impl Into<PathBuf>) -> Self {
        self.store = Some(dir.into());
        self
    }

    /// The scanned sources, in order.
    pub fn sources(&self) -> &[PathBuf] {
        &self.sources
    }

    /// Where a chunk with this hash may be.
    pub fn find(&self, hash: &[u8; 32]) -> Option<Location> {
        if let Some(&(source, offset)) = self.by_hash.get(hash) {
            return Some(Location::Source { source, offset });
        }
        let path = self.store.as_ref()?.join(hex::encode(hash));
        path.is_file().then_some(Location::Store(path))
    }

    /// Reads `length` bytes at `location` (unverified: the caller checks the hash).
    pub fn read(&self, location: &Location, length: u32) -> io::Result<Vec<u8>> {
        let mut buf = vec![0u8; length as usize];
        match location {
            Location::Source { source, offset } => {
                let path = self.sources.get(*source).ok_or_else(|| {
                    io::Error::new(io::ErrorKind::NotFound, "no such local source")
                })?;
                read_at(path, *offset, &mut buf)?;
            }
            Location::Store(path) => read_at(path, 0, &mut buf)?,
        }
        Ok(buf)
    }
}

fn read_at(path: &Path, offset: u64, buf: &mut [u8]) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    File::open(path)?.read_exact_at(buf, offset)
}

/// What to do for one chunk of the new target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Copy it from the device (after checking its hash).
    Local(Location),
    /// Fetch it from the repository.
    Fetch,
}

/// The plan for one target: one step per chunk of its index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// One step per chunk, in order.
    pub steps: Vec<Step>,
    /// Bytes to fetch.
    pub fetch_bytes: u64,
    /// Bytes found on the device.
    pub reuse_bytes: u64,
}

impl Plan {
    /// Plans the assembly of `index` from `local`.
    pub fn new(index: &ChunkIndex, local: &LocalChunks) -> Self {
        let mut plan = Plan {
            steps: Vec::with_capacity(index.chunks.len()),
            fetch_bytes: 0,
            reuse_bytes: 0,
        };
        for c in &index.chunks {
            match local.find(&c.sha256) {
                Some(loc) => {
                    plan.reuse_bytes += u64::from(c.length);
                    plan.steps.push(Step::Local(loc));
                }
                None => {
                    plan.fetch_bytes += u64::from(c.length);
                    plan.steps.push(Step::Fetch);
                }
            }
        }
        plan
    }

    /// A plan that fetches everything (no local data).
    pub fn fetch_all(index: &ChunkIndex) -> Self {
        Plan::new(index, &LocalChunks::default())
    }
}
