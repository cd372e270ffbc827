//! Telemetry sequence numbers: the last event number the server stored for each device. An
//! agent numbers its events and sends `first_seq..=last_seq` with each batch; a batch the
//! server already holds (its acknowledgement was lost, or the agent died before recording
//! it) is answered as acknowledged and not stored twice.

use sqlx::Row;

use crate::db::{Db, DbError};

/// What to do with a numbered batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// New events: store the batch.
    Store,
    /// Every event up to the given number is already stored (the whole batch, or its start:
    /// the agent resends from the next number).
    AlreadyHave(u64),
}

/// The decision for events from `first` on of `device`.
pub async fn decide(db: &Db, device: &str, first: u64) -> Result<Decision, DbError> {
    let row = sqlx::query("SELECT last_seq FROM telemetry_seq WHERE device_id = $1")
        .bind(device)
        .fetch_optional(db.pool())
        .await?;
    let stored: Option<i64> = row.map(|r| r.try_get("last_seq")).transpose()?;
    let stored = stored.and_then(|s| u64::try_from(s).ok()).unwrap_or(0);
    Ok(if stored >= first {
        Decision::AlreadyHave(stored)
    } else {
        Decision::Store
    })
}

/// Records that `device`'s events up to `last` are stored (never lowers the mark).
pub async fn record(db: &Db, device: &str, last: u64) -> Result<(), DbError> {
    let last = i64::try_from(last).unwrap_or(i64::MAX);
    sqlx::query(
        "INSERT INTO telemetry_seq (device_id, last_seq) VALUES ($1, $2) \
         ON CONFLICT (device_id) DO UPDATE SET last_seq = excluded.last_seq \
         WHERE telemetry_seq.last_seq < excluded.last_seq",
    )
    .bind(device)
    .bind(last)
    .execute(db.pool())
    .await?;
    Ok(())
}
