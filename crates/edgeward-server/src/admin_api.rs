//! The admin API (`/v1/admin/…`, bearer API keys with roles viewer < operator < admin) on
//! the server-authenticated admin listener. Every admin action goes into the audit log.

use axum::{
    body::Bytes,
    extract::{Path, Query, Request, State},
    http::StatusCode,
    middleware::Next,
    response::Response,
    routing::{get, post},
    Extension, Json, Router,
};
use edgeward_proto::api;
use rand_core::{OsRng, RngCore};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::{
    app::{ApiError, Shared},
    db::{DeviceStatus, Role},
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
    fn require(&self, role: Role) -> Result<(), ApiError> {
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
    fn actor(&self) -> String {
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
        .route("/v1/admin/devices/{id}/commands", post(add_command))
        .route("/v1/admin/audit", get(audit_log))
        .route("/v1/admin/keys", post(add_key))
        .layer(axum::middleware::from_fn_with_state(app, gate))
}

async fn gate(
    State(app): State<Shared>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
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
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    admin.require(Role::Operator)?;
    let d = api::new_device(&body).map_err(|e| ApiError::bad_request(e.0))?;
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

async fn change_status(
    app: &Shared,
    admin: &Admin,
    id: &str,
    from: &[DeviceStatus],
    to: DeviceStatus,
    action: &str,
) -> Result<Json<Value>, ApiError> {
    let d = app
        .db
        .device(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no device {id}")))?;
    if !from.contains(&d.status) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "status",
            format!("device {id} is {}; cannot {action} it", d.status),
        ));
    }
    app.db.set_status(id, to, app.now()).await?;
    app.registry.invalidate(id);
    app.audit(
        &admin.actor(),
        &format!("device.{action}"),
        Some(id),
        &format!("{} -> {to}", d.status),
    )
    .await;
    Ok(Json(json!({ "id": id, "status": to })))
}

async fn quarantine(
    State(app): State<Shared>,
    Extension(admin): Extension<Admin>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    admin.require(Role::Operator)?;
    change_status(
        &app,
        &admin,
        &id,
        &[DeviceStatus::Active],
        DeviceStatus::Quarantined,
        "quarantine",
    )
    .await
}

async fn release(
    State(app): State<Shared>,
    Extension(admin): Extension<Admin>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    admin.require(Role::Operator)?;
    change_status(
        &app,
        &admin,
        &id,
        &[DeviceStatus::Quarantined],
        DeviceStatus::Active,
        "release",
    )
    .await
}

async fn revoke(
    State(app): State<Shared>,
    Extension(admin): Extension<Admin>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    admin.require(Role::Admin)?;
    let d = app
        .db
        .device(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no device {id}")))?;
    if d.status == DeviceStatus::Revoked {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "status",
            format!("device {id} is already revoked"),
        ));
    }
    app.db
        .set_status(&id, DeviceStatus::Revoked, app.now())
        .await?;
    app.registry.invalidate(&id);
    if let Some(serial) = &d.cert_serial {
        if let Ok(mut set) = app.revoked.write() {
            set.insert(serial.clone());
        }
        crate::server::write_device_crl(&app)
            .await
            .map_err(ApiError::internal)?;
    }
    let closed = app.conns.close_all(&id);
    app.metrics.add(
        "edgeward_connections_closed_total",
        "reason=\"revoked\"".into(),
        closed as u64,
    );
    app.audit(
        &admin.actor(),
        "device.revoke",
        Some(&id),
        &format!(
            "certificate {} revoked; {closed} connection(s) closed",
            d.cert_serial.as_deref().unwrap_or("(none)")
        ),
    )
    .await;
    Ok(Json(
        json!({ "id": id, "status": DeviceStatus::Revoked, "connections_closed": closed }),
    ))
}

async fn add_command(
    State(app): State<Shared>,
    Extension(admin): Extension<Admin>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    admin.require(Role::Operator)?;
    let c = api::new_command(&body).map_err(|e| ApiError::bad_request(e.0))?;
    app.db
        .device(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no device {id}")))?;
    let cid = app
        .db
        .add_command(&id, &c.kind, &c.body.to_string(), app.now())
        .await?;
    app.audit(
        &admin.actor(),
        "command.add",
        Some(&id),
        &format!("{} #{cid}", c.kind),
    )
    .await;
    Ok((StatusCode::CREATED, Json(json!({ "id": cid }))))
}

#[derive(Deserialize)]
struct AuditQuery {
    limit: Option<i64>,
}

async fn audit_log(
    State(app): State<Shared>,
    Extension(admin): Extension<Admin>,
    Query(q): Query<AuditQuery>,
) -> Result<Json<Value>, ApiError> {
    admin.require(Role::Viewer)?;
    let limit = q.limit.unwrap_or(100).clamp(1, 10_000);
    Ok(Json(json!({ "entries": app.db.audit_log(limit).await? })))
}

async fn add_key(
    State(app): State<Shared>,
    Extension(admin): Extension<Admin>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    admin.require(Role::Admin)?;
    let k = api::new_key(&body).map_err(|e| ApiError::bad_request(e.0))?;
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
