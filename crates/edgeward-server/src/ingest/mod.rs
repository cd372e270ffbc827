//! Group commit for telemetry: concurrent uploads are written in one transaction, together
//! with the sequence-number marks that recognise a batch sent again, and each request is
//! answered only after that transaction is committed (nothing acknowledged is lost, and a
//! batch is stored exactly when its mark is). The database does one round trip and one
//! synchronous commit per group, not per request.
//!
//! Requests are taken in the order they were queued: a caller that queues a device's
//! batches one after another ([`Ingest::submit`]) without waiting for each commit gets them
//! decided and stored in that order, so the dedup holds while they are pipelined.
//!
//! Each backend has its writer: on SQLite a thread of its own that calls SQLite directly
//! (`sqlite`), on PostgreSQL a task on the runtime with its own sqlx connection (`postgres`).
//! Both commit what `gather` collects, one group at a time.

mod postgres;
mod sqlite;

use std::{collections::HashMap, sync::Arc};

use axum::body::Bytes;
use tokio::sync::{mpsc, oneshot};

use crate::{
    config::TelemetrySync,
    db::{Backend, Db, DbError},
};

/// Most requests one commit takes.
pub const MAX_BATCH: usize = 512;

/// Most rows one insert statement takes (a commit runs as many as it needs). Each size is
/// its own prepared statement, so this also bounds how many statements a writer keeps.
pub const MAX_ROWS_PER_INSERT: usize = 64;

/// One telemetry batch to store.
#[derive(Debug, Clone)]
pub struct Row {
    /// The device that sent it.
    pub device: Arc<str>,
    /// When it was received (Unix seconds).
    pub at: i64,
    /// The JSON body as received (UTF-8).
    pub body: Bytes,
    /// Its event numbers `first..=last`, when the device numbers its events.
    pub seq: Option<(u64, u64)>,
}

/// What the writer did with a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// Stored now (with its mark, when numbered).
    New,
    /// Not stored: every event up to this number was stored already (the whole batch, or
    /// its start: the device resends from the next number).
    AlreadyHave(u64),
}

/// What a writer answers each waiting request: its outcome, or why nothing was stored.
type Ack = oneshot::Sender<Result<Stored, String>>;

type Item = (Row, Ack);

/// What a request is told when the writer is gone.
const STOPPED: &str = "the telemetry writer stopped";

/// The handle requests use to store a telemetry batch.
#[derive(Clone)]
pub struct Ingest {
    tx: mpsc::Sender<Item>,
}

/// A queued batch; [`Pending::committed`] waits for its group's commit.
#[derive(Debug)]
pub struct Pending(oneshot::Receiver<Result<Stored, String>>);

impl Pending {
    /// The batch's outcome once its group is committed (or why nothing was stored).
    pub async fn committed(self) -> Result<Stored, String> {
        self.0.await.map_err(|_| STOPPED.to_string())?
    }
}

impl Ingest {
    /// Opens the writer's own connection and starts the writer: a thread on SQLite, a task
    /// on the current runtime on PostgreSQL.
    /// `sync` says how SQLite commits (see [`TelemetrySync`]).
    pub async fn start(db: &Db, sync: TelemetrySync) -> Result<Self, DbError> {
        let (tx, rx) = mpsc::channel(2 * MAX_BATCH);
        match db.backend() {
            Backend::Sqlite => sqlite::start(db.url(), sync, rx)?,
            Backend::Postgres => postgres::start(db.url(), rx).await?,
        }
        Ok(Ingest { tx })
    }

    /// Queues one device's batch (UTF-8 JSON) behind every batch queued before it; waits
    /// only for room in the queue, not for the commit.
    pub async fn submit(&self, row: Row) -> Result<Pending, String> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send((row, done))
            .await
            .map_err(|_| STOPPED.to_string())?;
        Ok(Pending(wait))
    }

    /// Stores one device's batch; returns once it is committed (or recognised as held).
    pub async fn store(&self, row: Row) -> Result<Stored, String> {
        self.submit(row).await?.committed().await
    }
}

/// How often a writer yields to waiting requests before it commits a batch under load.
const LINGER_YIELDS: u32 = 8;

