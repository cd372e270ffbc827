//! `quarantine` and `release`. Quarantined, the device stops serving inference (the
//! application socket refuses every connection), sends nothing but command results and
//! forensic bundles (telemetry is still sampled into the on-disk queue, as evidence, and
//! delivered after release), and stays so across restarts (the flag is in the persisted
//! command state). The server's registry quarantines the device too, so a compromised
//! agent that ignores the command is still cut off.

use serde_json::{json, Value};

use super::{state::CommandState, Context};
use crate::AgentError;

/// Enters quarantine; `args` may carry `{"reason": text}`.
pub fn quarantine(ctx: &Context<'_>, args: &Value) -> Result<(bool, Value), AgentError> {
    let reason = args
        .get("reason")
        .and_then(Value::as_str)
        .map(|r| r.chars().take(500).collect::<String>());
    set(ctx, true, reason.clone())?;
    tracing::warn!(reason = reason.as_deref().unwrap_or(""), "quarantined");
    Ok((true, json!({ "quarantined": true, "reason": reason })))
}

/// Leaves quarantine.
pub fn release(ctx: &Context<'_>) -> Result<(bool, Value), AgentError> {
    set(ctx, false, None)?;
    tracing::info!("released from quarantine");
    Ok((true, json!({ "quarantined": false })))
}

fn set(ctx: &Context<'_>, on: bool, reason: Option<String>) -> Result<(), AgentError> {
    let mut state = CommandState::load(&ctx.config.state_dir)?;
    state.quarantined = on;
    state.quarantine_reason = reason;
    state.save(&ctx.config.state_dir)?;
    ctx.quarantine.send_replace(on);
    Ok(())
}
