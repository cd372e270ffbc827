//! Telemetry sequence numbers: the last event number the server stored for each device. An
//! agent numbers its events and sends `first_seq..=last_seq` with each batch; a batch the
//! server already holds (its acknowledgement was lost, or the agent died before recording
//! it) is answered as acknowledged and not stored twice. The group commit
//! ([`crate::ingest`]) decides and raises the marks in the transaction that stores the
//! batches; [`decide`] reads a mark outside it (before a batch is published to JetStream).

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
