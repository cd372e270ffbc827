//! The server's command key: an Ed25519 key (`command.key` in the data directory, 0600,
//! created on first start) that signs every command handed to a device. Devices pin its
//! public key at enrollment, so a command that did not come from this server (a tampered
//! proxy, a replayed or re-targeted message) is refused by the device.

use std::path::Path;

use ed25519_dalek::{pkcs8::EncodePublicKey, Signer, SigningKey};
use edgeward_proto::command::{self, CommandPayload, Signed};
use rand_core::{OsRng, RngCore};
use zeroize::Zeroizing;

/// The command-signing key and its public half (SPKI PEM, what devices pin).
pub struct CommandSigner {
    key: SigningKey,
    public_pem: String,
}

impl std::fmt::Debug for CommandSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommandSigner").finish_non_exhaustive()
    }
}

impl CommandSigner {
    /// Loads the key from `path` (64 hex digits: the Ed25519 seed), creating it if missing.
    pub fn load_or_create(path: &Path) -> Result<Self, String> {
        if !path.exists() {
            let mut seed = Zeroizing::new([0u8; 32]);
            OsRng.fill_bytes(seed.as_mut());
            edgeward_pki::store::write_atomic(path, hex::encode(seed.as_ref()).as_bytes(), true)
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
        let text = Zeroizing::new(
            std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?,
        );
        let mut seed = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(text.trim(), seed.as_mut()).map_err(|_| {
            format!(
                "{} must hold 64 hex digits (an Ed25519 seed)",
                path.display()
            )
        })?;
        let key = SigningKey::from_bytes(&seed);
        let public_pem = key
            .verifying_key()
            .to_public_key_pem(Default::default())
            .map_err(|e| format!("command key: {e}"))?;
        Ok(CommandSigner { key, public_pem })
    }

    /// The public key devices pin (SPKI PEM).
    pub fn public_pem(&self) -> &str {
        &self.public_pem
    }

    /// Signs a command for `device_id`.
    pub fn sign(
        &self,
        device_id: &str,
        id: i64,
        kind: &str,
        args: &serde_json::Value,
        issued_at: i64,
    ) -> Signed {
        let payload = CommandPayload {
            v: command::VERSION,
            device_id: device_id.to_string(),
            id,
            kind: kind.to_string(),
            args: args.clone(),
            issued_at,
        };
        // Serializing a struct of strings, integers and a JSON value cannot fail.
        let bytes = serde_json::to_vec(&payload).unwrap_or_default();
        let signature = self
            .key
            .sign(&command::signed_message(command::COMMAND_CONTEXT, &bytes));
        Signed::new(&bytes, &signature.to_bytes())
    }
}
