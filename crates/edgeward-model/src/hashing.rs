//! SHA-256 of files and shards, on every core.
//!
//! A manifest's items are independent, so they are hashed in parallel with rayon; with the
//! shards method a single large file is split into shards that the cores share. SHA-256 runs
//! on SHA-NI where the CPU has it (the `sha2` crate detects it at run time).

use std::{
    fs::File,
    io::{Read, Seek, SeekFrom},
    path::Path,
};

use edgeward_core::{
    manifest::{ItemKey, Manifest, Method, Serialization},
    Sha256Digest,
};
use rayon::prelude::*;
use sha2::Digest;

use crate::{walk, ModelError, Progress};

/// Edgeward's default shard size: 64 MiB, so a 1 GiB file gives 16 shards to share between
/// cores, while the statement stays small (16 entries per GiB).
pub const DEFAULT_SHARD_SIZE: u64 = 64 * 1024 * 1024;

const READ_BUF: usize = 1024 * 1024;

/// One unit of hashing work: `len` bytes of a file from `start` (or the whole file).
struct Task<'a> {
    entry: &'a walk::Entry,
    range: Option<(u64, u64)>,
}

/// Computes the manifest of the artifact at `root` with `serialization`'s method and
/// ignore paths.
pub fn manifest_of(
    root: &Path,
    serialization: &Serialization,
    progress: &dyn Progress,
) -> Result<Manifest, ModelError> {
    let entries = walk::list(root, &serialization.ignore_paths)?;
    let mut tasks = Vec::new();
    let mut empty_files = std::collections::BTreeSet::new();
    for entry in &entries {
        match serialization.method {
            Method::Files => tasks.push(Task { entry, range: None }),
            Method::Shards { shard_size } => {
                if entry.len == 0 {
                    empty_files.insert(entry.name.clone());
                }
                let mut start = 0;
                while start < entry.len {
                    let end = entry.len.min(start.saturating_add(shard_size));
                    tasks.push(Task {
                        entry,
                        range: Some((start, end)),
                    });
                    start = end;
                }
            }
        }
    }
    progress.start(entries.iter().map(|e| e.len).sum());
    // Largest tasks first keeps both cores busy to the end.
    tasks.sort_by_key(|t| std::cmp::Reverse(t.range.map_or(t.entry.len, |(s, e)| e - s)));
    let digests: Result<Vec<(ItemKey, Sha256Digest)>, ModelError> = tasks
        .par_iter()
        .map_init(
            || vec![0u8; READ_BUF],
            |buf, task| {
                let digest = hash_task(task, buf, progress)?;
                Ok((
                    ItemKey {
                        path: task.entry.name.clone(),
                        range: task.range,
                    },
                    digest,
                ))
            },
        )
        .collect();
    progress.finish();
    let model_name = root
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| ".".into());
    Ok(Manifest {
        model_name,
        serialization: serialization.clone(),
        items: digests?.into_iter().collect(),
        empty_files,
    })
}

fn hash_task(
    task: &Task<'_>,
    buf: &mut [u8],
    progress: &dyn Progress,
) -> Result<Sha256Digest, ModelError> {
    let path = &task.entry.path;
    let mut file = File::open(path).map_err(|e| ModelError::io(path, e))?;
    let (start, want) = match task.range {
        Some((s, e)) => (s, e - s),
        None => (0, task.entry.len),
    };
    if start > 0 {
        file.seek(SeekFrom::Start(start))
            .map_err(|e| ModelError::io(path, e))?;
    }
    let mut hasher = sha2::Sha256::new();
    let mut left = want;
    while left > 0 {
        let n = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let got = file
            .read(&mut buf[..n])
            .map_err(|e| ModelError::io(path, e))?;
        if got == 0 {
            return Err(changed(&task.entry.name));
        }
        hasher.update(&buf[..got]);
        left -= got as u64;
        progress.advance(got as u64);
    }
    // A whole-file digest must cover the whole file: more bytes now means it grew.
    if task.range.is_none()
        && file
            .read(&mut buf[..1])
            .map_err(|e| ModelError::io(path, e))?
            != 0
    {
        return Err(changed(&task.entry.name));
    }
    Ok(hasher.finalize().into())
}

fn changed(name: &str) -> ModelError {
    ModelError::Artifact(format!(
        "file {name:?} changed size while it was being hashed"
    ))
}

/// SHA-256 of one whole file as a single stream (raw signatures sign this digest).
pub fn sha256_file(path: &Path, progress: &dyn Progress) -> Result<Sha256Digest, ModelError> {
    let mut file = File::open(path).map_err(|e| ModelError::io(path, e))?;
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    progress.start(len);
    let mut buf = vec![0u8; 4 * READ_BUF];
    let mut hasher = sha2::Sha256::new();
    loop {
        let got = file.read(&mut buf).map_err(|e| ModelError::io(path, e))?;
        if got == 0 {
            break;
        }
        hasher.update(&buf[..got]);
        progress.advance(got as u64);
    }
    progress.finish();
    Ok(hasher.finalize().into())
}
