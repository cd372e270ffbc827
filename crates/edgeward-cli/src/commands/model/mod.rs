//! `edgeward model …`: encrypted model containers (`crypt`) and the owner's protections,
//! keyed shuffling and watermarks (`ownership`).

pub(crate) mod crypt;
pub(crate) mod ownership;

use clap::Subcommand;

use crate::outcome::Outcome;

/// `edgeward model …`.
#[derive(Subcommand, Debug)]
pub(crate) enum ModelCommand {
    /// Encrypt a model to one or more devices (HPKE to each device key, AES-256-GCM STREAM).
    Encrypt(crypt::ModelEncryptArgs),
    /// Decrypt a container to a file with the device's secure element (debugging only:
    /// writes plaintext).
    Decrypt(crypt::ModelDecryptArgs),
    /// Add or remove recipients, rewriting only the header.
    Rewrap(crypt::ModelRewrapArgs),
    /// Show a container's header: format, cipher, chunk size, recipients.
    Inspect(crypt::ModelInspectArgs),
    /// Create an owner's model key for shuffling and watermarks (file mode 0600).
    Keygen(ownership::KeygenArgs),
    /// Keyed layer shuffle of a safetensors model (obfuscation; not a working model after).
    Shuffle(ownership::ShuffleArgs),
    /// Restore a shuffled model bit for bit with its key.
    Unshuffle(ownership::ShuffleArgs),
    /// Ownership watermarks: embed and detect (white-box), trigger sets (black-box).
    #[command(subcommand)]
    Watermark(ownership::WatermarkCommand),
}

/// Runs `model …`.
pub(crate) fn run(cmd: ModelCommand, json: bool) -> Outcome {
    match cmd {
        ModelCommand::Encrypt(a) => crypt::encrypt(a, json),
        ModelCommand::Decrypt(a) => crypt::decrypt(a, json),
        ModelCommand::Rewrap(a) => crypt::rewrap(a, json),
        ModelCommand::Inspect(a) => crypt::inspect(a, json),
        ModelCommand::Keygen(a) => ownership::keygen(a, json),
        ModelCommand::Shuffle(a) => ownership::shuffle(a, json),
        ModelCommand::Unshuffle(a) => ownership::unshuffle(a, json),
        ModelCommand::Watermark(cmd) => ownership::watermark(cmd, json),
    }
}
