//! The telemetry queue: every event is appended to `queue/events.log` (one JSON line, the
//! file synced) before anything tries to send it, so a crash or a long outage loses
//! nothing. Events carry sequence numbers that never repeat; the server acknowledges a
//! batch by its last number, which the queue records (`queue/meta.json`, written
//! atomically) before forgetting the events — so an acknowledged event is never sent again,
//! and one whose acknowledgement was lost is recognised by the server as a duplicate.
//! At the bound the oldest events are dropped, counted, and the count is itself reported.

use std::{
    collections::VecDeque,
    fs::{File, OpenOptions},
    io::{BufRead, BufReader, Write},
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use crate::{files, AgentError};

/// Largest single event (one line of the log).
pub const MAX_EVENT: usize = 64 * 1024;
const LOG: &str = "events.log";
const META: &str = "meta.json";

/// What survives restarts besides the events.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
struct Meta {
    /// The next sequence number to assign.
    next_seq: u64,
    /// Every event up to this number was acknowledged by the server.
    acked: u64,
    /// Every event up to this number was dropped at the bound (never sent).
    dropped_through: u64,
    /// Events dropped at the bound, ever.
    dropped: u64,
    /// How many of those the server has been told about.
    dropped_reported: u64,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    seq: u64,
    event: Box<serde_json::value::RawValue>,
}

/// A batch ready to send: sequence numbers `first..=last` and the request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// The first event's number.
    pub first: u64,
    /// The last event's number.
    pub last: u64,
    /// `{"first_seq": …, "last_seq": …, "records": [ … ]}`.
    pub body: Vec<u8>,
}

/// The on-disk queue.
pub struct Queue {
    dir: PathBuf,
    log: File,
    meta: Meta,
    /// Live events (not acknowledged, not dropped), oldest first.
    events: VecDeque<(u64, String)>,
    /// Lines in the log file (live or not), to know when to compact.
    log_lines: u64,
    max: u64,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("dir", &self.dir)
            .field("len", &self.events.len())
            .field("meta", &self.meta)
            .finish()
    }
}

