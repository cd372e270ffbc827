//! `edgeward-agent`: runs on each device. `run` is the daemon; the other commands are
//! one-shot operations. Exit statuses: 0 booted / done, 1 the daemon is not running
//! (`status`), 2 operator error, 3 recovery mode (the chain stopped or the element was
//! wiped; the record is printed), 4 an update failed or was reverted (`update`).

use std::{path::PathBuf, process::ExitCode, sync::atomic::AtomicBool, time::Duration};

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use edgeward_agent::{
    daemon, enroll, net, status,
    tamper::{self, TamperInput},
    update, AgentConfig,
};
use edgeward_boot::{
    attest,
    boot::{boot_chain, confirm, BootOptions},
    recovery::RecoveryRecord,
    state::StateDir,
    FailureKind,
};
use edgeward_core::civil::unix_now;
use edgeward_se::SecureElement;
use tokio::signal::unix::{signal, SignalKind};

/// Exit status of recovery mode.
const RECOVERY: u8 = 3;

/// The Edgeward device agent.
#[derive(Parser, Debug)]
#[command(name = "edgeward-agent", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The secure element and state directory every command works on.
#[derive(Args, Debug)]
struct DeviceArgs {
    /// The secure element (e.g. soft:/var/lib/edgeward/se).
    #[arg(long, env = "EDGEWARD_SE")]
    se: String,
    /// Where the boot log and recovery record are kept.
    #[arg(
        long,
        env = "EDGEWARD_AGENT_STATE",
        default_value = "/var/lib/edgeward-agent"
    )]
    state: PathBuf,
}

impl DeviceArgs {
    /// Opens the state directory and the secure element.
    fn open(&self) -> anyhow::Result<(StateDir, Box<dyn SecureElement>)> {
        let state = StateDir::open(&self.state)?;
        let se = edgeward_se::open(&self.se).with_context(|| format!("opening {}", self.se))?;
        Ok((state, se))
    }
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the daemon: enroll if needed, then telemetry and signed commands until SIGTERM.
    Run {
        /// The configuration file.
        #[arg(long, default_value = "/etc/edgeward/agent.toml")]
        config: PathBuf,
    },
    /// Show what the running daemon is doing (exit 1 when it is not running).
    Status {
        /// The configuration file (names the status socket).
        #[arg(long, default_value = "/etc/edgeward/agent.toml")]
        config: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check the update repository ([update] in the configuration) and install what is
    /// new; exit 4 when a component failed or was reverted.
    Update {
        /// The configuration file.
        #[arg(long, default_value = "/etc/edgeward/agent.toml")]
        config: PathBuf,
        /// Only say what is available; install nothing.
        #[arg(long)]
        check_only: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Verify and measure the boot chain; exit 3 in recovery mode.
    Boot {
        /// The chain description.
        #[arg(long)]
        chain: PathBuf,
        #[command(flatten)]
        device: DeviceArgs,
        /// The device's hardware class (default: the chain's).
        #[arg(long)]
        hardware: Option<String>,
        /// A tamper input checked before anything else (flag or GPIO value file).
        #[arg(long)]
        tamper: Option<PathBuf>,
        /// Mark the booted images good at once (raise the anti-rollback counters).
        #[arg(long)]
        confirm: bool,
    },
    /// Mark the last booted images good: raise each stage's anti-rollback counter.
    Confirm {
        #[command(flatten)]
        device: DeviceArgs,
    },
    /// Print attestation evidence for the last boot, answering the verifier's nonce.
    Attest {
        /// The verifier's nonce, hex (16 to 64 bytes).
        #[arg(long)]
        nonce: String,
        #[command(flatten)]
        device: DeviceArgs,
    },
    /// Watch a tamper input; wipe the element the moment it trips (exit 3).
    TamperWatch {
        /// The tamper input (flag or GPIO value file).
        #[arg(long)]
        input: PathBuf,
        #[command(flatten)]
        device: DeviceArgs,
        /// Poll interval in milliseconds.
        #[arg(long, default_value_t = 50)]
        poll_ms: u64,
    },
}

fn recovery(state: &StateDir, record: &RecoveryRecord) -> anyhow::Result<u8> {
    state.record_recovery(record)?;
    println!("{}", serde_json::to_string_pretty(record)?);
    eprintln!("edgeward-agent: recovery mode: {}", record.summary());
    Ok(RECOVERY)
}

fn tampered(state: &StateDir, input: &std::path::Path) -> anyhow::Result<u8> {
    let record = RecoveryRecord::before_chain(
        FailureKind::Tampered,
        format!(
            "tamper input {} tripped; the secure element was wiped and must be re-provisioned",
            input.display()
        ),
        unix_now(),
    );
    recovery(state, &record)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    // One thread: the agent's work is I/O bound, and a device's memory is scarce.
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

fn daemon(config: PathBuf) -> anyhow::Result<u8> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(edgeward_agent::logbuf::Tee::default)
        .init();
    let config = AgentConfig::load(&config)?;
    runtime()?.block_on(async move {
        let (stop, shutdown) = tokio::sync::watch::channel(false);
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        tokio::spawn(async move {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
                _ = int.recv() => tracing::info!("SIGINT: shutting down"),
            }
            let _ = stop.send(true);
        });
        daemon::run(config, shutdown).await?;
        Ok(0)
    })
}

fn status(config: PathBuf, json: bool) -> anyhow::Result<u8> {
    let config = AgentConfig::load(&config)?;
    let socket = config.status_socket();
    match runtime()?.block_on(status::query(&socket)) {
        Ok(s) if json => println!("{}", serde_json::to_string_pretty(&s)?),
        Ok(s) => print!("{}", status::render(&s)),
        Err(e) => {
            eprintln!("edgeward-agent: not running ({e})");
            return Ok(1);
        }
    }
    Ok(0)
}

/// Exit status of `update` when a component failed or was reverted.
const UPDATE_FAILED: u8 = 4;

fn update(config: PathBuf, check_only: bool, json: bool) -> anyhow::Result<u8> {
    let config = AgentConfig::load(&config)?;
    let Some(section) = &config.update else {
        bail!("the configuration has no [update] section");
    };
    let element: std::sync::Arc<dyn SecureElement> = edgeward_se::open(&config.element)
        .with_context(|| format!("opening {}", config.element))?
        .into();
    let identity = enroll::load(&config.state_dir, element.as_ref())?;
    let pass = if check_only {
        update::Pass::CheckOnly
    } else {
        update::Pass::Install
    };
    let rt = runtime()?;
    let client = identity
        .as_ref()
        .map(|identity| {
            net::DeviceClient::new(
                &config.server,
                &config.server_ca,
                std::sync::Arc::clone(&element),
                &identity.stored.key_slot,
                vec![identity.certificate_der.clone()],
                &identity.stored.device_id,
                identity.secret.clone(),
            )
        })
        .transpose()?;
    let source = match (&identity, &client) {
        (Some(identity), Some(client)) => rt.block_on(update::Source::server(
            section,
            &config.server_ca,
            std::sync::Arc::clone(&element),
            identity,
            client,
        ))?,
        _ if section.from_server() => bail!(
            "this device is not enrolled: its updates come from the server's device API (no metadata_url in [update])"
        ),
        _ => update::Source::configured(section, &config.server_ca)?,
    };
    let device_id = identity
        .as_ref()
        .map(|i| i.stored.device_id.clone())
        .unwrap_or_else(|| "unenrolled".into());
    let results = update::run(
        section,
        &config.state_dir,
        &device_id,
        element.as_ref(),
        pass,
        &source,
    )?;
    if json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    } else {
        print!("{}", update::render(&results));
    }
    if let Some(client) = client {
        let delivered = rt.block_on(update::deliver_reports(
            section,
            &config.state_dir,
            element.as_ref(),
            &client,
        ));
        if let Err(e) = delivered {
            eprintln!("edgeward-agent: update reports stay queued: {e}");
        }
    }
    let bad = results
        .iter()
        .any(|r| r.status == "failed" || r.status == "reverted");
    Ok(if bad { UPDATE_FAILED } else { 0 })
}

