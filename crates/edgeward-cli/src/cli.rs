//! The command-line grammar.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Edgeward: defense in depth for fleets of edge AI devices.
#[derive(Parser, Debug)]
#[command(name = "edgeward", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// The key hierarchy: offline root, 90-day signing certificates, device CA, CRL.
    #[command(subcommand)]
    Pki(PkiCommand),
    /// Sign a file or a model directory (OpenSSF model-signing bundle, or --raw).
    Sign(SignArgs),
    /// Verify a file or a model directory against a signature.
    Verify(VerifyArgs),
    /// Run the whole story in a temporary directory: ceremony, signing, verification, attacks.
    Demo(DemoArgs),
    /// Manage the fleet through edgeward-server's admin API.
    #[command(subcommand)]
    Fleet(FleetCommand),
    /// Device-side operations (for factories and tests; the agent does the same from its
    /// secure element).
    #[command(subcommand)]
    Device(DeviceCommand),
    /// Model protection: encrypted weights, keyed shuffling, watermarks.
    #[command(subcommand)]
    Model(ModelCommand),
    /// Boot chains: a signed example chain and a provisioned software element.
    #[command(subcommand)]
    Boot(crate::boot_cmd::BootCommand),
    /// MCUboot images as `imgtool sign` makes them.
    #[command(subcommand)]
    Mcuboot(crate::mcuboot_cmd::McubootCommand),
    /// The device's secure element (soft, PKCS#11, TPM): keygen, pubkey, sign, wipe.
    #[command(subcommand)]
    Se(crate::se_cmd::SeCommand),
}

#[derive(Args, Debug)]
pub struct ServerArgs {
    /// The admin/enrollment listener, e.g. https://fleet.example.com:8444.
    #[arg(long, env = "EDGEWARD_SERVER")]
    pub server: String,
    /// The server CA to trust (the server writes server-ca.pem into its data directory).
    #[arg(long, env = "EDGEWARD_SERVER_CA")]
    pub server_ca: PathBuf,
    /// File holding an admin API key (the server writes admin-token on first start).
    #[arg(long, env = "EDGEWARD_ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum FleetCommand {
    /// Register a device; prints its one-time enrollment token.
    AddDevice(FleetAddArgs),
    /// List devices.
    List(ServerArgs),
    /// Show one device.
    Show(FleetDeviceArgs),
    /// Quarantine a device: only command poll and forensic upload remain.
    Quarantine(FleetDeviceArgs),
    /// Release a device from quarantine.
    Release(FleetDeviceArgs),
    /// Revoke a device: its certificate goes on the CRL and its connections close.
    Revoke(FleetDeviceArgs),
}

#[derive(Args, Debug)]
pub struct FleetAddArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// The device id (letters, digits, '.', '_', '-'; at most 128).
    #[arg(long)]
    pub id: String,
    /// The hardware class (selects the device's rate limit).
    #[arg(long)]
    pub hardware: String,
}

#[derive(Args, Debug)]
pub struct FleetDeviceArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// The device id.
    pub id: String,
}

#[derive(Subcommand, Debug)]
pub enum DeviceCommand {
    /// Enroll: generate a key, send a CSR with the one-time token, write the credentials.
    Enroll(DeviceEnrollArgs),
}

