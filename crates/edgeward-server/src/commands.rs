//! Queuing signed commands for devices: the one entry point every producer calls (the
//! admin API, detection, incident playbooks), so that each queued command is checked,
//! recorded and audited the same way. The command is signed when a device collects it
//! ([`crate::command_signing`]); a `reprovision` gets a fresh one-time enrollment token
//! bound to its device ([`issue_enrollment_token`]) unless the caller supplied one.
//!
//! What devices send back is checked here too, for every transport: a command's result
//! ([`record_result`]) and a forensic bundle ([`verify_bundle`]) must be signed by the key
//! of the device's current certificate, or they are refused and audited.

use edgeward_core::{keys::PublicKey, raw_signature};
use edgeward_proto::{
    command::{self, Signed},
    forensics::{self, BundleHeader},
};
use rustls_pki_types::{pem::PemObject, CertificateDer};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::{
    admin_api::{new_secret, secret_hash},
    app::{ApiError, Shared},
    db::{Change, DeviceStatus, VerifiedResult},
};

/// A command queued by [`enqueue`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    /// The command's id (strictly increasing per device, what the device checks).
    pub id: i64,
    /// The enrollment token minted for a `reprovision` (shown once; stored by hash only).
    pub enrollment_token: Option<String>,
}

/// A fresh enrollment token for device `id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrollmentToken {
    /// The token (shown once; the registry keeps its SHA-256).
    pub token: String,
    /// When it expires (Unix seconds).
    pub expires_at: i64,
}

/// Issues a one-time enrollment token bound to device `id`, valid for the configured
/// enrollment lifetime, without changing the device's status: the device presents it with a
/// CSR for a new key, and the certificate it held is revoked once the new one is issued
/// (see [`crate::enrollment`]). Earlier unused tokens of the device stay valid until they
/// expire or are used.
pub async fn issue_enrollment_token(
    app: &Shared,
    actor: &str,
    id: &str,
) -> Result<EnrollmentToken, ApiError> {
    app.db
        .device(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no device {id}")))?;
    let token = new_secret("ewe");
    let expires_at =
        app.now() + i64::try_from(app.config.enrollment_ttl_secs).unwrap_or(i64::MAX / 2);
    app.db
        .add_enrollment_token(&secret_hash(&token), id, expires_at)
        .await?;
    app.audit(
        actor,
        "enrollment_token.issue",
        Some(id),
        &format!("expires at {expires_at}"),
    )
    .await;
    Ok(EnrollmentToken { token, expires_at })
}

/// Queues command `kind` with arguments `args` for `device` on behalf of `actor` (e.g.
/// `admin:alice`, `detect`): checks the device exists, mints the enrollment token of a
/// `reprovision` that carries none, stores the command (the device collects it signed on
/// its next poll) and audits it. `quarantine` also quarantines the device in the registry
/// and `release` releases it. Kinds outside [`edgeward_proto::command::KINDS`] are
/// queued too: the device answers them with a signed refusal.
pub async fn enqueue(
    app: &Shared,
    actor: &str,
    device: &str,
    kind: &str,
    args: Value,
) -> Result<Queued, ApiError> {
    let found = app
        .db
        .device(device)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no device {device}")))?;
    // The registry follows at once: a device told to quarantine itself is cut off by the
    // gate too (only commands, results and forensics), even if its agent ignores the order.
    let registry = match (kind, found.status) {
        ("quarantine", DeviceStatus::Active) => Some(Change::Quarantine),
        ("release", DeviceStatus::Quarantined) => Some(Change::Release),
        _ => None,
    };
    if let Some(change) = registry {
        let _changed = crate::admin_api::change_status(app, actor, device, change).await?;
    }
    let mut args = args;
    let mut minted = None;
    if kind == "reprovision" && args.get("enrollment_token").is_none() {
        let t = issue_enrollment_token(app, actor, device).await?;
        match &mut args {
            Value::Object(map) => {
                map.insert("enrollment_token".into(), json!(t.token));
            }
            Value::Null => args = json!({ "enrollment_token": t.token }),
            _ => {
                return Err(ApiError::bad_request(
                    "reprovision arguments must be a JSON object",
                ))
            }
        }
        minted = Some(t.token);
    }
    let id = app
        .db
        .add_command(device, kind, &args.to_string(), app.now())
        .await?;
    app.audit(actor, "command.add", Some(device), &format!("{kind} #{id}"))
        .await;
    Ok(Queued {
        id,
        enrollment_token: minted,
    })
}

/// The key of the device's current certificate, the one its results and bundles must be
/// signed with.
async fn device_key(app: &Shared, device: &str) -> Result<Option<PublicKey>, ApiError> {
    let Some(pem) = app.db.current_cert(device).await? else {
        return Ok(None);
    };
    let der = CertificateDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| ApiError::internal(format!("stored certificate of {device}: {e}")))?;
    PublicKey::from_certificate_der(&der)
        .map(Some)
        .map_err(|e| ApiError::internal(format!("stored certificate of {device}: {e}")))
}

