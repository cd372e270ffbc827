//! The command line's top level: the global flags and one variant per command. Each
//! command's arguments live beside its code in `commands/`.

use clap::{Parser, Subcommand};

use crate::commands;

/// Edgeward: defense in depth for fleets of edge AI devices.
#[derive(Parser, Debug)]
#[command(name = "edgeward", version, about, propagate_version = true)]
pub(crate) struct Cli {
    /// Print JSON on stdout instead of text (a failure too: see docs/cli.md).
    #[arg(long, global = true, display_order = 1000)]
    pub(crate) json: bool,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The commands.
#[derive(Subcommand, Debug)]
pub(crate) enum Command {
    /// The key hierarchy: offline root, 90-day signing certificates, device CA, CRL.
    #[command(subcommand)]
    Pki(commands::pki::PkiCommand),
    /// Sign a file or a model directory (OpenSSF model-signing bundle, or --raw).
    Sign(commands::sign::SignArgs),
    /// Verify a file or a model directory against a signature.
    Verify(commands::verify::VerifyArgs),
    /// Run the whole story in a temporary directory: ceremony, signing, verification, attacks.
    Demo(crate::demo::DemoArgs),
    /// Check edgeward-server's tamper-evident audit log.
    #[command(subcommand)]
    Audit(commands::audit::AuditCommand),
    /// Manage the fleet through edgeward-server's admin API.
    #[command(subcommand)]
    Fleet(commands::fleet::FleetCommand),
    /// Device-side operations (for factories and tests; the agent does the same from its
    /// secure element).
    #[command(subcommand)]
    Device(commands::device::DeviceCommand),
    /// Model protection: encrypted weights, keyed shuffling, watermarks.
    #[command(subcommand)]
    Model(commands::model::ModelCommand),
    /// Boot chains: a signed example chain and a provisioned software element.
    #[command(subcommand)]
    Boot(commands::boot::BootCommand),
    /// MCUboot images as `imgtool sign` makes them.
    #[command(subcommand)]
    Mcuboot(commands::mcuboot::McubootCommand),
    /// The device's secure element (soft, PKCS#11, TPM): keygen, pubkey, sign, wipe.
    #[command(subcommand)]
    Se(commands::se::SeCommand),
    /// Signed releases: publish to a TUF repository, list, rotate keys, roll out, status.
    #[command(subcommand)]
    Release(commands::release::ReleaseCommand),
    /// Detection: measure the behavioural baseline on labelled data.
    #[command(subcommand)]
    Detect(commands::detect::DetectCommand),
    /// Incidents: list, show, contain, approve, close, post-mortem report.
    #[command(subcommand)]
    Incidents(commands::incidents::IncidentsCommand),
    /// Alerts raised by the server's detection.
    #[command(subcommand)]
    Alerts(commands::incidents::AlertsCommand),
}

impl Command {
    /// Runs the command; `json` asks for JSON output.
    pub(crate) fn run(self, json: bool) -> crate::outcome::Outcome {
        match self {
            Command::Pki(cmd) => commands::pki::run(cmd, json),
            Command::Sign(a) => commands::sign::run(a, json),
            Command::Verify(a) => commands::verify::run(a, json),
            Command::Demo(a) => crate::demo::run(a, json),
            Command::Audit(cmd) => commands::audit::run(cmd, json),
            Command::Fleet(cmd) => commands::fleet::run(cmd, json),
            Command::Device(cmd) => commands::device::run(cmd, json),
            Command::Model(cmd) => commands::model::run(cmd, json),
            Command::Boot(cmd) => commands::boot::run(cmd, json),
            Command::Mcuboot(cmd) => commands::mcuboot::run(cmd, json),
            Command::Se(cmd) => commands::se::run(cmd, json),
            Command::Release(cmd) => commands::release::run(cmd, json),
            Command::Detect(cmd) => commands::detect::run(cmd, json),
            Command::Incidents(cmd) => commands::incidents::run(cmd, json),
            Command::Alerts(cmd) => commands::incidents::run_alerts(cmd, json),
        }
    }
}
