//! The `edgeward-server` binary: configuration from a TOML file, `EDGEWARD_*` variables and
//! flags, then the two HTTPS listeners until Ctrl-C or SIGTERM.

use std::{net::SocketAddr, path::PathBuf, process::ExitCode};

use clap::Parser;
use edgeward_server::Config;

/// Request handling allocates and frees many small buffers across threads; mimalloc does
/// that at a fraction of glibc malloc's cost (measured with `bench/server.sh`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Edgeward's cloud control plane. With no configuration it starts on the embedded default:
/// SQLite and a development PKI in ./edgeward-data.
#[derive(Parser, Debug)]
#[command(name = "edgeward-server", version)]
struct Args {
    /// TOML configuration file (see docs/server.md).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Data directory (database, keys, server-ca.pem, admin-token).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Device API address (mTLS).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Admin API address (keep it private).
    #[arg(long)]
    admin_listen: Option<SocketAddr>,
    /// Enrollment address (what devices without a certificate yet reach).
    #[arg(long)]
    enroll_listen: Option<SocketAddr>,
    /// TUF repository directory to serve to devices (`edgeward release publish --repo`).
    #[arg(long)]
    update_repo: Option<PathBuf>,
    /// Log format on stderr: `text` (colours only on a terminal) or `json` (one object per
    /// line, for log shippers).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Option<Command>,
}

/// What to do instead of serving.
#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Print the audit log's verifier key (a C2SP note verifier key, what `edgeward audit
    /// verify --key` pins), creating the audit key in the data directory if missing.
    AuditKey,
    /// Generate a Mosquitto configuration (TLS, device CA and CRL, ACLs, dynamic security)
    /// from the data directory of a server that has started once (see docs/broker.md).
    BrokerConfig {
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// Where the broker listens (TLS).
        #[arg(long, default_value = "127.0.0.1:8883")]
        broker_listen: SocketAddr,
        /// Another name (DNS or IP) devices reach the broker by; repeatable.
        #[arg(long = "broker-name")]
        broker_names: Vec<String>,
        /// The user Mosquitto runs as.
        #[arg(long)]
        run_as: Option<String>,
        /// The root certificate the device CA chains to (default: the development PKI's).
        #[arg(long)]
        root_ca: Option<PathBuf>,
        /// The dynamic-security plugin.
        #[arg(long, default_value = edgeward_server::mqtt::broker_config::DEFAULT_PLUGIN)]
        plugin: PathBuf,
    },
    /// Run a scale-out detection worker: score the telemetry replicas publish to NATS
    /// JetStream, sharing the stream's partitions with the other workers through leases in
    /// PostgreSQL, with checkpoints there (see docs/detection.md).
    DetectWorker(WorkerArgs),
}

/// Arguments of `detect-worker`.
#[derive(clap::Args, Debug)]
struct WorkerArgs {
    /// The NATS server, e.g. nats://127.0.0.1:4222.
    #[arg(long, env = "EDGEWARD_NATS_URL")]
    nats: String,
    /// The registry's PostgreSQL database (it also holds the leases and checkpoints);
    /// default: the configuration's `database_url`.
    #[arg(long)]
    postgres: Option<String>,
    /// The JetStream stream, as the replicas' `nats.stream`.
    #[arg(long, default_value = "EDGEWARD_TELEMETRY")]
    stream: String,
    /// The subjects' first token, as the replicas' `nats.subject_prefix`.
    #[arg(long, default_value = "telemetry")]
    subject_prefix: String,
    /// How many partitions the stream has, as the replicas' `nats.partitions`; the live
    /// workers share them.
    #[arg(long, default_value_t = 16)]
    partitions: u32,
    /// This worker's name (default: host name and process id).
    #[arg(long)]
    id: Option<String>,
    /// Milliseconds a lease lasts unrenewed: how soon a dead worker's partitions move.
    #[arg(long, default_value_t = 3000, value_parser = clap::value_parser!(u64).range(200..=600_000))]
    lease_ms: u64,
}

/// How the server writes its log.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum LogFormat {
    /// Human-readable lines; ANSI colours only when stderr is a terminal.
    Text,
    /// One JSON object per line (timestamp, level, target, fields).
    Json,
}

