//! The agent's MQTT transport (`transport = "mqtt"`): telemetry batches, command polls and
//! command results go through the broker instead of the device API, over TLS with the same
//! client certificate (its key signing inside the secure element). Each request is
//! published (QoS 1) on the device's own topic and answered by the server on
//! `devices/<id>/acks` (or, for a poll, `devices/<id>/commands`), with what the device API
//! would have answered ([`edgeward_proto::mqtt`]).
//!
//! The queue's delivery guarantee does not rest on the broker: a batch leaves the on-disk
//! queue only when the server's reply says it is stored (`acked_through`), exactly as over
//! HTTPS. A PUBACK only says the broker has it, and the broker keeps nothing for a server
//! that is away; a batch whose reply does not come is sent again, and the server's
//! sequence-number dedup answers a batch it already stored without storing it twice.
//!
//! The agent speaks MQTT 3.1.1 or MQTT 5 (`mqtt_version`); [`protocol`] hides which.

pub mod protocol;

use std::time::Duration;

use edgeward_proto::mqtt::{self as topics, Up};
use tokio::sync::{mpsc, watch, Mutex};

pub use self::protocol::MqttVersion;
use self::protocol::{Client, EventLoop, Happened, Options};
use crate::AgentError;

/// How long the agent waits for the server's reply to one request.
const REPLY_TIMEOUT: Duration = Duration::from_secs(15);
/// Wait before connecting again after the broker was lost.
const RECONNECT: Duration = Duration::from_secs(1);

/// A connection to the broker for one enrolled device.
pub struct MqttLink {
    client: Client,
    device_id: String,
    /// Messages on the device's reply topics, in arrival order.
    incoming: Mutex<mpsc::Receiver<(String, Vec<u8>)>>,
    /// True while connected and subscribed to the reply topics (a request sent before
    /// would have its reply delivered to nobody).
    ready: watch::Receiver<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for MqttLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttLink")
            .field("device_id", &self.device_id)
            .finish_non_exhaustive()
    }
}

impl Drop for MqttLink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The request a device API call is over MQTT, if it is carried there.
pub fn route(method: &reqwest::Method, path: &str) -> Option<Up> {
    match (method.as_str(), path) {
        ("POST", "/v1/device/telemetry") => Some(Up::Telemetry),
        ("GET", "/v1/device/commands") => Some(Up::Poll),
        ("POST", p) => p
            .strip_prefix("/v1/device/commands/")?
            .strip_suffix("/result")?
            .parse()
            .ok()
            .filter(|id| *id > 0)
            .map(Up::Result),
        _ => None,
    }
}

impl MqttLink {
    /// Connects (and keeps connecting) to `broker` as `device_id` with `tls`, the device's
    /// mutual-TLS configuration, speaking MQTT `version`.
    pub fn connect(
        broker: &str,
        tls: rustls::ClientConfig,
        device_id: &str,
        version: MqttVersion,
    ) -> Result<Self, AgentError> {
        let (host, port) =
            topics::host_port(broker).map_err(|e| AgentError::Config(format!("mqtt_{e}")))?;
        let (client, eventloop) = protocol::connect(
            version,
            Options {
                client_id: device_id,
                host: &host,
                port,
                tls,
                max_packet: topics::MAX_PAYLOAD + 4096,
                keep_alive: Duration::from_secs(30),
                capacity: 16,
            },
        );
        let (tx, rx) = mpsc::channel(64);
        let (ready_tx, ready) = watch::channel(false);
        let task = tokio::spawn(drive(
            eventloop,
            client.clone(),
            device_id.to_string(),
            tx,
            ready_tx,
        ));
        Ok(MqttLink {
            client,
            device_id: device_id.to_string(),
            incoming: Mutex::new(rx),
            ready,
            task,
        })
    }

