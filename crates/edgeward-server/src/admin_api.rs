//! The admin API (`/v1/admin/…`, bearer API keys with roles viewer < operator < admin) on
//! the server-authenticated admin listener. Every admin action goes into the audit log.

use std::sync::Arc;

use axum::{
    extract::{Path, Query, Request, State},
    http::{request::Parts, StatusCode},
    middleware::Next,
    response::Response,
    routing::{get, post},
    Extension, Json, Router,
};
use edgeward_proto::{api, gcra::Decision};
use rand_core::{OsRng, RngCore};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::{
    app::{ApiError, Shared},
    body::Small,
    db::{AuditFilter, Change, DeviceStatus, Role, Transition, MAX_AUDIT_PAGE},
    device_api::Peer,
};

/// An authenticated admin.
#[derive(Debug, Clone)]
pub struct Admin {
    /// The key's name.
    pub name: String,
    /// The key's role.
    pub role: Role,
}

impl Admin {
    /// Refuses unless the key has at least `role`.
    pub(crate) fn require(&self, role: Role) -> Result<(), ApiError> {
        if self.role >= role {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                "role",
                format!(
                    "this needs the {role} role; the key {} has {}",
                    self.name, self.role
                ),
            ))
        }
    }
    /// The key as an audit actor: `admin:NAME`.
    pub(crate) fn actor(&self) -> String {
        format!("admin:{}", self.name)
    }
}

/// SHA-256 hex of a secret, as stored.
pub fn secret_hash(secret: &str) -> String {
    hex::encode(edgeward_core::sha256(secret.as_bytes()))
}

/// A new random secret with a readable prefix, e.g. `ewk_…` for admin keys.
pub fn new_secret(prefix: &str) -> String {
    let mut b = [0u8; 32];
    OsRng.fill_bytes(&mut b);
    format!("{prefix}_{}", hex::encode(b))
}

/// The admin routes.
pub fn routes(app: Shared) -> Router<Shared> {
    Router::new()
        .route("/v1/admin/devices", post(add_device).get(list_devices))
        .route("/v1/admin/devices/{id}", get(show_device))
        .route("/v1/admin/devices/{id}/quarantine", post(quarantine))
        .route("/v1/admin/devices/{id}/release", post(release))
        .route("/v1/admin/devices/{id}/revoke", post(revoke))
        .route("/v1/admin/devices/{id}/reprovision", post(reprovision))
        .route("/v1/admin/devices/{id}/commands", post(add_command))
        .route(
            "/v1/admin/devices/{id}/commands/{command}",
            get(show_command),
        )
        .route(
            "/v1/admin/devices/{id}/enrollment-token",
            post(enrollment_token),
        )
        .route("/v1/admin/audit", get(audit_log))
        .merge(crate::audit_log_api::routes())
        .route("/v1/admin/keys", post(add_key))
        .merge(crate::rollout_api::admin_routes())
        .merge(crate::incidents::api::routes())
        .layer(axum::middleware::from_fn_with_state(app, gate))
}

async fn gate(State(app): State<Shared>, req: Request, next: Next) -> Result<Response, ApiError> {
    let (parts, body) = req.into_parts();
    address_limit(&app, &parts, "admin", &app.config.ip_limit).await?;
    let mut req = Request::from_parts(parts, body);
    let key = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| ApiError::unauthenticated("missing `Authorization: Bearer <admin key>`"))?;
    let (name, role) = app
        .db
        .admin_key(&secret_hash(key.trim()))
        .await?
        .ok_or_else(|| ApiError::unauthenticated("unknown admin key"))?;
    req.extensions_mut().insert(Admin { name, role });
    Ok(next.run(req).await)
}

async fn add_device(
    State(app): State<Shared>,
    Extension(admin): Extension<Admin>,
    Small(body): Small,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    admin.require(Role::Operator)?;
    let d = api::new_device(&body.bytes).map_err(|e| ApiError::bad_request(e.0))?;
    let now = app.now();
    match app.db.add_device(&d.id, &d.hardware_class, now).await {
        Ok(()) => {}
        Err(crate::db::DbError::Exists(what)) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "exists",
                format!("{what} already exists"),
            ))
        }
        Err(e) => return Err(e.into()),
    }
    let token = new_secret("ewe");
    let expires_at = now + i64::try_from(app.config.enrollment_ttl_secs).unwrap_or(i64::MAX / 2);
    app.db
        .add_enrollment_token(&secret_hash(&token), &d.id, expires_at)
        .await?;
    app.audit(
        &admin.actor(),
        "device.add",
        Some(&d.id),
        &format!("hardware class {}", d.hardware_class),
    )
    .await;
    Ok((
        StatusCode::CREATED,
        Json(
            json!({ "id": d.id, "hardware_class": d.hardware_class, "enrollment_token": token, "expires_at": expires_at }),
        ),
    ))
}

