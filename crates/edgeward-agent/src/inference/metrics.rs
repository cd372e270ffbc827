//! The metrics socket (`inference_socket` in `agent.toml`): the inference application
//! reports what it measured — inferences per second, mean latency, the model it runs — as
//! [`MetricsReport`] frames, and the agent keeps the latest to send with its next device
//! sample. Connections are bounded in number, frames in size; a bad frame closes its
//! connection and is counted, never trusted.

use std::{
    path::Path,
    sync::{Arc, Mutex},
};

use edgeward_core::civil::unix_now;
use edgeward_proto::inference::{frame_len, MetricsReport};
use tokio::{
    io::AsyncReadExt,
    net::{UnixListener, UnixStream},
    sync::{watch, Semaphore},
};

use crate::{files, AgentError};

/// Most applications connected at once.
const MAX_CONNECTIONS: usize = 8;
/// A report older than this is not sent (the application stopped reporting).
pub const STALE_SECS: u64 = 300;

/// The latest report and when it arrived.
#[derive(Debug, Clone, Default)]
pub struct Latest {
    /// The report.
    pub report: Option<MetricsReport>,
    /// When it arrived (Unix seconds).
    pub at: u64,
    /// Frames refused since the agent started.
    pub refused: u64,
}

/// Shared between the socket's tasks and the sampler.
pub type SharedLatest = Arc<Mutex<Latest>>;

/// Binds the metrics socket (mode 0660; replaces a stale one).
pub fn bind(path: &Path) -> Result<UnixListener, AgentError> {
    let _ = files::remove(path);
    let listener = UnixListener::bind(path).map_err(|e| AgentError::io(path, e))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .map_err(|e| AgentError::io(path, e))?;
    Ok(listener)
}

/// Accepts reports until shutdown.
pub async fn serve(
    listener: UnixListener,
    latest: SharedLatest,
    mut shutdown: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "metrics socket accept");
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
            // Too many connections: this one is dropped.
            continue;
        };
        let latest = Arc::clone(&latest);
        tokio::spawn(async move {
            let _permit = permit;
            if let Err(why) = connection(stream, &latest).await {
                tracing::warn!(error = %why, "metrics report refused");
                if let Ok(mut l) = latest.lock() {
                    l.refused += 1;
                }
            }
        });
    }
}

async fn connection(mut stream: UnixStream, latest: &SharedLatest) -> Result<(), String> {
    loop {
        let mut prefix = [0u8; 4];
        match stream.read_exact(&mut prefix).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e.to_string()),
        }
        let len = frame_len(prefix).map_err(|e| e.to_string())?;
        let mut body = vec![0u8; len];
        stream
            .read_exact(&mut body)
            .await
            .map_err(|e| e.to_string())?;
        let report = MetricsReport::decode(&body).map_err(|e| e.to_string())?;
        if let Ok(mut l) = latest.lock() {
            l.report = Some(report);
            l.at = unix_now();
        }
    }
}

/// The telemetry fields of the latest fresh report: `metrics` entries and the `inference`
/// object (with what the worker serves, when it runs).
pub fn telemetry(
    latest: &SharedLatest,
    worker: Option<(&[u8; 32], bool)>,
) -> Option<(serde_json::Value, serde_json::Value)> {
    let l = latest.lock().ok()?.clone();
    let now = unix_now();
    let report = l.report.filter(|_| now.saturating_sub(l.at) <= STALE_SECS);
    if report.is_none() && worker.is_none() {
        return None;
    }
    let metrics = match &report {
        Some(r) => serde_json::json!({
            "inference_rate": r.inferences_per_sec,
            "inference_latency_ms": r.latency_ms,
        }),
        None => serde_json::json!({}),
    };
    let mut inference = serde_json::json!({ "reports_refused": l.refused });
    if let Some(r) = &report {
        inference["model_sha256"] = r.model_sha256.to_ascii_lowercase().into();
        inference["reported_at"] = l.at.into();
    }
    if let Some((sha, quarantined)) = worker {
        inference["worker"] = serde_json::json!({
            "model_sha256": hex::encode(sha),
            "state": if quarantined { "quarantined" } else { "serving" },
        });
    }
    Some((metrics, inference))
}
