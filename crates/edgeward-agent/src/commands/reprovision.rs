//! `reprovision`: the device changes identity on the server's word. A new key is generated
//! in the element (a fresh slot), a CSR for it signed inside the element goes with the
//! one-time enrollment token the command carries (issued by the server for this device) to
//! the enrollment listener, and the certificate that comes back replaces the old identity.
//! The server revokes the old certificate as it issues the new one. The result is signed
//! with the new key (the server verifies results with the device's current certificate),
//! and the daemon reconnects with the new identity. The old key is destroyed in the element
//! as soon as the new identity is stored ([`crate::retire`]: recorded first, so a crash in
//! between still ends with it destroyed); a failed attempt destroys the unused new key.

use edgeward_proto::command::CommandPayload;
use serde_json::{json, Value};

use super::{result, After, Context, Executed};
use crate::{
    enroll,
    retire::{self, Retired},
    AgentError,
};

/// Runs `reprovision` (command `c`).
pub async fn run(ctx: &Context<'_>, c: &CommandPayload) -> Result<Executed, AgentError> {
    let old = &ctx.identity.stored;
    let failed = |e: String| -> Result<Executed, AgentError> {
        tracing::warn!(command = c.id, error = %e, "re-provisioning failed");
        Ok(Executed {
            result: result::sign(
                ctx.element.as_ref(),
                &old.key_slot,
                &old.device_id,
                c.id,
                false,
                json!({ "error": e }),
            )?,
            ok: false,
            after: After::Continue,
            new_identity: None,
        })
    };
    let Some(token) = c.args.get("enrollment_token").and_then(Value::as_str) else {
        return failed("reprovision needs {\"enrollment_token\": …}".into());
    };
    let request = match enroll::Request::new(ctx.element) {
        Ok(r) => r,
        Err(e) => return failed(format!("a new key: {e}")),
    };
    let state_dir = &ctx.config.state_dir;
    retire::begin(state_dir, &old.key_slot)?;
    let identity = match enroll::enroll(
        &ctx.config.enroll_server,
        &ctx.config.server_ca,
        state_dir,
        ctx.element,
        &request,
        token,
    )
    .await
    {
        Ok(i) => i,
        Err(e) => {
            retire::abandon(state_dir)?;
            if let Err(destroy) = ctx.element.destroy_key(&request.slot) {
                tracing::warn!(slot = %request.slot, error = %destroy, "the unused new key was not destroyed");
            }
            return failed(format!("enrollment: {e}"));
        }
    };
    let previous_key_destroyed = match retire::finish(
        state_dir,
        ctx.element.as_ref(),
        &identity.stored.key_slot,
    ) {
        Ok(retired) => retired == Retired::Destroyed(old.key_slot.clone()),
        Err(e) => {
            tracing::error!(slot = %old.key_slot, error = %e, "the old key was not destroyed; the next start tries again");
            false
        }
    };
    if identity.stored.device_id != old.device_id {
        // The identity is stored already; the daemon reconnects as what the server issued.
        tracing::error!(
            old = %old.device_id,
            new = %identity.stored.device_id,
            "the server re-provisioned this device under another id"
        );
    }
    let output = json!({
        "key_slot": identity.stored.key_slot,
        "previous_key_slot": old.key_slot,
        "previous_key_destroyed": previous_key_destroyed,
        "certificate_sha256": hex::encode(edgeward_core::sha256(&identity.certificate_der)),
    });
    let signed = result::sign(
        ctx.element.as_ref(),
        &identity.stored.key_slot,
        &identity.stored.device_id,
        c.id,
        true,
        output,
    )?;
    tracing::info!(command = c.id, slot = %identity.stored.key_slot, "re-provisioned with a new key");
    Ok(Executed {
        result: signed,
        ok: true,
        after: After::Reidentified,
        new_identity: Some(identity),
    })
}
