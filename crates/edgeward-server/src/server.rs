//! Starting the server: identity, database, state, both listeners, and the accept loop that
//! ties each TLS connection to its device so quarantine and revocation can act on it.

use std::{
    collections::HashSet,
    net::SocketAddr,
    sync::{Arc, RwLock},
    time::Duration,
};

use axum::{response::IntoResponse, routing::get, Extension, Router};
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
    service::TowerToHyperService,
};
use tokio::{net::TcpListener, sync::watch, task::JoinHandle};
use tokio_rustls::TlsAcceptor;
use tower::util::{MapRequestLayer, MapResponseLayer};

use crate::{
    admin_api,
    app::{App, Shared},
    clock::{Clock, SystemClock},
    config::{Config, ConnectionLimits},
    conn_limits::{Activity, Caps},
    conns::Connections,
    data_dir::DataDir,
    db::{Db, Role},
    device_api::{self, Peer},
    enrollment, identity, json_errors,
    metrics::Metrics,
    rate_limit::Store,
    tls,
};

/// The OpenAPI description of both listeners.
pub const OPENAPI: &str = include_str!("../openapi.json");

/// A failure to start.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StartError(pub String);

fn start_err(context: &str) -> impl FnOnce(String) -> StartError + '_ {
    move |e| StartError(format!("{context}: {e}"))
}

/// A running server.
pub struct Running {
    /// Where the device API listens.
    pub device_addr: SocketAddr,
    /// Where the admin API listens (it answers `/v1/enroll` too).
    pub admin_addr: SocketAddr,
    /// Where the enrollment listener (`/v1/enroll` only) listens.
    pub enroll_addr: SocketAddr,
    /// The shared state (tests inspect it).
    pub app: Shared,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    /// Held (locked) until the server stops.
    _data_dir: DataDir,
}

