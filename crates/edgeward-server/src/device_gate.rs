//! The device gate, one implementation for every transport. Once a transport has
//! authenticated a device (HTTPS: the client certificate and the device token; MQTT: the
//! broker's mutual TLS with the certificate's identity as the client's user name and its
//! topic ACL), the call passes here: the device must be registered and active (a quarantined
//! device keeps only its command channel and forensic upload; a revoked one nothing), then
//! within its hardware class's per-device limit, which every transport draws from alike.
//! Refusals are counted and audited (repeats aggregated), naming the call and transport;
//! rate-limit hits are also told to detection (the rate-limit burst rule).

use edgeward_proto::gcra::Decision;

use crate::{
    app::{ApiError, App},
    db::DeviceStatus,
};

/// What a device is asking for, whatever carried it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// Sending a telemetry batch.
    Telemetry,
    /// Fetching its pending commands.
    Commands,
    /// Reporting a command's result.
    CommandResult,
    /// Sending attestation evidence.
    Attestation,
    /// Uploading a forensic bundle.
    Forensics,
    /// Fetching (part of) an update target: counted by the bytes it serves
    /// (`update_limit`, charged by [`crate::update_repo`]) instead of as one request.
    UpdateTarget,
    /// Any other device call (closed in quarantine).
    Other,
}

impl Call {
    /// Whether a quarantined device may still make this call: the command channel and the
    /// forensic upload stay open so that it can be investigated and released.
    pub fn open_in_quarantine(self) -> bool {
        matches!(self, Call::Commands | Call::CommandResult | Call::Forensics)
    }

    /// The call an HTTPS request to the device API makes.
    pub fn of_http(method: &axum::http::Method, path: &str) -> Call {
        let post = method == axum::http::Method::POST;
        match path {
            "/v1/device/commands" if method == axum::http::Method::GET => Call::Commands,
            "/v1/device/telemetry" if post => Call::Telemetry,
            "/v1/device/attestation" if post => Call::Attestation,
            "/v1/device/forensics" if post => Call::Forensics,
            p if method == axum::http::Method::GET && p.starts_with(UPDATE_TARGETS) => {
                Call::UpdateTarget
            }
            p if post && p.starts_with("/v1/device/commands/") && p.ends_with("/result") => {
                Call::CommandResult
            }
            _ => Call::Other,
        }
    }

    /// The call's name in metrics and audit entries.
    pub fn name(self) -> &'static str {
        match self {
            Call::Telemetry => "telemetry",
            Call::Commands => "commands",
            Call::CommandResult => "command_result",
            Call::Attestation => "attestation",
            Call::Forensics => "forensics",
            Call::UpdateTarget => "update_target",
            Call::Other => "other",
        }
    }
}

/// Where the update repository's targets are served.
const UPDATE_TARGETS: &str = "/v1/device/update/targets/";

/// The transport a call came over (for metrics and the audit log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// The mTLS device API.
    Https,
    /// The MQTT broker.
    Mqtt,
}

impl Transport {
    /// Its name in metrics and audit entries.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Https => "https",
            Transport::Mqtt => "mqtt",
        }
    }
}

/// The key of a device's rate limit (`dev:ID`), shared by every transport.
pub fn limit_key(device: &str) -> String {
    format!("dev:{device}")
}

/// Counts a refusal by reason for `/metrics`.
pub fn refused(app: &App, reason: &'static str) {
    app.metrics.inc(
        "edgeward_auth_refusals_total",
        format!("reason=\"{reason}\""),
    );
}

/// Decides whether authenticated `device` may make `call` now: registry status, then the
/// per-device limit (drawn from the bucket named `limit_key`, see [`limit_key`]; a target
/// download draws from its byte budget instead, once its length is known). A refusal says
/// why, is counted and is audited.
pub async fn check(
    app: &App,
    device: &str,
    limit_key: &str,
    call: Call,
    transport: Transport,
) -> Result<(), ApiError> {
    let Some(record) = app.registry.device(&app.db, device).await? else {
        refused(app, "unknown_device");
        audit(app, device, call, transport, "the device is not registered").await;
        return Err(ApiError::forbidden(
            "unknown_device",
            "the device is not registered",
        ));
    };
    match record.status {
        DeviceStatus::Active => {}
        DeviceStatus::Quarantined if call.open_in_quarantine() => {}
        status => {
            refused(app, "status");
            let message = format!("device {device} is {status}");
            audit(app, device, call, transport, &message).await;
            return Err(ApiError::forbidden(
                match status {
                    DeviceStatus::Quarantined => "quarantined",
                    DeviceStatus::Revoked => "revoked",
                    _ => "not_active",
                },
                message,
            ));
        }
    }
    if call == Call::UpdateTarget {
        return Ok(());
    }
    let quota = app.config.limit_for(&record.hardware_class).quota();
    if let Decision::Deny { retry_after_ns } = app
        .store
        .check(limit_key, &quota, app.clock.now_ns())
        .await
        .map_err(ApiError::unavailable)?
    {
        refused(app, "device_rate");
        crate::detection::on_refusal(app, device, crate::detection::Refusal::RateLimited).await;
        return Err(ApiError::rate_limited(retry_after_ns));
    }
    Ok(())
}

/// Audits a refused call (repeats within the aggregation window become one counted entry).
async fn audit(app: &App, device: &str, call: Call, transport: Transport, why: &str) {
    app.audit_refusal(
        &format!("device:{device}"),
        "gate.refused",
        Some(device),
        &format!("{} over {}: {why}", call.name(), transport.name()),
    )
    .await;
}
