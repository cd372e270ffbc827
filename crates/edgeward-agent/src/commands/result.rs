//! Signing a command's result inside the secure element: the exact JSON bytes of a
//! [`ResultPayload`] and a signature by the device key over
//! `"edgeward-command-result-v1\n" ‖ payload`, which the server verifies with the key of the
//! device's certificate before it stores anything.

use edgeward_proto::command::{self, ResultPayload, Signed};
use edgeward_se::SecureElement;
use serde_json::Value;

use crate::AgentError;

/// The result of command `command_id` for `device_id`, signed by the key in `slot`.
pub fn sign(
    element: &dyn SecureElement,
    slot: &str,
    device_id: &str,
    command_id: i64,
    ok: bool,
    output: Value,
) -> Result<Signed, AgentError> {
    let payload = ResultPayload {
        v: command::VERSION,
        device_id: device_id.to_string(),
        command_id,
        ok,
        output,
        executed_at: super::now(),
    };
    let bytes = serde_json::to_vec(&payload).map_err(|e| AgentError::Protocol(e.to_string()))?;
    if bytes.len() > command::MAX_PAYLOAD {
        return Err(AgentError::Protocol(format!(
            "the result of command {command_id} is {} bytes, over the {} allowed",
            bytes.len(),
            command::MAX_PAYLOAD
        )));
    }
    let signature = element.sign(
        slot,
        &command::signed_message(command::RESULT_CONTEXT, &bytes),
    )?;
    Ok(Signed::new(&bytes, &signature))
}
