//! The SQLite telemetry writer: a thread of its own holding its own connection and calling
//! SQLite directly (rusqlite), fed whole batches by a task on the runtime that gathers them.
//! Through sqlx every insert also crossed to sqlx's connection thread and back and
//! converted its arguments twice. A thread keeps the runtime's workers free when SQLite
//! waits for another connection's write lock (up to its busy timeout).

use std::str::FromStr;

use rusqlite::{types::ToSql, Connection, OpenFlags};
use sqlx::sqlite::SqliteConnectOptions;
use tokio::sync::{mpsc, oneshot};

use super::{acknowledge, body_text, gather, insert_statement, Item, Row, MAX_BATCH};
use crate::db::{DbError, SQLITE_PRAGMAS};

/// A batch for the thread, and where it says that the batch is done.
type Job = (Vec<Item>, oneshot::Sender<()>);

/// Opens the writer's connection to the (already migrated) database at `url`, starts the
/// writer thread and the task that feeds it; both run until every sender of `rx` is gone.
pub(super) fn start(url: &str, rx: mpsc::Receiver<Item>) -> Result<(), DbError> {
    let options = SqliteConnectOptions::from_str(url)?;
    let conn = Connection::open_with_flags(
        options.get_filename(),
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.execute_batch(SQLITE_PRAGMAS)?;
    conn.set_prepared_statement_cache_capacity(MAX_BATCH);
    let (jobs, queue) = std::sync::mpsc::channel::<Job>();
    std::thread::Builder::new()
        .name("telemetry-writer".into())
        .spawn(move || {
            let mut statements = Vec::new();
            for (batch, done) in queue {
                let (rows, acks): (Vec<Row>, Vec<_>) = batch.into_iter().unzip();
                acknowledge(acks, insert(&conn, &mut statements, &rows));
                let _ = done.send(());
            }
        })?;
    tokio::spawn(feed(rx, jobs));
    Ok(())
}

/// Gathers a batch, hands it to the thread and waits until it is committed (requests that
/// arrive meanwhile queue up for the next batch).
async fn feed(mut rx: mpsc::Receiver<Item>, jobs: std::sync::mpsc::Sender<Job>) {
    let mut previous = 0;
    while let Some(batch) = gather(&mut rx, previous).await {
        previous = batch.len();
        let (done, committed) = oneshot::channel();
        if jobs.send((batch, done)).is_err() || committed.await.is_err() {
            // The thread is gone: dropping `rx` fails every request that waits or comes.
            return;
        }
    }
}

/// Inserts `rows` with one multi-row statement (`statements[n - 1]` inserts `n` rows; built
/// on first use, then kept prepared by the connection's statement cache).
fn insert(conn: &Connection, statements: &mut Vec<String>, rows: &[Row]) -> Result<(), String> {
    if rows.is_empty() {
        return Ok(());
    }
    while statements.len() < rows.len() {
        // Plain `?`: numbered parameters make SQLite search the parameter list once per
        // bind, quadratic in the batch size.
        statements.push(insert_statement(statements.len() + 1, |_| {
            "(?, ?, ?)".to_string()
        }));
    }
    let bodies = rows
        .iter()
        .map(|(_, _, body)| body_text(body))
        .collect::<Result<Vec<_>, _>>()?;
    let mut params: Vec<&dyn ToSql> = Vec::with_capacity(3 * rows.len());
    for ((device, at, _), body) in rows.iter().zip(&bodies) {
        params.extend([device as &dyn ToSql, at, body]);
    }
    let result = conn
        .prepare_cached(&statements[rows.len() - 1])
        .and_then(|mut statement| statement.execute(params.as_slice()));
    match result {
        Ok(_) => Ok(()),
        Err(e) => {
            tracing::error!(%e, rows = rows.len(), "telemetry insert failed");
            Err(format!("telemetry insert: {e}"))
        }
    }
}
