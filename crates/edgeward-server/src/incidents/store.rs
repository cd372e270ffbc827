//! The incident tables: incidents, their timelines, the actions waiting for approval and
//! the update holds. Status changes are compare-and-set (`… WHERE status = $old`), so two
//! operators (or an operator and the playbook) never both move one incident.

use edgeward_detect::incident::Status;
use serde::Serialize;
use sqlx::Row;

use crate::db::{Db, DbError};

/// An incident.
#[derive(Debug, Clone, Serialize)]
pub struct Incident {
    /// Its id.
    pub id: i64,
    /// The device concerned.
    pub device_id: String,
    /// Where it is in its life.
    pub status: String,
    /// The severity of the alert that opened it.
    pub severity: String,
    /// What opened it.
    pub title: String,
    /// The playbook rule that acted on it.
    pub rule: Option<String>,
    /// Opened (Unix ms).
    pub opened_ms: i64,
    /// When the triggering telemetry arrived (Unix ms).
    pub trigger_ms: i64,
    /// When the device was contained (Unix ms).
    pub contained_ms: Option<i64>,
    /// When it was closed (Unix ms).
    pub closed_ms: Option<i64>,
    /// The operator's root cause.
    pub root_cause: Option<String>,
    /// The operator's lessons.
    pub lessons: Option<String>,
}

/// One entry of an incident's timeline.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// Its id.
    pub id: i64,
    /// When (Unix ms).
    pub at_ms: i64,
    /// Who: `playbook:<rule>`, `admin:<key>`, `device:<id>`, `detector`.
    pub actor: String,
    /// What kind of entry (`alert`, `quarantine`, `forensics.requested`, …).
    pub kind: String,
    /// What happened.
    pub detail: String,
}

/// An action recorded against an incident (destructive ones wait for approval).
#[derive(Debug, Clone, Serialize)]
pub struct Action {
    /// Its id.
    pub id: i64,
    /// The action (`wipe`, `reprovision`).
    pub action: String,
    /// `pending`, `approved`, `done` or `failed`.
    pub status: String,
    /// Who asked for it.
    pub requested_by: String,
    /// Who approved it.
    pub decided_by: Option<String>,
    /// Asked (Unix ms).
    pub created_ms: i64,
    /// Decided (Unix ms).
    pub decided_ms: Option<i64>,
}

fn incident_from(r: &sqlx::any::AnyRow) -> Result<Incident, sqlx::Error> {
    Ok(Incident {
        id: r.try_get("id")?,
        device_id: r.try_get("device_id")?,
        status: r.try_get("status")?,
        severity: r.try_get("severity")?,
        title: r.try_get("title")?,
        rule: r.try_get("rule")?,
        opened_ms: r.try_get("opened_ms")?,
        trigger_ms: r.try_get("trigger_ms")?,
        contained_ms: r.try_get("contained_ms")?,
        closed_ms: r.try_get("closed_ms")?,
        root_cause: r.try_get("root_cause")?,
        lessons: r.try_get("lessons")?,
    })
}

/// The device's open incident, if any.
pub async fn open_for(db: &Db, device: &str) -> Result<Option<Incident>, DbError> {
    let row = sqlx::query(
        "SELECT * FROM incidents WHERE device_id = $1 AND status <> 'closed' ORDER BY id DESC LIMIT 1",
    )
    .bind(device)
    .fetch_optional(db.pool())
    .await?;
    Ok(row.as_ref().map(incident_from).transpose()?)
}

