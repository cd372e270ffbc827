//! Telemetry and commands through an MQTT broker (Mosquitto on one machine, an EMQX cluster
//! beyond; see docs/broker.md). The broker authenticates each device by its client
//! certificate (mutual TLS against the device CA and its CRL, the certificate's identity as
//! the MQTT user name) and its ACL lets a device publish only under `devices/<its id>/`.
//! The server is one more client of the broker, with a certificate of its own
//! ([`credentials`]): it reads every device's requests ([`edgeward_proto::mqtt`]), passes
//! each through the same device gate as HTTPS ([`crate::device_gate`]) and into the same
//! telemetry entry point ([`crate::telemetry::submit`]), and answers on the device's
//! `acks` or `commands` topic. Revocations close the device's live session ([`kick`]).
//!
//! Requests are handled by a fixed set of workers, each device always by the same one, so a
//! device's batches are queued for the group commit in the order it sent them (the
//! sequence-number dedup relies on that). A worker does not wait for one batch's commit
//! before queuing the next: it answers them in order as their commits complete, so one
//! device's batches, and different devices' batches, share commits.

pub mod broker_config;
pub mod credentials;
pub mod kick;

use std::{
    future::Future,
    hash::{Hash, Hasher},
    path::PathBuf,
    pin::Pin,
    sync::Arc,
    time::Duration,
};

use axum::body::Bytes;
use edgeward_proto::mqtt::{self as topics, Reply, Up};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, Publish, QoS, TlsConfiguration, Transport};
use serde::Deserialize;
use serde_json::Value;
use tokio::{sync::mpsc, sync::watch, task::JoinHandle};

use crate::{
    app::{ApiError, Shared},
    device_gate::{self, Call},
};

/// The `[mqtt]` table: the broker the server consumes device traffic through.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    /// The broker's TLS listener, `HOST:PORT`; HOST must be a name or address on the
    /// broker's certificate (see `edgeward-server broker-config`).
    pub broker: String,
    /// The server's MQTT client id (each replica needs its own).
    #[serde(default = "defaults::client_id")]
    pub client_id: String,
    /// Workers handling requests (each device always by the same one).
    #[serde(default = "defaults::workers")]
    pub workers: usize,
    /// Mosquitto's pid file: when set, the broker is sent SIGHUP after each revocation so
    /// that it reloads the device CRL and refuses the revoked certificate's next handshake
    /// (only where the server may signal the broker; otherwise reload it from a path unit,
    /// see docs/broker.md).
    #[serde(default)]
    pub reload_pid_file: Option<PathBuf>,
}

mod defaults {
    pub(super) fn client_id() -> String {
        "edgeward-server".into()
    }
    pub(super) fn workers() -> usize {
        32
    }
}

/// Requests one worker may have waiting.
const WORKER_QUEUE: usize = 256;
/// Requests one worker may have started and not yet answered (waiting for their commit).
const PIPELINE: usize = 256;
/// Wait before connecting again after the broker was lost.
const RECONNECT: Duration = Duration::from_millis(500);

/// The topics the server subscribes to.
pub const SUBSCRIPTIONS: [&str; 3] = [
    "devices/+/telemetry",
    "devices/+/poll",
    "devices/+/result/+",
];

impl MqttConfig {
    /// The broker's host and port.
    pub fn host_port(&self) -> Result<(String, u16), String> {
        topics::host_port(&self.broker).map_err(|e| format!("mqtt.{e}"))
    }
}

/// Connects to the broker (again and again while it is away) and serves device requests
/// until shutdown. Fails at once only on a configuration that can never work.
pub fn start(
    app: Shared,
    config: &MqttConfig,
    shutdown: watch::Receiver<bool>,
) -> Result<Vec<JoinHandle<()>>, String> {
    let (host, port) = config.host_port()?;
    let tls = credentials::client_tls(&app)?;
    let mut options = MqttOptions::new(config.client_id.clone(), host, port);
    options
        .set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(tls)))
        .set_keep_alive(Duration::from_secs(30))
        .set_max_packet_size(topics::MAX_PAYLOAD + 4096, topics::MAX_PAYLOAD + 4096)
        .set_inflight(1024)
        .set_clean_session(true);
    let (client, eventloop) = AsyncClient::new(options, 8192);
    if app.mqtt.set(client.clone()).is_err() {
        return Err("the MQTT client is already running".into());
    }
    let mut tasks = Vec::new();
    let mut senders = Vec::new();
    for _ in 0..config.workers.max(1) {
        let (tx, rx) = mpsc::channel(WORKER_QUEUE);
        senders.push(tx);
        tasks.push(tokio::spawn(worker(app.clone(), client.clone(), rx)));
    }
    tasks.push(tokio::spawn(kick::follow(
        app.clone(),
        client.clone(),
        config.reload_pid_file.clone(),
        shutdown.clone(),
    )));
    tasks.push(tokio::spawn(receive(
        app, client, eventloop, senders, shutdown,
    )));
    Ok(tasks)
}

