//! The PostgreSQL telemetry writer: a task on the runtime with a connection of its own, so
//! its statements stay prepared and it never waits for the registry's pool. A group that
//! fails drops the connection, and the next group connects again: a connection lost to a
//! restart or a network cut fails the batches of that moment (503), not every later one.

use std::collections::HashMap;

use sqlx::{Connection, PgConnection, Row as _};
use tokio::sync::mpsc;

use super::{
    acknowledge, body_text, gather, insert_statement, mark_of, mark_value, new_rows,
    numbered_devices, plan, Item, Row, Stored, MAX_ROWS_PER_INSERT,
};
use crate::db::DbError;

/// Raises the marks of a group's devices in one statement (`$1` devices, `$2` marks, each
/// device once), never lowering one.
const RAISE_MARKS: &str = "INSERT INTO telemetry_seq (device_id, last_seq) \
     SELECT * FROM UNNEST($1::text[], $2::bigint[]) \
     ON CONFLICT (device_id) DO UPDATE SET last_seq = excluded.last_seq \
     WHERE telemetry_seq.last_seq < excluded.last_seq";

/// Connects to `url` and starts the writer task on the current runtime.
pub(super) async fn start(url: &str, rx: mpsc::Receiver<Item>) -> Result<(), DbError> {
    let conn = PgConnection::connect(url).await?;
    tokio::spawn(run(url.to_string(), Some(conn), rx));
    Ok(())
}

async fn run(url: String, mut conn: Option<PgConnection>, mut rx: mpsc::Receiver<Item>) {
    let mut statements = Vec::new();
    let mut previous = 0;
    while let Some(group) = gather(&mut rx, previous).await {
        previous = group.len();
        let (rows, acks): (Vec<Row>, Vec<_>) = group.into_iter().unzip();
        if conn.is_none() {
            conn = match PgConnection::connect(&url).await {
                Ok(c) => Some(c),
                Err(e) => {
                    tracing::error!(%e, "the telemetry writer cannot reach PostgreSQL");
                    None
                }
            };
        }
        let result = match conn.as_mut() {
            Some(c) => commit(c, &mut statements, &rows)
                .await
                .map_err(|e| format!("telemetry commit: {e}")),
            None => Err("telemetry commit: PostgreSQL is unreachable".to_string()),
        };
        if let Err(e) = &result {
            tracing::error!(%e, rows = rows.len(), "telemetry commit failed");
            // Whatever broke, the next group starts on a fresh connection.
            conn = None;
        }
        acknowledge(acks, result);
    }
}

/// A failure inside a commit.
#[derive(Debug, thiserror::Error)]
enum CommitError {
    #[error("{0}")]
    Sql(#[from] sqlx::Error),
    #[error("{0}")]
    Body(String),
}

/// One transaction for the group: reads the marks of its numbered devices (one query),
/// decides each batch ([`plan`]), inserts the new ones and raises the marks. Rolled back on
/// any error (the transaction is dropped uncommitted), so a batch is stored exactly when
/// its mark is.
async fn commit(
    conn: &mut PgConnection,
    statements: &mut Vec<String>,
    rows: &[Row],
) -> Result<Vec<Stored>, CommitError> {
    let mut tx = conn.begin().await?;
    let devices = numbered_devices(rows);
    let mut stored = HashMap::new();
    if !devices.is_empty() {
        let names: Vec<&str> = devices.iter().map(|d| &**d).collect();
        let found =
            sqlx::query("SELECT device_id, last_seq FROM telemetry_seq WHERE device_id = ANY($1)")
                .bind(&names)
                .fetch_all(&mut *tx)
                .await?;
        for r in found {
            let device: String = r.try_get("device_id")?;
            let mark: i64 = r.try_get("last_seq")?;
            stored.insert(device.into(), mark_of(mark));
        }
    }
    let (decisions, marks) = plan(rows, stored);
    for chunk in new_rows(rows, &decisions).chunks(MAX_ROWS_PER_INSERT) {
        insert(&mut tx, statements, chunk).await?;
    }
    if !marks.is_empty() {
        let (devices, values): (Vec<&str>, Vec<i64>) =
            marks.iter().map(|(d, m)| (&**d, mark_value(*m))).unzip();
        sqlx::query(RAISE_MARKS)
            .bind(&devices)
            .bind(&values)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(decisions)
}

/// Inserts `rows` with one multi-row statement (`statements[n - 1]` inserts `n` rows; built
/// on first use, then prepared once by sqlx's statement cache).
async fn insert(
    conn: &mut PgConnection,
    statements: &mut Vec<String>,
    rows: &[&Row],
) -> Result<(), CommitError> {
    if rows.is_empty() {
        return Ok(());
    }
    while statements.len() < rows.len() {
        statements.push(insert_statement(statements.len() + 1, |i| {
            format!("(${}, ${}, ${})", 3 * i + 1, 3 * i + 2, 3 * i + 3)
        }));
    }
    let bodies = rows
        .iter()
        .map(|r| body_text(&r.body))
        .collect::<Result<Vec<_>, _>>()
        .map_err(CommitError::Body)?;
    let mut query = sqlx::query(&statements[rows.len() - 1]);
    for (row, body) in rows.iter().zip(&bodies) {
        query = query.bind(&*row.device).bind(row.at).bind(*body);
    }
    query.execute(conn).await?;
    Ok(())
}