/// Opens an incident for `device`, or returns the open one (one open incident per device,
/// enforced by a unique index); `true` when it was opened now.
pub async fn open(
    db: &Db,
    device: &str,
    severity: &str,
    title: &str,
    rule: Option<&str>,
    now_ms: i64,
    trigger_ms: i64,
) -> Result<(Incident, bool), DbError> {
    if let Some(i) = open_for(db, device).await? {
        return Ok((i, false));
    }
    let r = sqlx::query(
        "INSERT INTO incidents (device_id, status, severity, title, rule, opened_ms, trigger_ms) VALUES ($1, 'detected', $2, $3, $4, $5, $6) RETURNING *",
    )
    .bind(device)
    .bind(severity)
    .bind(title)
    .bind(rule)
    .bind(now_ms)
    .bind(trigger_ms)
    .fetch_one(db.pool())
    .await;
    match r {
        Ok(row) => Ok((incident_from(&row)?, true)),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            // Another alert of the device opened it first.
            let i = open_for(db, device)
                .await?
                .ok_or_else(|| DbError::Exists(format!("open incident of {device}")))?;
            Ok((i, false))
        }
        Err(e) => Err(e.into()),
    }
}

/// One incident.
pub async fn get(db: &Db, id: i64) -> Result<Option<Incident>, DbError> {
    let row = sqlx::query("SELECT * FROM incidents WHERE id = $1")
        .bind(id)
        .fetch_optional(db.pool())
        .await?;
    Ok(row.as_ref().map(incident_from).transpose()?)
}

/// Incidents, newest first, optionally only those with `status`.
pub async fn list(db: &Db, status: Option<&str>, limit: i64) -> Result<Vec<Incident>, DbError> {
    let rows = sqlx::query(
        "SELECT * FROM incidents WHERE ($1 = '' OR status = $1) ORDER BY id DESC LIMIT $2",
    )
    .bind(status.unwrap_or(""))
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    Ok(rows.iter().map(incident_from).collect::<Result<_, _>>()?)
}