/// Refuses a signed upload from `device`: audited (repeats counted), then a 400 or 403.
async fn refuse(app: &Shared, device: &str, action: &'static str, e: ApiError) -> ApiError {
    app.metrics.inc(
        "edgeward_signed_uploads_refused_total",
        format!("action=\"{action}\""),
    );
    app.audit_refusal(
        &format!("device:{device}"),
        action,
        Some(device),
        &e.message,
    )
    .await;
    e
}

/// What [`record_result`] stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// The command.
    pub id: i64,
    /// SHA-256 of the signed payload, hex.
    pub sha256: String,
    /// Whether the command succeeded.
    pub ok: bool,
}

/// Records the result `body` (a [`Signed`] [`edgeward_proto::command::ResultPayload`]) that
/// `device` posted for command `id`, after checking it: the payload names this device and
/// this command, and its signature verifies under the key of the device's current
/// certificate. Anything else is refused and audited, and nothing is stored. A verified
/// successful `wipe` receipt revokes the device's certificate (CRL and deny set, through
/// the registry's compare-and-set transition): its keys are gone.
pub async fn record_result(
    app: &Shared,
    device: &str,
    id: i64,
    body: &[u8],
) -> Result<Recorded, ApiError> {
    const ACTION: &str = "command.result_refused";
    let checked = check_result(app, device, id, body).await;
    let (payload, signature, ok) = match checked {
        Ok(v) => v,
        Err(e) => return Err(refuse(app, device, ACTION, e).await),
    };
    let sha256 = hex::encode(edgeward_core::sha256(payload.as_bytes()));
    let verified = VerifiedResult {
        id,
        ok,
        payload: &payload,
        signature: &signature,
        sha256: &sha256,
    };
    if !app.db.command_result(device, &verified, app.now()).await? {
        return Err(ApiError::not_found(format!(
            "no command {id} awaiting a result from this device"
        )));
    }
    app.audit(
        &format!("device:{device}"),
        "command.result",
        Some(device),
        &format!("#{id} ok={ok}, signed result sha256 {sha256}"),
    )
    .await;
    let kind = app.db.command_outcome(device, id).await?.map(|o| o.kind);
    if ok && kind.as_deref() == Some("wipe") {
        // After the answer has gone out: revoking closes this very connection.
        let (app, device) = (app.clone(), device.to_string());
        tokio::spawn(async move {
            let actor = format!("device:{device}");
            if let Err(e) =
                crate::admin_api::change_status(&app, &actor, &device, Change::Revoke).await
            {
                tracing::warn!(%device, error = %e.message, "revoking a wiped device");
            }
        });
    }
    Ok(Recorded { id, sha256, ok })
}

