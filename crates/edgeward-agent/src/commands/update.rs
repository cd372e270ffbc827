//! The `update` command ("check for an update now"): one install pass of the agent's update
//! client ([`crate::update::run_update_command`], the `[update]` section of the
//! configuration), its per-component results as the output. Without an `[update]` section
//! the answer is a signed failure saying so, never a success the device did not earn.

use std::sync::Arc;

use serde_json::{json, Value};

use super::Context;

/// What a device without an `[update]` section answers.
pub const NOT_CONFIGURED: &str = "updates are not configured on this device";

/// Runs the `update` command: (ok, output).
pub async fn run(ctx: &Context<'_>) -> (bool, Value) {
    let Some(section) = ctx.config.update.clone() else {
        return (false, json!({ "error": NOT_CONFIGURED }));
    };
    let (state_dir, server_ca) = (ctx.config.state_dir.clone(), ctx.config.server_ca.clone());
    let device_id = ctx.identity.stored.device_id.clone();
    let element = Arc::clone(ctx.element);
    let pass = tokio::task::spawn_blocking(move || {
        crate::update::run_update_command(
            &section,
            &state_dir,
            &server_ca,
            &device_id,
            element.as_ref(),
        )
    })
    .await;
    match pass {
        Ok(Ok(results)) => (true, json!({ "components": results })),
        Ok(Err(e)) => (false, json!({ "error": e.to_string() })),
        Err(e) => (false, json!({ "error": format!("update pass: {e}") })),
    }
}
