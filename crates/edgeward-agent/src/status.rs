//! The agent's status, kept current by the daemon and served on a local unix socket
//! (`status.sock`, mode 0600): a client connects and reads one JSON document. Nothing is
//! read from the client, so the socket offers no input to parse.

use std::{
    path::Path,
    sync::{Arc, Mutex},
};

use serde::{Deserialize, Serialize};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{UnixListener, UnixStream},
    sync::watch,
};

use crate::AgentError;

/// Largest status document a client reads.
const MAX_STATUS: u64 = 64 * 1024;

/// What the agent is doing.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Status {
    /// `starting`, `awaiting_enrollment`, `running`, `quarantined` or `wiped`.
    pub state: String,
    /// The enrolled device id.
    pub device_id: Option<String>,
    /// The element slot of the device key.
    pub key_slot: Option<String>,
    /// Whether the last call to the server got through.
    pub server_reachable: bool,
    /// The last failure, if the last attempt failed.
    pub last_error: Option<String>,
    /// Telemetry events the server acknowledged since start.
    pub telemetry_sent: u64,
    /// Events waiting in the on-disk queue.
    pub queue_len: u64,
    /// Events dropped at the queue's bound, ever.
    pub queue_dropped: u64,
    /// The last command executed.
    pub last_command_id: i64,
    /// Commands executed since start.
    pub commands_executed: u64,
    /// Delivered commands refused since start (bad signature, another device's, replayed,
    /// expired): none of them ran.
    #[serde(default)]
    pub commands_refused: u64,
}

/// The status shared between the daemon's tasks.
pub type SharedStatus = Arc<Mutex<Status>>;

/// Applies `f` to the shared status.
pub fn update(status: &SharedStatus, f: impl FnOnce(&mut Status)) {
    let mut s = status.lock().unwrap_or_else(|p| p.into_inner());
    f(&mut s);
}

/// A copy of the shared status.
pub fn snapshot(status: &SharedStatus) -> Status {
    status.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// Binds the socket at `path` (replacing a stale one, mode 0600).
pub fn bind(path: &Path) -> Result<UnixListener, AgentError> {
    crate::files::remove(path)?;
    let listener = UnixListener::bind(path).map_err(|e| AgentError::io(path, e))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| AgentError::io(path, e))?;
    Ok(listener)
}

/// Answers every connection with the current status until `shutdown`.
pub async fn serve(
    listener: UnixListener,
    status: SharedStatus,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let stream = tokio::select! {
            s = listener.accept() => s,
            _ = shutdown.changed() => return,
        };
        let Ok((mut stream, _)) = stream else {
            continue;
        };
        let body = serde_json::to_vec(&snapshot(&status)).unwrap_or_default();
        // A client that does not read is dropped after a second; the daemon never waits.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), async {
            let _ = stream.write_all(&body).await;
            let _ = stream.shutdown().await;
        })
        .await;
    }
}

/// Reads the status from the socket at `path`.
pub async fn query(path: &Path) -> Result<Status, AgentError> {
    let stream = UnixStream::connect(path)
        .await
        .map_err(|e| AgentError::io(path, e))?;
    let mut body = Vec::new();
    stream
        .take(MAX_STATUS)
        .read_to_end(&mut body)
        .await
        .map_err(|e| AgentError::io(path, e))?;
    serde_json::from_slice(&body)
        .map_err(|e| AgentError::Protocol(format!("status from {}: {e}", path.display())))
}

/// The status for humans, one fact a line.
pub fn render(s: &Status) -> String {
    let mut out = format!("state: {}\n", s.state);
    if let Some(id) = &s.device_id {
        out.push_str(&format!(
            "device: {id} (key in slot {})\n",
            s.key_slot.as_deref().unwrap_or("?")
        ));
    }
    out.push_str(&format!(
        "server: {}\n",
        if s.server_reachable {
            "reachable"
        } else {
            "unreachable"
        }
    ));
    out.push_str(&format!(
        "telemetry: {} sent, {} queued, {} dropped at the queue bound\n",
        s.telemetry_sent, s.queue_len, s.queue_dropped
    ));
    out.push_str(&format!(
        "commands: {} executed, last id {}\n",
        s.commands_executed, s.last_command_id
    ));
    if let Some(e) = &s.last_error {
        out.push_str(&format!("last error: {e}\n"));
    }
    out
}