impl Running {
    /// Stops accepting and closes every connection.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// Writes `device-crl.pem` into the data directory from the committed revocations (the
/// registry's `revoked_certs`, which also refills the TLS deny set), under the next CRL
/// number, one writer at a time.
pub async fn write_device_crl(app: &App) -> Result<(), String> {
    let _writing = app.crl_writer.lock().await;
    let serials = app.db.revoked_serials().await.map_err(|e| e.to_string())?;
    for serial in &serials {
        app.deny(serial);
    }
    let number = app.db.next_crl_number().await.map_err(|e| e.to_string())?;
    let now = time::OffsetDateTime::from_unix_timestamp(app.now()).map_err(|e| e.to_string())?;
    let pem = app.identity.device_ca.crl(&serials, number, now)?;
    edgeward_pki::store::write_atomic(
        &app.config.data_dir.join("device-crl.pem"),
        pem.as_bytes(),
        true,
    )
    .map_err(|e| e.to_string())?;
    app.crl_changed.send_modify(|n| *n += 1);
    Ok(())
}

/// Starts the server with the system clock.
pub async fn start(config: Config) -> Result<Running, StartError> {
    start_with_clock(config, Arc::new(SystemClock)).await
}

/// Starts the server with `clock` (tests pass a manual clock).
pub async fn start_with_clock(
    config: Config,
    clock: Arc<dyn Clock>,
) -> Result<Running, StartError> {
    // Listeners first: a port in use must not leave a half-made data directory behind.
    let device_listener = TcpListener::bind(config.listen)
        .await
        .map_err(|e| StartError(format!("{}: {e}", config.listen)))?;
    let admin_listener = TcpListener::bind(config.admin_listen)
        .await
        .map_err(|e| StartError(format!("{}: {e}", config.admin_listen)))?;
    let enroll_listener = TcpListener::bind(config.enroll_listen)
        .await
        .map_err(|e| StartError(format!("{}: {e}", config.enroll_listen)))?;
    let mut data_dir = DataDir::lock(&config.data_dir).map_err(StartError)?;
    let (app, raised) = build(&config, clock, Part::Server).await?;
    if let Some(d) = &app.detection {
        let restored = d
            .restore(&app.db)
            .await
            .map_err(start_err("detector state"))?;
        tracing::info!(restored, "detector checkpoints loaded");
    }
    write_device_crl(&app)
        .await
        .map_err(start_err("device CRL"))?;
    write_public_files(&app)?;

    let device_tls = tls::device_config(&app.identity, None, app.revoked.clone())
        .map_err(|e| StartError(e.to_string()))?;
    let admin_tls = tls::admin_config(&app.identity).map_err(|e| StartError(e.to_string()))?;
    data_dir.started().map_err(StartError)?;
    let device_addr = device_listener
        .local_addr()
        .map_err(|e| StartError(e.to_string()))?;
    let admin_addr = admin_listener
        .local_addr()
        .map_err(|e| StartError(e.to_string()))?;
    let enroll_addr = enroll_listener
        .local_addr()
        .map_err(|e| StartError(e.to_string()))?;
    tracing::info!("device API (mTLS) listening on https://{device_addr}");
    tracing::info!("admin API listening on https://{admin_addr}");
    tracing::info!("enrollment listening on https://{enroll_addr}");

    let common = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(metrics))
        .route(
            "/openapi.json",
            get(|| async { ([("content-type", "application/json")], OPENAPI) }),
        );
    let device_router = device_api::routes()
        .merge(common.clone())
        .fallback(json_errors::not_found)
        .layer(axum::middleware::map_response(json_errors::json_refusals))
        .layer(MapResponseLayer::new(counter(app.clone(), "device")))
        .with_state(app.clone());
    let admin_router = admin_api::routes(app.clone())
        .route("/v1/enroll", axum::routing::post(enrollment::enroll))
        .merge(common)
        .fallback(json_errors::not_found)
        .layer(axum::middleware::map_response(json_errors::json_refusals))
        .layer(MapResponseLayer::new(counter(app.clone(), "admin")))
        .with_state(app.clone());
    let enroll_router = enrollment::routes()
        .fallback(json_errors::not_found)
        .layer(axum::middleware::map_response(json_errors::json_refusals))
        .layer(MapResponseLayer::new(counter(app.clone(), "enroll")))
        .with_state(app.clone());

    let (shutdown, rx) = watch::channel(false);
    let mut tasks = vec![
        tokio::spawn(crate::detection::checkpoints(app.clone(), rx.clone())),
        tokio::spawn(flush_refusals(app.clone(), rx.clone())),
        tokio::spawn(follow_revocations(app.clone(), rx.clone())),
        tokio::spawn(accept_loop(
            device_listener,
            TlsAcceptor::from(device_tls),
            device_router,
            app.clone(),
            "device",
            rx.clone(),
        )),
        tokio::spawn(accept_loop(
            admin_listener,
            TlsAcceptor::from(admin_tls.clone()),
            admin_router,
            app.clone(),
            "admin",
            rx.clone(),
        )),
        tokio::spawn(accept_loop(
            enroll_listener,
            TlsAcceptor::from(admin_tls),
            enroll_router,
            app.clone(),
            "enroll",
            rx.clone(),
        )),
    ];
    if let Some(mqtt) = &app.config.mqtt {
        tasks.extend(crate::mqtt::start(app.clone(), mqtt, rx).map_err(start_err("mqtt"))?);
    }
    if let Some(raised) = raised {
        tasks.push(tokio::spawn(crate::detection::dispatch(
            app.clone(),
            raised,
            shutdown.subscribe(),
        )));
    }
    Ok(Running {
        device_addr,
        admin_addr,
        enroll_addr,
        app,
        shutdown,
        tasks,
        _data_dir: data_dir,
    })
}

/// What the state is built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    /// A server replica: it publishes telemetry to `[nats]` and keeps the admin key.
    Server,
    /// A scale-out detection worker: the same state (registry, detection, playbook, sinks,
    /// command and audit keys) without listeners.
    Worker,
}