/// Checks a posted result: (payload text, signature base64, ok).
async fn check_result(
    app: &Shared,
    device: &str,
    id: i64,
    body: &[u8],
) -> Result<(String, String, bool), ApiError> {
    let signed: Signed = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "a command result is a signed payload ({{\"payload\",\"signature\"}}): {e}"
        ))
    })?;
    let (payload, signature) = signed.decode().map_err(|e| ApiError::bad_request(e.0))?;
    let result = command::parse_result(&payload).map_err(|e| ApiError::bad_request(e.0))?;
    if result.device_id != device || result.command_id != id {
        return Err(ApiError::forbidden(
            "result_mismatch",
            format!(
                "the signed result is for command {} of device {:?}, not command {id} of this device",
                result.command_id, result.device_id
            ),
        ));
    }
    let key = device_key(app, device).await?.ok_or_else(|| {
        ApiError::forbidden(
            "no_certificate",
            format!("device {device} has no certificate on record to verify its result"),
        )
    })?;
    raw_signature::verify_message(
        &key,
        &command::signed_message(command::RESULT_CONTEXT, &payload),
        &signature,
    )
    .map_err(|_| {
        ApiError::forbidden(
            "bad_signature",
            format!("the result of command {id} is not signed by the device's certificate key"),
        )
    })?;
    let text = String::from_utf8(payload)
        .map_err(|_| ApiError::bad_request("the result payload is not UTF-8"))?;
    Ok((text, signed.signature, result.ok))
}

/// A forensic bundle whose signature and body digest verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedBundle {
    /// Its signed header.
    pub header: BundleHeader,
}

/// Verifies the forensic bundle at `path` (received from `device`, at most the upload
/// limit): the header line's signature under the key of the device's current certificate,
/// the header's device, then the body's length and SHA-256 against the header. Refusals
/// are audited.
pub async fn verify_bundle(
    app: &Shared,
    device: &str,
    path: &std::path::Path,
) -> Result<VerifiedBundle, ApiError> {
    const ACTION: &str = "forensics.refused";
    let checked = check_bundle(app, device, path).await;
    match checked {
        Ok(v) => Ok(v),
        Err(e) => Err(refuse(app, device, ACTION, e).await),
    }
}

async fn check_bundle(
    app: &Shared,
    device: &str,
    path: &std::path::Path,
) -> Result<VerifiedBundle, ApiError> {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let mut file = tokio::fs::File::open(path)
        .await
        .map_err(|e| ApiError::internal(format!("{}: {e}", path.display())))?;
    let mut head = vec![0u8; forensics::MAX_HEADER_LINE + 1];
    let mut filled = 0;
    while filled < head.len() {
        let n = file
            .read(&mut head[filled..])
            .await
            .map_err(|e| ApiError::internal(format!("{}: {e}", path.display())))?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    let line = forensics::parse_header(&head[..filled]).map_err(|e| ApiError::bad_request(e.0))?;
    if line.header.device_id != device {
        return Err(ApiError::forbidden(
            "bundle_mismatch",
            format!(
                "the bundle is signed as collected by {:?}, not this device",
                line.header.device_id
            ),
        ));
    }
    let key = device_key(app, device).await?.ok_or_else(|| {
        ApiError::forbidden(
            "no_certificate",
            format!("device {device} has no certificate on record to verify its bundle"),
        )
    })?;
    raw_signature::verify_message(
        &key,
        &command::signed_message(forensics::BUNDLE_CONTEXT, &line.payload),
        &line.signature,
    )
    .map_err(|_| {
        ApiError::forbidden(
            "bad_signature",
            "the bundle header is not signed by the device's certificate key",
        )
    })?;
    file.seek(std::io::SeekFrom::Start(line.body_offset as u64))
        .await
        .map_err(|e| ApiError::internal(format!("{}: {e}", path.display())))?;
    let mut hash = Sha256::new();
    let mut bytes = 0u64;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file
            .read(&mut buf)
            .await
            .map_err(|e| ApiError::internal(format!("{}: {e}", path.display())))?;
        if n == 0 {
            break;
        }
        bytes += n as u64;
        hash.update(&buf[..n]);
    }
    let digest = hex::encode(hash.finalize());
    if bytes != line.header.body_bytes || digest != line.header.body_sha256 {
        return Err(ApiError::bad_request(format!(
            "the bundle body ({bytes} bytes, sha256 {digest}) is not the one its header signs ({} bytes, sha256 {})",
            line.header.body_bytes, line.header.body_sha256
        )));
    }
    Ok(VerifiedBundle {
        header: line.header,
    })
}
