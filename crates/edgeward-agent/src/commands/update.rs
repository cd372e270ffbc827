//! The `update` command ("check for an update now"): one install pass of the agent's update
//! client ([`crate::update::run_update_command`], the `[update]` section of the
//! configuration) with what the server offers this device now (through the device API,
//! as the periodic check does), its per-component results as the output. Without an `[update]` section
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
    let source = match crate::update::Source::server(
        &section,
        &ctx.config.server_ca,
        Arc::clone(ctx.element),
        ctx.identity,
        ctx.client,
    )
    .await
    {
        Ok(source) => source,
        Err(e) => return (false, json!({ "error": e.to_string() })),
    };
    let state_dir = ctx.config.state_dir.clone();
    let device_id = ctx.identity.stored.device_id.clone();
    let element = Arc::clone(ctx.element);
    let job = section.clone();
    let pass = tokio::task::spawn_blocking(move || {
        crate::update::run_update_command(&job, &state_dir, &device_id, element.as_ref(), &source)
    })
    .await;
    // What the pass reported (installed, confirmed, reverted…) goes to the server now, not
    // at the next periodic check; what cannot be delivered stays queued for it.
    if let Err(e) = crate::update::deliver_reports(
        &section,
        &ctx.config.state_dir,
        ctx.element.as_ref(),
        ctx.client,
    )
    .await
    {
        tracing::warn!(error = %e, "update reports stay queued");
    }
    match pass {
        Ok(Ok(results)) => (true, json!({ "components": results })),
        Ok(Err(e)) => (false, json!({ "error": e.to_string() })),
        Err(e) => (false, json!({ "error": format!("update pass: {e}") })),
    }
}