#[derive(Args, Debug)]
pub struct DeviceEnrollArgs {
    /// The admin/enrollment listener.
    #[arg(long, env = "EDGEWARD_SERVER")]
    pub server: String,
    /// The server CA to trust.
    #[arg(long, env = "EDGEWARD_SERVER_CA")]
    pub server_ca: PathBuf,
    /// The one-time enrollment token from `fleet add-device`.
    #[arg(long)]
    pub token: String,
    /// Where to write key.pem, cert.pem, ca.pem, device-ca.pem and secret.
    #[arg(long)]
    pub out: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

impl Command {
    /// Whether the command was asked for JSON output (errors are then JSON too).
    pub fn wants_json(&self) -> bool {
        match self {
            Command::Pki(p) => match p {
                PkiCommand::Init(a) => a.dir.json,
                PkiCommand::Rotate(a) => a.dir.json,
                PkiCommand::Revoke(a) => a.dir.json,
                PkiCommand::Show(a) => a.dir.json,
                PkiCommand::Crl(a) => a.dir.json,
            },
            Command::Sign(a) => a.json,
            Command::Verify(a) => a.json,
            Command::Demo(a) => a.json,
            Command::Fleet(f) => match f {
                FleetCommand::AddDevice(a) => a.server.json,
                FleetCommand::List(a) => a.json,
                FleetCommand::Show(a)
                | FleetCommand::Quarantine(a)
                | FleetCommand::Release(a)
                | FleetCommand::Revoke(a) => a.server.json,
            },
            Command::Device(DeviceCommand::Enroll(a)) => a.json,
            Command::Model(m) => m.wants_json(),
            Command::Boot(b) => b.wants_json(),
            Command::Mcuboot(m) => m.wants_json(),
            Command::Se(s) => s.wants_json(),
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum PkiCommand {
    /// Create the hierarchy: root CA (encrypted key), signing certificate, device CA, empty CRL.
    Init(PkiInitArgs),
    /// Issue the next signing certificate; the current one is kept in previous/ until it expires.
    Rotate(PkiRotateArgs),
    /// Add a certificate to the root-signed CRL.
    Revoke(PkiRevokeArgs),
    /// Print the hierarchy with validity and days left; warn about a signing certificate near expiry.
    Show(PkiShowArgs),
    /// Re-sign the CRL with fresh dates (same entries), e.g. before its next-update date.
    Crl(PkiCrlArgs),
}

#[derive(Args, Debug)]
pub struct PkiCrlArgs {
    #[command(flatten)]
    pub dir: PkiDir,
    #[command(flatten)]
    pub passphrase: PassphraseArg,
    #[command(flatten)]
    pub root_key: RootKeyArg,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyType {
    /// ECDSA P-256 (verifies with openssl and model_signing).
    P256,
    /// Ed25519 (Edgeward and openssl; model_signing 1.1 only verifies EC keys).
    Ed25519,
}

#[derive(Args, Debug)]
pub struct PkiDir {
    /// The hierarchy directory.
    #[arg(long)]
    pub dir: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct PassphraseArg {
    /// Environment variable holding the root key's passphrase (prompted on a TTY if unset).
    #[arg(long, default_value = "EDGEWARD_ROOT_PASSPHRASE")]
    pub passphrase_env: String,
}

#[derive(Args, Debug)]
pub struct RootKeyArg {
    /// The encrypted root key, if it is kept offline rather than in --dir (e.g. on a
    /// removable drive plugged in for the ceremony). Default: DIR/root.key.
    #[arg(long)]
    pub root_key: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct PkiInitArgs {
    #[command(flatten)]
    pub dir: PkiDir,
    #[command(flatten)]
    pub passphrase: PassphraseArg,
    /// Organisation name put in every certificate's subject.
    #[arg(long, default_value = "Edgeward")]
    pub org: String,
    /// Validity of the first signing certificate in days (at most 90).
    #[arg(long, default_value_t = 90)]
    pub days: i64,
    /// Key type of the signing certificate.
    #[arg(long, value_enum, default_value_t = KeyType::P256)]
    pub key_type: KeyType,
}

#[derive(Args, Debug)]
pub struct PkiRotateArgs {
    #[command(flatten)]
    pub dir: PkiDir,
    #[command(flatten)]
    pub passphrase: PassphraseArg,
    #[command(flatten)]
    pub root_key: RootKeyArg,
    /// Validity of the new signing certificate in days (at most 90).
    #[arg(long, default_value_t = 90)]
    pub days: i64,
    /// Key type of the new signing certificate.
    #[arg(long, value_enum, default_value_t = KeyType::P256)]
    pub key_type: KeyType,
}

#[derive(Args, Debug)]
pub struct PkiRevokeArgs {
    #[command(flatten)]
    pub dir: PkiDir,
    #[command(flatten)]
    pub passphrase: PassphraseArg,
    #[command(flatten)]
    pub root_key: RootKeyArg,
    /// Serial number of the certificate to revoke, hex (as `pki show` or `openssl x509 -serial` print it).
    #[arg(long)]
    pub serial: String,
}

#[derive(Args, Debug)]
pub struct PkiShowArgs {
    #[command(flatten)]
    pub dir: PkiDir,
}

#[derive(Args, Debug)]
pub struct SignArgs {
    /// The file or model directory to sign.
    pub path: PathBuf,
    /// The private key (PEM: PKCS#8, SEC1 or encrypted PKCS#8).
    #[arg(long)]
    pub key: PathBuf,
    /// Certificate chain (PEM, signing certificate first): certificate mode.
    #[arg(long)]
    pub cert_chain: Option<PathBuf>,
    /// Where to write the signature.
    #[arg(short = 'o', long = "output")]
    pub output: PathBuf,
    /// Write a raw detached signature over the file (as `openssl dgst -sha256 -sign`).
    #[arg(long)]
    pub raw: bool,
    /// Digest every SIZE bytes of each file separately (e.g. 64MiB) so one large file is
    /// hashed on all cores. Default 0: one digest per file, model-signing's default, which
    /// its CLI verifies (its CLI verifies files mode only; its Python API verifies both).
    #[arg(long, default_value = "0", value_name = "SIZE", value_parser = parse_size)]
    pub shard_size: u64,
    /// Paths inside the model to leave out of the signature (repeatable).
    #[arg(long = "ignore-paths")]
    pub ignore_paths: Vec<PathBuf>,
    /// Sign git metadata (.git, .gitattributes, .github, .gitignore) too.
    #[arg(long)]
    pub no_ignore_git_paths: bool,
    /// Environment variable holding the key's passphrase, if the key is encrypted.
    #[arg(long, default_value = "EDGEWARD_KEY_PASSPHRASE")]
    pub passphrase_env: String,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// The file or model directory to verify.
    pub path: PathBuf,
    /// The signature (bundle, or raw with --raw).
    #[arg(long)]
    pub signature: PathBuf,
    /// Trust exactly this public key (PEM public key or certificate).
    #[arg(
        long,
        conflicts_with = "trust_root",
        required_unless_present = "trust_root"
    )]
    pub pubkey: Option<PathBuf>,
    /// Trust signing certificates endorsed by this root (PEM; may hold several roots).
    #[arg(long)]
    pub trust_root: Option<PathBuf>,
    /// A root-signed CRL (PEM or DER) to check revocation against (repeatable). Without
    /// one, revocation is not checked and a warning says so.
    #[arg(long, conflicts_with = "pubkey")]
    pub crl: Vec<PathBuf>,
    /// Longest validity, in days, accepted for the signing certificate (policy; at most 90).
    #[arg(long, default_value_t = 90, value_parser = clap::value_parser!(u64).range(1..=90), conflicts_with = "pubkey")]
    pub max_signing_days: u64,
    /// The signature is raw (as `openssl dgst -sha256 -sign` makes it); needs --pubkey.
    #[arg(long, conflicts_with = "trust_root")]
    pub raw: bool,
    /// Print a JSON verdict on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Print one JSON object with a `steps` array instead of text.
    #[arg(long)]
    pub json: bool,
    /// Keep the demo's files in this directory instead of a temporary one.
    #[arg(long)]
    pub keep: Option<PathBuf>,
}

/// `edgeward model …` (one variant per subcommand; more join as they are written).
#[derive(Subcommand, Debug)]
pub enum ModelCommand {
    /// Encrypt a model to one or more devices (HPKE to each device key, AES-256-GCM STREAM).
    Encrypt(ModelEncryptArgs),
    /// Decrypt a container to a file with the device's secure element (debugging only:
    /// writes plaintext).
    Decrypt(ModelDecryptArgs),
    /// Add or remove recipients, rewriting only the header.
    Rewrap(ModelRewrapArgs),
    /// Show a container's header: format, cipher, chunk size, recipients.
    Inspect(ModelInspectArgs),
    /// Create an owner's model key for shuffling and watermarks (file mode 0600).
    Keygen(crate::model_wm_cmd::KeygenArgs),
    /// Keyed layer shuffle of a safetensors model (obfuscation; not a working model after).
    Shuffle(crate::model_wm_cmd::ShuffleArgs),
    /// Restore a shuffled model bit for bit with its key.
    Unshuffle(crate::model_wm_cmd::ShuffleArgs),
    /// Ownership watermarks: embed and detect (white-box), trigger sets (black-box).
    #[command(subcommand)]
    Watermark(crate::model_wm_cmd::WatermarkCommand),
}

impl ModelCommand {
    /// Whether JSON output was asked for.
    pub fn wants_json(&self) -> bool {
        match self {
            ModelCommand::Encrypt(a) => a.json,
            ModelCommand::Decrypt(a) => a.json,
            ModelCommand::Rewrap(a) => a.json,
            ModelCommand::Inspect(a) => a.json,
            ModelCommand::Keygen(a) => a.json,
            ModelCommand::Shuffle(a) | ModelCommand::Unshuffle(a) => a.json,
            ModelCommand::Watermark(w) => w.wants_json(),
        }
    }
}

#[derive(Args, Debug)]
pub struct ModelEncryptArgs {
    /// The model file to encrypt.
    pub input: PathBuf,
    /// Where to write the container.
    #[arg(short = 'o', long = "output")]
    pub output: PathBuf,
    /// A recipient: a device certificate or a P-256 public key, PEM (repeatable).
    #[arg(long, required = true)]
    pub recipient: Vec<PathBuf>,
    /// Plaintext bytes per chunk (4KiB to 16MiB).
    #[arg(long, default_value = "64KiB", value_parser = parse_size)]
    pub chunk_size: u64,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct ModelDecryptArgs {
    /// The container.
    pub input: PathBuf,
    /// Where to write the plaintext model (`-`: standard output).
    #[arg(short = 'o', long = "output")]
    pub output: PathBuf,
    /// The secure element holding the device key (e.g. soft:/var/lib/edgeward/se).
    #[arg(long, env = "EDGEWARD_SE")]
    pub se: String,
    /// The element slot of the device key.
    #[arg(long, default_value = "device")]
    pub slot: String,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct ModelRewrapArgs {
    /// The container (rewritten in place unless -o is given).
    pub input: PathBuf,
    /// A recipient to add: device certificate or P-256 public key, PEM (repeatable).
    #[arg(long)]
    pub add: Vec<PathBuf>,
    /// A recipient to remove, by key fingerprint (at least 8 hex digits; repeatable).
    #[arg(long)]
    pub remove: Vec<String>,
    /// The secure element of a current recipient (it opens the file key).
    #[arg(long, env = "EDGEWARD_SE")]
    pub se: String,
    /// The element slot of that recipient's key.
    #[arg(long, default_value = "device")]
    pub slot: String,
    /// Write the rewrapped container here instead of in place.
    #[arg(short = 'o', long = "output")]
    pub output: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct ModelInspectArgs {
    /// The container.
    pub input: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Parses a byte count: plain digits, or with a KiB/MiB/GiB (or K/M/G) suffix.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{s:?} is not a size (e.g. 67108864 or 64MiB)"))?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "K" | "KiB" => 1 << 10,
        "M" | "MiB" => 1 << 20,
        "G" | "GiB" => 1 << 30,
        other => return Err(format!("unknown size unit {other:?} (use KiB, MiB or GiB)")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("{s:?} is too large"))
}
