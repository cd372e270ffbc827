//! Enrollment (`POST /v1/enroll`): a one-time token and a CSR for a key the device generated
//! in its secure element, answered with the device certificate. Devices reach it on the
//! enrollment listener, which serves nothing else, so the admin API can stay private; the
//! admin listener answers it too for factory tools that already hold an admin session.

use std::sync::Arc;

use axum::{
    body::Bytes,
    extract::State,
    routing::{get, post},
    Extension, Json, Router,
};
use edgeward_proto::{api, gcra::Decision};
use serde_json::{json, Value};

use crate::{
    admin_api::secret_hash,
    app::{ApiError, Shared},
    db::{DeviceStatus, TokenRefusal},
    device_api::Peer,
};

/// The routes of the enrollment listener: `/v1/enroll` and `/healthz`, nothing else.
pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/v1/enroll", post(enroll))
        .route("/healthz", get(|| async { "ok" }))
}

/// `POST /v1/enroll`: a one-time token and a CSR for a key the device generated; answers
/// with the device certificate, the device CA, the server CA, the device token secret and
/// the public key that signs its commands.
/// Calls are limited per source address first (`ip_limit`, in a bucket of its own so that
/// enrollment and device traffic from one address do not starve each other): the listener
/// faces the devices' network.
pub async fn enroll(
    State(app): State<Shared>,
    Extension(peer): Extension<Arc<Peer>>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let ip_key = format!("enroll-ip:{}", peer.addr.ip());
    if let Decision::Deny { retry_after_ns } = app
        .store
        .check(&ip_key, &app.config.ip_limit.quota(), app.clock.now_ns())
        .await
        .map_err(ApiError::unavailable)?
    {
        return Err(ApiError::rate_limited(retry_after_ns));
    }
    let e = api::enrollment(&body).map_err(|e| ApiError::bad_request(e.0))?;
    let now = app.now();
    let outcome = app
        .db
        .consume_enrollment_token(&secret_hash(e.token.trim()), now)
        .await?;
    let device_id = match outcome {
        Ok(id) => id,
        Err(refusal) => {
            let reason = match refusal {
                TokenRefusal::Unknown => "unknown enrollment token",
                TokenRefusal::Reused => "enrollment token already used",
                TokenRefusal::Expired => "enrollment token expired",
            };
            app.metrics
                .inc("edgeward_enrollments_total", "outcome=\"refused\"".into());
            app.audit("enrollment", "enroll.refused", None, reason)
                .await;
            return Err(ApiError::unauthenticated(reason));
        }
    };
    let device = app
        .db
        .device(&device_id)
        .await?
        .ok_or_else(|| ApiError::not_found("the token's device is gone"))?;
    if device.status != DeviceStatus::Pending {
        app.audit(
            "enrollment",
            "enroll.refused",
            Some(&device_id),
            &format!("device is {}", device.status),
        )
        .await;
        return Err(ApiError::forbidden(
            "status",
            format!("device {device_id} is {}", device.status),
        ));
    }
    let now_dt = time::OffsetDateTime::from_unix_timestamp(now).map_err(ApiError::internal)?;
    let issued = app
        .identity
        .device_ca
        .issue(&e.csr, &device_id, app.config.device_cert_days, now_dt)
        .map_err(ApiError::bad_request)?;
    app.db.activate(&device_id, &issued.serial, now).await?;
    app.registry.invalidate(&device_id);
    app.metrics
        .inc("edgeward_enrollments_total", "outcome=\"enrolled\"".into());
    app.audit(
        "enrollment",
        "device.enroll",
        Some(&device_id),
        &format!("certificate serial {}", issued.serial),
    )
    .await;
    let secret = app.identity.secrets.derive(&device_id);
    Ok(Json(json!({
        "device_id": device_id,
        "certificate": issued.cert_pem,
        "device_ca": app.identity.device_ca.cert_pem,
        "server_ca": app.identity.server_ca_pem,
        "secret": secret.as_str(),
        "command_key": app.command_signer.public_pem(),
    })))
}
