//! The PostgreSQL telemetry writer: a task on the runtime with a connection of its own, so
//! its statements stay prepared and it never waits for the registry's pool. A batch that
//! fails drops the connection, and the next batch connects again: a connection lost to a
//! restart or a network cut fails the batches of that moment (503), not every later one.

use sqlx::{Connection, PgConnection};
use tokio::sync::mpsc;

use super::{acknowledge, body_text, gather, insert_statement, Item, Row};
use crate::db::DbError;

/// Connects to `url` and starts the writer task on the current runtime.
pub(super) async fn start(url: &str, rx: mpsc::Receiver<Item>) -> Result<(), DbError> {
    let conn = PgConnection::connect(url).await?;
    tokio::spawn(run(url.to_string(), Some(conn), rx));
    Ok(())
}

async fn run(url: String, mut conn: Option<PgConnection>, mut rx: mpsc::Receiver<Item>) {
    let mut statements = Vec::new();
    let mut previous = 0;
    while let Some(batch) = gather(&mut rx, previous).await {
        previous = batch.len();
        let (rows, acks): (Vec<Row>, Vec<_>) = batch.into_iter().unzip();
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
            Some(c) => insert(c, &mut statements, &rows).await,
            None => Err("telemetry insert: PostgreSQL is unreachable".to_string()),
        };
        if result.is_err() {
            // Whatever broke, the next batch starts on a fresh connection.
            conn = None;
        }
        acknowledge(acks, result);
    }
}

/// Inserts `rows` with one multi-row statement (`statements[n - 1]` inserts `n` rows; built
/// on first use, then prepared once by sqlx's statement cache).
async fn insert(
    conn: &mut PgConnection,
    statements: &mut Vec<String>,
    rows: &[Row],
) -> Result<(), String> {
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
        .map(|(_, _, body)| body_text(body))
        .collect::<Result<Vec<_>, _>>()?;
    let mut query = sqlx::query(&statements[rows.len() - 1]);
    for ((device, at, _), body) in rows.iter().zip(&bodies) {
        query = query.bind(&**device).bind(*at).bind(*body);
    }
    match query.execute(conn).await {
        Ok(_) => Ok(()),
        Err(e) => {
            tracing::error!(%e, rows = rows.len(), "telemetry insert failed");
            Err(format!("telemetry insert: {e}"))
        }
    }
}
