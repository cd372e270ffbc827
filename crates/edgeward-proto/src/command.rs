//! Signed commands and signed results, the bytes both sides sign and parse.
//!
//! The server signs every command it hands to a device with its Ed25519 command key, whose
//! public key the device pinned at enrollment. The signature covers
//! `"edgeward-command-v1\n" ‖ payload`, where `payload` is the exact JSON bytes of a
//! [`CommandPayload`] (sent base64-encoded, so no re-serialization can change them): the
//! command's id, kind, arguments, the device it is for and when it was issued. The device
//! answers with a [`ResultPayload`] signed inside its secure element over
//! `"edgeward-command-result-v1\n" ‖ payload`. See docs/formats.md.

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::api::BodyError;

/// Domain separation prefix of a command signature.
pub const COMMAND_CONTEXT: &[u8] = b"edgeward-command-v1\n";
/// Domain separation prefix of a result signature.
pub const RESULT_CONTEXT: &[u8] = b"edgeward-command-result-v1\n";
/// The payload format version.
pub const VERSION: u32 = 1;
/// Most commands one poll returns.
pub const MAX_COMMANDS: usize = 100;
/// Largest signed payload (command or result), before base64.
pub const MAX_PAYLOAD: usize = 96 * 1024;
/// Largest signature (DER ECDSA P-256 is at most 72 bytes, Ed25519 64).
pub const MAX_SIGNATURE: usize = 128;

/// The kinds of command a device executes.
pub const KINDS: [&str; 7] = [
    "quarantine",
    "release",
    "collect_forensics",
    "wipe",
    "reprovision",
    "attest",
    "update",
];

/// What the server signs for one command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandPayload {
    /// [`VERSION`].
    pub v: u32,
    /// The device it is for.
    pub device_id: String,
    /// Its id: strictly increasing per device.
    pub id: i64,
    /// One of [`KINDS`] (anything else is refused by the device with a signed result).
    pub kind: String,
    /// Its arguments (`{"nonce": hex}` for attest, `{"enrollment_token": …}` for reprovision,
    /// `{"reason": …}` optionally for quarantine and wipe).
    pub args: Value,
    /// When the server issued it (Unix seconds).
    pub issued_at: i64,
}

/// What the device signs for one result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResultPayload {
    /// [`VERSION`].
    pub v: u32,
    /// The device answering.
    pub device_id: String,
    /// The command answered.
    pub command_id: i64,
    /// Whether it succeeded.
    pub ok: bool,
    /// What it produced (JSON).
    pub output: Value,
    /// When the device finished it (Unix seconds, device clock).
    pub executed_at: i64,
}

/// A payload and its signature, both base64 (standard alphabet, padded).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signed {
    /// The exact signed JSON bytes.
    pub payload: String,
    /// The signature over the context prefix and those bytes.
    pub signature: String,
}

impl Signed {
    /// Wraps `payload` bytes and `signature`.
    pub fn new(payload: &[u8], signature: &[u8]) -> Self {
        let b64 = base64::engine::general_purpose::STANDARD;
        Signed {
            payload: b64.encode(payload),
            signature: b64.encode(signature),
        }
    }

    /// Decodes both fields, bounded.
    pub fn decode(&self) -> Result<(Vec<u8>, Vec<u8>), BodyError> {
        let b64 = base64::engine::general_purpose::STANDARD;
        if self.payload.len() > MAX_PAYLOAD.div_ceil(3) * 4
            || self.signature.len() > MAX_SIGNATURE.div_ceil(3) * 4
        {
            return Err(BodyError(format!(
                "a signed payload is limited to {MAX_PAYLOAD} bytes and its signature to {MAX_SIGNATURE}"
            )));
        }
        let payload = b64
            .decode(&self.payload)
            .map_err(|e| BodyError(format!("payload is not base64: {e}")))?;
        let signature = b64
            .decode(&self.signature)
            .map_err(|e| BodyError(format!("signature is not base64: {e}")))?;
        Ok((payload, signature))
    }
}

/// The message a signature covers: `context ‖ payload`.
pub fn signed_message(context: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(context.len() + payload.len());
    m.extend_from_slice(context);
    m.extend_from_slice(payload);
    m
}

/// One command as `GET /v1/device/commands` delivers it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Delivered {
    /// Its id (also inside the signed payload, which is what the device trusts).
    pub id: i64,
    /// The signed payload.
    pub signed: Signed,
}

/// Parses a `GET /v1/device/commands` answer (at most [`MAX_COMMANDS`]). Fields other than
/// `id` and `signed` are informational and ignored: only the signed payload is trusted.
pub fn parse_delivery(body: &[u8]) -> Result<Vec<Delivered>, BodyError> {
    #[derive(Deserialize)]
    struct Answer {
        commands: Vec<Delivered>,
    }
    let a: Answer =
        serde_json::from_slice(body).map_err(|e| BodyError(format!("bad command list: {e}")))?;
    if a.commands.len() > MAX_COMMANDS {
        return Err(BodyError(format!(
            "a poll returns at most {MAX_COMMANDS} commands, not {}",
            a.commands.len()
        )));
    }
    Ok(a.commands)
}

/// Parses a command payload's bytes (after its signature verified).
pub fn parse_command(payload: &[u8]) -> Result<CommandPayload, BodyError> {
    let c: CommandPayload = serde_json::from_slice(payload)
        .map_err(|e| BodyError(format!("bad command payload: {e}")))?;
    if c.v != VERSION {
        return Err(BodyError(format!(
            "command payload version {} (this device speaks {VERSION})",
            c.v
        )));
    }
    Ok(c)
}

/// Parses a result payload's bytes.
pub fn parse_result(payload: &[u8]) -> Result<ResultPayload, BodyError> {
    let r: ResultPayload = serde_json::from_slice(payload)
        .map_err(|e| BodyError(format!("bad result payload: {e}")))?;
    if r.v != VERSION {
        return Err(BodyError(format!("result payload version {}", r.v)));
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_is_bounded_and_payloads_strict() {
        let one = r#"{"id":1,"kind":"x","signed":{"payload":"e30=","signature":"AA=="}}"#;
        let list = format!("{{\"commands\":[{}]}}", vec![one; 101].join(","));
        assert_eq!(
            parse_delivery(list.as_bytes()).unwrap_err().0,
            "a poll returns at most 100 commands, not 101"
        );
        assert_eq!(
            parse_delivery(format!("{{\"commands\":[{one}]}}").as_bytes()).map(|c| c.len()),
            Ok(1)
        );
        let e = parse_command(
            br#"{"v":2,"device_id":"d","id":1,"kind":"wipe","args":null,"issued_at":0}"#,
        )
        .unwrap_err();
        assert_eq!(e.0, "command payload version 2 (this device speaks 1)");
        assert!(parse_command(
            br#"{"v":1,"device_id":"d","id":1,"kind":"wipe","args":null,"issued_at":0,"x":1}"#
        )
        .is_err());
        let big = Signed {
            payload: "A".repeat(200_000),
            signature: String::new(),
        };
        assert!(big
            .decode()
            .unwrap_err()
            .0
            .starts_with("a signed payload is limited"));
    }
}
