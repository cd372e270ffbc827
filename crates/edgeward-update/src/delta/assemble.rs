//! Writing a new target into its destination (the inactive slot, or a partial file) from
//! local chunks and fetched ones, resumably.
//!
//! Every chunk, local or fetched, is hashed and compared with its signed SHA-256 before a
//! byte of it is written; the whole target's length and signed hashes are checked at the
//! end, over the chunks in order (computed on other cores meanwhile). Verified chunks are
//! written in batches of about 1 MiB. Consecutive chunks to fetch are asked for with one HTTP
//! range request (at most [`Options::max_request`] bytes); a cut connection is retried
//! from the first chunk not yet written.
//!
//! Progress survives a reboot: after every [`Options::sync_every`] bytes the destination
//! is fsynced and then the number of chunks written is saved (atomically) in a small
//! progress file naming the target's length and hashes. A restart re-hashes those chunks
//! in the destination — a torn or altered chunk is simply written again — and goes on
//! from there. The installed version (the active slot, the sources of local chunks) is
//! only ever read.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};

use super::background::BackgroundCheck;
use super::index::{Chunk, ChunkIndex};
use super::plan::{LocalChunks, Plan, Step};
use crate::fsio;
use crate::tuf::hash::{sha256, HashError};
use crate::tuf::metadata::TargetFile;
use crate::tuf::transport::{FetchError, Transport};

/// Why a target could not be assembled. The destination then holds only verified chunks
/// (or nothing new) and must not be installed.
#[derive(Debug, thiserror::Error)]
pub enum DeltaError {
    /// A chunk's bytes do not match its signed hash.
    #[error("chunk {index} (bytes {offset}..{end}) of {target}: sha256 {got} does not match the signed {expected}")]
    ChunkMismatch {
        /// Target path.
        target: String,
        /// Chunk number.
        index: usize,
        /// Its offset in the target.
        offset: u64,
        /// Offset just past it.
        end: u64,
        /// Signed SHA-256 (hex).
        expected: String,
        /// SHA-256 of the bytes received (hex).
        got: String,
    },
    /// The assembled target does not match its signed length and hashes.
    #[error("{target} as assembled {source}")]
    Whole {
        /// Target path.
        target: String,
        /// The mismatch.
        source: HashError,
    },
    /// The chunk index does not describe the target's signed length.
    #[error("{target}: the chunk index covers {covered} bytes, the signed length is {length}")]
    IndexLength {
        /// Target path.
        target: String,
        /// Bytes the index covers.
        covered: u64,
        /// Signed length.
        length: u64,
    },
    /// Fetching failed (after the retries, for network failures).
    #[error("fetching {target}: {source}")]
    Fetch {
        /// Target path.
        target: String,
        /// The last failure.
        source: FetchError,
    },
    /// Reading or writing local files failed.
    #[error("{path}: {source}")]
    Storage {
        /// The file.
        path: String,
        /// The I/O error.
        source: io::Error,
    },
}

/// Tuning of an assembly.
#[derive(Debug, Clone)]
pub struct Options {
    /// Longest single range request.
    pub max_request: u64,
    /// Consecutive failed requests (network errors, stalls, 5xx, 429) before giving up.
    pub retries: u32,
    /// Wait before retry *n* is `n` times this.
    pub backoff: Duration,
    /// Bytes written between progress saves.
    pub sync_every: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_request: 8 << 20,
            retries: 5,
            backoff: Duration::from_millis(500),
            sync_every: 4 << 20,
        }
    }
}

/// What an assembly did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Bytes fetched and written.
    pub fetched: u64,
    /// Bytes copied from the device.
    pub reused: u64,
    /// Bytes kept from an interrupted earlier run (re-verified).
    pub resumed: u64,
    /// Range requests made (including failed ones).
    pub requests: u64,
}

/// One target to assemble.
pub struct Job<'a> {
    /// Target path (for messages).
    pub target: &'a str,
    /// Its signed length and hashes.
    pub file: &'a TargetFile,
    /// Its signed chunk index.
    pub index: &'a ChunkIndex,
    /// Where to fetch it (the URL the TUF client gives for the target).
    pub url: &'a str,
    /// Destination: a file, or the inactive slot's block device.
    pub dest: &'a Path,
    /// Where progress is kept between runs.
    pub progress: &'a Path,
}

struct Run<'a> {
    job: &'a Job<'a>,
    out: File,
    whole: BackgroundCheck,
    report: Report,
    unsynced: u64,
    options: &'a Options,
    /// Verified chunks not yet written, contiguous from `pending_at`.
    pending: Vec<u8>,
    pending_at: u64,
}

/// Verified chunks are written in batches of about this many bytes.
const WRITE_BATCH: usize = 1 << 20;

