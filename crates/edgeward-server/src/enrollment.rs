//! Enrollment (`POST /v1/enroll`): a one-time token and a CSR for a key the device generated
//! in its secure element, answered with the device certificate. Devices reach it on the
//! enrollment listener, which serves nothing else, so the admin API can stay private; the
//! admin listener answers it too for factory tools that already hold an admin session.

use axum::{
    extract::{FromRequestParts, State},
    http::request::Parts,
    routing::{get, post},
    Json, Router,
};
use edgeward_proto::api;
use serde_json::{json, Value};

use crate::{
    admin_api::{address_limit, secret_hash},
    app::{ApiError, Shared},
    body::Small,
    db::{Change, TokenRefusal, Transition},
};

/// The routes of the enrollment listener: `/v1/enroll` and `/healthz`, nothing else.
pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/v1/enroll", post(enroll))
        .route("/healthz", get(|| async { "ok" }))
}

/// Admits an enrollment under its source address's limit (`enroll_limit`, in a bucket of
/// its own so that enrollment and device traffic from one address do not starve each
/// other), before its body is read or its token looked up: the listener faces the devices'
/// network.
pub struct EnrollAllowed;

impl FromRequestParts<Shared> for EnrollAllowed {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Shared) -> Result<Self, ApiError> {
        address_limit(app, parts, "enroll", &app.config.enroll_limit).await?;
        Ok(EnrollAllowed)
    }
}

/// `POST /v1/enroll`: a one-time token and a CSR for a key the device generated; answers
/// with the device certificate, the device CA, the server CA, the device token secret and
/// the public key that signs its commands. Refused tokens are audited, repeats counted
/// into one entry.
pub async fn enroll(
    State(app): State<Shared>,
    _: EnrollAllowed,
    Small(body): Small,
) -> Result<Json<Value>, ApiError> {
    let e = api::enrollment(&body.bytes).map_err(|e| ApiError::bad_request(e.0))?;
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
            app.audit_refusal("enrollment", "enroll.refused", None, reason)
                .await;
            return Err(ApiError::unauthenticated(reason));
        }
    };
    let now_dt = time::OffsetDateTime::from_unix_timestamp(now).map_err(ApiError::internal)?;
    let issued = app
        .identity
        .device_ca
        .issue(&e.csr, &device_id, app.config.device_cert_days, now_dt)
        .map_err(ApiError::bad_request)?;
    app.db
        .add_device_cert(&issued.serial, &device_id, &issued.cert_pem, now)
        .await?;
    // Activated only if still pending when the certificate is recorded: a revocation (or
    // anything else) that got in first wins, and the certificate is never handed out. An
    // enrolled device re-provisioning with a token issued for it (`reprovision` command)
    // changes key instead, and its old certificate is revoked.
    let enrolled = app.db.device(&device_id).await?.and_then(|d| d.cert_serial);
    let change = match enrolled {
        Some(_) => Change::Rekey {
            serial: &issued.serial,
        },
        None => Change::Enroll {
            serial: &issued.serial,
        },
    };
    let revoked = match app.db.transition(&device_id, change, now).await? {
        Transition::Done { revoked_serial, .. } => revoked_serial,
        Transition::Refused(status) => {
            app.audit(
                "enrollment",
                "enroll.refused",
                Some(&device_id),
                &format!("device is {status}"),
            )
            .await;
            return Err(ApiError::forbidden(
                "status",
                format!("device {device_id} is {status}"),
            ));
        }
        Transition::NoDevice => return Err(ApiError::not_found("the token's device is gone")),
    };
    if let Some(old) = &revoked {
        app.deny(old);
        app.conns.close_all(&device_id);
        crate::server::write_device_crl(&app)
            .await
            .map_err(ApiError::internal)?;
        app.audit(
            "enrollment",
            "device.rekey",
            Some(&device_id),
            &format!("certificate {old} revoked, replaced by {}", issued.serial),
        )
        .await;
    }
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
