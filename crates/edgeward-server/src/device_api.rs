//! The device API (`/v1/device/…`), reachable only over mutual TLS. Every call passes the
//! gate in order: source-address limit, certificate identity, device token (v1 or v2, the
//! token's device id must be the certificate's; v2 binds the request and its nonce may be
//! used once), then the transport-independent part every transport shares
//! ([`crate::device_gate`]: registry status, per-device limit by hardware class). The gate is the
//! `Gated` extractor rather than a middleware layer: the call reaches its handler in one
//! step, with the body read once and no request rebuilt.

use std::{net::SocketAddr, sync::Arc};

use axum::{
    body::Bytes,
    extract::{FromRequest, FromRequestParts, Path, Request, State},
    http::request::Parts,
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use edgeward_proto::{
    gcra::Decision,
    secret::Deriver,
    token::{self, Token},
};
use serde_json::{json, Value};
use zeroize::Zeroizing;

use crate::{
    app::{ApiError, Shared},
    device_gate::{self, Call, Transport},
};

/// Largest body of any device call but the forensic upload.
pub const MAX_BODY: usize = 1024 * 1024;
/// Largest forensic bundle.
pub const MAX_FORENSICS: usize = 16 * 1024 * 1024;

/// Who is on the other end of a connection: made once per connection, with what the gate
/// would otherwise work out again on every call.
#[derive(Debug)]
pub struct Peer {
    /// Source address.
    pub addr: SocketAddr,
    /// The key of the source address's rate limit (`ip:ADDRESS`).
    ip_key: String,
    /// The device of the client certificate (device listener only).
    device: Option<PeerDevice>,
}

/// The device a connection's client certificate names.
struct PeerDevice {
    id: Arc<str>,
    /// The key of the device's rate limit (`dev:ID`).
    limit_key: String,
    /// The device's token secret (derived from the master key; zeroized on drop).
    secret: Zeroizing<String>,
}

impl std::fmt::Debug for PeerDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerDevice")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Peer {
    /// The peer at `addr` whose client certificate names `device_id` (if it sent one);
    /// `secrets` derives that device's token secret.
    pub fn new(addr: SocketAddr, device_id: Option<&str>, secrets: &Deriver) -> Self {
        Peer {
            addr,
            ip_key: format!("ip:{}", addr.ip()),
            device: device_id.map(|id| PeerDevice {
                id: id.into(),
                limit_key: device_gate::limit_key(id),
                secret: secrets.derive(id),
            }),
        }
    }
}

/// A device call that passed the gate: the device it came from and its body. Every device
/// handler takes one (as its last argument, since it consumes the body), so no handler runs
/// unless the gate let the call through; `every_device_route_is_gated` tests that.
#[derive(Debug)]
pub struct Gated {
    /// The device: the certificate's, the token's, and active (or quarantined, where a
    /// quarantined device may still call).
    pub device: Arc<str>,
    /// The request body, within the endpoint's size limit.
    pub body: Bytes,
    /// The rest of the request, for extractors that must run after the gate.
    pub parts: Parts,
    /// The body's share of the server's body memory budget, given back when the call ends.
    _held: crate::body::Held,
}

impl FromRequest<Shared> for Gated {
    type Rejection = ApiError;

    async fn from_request(req: Request, app: &Shared) -> Result<Self, ApiError> {
        gate(app, req).await
    }
}

/// The device API routes.
pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/v1/device/telemetry", post(telemetry))
        .route("/v1/device/commands", get(commands))
        .route("/v1/device/commands/{id}/result", post(command_result))
        .route(
            "/v1/device/attestation/nonce",
            post(crate::attestation::nonce),
        )
        .route("/v1/device/attestation", post(crate::attestation::submit))
        .route("/v1/device/forensics", post(forensics))
        .merge(crate::update_repo::routes())
        .merge(crate::rollout_api::device_routes())
}

fn refused(app: &Shared, reason: &'static str) {
    device_gate::refused(app, reason);
}

/// A failed authentication of the device the certificate names: counted, and told to
/// detection (bounded there) for the auth-failure burst rule.
async fn auth_failed(app: &Shared, reason: &'static str, cert_device: &str) {
    refused(app, reason);
    crate::detection::on_refusal(app, cert_device, crate::detection::Refusal::AuthFailure).await;
}

/// What the gate established before reading the body.
struct Admitted {
    peer: Arc<Peer>,
    /// A v2 token (its text), whose MAC binds the body: checked once the body is read.
    v2: Option<String>,
}

impl Admitted {
    fn device(&self) -> Result<&PeerDevice, ApiError> {
        self.peer
            .device
            .as_ref()
            .ok_or_else(|| ApiError::internal("an admitted call without its device"))
    }
}

/// Audits a refused device authentication (repeats are counted into one entry).
async fn audit_refusal(app: &Shared, device: &str, detail: &str) {
    app.audit_refusal(
        &format!("device:{device}"),
        "auth.refused",
        Some(device),
        detail,
    )
    .await;
}

