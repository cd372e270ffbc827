//! In-process detection: every telemetry batch that passed the device gate is scored by the
//! fleet detector (edgeward-detect: per-device-metric baselines, cohorts by hardware class and
//! firmware, day-one rules, geography and cloned certificates). Alerts are deduplicated and
//! rate-limited, stored, sent to the sinks and handed to the incident playbook. The
//! detector's state is checkpointed to the database every few seconds and on shutdown, and
//! loaded at start, so a restart does not forget a baseline.
//!
//! The device gate's refusals of authenticated devices (bad tokens, rate-limit hits) and
//! failed attestations are fed to the same detector as rule events ([`on_refusal`]), at
//! most as many per device and kind per burst window as the rule needs to fire, so a flood
//! of refusals costs a counter increment each, never unbounded detection work. With `[nats]`
//! the refusals go to the stream instead, on the device's subject, so the worker that owns
//! the device counts the refusals every replica saw in one window.

pub mod config;
pub mod sinks;
pub mod store;

use std::{
    collections::{HashMap, HashSet},
    net::IpAddr,
    sync::Mutex,
};

use edgeward_detect::{
    alert::Alert,
    fleet::{CohortSnapshot, DeviceSnapshot, Fleet, FleetConfig},
    geo::{GeoConfig, Network, Sighting},
    playbook::Playbook,
    records::{self, Observation},
    rules::Event,
};
use serde_json::json;

use crate::app::{App, Shared};
pub use config::DetectionConfig;

/// Checkpoint keys: `dev:<id>` for devices, `cohort:<class>/<firmware>/<metric>` for cohorts.
const DEVICE_KEY: &str = "dev:";
const COHORT_KEY: &str = "cohort:";

/// Firmware assumed until a device reports its version.
const UNKNOWN_FIRMWARE: &str = "unknown";

/// An alert waiting to be raised, with the time its telemetry arrived (Unix ms).
pub type Raised = (Alert, i64);

/// Alerts queued for raising at most (beyond that they are counted and dropped, as by the
/// rate limit).
const MAX_QUEUED: usize = 1024;

/// The server's detector and what surrounds it.
pub struct Detection {
    /// The settings.
    pub config: DetectionConfig,
    /// The playbook alerts are matched against.
    pub playbook: Playbook,
    /// Where alerts go.
    pub sinks: sinks::Sinks,
    fleet: Mutex<Fleet>,
    dirty: Mutex<HashSet<String>>,
    limits: Mutex<Limits>,
    refusals: Mutex<RefusalWindows>,
    queue: tokio::sync::mpsc::Sender<Raised>,
}

/// A refusal of an authenticated device that detection hears about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// A call failed authentication (missing, malformed, wrong, expired or replayed token,
    /// or a token naming another device than the certificate).
    AuthFailure,
    /// A call was refused by the device's or its source address's rate limit.
    RateLimited,
    /// Attestation evidence did not verify.
    AttestationFailed,
}

impl Refusal {
    /// Every kind.
    pub const ALL: [Refusal; 3] = [
        Refusal::AuthFailure,
        Refusal::RateLimited,
        Refusal::AttestationFailed,
    ];

    /// The kind named `name` (as [`Refusal::name`] spells it).
    pub fn from_name(name: &str) -> Option<Refusal> {
        Refusal::ALL.into_iter().find(|r| r.name() == name)
    }

    /// The rule event it is.
    pub fn event(self) -> Event {
        match self {
            Refusal::AuthFailure => Event::AuthFailure,
            Refusal::RateLimited => Event::RateLimited,
            Refusal::AttestationFailed => Event::AttestationFailed,
        }
    }

    /// Its name in metrics and on the stream.
    pub fn name(self) -> &'static str {
        match self {
            Refusal::AuthFailure => "auth_failure",
            Refusal::RateLimited => "rate_limited",
            Refusal::AttestationFailed => "attestation_failed",
        }
    }
}

/// Refusals fed to the detector per (device, kind) in the current burst window: beyond what
/// the rule needs to fire, further ones are only counted.
#[derive(Default)]
struct RefusalWindows {
    /// (device, kind) → (window start, events fed in it).
    open: HashMap<(String, Refusal), (i64, usize)>,
}

