//! Group commit for telemetry: concurrent uploads are written in one multi-row insert, and
//! each request is answered only after its rows are committed (nothing acknowledged is
//! lost), so the database does one round trip and one commit per batch, not per request.

use tokio::sync::{mpsc, oneshot};

use crate::db::Db;

/// Most rows one commit takes.
pub const MAX_BATCH: usize = 256;

type Item = ((String, i64, String), oneshot::Sender<Result<(), String>>);

/// The handle requests use to store a telemetry batch.
#[derive(Clone)]
pub struct Ingest {
    tx: mpsc::Sender<Item>,
}

impl Ingest {
    /// Starts the writer task on the current runtime.
    pub fn start(db: Db) -> Self {
        let (tx, rx) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(writer(db, rx));
        Ingest { tx }
    }

    /// Stores one device's batch; returns once it is committed.
    pub async fn store(&self, device: &str, at: i64, body: String) -> Result<(), String> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send(((device.to_string(), at, body), done))
            .await
            .map_err(|_| "the telemetry writer stopped".to_string())?;
        wait.await
            .map_err(|_| "the telemetry writer stopped".to_string())?
    }
}

async fn writer(db: Db, mut rx: mpsc::Receiver<Item>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(item) => batch.push(item),
                Err(_) => break,
            }
        }
        let (rows, waiters): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
        let result = db
            .insert_telemetry_many(&rows)
            .await
            .map_err(|e| e.to_string());
        for w in waiters {
            let _ = w.send(result.clone());
        }
    }
}