async fn list_devices(
    State(app): State<Shared>,
    Extension(admin): Extension<Admin>,
) -> Result<Json<Value>, ApiError> {
    admin.require(Role::Viewer)?;
    Ok(Json(json!({ "devices": app.db.devices().await? })))
}

async fn show_device(
    State(app): State<Shared>,
    Extension(admin): Extension<Admin>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    admin.require(Role::Viewer)?;
    let d = app
        .db
        .device(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no device {id}")))?;
    let telemetry = app.db.telemetry_count(&id).await?;
    Ok(Json(json!({ "device": d, "telemetry_batches": telemetry })))
}

/// Applies `change` to device `id` (one compare-and-set on its status, see
/// [`crate::db::Db::transition`]), then brings what follows the registry into line with
/// what was committed: the cached record dropped, a revoked certificate added to the TLS
/// deny set and the CRL, the device's connections closed when it was cut off or quarantined.
pub(crate) async fn change_status(
    app: &Shared,
    actor: &str,
    id: &str,
    change: Change<'_>,
) -> Result<Json<Value>, ApiError> {
    let action = change.name();
    let to = change.to();
    let (from, revoked_serial) = match app.db.transition(id, change, app.now()).await? {
        Transition::Done {
            from,
            revoked_serial,
        } => (from, revoked_serial),
        Transition::Refused(status) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "status",
                format!("device {id} is {status}; cannot {action} it"),
            ))
        }
        Transition::NoDevice => return Err(ApiError::not_found(format!("no device {id}"))),
    };
    app.registry.invalidate(id);
    if let Some(serial) = &revoked_serial {
        app.deny(serial);
    }
    // Quarantine closes them too: a connection admitted while the device was active
    // must not carry its later calls.
    let closed = if matches!(
        to,
        DeviceStatus::Revoked | DeviceStatus::Pending | DeviceStatus::Quarantined
    ) {
        let closed = app.conns.close_all(id);
        app.metrics.add(
            "edgeward_connections_closed_total",
            format!("reason=\"{action}\""),
            closed as u64,
        );
        closed
    } else {
        0
    };
    let crl = match &revoked_serial {
        Some(_) => crate::server::write_device_crl(app).await,
        None => Ok(()),
    };
    app.audit(
        actor,
        &format!("device.{action}"),
        Some(id),
        &format!(
            "{from} -> {to}; certificate {} revoked; {closed} connection(s) closed",
            revoked_serial.as_deref().unwrap_or("(none)")
        ),
    )
    .await;
    crl.map_err(ApiError::internal)?;
    Ok(Json(
        json!({ "id": id, "status": to, "connections_closed": closed }),
    ))
}

async fn quarantine(
    State(app): State<Shared>,
    Extension(admin): Extension<Admin>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    admin.require(Role::Operator)?;
    change_status(&app, &admin.actor(), &id, Change::Quarantine).await
}

async fn release(
    State(app): State<Shared>,
    Extension(admin): Extension<Admin>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    admin.require(Role::Operator)?;
    change_status(&app, &admin.actor(), &id, Change::Release).await
}

async fn revoke(
    State(app): State<Shared>,
    Extension(admin): Extension<Admin>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    admin.require(Role::Admin)?;
    change_status(&app, &admin.actor(), &id, Change::Revoke).await
}

/// `POST /v1/admin/devices/{id}/reprovision`: the device goes back to `pending` with a new
/// enrollment token (earlier ones no longer work); its certificate, if it had one, is
/// revoked for good.
async fn reprovision(
    State(app): State<Shared>,
    Extension(admin): Extension<Admin>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    admin.require(Role::Admin)?;
    Ok((
        StatusCode::OK,
        Json(reprovision_device(&app, &admin, &id).await?),
    ))
}

/// Re-provisions device `id` as `admin` (also from an approved incident action): back to
/// `pending` with a new enrollment token, which the answer carries.
pub(crate) async fn reprovision_device(
    app: &Shared,
    admin: &Admin,
    id: &str,
) -> Result<Value, ApiError> {
    let token = new_secret("ewe");
    let expires_at =
        app.now() + i64::try_from(app.config.enrollment_ttl_secs).unwrap_or(i64::MAX / 2);
    let hash = secret_hash(&token);
    let Json(mut v) = change_status(
        app,
        &admin.actor(),
        id,
        Change::Reprovision {
            token_sha256: &hash,
            expires_at,
        },
    )
    .await?;
    v["enrollment_token"] = json!(token);
    v["expires_at"] = json!(expires_at);
    Ok(v)
}