/// Most (device, kind) refusal windows open at once; past it, refusals of further devices
/// are counted and not fed until old windows close.
const MAX_REFUSAL_WINDOWS: usize = 10_000;

/// Deduplication and the fleet-wide alert rate.
#[derive(Default)]
struct Limits {
    /// (device, dedup key) → when it was last raised (Unix seconds).
    last: HashMap<(String, String), i64>,
    /// The current minute and the alerts raised in it.
    minute: (i64, u32),
    /// Alerts dropped by the rate limit (for the metrics).
    dropped: u64,
}

/// Most (device, kind) pairs remembered for deduplication before old ones are forgotten.
const MAX_DEDUP_ENTRIES: usize = 100_000;

impl Detection {
    /// The detector for `config`: its playbook read and checked, its sinks opened, its
    /// geography settings parsed; and the queue of alerts [`dispatch`] raises. Must run on
    /// the server's runtime.
    pub fn new(
        config: &DetectionConfig,
    ) -> Result<(Detection, tokio::sync::mpsc::Receiver<Raised>), String> {
        let playbook = match &config.playbook {
            Some(path) => {
                let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
                Playbook::parse(&bytes).map_err(|e| format!("{}: {e}", path.display()))?
            }
            None => Playbook::default(),
        };
        let fleet = Fleet::new(Detection::fleet_config(config)?);
        let (queue, raised) = tokio::sync::mpsc::channel(MAX_QUEUED);
        let detection = Detection {
            sinks: sinks::Sinks::open(config.webhook.as_ref(), config.mqtt.as_ref())?,
            config: config.clone(),
            playbook,
            fleet: Mutex::new(fleet),
            dirty: Mutex::new(HashSet::new()),
            limits: Mutex::new(Limits::default()),
            refusals: Mutex::new(RefusalWindows::default()),
            queue,
        };
        Ok((detection, raised))
    }

    /// Loads the checkpoints written by an earlier run.
    pub async fn restore(&self, db: &crate::db::Db) -> Result<usize, String> {
        let states = store::load_state(db).await.map_err(|e| e.to_string())?;
        let mut fleet = self.fleet.lock().unwrap_or_else(|e| e.into_inner());
        Ok(restore_states(&mut fleet, states))
    }

    /// Writes the state of every device that changed since the last checkpoint, and every
    /// cohort.
    pub async fn checkpoint(&self, db: &crate::db::Db, now: i64) -> Result<usize, String> {
        let dirty: Vec<String> = {
            let mut d = self.dirty.lock().unwrap_or_else(|e| e.into_inner());
            d.drain().collect()
        };
        if dirty.is_empty() {
            return Ok(0);
        }
        let states = {
            let fleet = self.fleet.lock().unwrap_or_else(|e| e.into_inner());
            snapshot_states(&fleet, &dirty)
        };
        if let Err(e) = store::save_state(db, &states, now).await {
            // Try again next time.
            self.dirty
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend(dirty);
            return Err(e.to_string());
        }
        Ok(states.len())
    }

    /// Scores one batch of `device` (hardware class `class`) received from `source` (when
    /// the transport knows it: without it, no location or certificate sighting is checked);
    /// returns the alerts that pass deduplication and the rate limit.
    pub fn score(
        &self,
        device: &str,
        class: &str,
        source: Option<IpAddr>,
        body: &[u8],
        now: i64,
    ) -> Vec<Alert> {
        let scored = {
            let mut fleet = self.fleet.lock().unwrap_or_else(|e| e.into_inner());
            score_batch(&mut fleet, &self.config, device, class, source, body, now)
        };
        self.dirty
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(device.to_string());
        self.admitted(scored.alerts, now)
    }

    /// The detector's configuration for `config`: the geography settings parsed.
    pub fn fleet_config(config: &DetectionConfig) -> Result<FleetConfig, String> {
        let allowed_networks = config
            .allowed_networks
            .iter()
            .map(|n| n.parse::<Network>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("detection.allowed_networks: {e}"))?;
        Ok(FleetConfig {
            geo: GeoConfig {
                max_speed_kmh: config.max_speed_kmh,
                allowed_networks,
                ..GeoConfig::default()
            },
            ..FleetConfig::default()
        })
    }