fn run(cli: Cli) -> anyhow::Result<u8> {
    match cli.command {
        Command::Run { config } => daemon(config),
        Command::Status { config, json } => status(config, json),
        Command::Update {
            config,
            check_only,
            json,
        } => update(config, check_only, json),
        Command::Boot {
            chain,
            device,
            hardware,
            tamper: tamper_input,
            confirm: confirm_now,
        } => {
            let (state, se) = device.open()?;
            if let Some(path) = tamper_input {
                if tamper::respond(se.as_ref(), &TamperInput { path: path.clone() })? {
                    return tampered(&state, &path);
                }
            }
            let options = BootOptions {
                now: unix_now(),
                hardware: hardware.as_deref(),
                before_stage: None,
            };
            match boot_chain(&chain, se.as_ref(), &options) {
                Ok(log) => {
                    state.record_boot(&log)?;
                    if confirm_now {
                        confirm(se.as_ref(), &log)?;
                    }
                    println!("{}", serde_json::to_string_pretty(&log)?);
                    eprintln!(
                        "edgeward-agent: booted {} stages, register {}",
                        log.events.len(),
                        hex::encode(log.register)
                    );
                    Ok(0)
                }
                Err(record) => recovery(&state, &record),
            }
        }
        Command::Confirm { device } => {
            let (state, se) = device.open()?;
            let log = state.boot_log().context("no successful boot to confirm")?;
            for (counter, value) in confirm(se.as_ref(), &log)? {
                println!("{counter} = {value}");
            }
            Ok(0)
        }
        Command::Attest { nonce, device } => {
            let nonce = hex::decode(nonce.trim()).context("--nonce is not hex")?;
            if let Err(e) = attest::check_nonce(&nonce) {
                bail!("--nonce: {e}");
            }
            let (state, se) = device.open()?;
            let log = state
                .boot_log()
                .context("no successful boot to attest (boot first)")?;
            let evidence = attest::produce(se.as_ref(), &log, &nonce)?;
            println!("{}", String::from_utf8_lossy(&evidence));
            Ok(0)
        }
        Command::TamperWatch {
            device,
            input,
            poll_ms,
        } => {
            let (state, se) = device.open()?;
            let stop = AtomicBool::new(false);
            let input = TamperInput { path: input };
            if tamper::watch(se.as_ref(), &input, Duration::from_millis(poll_ms), &stop)? {
                return tampered(&state, &input.path);
            }
            Ok(0)
        }
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("edgeward-agent: {e:#}");
            ExitCode::from(2)
        }
    }
}