/// The state, and the queue of alerts in-process detection raises.
type Built = (
    Shared,
    Option<tokio::sync::mpsc::Receiver<crate::detection::Raised>>,
);

/// The state every handler shares, built from `config`: identity, database, stores,
/// signers, the attestation verifier and detection (with the queue of raised alerts).
async fn build(config: &Config, clock: Arc<dyn Clock>, part: Part) -> Result<Built, StartError> {
    let now =
        time::OffsetDateTime::from_unix_timestamp(i64::try_from(clock.now_secs()).unwrap_or(0))
            .map_err(|e| StartError(e.to_string()))?;
    let identity = identity::load_or_create(config, now).map_err(|e| StartError(e.0))?;
    let db = Db::connect(&config.database_url())
        .await
        .map_err(|e| StartError(e.to_string()))?;
    let store = match &config.redis_url {
        Some(url) => Store::redis(url)
            .await
            .map_err(|e| StartError(e.to_string()))?,
        None => Store::memory(),
    };
    let nats = match &config.nats {
        Some(n) if part == Part::Server => Some(
            crate::detect_nats::publish::Publisher::connect(n)
                .await
                .map_err(StartError)?,
        ),
        _ => None,
    };
    if part == Part::Server {
        ensure_admin_key(&db, config, clock.now_secs()).await?;
    }
    let revoked: HashSet<String> = db
        .revoked_serials()
        .await
        .map_err(|e| StartError(e.to_string()))?
        .into_iter()
        .collect();
    let db_backend = db.backend();
    let ingest = crate::ingest::Ingest::start(&db, config.database.telemetry_sync)
        .await
        .map_err(|e| StartError(format!("telemetry writer: {e}")))?;
    let command_signer =
        crate::command_signing::CommandSigner::load_or_create(&config.data_dir.join("command.key"))
            .map_err(StartError)?;
    let audit_signer = crate::audit_log::AuditSigner::load_or_create(
        &config.data_dir.join(crate::audit_log::KEY_FILE),
    )
    .map_err(StartError)?;
    crate::audit_log::seal_untreed(&db)
        .await
        .map_err(|e| StartError(format!("audit log: {e}")))?;
    let attestation = crate::attestation::Verifier::load(config, &identity, clock.now_secs())
        .map_err(StartError)?;
    let (detection, raised) = if config.detection.enabled {
        let (d, raised) =
            crate::detection::Detection::new(&config.detection).map_err(start_err("detection"))?;
        (Some(d), Some(raised))
    } else {
        (None, None)
    };
    let app = Arc::new(App {
        config: config.clone(),
        db,
        identity,
        store,
        nats,
        clock,
        conns: Connections::default(),
        instance: {
            let mut name = [0u8; 8];
            rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut name);
            hex::encode(name)
        },
        revoked: Arc::new(RwLock::new(revoked)),
        metrics: Metrics::default(),
        crl_writer: Default::default(),
        body_budget: crate::body::Budget::new(config.connections.body_memory_mib),
        refusals: crate::audit_agg::Aggregator::new(Duration::from_secs(
            config.audit_aggregate_secs.max(1),
        )),
        registry: crate::registry_cache::RegistryCache::new(
            db_backend == crate::db::Backend::Sqlite && config.redis_url.is_none(),
        ),
        ingest,
        command_signer,
        audit_signer,
        attestation,
        releases: Default::default(),
        crl_changed: watch::channel(0).0,
        mqtt: Default::default(),
        detection,
    });
    Ok((app, raised))
}

/// The state a scale-out detection worker (`edgeward-server detect-worker`) raises alerts
/// with: the server's own, built from the replicas' configuration (the same database,
/// detection settings, playbook, sinks, data directory keys), with no listeners and no
/// publishing. Alerts it raises go through [`crate::detection::raise`] like in-process ones.
pub async fn worker_app(config: Config) -> Result<Shared, StartError> {
    let (app, _raised) = build(&config, Arc::new(SystemClock), Part::Worker).await?;
    Ok(app)
}