/// Waits for the next request and gathers those queued behind it into a batch. Under load
/// (the `previous` batch held more than one row) it first lets the request tasks run a
/// little, so that one commit carries more of them. `None` once every sender is gone.
async fn gather(rx: &mut mpsc::Receiver<Item>, previous: usize) -> Option<Vec<Item>> {
    let mut batch = vec![rx.recv().await?];
    let mut lingers = if previous > 1 { LINGER_YIELDS } else { 0 };
    while batch.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok(item) => batch.push(item),
            Err(_) if lingers > 0 => {
                lingers -= 1;
                tokio::task::yield_now().await;
            }
            Err(_) => break,
        }
    }
    Some(batch)
}

/// The devices of numbered batches in `rows`, each once: whose marks a commit reads.
fn numbered_devices(rows: &[Row]) -> Vec<Arc<str>> {
    let mut seen = std::collections::HashSet::new();
    rows.iter()
        .filter(|r| r.seq.is_some())
        .filter(|r| seen.insert(r.device.clone()))
        .map(|r| r.device.clone())
        .collect()
}

/// The rows `decisions` (from [`plan`]) says to store, in order.
fn new_rows<'a>(rows: &'a [Row], decisions: &[Stored]) -> Vec<&'a Row> {
    rows.iter()
        .zip(decisions)
        .filter(|(_, d)| **d == Stored::New)
        .map(|(r, _)| r)
        .collect()
}

/// Decides each row of a group in order, given the marks stored before it (`stored`, by
/// device; absent means nothing stored yet): a numbered batch whose first number is at or
/// below its device's mark is already held, any other batch is stored and raises the mark.
/// Returns the decisions and the marks the commit must write (each device once, its
/// highest).
fn plan(rows: &[Row], mut stored: HashMap<Arc<str>, u64>) -> (Vec<Stored>, Vec<(Arc<str>, u64)>) {
    let mut raised: Vec<Arc<str>> = Vec::new();
    let decisions = rows
        .iter()
        .map(|row| {
            let Some((first, last)) = row.seq else {
                return Stored::New;
            };
            let have = stored.get(&row.device).copied().unwrap_or(0);
            if have >= first {
                return Stored::AlreadyHave(have);
            }
            if !raised.contains(&row.device) {
                raised.push(row.device.clone());
            }
            stored.insert(row.device.clone(), last.max(have));
            Stored::New
        })
        .collect();
    let marks = raised
        .into_iter()
        .map(|d| {
            let mark = stored.get(&d).copied().unwrap_or(0);
            (d, mark)
        })
        .collect();
    (decisions, marks)
}

/// A mark as stored (BIGINT); numbers beyond it are kept at the largest.
fn mark_value(mark: u64) -> i64 {
    i64::try_from(mark).unwrap_or(i64::MAX)
}

/// A stored mark read back (a negative one, which this server never writes, counts as 0).
fn mark_of(stored: i64) -> u64 {
    u64::try_from(stored).unwrap_or(0)
}

/// `INSERT INTO telemetry … VALUES (…), (…)` for `rows` rows, with `placeholders(i)` giving
/// the parameters of row `i`.
fn insert_statement(rows: usize, placeholders: impl Fn(usize) -> String) -> String {
    let values: Vec<String> = (0..rows).map(placeholders).collect();
    format!(
        "INSERT INTO telemetry (device_id, received_at, body) VALUES {}",
        values.join(",")
    )
}

/// The body as text to store, exactly as received. The telemetry handler refuses what is
/// not UTF-8, so this only fails (failing the batch, never altering a byte) if a caller did
/// not check.
fn body_text(body: &Bytes) -> Result<&str, String> {
    std::str::from_utf8(body).map_err(|e| format!("a telemetry body is not UTF-8: {e}"))
}