    /// The alerts among `alerts` that pass deduplication and the rate limit at `now`.
    pub fn admitted(&self, mut alerts: Vec<Alert>, now: i64) -> Vec<Alert> {
        alerts.retain(|a| self.admit(a, now));
        alerts
    }

    /// Whether a refusal of `kind` of `device` at `now` is fed to the detector: at most as
    /// many per burst window as its rule needs to fire (one for an attestation failure).
    fn take_refusal(&self, device: &str, kind: Refusal, now: i64) -> bool {
        let (window, cap) = {
            let fleet = self.fleet.lock().unwrap_or_else(|e| e.into_inner());
            let rules = &fleet.config().rules;
            let cap = match kind {
                Refusal::AuthFailure => rules.auth_failures,
                Refusal::RateLimited => rules.rate_limited,
                Refusal::AttestationFailed => 1,
            };
            (rules.burst_seconds.max(1), cap.max(1))
        };
        let mut r = self.refusals.lock().unwrap_or_else(|e| e.into_inner());
        let key = (device.to_string(), kind);
        if let Some((start, fed)) = r.open.get_mut(&key) {
            if now - *start >= window {
                (*start, *fed) = (now, 1);
                return true;
            }
            if *fed >= cap {
                return false;
            }
            *fed += 1;
            return true;
        }
        if r.open.len() >= MAX_REFUSAL_WINDOWS {
            r.open.retain(|_, (start, _)| now - *start < window);
            if r.open.len() >= MAX_REFUSAL_WINDOWS {
                return false;
            }
        }
        r.open.insert(key, (now, 1));
        true
    }

    /// Whether the detector knows `device` (it has a cohort).
    fn knows(&self, device: &str) -> bool {
        self.fleet
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .cohort_of(device)
            .is_some()
    }

    /// Applies a rule event the server saw about `device` (hardware class `class`, used
    /// when the detector does not know the device yet); returns the alert it raises, if it
    /// passes deduplication and the rate limit.
    fn observe_event(&self, device: &str, class: &str, at: i64, event: &Event) -> Option<Alert> {
        let found = {
            let mut fleet = self.fleet.lock().unwrap_or_else(|e| e.into_inner());
            score_event(&mut fleet, device, class, at, event)
        };
        self.dirty
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(device.to_string());
        found.filter(|a| self.admit(a, at))
    }

    /// Queues `alerts` for [`dispatch`]; when the queue is full they are counted as dropped.
    fn enqueue(&self, alerts: impl IntoIterator<Item = Alert>, received_ms: i64) {
        for alert in alerts {
            if self.queue.try_send((alert, received_ms)).is_err() {
                self.limits
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .dropped += 1;
            }
        }
    }

    /// Deduplication and the rate limit: whether `alert` is raised.
    fn admit(&self, alert: &Alert, now: i64) -> bool {
        let mut l = self.limits.lock().unwrap_or_else(|e| e.into_inner());
        let key = (alert.device.clone(), alert.kind.dedup_key());
        let window = i64::try_from(self.config.dedup_secs).unwrap_or(i64::MAX);
        if l.last.get(&key).is_some_and(|t| now - t < window) {
            return false;
        }
        let minute = now.div_euclid(60);
        if l.minute.0 != minute {
            l.minute = (minute, 0);
        }
        if l.minute.1 >= self.config.max_alerts_per_minute {
            l.dropped += 1;
            return false;
        }
        l.minute.1 += 1;
        if l.last.len() >= MAX_DEDUP_ENTRIES {
            l.last.retain(|_, t| now - *t < window);
        }
        l.last.insert(key, now);
        true
    }

    /// Alerts dropped by the rate limit so far.
    pub fn dropped(&self) -> u64 {
        self.limits.lock().map(|l| l.dropped).unwrap_or(0)
    }
}

