//! A TUF client speaking the tuf-conformance suite's CLIENT-CLI protocol (`init`,
//! `refresh`, `download`), so that the public suite can test `edgeward-update`'s client.
//! Exit code 0 on success, 1 on any failure.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use edgeward_update::tuf::store::MetadataStore;
use edgeward_update::tuf::transport::{AnyTransport, Limits};
use edgeward_update::tuf::{ClientConfig, Updater};

#[derive(Parser)]
#[command(about = "TUF client for the tuf-conformance suite (CLIENT-CLI protocol)")]
struct Args {
    /// Directory of trusted metadata.
    #[arg(long)]
    metadata_dir: PathBuf,
    /// Base URL of the repository's metadata.
    #[arg(long)]
    metadata_url: Option<String>,
    /// Target path to download (repeatable: downloaded in order).
    #[arg(long)]
    target_name: Vec<String>,
    /// Directory to store verified targets in.
    #[arg(long)]
    target_dir: Option<PathBuf>,
    /// Base URL of the repository's targets.
    #[arg(long)]
    target_base_url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Trust the given root metadata file (copied as is, checked on the first refresh).
    Init {
        /// The initial trusted root.json.
        trusted_root: PathBuf,
    },
    /// Update the top-level metadata.
    Refresh,
    /// Update metadata, then fetch and verify the targets.
    Download,
}

fn now() -> anyhow::Result<i64> {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .context("system clock before 1970")?;
    Ok(i64::try_from(since.as_secs())?)
}

fn run(args: Args) -> anyhow::Result<()> {
    let store = MetadataStore::new(&args.metadata_dir);
    if let Command::Init { trusted_root } = &args.command {
        let bytes = std::fs::read(trusted_root)
            .with_context(|| format!("reading {}", trusted_root.display()))?;
        store.write("root", &bytes)?;
        return Ok(());
    }
    let url = args
        .metadata_url
        .as_deref()
        .context("--metadata-url is required")?;
    let transport = AnyTransport::new(Limits::default(), None)?;
    let mut updater = Updater::new(store, url, &transport, ClientConfig::default(), now()?)?;
    updater.refresh()?;
    if let Command::Download = args.command {
        let dir = args
            .target_dir
            .as_deref()
            .context("--target-dir is required")?;
        let base = args
            .target_base_url
            .as_deref()
            .context("--target-base-url is required")?;
        if args.target_name.is_empty() {
            bail!("--target-name is required");
        }
        let mut failed = 0;
        for name in &args.target_name {
            let outcome = updater
                .find_target(name)
                .and_then(|found| updater.download_target(&found, base, dir));
            match outcome {
                Ok(path) => eprintln!("{name}: {}", path.display()),
                Err(e) => {
                    eprintln!("{name}: {e}");
                    failed += 1;
                }
            }
        }
        if failed > 0 {
            bail!("{failed} of {} target(s) failed", args.target_name.len());
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("edgeward-tuf-client: {e:#}");
            ExitCode::FAILURE
        }
    }
}