impl Run<'_> {
    fn storage(&self, path: &Path, source: io::Error) -> DeltaError {
        DeltaError::Storage {
            path: path.display().to_string(),
            source,
        }
    }

    fn mismatch(&self, i: usize, c: &Chunk, got: [u8; 32]) -> DeltaError {
        DeltaError::ChunkMismatch {
            target: self.job.target.to_string(),
            index: i,
            offset: c.offset,
            end: c.offset + u64::from(c.length),
            expected: hex::encode(c.sha256),
            got: hex::encode(got),
        }
    }

    /// Writes verified chunk `i` (batched with its neighbours) and saves progress when
    /// enough bytes are unsynced.
    fn write(&mut self, i: usize, c: &Chunk, bytes: &[u8]) -> Result<(), DeltaError> {
        if self.pending_at + self.pending.len() as u64 != c.offset {
            self.flush()?;
        }
        if self.pending.is_empty() {
            self.pending_at = c.offset;
        }
        self.pending.extend_from_slice(bytes);
        self.whole.update(bytes);
        self.unsynced += bytes.len() as u64;
        if self.pending.len() >= WRITE_BATCH {
            self.flush()?;
        }
        if self.unsynced >= self.options.sync_every {
            self.save(i + 1)?;
        }
        Ok(())
    }

    /// Writes the pending chunks.
    fn flush(&mut self) -> Result<(), DeltaError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.out
            .write_all_at(&self.pending, self.pending_at)
            .map_err(|e| self.storage(self.job.dest, e))?;
        crate::install::points::reached("write verified chunks");
        self.pending_at += self.pending.len() as u64;
        self.pending.clear();
        Ok(())
    }

    /// Makes chunks `..done` durable, then records that they are.
    fn save(&mut self, done: usize) -> Result<(), DeltaError> {
        self.flush()?;
        self.out
            .sync_data()
            .map_err(|e| self.storage(self.job.dest, e))?;
        crate::install::points::reached("fsync the destination");
        let record = progress_record(self.job.file, done);
        fsio::write_atomic(self.job.progress, record.to_string().as_bytes())
            .map_err(|e| self.storage(self.job.progress, e))?;
        self.unsynced = 0;
        Ok(())
    }
}

fn progress_record(file: &TargetFile, done: usize) -> Value {
    json!({"length": file.length, "hashes": file.hashes, "chunks_done": done})
}

/// Chunks recorded as written by an earlier run of the same target (0 when none or when
/// the record is for another target).
fn recorded_progress(job: &Job<'_>) -> usize {
    let Ok(Some(bytes)) = fsio::read_bounded(job.progress, 64 * 1024) else {
        return 0;
    };
    let Ok(v) = serde_json::from_slice::<Value>(&bytes) else {
        return 0;
    };
    let same =
        v["length"].as_u64() == Some(job.file.length) && v["hashes"] == json!(job.file.hashes);
    match v["chunks_done"].as_u64() {
        Some(n) if same => usize::try_from(n)
            .unwrap_or(usize::MAX)
            .min(job.index.chunks.len()),
        _ => 0,
    }
}