/// Restores checkpoints (`dev:<id>` → device, `cohort:…` → cohort, as
/// [`snapshot_states`] writes them) into `fleet`; returns how many were restored. A damaged
/// checkpoint costs that device or cohort its history, nothing else.
pub fn restore_states(fleet: &mut Fleet, states: Vec<(String, String)>) -> usize {
    let mut restored = 0;
    for (key, state) in states {
        let result = if let Some(device) = key.strip_prefix(DEVICE_KEY) {
            serde_json::from_str::<DeviceSnapshot>(&state)
                .map_err(|e| e.to_string())
                .and_then(|s| fleet.restore_device(device, s).map_err(|e| e.to_string()))
        } else if key.starts_with(COHORT_KEY) {
            serde_json::from_str::<CohortSnapshot>(&state)
                .map_err(|e| e.to_string())
                .and_then(|s| fleet.restore_cohort(s).map_err(|e| e.to_string()))
        } else {
            Err("unknown key".into())
        };
        match result {
            Ok(()) => restored += 1,
            Err(e) => tracing::error!(key, %e, "detector checkpoint not restored"),
        }
    }
    restored
}

/// Checkpoints of `devices` (those `fleet` knows) and of every cohort of `fleet`, as
/// (key, JSON state).
pub fn snapshot_states(fleet: &Fleet, devices: &[String]) -> Vec<(String, String)> {
    let devices = devices.iter().filter_map(|d| {
        let s = fleet.snapshot_device(d)?;
        Some((format!("{DEVICE_KEY}{d}"), serde_json::to_string(&s).ok()?))
    });
    let cohorts = fleet.snapshot_cohorts().into_iter().filter_map(|c| {
        let key = format!(
            "{COHORT_KEY}{}/{}/{}",
            c.hardware_class, c.firmware, c.metric
        );
        Some((key, serde_json::to_string(&c).ok()?))
    });
    devices.chain(cohorts).collect()
}

/// What scoring a batch found.
#[derive(Debug, Default)]
pub struct Scored {
    /// The alerts raised (before deduplication and the rate limit).
    pub alerts: Vec<Alert>,
    /// Metric points scored.
    pub points: usize,
}

/// Scores one telemetry batch of `device` (hardware class `class`) received at `now` from
/// `source` with `fleet`: its metric points against the device's baselines and cohort, its
/// events against the day-one rules, its locations and its source address against the
/// geography and cloned-certificate checks. The one scoring path of in-process detection
/// ([`Detection::score`]) and of the scale-out workers (`crate::detect_nats::worker`).
pub fn score_batch(
    fleet: &mut Fleet,
    config: &DetectionConfig,
    device: &str,
    class: &str,
    source: Option<IpAddr>,
    body: &[u8],
    now: i64,
) -> Scored {
    let mut scored = Scored::default();
    let observed = match records::parse(
        body,
        now,
        now.saturating_sub(config.max_record_age_secs),
        now.saturating_add(300),
    ) {
        Ok(o) => o,
        Err(e) => {
            tracing::debug!(device, %e, "telemetry not scored");
            return scored;
        }
    };
    let release = config.release_models.get(class);
    let area = config.areas.get(device);
    let firmware = observed
        .firmware
        .clone()
        .or_else(|| fleet.cohort_of(device).map(|(_, f)| f))
        .unwrap_or_else(|| UNKNOWN_FIRMWARE.to_string());
    if fleet.cohort_of(device) != Some((class.to_string(), firmware.clone())) {
        fleet.register(device, class, &firmware);
    }
    let mut located = false;
    for item in &observed.items {
        let found: Result<Vec<Alert>, _> = match item {
            Observation::Metric { metric, at, value } => {
                scored.points += 1;
                fleet
                    .observe_metric(device, metric, *at, *value)
                    .map(|a| a.into_iter().collect())
            }
            Observation::Event { at, event } => {
                // Without a release on record there is nothing to compare a model with.
                if matches!(event, Event::ModelLoaded { .. }) && release.is_none() {
                    continue;
                }
                let models = release.map(Vec::as_slice).unwrap_or_default();
                fleet
                    .observe_event(device, *at, event, models)
                    .map(|a| a.into_iter().collect())
            }
            Observation::Location { at, place } => {
                let Some(network) = source else { continue };
                located = true;
                let sighting = Sighting {
                    at: *at,
                    network,
                    place: Some(*place),
                };
                fleet.observe_connection(device, area, sighting)
            }
        };
        match found {
            Ok(found) => scored.alerts.extend(found),
            Err(e) => tracing::debug!(device, %e, "observation not scored"),
        }
    }
    if let Some(network) = source.filter(|_| !located) {
        // Every batch is a use of the device's certificate from its source address.
        let sighting = Sighting {
            at: now,
            network,
            place: None,
        };
        match fleet.observe_connection(device, area, sighting) {
            Ok(found) => scored.alerts.extend(found),
            Err(e) => tracing::debug!(device, %e, "connection not scored"),
        }
    }
    scored
}