    /// Sends `up` with `body` and waits for the server's answer: its body (the device API's
    /// answer to the same call) or its refusal.
    pub async fn call(&self, up: Up, body: Vec<u8>) -> Result<Vec<u8>, AgentError> {
        let what = format!("MQTT {}", up.name());
        let mut incoming = self.incoming.lock().await;
        let deadline = tokio::time::Instant::now() + REPLY_TIMEOUT;
        let mut ready = self.ready.clone();
        tokio::time::timeout_at(deadline, ready.wait_for(|r| *r))
            .await
            .map_err(|_| AgentError::Unreachable(format!("{what}: not connected to the broker")))?
            .map_err(|_| AgentError::Unreachable(format!("{what}: connection closed")))?;
        // Replies to earlier requests that timed out are stale now.
        while incoming.try_recv().is_ok() {}
        self.client
            .publish(topics::request_topic(&self.device_id, up), body)
            .await
            .map_err(|e| AgentError::Unreachable(format!("{what}: {e}")))?;
        let commands = topics::commands_topic(&self.device_id);
        loop {
            let (topic, payload) = tokio::time::timeout_at(deadline, incoming.recv())
                .await
                .map_err(|_| {
                    AgentError::Unreachable(format!(
                        "{what}: no answer within {} s",
                        REPLY_TIMEOUT.as_secs()
                    ))
                })?
                .ok_or_else(|| AgentError::Unreachable(format!("{what}: connection closed")))?;
            if topic == commands {
                if up == Up::Poll {
                    return Ok(payload);
                }
                continue;
            }
            let reply = topics::parse_reply(&payload).map_err(AgentError::Protocol)?;
            if reply.request != up.name() {
                continue;
            }
            if reply.status == 200 {
                return serde_json::to_vec(&reply.body.unwrap_or_default())
                    .map_err(|e| AgentError::Protocol(e.to_string()));
            }
            return Err(AgentError::Refused {
                what,
                status: reply.status,
                code: reply.error.unwrap_or_else(|| "unknown".into()),
                message: reply.message.unwrap_or_default(),
            });
        }
    }
}

/// Drives the connection: subscribes to the device's reply topics on every connection and
/// passes what arrives there on; connects again after a loss (a revoked certificate is then
/// refused at the handshake, over and over, which is logged).
async fn drive(
    mut eventloop: EventLoop,
    client: Client,
    device_id: String,
    tx: mpsc::Sender<(String, Vec<u8>)>,
    ready: watch::Sender<bool>,
) {
    let subscriptions = [
        topics::commands_topic(&device_id),
        topics::acks_topic(&device_id),
    ];
    loop {
        match eventloop.next().await {
            Happened::Connected => {
                tracing::info!("connected to the MQTT broker");
                if let Err(e) = client.subscribe(&subscriptions) {
                    tracing::warn!(%e, "subscribing at the broker");
                }
            }
            Happened::Subscribed(granted) => {
                if !granted {
                    tracing::warn!("the broker refused the reply topics");
                }
                ready.send_replace(granted);
            }
            Happened::Message { topic, payload } => {
                if payload.len() <= topics::MAX_PAYLOAD && subscriptions.contains(&topic) {
                    // A full channel means nobody is waiting: the reply is stale.
                    let _ = tx.try_send((topic, payload));
                }
            }
            Happened::Other => {}
            Happened::Lost(e) => {
                ready.send_replace(false);
                tracing::warn!(%e, "MQTT broker connection lost; connecting again");
                tokio::time::sleep(RECONNECT).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_api_calls_map_to_mqtt_requests() {
        use reqwest::Method;
        assert_eq!(
            route(&Method::POST, "/v1/device/telemetry"),
            Some(Up::Telemetry)
        );
        assert_eq!(route(&Method::GET, "/v1/device/commands"), Some(Up::Poll));
        assert_eq!(
            route(&Method::POST, "/v1/device/commands/12/result"),
            Some(Up::Result(12))
        );
        assert_eq!(route(&Method::POST, "/v1/device/commands/0/result"), None);
        assert_eq!(route(&Method::POST, "/v1/device/forensics"), None);
    }
}
