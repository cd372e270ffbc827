//! The one entry point for a device's telemetry batch, whatever transport brought it
//! (the HTTPS device API or the MQTT broker): checked as UTF-8 JSON of the batch schema,
//! then group-committed by [`crate::ingest`] together with its sequence-number mark, or
//! recognised by its numbers when the server already holds it. The caller has passed the
//! device gate ([`crate::device_gate`]) first.
//!
//! [`submit`] queues a batch behind those queued before it and [`Submitted::committed`]
//! waits for its commit, so a transport may queue a device's next batch before the previous
//! one is committed (MQTT does) and keep the order the dedup relies on; [`accept_from`]
//! does both for one request.

use std::{net::IpAddr, sync::Arc};

use axum::body::Bytes;
use edgeward_proto::api;

use crate::{
    app::{ApiError, App},
    ingest::{self, Stored},
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

    /// A numbered batch the server already held up to `through`.
    fn held(app: &App, through: u64) -> Self {
        app.metrics.inc(
            "edgeward_telemetry_batches_total",
            "outcome=\"duplicate\"".into(),
        );
        Accepted {
            records: 0,
            acked_through: Some(through),
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
    submit(app, device, source, body)
        .await?
        .committed(app)
        .await
}

/// A checked batch queued for the group commit.
#[derive(Debug)]
pub struct Submitted(Queued);

#[derive(Debug)]
enum Queued {
    /// Known to be held before it was queued.
    Held(u64),
    /// Waiting for its group's commit.
    Waiting {
        pending: ingest::Pending,
        device: Arc<str>,
        source: Option<IpAddr>,
        body: Bytes,
        records: usize,
        last: Option<u64>,
    },
}

/// Checks `body` (a batch from `device`, from `source` when known) and queues it for the
/// group commit behind every batch queued before it; a refusal here is final. Waits for
/// room in the queue and, with `[nats]`, for JetStream, but not for the commit.
pub async fn submit(
    app: &App,
    device: Arc<str>,
    source: Option<IpAddr>,
    body: Bytes,
) -> Result<Submitted, ApiError> {
    // Stored exactly as sent, so it must be text: JSON parsing skips over the inside of
    // strings it does not keep without checking their UTF-8.
    if let Err(e) = std::str::from_utf8(&body) {
        return Err(ApiError::bad_request(format!(
            "the telemetry batch is not UTF-8 ({e})"
        )));
    }
    let batch = api::telemetry(&body).map_err(|e| ApiError::bad_request(e.0))?;
    // To the detection workers first (`[nats]`): a batch the device sees acknowledged is
    // in the stream, and one sent again is recognised there by its numbers. One the server
    // already holds is not published again.
    if let Some(nats) = &app.nats {
        if let Some((first, _)) = batch.seq {
            if let telemetry_seq::Decision::AlreadyHave(through) =
                telemetry_seq::decide(&app.db, &device, first).await?
            {
                return Ok(Submitted(Queued::Held(through)));
            }
        }
        nats.publish(&device, app.now(), source, batch.seq, body.clone())
            .await
            .map_err(ApiError::unavailable)?;
    }
    // Stored as received (it parsed as JSON): no re-serialization, no copy.
    let pending = app
        .ingest
        .submit(ingest::Row {
            device: device.clone(),
            at: app.now(),
            body: body.clone(),
            seq: batch.seq,
        })
        .await
        .map_err(ApiError::unavailable)?;
    Ok(Submitted(Queued::Waiting {
        pending,
        device,
        source,
        body,
        records: batch.records,
        last: batch.seq.map(|(_, last)| last),
    }))
}

impl Submitted {
    /// Waits for the batch's commit: what was stored, or why nothing was (503). A newly
    /// stored batch is then scored by detection.
    pub async fn committed(self, app: &App) -> Result<Accepted, ApiError> {
        let (pending, device, source, body, records, last) = match self.0 {
            Queued::Held(through) => return Ok(Accepted::held(app, through)),
            Queued::Waiting {
                pending,
                device,
                source,
                body,
                records,
                last,
            } => (pending, device, source, body, records, last),
        };
        if let Stored::AlreadyHave(through) =
            pending.committed().await.map_err(ApiError::unavailable)?
        {
            return Ok(Accepted::held(app, through));
        }
        crate::detection::on_telemetry(app, &device, source, &body).await;
        if last.is_some() {
            app.metrics.inc(
                "edgeward_telemetry_batches_total",
                "outcome=\"stored\"".into(),
            );
        }
        Ok(Accepted {
            records,
            acked_through: last,
        })
    }
}