async fn add_command(
    State(app): State<Shared>,
    Extension(admin): Extension<Admin>,
    Path(id): Path<String>,
    Small(body): Small,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    admin.require(Role::Operator)?;
    let c = api::new_command(&body.bytes).map_err(|e| ApiError::bad_request(e.0))?;
    let queued = crate::commands::enqueue(&app, &admin.actor(), &id, &c.kind, c.body).await?;
    let mut v = json!({ "id": queued.id });
    if let Some(token) = queued.enrollment_token {
        v["enrollment_token"] = json!(token);
    }
    Ok((StatusCode::CREATED, Json(v)))
}

/// `GET /v1/admin/devices/{id}/commands/{command}`: the command's status and its signed
/// result (stored only once its signature verified).
async fn show_command(
    State(app): State<Shared>,
    Extension(admin): Extension<Admin>,
    Path((id, command)): Path<(String, i64)>,
) -> Result<Json<Value>, ApiError> {
    admin.require(Role::Viewer)?;
    let outcome = app
        .db
        .command_outcome(&id, command)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no command {command} of device {id}")))?;
    Ok(Json(
        json!({ "id": command, "device": id, "command": outcome }),
    ))
}

/// `POST /v1/admin/devices/{id}/enrollment-token`: a fresh one-time enrollment token bound
/// to the device, its status unchanged (for a `reprovision` command: the device enrolls a
/// new key with it and its old certificate is revoked when the new one is issued).
async fn enrollment_token(
    State(app): State<Shared>,
    Extension(admin): Extension<Admin>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    admin.require(Role::Admin)?;
    let t = crate::commands::issue_enrollment_token(&app, &admin.actor(), &id).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "id": id, "enrollment_token": t.token, "expires_at": t.expires_at })),
    ))
}

/// `GET /v1/admin/audit` parameters: a page size, a cursor and filters.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    limit: Option<i64>,
    /// The `next` of the previous page: entries older than this id.
    before: Option<i64>,
    actor: Option<String>,
    device: Option<String>,
    action: Option<String>,
}

/// The audit log, newest first, a page at a time: `next` is the cursor of the following
/// page (`null` on the last).
async fn audit_log(
    State(app): State<Shared>,
    Extension(admin): Extension<Admin>,
    Query(q): Query<AuditQuery>,
) -> Result<Json<Value>, ApiError> {
    admin.require(Role::Viewer)?;
    let limit = q.limit.unwrap_or(100).clamp(1, MAX_AUDIT_PAGE);
    let filter = AuditFilter {
        actor: q.actor,
        device: q.device,
        action: q.action,
    };
    let entries = app.db.audit_page(&filter, q.before, limit).await?;
    let next = match entries.last() {
        Some(last) if entries.len() as i64 == limit => Some(last.id),
        _ => None,
    };
    Ok(Json(json!({ "entries": entries, "next": next })))
}

async fn add_key(
    State(app): State<Shared>,
    Extension(admin): Extension<Admin>,
    Small(body): Small,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    admin.require(Role::Admin)?;
    let k = api::new_key(&body.bytes).map_err(|e| ApiError::bad_request(e.0))?;
    let role: Role = k.role.parse().map_err(ApiError::bad_request)?;
    let key = new_secret("ewk");
    app.db
        .add_admin_key(&secret_hash(&key), &k.name, role, app.now())
        .await?;
    app.audit(
        &admin.actor(),
        "admin_key.add",
        None,
        &format!("{} ({role})", k.name),
    )
    .await;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "name": k.name, "role": role, "key": key })),
    ))
}
/// Checks the limit `quota` of the caller's source address under `scope` (429 when spent).
pub(crate) async fn address_limit(
    app: &Shared,
    parts: &Parts,
    scope: &str,
    quota: &crate::config::LimitConfig,
) -> Result<(), ApiError> {
    let Some(peer) = parts.extensions.get::<Arc<Peer>>() else {
        return Err(ApiError::internal("a call arrived without its connection"));
    };
    let key = format!("{scope}:{}", peer.addr.ip());
    if let Decision::Deny { retry_after_ns } = app
        .store
        .check(&key, &quota.quota(), app.clock.now_ns())
        .await
        .map_err(ApiError::unavailable)?
    {
        app.metrics.inc(
            "edgeward_auth_refusals_total",
            format!("reason=\"{scope}_rate\""),
        );
        return Err(ApiError::rate_limited(retry_after_ns));
    }
    Ok(())
}
