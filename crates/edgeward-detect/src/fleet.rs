//! The fleet detector: every device's baselines, rules and geography, and the cohorts they
//! belong to, behind one call per observation. This is what the server's in-process detection
//! (and each scale-out detection worker, for its share of the devices) runs.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::alert::{Alert, AlertKind, Severity};
use crate::baseline::{Baseline, Params};
use crate::cohort::Cohort;
use crate::geo::{Area, CertificateState, GeoConfig, GeoState, Sighting};
use crate::rules::{Event, RuleConfig, RuleState};

/// Metrics tracked per device at most (more are refused, so a device cannot grow its state).
pub const MAX_METRICS_PER_DEVICE: usize = 32;

/// Distinct metric names across the fleet at most.
pub const MAX_METRIC_NAMES: usize = 1024;

/// Longest metric name accepted.
pub const MAX_METRIC_NAME: usize = 64;

/// Tuning of the whole detector.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetConfig {
    /// The baseline's parameters.
    pub params: Params,
    /// A baseline score at or above this raises an alert.
    pub alert_score: f32,
    /// A baseline score at or above this makes the alert high severity.
    pub high_score: f32,
    /// While a device is new, a point this many cohort spreads from its peers raises an alert.
    pub cohort_deviation: f32,
    /// The day-one rules.
    pub rules: RuleConfig,
    /// The geographic checks.
    pub geo: GeoConfig,
}

impl Default for FleetConfig {
    fn default() -> Self {
        FleetConfig {
            params: Params::default(),
            alert_score: 0.5,
            high_score: 0.7,
            cohort_deviation: 12.0,
            rules: RuleConfig::default(),
            geo: GeoConfig::default(),
        }
    }
}

/// Why an observation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FleetError {
    /// The device was never registered with the detector.
    #[error("device {0:?} is not registered with the detector")]
    UnknownDevice(String),
    /// The metric name is empty, too long or not printable ASCII.
    #[error("metric name {0:?} is not 1-{MAX_METRIC_NAME} printable ASCII characters")]
    BadMetric(String),
    /// The device already has [`MAX_METRICS_PER_DEVICE`] metrics.
    #[error("device {0:?} already has {MAX_METRICS_PER_DEVICE} metrics")]
    TooManyMetrics(String),
    /// The fleet already has [`MAX_METRIC_NAMES`] metric names.
    #[error("the fleet already has {MAX_METRIC_NAMES} metric names")]
    TooManyMetricNames,
}

/// Everything the detector remembers about one device.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DeviceState {
    cohort: u32,
    baselines: Vec<(u16, Baseline)>,
    rules: RuleState,
    geo: GeoState,
    certificate: CertificateState,
}

/// The detector for a fleet (or a detection worker's partition of it).
#[derive(Debug, Default)]
pub struct Fleet {
    config: FleetConfig,
    metric_ids: HashMap<String, u16>,
    metric_names: Vec<String>,
    cohort_ids: HashMap<(String, String), u32>,
    cohorts: HashMap<(u32, u16), Cohort>,
    devices: HashMap<String, DeviceState>,
}

impl Fleet {
    /// An empty detector.
    pub fn new(config: FleetConfig) -> Self {
        Fleet {
            config,
            ..Fleet::default()
        }
    }

    /// The configuration.
    pub fn config(&self) -> &FleetConfig {
        &self.config
    }

    /// Devices known.
    pub fn devices(&self) -> usize {
        self.devices.len()
    }

    /// Registers a device (or moves it to another cohort after a firmware update); its
    /// baselines are kept.
    pub fn register(&mut self, device: &str, hardware_class: &str, firmware: &str) {
        let next = self.cohort_ids.len() as u32;
        let cohort = *self
            .cohort_ids
            .entry((hardware_class.to_string(), firmware.to_string()))
            .or_insert(next);
        self.devices.entry(device.to_string()).or_default().cohort = cohort;
    }

