//! Checking a delivered command before anything runs: the signature by the server's pinned
//! command key over the exact payload bytes, then the payload's device id (a command for
//! another device is refused even when genuinely signed), its id (strictly greater than the
//! last one executed: a replay or a reordering is refused) and its age (a bounded window,
//! judged against the larger of the device clock and the element's time floor).

use edgeward_core::keys::PublicKey;
use edgeward_proto::command::{self, CommandPayload, Delivered};

use crate::AgentError;

/// Why a delivered command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The envelope or payload is malformed.
    #[error("malformed command: {0}")]
    Malformed(String),
    /// The signature does not verify under the pinned command key.
    #[error("command {0}: the signature does not verify under the pinned command key")]
    BadSignature(i64),
    /// The id outside the signed payload differs from the one inside.
    #[error("command {outer}: the signed payload is for command {inner}")]
    IdMismatch {
        /// The id the delivery claimed.
        outer: i64,
        /// The id that was signed.
        inner: i64,
    },
    /// Signed for another device.
    #[error("command {id} is for device {for_device:?}, not this one")]
    WrongDevice {
        /// The command.
        id: i64,
        /// The device it was signed for.
        for_device: String,
    },
    /// Not newer than the last command executed.
    #[error("command {id} is not newer than command {last}, the last executed (replay)")]
    Replayed {
        /// The command.
        id: i64,
        /// The last executed.
        last: i64,
    },
    /// Older than the window allows.
    #[error("command {id} was issued {age} s ago, beyond the {window} s window")]
    Expired {
        /// The command.
        id: i64,
        /// Its age in seconds.
        age: i64,
        /// The window.
        window: u64,
    },
    /// Issued in the future beyond the allowed clock difference.
    #[error("command {id} is dated {ahead} s in the future")]
    FromFuture {
        /// The command.
        id: i64,
        /// How far ahead.
        ahead: i64,
    },
}

/// Largest clock difference accepted for a command dated in the future.
pub const MAX_CLOCK_AHEAD_SECS: i64 = 300;

/// Parses the command key the server gave at enrollment (an Ed25519 SPKI PEM).
pub fn parse_command_key(pem: &str) -> Result<PublicKey, AgentError> {
    let key = PublicKey::from_pem(pem.as_bytes())
        .map_err(|e| AgentError::Protocol(format!("command key: {e}")))?;
    match key {
        PublicKey::Ed25519(_) => Ok(key),
        other => Err(AgentError::Protocol(format!(
            "the command key must be Ed25519, not {}",
            other.algorithm()
        ))),
    }
}

/// Verifies `delivered` for `device_id`; `last_id` is the last command executed and `now`
/// the trusted time (max of clock and time floor).
pub fn verify(
    key: &PublicKey,
    delivered: &Delivered,
    device_id: &str,
    last_id: i64,
    now: i64,
    window_secs: u64,
) -> Result<CommandPayload, Refusal> {
    let (payload, signature) = delivered
        .signed
        .decode()
        .map_err(|e| Refusal::Malformed(e.0))?;
    edgeward_core::raw_signature::verify_message(
        key,
        &command::signed_message(command::COMMAND_CONTEXT, &payload),
        &signature,
    )
    .map_err(|_| Refusal::BadSignature(delivered.id))?;
    let c = command::parse_command(&payload).map_err(|e| Refusal::Malformed(e.0))?;
    if c.id != delivered.id {
        return Err(Refusal::IdMismatch {
            outer: delivered.id,
            inner: c.id,
        });
    }
    if c.device_id != device_id {
        return Err(Refusal::WrongDevice {
            id: c.id,
            for_device: c.device_id,
        });
    }
    if c.id <= last_id {
        return Err(Refusal::Replayed {
            id: c.id,
            last: last_id,
        });
    }
    let age = now.saturating_sub(c.issued_at);
    if age > i64::try_from(window_secs).unwrap_or(i64::MAX) {
        return Err(Refusal::Expired {
            id: c.id,
            age,
            window: window_secs,
        });
    }
    if -age > MAX_CLOCK_AHEAD_SECS {
        return Err(Refusal::FromFuture {
            id: c.id,
            ahead: -age,
        });
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{pkcs8::EncodePublicKey, Signer, SigningKey};
    use edgeward_proto::command::Signed;

    fn signer() -> (SigningKey, PublicKey) {
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let pem = key
            .verifying_key()
            .to_public_key_pem(Default::default())
            .expect("pem");
        (key, parse_command_key(&pem).expect("key"))
    }

    fn deliver(key: &SigningKey, device: &str, id: i64, issued_at: i64) -> Delivered {
        let payload = serde_json::to_vec(&CommandPayload {
            v: 1,
            device_id: device.into(),
            id,
            kind: "quarantine".into(),
            args: serde_json::Value::Null,
            issued_at,
        })
        .expect("json");
        let sig = key.sign(&command::signed_message(command::COMMAND_CONTEXT, &payload));
        Delivered {
            id,
            signed: Signed::new(&payload, &sig.to_bytes()),
        }
    }

    #[test]
    fn each_attack_is_refused_for_its_reason() {
        let (key, public) = signer();
        let ok = deliver(&key, "cam", 5, 1000);
        assert_eq!(
            verify(&public, &ok, "cam", 4, 1000, 600).map(|c| c.id),
            Ok(5)
        );
        assert_eq!(
            verify(&public, &ok, "cam", 5, 1000, 600),
            Err(Refusal::Replayed { id: 5, last: 5 })
        );
        assert_eq!(
            verify(&public, &ok, "other", 0, 1000, 600),
            Err(Refusal::WrongDevice {
                id: 5,
                for_device: "cam".into()
            })
        );
        assert_eq!(
            verify(&public, &ok, "cam", 0, 1601, 600),
            Err(Refusal::Expired {
                id: 5,
                age: 601,
                window: 600
            })
        );
        assert_eq!(
            verify(&public, &ok, "cam", 0, 600, 600),
            Err(Refusal::FromFuture { id: 5, ahead: 400 })
        );
        let mut relabelled = ok;
        relabelled.id = 9;
        assert_eq!(
            verify(&public, &relabelled, "cam", 0, 1000, 600),
            Err(Refusal::IdMismatch { outer: 9, inner: 5 })
        );
        // A payload edited after signing (another device id) no longer verifies.
        let other = deliver(&key, "cam", 5, 1000);
        let (payload, sig) = other.signed.decode().expect("decode");
        let edited = String::from_utf8(payload)
            .expect("utf8")
            .replace("cam", "cax");
        let forged = Delivered {
            id: 5,
            signed: Signed::new(edited.as_bytes(), &sig),
        };
        assert_eq!(
            verify(&public, &forged, "cax", 0, 1000, 600),
            Err(Refusal::BadSignature(5))
        );
        // Signed by another key.
        let stranger = SigningKey::from_bytes(&[9u8; 32]);
        assert_eq!(
            verify(
                &public,
                &deliver(&stranger, "cam", 6, 1000),
                "cam",
                0,
                1000,
                600
            ),
            Err(Refusal::BadSignature(6))
        );
    }
}
