//! The whole target's signed hashes, computed on other cores while the assembling thread
//! verifies chunks and writes them: a large image is hashed twice (each chunk against the
//! index, and the whole against every hash the target lists), and the second pass needs
//! no result before the end, so it runs in parallel — one thread per listed algorithm
//! (SHA-512 has no instructions of its own and is the slowest).

use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::tuf::hash::{HashCheck, HashError};
use crate::tuf::metadata::Hashes;

/// Bytes handed to the hashing threads at a time.
const BATCH: usize = 1 << 20;
/// Batches in flight per thread (bounds the memory: `DEPTH * BATCH`).
const DEPTH: usize = 8;

/// A [`HashCheck`] per listed hash, fed in order from the assembling thread, each on its
/// own thread.
pub(crate) struct BackgroundCheck {
    senders: Vec<SyncSender<Arc<Vec<u8>>>>,
    batch: Vec<u8>,
    workers: Vec<JoinHandle<HashCheck>>,
}

impl BackgroundCheck {
    /// Checks `hashes` (an unsupported algorithm fails here) and starts the threads.
    pub(crate) fn start(hashes: &Hashes) -> Result<Result<Self, std::io::Error>, HashError> {
        let mut checks = Vec::new();
        for (name, digest) in hashes {
            let one: Hashes = [(name.clone(), digest.clone())].into();
            checks.push(HashCheck::new(&one)?);
        }
        if checks.is_empty() {
            // No hash at all: HashCheck decides what that means.
            checks.push(HashCheck::new(hashes)?);
        }
        let mut this = BackgroundCheck {
            senders: Vec::new(),
            batch: Vec::with_capacity(BATCH),
            workers: Vec::new(),
        };
        for check in checks {
            let (tx, rx) = sync_channel::<Arc<Vec<u8>>>(DEPTH);
            let spawned = std::thread::Builder::new()
                .name("whole-hash".into())
                .spawn(move || {
                    let mut check = check;
                    for batch in rx {
                        check.update(&batch);
                    }
                    check
                });
            match spawned {
                Ok(worker) => {
                    this.senders.push(tx);
                    this.workers.push(worker);
                }
                Err(e) => return Ok(Err(e)),
            }
        }
        Ok(Ok(this))
    }

    /// Adds the next bytes of the target.
    pub(crate) fn update(&mut self, data: &[u8]) {
        self.batch.extend_from_slice(data);
        if self.batch.len() >= BATCH {
            self.send();
        }
    }

    fn send(&mut self) {
        let batch = Arc::new(std::mem::replace(
            &mut self.batch,
            Vec::with_capacity(BATCH),
        ));
        for tx in &self.senders {
            // A send fails only when the thread is gone; `finish` then reports it.
            let _ = tx.send(Arc::clone(&batch));
        }
    }

    /// Waits for the threads and checks the length and every hash; `None` when a thread
    /// died (the target is then not verified).
    pub(crate) fn finish(&mut self, length: u64) -> Option<Result<(), HashError>> {
        if !self.batch.is_empty() {
            self.send();
        }
        self.senders.clear();
        let mut result = Ok(());
        for worker in self.workers.drain(..) {
            let check = worker.join().ok()?;
            if let Err(e) = check.finish(Some(length)) {
                result = result.and(Err(e));
            }
        }
        Some(result)
    }
}

impl Drop for BackgroundCheck {
    fn drop(&mut self) {
        self.senders.clear();
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}