/// Answers every request of a group with its decision once the group committed, or every
/// one with the error when it did not.
fn acknowledge(acks: Vec<Ack>, result: Result<Vec<Stored>, String>) {
    match result {
        Ok(decisions) => {
            for (ack, decision) in acks.into_iter().zip(decisions) {
                // A request that gave up waiting has nobody to tell.
                let _ = ack.send(Ok(decision));
            }
        }
        Err(e) => {
            for ack in acks {
                let _ = ack.send(Err(e.clone()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(device: &str, seq: Option<(u64, u64)>) -> Row {
        Row {
            device: device.into(),
            at: 1,
            body: Bytes::from_static(br#"{"records":[{"t":1}]}"#),
            seq,
        }
    }

    async fn sqlite() -> (tempfile::TempDir, std::path::PathBuf, Db, Ingest) {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("registry.db");
        let db = Db::connect(&format!("sqlite://{}?mode=rwc", path.display()))
            .await
            .expect("database");
        let ingest = Ingest::start(&db, TelemetrySync::Full)
            .await
            .expect("writer");
        (dir, path, db, ingest)
    }

    /// Within one group each batch is decided against the marks its predecessors left:
    /// a resend of a batch earlier in the same group is held, not stored twice.
    #[test]
    fn a_group_decides_its_batches_in_order() {
        let rows = [
            row("a", Some((1, 1))),
            row("a", Some((2, 3))),
            row("b", None),
            row("a", Some((2, 3))),
            row("c", Some((5, 5))),
            row("a", Some((4, 4))),
        ];
        let stored = HashMap::from([(Arc::from("a"), 1), (Arc::from("c"), 7)]);
        let (decisions, marks) = plan(&rows, stored);
        assert_eq!(
            decisions,
            [
                Stored::AlreadyHave(1),
                Stored::New,
                Stored::New,
                Stored::AlreadyHave(3),
                Stored::AlreadyHave(7),
                Stored::New,
            ]
        );
        assert_eq!(marks, [(Arc::from("a"), 4)]);
    }

    /// Batches queued one after another without waiting (pipelined) are decided in their
    /// order, whatever groups they fall into: each stored once, resends held.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pipelined_batches_are_stored_once_in_order() {
        let (_dir, _path, db, ingest) = sqlite().await;
        let mut pending = Vec::new();
        for n in 1..=300u64 {
            pending.push(
                ingest
                    .submit(row("dev-1", Some((n, n))))
                    .await
                    .expect("queued"),
            );
            // Every batch sent twice in a row, as after a lost acknowledgement.
            pending.push(
                ingest
                    .submit(row("dev-1", Some((n, n))))
                    .await
                    .expect("queued"),
            );
        }
        for (i, p) in pending.into_iter().enumerate() {
            let n = i as u64 / 2 + 1;
            let expected = if i % 2 == 0 {
                Stored::New
            } else {
                Stored::AlreadyHave(n)
            };
            assert_eq!(p.committed().await.expect("committed"), expected, "#{i}");
        }
        assert_eq!(db.telemetry_count("dev-1").await.expect("count"), 300);
    }

    /// A commit that fails is reported to every request of its group (which then answers
    /// 503) and leaves nothing behind: neither the group's batches nor their marks, so the
    /// resends after the fault are stored exactly once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_commit_stores_nothing_and_is_reported_to_every_waiting_request() {
        let (_dir, path, db, ingest) = sqlite().await;
        assert_eq!(
            ingest.store(row("dev-0", Some((1, 1)))).await,
            Ok(Stored::New)
        );

        // The marks' table goes away under the writer: the telemetry rows of the group
        // were inserted before the marks failed, and must not survive.
        let raw = rusqlite::Connection::open(&path).expect("open");
        raw.execute_batch("ALTER TABLE telemetry_seq RENAME TO telemetry_seq_away")
            .expect("rename");
        let waiting: Vec<_> = (0..20)
            .map(|i| {
                let ingest = ingest.clone();
                tokio::spawn(
                    async move { ingest.store(row(&format!("dev-{i}"), Some((2, 2)))).await },
                )
            })
            .collect();
        for w in waiting {
            let refused = w.await.expect("join").expect_err("nothing was stored");
            assert!(refused.contains("telemetry_seq"), "{refused}");
        }
        for i in 0..20 {
            let expected = i64::from(i == 0);
            assert_eq!(
                db.telemetry_count(&format!("dev-{i}"))
                    .await
                    .expect("count"),
                expected,
                "dev-{i}"
            );
        }

        raw.execute_batch("ALTER TABLE telemetry_seq_away RENAME TO telemetry_seq")
            .expect("rename back");
        for i in 0..20 {
            let device = format!("dev-{i}");
            assert_eq!(
                ingest.store(row(&device, Some((2, 2)))).await,
                Ok(Stored::New)
            );
            assert_eq!(
                ingest.store(row(&device, Some((2, 2)))).await,
                Ok(Stored::AlreadyHave(2))
            );
            assert_eq!(
                db.telemetry_count(&device).await.expect("count"),
                1 + i64::from(i == 0)
            );
        }
    }
}
