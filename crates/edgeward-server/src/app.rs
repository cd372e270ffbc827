//! The state every request handler shares, and the JSON error shape of every refusal.

use std::sync::Arc;

use axum::{
    http::{HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use serde_json::json;

use crate::{
    clock::Clock, config::Config, conns::Connections, db::Db, identity::Identity, metrics::Metrics,
    rate_limit::Store, tls::RevokedSerials,
};

/// Everything the handlers share.
pub struct App {
    /// The configuration in effect.
    pub config: Config,
    /// The registry.
    pub db: Db,
    /// Keys and certificates.
    pub identity: Identity,
    /// Rate-limit and nonce state.
    pub store: Store,
    /// Publishes accepted telemetry to JetStream for the detection workers (`[nats]`).
    pub nats: Option<crate::detect_nats::publish::Publisher>,
    /// The time source.
    pub clock: Arc<dyn Clock>,
    /// Open device connections.
    pub conns: Connections,
    /// This process's random name among the replicas, on the session drops it records so
    /// that it does not follow its own (it applied them when it recorded them).
    pub instance: String,
    /// Revoked device certificate serials (also enforced in the TLS handshake).
    pub revoked: RevokedSerials,
    /// Counters for `/metrics`.
    pub metrics: Metrics,
    /// Held while the device CRL is rewritten, so a later CRL never lands before an
    /// earlier one.
    pub crl_writer: tokio::sync::Mutex<()>,
    /// Device records for the hot path (embedded default only).
    pub registry: crate::registry_cache::RegistryCache,
    /// Repeated refusals, counted for the audit log.
    pub refusals: crate::audit_agg::Aggregator,
    /// The memory request bodies may hold at once.
    pub body_budget: crate::body::Budget,
    /// Group-committed telemetry writes.
    pub ingest: crate::ingest::Ingest,
    /// Signs the commands handed to devices.
    pub command_signer: crate::command_signing::CommandSigner,
    /// Signs the audit log's checkpoints.
    pub audit_signer: crate::audit_log::AuditSigner,
    /// Verifies attestation evidence (signed boot policies, nonces).
    pub attestation: crate::attestation::Verifier,
    /// The update repository's releases, read again when it is published to.
    pub releases: crate::rollout::ReleaseCache,
    /// Bumped each time the device CRL is rewritten (a revocation here or elsewhere), so
    /// that transports with sessions of their own (MQTT) close the revoked ones.
    pub crl_changed: tokio::sync::watch::Sender<u64>,
    /// The server's broker connection (`[mqtt]`), set when it starts: containment closes a
    /// device's live MQTT session through it ([`crate::mqtt::kick::close`]).
    pub mqtt: std::sync::OnceLock<rumqttc::AsyncClient>,
    /// In-process detection and response (`None` when `detection.enabled` is off).
    pub detection: Option<crate::detection::Detection>,
}

/// Shared handle to the state.
pub type Shared = Arc<App>;

impl App {
    /// Now, in Unix seconds.
    pub fn now(&self) -> i64 {
        i64::try_from(self.clock.now_secs()).unwrap_or(i64::MAX)
    }

    /// Adds a revoked certificate serial to the set the TLS verifier refuses (fails closed:
    /// even a poisoned lock takes it).
    pub fn deny(&self, serial: &str) {
        let mut set = self.revoked.write().unwrap_or_else(|e| e.into_inner());
        set.insert(serial.to_string());
    }

    /// Appends to the audit log; a failure to audit is logged (the action already happened).
    pub async fn audit(&self, actor: &str, action: &str, device: Option<&str>, detail: &str) {
        self.audit_counted(actor, action, device, detail, 1).await;
    }

    /// Appends an entry that stands for `count` events.
    pub async fn audit_counted(
        &self,
        actor: &str,
        action: &str,
        device: Option<&str>,
        detail: &str,
        count: u64,
    ) {
        let count = i64::try_from(count).unwrap_or(i64::MAX);
        if let Err(e) = self
            .db
            .audit(self.now(), actor, action, device, detail, count)
            .await
        {
            tracing::error!(%e, action, "could not write the audit log");
        }
    }

    /// Audits a refusal: the first of its kind at once, repeats within the aggregation
    /// window as one entry with their count when the window closes (see `audit_agg`).
    pub async fn audit_refusal(
        &self,
        actor: &str,
        action: &'static str,
        device: Option<&str>,
        detail: &str,
    ) {
        if let Some((actor, action, device, detail, count)) =
            self.refusals.refusal(actor, action, device, detail)
        {
            self.audit_counted(&actor, action, device.as_deref(), &detail, count)
                .await;
        }
    }

    /// Writes the counted repeats of refusal windows that have closed (all if `all`).
    pub async fn flush_refusals(&self, all: bool) {
        for (actor, action, device, detail, count) in self.refusals.flush(all) {
            self.audit_counted(&actor, action, device.as_deref(), &detail, count)
                .await;
        }
    }
}

/// A refusal or failure, answered as `{"error": code, "message": text}`.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Machine-readable code, e.g. `unauthenticated`, `quarantined`, `rate_limited`.
    pub code: &'static str,
    /// What was wrong.
    pub message: String,
    /// For 429: seconds to wait.
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// A refusal with `status`, `code` and `message`.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }
    /// 400.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
    /// 401.
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthenticated", message)
    }
    /// 403.
    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, message)
    }
    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }
    /// 429 with `Retry-After`.
    pub fn rate_limited(retry_after_ns: u64) -> Self {
        let secs = retry_after_ns.div_ceil(1_000_000_000).max(1);
        ApiError {
            retry_after: Some(secs),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("rate limit exceeded; retry in {secs} s"),
            )
        }
    }
    /// 500 (details logged, not sent).
    pub fn internal(e: impl std::fmt::Display) -> Self {
        tracing::error!(%e, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
        )
    }
    /// 503: a dependency (database, Redis) failed; refusing is the safe answer.
    pub fn unavailable(e: impl std::fmt::Display) -> Self {
        tracing::error!(%e, "dependency unavailable");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "a backing service is unavailable",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (
            self.status,
            Json(json!({ "error": self.code, "message": self.message })),
        )
            .into_response();
        if let Some(secs) = self.retry_after {
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                r.headers_mut().insert("retry-after", v);
            }
        }
        r
    }
}

impl From<crate::db::DbError> for ApiError {
    fn from(e: crate::db::DbError) -> Self {
        ApiError::unavailable(e)
    }
}