    /// Scores one metric point of a device; returns an alert if it is anomalous. While the
    /// device's own baseline warms up, the point is judged against its cohort.
    pub fn observe_metric(
        &mut self,
        device: &str,
        metric: &str,
        at: i64,
        value: f64,
    ) -> Result<Option<Alert>, FleetError> {
        let id = self.metric_id(metric)?;
        let state = self
            .devices
            .get_mut(device)
            .ok_or_else(|| FleetError::UnknownDevice(device.to_string()))?;
        let baseline = match state.baselines.iter().position(|(m, _)| *m == id) {
            Some(i) => &mut state.baselines[i].1,
            None => {
                if state.baselines.len() >= MAX_METRICS_PER_DEVICE {
                    return Err(FleetError::TooManyMetrics(device.to_string()));
                }
                state.baselines.push((id, Baseline::new()));
                &mut state.baselines.last_mut().expect("just pushed").1
            }
        };
        let config = &self.config;
        let warm = baseline.seen() >= config.params.warmup;
        let verdict = baseline.update(&config.params, at, value);
        let cohort = self.cohorts.entry((state.cohort, id)).or_default();
        let peers = if warm {
            None
        } else {
            cohort.deviation(at, value)
        };
        cohort.observe(at, value);
        let alert = |severity, detail| {
            Some(Alert {
                device: device.to_string(),
                kind: AlertKind::Behaviour {
                    metric: metric.to_string(),
                },
                severity,
                at,
                detail,
            })
        };
        if let Some(d) = peers.filter(|d| *d >= config.cohort_deviation) {
            return Ok(alert(
                Severity::Medium,
                format!("{metric} = {value} is {d:.1} spreads from its cohort (new device)"),
            ));
        }
        if warm && verdict.score >= config.alert_score {
            let severity = if verdict.score >= config.high_score {
                Severity::High
            } else {
                Severity::Medium
            };
            return Ok(alert(
                severity,
                format!(
                    "{metric} = {value}: {:.1} typical errors from its forecast, likelihood {:.1} sd (score {:.2})",
                    verdict.surprise, verdict.likelihood, verdict.score
                ),
            ));
        }
        Ok(None)
    }

    /// Applies a rule event; `release_models` are the model hashes of the device's release.
    pub fn observe_event(
        &mut self,
        device: &str,
        at: i64,
        event: &Event,
        release_models: &[String],
    ) -> Result<Option<Alert>, FleetError> {
        let state = self
            .devices
            .get_mut(device)
            .ok_or_else(|| FleetError::UnknownDevice(device.to_string()))?;
        Ok(state
            .rules
            .apply(&self.config.rules, device, at, event, release_models))
    }

    /// Checks a connection of the device: its location against its expected area and its
    /// previous location, and its certificate against other simultaneous uses.
    pub fn observe_connection(
        &mut self,
        device: &str,
        area: Option<&Area>,
        sighting: Sighting,
    ) -> Result<Vec<Alert>, FleetError> {
        let state = self
            .devices
            .get_mut(device)
            .ok_or_else(|| FleetError::UnknownDevice(device.to_string()))?;
        let mut alerts = state.geo.observe(&self.config.geo, device, area, sighting);
        alerts.extend(
            state
                .certificate
                .observe(&self.config.geo, device, sighting),
        );
        Ok(alerts)
    }

    /// A device's baseline for a metric, if it has one.
    pub fn baseline(&self, device: &str, metric: &str) -> Option<&Baseline> {
        let id = self.metric_ids.get(metric)?;
        let state = self.devices.get(device)?;
        state
            .baselines
            .iter()
            .find(|(m, _)| m == id)
            .map(|(_, b)| b)
    }

    fn metric_id(&mut self, metric: &str) -> Result<u16, FleetError> {
        if let Some(id) = self.metric_ids.get(metric) {
            return Ok(*id);
        }
        if metric.is_empty()
            || metric.len() > MAX_METRIC_NAME
            || !metric.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(FleetError::BadMetric(
                metric.chars().take(MAX_METRIC_NAME).collect(),
            ));
        }
        if self.metric_names.len() >= MAX_METRIC_NAMES {
            return Err(FleetError::TooManyMetricNames);
        }
        let id = self.metric_names.len() as u16;
        self.metric_names.push(metric.to_string());
        self.metric_ids.insert(metric.to_string(), id);
        Ok(id)
    }
}