/// How often a server reads the revocations other replicas committed.
pub const REVOCATION_SYNC: Duration = Duration::from_millis(400);

/// Follows revocations and session drops committed through other replicas (or detection
/// workers) sharing the registry: every [`REVOCATION_SYNC`] it reads `revoked_certs`, and
/// for each serial it did not know it refuses the certificate at the handshake, closes the
/// device's open connections here, drops its cached record, and rewrites its CRL; and it
/// reads `session_drops`, closing the open connections of each device named in a request
/// another process recorded since. (Revocations made here are applied at once by the
/// request that made them; this also catches them, to no effect. Session drops recorded
/// here are skipped: the device may already have reconnected to its command channel.)
async fn follow_revocations(app: Shared, mut shutdown: watch::Receiver<bool>) {
    // Requests from before this start name connections this process never had.
    let mut drops_seen = app.db.last_session_drop().await.unwrap_or_else(|e| {
        tracing::error!(%e, "reading the session drops of other replicas");
        0
    });
    loop {
        tokio::select! {
            _ = tokio::time::sleep(REVOCATION_SYNC) => {}
            _ = shutdown.changed() => return,
        }
        match app.db.session_drops_after(drops_seen).await {
            Ok(drops) => {
                for (id, device, origin) in drops {
                    drops_seen = drops_seen.max(id);
                    if origin == app.instance {
                        continue;
                    }
                    let closed = app.conns.close_all(&device);
                    app.metrics.add(
                        "edgeward_connections_closed_total",
                        "reason=\"dropped_elsewhere\"".into(),
                        closed as u64,
                    );
                    // A detection worker has no broker connection: the replicas that have
                    // one close the device's MQTT session for it.
                    if let Some(client) = app.mqtt.get() {
                        if let Err(e) = crate::mqtt::kick::close(&app, client, &device).await {
                            tracing::error!(%e, device, "closing a contained device's MQTT session");
                        }
                    }
                }
            }
            Err(e) => tracing::error!(%e, "reading the session drops of other replicas"),
        }
        let revoked = match app.db.revocations().await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(%e, "reading the revocations of other replicas");
                continue;
            }
        };
        let known = app.revoked.read().map(|s| s.clone()).unwrap_or_default();
        let mut new = false;
        for (serial, device) in revoked.iter().filter(|(s, _)| !known.contains(s)) {
            app.deny(serial);
            app.registry.invalidate(device);
            let closed = app.conns.close_all(device);
            app.metrics.add(
                "edgeward_connections_closed_total",
                "reason=\"revoked_elsewhere\"".into(),
                closed as u64,
            );
            new = true;
        }
        if new {
            if let Err(e) = write_device_crl(&app).await {
                tracing::error!(%e, "rewriting the device CRL");
            }
        }
    }
}

/// Writes the counted repeats of refusals as their windows close, and all of them when the
/// server stops.
async fn flush_refusals(app: Shared, mut shutdown: watch::Receiver<bool>) {
    let every = (app.refusals.window() / 4).max(Duration::from_millis(100));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => app.flush_refusals(false).await,
            _ = shutdown.changed() => break,
        }
    }
    app.flush_refusals(true).await;
}

/// Counts every response of `listener` by status for `/metrics` (a plain response map: no
/// boxed future per request, as a middleware function would add).
fn counter(
    app: Shared,
    listener: &'static str,
) -> impl Fn(axum::response::Response) -> axum::response::Response + Clone {
    move |response| {
        app.metrics.inc(
            "edgeward_requests_total",
            format!(
                "listener=\"{listener}\",status=\"{}\"",
                response.status().as_u16()
            ),
        );
        response
    }
}