fn init_logging(format: LogFormat) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        // Colours only on a terminal: a log file or journal gets plain text.
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn load(args: &Args) -> Result<Config, String> {
    let mut config = match &args.config {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
            Config::from_toml(&text).map_err(|e| format!("{}: {e}", path.display()))?
        }
        None => Config::default(),
    };
    config.apply_env(|k| std::env::var(k).ok())?;
    if let Some(d) = &args.data_dir {
        config.data_dir = d.clone();
    }
    if let Some(a) = args.listen {
        config.listen = a;
    }
    if let Some(a) = args.admin_listen {
        config.admin_listen = a;
    }
    if let Some(a) = args.enroll_listen {
        config.enroll_listen = a;
    }
    if let Some(d) = &args.update_repo {
        config.update_repo = Some(d.clone());
    }
    Ok(config)
}

/// `edgeward-server audit-key`.
fn audit_key(config: &Config) -> ExitCode {
    let path = config.data_dir.join(edgeward_server::audit_log::KEY_FILE);
    if !config.data_dir.exists() {
        eprintln!(
            "edgeward-server: the data directory {} does not exist (start the server once)",
            config.data_dir.display()
        );
        return ExitCode::from(2);
    }
    match edgeward_server::audit_log::AuditSigner::load_or_create(&path) {
        Ok(signer) => {
            println!("{}", signer.verifier());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("edgeward-server: {e}");
            ExitCode::from(1)
        }
    }
}

/// `edgeward-server detect-worker`, until Ctrl-C or SIGTERM: the server's `config` (its
/// database, detection settings, playbook, sinks and data directory keys, as the replicas
/// have them) is what alerts are raised with.
async fn detect_worker(a: WorkerArgs, mut config: Config) -> ExitCode {
    use edgeward_server::detect_nats::{worker, NatsConfig};
    let id = a.id.unwrap_or_else(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        format!("{}-{}", host.trim(), std::process::id())
    });
    let worker_config = worker::WorkerConfig {
        nats: NatsConfig {
            url: a.nats,
            stream: a.stream,
            subject_prefix: a.subject_prefix,
            partitions: a.partitions,
        },
        id,
        lease: std::time::Duration::from_millis(a.lease_ms),
    };
    if let Some(url) = a.postgres {
        config.database_url = Some(url);
    }
    let app = match edgeward_server::server::worker_app(config).await {
        Ok(app) => app,
        Err(e) => {
            eprintln!("edgeward-server detect-worker: {e}");
            return ExitCode::from(1);
        }
    };
    let w = match worker::Worker::connect(worker_config, app).await {
        Ok(w) => w,
        Err(e) => {
            eprintln!("edgeward-server detect-worker: {e}");
            return ExitCode::from(1);
        }
    };
    let stop = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    };
    match w.run(stop).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("edgeward-server detect-worker: {e}");
            ExitCode::from(1)
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    init_logging(args.log_format);
    let config = match load(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("edgeward-server: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(Command::AuditKey) = args.command {
        return audit_key(&config);
    }
    if let Some(Command::DetectWorker(w)) = args.command {
        return detect_worker(w, config).await;
    }
    if let Some(Command::BrokerConfig {
        out,
        broker_listen,
        broker_names,
        run_as,
        root_ca,
        plugin,
    }) = args.command
    {
        let options = edgeward_server::mqtt::broker_config::BrokerOptions {
            listen: broker_listen,
            names: broker_names,
            run_as,
            plugin,
            root_ca,
            out,
        };
        let now = time::OffsetDateTime::now_utc();
        return match edgeward_server::mqtt::broker_config::write(&config.data_dir, &options, now) {
            Ok(path) => {
                println!("{}", path.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("edgeward-server broker-config: {e}");
                ExitCode::from(1)
            }
        };
    }
    let running = match edgeward_server::start(config).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("edgeward-server: {e}");
            return ExitCode::from(1);
        }
    };
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("edgeward-server: {e}");
            return ExitCode::from(1);
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
    running.stop().await;
    ExitCode::SUCCESS
}
