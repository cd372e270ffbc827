//! Group commit for telemetry: concurrent uploads are written in one multi-row insert, and
//! each request is answered only after its rows are committed (nothing acknowledged is
//! lost), so the database does one round trip and one commit per batch, not per request.

use axum::body::Bytes;
use tokio::sync::{mpsc, oneshot};

use crate::db::{Db, DbError, TelemetryWriter};

/// Most rows one commit takes. Each batch size is its own prepared statement, so this also
/// bounds how many the connection keeps (sqlx caches 100 per connection).
pub const MAX_BATCH: usize = 64;

/// How often the writer yields to waiting requests before committing a batch under load.
const LINGER_YIELDS: u32 = 8;

type Item = ((String, i64, Bytes), oneshot::Sender<Result<(), String>>);

/// The handle requests use to store a telemetry batch.
#[derive(Clone)]
pub struct Ingest {
    tx: mpsc::Sender<Item>,
}

impl Ingest {
    /// Opens the writer's connection and starts the writer task on the current runtime.
    pub async fn start(db: &Db) -> Result<Self, DbError> {
        let conn = db.telemetry_writer().await?;
        let (tx, rx) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(writer(conn, rx));
        Ok(Ingest { tx })
    }

    /// Stores one device's batch (JSON, so UTF-8); returns once it is committed.
    pub async fn store(&self, device: String, at: i64, body: Bytes) -> Result<(), String> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send(((device, at, body), done))
            .await
            .map_err(|_| "the telemetry writer stopped".to_string())?;
        wait.await
            .map_err(|_| "the telemetry writer stopped".to_string())?
    }
}

async fn writer(mut conn: TelemetryWriter, mut rx: mpsc::Receiver<Item>) {
    let mut previous = 0;
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        // Under load (the last batch held more than one row) let the other request tasks
        // run a little first, so that one commit carries more of them.
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
        previous = batch.len();
        let (rows, waiters): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
        let result = conn.insert(&rows).await.map_err(|e| e.to_string());
        for w in waiters {
            let _ = w.send(result.clone());
        }
    }
}