/// The first half of the gate: everything that does not need the body, so that nothing is
/// read from a caller that cannot be let through. In order: the source address's limit, the
/// client certificate, the token's form and device id, for v1 its MAC and window (for v2
/// the window; its MAC binds the body), the registry status, the device's limit.
async fn admit(app: &Shared, parts: &Parts) -> Result<Admitted, ApiError> {
    let now_ns = app.clock.now_ns();
    let Some(peer) = parts.extensions.get::<Arc<Peer>>().cloned() else {
        return Err(ApiError::internal(
            "a device call arrived without its connection",
        ));
    };
    if let Decision::Deny { retry_after_ns } = app
        .store
        .check(&peer.ip_key, &app.config.ip_limit.quota(), now_ns)
        .await
        .map_err(ApiError::unavailable)?
    {
        refused(app, "ip_rate");
        if let Some(d) = &peer.device {
            crate::detection::on_refusal(app, &d.id, crate::detection::Refusal::RateLimited).await;
        }
        return Err(ApiError::rate_limited(retry_after_ns));
    }
    let Some(peer_device) = peer.device.as_ref() else {
        refused(app, "no_certificate");
        return Err(ApiError::unauthenticated(
            "a device client certificate is required",
        ));
    };
    let cert_device = &*peer_device.id;

    let Some(header) = parts
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Device "))
    else {
        auth_failed(app, "no_token", cert_device).await;
        return Err(ApiError::unauthenticated(
            "missing `Authorization: Device <token>`",
        ));
    };
    let parsed = match Token::parse(header.trim()) {
        Ok(p) => p,
        Err(e) => {
            auth_failed(app, "malformed_token", cert_device).await;
            return Err(ApiError::unauthenticated(e.to_string()));
        }
    };
    if parsed.device_id != cert_device {
        auth_failed(app, "token_device_mismatch", cert_device).await;
        audit_refusal(
            app,
            cert_device,
            &format!("token names device {:?}", parsed.device_id),
        )
        .await;
        return Err(ApiError::unauthenticated(
            "the token's device id is not the certificate's",
        ));
    }
    let window = app.config.token_window_secs;
    let now = app.clock.now_secs();
    let checked = if parsed.is_v2() {
        let skew = now.abs_diff(parsed.timestamp);
        if skew > window {
            Err(token::TokenError::OutsideWindow {
                timestamp: parsed.timestamp,
                skew,
                window,
            })
        } else {
            Ok(())
        }
    } else {
        parsed.verify(&peer_device.secret, now, window, None)
    };
    if let Err(e) = checked {
        auth_failed(app, "bad_token", cert_device).await;
        audit_refusal(app, cert_device, &e.to_string()).await;
        return Err(ApiError::unauthenticated(e.to_string()));
    }

    device_gate::check(
        app,
        cert_device,
        &peer_device.limit_key,
        Call::of_http(&parts.method, parts.uri.path()),
        Transport::Https,
    )
    .await?;
    let v2 = parsed.is_v2().then(|| header.trim().to_string());
    Ok(Admitted { peer, v2 })
}

/// The second half of the gate for a v2 token, once the body's SHA-256 is known: its MAC
/// over the request, then its nonce, which may be used once.
async fn finish_v2(
    app: &Shared,
    admitted: &Admitted,
    parts: &Parts,
    body_sha256: [u8; 32],
) -> Result<(), ApiError> {
    let Some(text) = admitted.v2.as_deref() else {
        return Ok(());
    };
    let peer_device = admitted.device()?;
    let cert_device = &*peer_device.id;
    let parsed = Token::parse(text).map_err(|e| ApiError::unauthenticated(e.to_string()))?;
    let binding = token::Request {
        method: parts.method.as_str(),
        target: parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/"),
        body_sha256,
    };
    let window = app.config.token_window_secs;
    if let Err(e) = parsed.verify(
        &peer_device.secret,
        app.clock.now_secs(),
        window,
        Some(&binding),
    ) {
        auth_failed(app, "bad_token", cert_device).await;
        audit_refusal(app, cert_device, &e.to_string()).await;
        return Err(ApiError::unauthenticated(e.to_string()));
    }
    if let Some(nonce) = parsed.nonce {
        let key = format!("{cert_device}:{}", hex::encode(nonce));
        if !app
            .store
            .first_use(&key, 2 * window, app.clock.now_ns())
            .await
            .map_err(ApiError::unavailable)?
        {
            auth_failed(app, "replay", cert_device).await;
            audit_refusal(app, cert_device, "replayed v2 nonce").await;
            return Err(ApiError::unauthenticated(
                "this token's nonce was used before (replay)",
            ));
        }
    }
    Ok(())
}

