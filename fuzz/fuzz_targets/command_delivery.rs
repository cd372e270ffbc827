//! The agent's side of a command delivery (`GET /v1/device/commands`): the bounded list,
//! each signed envelope's base64, the signature check under a pinned Ed25519 key, and the
//! payload parse. Nothing may panic; nothing arbitrary verifies; what parses is bounded.
#![no_main]

use edgeward_core::keys::PublicKey;
use edgeward_proto::command;
use libfuzzer_sys::fuzz_target;

/// The pinned command key (the Ed25519 public key of seed [7; 32]).
fn pinned() -> PublicKey {
    const PEM: &str = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA6kpsY+KcUgq+9VB7Ey7F+ZVHdq6+vnuSQh7qaRRG0iw=\n-----END PUBLIC KEY-----\n";
    PublicKey::from_pem(PEM.as_bytes()).expect("pinned key")
}

fuzz_target!(|data: &[u8]| {
    let key = pinned();
    if let Ok(list) = command::parse_delivery(data) {
        assert!(list.len() <= command::MAX_COMMANDS);
        for d in list {
            let Ok((payload, signature)) = d.signed.decode() else {
                continue;
            };
            assert!(payload.len() <= command::MAX_PAYLOAD + 3);
            assert!(signature.len() <= command::MAX_SIGNATURE + 3);
            let message = command::signed_message(command::COMMAND_CONTEXT, &payload);
            let _ = edgeward_core::raw_signature::verify_message(&key, &message, &signature);
            if let Ok(c) = command::parse_command(&payload) {
                assert_eq!(c.v, command::VERSION);
            }
        }
    }
    // The payload parser alone, on raw bytes.
    let _ = command::parse_command(data);
});