/// On first start, creates an admin key and writes it to `admin-token` (0600).
async fn ensure_admin_key(db: &Db, config: &Config, now: u64) -> Result<(), StartError> {
    let path = config.data_dir.join("admin-token");
    if path.exists() {
        let key = std::fs::read_to_string(&path)
            .map_err(|e| StartError(format!("{}: {e}", path.display())))?;
        if db
            .admin_key(&admin_api::secret_hash(key.trim()))
            .await
            .map_err(|e| StartError(e.to_string()))?
            .is_some()
        {
            return Ok(());
        }
    }
    let key = admin_api::new_secret("ewk");
    db.add_admin_key(
        &admin_api::secret_hash(&key),
        "bootstrap",
        Role::Admin,
        i64::try_from(now).unwrap_or(0),
    )
    .await
    .map_err(|e| StartError(e.to_string()))?;
    edgeward_pki::store::write_atomic(&path, key.as_bytes(), true)
        .map_err(|e| StartError(format!("{}: {e}", path.display())))
}

fn write_public_files(app: &App) -> Result<(), StartError> {
    let dir = &app.config.data_dir;
    for (name, content) in [
        ("server-ca.pem", &app.identity.server_ca_pem),
        ("device-ca.pem", &app.identity.device_ca.cert_pem),
    ] {
        edgeward_pki::store::write_atomic(&dir.join(name), content.as_bytes(), true)
            .map_err(|e| StartError(format!("{}: {e}", dir.join(name).display())))?;
    }
    Ok(())
}

async fn metrics(axum::extract::State(app): axum::extract::State<Shared>) -> impl IntoResponse {
    let devices = app.db.devices().await.map(|d| d.len() as u64).unwrap_or(0);
    let body = app.metrics.render(&[
        ("edgeward_devices", "registered devices", devices),
        (
            "edgeward_device_connections",
            "open device connections",
            app.conns.count() as u64,
        ),
    ]);
    ([("content-type", "text/plain; version=0.0.4")], body)
}

/// How long to wait before accepting again when the process is out of file descriptors: it
/// doubles from the first to the last while accepting keeps failing.
const ACCEPT_BACKOFF_MS: (u64, u64) = (10, 1000);

/// Whether an accept error means the process or system ran out of file descriptors.
fn out_of_descriptors(e: &std::io::Error) -> bool {
    let code = e.raw_os_error().map(rustix::io::Errno::from_raw_os_error);
    code == Some(rustix::io::Errno::MFILE) || code == Some(rustix::io::Errno::NFILE)
}

/// The connection caps in effect: the configured ones, the overall one lowered to what the
/// file descriptor limit leaves for each of the two listeners (with room for the database,
/// the files and the clients the server holds itself).
fn caps(limits: &ConnectionLimits) -> Arc<Caps> {
    let max = match rustix::process::getrlimit(rustix::process::Resource::Nofile).current {
        Some(fds) => {
            let room = usize::try_from(fds.saturating_sub(256) / 2).unwrap_or(usize::MAX);
            if room < limits.max_connections {
                tracing::warn!(
                    room,
                    configured = limits.max_connections,
                    "the file descriptor limit lowers max_connections"
                );
            }
            limits.max_connections.min(room.max(1))
        }
        None => limits.max_connections,
    };
    Caps::new(max, limits.max_connections_per_address)
}