/// Moves an incident from `from` to `to` (compare-and-set); false if it was not at `from`.
pub async fn transition(
    db: &Db,
    id: i64,
    from: Status,
    to: Status,
    now_ms: i64,
) -> Result<bool, DbError> {
    let r = sqlx::query(
        "UPDATE incidents SET status = $1, contained_ms = CASE WHEN $1 = 'contained' THEN $2 ELSE contained_ms END, closed_ms = CASE WHEN $1 = 'closed' THEN $2 ELSE closed_ms END WHERE id = $3 AND status = $4",
    )
    .bind(to.as_str())
    .bind(now_ms)
    .bind(id)
    .bind(from.as_str())
    .execute(db.pool())
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Records the operator's post-mortem fields (those given).
pub async fn set_notes(
    db: &Db,
    id: i64,
    root_cause: Option<&str>,
    lessons: Option<&str>,
) -> Result<(), DbError> {
    sqlx::query(
        "UPDATE incidents SET root_cause = COALESCE($1, root_cause), lessons = COALESCE($2, lessons) WHERE id = $3",
    )
    .bind(root_cause)
    .bind(lessons)
    .bind(id)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Appends to an incident's timeline.
pub async fn event(
    db: &Db,
    incident: i64,
    at_ms: i64,
    actor: &str,
    kind: &str,
    detail: &str,
) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO incident_events (incident_id, at_ms, actor, kind, detail) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(incident)
    .bind(at_ms)
    .bind(actor)
    .bind(kind)
    .bind(detail)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// An incident's timeline, oldest first.
pub async fn timeline(db: &Db, incident: i64) -> Result<Vec<Event>, DbError> {
    let rows = sqlx::query(
        "SELECT id, at_ms, actor, kind, detail FROM incident_events WHERE incident_id = $1 ORDER BY at_ms, id",
    )
    .bind(incident)
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Event {
                id: r.try_get("id")?,
                at_ms: r.try_get("at_ms")?,
                actor: r.try_get("actor")?,
                kind: r.try_get("kind")?,
                detail: r.try_get("detail")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(Into::into)
}

/// Records an action waiting for approval; returns its id.
pub async fn add_action(
    db: &Db,
    incident: i64,
    action: &str,
    requested_by: &str,
    now_ms: i64,
) -> Result<i64, DbError> {
    let row = sqlx::query(
        "INSERT INTO incident_actions (incident_id, action, status, requested_by, created_ms) VALUES ($1, $2, 'pending', $3, $4) RETURNING id",
    )
    .bind(incident)
    .bind(action)
    .bind(requested_by)
    .bind(now_ms)
    .fetch_one(db.pool())
    .await?;
    Ok(row.try_get("id")?)
}

/// Decides a pending action (compare-and-set from `pending`); false if it was not pending.
pub async fn decide_action(
    db: &Db,
    id: i64,
    status: &str,
    by: &str,
    now_ms: i64,
) -> Result<bool, DbError> {
    let r = sqlx::query(
        "UPDATE incident_actions SET status = $1, decided_by = $2, decided_ms = $3 WHERE id = $4 AND status = 'pending'",
    )
    .bind(status)
    .bind(by)
    .bind(now_ms)
    .bind(id)
    .execute(db.pool())
    .await?;
    Ok(r.rows_affected() == 1)
}

/// An incident's actions, oldest first.
pub async fn actions(db: &Db, incident: i64) -> Result<Vec<Action>, DbError> {
    let rows = sqlx::query("SELECT * FROM incident_actions WHERE incident_id = $1 ORDER BY id")
        .bind(incident)
        .fetch_all(db.pool())
        .await?;
    rows.iter()
        .map(|r| {
            Ok(Action {
                id: r.try_get("id")?,
                action: r.try_get("action")?,
                status: r.try_get("status")?,
                requested_by: r.try_get("requested_by")?,
                decided_by: r.try_get("decided_by")?,
                created_ms: r.try_get("created_ms")?,
                decided_ms: r.try_get("decided_ms")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(Into::into)
}

/// Holds the device's updates for `incident`.
pub async fn hold_updates(
    db: &Db,
    device: &str,
    incident: i64,
    now_ms: i64,
) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO update_holds (device_id, incident_id, at_ms) VALUES ($1, $2, $3) ON CONFLICT (device_id) DO NOTHING",
    )
    .bind(device)
    .bind(incident)
    .bind(now_ms)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Lifts the device's update hold.
pub async fn release_updates(db: &Db, device: &str) -> Result<(), DbError> {
    sqlx::query("DELETE FROM update_holds WHERE device_id = $1")
        .bind(device)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// Whether the device's updates are held (for the update path).
pub async fn updates_held(db: &Db, device: &str) -> Result<bool, DbError> {
    let row = sqlx::query("SELECT 1 AS held FROM update_holds WHERE device_id = $1")
        .bind(device)
        .fetch_optional(db.pool())
        .await?;
    Ok(row.is_some())
}

/// The device's forensic uploads received since `since` (Unix seconds): id, time, SHA-256.
pub async fn evidence(
    db: &Db,
    device: &str,
    since: i64,
) -> Result<Vec<(i64, i64, String)>, DbError> {
    let rows = sqlx::query(
        "SELECT id, received_at, sha256 FROM uploads WHERE device_id = $1 AND kind = 'forensics' AND received_at >= $2 ORDER BY id",
    )
    .bind(device)
    .bind(since)
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get("id")?,
                r.try_get("received_at")?,
                r.try_get("sha256")?,
            ))
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(Into::into)
}

/// The device's telemetry bodies received in `[from, to]` (Unix seconds), oldest first, at
/// most `limit`.
pub async fn telemetry(
    db: &Db,
    device: &str,
    from: i64,
    to: i64,
    limit: i64,
) -> Result<Vec<(i64, String)>, DbError> {
    let rows = sqlx::query(
        "SELECT received_at, body FROM telemetry WHERE device_id = $1 AND received_at >= $2 AND received_at <= $3 ORDER BY received_at LIMIT $4",
    )
    .bind(device)
    .bind(from)
    .bind(to)
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("received_at")?, r.try_get("body")?)))
        .collect::<Result<_, sqlx::Error>>()
        .map_err(Into::into)
}
