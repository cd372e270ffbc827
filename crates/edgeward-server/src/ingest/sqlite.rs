//! The SQLite telemetry writer: a thread of its own holding its own connection and calling
//! SQLite directly (rusqlite), fed whole groups by a task on the runtime that gathers them.
//! Through sqlx every statement also crossed to sqlx's connection thread and back and
//! converted its arguments twice. A thread keeps the runtime's workers free when SQLite
//! waits for another connection's write lock (up to its busy timeout). Its commits sync as
//! `[database] telemetry_sync` says (FULL by default).

use std::{collections::HashMap, str::FromStr};

use rusqlite::{types::ToSql, Connection, OpenFlags, OptionalExtension, TransactionBehavior};
use sqlx::sqlite::SqliteConnectOptions;
use tokio::sync::{mpsc, oneshot};

use super::{
    acknowledge, body_text, gather, insert_statement, mark_of, mark_value, new_rows,
    numbered_devices, plan, Item, Row, Stored, MAX_ROWS_PER_INSERT,
};
use crate::{
    config::TelemetrySync,
    db::{DbError, SQLITE_PRAGMAS},
};

/// Raises a device's mark, never lowering it (`$1` device, `$2` mark).
const RAISE_MARK: &str = "INSERT INTO telemetry_seq (device_id, last_seq) VALUES ($1, $2) \
     ON CONFLICT (device_id) DO UPDATE SET last_seq = excluded.last_seq \
     WHERE telemetry_seq.last_seq < excluded.last_seq";

/// A group for the thread, and where it says that the group is done.
type Job = (Vec<Item>, oneshot::Sender<()>);

/// Opens the writer's connection to the (already migrated) database at `url`, starts the
/// writer thread and the task that feeds it; both run until every sender of `rx` is gone.
pub(super) fn start(
    url: &str,
    sync: TelemetrySync,
    rx: mpsc::Receiver<Item>,
) -> Result<(), DbError> {
    let mut conn = open(url, sync)?;
    let (jobs, queue) = std::sync::mpsc::channel::<Job>();
    std::thread::Builder::new()
        .name("telemetry-writer".into())
        .spawn(move || {
            let mut statements = Vec::new();
            for (group, done) in queue {
                let (rows, acks): (Vec<Row>, Vec<_>) = group.into_iter().unzip();
                let result = commit(&mut conn, &mut statements, &rows);
                if let Err(e) = &result {
                    tracing::error!(%e, rows = rows.len(), "telemetry commit failed");
                }
                acknowledge(acks, result);
                let _ = done.send(());
            }
        })?;
    tokio::spawn(feed(rx, jobs));
    Ok(())
}

/// The writer's connection, syncing as `sync` says.
fn open(url: &str, sync: TelemetrySync) -> Result<Connection, DbError> {
    let options = SqliteConnectOptions::from_str(url)?;
    let conn = Connection::open_with_flags(
        options.get_filename(),
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.execute_batch(SQLITE_PRAGMAS)?;
    if sync == TelemetrySync::Normal {
        // This connection only: the registry's and the audit log's stay FULL.
        conn.execute_batch("PRAGMA synchronous = NORMAL;")?;
    }
    conn.set_prepared_statement_cache_capacity(MAX_ROWS_PER_INSERT + 2);
    Ok(conn)
}

/// Gathers a group, hands it to the thread and waits until it is committed (requests that
/// arrive meanwhile queue up for the next group).
async fn feed(mut rx: mpsc::Receiver<Item>, jobs: std::sync::mpsc::Sender<Job>) {
    let mut previous = 0;
    while let Some(group) = gather(&mut rx, previous).await {
        previous = group.len();
        let (done, committed) = oneshot::channel();
        if jobs.send((group, done)).is_err() || committed.await.is_err() {
            // The thread is gone: dropping `rx` fails every request that waits or comes.
            return;
        }
    }
}

/// One transaction for the group: reads the marks of its numbered devices, decides each
/// batch ([`plan`]), inserts the new ones and raises the marks. Dropped (rolled back) on
/// any error, so a batch is stored exactly when its mark is.
fn commit(
    conn: &mut Connection,
    statements: &mut Vec<String>,
    rows: &[Row],
) -> Result<Vec<Stored>, String> {
    let sql = |e: rusqlite::Error| format!("telemetry commit: {e}");
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sql)?;
    let mut stored = HashMap::new();
    {
        let mut read = tx
            .prepare_cached("SELECT last_seq FROM telemetry_seq WHERE device_id = ?")
            .map_err(sql)?;
        for device in numbered_devices(rows) {
            let mark: Option<i64> = read
                .query_row([&*device], |r| r.get(0))
                .optional()
                .map_err(sql)?;
            if let Some(mark) = mark {
                stored.insert(device, mark_of(mark));
            }
        }
    }
    let (decisions, marks) = plan(rows, stored);
    for chunk in new_rows(rows, &decisions).chunks(MAX_ROWS_PER_INSERT) {
        insert(&tx, statements, chunk)?;
    }
    {
        let mut raise = tx.prepare_cached(RAISE_MARK).map_err(sql)?;
        for (device, mark) in &marks {
            raise
                .execute((&**device as &str, mark_value(*mark)))
                .map_err(sql)?;
        }
    }
    tx.commit().map_err(sql)?;
    Ok(decisions)
}

/// Inserts `rows` with one multi-row statement (`statements[n - 1]` inserts `n` rows; built
/// on first use, then kept prepared by the connection's statement cache).
fn insert(conn: &Connection, statements: &mut Vec<String>, rows: &[&Row]) -> Result<(), String> {
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
        .map(|r| body_text(&r.body))
        .collect::<Result<Vec<_>, _>>()?;
    let mut params: Vec<&dyn ToSql> = Vec::with_capacity(3 * rows.len());
    for (row, body) in rows.iter().zip(&bodies) {
        params.extend([&row.device as &dyn ToSql, &row.at, body]);
    }
    conn.prepare_cached(&statements[rows.len() - 1])
        .and_then(|mut statement| statement.execute(params.as_slice()))
        .map(|_| ())
        .map_err(|e| format!("telemetry insert: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `telemetry_sync` reaches the writer's connection, and only it.
    #[tokio::test]
    async fn the_writer_syncs_as_configured() {
        let dir = tempfile::tempdir().expect("tmp");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        let db = crate::db::Db::connect(&url).await.expect("database");
        let level = |c: &Connection| {
            c.query_row("PRAGMA synchronous", [], |r| r.get::<_, i64>(0))
                .expect("pragma")
        };
        // SQLite's levels: 1 NORMAL, 2 FULL.
        assert_eq!(level(&open(&url, TelemetrySync::Full).expect("open")), 2);
        assert_eq!(level(&open(&url, TelemetrySync::Normal).expect("open")), 1);
        let other: i64 = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(db.pool())
            .await
            .expect("registry pragma");
        assert_eq!(other, 2, "the registry's connections stay FULL");
    }
}