/// What the detector remembers about one device, in a form that does not depend on the
/// detector instance (metric and cohort names rather than ids): a checkpoint restored into a
/// fresh detector after a restart carries on exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceSnapshot {
    /// The cohort's hardware class.
    pub hardware_class: String,
    /// The cohort's firmware version.
    pub firmware: String,
    /// Each metric's baseline.
    pub baselines: Vec<(String, Baseline)>,
    rules: RuleState,
    geo: GeoState,
    certificate: CertificateState,
}

/// A cohort's baseline for one metric, by names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CohortSnapshot {
    /// The hardware class.
    pub hardware_class: String,
    /// The firmware version.
    pub firmware: String,
    /// The metric.
    pub metric: String,
    /// The cohort's state.
    pub cohort: Cohort,
}

impl Fleet {
    fn cohort_names(&self, id: u32) -> (String, String) {
        self.cohort_ids
            .iter()
            .find(|(_, v)| **v == id)
            .map(|(k, _)| k.clone())
            .unwrap_or_default()
    }

    /// The device's cohort (hardware class, firmware), if it is registered.
    pub fn cohort_of(&self, device: &str) -> Option<(String, String)> {
        self.devices
            .get(device)
            .map(|s| self.cohort_names(s.cohort))
    }

    /// A checkpoint of one device, if it is registered.
    pub fn snapshot_device(&self, device: &str) -> Option<DeviceSnapshot> {
        let state = self.devices.get(device)?;
        let (hardware_class, firmware) = self.cohort_names(state.cohort);
        Some(DeviceSnapshot {
            hardware_class,
            firmware,
            baselines: state
                .baselines
                .iter()
                .filter_map(|(id, b)| {
                    let name = self.metric_names.get(usize::from(*id))?;
                    Some((name.clone(), b.clone()))
                })
                .collect(),
            rules: state.rules.clone(),
            geo: state.geo.clone(),
            certificate: state.certificate.clone(),
        })
    }

    /// Restores a device from its checkpoint (replacing what the detector had for it). The
    /// snapshot is checked as an observation would be: metric names and counts in bounds.
    pub fn restore_device(
        &mut self,
        device: &str,
        snapshot: DeviceSnapshot,
    ) -> Result<(), FleetError> {
        if snapshot.baselines.len() > MAX_METRICS_PER_DEVICE {
            return Err(FleetError::TooManyMetrics(device.to_string()));
        }
        let mut baselines = Vec::with_capacity(snapshot.baselines.len());
        for (metric, baseline) in snapshot.baselines {
            let id = self.metric_id(&metric)?;
            if baselines.iter().all(|(m, _)| *m != id) {
                baselines.push((id, baseline));
            }
        }
        self.register(device, &snapshot.hardware_class, &snapshot.firmware);
        let state = self
            .devices
            .get_mut(device)
            .ok_or_else(|| FleetError::UnknownDevice(device.to_string()))?;
        state.baselines = baselines;
        state.rules = snapshot.rules;
        state.geo = snapshot.geo;
        state.certificate = snapshot.certificate;
        Ok(())
    }

    /// Checkpoints of every cohort baseline.
    pub fn snapshot_cohorts(&self) -> Vec<CohortSnapshot> {
        self.cohorts
            .iter()
            .filter_map(|((cohort, metric), state)| {
                let (hardware_class, firmware) = self.cohort_names(*cohort);
                Some(CohortSnapshot {
                    hardware_class,
                    firmware,
                    metric: self.metric_names.get(usize::from(*metric))?.clone(),
                    cohort: state.clone(),
                })
            })
            .collect()
    }

    /// Restores a cohort baseline from its checkpoint.
    pub fn restore_cohort(&mut self, snapshot: CohortSnapshot) -> Result<(), FleetError> {
        let metric = self.metric_id(&snapshot.metric)?;
        let next = self.cohort_ids.len() as u32;
        let cohort = *self
            .cohort_ids
            .entry((snapshot.hardware_class, snapshot.firmware))
            .or_insert(next);
        self.cohorts.insert((cohort, metric), snapshot.cohort);
        Ok(())
    }
}
