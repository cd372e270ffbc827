//! A detection worker: it holds leases on some partitions of the telemetry stream (its fair
//! share among the live workers), consumes each with a durable JetStream consumer, scores
//! each batch with the same detector and the same code as in-process detection
//! ([`crate::detection::score_batch`]: baselines, cohorts, day-one rules, geography, cloned
//! certificates; one detector per partition, so a partition's cohorts are learned from its
//! devices), checkpoints to PostgreSQL, and raises the alerts through the server's own path
//! ([`crate::detection::raise`]: stored, counted, sent to the sinks, handed to the
//! playbook), with an application state built from the server's configuration.
//!
//! Exactly once: a partition's checkpoint — its last scored stream sequence, the state of
//! the devices it changed and of its cohorts, the points it counted, and the alerts it found
//! (into `detect_alert_outbox`) — commits in one transaction, fenced by the lease's epoch (a
//! worker that lost its lease cannot commit); the round's alerts are raised, each deleted
//! from the outbox once raised, and its messages acknowledged only after. A worker taking a
//! partition over restores its detector from the checkpoint, raises what the outbox still
//! holds for it, recreates the consumer from the sequence after the checkpoint, and
//! acknowledges without scoring any message at or below it. So a message scored but not
//! committed is scored again from the committed state (its first scoring died with the
//! worker), one committed but not acknowledged is skipped, and a committed alert is raised
//! at least once: twice only if its worker died between raising it and deleting it.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    time::Duration,
};

use async_nats::jetstream::{
    self,
    consumer::{pull, AckPolicy, DeliverPolicy, PullConsumer},
};
use edgeward_detect::{alert::Alert, fleet::Fleet};
use futures_util::StreamExt;
use sqlx::Row;

use super::{publish, NatsConfig};
use crate::{
    app::{App, Shared},
    detection::{self, Detection},
};

/// Most messages taken from a partition per round.
const BATCH: usize = 500;

/// The worker's settings.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// The stream, subjects and partition count (as the replicas have them).
    pub nats: NatsConfig,
    /// This worker's name (unique among the live workers).
    pub id: String,
    /// How long a lease lasts without renewal.
    pub lease: Duration,
}

/// A partition this worker holds.
struct Owned {
    epoch: i64,
    last_seq: u64,
    consumer: PullConsumer,
    /// The detector of the partition's devices and cohorts.
    fleet: Fleet,
}