/// Drives the connection: subscribes on every (re)connection and hands each request to the
/// worker of its device.
async fn receive(
    app: Shared,
    client: AsyncClient,
    mut eventloop: rumqttc::EventLoop,
    workers: Vec<mpsc::Sender<Publish>>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let event = tokio::select! {
            e = eventloop.poll() => e,
            _ = shutdown.changed() => break,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                tracing::info!("connected to the MQTT broker");
                let subscribe = SUBSCRIPTIONS
                    .iter()
                    .map(|t| rumqttc::SubscribeFilter::new(t.to_string(), QoS::AtLeastOnce))
                    .chain(std::iter::once(rumqttc::SubscribeFilter::new(
                        kick::RESPONSE_TOPIC.to_string(),
                        QoS::AtLeastOnce,
                    )));
                if let Err(e) = client.try_subscribe_many(subscribe) {
                    tracing::error!(%e, "subscribing at the broker");
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                if p.topic == kick::RESPONSE_TOPIC {
                    kick::response(&p.payload);
                    continue;
                }
                let index = worker_of(&p.topic, workers.len());
                if workers[index].send(p).await.is_err() {
                    break;
                }
            }
            Ok(_) => {}
            Err(e) => {
                app.metrics
                    .inc("edgeward_mqtt_disconnects_total", String::new());
                tracing::warn!(%e, "MQTT broker connection lost; connecting again");
                tokio::select! {
                    _ = tokio::time::sleep(RECONNECT) => {}
                    _ = shutdown.changed() => break,
                }
            }
        }
    }
    let _ = client.try_disconnect();
}

/// The worker of the device a topic names (by its device segment; the whole topic when it
/// has none, which decoding refuses anyway).
fn worker_of(topic: &str, workers: usize) -> usize {
    let device = topic.split('/').nth(1).unwrap_or(topic);
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    device.hash(&mut hasher);
    (hasher.finish() % workers.max(1) as u64) as usize
}

/// A request under way: its answer once its commit (or handler) is done.
type Answer = Pin<Box<dyn Future<Output = Result<Value, ApiError>> + Send>>;

/// Handles its devices' requests in order, pipelined: each request passes the gate and is
/// queued (a telemetry batch for the group commit) as it arrives, and [`reply_in_order`]
/// answers them in the same order once each is committed, so one device's batches share
/// commits instead of waiting for one commit each.
async fn worker(app: Shared, client: AsyncClient, mut rx: mpsc::Receiver<Publish>) {
    let (answers, queue) = mpsc::channel(PIPELINE);
    let replier = tokio::spawn(reply_in_order(app.clone(), client, queue));
    while let Some(p) = rx.recv().await {
        let request = match topics::decode(&p.topic, &p.payload) {
            Ok(r) => r,
            Err(e) => {
                app.metrics.inc(
                    "edgeward_mqtt_requests_total",
                    "outcome=\"undecodable\"".into(),
                );
                tracing::debug!(%e, "undecodable MQTT request");
                continue;
            }
        };
        let device: Arc<str> = request.device.into();
        let up = request.up;
        let answer = start_request(&app, device.clone(), up, p.payload.clone()).await;
        if answers.send((device, up, answer)).await.is_err() {
            break;
        }
    }
    drop(answers);
    let _ = replier.await;
}

/// Waits for each request's answer in the order the worker started them and publishes it
/// on the device's `acks` or `commands` topic.
async fn reply_in_order(
    app: Shared,
    client: AsyncClient,
    mut queue: mpsc::Receiver<(Arc<str>, Up, Answer)>,
) {
    while let Some((device, up, answer)) = queue.recv().await {
        let answer = answer.await;
        let outcome = if answer.is_ok() { "ok" } else { "refused" };
        app.metrics.inc(
            "edgeward_mqtt_requests_total",
            format!("outcome=\"{outcome}\""),
        );
        let (topic, payload) = match (up, answer) {
            (Up::Poll, Ok(commands)) => (topics::commands_topic(&device), commands.to_string()),
            (_, answer) => (topics::acks_topic(&device), reply(up, answer)),
        };
        // Never waits on the connection: a reply that cannot be queued is dropped, and the
        // device asks again (its batches are numbered, so a resend is not stored twice).
        if client
            .try_publish(topic, QoS::AtLeastOnce, false, payload)
            .is_err()
        {
            app.metrics
                .inc("edgeward_mqtt_replies_dropped_total", String::new());
        }
    }
}

/// The gate, then the request's handler (the same ones the HTTPS device API calls): a
/// telemetry batch is queued for the group commit now, in its device's order, and the
/// answer waits for the commit; other requests run when their answer is awaited.
async fn start_request(app: &Shared, device: Arc<str>, up: Up, payload: Bytes) -> Answer {
    let call = match up {
        Up::Telemetry => Call::Telemetry,
        Up::Poll => Call::Commands,
        Up::Result(_) => Call::CommandResult,
    };
    let limit_key = device_gate::limit_key(&device);
    if let Err(e) =
        device_gate::check(app, &device, &limit_key, call, device_gate::Transport::Mqtt).await
    {
        return Box::pin(std::future::ready(Err(e)));
    }
    let app = app.clone();
    match up {
        Up::Telemetry => match crate::telemetry::submit(&app, device, None, payload).await {
            Ok(submitted) => Box::pin(async move {
                let accepted = submitted.committed(&app).await?;
                let mut answer = serde_json::json!({ "accepted": accepted.records });
                if let Some(through) = accepted.acked_through {
                    answer["acked_through"] = through.into();
                }
                Ok(answer)
            }),
            Err(e) => Box::pin(std::future::ready(Err(e))),
        },
        Up::Poll => {
            Box::pin(async move { crate::device_api::pending_commands(&app, &device).await })
        }
        Up::Result(id) => {
            Box::pin(
                async move { crate::device_api::record_result(&app, &device, id, &payload).await },
            )
        }
    }
}

/// The reply to `up` on the device's `acks` topic.
fn reply(up: Up, answer: Result<Value, ApiError>) -> String {
    let reply = match answer {
        Ok(body) => Reply {
            request: up.name(),
            status: 200,
            body: Some(body),
            error: None,
            message: None,
        },
        Err(e) => Reply {
            request: up.name(),
            status: e.status.as_u16(),
            body: None,
            error: Some(e.code.to_string()),
            message: Some(e.message),
        },
    };
    serde_json::to_string(&reply).unwrap_or_default()
}