/// The hook on the telemetry path ([`crate::telemetry::accept_from`]): scores a stored batch
/// of `device` from `source` and queues the alerts it raised for [`dispatch`] (stored, sent,
/// matched to the playbook), so the device's answer does not wait for them. With `[nats]`
/// the batch was published for the scale-out detection workers, which score it instead.
pub async fn on_telemetry(app: &App, device: &str, source: Option<IpAddr>, body: &[u8]) {
    let Some(detection) = app.detection.as_ref().filter(|_| app.nats.is_none()) else {
        return;
    };
    let received_ms = now_ms(app);
    let class = match app.registry.device(&app.db, device).await {
        Ok(Some(d)) => d.hardware_class.clone(),
        Ok(None) => return,
        Err(e) => {
            tracing::error!(%e, device, "detection: registry lookup failed");
            return;
        }
    };
    let alerts = detection.score(device, &class, source, body, app.now());
    detection.enqueue(alerts, received_ms);
}

/// Applies rule event `event` about `device` (hardware class `class`, used when `fleet`
/// does not know the device yet) at `at`; the alert it raises, before deduplication. The
/// in-process detector and the NATS workers (for refusals other replicas saw) share it.
pub fn score_event(
    fleet: &mut Fleet,
    device: &str,
    class: &str,
    at: i64,
    event: &Event,
) -> Option<Alert> {
    if fleet.cohort_of(device).is_none() {
        fleet.register(device, class, UNKNOWN_FIRMWARE);
    }
    match fleet.observe_event(device, at, event, &[]) {
        Ok(alert) => alert,
        Err(e) => {
            tracing::debug!(device, %e, "event not scored");
            None
        }
    }
}

/// The hook on the device gate and the attestation endpoint: a refusal of authenticated
/// `device` becomes a rule event (auth-failure and rate-limit bursts, attestation
/// failures), fed at most as many times per device, kind and burst window as the rule needs
/// to fire; the rest are only counted (`edgeward_detection_refusals_total{outcome}`). The
/// registry is read only for a device the detector does not know yet, within that bound.
pub async fn on_refusal(app: &App, device: &str, kind: Refusal) {
    let Some(detection) = app.detection.as_ref() else {
        return;
    };
    let now = app.now();
    let fed = detection.take_refusal(device, kind, now);
    app.metrics.inc(
        "edgeward_detection_refusals_total",
        format!(
            "kind=\"{}\",outcome=\"{}\"",
            kind.name(),
            if fed { "fed" } else { "counted" }
        ),
    );
    if !fed {
        return;
    }
    // With `[nats]` the worker that owns the device counts it, with every other replica's.
    if let Some(nats) = &app.nats {
        match nats.publish_refusal(device, now, kind.name()).await {
            Ok(()) => return,
            Err(e) => {
                tracing::error!(%e, device, "refusal not published; counted by this replica")
            }
        }
    }
    let class = if detection.knows(device) {
        String::new()
    } else {
        match app.registry.device(&app.db, device).await {
            Ok(Some(d)) => d.hardware_class.clone(),
            Ok(None) => return,
            Err(e) => {
                tracing::error!(%e, device, "detection: registry lookup failed");
                return;
            }
        }
    };
    let alert = detection.observe_event(device, &class, now, &kind.event());
    detection.enqueue(alert, now_ms(app));
}

/// Raises the queued alerts one after another until `shutdown` fires.
pub async fn dispatch(
    app: Shared,
    mut raised: tokio::sync::mpsc::Receiver<Raised>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            next = raised.recv() => match next {
                Some((alert, received_ms)) => raise(&app, alert, received_ms, None).await,
                None => return,
            },
            _ = shutdown.changed() => return,
        }
    }
}

