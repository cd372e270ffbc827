//! `edgeward-agent run`: the long-running process. It enrolls when the device has no
//! identity (waiting for a token file and for the server, as long as it takes), then
//! samples the device into the on-disk queue, delivers the queue in order and polls for
//! signed commands over mutual TLS, until SIGTERM. Every failure to reach the server is
//! logged, shown in the status, and retried on the next tick; nothing stops the loop but
//! shutdown. Commands are verified ([`crate::commands::verify`]) before they run and each is
//! answered with a signed result; a result that cannot be delivered waits in `outbox/`.
//! Quarantined, the agent keeps sampling into its queue but delivers nothing but command
//! results and forensic bundles; wiped, it waits for re-provisioning. With `[inference]`, it
//! keeps the isolated inference worker running ([`crate::inference`]) and tells it about
//! quarantine; with `inference_socket`, it sends what the application reports there.

use std::{path::Path, sync::Arc, time::Duration};

use edgeward_core::civil::unix_now;
use edgeward_se::SecureElement;
use reqwest::Method;
use tokio::sync::watch;

use crate::{
    commands::{self, state::CommandState, verify, After, Context},
    enroll::{self, Identity},
    files,
    inference::{self, supervisor::Worker},
    metrics,
    net::DeviceClient,
    queue::Queue,
    retire::{self, Retired},
    status::{self, SharedStatus},
    update, AgentConfig, AgentError,
};

/// Largest stored result in the outbox.
const MAX_OUTBOX_ENTRY: u64 = 256 * 1024;

/// Why the online loop ended.
enum Exit {
    /// Shutdown.
    Shutdown,
    /// The device was wiped.
    Wiped,
    /// The identity changed (re-provisioned): reconnect.
    Reidentified,
}

/// Largest enrollment token file read.
const MAX_TOKEN_FILE: u64 = 1024;

/// Runs the agent until `shutdown` turns true.
pub async fn run(config: AgentConfig, shutdown: watch::Receiver<bool>) -> Result<(), AgentError> {
    files::ensure_private_dir(&config.state_dir)?;
    let quarantined = CommandState::load(&config.state_dir)?.quarantined;
    let element: Arc<dyn SecureElement> = edgeward_se::open(&config.element)?.into();
    let status = SharedStatus::default();
    status::update(&status, |s| s.state = "starting".into());
    let listener = status::bind(&config.status_socket())?;
    let server = tokio::spawn(status::serve(listener, status.clone(), shutdown.clone()));
    let queue = Queue::open(&config.state_dir.join("queue"), config.queue_max_events)?;
    let inference_metrics = inference::metrics::SharedLatest::default();
    let metrics_server = match &config.inference_socket {
        Some(path) => {
            let listener = inference::metrics::bind(path)?;
            Some(tokio::spawn(inference::metrics::serve(
                listener,
                inference_metrics.clone(),
                shutdown.clone(),
            )))
        }
        None => None,
    };
    let (len, dropped) = (queue.len(), queue.dropped());
    status::update(&status, |s| {
        s.queue_len = len;
        s.queue_dropped = dropped;
    });
    let mut agent = Agent {
        config,
        element,
        status,
        shutdown,
        cpu: None,
        queue,
        quarantine: watch::channel(quarantined).0,
        worker: None,
        worker_error: None,
        inference_metrics,
    };
    let result = agent.main().await;
    agent.worker = None;
    server.abort();
    if let Some(m) = metrics_server {
        m.abort();
    }
    if let Some(path) = &agent.config.inference_socket {
        let _ = files::remove(path);
    }
    let _ = files::remove(&agent.config.status_socket());
    tracing::info!("stopped");
    result
}

struct Agent {
    config: AgentConfig,
    element: Arc<dyn SecureElement>,
    status: SharedStatus,
    shutdown: watch::Receiver<bool>,
    cpu: Option<metrics::CpuTimes>,
    queue: Queue,
    /// True while quarantined (persisted in the command state).
    quarantine: watch::Sender<bool>,
    /// The inference worker, while it runs.
    worker: Option<Worker>,
    /// Why the worker last failed to start (reported once per distinct reason).
    worker_error: Option<String>,
    /// The application's latest report on the metrics socket.
    inference_metrics: inference::metrics::SharedLatest,
}

impl Agent {
    fn stopping(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// Sleeps `d` or until shutdown; true when shutting down.
    async fn pause(&mut self, d: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(d) => self.stopping(),
            _ = self.shutdown.changed() => true,
        }
    }

