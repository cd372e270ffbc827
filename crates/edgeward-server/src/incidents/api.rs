//! The admin API of detection and response: `GET /v1/admin/alerts`,
//! `GET /v1/admin/incidents`, `GET /v1/admin/incidents/{id}` (the incident, its timeline,
//! alerts, actions and evidence), `POST …/{id}/contain`, `POST …/{id}/approve`,
//! `POST …/{id}/close`, `GET …/{id}/report?format=md|html` and
//! `GET …/{id}/evidence/{upload}` (a forensic bundle, its hash checked on the way out and the
//! access recorded on the timeline: the chain of custody). Behind the admin gate (see
//! `admin_api`); reading needs the viewer role, containing and closing the operator role,
//! approving a destructive action the admin role.

use axum::{
    extract::{Path, Query, State},
    http::{header, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Extension, Json, Router,
};
use edgeward_detect::{
    incident::{self, Status},
    playbook::Action,
};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{report, store};
use crate::{
    admin_api::Admin,
    app::{ApiError, Shared},
    body::Small,
    db::Role,
    detection::now_ms,
};

/// Largest page of alerts or incidents.
pub const MAX_PAGE: i64 = 500;

/// The routes (merged into the admin router, behind its gate).
pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/v1/admin/alerts", get(list_alerts))
        .route("/v1/admin/incidents", get(list_incidents))
        .route("/v1/admin/incidents/{id}", get(show))
        .route("/v1/admin/incidents/{id}/contain", post(contain))
        .route("/v1/admin/incidents/{id}/approve", post(approve))
        .route("/v1/admin/incidents/{id}/close", post(close))
        .route("/v1/admin/incidents/{id}/report", get(post_mortem))
        .route("/v1/admin/incidents/{id}/evidence/{upload}", get(evidence))
}

/// `GET /v1/admin/alerts` parameters.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertQuery {
    device: Option<String>,
    incident: Option<i64>,
    before: Option<i64>,
    limit: Option<i64>,
}

async fn list_alerts(
    State(app): State<Shared>,
    Extension(admin): Extension<Admin>,
    Query(q): Query<AlertQuery>,
) -> Result<Json<Value>, ApiError> {
    admin.require(Role::Viewer)?;
    let limit = q.limit.unwrap_or(100).clamp(1, MAX_PAGE);
    let alerts =
        crate::detection::store::alerts(&app.db, q.device.as_deref(), q.incident, q.before, limit)
            .await?;
    let next = match alerts.last() {
        Some(last) if alerts.len() as i64 == limit => Some(last.id),
        _ => None,
    };
    let dropped = app.detection.as_ref().map(|d| d.dropped()).unwrap_or(0);
    Ok(Json(
        json!({ "alerts": alerts, "next": next, "rate_limited": dropped }),
    ))
}

/// `GET /v1/admin/incidents` parameters.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IncidentQuery {
    status: Option<String>,
    limit: Option<i64>,
}

async fn list_incidents(
    State(app): State<Shared>,
    Extension(admin): Extension<Admin>,
    Query(q): Query<IncidentQuery>,
) -> Result<Json<Value>, ApiError> {
    admin.require(Role::Viewer)?;
    if let Some(s) = &q.status {
        s.parse::<Status>().map_err(ApiError::bad_request)?;
    }
    let limit = q.limit.unwrap_or(100).clamp(1, MAX_PAGE);
    let incidents = store::list(&app.db, q.status.as_deref(), limit).await?;
    Ok(Json(json!({ "incidents": incidents })))
}

async fn find(app: &Shared, id: i64) -> Result<store::Incident, ApiError> {
    store::get(&app.db, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no incident {id}")))
}

/// Everything known about an incident, as the API and the report show it.
pub async fn details(app: &Shared, id: i64) -> Result<Value, ApiError> {
    let i = find(app, id).await?;
    let timeline = store::timeline(&app.db, id).await?;
    let alerts = crate::detection::store::alerts(&app.db, None, Some(id), None, MAX_PAGE).await?;
    let actions = store::actions(&app.db, id).await?;
    let evidence: Vec<Value> = store::evidence(&app.db, &i.device_id, i.opened_ms / 1000)
        .await?
        .into_iter()
        .map(
            |(upload, at, sha256)| json!({ "upload": upload, "received_at": at, "sha256": sha256 }),
        )
        .collect();
    let held = store::updates_held(&app.db, &i.device_id).await?;
    Ok(json!({
        "incident": i,
        "timeline": timeline,
        "alerts": alerts,
        "actions": actions,
        "evidence": evidence,
        "updates_held": held,
        "containment_ms": i.contained_ms.map(|c| c - i.trigger_ms),
    }))
}

async fn show(
    State(app): State<Shared>,
    Extension(admin): Extension<Admin>,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    admin.require(Role::Viewer)?;
    Ok(Json(details(&app, id).await?))
}

fn conflict(message: String) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, "status", message)
}

async fn contain(
    State(app): State<Shared>,
    Extension(admin): Extension<Admin>,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    admin.require(Role::Operator)?;
    let i = find(&app, id).await?;
    if i.status == Status::Closed.as_str() {
        return Err(conflict(format!("incident {id} is closed")));
    }
    let actor = format!("admin:{}", admin.name);
    super::contain(&app, &i, &actor).await?;
    Ok(Json(details(&app, id).await?))
}

