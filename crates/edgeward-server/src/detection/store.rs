//! The detector's tables: checkpoints of device and cohort state, and alerts.

use serde::Serialize;
use sqlx::Row;

use crate::db::{Db, DbError};

/// A stored alert.
#[derive(Debug, Clone, Serialize)]
pub struct StoredAlert {
    /// Its id.
    pub id: i64,
    /// The device.
    pub device_id: String,
    /// The alert kind (`tamper`, `behaviour`, …).
    pub kind: String,
    /// `low`, `medium`, `high` or `critical`.
    pub severity: String,
    /// When the triggering observation was made (Unix seconds).
    pub at: i64,
    /// When the triggering telemetry was received (Unix ms).
    pub received_ms: i64,
    /// What was seen.
    pub detail: String,
    /// The alert as JSON.
    pub body: serde_json::Value,
    /// The incident it opened or joined.
    pub incident_id: Option<i64>,
}

fn alert_from(r: &sqlx::any::AnyRow) -> Result<StoredAlert, sqlx::Error> {
    let body: String = r.try_get("body")?;
    Ok(StoredAlert {
        id: r.try_get("id")?,
        device_id: r.try_get("device_id")?,
        kind: r.try_get("kind")?,
        severity: r.try_get("severity")?,
        at: r.try_get("at")?,
        received_ms: r.try_get("received_ms")?,
        detail: r.try_get("detail")?,
        body: serde_json::from_str(&body).unwrap_or(serde_json::Value::Null),
        incident_id: r.try_get("incident_id")?,
    })
}

/// What [`insert_alert`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// A new alert, with its id.
    New(i64),
    /// An alert of the same origin was stored before (a raise repeated after a crash): its
    /// id, and the incident it is linked to, if the playbook got that far.
    Again(i64, Option<i64>),
}

impl Stored {
    /// The alert's id.
    pub fn id(self) -> i64 {
        match self {
            Stored::New(id) | Stored::Again(id, _) => id,
        }
    }
}

/// Stores an alert from `origin` (where it was raised from, when a raise may be repeated;
/// `None` for alerts that cannot come twice); an origin stored before is not stored again.
pub async fn insert_alert(
    db: &Db,
    alert: &edgeward_detect::alert::Alert,
    received_ms: i64,
    origin: Option<&str>,
) -> Result<Stored, DbError> {
    let body = serde_json::to_string(alert).unwrap_or_default();
    let severity = serde_json::to_value(alert.severity)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let row = sqlx::query(
        "INSERT INTO alerts (device_id, kind, severity, at, received_ms, detail, body, origin) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (origin) DO NOTHING RETURNING id",
    )
    .bind(&alert.device)
    .bind(alert.kind.name())
    .bind(severity)
    .bind(alert.at)
    .bind(received_ms)
    .bind(&alert.detail)
    .bind(body)
    .bind(origin)
    .fetch_optional(db.pool())
    .await?;
    if let Some(row) = row {
        return Ok(Stored::New(row.try_get("id")?));
    }
    let row = sqlx::query("SELECT id, incident_id FROM alerts WHERE origin = $1")
        .bind(origin)
        .fetch_one(db.pool())
        .await?;
    Ok(Stored::Again(
        row.try_get("id")?,
        row.try_get("incident_id")?,
    ))
}

/// Links an alert to its incident.
pub async fn link_alert(db: &Db, alert: i64, incident: i64) -> Result<(), DbError> {
    sqlx::query("UPDATE alerts SET incident_id = $1 WHERE id = $2")
        .bind(incident)
        .bind(alert)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// Alerts, newest first: at most `limit`, older than `before`, of `device` and/or `incident`.
pub async fn alerts(
    db: &Db,
    device: Option<&str>,
    incident: Option<i64>,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<StoredAlert>, DbError> {
    let rows = sqlx::query(
        "SELECT * FROM alerts WHERE ($1 = '' OR device_id = $1) AND ($2 < 0 OR incident_id = $2) AND id < $3 ORDER BY id DESC LIMIT $4",
    )
    .bind(device.unwrap_or(""))
    .bind(incident.unwrap_or(-1))
    .bind(before.unwrap_or(i64::MAX))
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    Ok(rows.iter().map(alert_from).collect::<Result<_, _>>()?)
}

/// Writes checkpoints (`key` → JSON state), each replacing the last.
pub async fn save_state(db: &Db, states: &[(String, String)], now: i64) -> Result<(), DbError> {
    let mut tx = db.pool().begin().await?;
    for (key, state) in states {
        sqlx::query(
            "INSERT INTO detector_state (key, state, updated_at) VALUES ($1, $2, $3) ON CONFLICT (key) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at",
        )
        .bind(key)
        .bind(state)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Every checkpoint.
pub async fn load_state(db: &Db) -> Result<Vec<(String, String)>, DbError> {
    let rows = sqlx::query("SELECT key, state FROM detector_state")
        .fetch_all(db.pool())
        .await?;
    Ok(rows
        .iter()
        .map(|r| Ok((r.try_get("key")?, r.try_get("state")?)))
        .collect::<Result<_, sqlx::Error>>()?)
}
