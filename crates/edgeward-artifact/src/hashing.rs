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

use crate::{walk, ArtifactError, Progress};

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
) -> Result<Manifest, ArtifactError> {
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
    // With fewer tasks than threads (e.g. one file in files mode) cores would idle: each
    // task then reads on a helper thread while its own thread hashes.
    let overlap_reads = tasks.len() < rayon::current_num_threads() && can_overlap();
    let digests: Result<Vec<(ItemKey, Sha256Digest)>, ArtifactError> = tasks
        .par_iter()
        .map_init(
            || vec![0u8; READ_BUF],
            |buf, task| {
                let digest = hash_task(task, buf, progress, overlap_reads)?;
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
    overlap_reads: bool,
) -> Result<Sha256Digest, ArtifactError> {
    let path = &task.entry.path;
    let mut file = File::open(path).map_err(|e| ArtifactError::io(path, e))?;
    let (start, want) = match task.range {
        Some((s, e)) => (s, e - s),
        None => (0, task.entry.len),
    };
    if start > 0 {
        file.seek(SeekFrom::Start(start))
            .map_err(|e| ArtifactError::io(path, e))?;
    }
    let (hasher, got) = if overlap_reads && want >= MIN_OVERLAP_BYTES {
        hash_stream_overlapped(&mut file, Some(want), path, progress)?
    } else {
        hash_stream(&mut file, Some(want), buf, path, progress)?
    };
    if got < want {
        return Err(changed(&task.entry.name));
    }
    // A whole-file digest must cover the whole file: more bytes now means it grew.
    if task.range.is_none()
        && file
            .read(&mut buf[..1])
            .map_err(|e| ArtifactError::io(path, e))?
            != 0
    {
        return Err(changed(&task.entry.name));
    }
    Ok(hasher.finalize().into())
}

/// Hashes `file` from its current position until end of file or, with `limit`, until
/// `limit` bytes; returns the hasher and the number of bytes hashed.
fn hash_stream(
    file: &mut File,
    limit: Option<u64>,
    buf: &mut [u8],
    path: &Path,
    progress: &dyn Progress,
) -> Result<(sha2::Sha256, u64), ArtifactError> {
    let mut hasher = sha2::Sha256::new();
    let mut total = 0u64;
    loop {
        let n = match limit {
            Some(limit) => buf
                .len()
                .min(usize::try_from(limit - total).unwrap_or(usize::MAX)),
            None => buf.len(),
        };
        if n == 0 {
            break;
        }
        let got = file
            .read(&mut buf[..n])
            .map_err(|e| ArtifactError::io(path, e))?;
        if got == 0 {
            break;
        }
        hasher.update(&buf[..got]);
        total += got as u64;
        progress.advance(got as u64);
    }
    Ok((hasher, total))
}

/// Buffer size and count of [`hash_stream_overlapped`]: 1 MiB reads (few system calls),
/// four in flight (4 MiB, well inside the shared L3 cache) so that neither thread waits for
/// the other. Of 64 KiB to 4 MiB, 1 MiB measured fastest.
const OVERLAP_BUF: usize = 1024 * 1024;
const OVERLAP_DEPTH: usize = 4;
/// Below this a helper thread costs more than it saves.
const MIN_OVERLAP_BYTES: u64 = 8 * 1024 * 1024;

/// [`hash_stream`] with the reads on a helper thread, so that copying from the page cache
/// (or waiting for the disk) overlaps SHA-256 on the calling thread. For a single stream:
/// its digest cannot be split between cores, but the reading can.
fn hash_stream_overlapped(
    file: &mut File,
    limit: Option<u64>,
    path: &Path,
    progress: &dyn Progress,
) -> Result<(sha2::Sha256, u64), ArtifactError> {
    use std::sync::mpsc::sync_channel;
    std::thread::scope(|scope| {
        // Filled buffers go to the hasher; emptied ones come back to the reader. Both
        // channels are created here so that when the hasher stops (at the end, or on an
        // error) its ends are dropped and the reader stops too.
        let (full_tx, full_rx) = sync_channel::<std::io::Result<(Vec<u8>, usize)>>(OVERLAP_DEPTH);
        let (empty_tx, empty_rx) = sync_channel::<Vec<u8>>(OVERLAP_DEPTH);
        for _ in 0..OVERLAP_DEPTH {
            // Cannot fail: the channel has room for all of them and the receiver is alive.
            let _ = empty_tx.send(vec![0u8; OVERLAP_BUF]);
        }
        scope.spawn(move || {
            let mut left = limit;
            while let Ok(mut buf) = empty_rx.recv() {
                let n = match left {
                    Some(l) => buf.len().min(usize::try_from(l).unwrap_or(usize::MAX)),
                    None => buf.len(),
                };
                if n == 0 {
                    break;
                }
                match file.read(&mut buf[..n]) {
                    Ok(0) => break,
                    Ok(got) => {
                        if let Some(l) = &mut left {
                            *l -= got as u64;
                        }
                        if full_tx.send(Ok((buf, got))).is_err() {
                            break;
                        }
                    }
                    Err(e) => {
                        let _ = full_tx.send(Err(e));
                        break;
                    }
                }
            }
        });
        let mut hasher = sha2::Sha256::new();
        let mut total = 0u64;
        for message in full_rx {
            let (buf, got) = message.map_err(|e| ArtifactError::io(path, e))?;
            hasher.update(&buf[..got]);
            total += got as u64;
            progress.advance(got as u64);
            let _ = empty_tx.send(buf);
        }
        Ok((hasher, total))
    })
}

/// Whether a helper thread may read while this one hashes (more than one CPU).
fn can_overlap() -> bool {
    std::thread::available_parallelism().is_ok_and(|n| n.get() > 1)
}

fn changed(name: &str) -> ArtifactError {
    ArtifactError::Artifact(format!(
        "file {name:?} changed size while it was being hashed"
    ))
}

/// SHA-256 of one whole file as a single stream (raw signatures sign this digest).
///
/// The file is read on a helper thread while this one hashes, when there is more than one
/// CPU: one SHA-256 stream cannot use several cores, but the reads can move off its core.
pub fn sha256_file(path: &Path, progress: &dyn Progress) -> Result<Sha256Digest, ArtifactError> {
    let mut file = File::open(path).map_err(|e| ArtifactError::io(path, e))?;
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    progress.start(len);
    let (hasher, _) = if len >= MIN_OVERLAP_BYTES && can_overlap() {
        hash_stream_overlapped(&mut file, None, path, progress)?
    } else {
        hash_stream(
            &mut file,
            None,
            &mut vec![0u8; 4 * READ_BUF],
            path,
            progress,
        )?
    };
    progress.finish();
    Ok(hasher.finalize().into())
}