impl Queue {
    /// Opens (or creates) the queue in `dir`, holding at most `max` events. A torn last
    /// line (a crash mid-append) is cut off; the events before it are kept.
    pub fn open(dir: &Path, max: u64) -> Result<Self, AgentError> {
        files::ensure_private_dir(dir)?;
        let meta_path = dir.join(META);
        let mut meta: Meta = match files::read_bounded(&meta_path, 4096)? {
            Some(b) => serde_json::from_slice(&b)
                .map_err(|e| AgentError::Protocol(format!("{}: {e}", meta_path.display())))?,
            None => Meta {
                next_seq: 1,
                ..Meta::default()
            },
        };
        let log_path = dir.join(LOG);
        let mut events = VecDeque::new();
        let mut good_len = 0u64;
        let mut log_lines = 0u64;
        if let Ok(f) = File::open(&log_path) {
            let mut reader = BufReader::new(f);
            let mut line = String::new();
            loop {
                line.clear();
                let n = reader
                    .read_line(&mut line)
                    .map_err(|e| AgentError::io(&log_path, e))?;
                if n == 0 || !line.ends_with('\n') {
                    break;
                }
                let Ok(parsed) = serde_json::from_str::<Line>(line.trim_end()) else {
                    break;
                };
                good_len += n as u64;
                log_lines += 1;
                meta.next_seq = meta.next_seq.max(parsed.seq + 1);
                if parsed.seq > meta.acked.max(meta.dropped_through) {
                    events.push_back((parsed.seq, parsed.event.get().to_string()));
                }
            }
        }
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| AgentError::io(&log_path, e))?;
        // Cut a torn tail so the next append starts on a line of its own.
        log.set_len(good_len)
            .map_err(|e| AgentError::io(&log_path, e))?;
        let mut q = Queue {
            dir: dir.to_path_buf(),
            log,
            meta,
            events,
            log_lines,
            max: max.max(1),
        };
        q.enforce_bound()?;
        Ok(q)
    }

    /// Live events waiting to be sent.
    pub fn len(&self) -> u64 {
        self.events.len() as u64
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Events dropped at the bound, ever.
    pub fn dropped(&self) -> u64 {
        self.meta.dropped
    }

    /// Drops the server has not been told about yet.
    pub fn unreported_drops(&self) -> u64 {
        self.meta.dropped - self.meta.dropped_reported
    }

    /// Appends `event` (a JSON object) durably and returns its sequence number.
    pub fn push(&mut self, event: &serde_json::Value) -> Result<u64, AgentError> {
        let raw = serde_json::to_string(event).map_err(|e| AgentError::Protocol(e.to_string()))?;
        if raw.len() > MAX_EVENT || !raw.starts_with('{') {
            return Err(AgentError::Protocol(format!(
                "an event is a JSON object of at most {MAX_EVENT} bytes"
            )));
        }
        let seq = self.meta.next_seq;
        let line = format!("{{\"seq\":{seq},\"event\":{raw}}}\n");
        let path = self.dir.join(LOG);
        self.log
            .write_all(line.as_bytes())
            .and_then(|()| self.log.sync_data())
            .map_err(|e| AgentError::io(&path, e))?;
        self.meta.next_seq += 1;
        self.log_lines += 1;
        self.events.push_back((seq, raw));
        self.enforce_bound()?;
        Ok(seq)
    }

    /// Records that the drops counted so far were reported (in an event just pushed).
    pub fn drops_reported(&mut self) -> Result<(), AgentError> {
        self.meta.dropped_reported = self.meta.dropped;
        self.save_meta()
    }

    fn enforce_bound(&mut self) -> Result<(), AgentError> {
        let mut changed = false;
        while self.events.len() as u64 > self.max {
            if let Some((seq, _)) = self.events.pop_front() {
                self.meta.dropped_through = seq;
                self.meta.dropped += 1;
                changed = true;
            }
        }
        if changed {
            self.save_meta()?;
        }
        Ok(())
    }

    /// The oldest events, at most `max` of them, as one request body.
    pub fn batch(&self, max: usize) -> Option<Batch> {
        let (first, _) = self.events.front()?;
        let mut body = format!("{{\"first_seq\":{first},\"last_seq\":");
        let taken: Vec<&(u64, String)> = self.events.iter().take(max.max(1)).collect();
        let last = taken.last().map(|(s, _)| *s)?;
        body.push_str(&format!("{last},\"records\":["));
        for (i, (_, event)) in taken.iter().enumerate() {
            if i > 0 {
                body.push(',');
            }
            body.push_str(event);
        }
        body.push_str("]}");
        Some(Batch {
            first: *first,
            last,
            body: body.into_bytes(),
        })
    }

    /// Records that the server holds every event up to `through`, then forgets them.
    pub fn ack(&mut self, through: u64) -> Result<u64, AgentError> {
        if through <= self.meta.acked {
            return Ok(0);
        }
        self.meta.acked = through;
        self.save_meta()?;
        let before = self.events.len();
        while self.events.front().is_some_and(|(s, _)| *s <= through) {
            self.events.pop_front();
        }
        let removed = (before - self.events.len()) as u64;
        if self.log_lines > 2 * self.events.len() as u64 + 64 {
            self.compact()?;
        }
        Ok(removed)
    }

    /// Rewrites the log with only the live events.
    fn compact(&mut self) -> Result<(), AgentError> {
        let mut data = String::new();
        for (seq, event) in &self.events {
            data.push_str(&format!("{{\"seq\":{seq},\"event\":{event}}}\n"));
        }
        let path = self.dir.join(LOG);
        files::write_atomic(&path, data.as_bytes(), true)?;
        self.log = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(|e| AgentError::io(&path, e))?;
        self.log_lines = self.events.len() as u64;
        Ok(())
    }

    fn save_meta(&self) -> Result<(), AgentError> {
        let bytes =
            serde_json::to_vec(&self.meta).map_err(|e| AgentError::Protocol(e.to_string()))?;
        files::write_atomic(&self.dir.join(META), &bytes, true)
    }

    /// The live events as JSON text lines (for a forensic bundle).
    pub fn snapshot(&self) -> Vec<String> {
        self.events.iter().map(|(_, e)| e.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn survives_reopen_and_torn_tail_and_acks_are_durable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut q = Queue::open(dir.path(), 100).expect("open");
        for i in 0..5 {
            assert_eq!(q.push(&json!({ "i": i })).expect("push"), i + 1);
        }
        assert_eq!(q.ack(2).expect("ack"), 2);
        drop(q);
        // A crash mid-append leaves half a line.
        let mut f = OpenOptions::new()
            .append(true)
            .open(dir.path().join(LOG))
            .expect("log");
        f.write_all(b"{\"seq\":6,\"event\":{\"i\"").expect("write");
        drop(f);
        let mut q = Queue::open(dir.path(), 100).expect("reopen");
        assert_eq!(q.len(), 3);
        let b = q.batch(10).expect("batch");
        assert_eq!((b.first, b.last), (3, 5));
        assert_eq!(
            String::from_utf8(b.body).expect("utf8"),
            r#"{"first_seq":3,"last_seq":5,"records":[{"i":2},{"i":3},{"i":4}]}"#
        );
        // Numbers never repeat, even for the torn event's number.
        assert_eq!(q.push(&json!({ "i": 5 })).expect("push"), 6);
        q.ack(6).expect("ack");
        assert!(q.is_empty() && q.batch(10).is_none());
        drop(q);
        let q = Queue::open(dir.path(), 100).expect("reopen");
        assert!(q.is_empty());
        assert_eq!(q.meta.next_seq, 7);
    }

    #[test]
    fn the_bound_drops_the_oldest_and_counts_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut q = Queue::open(dir.path(), 3).expect("open");
        for i in 0..5 {
            q.push(&json!({ "i": i })).expect("push");
        }
        assert_eq!((q.len(), q.dropped(), q.unreported_drops()), (3, 2, 2));
        assert_eq!(q.batch(10).map(|b| b.first), Some(3));
        q.drops_reported().expect("reported");
        drop(q);
        let q = Queue::open(dir.path(), 3).expect("reopen");
        assert_eq!((q.len(), q.dropped(), q.unreported_drops()), (3, 2, 0));
        let e = Queue::open(dir.path(), 3)
            .expect("open")
            .push(&json!("not an object"))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "protocol: an event is a JSON object of at most 65536 bytes"
        );
    }
}
