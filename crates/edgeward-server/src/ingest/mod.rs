//! Group commit for telemetry: concurrent uploads are written in one multi-row insert, and
//! each request is answered only after its rows are committed (nothing acknowledged is
//! lost), so the database does one round trip and one commit per batch, not per request.
//!
//! Each backend has its writer: on SQLite a thread of its own that calls SQLite directly
//! (`sqlite`), on PostgreSQL a task on the runtime with its own sqlx connection (`postgres`).
//! Both commit what `gather` collects, one batch at a time.

mod postgres;
mod sqlite;

use std::sync::Arc;

use axum::body::Bytes;
use tokio::sync::{mpsc, oneshot};

use crate::db::{Backend, Db, DbError};

/// Most rows one commit takes. Each batch size is its own prepared statement, so this also
/// bounds how many statements a writer keeps prepared.
pub const MAX_BATCH: usize = 64;

/// One telemetry batch to store: the device id, when it was received (Unix seconds) and
/// the JSON body as received.
pub type Row = (Arc<str>, i64, Bytes);

/// What a writer answers each waiting request: committed, or why not.
type Ack = oneshot::Sender<Result<(), String>>;

type Item = (Row, Ack);

/// What a request is told when the writer is gone.
const STOPPED: &str = "the telemetry writer stopped";

/// The handle requests use to store a telemetry batch.
#[derive(Clone)]
pub struct Ingest {
    tx: mpsc::Sender<Item>,
}

impl Ingest {
    /// Opens the writer's own connection and starts the writer: a thread on SQLite, a task
    /// on the current runtime on PostgreSQL.
    pub async fn start(db: &Db) -> Result<Self, DbError> {
        let (tx, rx) = mpsc::channel(4 * MAX_BATCH);
        match db.backend() {
            Backend::Sqlite => sqlite::start(db.url(), rx)?,
            Backend::Postgres => postgres::start(db.url(), rx).await?,
        }
        Ok(Ingest { tx })
    }

    /// Stores one device's batch (UTF-8 JSON); returns once it is committed.
    pub async fn store(&self, device: Arc<str>, at: i64, body: Bytes) -> Result<(), String> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send(((device, at, body), done))
            .await
            .map_err(|_| STOPPED.to_string())?;
        wait.await.map_err(|_| STOPPED.to_string())?
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

/// Answers every request of a batch with the batch's outcome.
fn acknowledge(acks: Vec<Ack>, result: Result<(), String>) {
    for ack in acks {
        // A request that gave up waiting has nobody to tell.
        let _ = ack.send(result.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A commit that fails is reported to every request of its batch (which then answers
    /// 503): nothing is acknowledged that was not stored.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_commit_is_reported_to_every_waiting_request() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("registry.db");
        let db = Db::connect(&format!("sqlite://{}?mode=rwc", path.display()))
            .await
            .expect("database");
        let ingest = Ingest::start(&db).await.expect("writer");
        let body = Bytes::from_static(br#"{"records":[{"t":1}]}"#);
        ingest
            .store("dev-1".into(), 1, body.clone())
            .await
            .expect("stored");
        assert_eq!(db.telemetry_count("dev-1").await.expect("count"), 1);

        rusqlite::Connection::open(&path)
            .and_then(|c| c.execute_batch("DROP TABLE telemetry"))
            .expect("drop the table under the writer");
        let waiting: Vec<_> = (0..20)
            .map(|i| {
                let (ingest, body) = (ingest.clone(), body.clone());
                tokio::spawn(async move { ingest.store(format!("dev-{i}").into(), 2, body).await })
            })
            .collect();
        for w in waiting {
            let refused = w.await.expect("join").expect_err("nothing was stored");
            assert!(refused.contains("no such table"), "{refused}");
        }
    }
}