    fn failed(&self, e: &AgentError) {
        tracing::warn!(error = %e, "attempt failed; retrying");
        let reachable = !matches!(e, AgentError::Unreachable(_));
        status::update(&self.status, |s| {
            s.server_reachable = reachable;
            s.last_error = Some(e.to_string());
        });
    }

    fn quarantined(&self) -> bool {
        *self.quarantine.borrow()
    }

    fn running_state(&self) -> &'static str {
        if self.quarantined() {
            "quarantined"
        } else {
            "running"
        }
    }

    async fn main(&mut self) -> Result<(), AgentError> {
        while !self.stopping() {
            let Some(identity) = self.identity().await? else {
                return Ok(());
            };
            tracing::info!(device = %identity.stored.device_id, slot = %identity.stored.key_slot, "enrolled");
            self.retire_old_key(&identity.stored.key_slot);
            let state = self.running_state();
            status::update(&self.status, |s| {
                s.state = state.into();
                s.device_id = Some(identity.stored.device_id.clone());
                s.key_slot = Some(identity.stored.key_slot.clone());
            });
            let client = self.client(&identity)?;
            self.tend_worker(&identity.stored.key_slot).await;
            match self.online(&identity, &client).await? {
                Exit::Shutdown => return Ok(()),
                Exit::Wiped => {
                    // The keys are gone; so is the plaintext (killing the worker).
                    self.worker = None;
                    status::update(&self.status, |s| {
                        s.state = "wiped".into();
                        s.key_slot = None;
                    })
                }
                Exit::Reidentified => {}
            }
        }
        Ok(())
    }

    /// Destroys the key a re-provisioning left to retire (after a crash between storing the
    /// new identity and destroying the old key); a failure is logged and retried next start.
    fn retire_old_key(&self, current_slot: &str) {
        match retire::finish(&self.config.state_dir, self.element.as_ref(), current_slot) {
            Ok(Retired::Destroyed(slot)) => tracing::info!(%slot, "destroyed the retired key"),
            Ok(Retired::Kept(slot)) => {
                tracing::warn!(%slot, "re-provisioning did not complete; the key stays")
            }
            Ok(Retired::Nothing) => {}
            Err(e) => tracing::error!(error = %e, "the retired key was not destroyed"),
        }
    }

    fn client(&self, identity: &Identity) -> Result<DeviceClient, AgentError> {
        let client = DeviceClient::new(
            &self.config.server,
            &self.config.server_ca,
            Arc::clone(&self.element),
            &identity.stored.key_slot,
            vec![identity.certificate_der.clone()],
            &identity.stored.device_id,
            identity.secret.clone(),
        )?;
        match (&self.config.transport, &self.config.mqtt_broker) {
            (crate::config::TransportKind::Mqtt, Some(broker)) => {
                let tls = crate::net::device_tls(
                    &self.config.server_ca,
                    Arc::clone(&self.element),
                    &identity.stored.key_slot,
                    vec![identity.certificate_der.clone()],
                )?;
                client.with_mqtt(broker, tls, self.config.mqtt_version)
            }
            _ => Ok(client),
        }
    }

    /// The stored identity, or a new one from enrollment; `None` on shutdown.
    async fn identity(&mut self) -> Result<Option<Identity>, AgentError> {
        if let Some(identity) = enroll::load(&self.config.state_dir, self.element.as_ref())? {
            return Ok(Some(identity));
        }
        let waiting = if commands::wipe::is_wiped(&self.config.state_dir) {
            "wiped"
        } else {
            "awaiting_enrollment"
        };
        status::update(&self.status, |s| s.state = waiting.into());
        let mut request: Option<enroll::Request> = None;
        loop {
            if let Some(token) = self.token()? {
                let req = match &request {
                    Some(r) => r.clone(),
                    None => request.insert(enroll::Request::new(&self.element)?).clone(),
                };
                match enroll::enroll(
                    &self.config.enroll_server,
                    &self.config.server_ca,
                    &self.config.state_dir,
                    &self.element,
                    &req,
                    &token,
                )
                .await
                {
                    Ok(identity) => {
                        if let Some(path) = &self.config.enrollment_token_file {
                            files::remove(path)?;
                        }
                        commands::wipe::provisioned(&self.config.state_dir)?;
                        status::update(&self.status, |s| {
                            s.server_reachable = true;
                            s.last_error = None;
                        });
                        return Ok(Some(identity));
                    }
                    Err(e) => self.failed(&e),
                }
            }
            if self.pause(self.config.command_interval()).await {
                return Ok(None);
            }
        }
    }

    fn token(&self) -> Result<Option<String>, AgentError> {
        let Some(path) = &self.config.enrollment_token_file else {
            return Ok(None);
        };
        Ok(files::read_bounded(path, MAX_TOKEN_FILE)?
            .map(|b| String::from_utf8_lossy(&b).trim().to_string())
            .filter(|t| !t.is_empty()))
    }

    /// Telemetry and command polling until shutdown, a wipe or a new identity. A refused
    /// or failed delivery never keeps the command poll of the same tick from running.
    async fn online(
        &mut self,
        identity: &Identity,
        client: &DeviceClient,
    ) -> Result<Exit, AgentError> {
        let mut telemetry = tokio::time::interval(self.config.telemetry_interval());
        let mut commands = tokio::time::interval(self.config.command_interval());
        // Without an [update] section the update tick never comes.
        let update_interval = self
            .config
            .update
            .as_ref()
            .map_or(Duration::from_secs(86_400 * 365), |u| u.check_interval());
        let mut updates = tokio::time::interval(update_interval);
        for t in [&mut telemetry, &mut commands, &mut updates] {
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        }
        loop {
            tokio::select! {
                _ = telemetry.tick() => {
                    self.tend_worker(&identity.stored.key_slot).await;
                    if let Err(e) = self.send_sample(client).await {
                        self.failed(&e);
                    }
                }
                _ = commands.tick() => {
                    if let Err(e) = self.deliver(client).await {
                        self.failed(&e);
                    }
                    let polled = self.poll(identity, client).await;
                    self.sync_quarantine();
                    match polled {
                        Ok(Some(exit)) => return Ok(exit),
                        Ok(None) => {}
                        Err(e) => self.failed(&e),
                    }
                }
                _ = updates.tick(), if self.config.update.is_some() => {
                    if let Err(e) = self.update(identity, client).await {
                        self.failed(&e);
                    }
                }
                _ = self.shutdown.changed() => return Ok(Exit::Shutdown),
            }
        }
    }

    /// One update pass (the first, at start, decides a trial left by the last run) with
    /// what the server offers this device, then delivers the update reports.
    async fn update(
        &mut self,
        identity: &Identity,
        client: &DeviceClient,
    ) -> Result<(), AgentError> {
        let Some(section) = self.config.update.clone() else {
            return Ok(());
        };
        let source = update::Source::server(
            &section,
            &self.config.server_ca,
            Arc::clone(&self.element),
            identity,
            client,
        )
        .await?;
        let state_dir = self.config.state_dir.clone();
        let element = Arc::clone(&self.element);
        let device_id = client.device_id().to_string();
        let job = section.clone();
        let results = tokio::task::spawn_blocking(move || {
            update::run(
                &job,
                &state_dir,
                &device_id,
                element.as_ref(),
                update::Pass::Install,
                &source,
            )
        })
        .await
        .map_err(|e| AgentError::Protocol(format!("update pass: {e}")))??;
        for r in &results {
            tracing::info!(component = %r.name, status = %r.status, version = ?r.version, reason = ?r.reason, error = ?r.error, "update");
        }
        update::deliver_reports(
            &section,
            &self.config.state_dir,
            self.element.as_ref(),
            client,
        )
        .await?;
        Ok(())
    }

    /// Starts the inference worker when it is configured and not running (it may have
    /// exited), and keeps its quarantine state in step with the agent's.
    async fn tend_worker(&mut self, device_slot: &str) {
        let Some(config) = self.config.inference.clone() else {
            return;
        };
        if let Some(w) = &mut self.worker {
            if w.running() {
                self.sync_quarantine();
                return;
            }
            let status = w.wait().ok();
            tracing::warn!(?status, "the inference worker exited; restarting it");
            self.worker = None;
        }
        let element = Arc::clone(&self.element);
        let slot = device_slot.to_string();
        let quarantined = self.quarantined();
        let started = tokio::task::spawn_blocking(move || {
            Worker::start(&config, element.as_ref(), &slot, quarantined, None)
        })
        .await
        .map_err(|e| AgentError::Protocol(format!("starting the inference worker: {e}")))
        .and_then(|r| r);
        match started {
            Ok(w) => {
                self.worker = Some(w);
                self.worker_error = None;
            }
            Err(e) => {
                let reason = e.to_string();
                tracing::warn!(error = %reason, "the inference worker did not start");
                if self.worker_error.as_deref() != Some(reason.as_str()) {
                    let event = serde_json::json!({
                        "type": "security", "event": "inference_worker_failed",
                        "at": unix_now(), "reason": reason,
                    });
                    if let Err(e) = self.queue_event(&event) {
                        self.failed(&e);
                    }
                    self.worker_error = Some(reason);
                }
            }
        }
    }

    /// Tells the worker when the agent's quarantine state changed.
    fn sync_quarantine(&mut self) {
        let on = self.quarantined();
        if let Some(w) = &mut self.worker {
            if w.quarantined != on {
                if let Err(e) = w.set_quarantined(on) {
                    tracing::warn!(error = %e, "the inference worker did not take the quarantine; stopping it");
                    self.worker = None;
                }
            }
        }
    }

    fn device_record(&mut self) -> serde_json::Value {
        let sample = metrics::sample(Path::new("/"), &mut self.cpu);
        let mut record = serde_json::json!({
            "type": "device",
            "at": unix_now(),
            "metrics": sample,
        });
        let worker = self
            .worker
            .as_ref()
            .map(|w| (&w.model_sha256, w.quarantined));
        if let Some((metrics, inference)) =
            inference::metrics::telemetry(&self.inference_metrics, worker)
        {
            if let (Some(m), serde_json::Value::Object(extra)) =
                (record["metrics"].as_object_mut(), metrics)
            {
                m.extend(extra);
            }
            record["inference"] = inference;
        }
        if let Some(l) = self.config.location {
            record["location"] = serde_json::json!({
                "latitude": l.latitude, "longitude": l.longitude, "source": "configured"
            });
        }
        record
    }

    /// Queues an event (durably) and shows the queue's size.
    fn queue_event(&mut self, event: &serde_json::Value) -> Result<(), AgentError> {
        self.queue.push(event)?;
        if self.queue.unreported_drops() > 0 {
            let dropped = self.queue.dropped();
            self.queue.push(&serde_json::json!({
                "type": "queue", "at": unix_now(), "dropped_total": dropped,
            }))?;
            self.queue.drops_reported()?;
            tracing::warn!(
                dropped,
                "the telemetry queue reached its bound; oldest events dropped"
            );
        }
        let (len, dropped) = (self.queue.len(), self.queue.dropped());
        status::update(&self.status, |s| {
            s.queue_len = len;
            s.queue_dropped = dropped;
        });
        Ok(())
    }

    /// Samples the device into the queue, then delivers what is queued.
    async fn send_sample(&mut self, client: &DeviceClient) -> Result<(), AgentError> {
        let record = self.device_record();
        self.queue_event(&record)?;
        self.deliver(client).await
    }

    /// Delivers the queue, unless quarantined (then it stays queued, as evidence).
    async fn deliver(&mut self, client: &DeviceClient) -> Result<(), AgentError> {
        if self.quarantined() {
            return Ok(());
        }
        self.flush(client).await
    }

    /// Delivers queued events in order, batch by batch, recording each acknowledgement
    /// before sending the next batch.
    async fn flush(&mut self, client: &DeviceClient) -> Result<(), AgentError> {
        #[derive(serde::Deserialize)]
        struct Ack {
            acked_through: u64,
        }
        while let Some(batch) = self.queue.batch(self.config.batch_max) {
            let answer = client
                .call(Method::POST, "/v1/device/telemetry", batch.body)
                .await?;
            let ack: Ack = serde_json::from_slice(&answer)
                .map_err(|e| AgentError::Protocol(format!("telemetry answer: {e}")))?;
            if ack.acked_through < batch.first || ack.acked_through > batch.last {
                return Err(AgentError::Protocol(format!(
                    "the server acknowledged up to {} for events {}..={}",
                    ack.acked_through, batch.first, batch.last
                )));
            }
            let sent = self.queue.ack(ack.acked_through)?;
            let len = self.queue.len();
            status::update(&self.status, |s| {
                s.telemetry_sent += sent;
                s.queue_len = len;
                s.server_reachable = true;
                s.last_error = None;
            });
        }
        Ok(())
    }

    /// Delivers results left in the outbox, polls for commands, verifies each and runs the
    /// genuine ones in order; `Some` when the agent must leave the online loop.
    async fn poll(
        &mut self,
        identity: &Identity,
        client: &DeviceClient,
    ) -> Result<Option<Exit>, AgentError> {
        self.send_outbox(client).await?;
        let body = client
            .call(Method::GET, "/v1/device/commands", Vec::new())
            .await?;
        let delivered = edgeward_proto::command::parse_delivery(&body)
            .map_err(|e| AgentError::Protocol(e.0))?;
        status::update(&self.status, |s| s.server_reachable = true);
        let key = verify::parse_command_key(&identity.stored.command_key)?;
        let device = identity.stored.device_id.as_str();
        for d in delivered {
            let mut state = CommandState::load(&self.config.state_dir)?;
            let floor = i64::try_from(self.element.time_floor()?).unwrap_or(i64::MAX);
            let now = commands::now().max(floor);
            let c = match verify::verify(
                &key,
                &d,
                device,
                state.last_id,
                now,
                self.config.command_window_secs,
            ) {
                Ok(c) => c,
                Err(refusal) => {
                    tracing::warn!(id = d.id, %refusal, "command refused; nothing runs");
                    self.queue_event(&serde_json::json!({
                        "type": "security", "event": "command_refused", "at": unix_now(),
                        "command": d.id, "reason": refusal.to_string(),
                    }))?;
                    status::update(&self.status, |s| {
                        s.commands_refused += 1;
                        s.last_error = Some(refusal.to_string());
                    });
                    continue;
                }
            };
            // Recorded before it runs: a command runs at most once, even across a crash.
            state.last_id = c.id;
            state.save(&self.config.state_dir)?;
            tracing::info!(id = c.id, kind = %c.kind, "running command");
            let executed = {
                let ctx = Context {
                    config: &self.config,
                    element: &self.element,
                    identity,
                    client,
                    queue: &self.queue,
                    quarantine: &self.quarantine,
                };
                commands::execute(&ctx, &c).await?
            };
            // Inference stops (or resumes) before the result says the device is quarantined.
            self.sync_quarantine();
            let state_name = match executed.after {
                After::Wiped => "wiped",
                _ => self.running_state(),
            };
            status::update(&self.status, |s| {
                s.last_command_id = c.id;
                s.commands_executed += 1;
                s.state = state_name.into();
            });
            let fresh = match &executed.new_identity {
                Some(i) => Some(self.client(i)?),
                None => None,
            };
            self.post_result(fresh.as_ref().unwrap_or(client), c.id, &executed.result)
                .await?;
            match executed.after {
                After::Continue => {}
                After::Wiped => return Ok(Some(Exit::Wiped)),
                After::Reidentified => return Ok(Some(Exit::Reidentified)),
            }
        }
        Ok(None)
    }

    fn outbox(&self) -> std::path::PathBuf {
        self.config.state_dir.join("outbox")
    }

    /// Posts a signed result; if the server cannot be reached it waits in the outbox. A
    /// refusal (4xx) is final: the server will not take that result, now or later.
    async fn post_result(
        &mut self,
        client: &DeviceClient,
        id: i64,
        signed: &edgeward_proto::command::Signed,
    ) -> Result<(), AgentError> {
        let body = serde_json::to_vec(signed).map_err(|e| AgentError::Protocol(e.to_string()))?;
        let path = format!("/v1/device/commands/{id}/result");
        match client.call(Method::POST, &path, body.clone()).await {
            Ok(_) => Ok(()),
            Err(AgentError::Refused { status, .. }) if (400..500).contains(&status) => {
                tracing::warn!(id, status, "the server refused the result of command");
                Ok(())
            }
            Err(e) => {
                self.failed(&e);
                files::ensure_private_dir(&self.outbox())?;
                files::write_atomic(&self.outbox().join(format!("{id}.json")), &body, false)
            }
        }
    }

    /// Retries the results waiting in the outbox, oldest command first.
    async fn send_outbox(&mut self, client: &DeviceClient) -> Result<(), AgentError> {
        let Ok(entries) = std::fs::read_dir(self.outbox()) else {
            return Ok(());
        };
        let mut ids: Vec<i64> = entries
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.strip_suffix(".json")?.parse().ok())
            .collect();
        ids.sort_unstable();
        for id in ids {
            let file = self.outbox().join(format!("{id}.json"));
            let Some(body) = files::read_bounded(&file, MAX_OUTBOX_ENTRY)? else {
                continue;
            };
            let path = format!("/v1/device/commands/{id}/result");
            match client.call(Method::POST, &path, body).await {
                Ok(_) => files::remove(&file)?,
                Err(AgentError::Refused { status, .. }) if (400..500).contains(&status) => {
                    tracing::warn!(id, status, "the server refused a stored result; dropped");
                    files::remove(&file)?;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}