/// Raises an alert: stored, counted, sent to the sinks, and given to the playbook. `origin`
/// names where it was raised from when the raise may be repeated after a crash (a worker's
/// outbox entry): a repeated raise stores and counts nothing new, sends the sinks the same
/// message with the same `id` (so a receiver can drop the copy), and runs the playbook only
/// if the first raise did not get as far as linking the alert to an incident.
pub async fn raise(app: &Shared, alert: Alert, received_ms: i64, origin: Option<&str>) {
    let Some(detection) = app.detection.as_ref() else {
        return;
    };
    let stored = match store::insert_alert(&app.db, &alert, received_ms, origin).await {
        Ok(stored) => stored,
        Err(e) => {
            tracing::error!(%e, "an alert could not be stored");
            store::Stored::New(0)
        }
    };
    if let store::Stored::New(_) = stored {
        app.metrics.inc(
            "edgeward_alerts_total",
            format!(
                "kind=\"{}\",severity=\"{}\"",
                alert.kind.name(),
                json!(alert.severity).as_str().unwrap_or_default()
            ),
        );
    }
    let id = stored.id();
    let mut message = json!(alert);
    message["id"] = json!(id);
    message["type"] = json!("alert");
    detection.sinks.send(&alert.device, &message);
    if let store::Stored::Again(_, Some(incident)) = stored {
        tracing::info!(id, incident, "an alert raised again was handled before");
        return;
    }
    if let Err(e) = crate::incidents::on_alert(app, id, &alert, received_ms).await {
        tracing::error!(%e, device = alert.device, "the playbook could not act on an alert");
    }
}

/// Now in Unix milliseconds, from the server's clock.
pub fn now_ms(app: &App) -> i64 {
    i64::try_from(app.clock.now_ns() / 1_000_000).unwrap_or(i64::MAX)
}

/// Checkpoints the detector every `checkpoint_secs` and once more when `shutdown` fires.
pub async fn checkpoints(app: Shared, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let Some(detection) = app.detection.as_ref() else {
        return;
    };
    let period = std::time::Duration::from_secs(detection.config.checkpoint_secs.max(1));
    loop {
        let stop = tokio::select! {
            _ = tokio::time::sleep(period) => false,
            _ = shutdown.changed() => true,
        };
        if let Err(e) = detection.checkpoint(&app.db, app.now()).await {
            tracing::error!(%e, "detector checkpoint failed");
        }
        if stop || *shutdown.borrow() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_fed_at_most_the_rules_threshold_per_window() {
        let (d, _raised) = Detection::new(&DetectionConfig::default()).expect("detection");
        let fed = |now| d.take_refusal("cam", Refusal::AuthFailure, now);
        // The auth-failure rule fires at 5 in 60 s: the sixth and later in the window are
        // only counted.
        let first: Vec<bool> = (0..1000).map(|i| fed(100 + i % 50)).collect();
        assert_eq!(first.iter().filter(|f| **f).count(), 5);
        assert!(fed(160), "a new window feeds again");
        // One attestation failure per window is enough to fire.
        assert!(d.take_refusal("cam", Refusal::AttestationFailed, 100));
        assert!(!d.take_refusal("cam", Refusal::AttestationFailed, 101));
        // Kinds and devices have windows of their own.
        assert!(d.take_refusal("cam2", Refusal::AuthFailure, 100));
        assert!(d.take_refusal("cam", Refusal::RateLimited, 100));
        // The table is bounded: once full, new devices are not fed until windows close.
        for i in 0..MAX_REFUSAL_WINDOWS {
            d.take_refusal(&format!("flood-{i}"), Refusal::RateLimited, 200);
        }
        let open = d.refusals.lock().expect("lock").open.len();
        assert!(open <= MAX_REFUSAL_WINDOWS, "{open}");
        assert!(!d.take_refusal("late", Refusal::RateLimited, 201));
        assert!(d.take_refusal("late", Refusal::RateLimited, 300));
    }

    #[test]
    fn a_fed_event_raises_the_rules_alert() {
        let (d, _raised) = Detection::new(&DetectionConfig::default()).expect("detection");
        let alerts: Vec<Alert> = (0..5)
            .filter_map(|i| d.observe_event("cam", "jetson", 100 + i, &Event::AuthFailure))
            .collect();
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].kind.name(), "auth_failure_burst");
        let a = d.observe_event("cam", "jetson", 110, &Event::AttestationFailed);
        assert_eq!(a.map(|a| a.kind.name()), Some("attestation_failure"));
    }
}