async fn approve(
    State(app): State<Shared>,
    Extension(admin): Extension<Admin>,
    Path(id): Path<i64>,
    Small(body): Small,
) -> Result<Json<Value>, ApiError> {
    admin.require(Role::Admin)?;
    let r = incident::approve_request(&body.bytes).map_err(|e| ApiError::bad_request(e.0))?;
    let i = find(&app, id).await?;
    if i.status == Status::Closed.as_str() {
        return Err(conflict(format!("incident {id} is closed")));
    }
    let pending: Vec<store::Action> = store::actions(&app.db, id)
        .await?
        .into_iter()
        .filter(|a| a.status == "pending" && r.action.is_none_or(|want| want == a.id))
        .collect();
    if pending.is_empty() {
        return Err(ApiError::not_found(match r.action {
            Some(a) => format!("incident {id} has no pending action {a}"),
            None => format!("incident {id} has no pending actions"),
        }));
    }
    let actor = format!("admin:{}", admin.name);
    let mut approved = Vec::new();
    for a in pending {
        let action: Action = serde_json::from_value(json!(a.action))
            .map_err(|e| ApiError::internal(format!("stored action {}: {e}", a.action)))?;
        if !store::decide_action(&app.db, a.id, "approved", &actor, now_ms(&app)).await? {
            continue;
        }
        let answer = super::act(&app, id, &i.device_id, action, &actor, Some(&admin)).await?;
        approved.push(json!({ "action": a.id, "name": a.action, "result": answer }));
    }
    // An approved wipe or re-provisioning is the remediation.
    let now = now_ms(&app);
    let from: Status = i.status.parse().map_err(ApiError::internal)?;
    if !approved.is_empty()
        && from.may_become(Status::Remediated)
        && store::transition(&app.db, id, from, Status::Remediated, now).await?
    {
        store::event(
            &app.db,
            id,
            now,
            &actor,
            "remediated",
            "approved remediation carried out",
        )
        .await?;
    }
    let mut v = details(&app, id).await?;
    v["approved"] = json!(approved);
    Ok(Json(v))
}

async fn close(
    State(app): State<Shared>,
    Extension(admin): Extension<Admin>,
    Path(id): Path<i64>,
    Small(body): Small,
) -> Result<Json<Value>, ApiError> {
    admin.require(Role::Operator)?;
    let r = incident::close_request(&body.bytes).map_err(|e| ApiError::bad_request(e.0))?;
    let i = find(&app, id).await?;
    let from: Status = i.status.parse().map_err(ApiError::internal)?;
    if !from.may_become(Status::Closed) {
        return Err(conflict(format!("incident {id} is already closed")));
    }
    store::set_notes(&app.db, id, r.root_cause.as_deref(), r.lessons.as_deref()).await?;
    let now = now_ms(&app);
    if !store::transition(&app.db, id, from, Status::Closed, now).await? {
        return Err(conflict(format!(
            "incident {id} changed while closing; look again"
        )));
    }
    store::release_updates(&app.db, &i.device_id).await?;
    let actor = format!("admin:{}", admin.name);
    store::event(
        &app.db,
        id,
        now,
        &actor,
        "closed",
        &format!("closed from {from}; updates released"),
    )
    .await?;
    app.audit(
        &actor,
        "incident.close",
        Some(&i.device_id),
        &format!("incident #{id}"),
    )
    .await;
    Ok(Json(details(&app, id).await?))
}

/// `GET …/report` parameters.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportQuery {
    format: Option<String>,
}

async fn post_mortem(
    State(app): State<Shared>,
    Extension(admin): Extension<Admin>,
    Path(id): Path<i64>,
    Query(q): Query<ReportQuery>,
) -> Result<Response, ApiError> {
    admin.require(Role::Viewer)?;
    let format: report::Format = q
        .format
        .as_deref()
        .unwrap_or("md")
        .parse()
        .map_err(ApiError::bad_request)?;
    let details = details(&app, id).await?;
    let i = find(&app, id).await?;
    // The metrics around the detection: an hour before the trigger to ten minutes after.
    let trigger = i.trigger_ms / 1000;
    let telemetry =
        store::telemetry(&app.db, &i.device_id, trigger - 3600, trigger + 600, 2000).await?;
    let text = report::render(format, &details, &telemetry);
    Ok(([(header::CONTENT_TYPE, format.content_type())], text).into_response())
}

/// A forensic bundle of the incident's device: read from its content address, checked
/// against its SHA-256 before a byte is sent, and the access recorded on the incident's
/// timeline and in the audit log (who, when, which bundle).
async fn evidence(
    State(app): State<Shared>,
    Extension(admin): Extension<Admin>,
    Path((id, upload)): Path<(i64, i64)>,
) -> Result<Response, ApiError> {
    admin.require(Role::Operator)?;
    let i = find(&app, id).await?;
    let listed = store::evidence(&app.db, &i.device_id, i.opened_ms / 1000).await?;
    let Some((_, _, sha256)) = listed.into_iter().find(|(u, _, _)| *u == upload) else {
        return Err(ApiError::not_found(format!(
            "incident {id} has no evidence {upload}"
        )));
    };
    let path = app
        .config
        .data_dir
        .join(crate::forensics::DIR)
        .join(&sha256);
    let bytes = tokio::fs::read(&path)
        .await
        .map_err(|e| ApiError::internal(format!("{}: {e}", path.display())))?;
    if hex::encode(edgeward_core::sha256(&bytes)) != sha256 {
        return Err(ApiError::internal(format!(
            "evidence {upload} no longer matches its sha256 {sha256}"
        )));
    }
    let actor = format!("admin:{}", admin.name);
    let detail = format!("forensic bundle #{upload} (sha256 {sha256}) read");
    store::event(
        &app.db,
        id,
        now_ms(&app),
        &actor,
        "evidence.accessed",
        &detail,
    )
    .await?;
    app.audit(&actor, "incident.evidence", Some(&i.device_id), &detail)
        .await;
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response())
}
