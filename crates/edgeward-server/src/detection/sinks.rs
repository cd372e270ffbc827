//! Where alerts and incident notices go: the log always, a webhook (JSON signed with
//! HMAC-SHA256, retried with exponential backoff) and an MQTT topic when configured. Sending
//! never blocks detection: each delivery runs on its own task, and a sink that is down costs
//! retries, not telemetry.
//!
//! The webhook's signature: `X-Edgeward-Signature: sha256=<hex HMAC-SHA256(key, T "." body)>`
//! with `X-Edgeward-Timestamp: T` (Unix seconds), so a receiver can refuse replays.

use std::{sync::Arc, time::Duration};

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use zeroize::Zeroizing;

use super::config::{MqttConfig, WebhookConfig};

/// Largest webhook key read.
const MAX_SECRET: u64 = 4096;

/// First retry delay; doubled per attempt, at most [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// The configured sinks.
pub struct Sinks {
    webhook: Option<Arc<Webhook>>,
    mqtt: Option<(rumqttc::AsyncClient, String)>,
}

struct Webhook {
    url: String,
    key: Zeroizing<Vec<u8>>,
    attempts: u32,
    client: reqwest::Client,
}

impl Sinks {
    /// Opens the sinks; must run on the server's runtime (the MQTT client's event loop is a
    /// task of it).
    pub fn open(
        webhook: Option<&WebhookConfig>,
        mqtt: Option<&MqttConfig>,
    ) -> Result<Sinks, String> {
        let webhook = webhook.map(open_webhook).transpose()?.map(Arc::new);
        let mqtt = mqtt.map(|m| {
            let mut options = rumqttc::MqttOptions::new(&m.client_id, &m.host, m.port);
            options.set_keep_alive(Duration::from_secs(30));
            let (client, mut events) = rumqttc::AsyncClient::new(options, 256);
            tokio::spawn(async move {
                // The event loop reconnects by itself; errors are logged and retried after a
                // pause so a broker that is down does not spin.
                loop {
                    if let Err(e) = events.poll().await {
                        tracing::warn!(%e, "MQTT alert sink");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            });
            (client, m.topic.trim_end_matches('/').to_string())
        });
        Ok(Sinks { webhook, mqtt })
    }

    /// Sends `message` (an alert or incident notice about `device`) to every sink.
    pub fn send(&self, device: &str, message: &Value) {
        tracing::warn!(device, message = %message, "edgeward alert");
        let body = message.to_string();
        if let Some(webhook) = &self.webhook {
            let (webhook, body) = (webhook.clone(), body.clone());
            tokio::spawn(async move { webhook.deliver(body).await });
        }
        if let Some((client, topic)) = &self.mqtt {
            let (client, topic) = (client.clone(), format!("{topic}/{device}"));
            tokio::spawn(async move {
                if let Err(e) = client
                    .publish(topic, rumqttc::QoS::AtLeastOnce, false, body.into_bytes())
                    .await
                {
                    tracing::warn!(%e, "MQTT alert sink: publish");
                }
            });
        }
    }
}

fn open_webhook(c: &WebhookConfig) -> Result<Webhook, String> {
    let path = c.secret_file.display();
    let meta = std::fs::metadata(&c.secret_file).map_err(|e| format!("{path}: {e}"))?;
    if meta.len() > MAX_SECRET {
        return Err(format!(
            "{path}: a webhook key is at most {MAX_SECRET} bytes"
        ));
    }
    let mut key =
        Zeroizing::new(std::fs::read(&c.secret_file).map_err(|e| format!("{path}: {e}"))?);
    while key.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        key.pop();
    }
    if key.len() < 16 {
        return Err(format!("{path}: a webhook key needs at least 16 bytes"));
    }
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .timeout(Duration::from_secs(10));
    if let Some(ca) = &c.ca_file {
        let pem = std::fs::read(ca).map_err(|e| format!("{}: {e}", ca.display()))?;
        let cert =
            reqwest::Certificate::from_pem(&pem).map_err(|e| format!("{}: {e}", ca.display()))?;
        builder = builder.add_root_certificate(cert);
    }
    let client = builder
        .build()
        .map_err(|e| format!("webhook client: {e}"))?;
    if !(c.url.starts_with("http://") || c.url.starts_with("https://")) {
        return Err(format!("webhook url {:?} is not http(s)", c.url));
    }
    Ok(Webhook {
        url: c.url.clone(),
        key,
        attempts: c.attempts.clamp(1, 20),
        client,
    })
}

/// The signature header's value for `body` sent at `timestamp`.
pub fn signature(key: &[u8], timestamp: u64, body: &[u8]) -> String {
    // HMAC takes keys of any length.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts every key length"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

impl Webhook {
    async fn deliver(&self, body: String) {
        let mut backoff = FIRST_BACKOFF;
        for attempt in 1..=self.attempts {
            let timestamp = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            let sent = self
                .client
                .post(&self.url)
                .header("content-type", "application/json")
                .header("x-edgeward-timestamp", timestamp.to_string())
                .header(
                    "x-edgeward-signature",
                    signature(&self.key, timestamp, body.as_bytes()),
                )
                .body(body.clone())
                .send()
                .await;
            let retry = match sent {
                Ok(r) if r.status().is_success() => return,
                Ok(r) if r.status().is_server_error() || r.status().as_u16() == 429 => {
                    format!("answered {}", r.status())
                }
                Ok(r) => {
                    tracing::error!(status = %r.status(), "webhook refused an alert; not retried");
                    return;
                }
                Err(e) => e.to_string(),
            };
            tracing::warn!(attempt, attempts = self.attempts, reason = %retry, "webhook delivery failed");
            if attempt < self.attempts {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
        tracing::error!(
            "webhook: an alert was not delivered after {} attempts",
            self.attempts
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The signature is HMAC-SHA256 over "timestamp.body" (RFC 4231 test case 2's key and
    /// the same construction computed by openssl: echo -n '1700000000.{}' | openssl dgst
    /// -sha256 -hmac Jefe).
    #[test]
    fn signature_is_hmac_sha256_over_timestamp_and_body() {
        let s = signature(b"Jefe", 1_700_000_000, b"{}");
        let out = std::process::Command::new("openssl")
            .args(["dgst", "-sha256", "-hmac", "Jefe", "-r"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin
                    .take()
                    .map(|mut i| i.write_all(b"1700000000.{}"))
                    .transpose()?;
                c.wait_with_output()
            })
            .expect("openssl");
        let hex = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            s,
            format!("sha256={}", hex.split_whitespace().next().expect("digest"))
        );
    }
}
