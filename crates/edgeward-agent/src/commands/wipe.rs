//! `wipe`: the device destroys what makes it trusted and what it protects. In order: the
//! wipe receipt (the command's result, saying what is about to be destroyed) is signed by
//! the device key while that key still exists; then the element is wiped (every key,
//! sealed-storage key and certificate; the soft element erases its master key first, so a
//! crash mid-wipe leaves nothing readable), the installed models and the sealed token
//! secret are deleted; then the receipt is kept on disk (`wipe-receipts/<id>.json`) and
//! handed back to the daemon to upload if a connection still allows. The device then waits
//! in recovery for re-provisioning (a new enrollment token file). The server revokes the
//! device's certificate when it receives the receipt.

use std::path::Path;

use edgeward_proto::command::CommandPayload;
use serde_json::{json, Value};

use super::{result, state::CommandState, After, Context, Executed};
use crate::{enroll, files, AgentError};

/// The marker file saying the device was wiped and awaits re-provisioning.
pub const MARKER: &str = "wiped";
/// The directory of kept receipts.
pub const RECEIPTS: &str = "wipe-receipts";

/// Whether the device in `state_dir` was wiped and is not re-provisioned yet.
pub fn is_wiped(state_dir: &Path) -> bool {
    state_dir.join(MARKER).exists()
}

/// Clears the wiped marker (re-provisioning completed).
pub fn provisioned(state_dir: &Path) -> Result<(), AgentError> {
    files::remove(&state_dir.join(MARKER))
}

/// Runs `wipe` (command `c`).
pub async fn run(ctx: &Context<'_>, c: &CommandPayload) -> Result<Executed, AgentError> {
    let stored = &ctx.identity.stored;
    let state_dir = &ctx.config.state_dir;
    let reason = c.args.get("reason").and_then(Value::as_str).unwrap_or("");
    let receipt_output = json!({
        "receipt": "wipe",
        "reason": reason.chars().take(500).collect::<String>(),
        "element": ctx.element.backend(),
        "key_slot": stored.key_slot,
        "certificate_sha256": hex::encode(edgeward_core::sha256(&ctx.identity.certificate_der)),
        "destroyed": ["element keys", "element certificates", "sealed-storage key", "token secret"],
        "deleted": ctx.config.models_dir.as_ref().map(|d| d.display().to_string()),
    });
    let receipt = result::sign(
        ctx.element.as_ref(),
        &stored.key_slot,
        &stored.device_id,
        c.id,
        true,
        receipt_output,
    )?;
    // Recorded first, so that a crash from here on still comes back in recovery.
    files::write_atomic(&state_dir.join(MARKER), c.id.to_string().as_bytes(), false)?;
    ctx.element.wipe()?;
    enroll::forget(state_dir)?;
    if let Some(models) = &ctx.config.models_dir {
        remove_contents(models)?;
    }
    let mut state = CommandState::load(state_dir)?;
    state.quarantined = false;
    state.quarantine_reason = None;
    state.save(state_dir)?;
    ctx.quarantine.send_replace(false);
    let receipts = state_dir.join(RECEIPTS);
    files::ensure_private_dir(&receipts)?;
    let kept =
        serde_json::to_vec_pretty(&receipt).map_err(|e| AgentError::Protocol(e.to_string()))?;
    files::write_atomic(&receipts.join(format!("{}.json", c.id)), &kept, false)?;
    tracing::warn!(
        command = c.id,
        "wiped: keys destroyed; awaiting re-provisioning"
    );
    Ok(Executed {
        result: receipt,
        ok: true,
        after: After::Wiped,
        new_identity: None,
    })
}

/// Removes everything inside `dir` (not `dir` itself).
fn remove_contents(dir: &Path) -> Result<(), AgentError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(AgentError::io(dir, e)),
    };
    for e in entries {
        let e = e.map_err(|err| AgentError::io(dir, err))?;
        let path = e.path();
        let removed = match e.file_type() {
            Ok(t) if t.is_dir() => std::fs::remove_dir_all(&path),
            _ => std::fs::remove_file(&path),
        };
        removed.map_err(|err| AgentError::io(&path, err))?;
    }
    files::sync_dir(dir)
}
