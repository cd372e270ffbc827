//! Signed incident commands: verification ([`verify`]) before anything runs, then one
//! module per command, each answered with a result signed inside the secure element
//! ([`result`]). [`execute`] is the dispatch; what the daemon must do afterwards (carry on,
//! stop because the keys are gone, reconnect with a new identity) is its [`After`].

pub mod attest;
pub mod forensics;
pub mod procfs;
pub mod quarantine;
pub mod reprovision;
pub mod result;
pub mod state;
pub mod update;
pub mod verify;
pub mod wipe;

use std::sync::Arc;

use edgeward_proto::command::{CommandPayload, Signed};
use edgeward_se::SecureElement;
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::{enroll::Identity, net::DeviceClient, queue::Queue, AgentConfig, AgentError};

/// Now in Unix seconds (device clock), as command payloads carry it.
pub fn now() -> i64 {
    i64::try_from(edgeward_core::civil::unix_now()).unwrap_or(i64::MAX)
}

/// What a command runs with.
pub struct Context<'a> {
    /// The agent's configuration.
    pub config: &'a AgentConfig,
    /// The secure element.
    pub element: &'a Arc<dyn SecureElement>,
    /// The enrolled identity.
    pub identity: &'a Identity,
    /// The device API client of that identity.
    pub client: &'a DeviceClient,
    /// The telemetry queue (read for forensic bundles).
    pub queue: &'a Queue,
    /// The quarantine switch (true: quarantined), watched by the application socket.
    pub quarantine: &'a watch::Sender<bool>,
}

/// What the daemon does after a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum After {
    /// Carry on.
    Continue,
    /// The device was wiped: stop talking to the server, wait for re-provisioning.
    Wiped,
    /// The device has a new key and certificate: reconnect with them.
    Reidentified,
}

/// A command's signed result and what follows it.
#[derive(Debug)]
pub struct Executed {
    /// The signed result.
    pub result: Signed,
    /// Whether it succeeded.
    pub ok: bool,
    /// What the daemon does next.
    pub after: After,
    /// The identity to sign and post the result with when it changed (reprovision).
    pub new_identity: Option<Identity>,
}

/// Runs the verified command `c` and signs its result. A failure of the command itself is
/// a signed failed result; an error is returned only when no result could be signed.
pub async fn execute(ctx: &Context<'_>, c: &CommandPayload) -> Result<Executed, AgentError> {
    let slot = &ctx.identity.stored.key_slot;
    let device = &ctx.identity.stored.device_id;
    let plain = |ok: bool, output: Value| -> Result<Executed, AgentError> {
        Ok(Executed {
            result: result::sign(ctx.element.as_ref(), slot, device, c.id, ok, output)?,
            ok,
            after: After::Continue,
            new_identity: None,
        })
    };
    let (ok, output) = match c.kind.as_str() {
        "quarantine" => quarantine::quarantine(ctx, &c.args)?,
        "release" => quarantine::release(ctx)?,
        "collect_forensics" => forensics::run(ctx, c.id).await,
        "attest" => attest::run(ctx, &c.args),
        "update" => update::run(ctx).await,
        "wipe" => return wipe::run(ctx, c).await,
        "reprovision" => return reprovision::run(ctx, c).await,
        other => (
            false,
            json!({ "error": format!("unknown command kind {other:?}") }),
        ),
    };
    plain(ok, output)
}
