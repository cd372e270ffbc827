//! The replicas' side: each accepted telemetry batch goes to JetStream before the server
//! stores it and acknowledges the device, so a batch the device saw acknowledged is in the
//! stream. A numbered batch carries the message id `<device>/<first>-<last>`: when a device
//! sends it again (its acknowledgement was lost) JetStream drops the copy, and the workers
//! see it once. The refusals the replica's gate sees go the same way ([`REFUSAL_HEADER`]).

use async_nats::{jetstream, HeaderMap};

use super::NatsConfig;

/// The header naming the device.
pub const DEVICE_HEADER: &str = "Edgeward-Device";
/// The header with the time the server received the batch (Unix seconds).
pub const RECEIVED_HEADER: &str = "Edgeward-Received-At";
/// The header with the network address the batch came from, when the transport knows it
/// (the geography and cloned-certificate checks read it).
pub const SOURCE_HEADER: &str = "Edgeward-Source";

/// The header of a refusal event (its kind, as `detection::Refusal::name` spells it): a
/// message carrying it has an empty body and stands for one refusal of the device that the
/// replica's gate or attestation endpoint saw.
pub const REFUSAL_HEADER: &str = "Edgeward-Refusal";

/// A connection to JetStream that publishes telemetry.
pub struct Publisher {
    js: jetstream::Context,
    config: NatsConfig,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("stream", &self.config.stream)
            .finish_non_exhaustive()
    }
}

impl Publisher {
    /// Connects and makes sure the stream exists.
    pub async fn connect(config: &NatsConfig) -> Result<Publisher, String> {
        config.check()?;
        let client = async_nats::connect(&config.url)
            .await
            .map_err(|e| format!("NATS at {}: {e}", config.url))?;
        let js = jetstream::new(client);
        super::ensure_stream(&js, config).await?;
        Ok(Publisher {
            js,
            config: config.clone(),
        })
    }

    /// Publishes one batch of `device` and waits for JetStream to store it.
    pub async fn publish(
        &self,
        device: &str,
        received_at: i64,
        source: Option<std::net::IpAddr>,
        seq: Option<(u64, u64)>,
        batch: axum::body::Bytes,
    ) -> Result<(), String> {
        let mut headers = HeaderMap::new();
        headers.insert(DEVICE_HEADER, device);
        headers.insert(RECEIVED_HEADER, received_at.to_string().as_str());
        if let Some(source) = source {
            headers.insert(SOURCE_HEADER, source.to_string().as_str());
        }
        if let Some((first, last)) = seq {
            headers.insert("Nats-Msg-Id", format!("{device}/{first}-{last}").as_str());
        }
        self.store(device, headers, batch).await
    }

    /// Publishes one refusal of `device` (kind `kind`, seen at `at`) on the device's
    /// subject, so that its partition's worker counts it in the device's burst window.
    pub async fn publish_refusal(&self, device: &str, at: i64, kind: &str) -> Result<(), String> {
        let mut headers = HeaderMap::new();
        headers.insert(DEVICE_HEADER, device);
        headers.insert(RECEIVED_HEADER, at.to_string().as_str());
        headers.insert(REFUSAL_HEADER, kind);
        self.store(device, headers, axum::body::Bytes::new()).await
    }

    async fn store(
        &self,
        device: &str,
        headers: HeaderMap,
        body: axum::body::Bytes,
    ) -> Result<(), String> {
        self.js
            .publish_with_headers(self.config.subject(device), headers, body)
            .await
            .map_err(|e| format!("publishing to JetStream: {e}"))?
            .await
            .map_err(|e| format!("JetStream did not store the message: {e}"))?;
        Ok(())
    }
}