/// What a round of scoring changed in one partition, to commit.
#[derive(Default)]
struct Delta {
    last_seq: u64,
    devices: HashSet<String>,
    scored: HashMap<String, (i64, i64)>,
    /// Alerts found, with the time their telemetry arrived (Unix ms).
    alerts: Vec<(Alert, i64)>,
    messages: Vec<jetstream::Message>,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The worker.
pub struct Worker {
    config: WorkerConfig,
    app: Shared,
    stream: jetstream::stream::Stream,
    owned: BTreeMap<u32, Owned>,
}

impl Worker {
    /// Connects to NATS; `app` is the server's state built for a worker
    /// ([`crate::server::worker_app`]): its database (the registry's, PostgreSQL) holds the
    /// leases and checkpoints, its detection settings, playbook and sinks are the ones
    /// alerts go through.
    pub async fn connect(config: WorkerConfig, app: Shared) -> Result<Worker, String> {
        config.nats.check()?;
        if app.db.backend() != crate::db::Backend::Postgres {
            return Err("detection workers keep their checkpoints in PostgreSQL".into());
        }
        if app.detection.is_none() {
            return Err("detection is disabled in the configuration".into());
        }
        let db = &app.db;
        let client = async_nats::connect(&config.nats.url)
            .await
            .map_err(|e| format!("NATS at {}: {e}", config.nats.url))?;
        let js = jetstream::new(client);
        let stream = super::ensure_stream(&js, &config.nats).await?;
        for part in 0..config.nats.partitions {
            sqlx::query("INSERT INTO detect_partitions (stream, part) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                .bind(&config.nats.stream)
                .bind(i64::from(part))
                .execute(db.pool())
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(Worker {
            config,
            app,
            stream,
            owned: BTreeMap::new(),
        })
    }

    /// Runs until `stop` resolves.
    pub async fn run(mut self, stop: impl std::future::Future<Output = ()>) -> Result<(), String> {
        tokio::pin!(stop);
        loop {
            let busy = tokio::select! {
                _ = &mut stop => return Ok(()),
                r = self.round() => r?,
            };
            if !busy {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    /// One round: renew and rebalance leases, then score what each partition has waiting.
    /// Returns whether any message was handled.
    async fn round(&mut self) -> Result<bool, String> {
        self.leases().await.map_err(|e| format!("leases: {e}"))?;
        let mut busy = false;
        let parts: Vec<u32> = self.owned.keys().copied().collect();
        for part in parts {
            match self.score(part).await {
                Ok(n) => busy |= n > 0,
                Err(e) => {
                    // The partition's state in memory may be ahead of its checkpoint: drop
                    // it; whoever takes the partition next restores the checkpoint.
                    tracing::warn!(part, %e, "partition dropped");
                    self.owned.remove(&part);
                }
            }
        }
        Ok(busy)
    }

    async fn leases(&mut self) -> Result<(), String> {
        let err = |e: sqlx::Error| e.to_string();
        let (stream, me) = (&self.config.nats.stream, &self.config.id);
        let lease_ms = i64::try_from(self.config.lease.as_millis()).unwrap_or(i64::MAX);
        let now = now_ms();
        let mut lost = Vec::new();
        for (part, o) in &self.owned {
            let renewed = sqlx::query("UPDATE detect_partitions SET lease_until = $1 WHERE stream = $2 AND part = $3 AND owner = $4 AND epoch = $5")
                .bind(now + lease_ms)
                .bind(stream)
                .bind(i64::from(*part))
                .bind(me)
                .bind(o.epoch)
                .execute(self.app.db.pool())
                .await
                .map_err(err)?
                .rows_affected();
            if renewed != 1 {
                lost.push(*part);
            }
        }
        for part in lost {
            tracing::warn!(part, "lease lost");
            self.owned.remove(&part);
        }
        sqlx::query("INSERT INTO detect_workers (stream, id, alive_until) VALUES ($1, $2, $3) ON CONFLICT (stream, id) DO UPDATE SET alive_until = EXCLUDED.alive_until")
            .bind(stream)
            .bind(me)
            .bind(now + lease_ms)
            .execute(self.app.db.pool())
            .await
            .map_err(err)?;
        // Live workers, owning partitions or not: the fair share counts a newcomer at once.
        let others: i64 = sqlx::query("SELECT COUNT(*) AS n FROM detect_workers WHERE stream = $1 AND alive_until > $2 AND id <> $3")
            .bind(stream)
            .bind(now)
            .bind(me)
            .fetch_one(self.app.db.pool())
            .await
            .map_err(err)?
            .try_get("n")
            .map_err(err)?;
        let total = self.config.nats.partitions as usize;
        let target = total.div_ceil(usize::try_from(others).unwrap_or(0) + 1);
        if self.owned.len() > target {
            // Hand one back (it was checkpointed at the end of the last round).
            if let Some((part, o)) = self.owned.pop_last() {
                sqlx::query("UPDATE detect_partitions SET owner = NULL, lease_until = 0 WHERE stream = $1 AND part = $2 AND owner = $3 AND epoch = $4")
                    .bind(stream)
                    .bind(i64::from(part))
                    .bind(me)
                    .bind(o.epoch)
                    .execute(self.app.db.pool())
                    .await
                    .map_err(err)?;
                tracing::info!(part, "partition handed back");
            }
            return Ok(());
        }
        for part in 0..self.config.nats.partitions {
            if self.owned.len() >= target {
                break;
            }
            if self.owned.contains_key(&part) {
                continue;
            }
            let taken = sqlx::query("UPDATE detect_partitions SET owner = $1, epoch = epoch + 1, lease_until = $2 WHERE stream = $3 AND part = $4 AND (owner IS NULL OR lease_until < $5) RETURNING epoch, last_seq")
                .bind(me)
                .bind(now + lease_ms)
                .bind(stream)
                .bind(i64::from(part))
                .bind(now)
                .fetch_optional(self.app.db.pool())
                .await
                .map_err(err)?;
            if let Some(row) = taken {
                let epoch: i64 = row.try_get("epoch").map_err(err)?;
                let last_seq: i64 = row.try_get("last_seq").map_err(err)?;
                let owned = self
                    .take(part, epoch, u64::try_from(last_seq).unwrap_or(0))
                    .await?;
                self.owned.insert(part, owned);
                self.drain_outbox(part).await?;
            }
        }
        Ok(())
    }

    /// Takes partition `part` over at `epoch`: its detector from the checkpoint, and its
    /// consumer recreated to start after the checkpoint's sequence.
    async fn take(&self, part: u32, epoch: i64, last_seq: u64) -> Result<Owned, String> {
        let rows = sqlx::query(
            "SELECT key, state FROM detect_partition_state WHERE stream = $1 AND part = $2",
        )
        .bind(&self.config.nats.stream)
        .bind(i64::from(part))
        .fetch_all(self.app.db.pool())
        .await
        .map_err(|e| e.to_string())?;
        let states = rows
            .iter()
            .map(|r| Ok((r.try_get("key")?, r.try_get("state")?)))
            .collect::<Result<Vec<(String, String)>, sqlx::Error>>()
            .map_err(|e| e.to_string())?;
        let detection = self.detection()?;
        let mut fleet = Fleet::new(Detection::fleet_config(&detection.config)?);
        let restored = detection::restore_states(&mut fleet, states);
        let durable = format!("detect-{part}");
        // The consumer restarts after the checkpoint, whatever a previous owner had pulled.
        let _ = self.stream.delete_consumer(&durable).await;
        let consumer = self
            .stream
            .create_consumer(pull::Config {
                durable_name: Some(durable),
                filter_subject: self.config.nats.partition_filter(part),
                deliver_policy: if last_seq == 0 {
                    DeliverPolicy::All
                } else {
                    DeliverPolicy::ByStartSequence {
                        start_sequence: last_seq + 1,
                    }
                },
                ack_policy: AckPolicy::Explicit,
                ack_wait: Duration::from_secs(30),
                ..Default::default()
            })
            .await
            .map_err(|e| format!("consumer for partition {part}: {e}"))?;
        tracing::info!(part, epoch, last_seq, restored, "partition taken");
        Ok(Owned {
            epoch,
            last_seq,
            consumer,
            fleet,
        })
    }

    fn detection(&self) -> Result<&Detection, String> {
        self.app
            .detection
            .as_ref()
            .ok_or_else(|| "detection is disabled".to_string())
    }

    /// Scores what partition `part` has waiting, commits the checkpoint, raises the alerts,
    /// acknowledges.
    async fn score(&mut self, part: u32) -> Result<usize, String> {
        let app = self.app.clone();
        let Some(o) = self.owned.get_mut(&part) else {
            return Ok(0);
        };
        let mut batch = o
            .consumer
            .fetch()
            .max_messages(BATCH)
            .expires(Duration::from_millis(100))
            .messages()
            .await
            .map_err(|e| e.to_string())?;
        let mut delta = Delta {
            last_seq: o.last_seq,
            ..Delta::default()
        };
        while let Some(m) = batch.next().await {
            let m = m.map_err(|e| e.to_string())?;
            let seq = m.info().map_err(|e| e.to_string())?.stream_sequence;
            if seq > delta.last_seq {
                score_message(&app, &mut o.fleet, &mut delta, &m).await?;
                delta.last_seq = seq;
            }
            delta.messages.push(m);
        }
        if delta.messages.is_empty() {
            return Ok(0);
        }
        let n = delta.messages.len();
        let ids = self.commit(part, &delta).await?;
        if let Some(o) = self.owned.get_mut(&part) {
            o.last_seq = delta.last_seq;
        }
        let pending = ids
            .into_iter()
            .zip(delta.alerts)
            .map(|(id, (alert, received_ms))| (id, alert, received_ms))
            .collect();
        self.raise(pending).await?;
        for m in delta.messages {
            m.ack().await.map_err(|e| e.to_string())?;
        }
        Ok(n)
    }

    /// Raises alerts taken from the outbox (id, alert, arrival in Unix ms), deleting each
    /// from the outbox once raised. Each is raised under its entry's name
    /// (`nats:<stream>:<id>`), so a raise repeated after a crash before the delete stores
    /// no second alert.
    async fn raise(&self, pending: Vec<(i64, Alert, i64)>) -> Result<(), String> {
        for (id, alert, received_ms) in pending {
            if let Some(d) = self.app.detection.as_ref() {
                let origin = format!("nats:{}:{id}", self.config.nats.stream);
                for alert in d.admitted(vec![alert], received_ms.div_euclid(1000)) {
                    detection::raise(&self.app, alert, received_ms, Some(&origin)).await;
                }
            }
            sqlx::query("DELETE FROM detect_alert_outbox WHERE id = $1")
                .bind(id)
                .execute(self.app.db.pool())
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Raises what partition `part`'s outbox still holds: the alerts of a round its previous
    /// owner committed but died before raising.
    async fn drain_outbox(&self, part: u32) -> Result<(), String> {
        let err = |e: sqlx::Error| e.to_string();
        let rows = sqlx::query("SELECT id, alert, received_ms FROM detect_alert_outbox WHERE stream = $1 AND part = $2 ORDER BY id")
            .bind(&self.config.nats.stream)
            .bind(i64::from(part))
            .fetch_all(self.app.db.pool())
            .await
            .map_err(err)?;
        let mut pending = Vec::with_capacity(rows.len());
        for row in rows {
            let id: i64 = row.try_get("id").map_err(err)?;
            let text: String = row.try_get("alert").map_err(err)?;
            let received_ms: i64 = row.try_get("received_ms").map_err(err)?;
            match serde_json::from_str::<Alert>(&text) {
                Ok(alert) => pending.push((id, alert, received_ms)),
                // Left in place (not lost, not blocking the partition) for an operator or a
                // newer worker that knows its kind.
                Err(e) => {
                    tracing::error!(id, part, %e, "an outbox entry is not an alert this worker reads")
                }
            }
        }
        if !pending.is_empty() {
            tracing::warn!(
                part,
                alerts = pending.len(),
                "raising the alerts the partition's previous owner committed but did not raise"
            );
        }
        self.raise(pending).await
    }

    /// The fenced checkpoint of one round; returns the outbox ids of the round's alerts, in
    /// order.
    async fn commit(&self, part: u32, delta: &Delta) -> Result<Vec<i64>, String> {
        let err = |e: sqlx::Error| e.to_string();
        let Some(o) = self.owned.get(&part) else {
            return Err("not held".into());
        };
        let stream = &self.config.nats.stream;
        let mut tx = self.app.db.pool().begin().await.map_err(err)?;
        let fenced = sqlx::query("UPDATE detect_partitions SET last_seq = $1 WHERE stream = $2 AND part = $3 AND owner = $4 AND epoch = $5")
            .bind(to_i64(delta.last_seq))
            .bind(stream)
            .bind(i64::from(part))
            .bind(&self.config.id)
            .bind(o.epoch)
            .execute(&mut *tx)
            .await
            .map_err(err)?
            .rows_affected();
        if fenced != 1 {
            tx.rollback().await.map_err(err)?;
            return Err("the lease was taken over".into());
        }
        let devices: Vec<String> = delta.devices.iter().cloned().collect();
        for (key, state) in detection::snapshot_states(&o.fleet, &devices) {
            sqlx::query("INSERT INTO detect_partition_state (stream, part, key, state) VALUES ($1, $2, $3, $4) ON CONFLICT (stream, part, key) DO UPDATE SET state = EXCLUDED.state")
                .bind(stream)
                .bind(i64::from(part))
                .bind(key)
                .bind(state)
                .execute(&mut *tx)
                .await
                .map_err(err)?;
        }
        for (device, (points, alerts)) in &delta.scored {
            sqlx::query("INSERT INTO detect_scored (stream, device_id, points, alerts) VALUES ($1, $2, $3, $4) ON CONFLICT (stream, device_id) DO UPDATE SET points = detect_scored.points + EXCLUDED.points, alerts = detect_scored.alerts + EXCLUDED.alerts")
                .bind(stream)
                .bind(device)
                .bind(*points)
                .bind(*alerts)
                .execute(&mut *tx)
                .await
                .map_err(err)?;
        }
        let mut ids = Vec::with_capacity(delta.alerts.len());
        for (alert, received_ms) in &delta.alerts {
            let text = serde_json::to_string(alert).map_err(|e| e.to_string())?;
            let row = sqlx::query("INSERT INTO detect_alert_outbox (stream, part, alert, received_ms) VALUES ($1, $2, $3, $4) RETURNING id")
                .bind(stream)
                .bind(i64::from(part))
                .bind(text)
                .bind(*received_ms)
                .fetch_one(&mut *tx)
                .await
                .map_err(err)?;
            ids.push(row.try_get("id").map_err(err)?);
        }
        tx.commit().await.map_err(err)?;
        Ok(ids)
    }
}

/// Scores one message (a telemetry batch as the device sent it, or a refusal a replica saw)
/// with the partition's detector, recording what changed and the alerts found in `delta`.
async fn score_message(
    app: &App,
    fleet: &mut Fleet,
    delta: &mut Delta,
    m: &jetstream::Message,
) -> Result<(), String> {
    let header = |name: &str| {
        m.headers
            .as_ref()
            .and_then(|h| h.get(name))
            .map(|v| v.as_str().to_string())
    };
    let Some(device) = header(publish::DEVICE_HEADER) else {
        tracing::warn!(subject = %m.subject, "a telemetry message without its device header");
        return Ok(());
    };
    let Some(detection) = app.detection.as_ref() else {
        return Err("detection is disabled".into());
    };
    let received_at: i64 = header(publish::RECEIVED_HEADER)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let source = header(publish::SOURCE_HEADER).and_then(|v| v.parse().ok());
    let class = match fleet.cohort_of(&device) {
        Some((class, _)) => class,
        None => match app.registry.device(&app.db, &device).await {
            Ok(Some(d)) => d.hardware_class.clone(),
            Ok(None) => {
                tracing::warn!(device, "telemetry of a device not in the registry");
                return Ok(());
            }
            // The round fails and the partition is taken again from its checkpoint.
            Err(e) => return Err(format!("registry lookup for {device}: {e}")),
        },
    };
    if let Some(kind) = header(publish::REFUSAL_HEADER) {
        let Some(refusal) = detection::Refusal::from_name(&kind) else {
            tracing::warn!(device, kind, "a refusal of an unknown kind");
            return Ok(());
        };
        let alert = detection::score_event(fleet, &device, &class, received_at, &refusal.event());
        delta.scored.entry(device.clone()).or_default().1 += i64::from(alert.is_some());
        delta
            .alerts
            .extend(alert.map(|a| (a, received_at.saturating_mul(1000))));
        delta.devices.insert(device);
        return Ok(());
    }
    let scored = detection::score_batch(
        fleet,
        &detection.config,
        &device,
        &class,
        source,
        &m.payload,
        received_at,
    );
    let counts = delta.scored.entry(device.clone()).or_default();
    counts.0 += i64::try_from(scored.points).unwrap_or(i64::MAX);
    counts.1 += i64::try_from(scored.alerts.len()).unwrap_or(i64::MAX);
    let received_ms = received_at.saturating_mul(1000);
    delta
        .alerts
        .extend(scored.alerts.into_iter().map(|a| (a, received_ms)));
    delta.devices.insert(device);
    Ok(())
}