/// Serves one TLS connection until it closes, its device is cut off, it has been idle for
/// the idle timeout, or the server stops.
async fn serve_connection(
    tls: tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
    addr: SocketAddr,
    router: Router,
    app: Shared,
    mut shutdown: watch::Receiver<bool>,
) {
    let limits = app.config.connections;
    let device_id = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .and_then(|c| tls::common_name_of(c));
    let peer = Arc::new(Peer::new(addr, device_id.as_deref(), &app.identity.secrets));
    let registration = device_id.as_deref().map(|d| app.conns.register(d));
    let mut closed = registration.as_ref().map(|r| r.closed.clone());
    let activity = Arc::new(Activity::default());
    let (begun, ended) = (activity.clone(), activity.clone());
    let body_secs = limits.body_timeout_secs;
    let svc = router
        .layer(Extension(peer))
        .layer(MapRequestLayer::new(move |req: axum::extract::Request| {
            begun.begin();
            req.map(|body| crate::body::with_deadline(body, body_secs))
        }))
        .layer(MapResponseLayer::new(
            move |response: axum::response::Response| {
                ended.end();
                response
            },
        ));
    let timer = hyper_util::rt::TokioTimer::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(timer.clone())
        .header_read_timeout(Duration::from_secs(limits.header_timeout_secs));
    builder.http2().timer(timer).max_concurrent_streams(32);
    let conn = builder.serve_connection(TokioIo::new(tls), TowerToHyperService::new(svc));
    tokio::pin!(conn);
    let idle_ms = limits.idle_timeout_secs.saturating_mul(1000);
    let mut tick = tokio::time::interval(Duration::from_millis((idle_ms / 4).clamp(50, 5000)));
    let mut closing: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            _ = conn.as_mut() => break,
            _ = async { match closed.as_mut() { Some(c) => { let _ = c.changed().await; } None => std::future::pending::<()>().await } } => break,
            _ = shutdown.changed() => break,
            _ = tick.tick() => match closing {
                // A client that does not finish closing within a second is dropped.
                Some(since) if since.elapsed() > Duration::from_secs(1) => break,
                Some(_) => {}
                None if activity.idle_ms() >= idle_ms => {
                    conn.as_mut().graceful_shutdown();
                    closing = Some(tokio::time::Instant::now());
                }
                None => {}
            },
        }
    }
    drop(registration);
}

/// Accepts TLS connections and serves HTTP/1.1 and HTTP/2 on each until shutdown. A
/// connection over a cap is closed at once; when the process runs out of file descriptors,
/// accepting pauses (backing off) and resumes.
async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    router: Router,
    app: Shared,
    name: &'static str,
    mut shutdown: watch::Receiver<bool>,
) {
    let limits = app.config.connections;
    let caps = caps(&limits);
    let mut conns = tokio::task::JoinSet::new();
    let mut backoff_ms = ACCEPT_BACKOFF_MS.0;
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => break,
        };
        let (tcp, addr) = match accepted {
            Ok(a) => {
                backoff_ms = ACCEPT_BACKOFF_MS.0;
                a
            }
            Err(e) if out_of_descriptors(&e) => {
                tracing::warn!(%e, backoff_ms, "out of file descriptors; accepting again shortly");
                app.metrics.inc(
                    "edgeward_connections_refused_total",
                    format!("listener=\"{name}\",reason=\"out_of_descriptors\""),
                );
                tokio::time::sleep(Duration::from_millis(backoff_ms)).await;
                backoff_ms = (2 * backoff_ms).min(ACCEPT_BACKOFF_MS.1);
                continue;
            }
            Err(e) => {
                tracing::warn!(%e, "accept failed");
                tokio::time::sleep(Duration::from_millis(ACCEPT_BACKOFF_MS.0)).await;
                continue;
            }
        };
        let slot = match caps.admit(addr.ip()) {
            Ok(slot) => slot,
            Err(full) => {
                app.metrics.inc(
                    "edgeward_connections_refused_total",
                    format!("listener=\"{name}\",reason=\"{}\"", full.label()),
                );
                drop(tcp);
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let (acceptor, router, app, shutdown) = (
            acceptor.clone(),
            router.clone(),
            app.clone(),
            shutdown.clone(),
        );
        conns.spawn(async move {
            let handshake = Duration::from_secs(app.config.connections.handshake_timeout_secs);
            match tokio::time::timeout(handshake, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => serve_connection(tls, addr, router, app, shutdown).await,
                Ok(Err(e)) => {
                    tracing::debug!(%addr, %e, "TLS handshake refused");
                    app.metrics.inc(
                        "edgeward_handshake_failures_total",
                        format!("listener=\"{name}\""),
                    );
                }
                Err(_) => {}
            }
            drop(slot);
        });
        while conns.try_join_next().is_some() {}
    }
    conns.abort_all();
}