/// Assembles `job` following `plan`, fetching through `transport`.
pub fn assemble(
    job: &Job<'_>,
    plan: &Plan,
    local: &LocalChunks,
    transport: &dyn Transport,
    options: &Options,
) -> Result<Report, DeltaError> {
    let covered = job.index.total_length();
    if covered != job.file.length || plan.steps.len() != job.index.chunks.len() {
        return Err(DeltaError::IndexLength {
            target: job.target.to_string(),
            covered,
            length: job.file.length,
        });
    }
    let whole = BackgroundCheck::start(&job.file.hashes)
        .map_err(|source| DeltaError::Whole {
            target: job.target.to_string(),
            source,
        })?
        .map_err(|e| DeltaError::Storage {
            path: "(hashing thread)".into(),
            source: e,
        })?;
    let out = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(job.dest)
        .map_err(|e| DeltaError::Storage {
            path: job.dest.display().to_string(),
            source: e,
        })?;
    let mut run = Run {
        job,
        out,
        whole,
        report: Report::default(),
        unsynced: 0,
        options,
        pending: Vec::with_capacity(WRITE_BATCH + (64 << 10)),
        pending_at: 0,
    };
    let chunks = &job.index.chunks;

    // Chunks an earlier run wrote: kept only if they still hash right.
    let mut i = 0;
    let recorded = recorded_progress(job);
    while i < recorded {
        let c = chunks[i];
        let mut buf = vec![0u8; c.length as usize];
        if run.out.read_exact_at(&mut buf, c.offset).is_err() || sha256(&buf) != c.sha256 {
            break;
        }
        run.whole.update(&buf);
        run.report.resumed += u64::from(c.length);
        i += 1;
    }

    let mut failures = 0u32;
    while i < chunks.len() {
        if let Step::Local(loc) = &plan.steps[i] {
            let c = chunks[i];
            let bytes = local.read(loc, c.length).ok();
            if let Some(bytes) = bytes.filter(|b| sha256(b) == c.sha256) {
                run.write(i, &c, &bytes)?;
                run.report.reused += u64::from(c.length);
                i += 1;
                continue;
            }
            // The local copy changed or vanished since the scan: fetch this chunk.
        }
        // A run of chunks to fetch (a local chunk that failed counts as one).
        let start = i;
        let mut end = i + 1;
        let mut len = u64::from(chunks[i].length);
        while end < chunks.len()
            && plan.steps[end] == Step::Fetch
            && len + u64::from(chunks[end].length) <= options.max_request
        {
            len += u64::from(chunks[end].length);
            end += 1;
        }
        let before = i;
        match fetch_run(&mut run, start, end, &mut i, transport) {
            Ok(()) => failures = 0,
            Err(RunError::Delta(e)) => {
                let _ = run.save(i);
                return Err(e);
            }
            Err(RunError::Fetch(e)) => {
                let _ = run.save(i);
                if i == before {
                    failures += 1;
                } else {
                    failures = 1;
                }
                if !retryable(&e) || failures > options.retries {
                    return Err(DeltaError::Fetch {
                        target: job.target.to_string(),
                        source: e,
                    });
                }
                tracing::warn!(target = job.target, chunk = i, error = %e, "range request failed; retrying");
                std::thread::sleep(options.backoff * failures);
            }
        }
    }

    run.flush()?;
    let Some(verified) = run.whole.finish(job.file.length) else {
        return Err(run.storage(
            Path::new("(hashing thread)"),
            io::Error::other("the thread hashing the whole target failed"),
        ));
    };
    if let Err(source) = verified {
        // The index and the whole hash disagree: this destination must never be used.
        let _ = fsio::remove_durably(job.progress);
        return Err(DeltaError::Whole {
            target: job.target.to_string(),
            source,
        });
    }
    let is_file = run.out.metadata().map(|m| m.is_file()).unwrap_or(false);
    if is_file {
        run.out
            .set_len(job.file.length)
            .map_err(|e| run.storage(job.dest, e))?;
    }
    run.out.sync_all().map_err(|e| run.storage(job.dest, e))?;
    crate::install::points::reached("fsync the assembled target");
    fsio::remove_durably(job.progress).map_err(|e| run.storage(job.progress, e))?;
    crate::install::points::reached("remove the progress record");
    Ok(run.report)
}

enum RunError {
    Delta(DeltaError),
    Fetch(FetchError),
}

fn retryable(e: &FetchError) -> bool {
    match e {
        FetchError::Network { .. } | FetchError::Stalled { .. } | FetchError::TooSlow { .. } => {
            true
        }
        // 429: the server's download budget is spent for now (it refills).
        FetchError::Status { status, .. } => *status >= 500 || *status == 429,
        _ => false,
    }
}

/// Fetches chunks `start..end` in one range request, writing each as soon as it is
/// complete and verified; `*next` is the first chunk not written.
fn fetch_run(
    run: &mut Run<'_>,
    start: usize,
    end: usize,
    next: &mut usize,
    transport: &dyn Transport,
) -> Result<(), RunError> {
    let job = run.job;
    let chunks = &job.index.chunks;
    let offset = chunks[start].offset;
    let last = chunks[end - 1];
    let len = last.offset + u64::from(last.length) - offset;
    let mut buf: Vec<u8> = Vec::with_capacity(chunks[start].length as usize);
    let mut failure: Option<DeltaError> = None;
    run.report.requests += 1;
    let result = transport.fetch_range(job.url, offset, len, &mut |mut data: &[u8]| {
        while !data.is_empty() {
            let c = chunks[*next];
            let want = c.length as usize - buf.len();
            let take = want.min(data.len());
            buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if buf.len() == c.length as usize {
                let got = sha256(&buf);
                if got != c.sha256 {
                    failure = Some(run.mismatch(*next, &c, got));
                    return Err(io::Error::other("chunk hash mismatch"));
                }
                if let Err(e) = run.write(*next, &c, &buf) {
                    failure = Some(e);
                    return Err(io::Error::other("write failed"));
                }
                run.report.fetched += u64::from(c.length);
                buf.clear();
                *next += 1;
            }
        }
        Ok(())
    });
    if let Some(e) = failure {
        return Err(RunError::Delta(e));
    }
    result.map_err(RunError::Fetch)
}

/// The default progress file for a destination file: `.NAME.progress` beside it.
pub fn progress_path(dest: &Path) -> PathBuf {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    dest.with_file_name(format!(".{name}.progress"))
}