/// The gate in front of every device endpoint but the forensic upload: admits the call,
/// then reads its body (at most [`MAX_BODY`] bytes, under the server's body memory budget)
/// and finishes a v2 token's check.
async fn gate(app: &Shared, req: Request) -> Result<Gated, ApiError> {
    let (parts, body) = req.into_parts();
    let admitted = admit(app, &parts).await?;
    let held = crate::body::read(body, MAX_BODY, &app.body_budget).await?;
    if admitted.v2.is_some() {
        finish_v2(app, &admitted, &parts, token::body_sha256(&held.bytes)).await?;
    }
    Ok(Gated {
        device: admitted.device()?.id.clone(),
        body: held.bytes.clone(),
        parts,
        _held: held,
    })
}

/// A forensic upload that passed the first half of the gate: its body is still unread, to
/// be streamed to disk while it is hashed; [`Unfinished::finish`] then completes the gate.
pub struct Streamed {
    /// The device.
    pub device: Arc<str>,
    /// The unread body.
    pub body: axum::body::Body,
    /// What completes the gate.
    pub unfinished: Unfinished,
}

/// The second half of the gate, still to pass once the body has been read.
pub struct Unfinished {
    parts: Parts,
    admitted: Admitted,
}

impl Unfinished {
    /// Completes the gate with the body's SHA-256 (a v2 token's MAC and nonce).
    pub async fn finish(&self, app: &Shared, body_sha256: [u8; 32]) -> Result<(), ApiError> {
        finish_v2(app, &self.admitted, &self.parts, body_sha256).await
    }
}

impl FromRequest<Shared> for Streamed {
    type Rejection = ApiError;

    async fn from_request(req: Request, app: &Shared) -> Result<Self, ApiError> {
        let (parts, body) = req.into_parts();
        let admitted = admit(app, &parts).await?;
        Ok(Streamed {
            device: admitted.device()?.id.clone(),
            body,
            unfinished: Unfinished { parts, admitted },
        })
    }
}

async fn telemetry(State(app): State<Shared>, call: Gated) -> Result<Response, ApiError> {
    let source = call
        .parts
        .extensions
        .get::<Arc<Peer>>()
        .map(|p| p.addr.ip());
    let accepted = crate::telemetry::accept_from(&app, call.device, source, call.body).await?;
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        accepted.to_json(),
    )
        .into_response())
}

async fn commands(State(app): State<Shared>, call: Gated) -> Result<Json<Value>, ApiError> {
    pending_commands(&app, &call.device).await.map(Json)
}

/// A device's pending commands, each signed by the command key (see
/// [`crate::command_signing`]): the answer to a command poll over any transport.
pub async fn pending_commands(app: &crate::app::App, device: &str) -> Result<Value, ApiError> {
    let now = app.now();
    let commands = app.db.take_commands(device, now).await?;
    let commands: Vec<Value> = commands
        .into_iter()
        .map(|c| {
            let signed = app.command_signer.sign(device, c.id, &c.kind, &c.body, now);
            json!({ "id": c.id, "kind": c.kind, "body": c.body, "status": c.status, "signed": signed })
        })
        .collect();
    Ok(json!({ "commands": commands }))
}

async fn command_result(
    State(app): State<Shared>,
    mut call: Gated,
) -> Result<Json<Value>, ApiError> {
    // The command id is read only now that the gate has passed.
    let Path(id) = Path::<i64>::from_request_parts(&mut call.parts, &app)
        .await
        .map_err(|e| ApiError::bad_request(e.body_text()))?;
    record_result(&app, &call.device, id, &call.body)
        .await
        .map(Json)
}

/// Records `device`'s signed result `body` for command `id` (over any transport): verified
/// against the device's certificate key, see [`crate::commands::record_result`].
pub async fn record_result(
    app: &Shared,
    device: &str,
    id: i64,
    body: &[u8],
) -> Result<Value, ApiError> {
    let r = crate::commands::record_result(app, device, id, body).await?;
    Ok(json!({ "recorded": r.id, "sha256": r.sha256, "verified": true }))
}

async fn forensics(State(app): State<Shared>, call: Streamed) -> Result<Json<Value>, ApiError> {
    let Streamed {
        device: dev,
        body,
        unfinished,
    } = call;
    let incoming = crate::forensics::receive(&app, body, MAX_FORENSICS).await?;
    if incoming.bytes == 0 {
        return Err(ApiError::bad_request("empty forensic bundle"));
    }
    unfinished.finish(&app, incoming.sha256).await?;
    let verified = crate::commands::verify_bundle(&app, &dev, incoming.path()?).await?;
    let (sha, bytes) = (hex::encode(incoming.sha256), incoming.bytes);
    let stored = incoming.keep()?;
    let record = json!({ "path": stored, "verified": true, "header": verified.header });
    let id = app
        .db
        .insert_upload(&dev, "forensics", &sha, &record.to_string(), app.now())
        .await?;
    app.audit(
        &format!("device:{dev}"),
        "forensics.received",
        Some(&dev),
        &format!(
            "{bytes} bytes, sha256 {sha}, signature verified, command #{}",
            verified.header.command_id
        ),
    )
    .await;
    crate::incidents::evidence_received(&app, &dev, id, &sha, bytes).await;
    Ok(Json(
        json!({ "id": id, "sha256": sha, "bytes": bytes, "verified": true }),
    ))
}
