//! The one entry point for a device's telemetry batch, whatever transport brought it
//! (the HTTPS device API or the MQTT broker): checked as UTF-8 JSON of the batch schema,
//! recognised by its sequence numbers when the server already holds it, otherwise
//! group-committed by [`crate::ingest`] and its last number recorded. The caller has
//! passed the device gate ([`crate::device_gate`]) first.

use std::{net::IpAddr, sync::Arc};

use axum::body::Bytes;
use edgeward_proto::api;

use crate::{
    app::{ApiError, App},
    telemetry_seq,
};

/// What the server did with a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    /// Records stored now (0 for a batch the server already held).
    pub records: usize,
    /// Every numbered event up to this one is stored (numbered batches only).
    pub acked_through: Option<u64>,
}

impl Accepted {
    /// The answer as JSON: `{"accepted":N}` or `{"accepted":N,"acked_through":SEQ}`.
    pub fn to_json(&self) -> String {
        match self.acked_through {
            Some(through) => format!(
                "{{\"accepted\":{},\"acked_through\":{through}}}",
                self.records
            ),
            None => format!("{{\"accepted\":{}}}", self.records),
        }
    }
}

/// Stores `body`, a telemetry batch from `device` that passed the gate; returns once it is
/// committed (or was already held).
pub async fn accept(app: &App, device: Arc<str>, body: Bytes) -> Result<Accepted, ApiError> {
    accept_from(app, device, None, body).await
}

/// [`accept`] for a batch that came from the network address `source` (when the transport
/// knows it): a newly stored batch is also scored by detection ([`crate::detection`]), the
/// address standing for the device's certificate in the cloned-certificate check.
pub async fn accept_from(
    app: &App,
    device: Arc<str>,
    source: Option<IpAddr>,
    body: Bytes,
) -> Result<Accepted, ApiError> {
    // Stored exactly as sent, so it must be text: JSON parsing skips over the inside of
    // strings it does not keep without checking their UTF-8.
    if let Err(e) = std::str::from_utf8(&body) {
        return Err(ApiError::bad_request(format!(
            "the telemetry batch is not UTF-8 ({e})"
        )));
    }
    let batch = api::telemetry(&body).map_err(|e| ApiError::bad_request(e.0))?;
    // Numbered events the server already holds are acknowledged, not stored twice.
    if let Some((first, _)) = batch.seq {
        if let telemetry_seq::Decision::AlreadyHave(through) =
            telemetry_seq::decide(&app.db, &device, first).await?
        {
            app.metrics.inc(
                "edgeward_telemetry_batches_total",
                "outcome=\"duplicate\"".into(),
            );
            return Ok(Accepted {
                records: 0,
                acked_through: Some(through),
            });
        }
    }
    // To the detection workers first (`[nats]`): a batch the device sees acknowledged is
    // in the stream, and one sent again is recognised there by its numbers.
    if let Some(nats) = &app.nats {
        nats.publish(&device, app.now(), source, batch.seq, body.clone())
            .await
            .map_err(ApiError::unavailable)?;
    }
    // Stored as received (it parsed as JSON): no re-serialization, no copy.
    app.ingest
        .store(device.clone(), app.now(), body.clone())
        .await
        .map_err(ApiError::unavailable)?;
    crate::detection::on_telemetry(app, &device, source, &body).await;
    let records = batch.records;
    let Some((_, last)) = batch.seq else {
        return Ok(Accepted {
            records,
            acked_through: None,
        });
    };
    telemetry_seq::record(&app.db, &device, last).await?;
    app.metrics.inc(
        "edgeward_telemetry_batches_total",
        "outcome=\"stored\"".into(),
    );
    Ok(Accepted {
        records,
        acked_through: Some(last),
    })
}
