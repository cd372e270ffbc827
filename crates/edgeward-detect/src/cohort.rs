//! The cohort baseline: what devices of one hardware class on one firmware version report for
//! a metric, hour by hour. A new device has no history of its own, so until its own baseline
//! has warmed up its points are judged against its peers: it is watched from its first report.
//!
//! Per hour of the day the cohort keeps a robust centre (a Huber-style running estimate: each
//! point moves it by at most a fraction of the spread, so no outlier can drag it far) and the
//! mean absolute deviation from it (of clipped deviations).

use serde::{Deserialize, Serialize};

use crate::baseline::{hour_slot, SEASON_SLOTS};

/// Points a cohort must have seen before it judges anyone.
pub const COHORT_MIN_POINTS: u32 = 200;

/// One cohort's baseline for one metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cohort {
    seen: u32,
    median: [f32; SEASON_SLOTS],
    spread: [f32; SEASON_SLOTS],
    slot_seen: [u32; SEASON_SLOTS],
}

impl Default for Cohort {
    fn default() -> Self {
        Cohort {
            seen: 0,
            median: [0.0; SEASON_SLOTS],
            spread: [0.0; SEASON_SLOTS],
            slot_seen: [0; SEASON_SLOTS],
        }
    }
}

impl Cohort {
    /// Adds one member's point.
    pub fn observe(&mut self, unix_seconds: i64, value: f64) {
        let x = value as f32;
        if !x.is_finite() {
            return;
        }
        let slot = hour_slot(unix_seconds);
        let n = self.slot_seen[slot];
        if n == 0 {
            self.median[slot] = x;
        } else {
            let spread = self.spread[slot].max(1e-3 * self.median[slot].abs() + 1e-6);
            let rate = (1.0 / (n as f32 + 1.0)).max(0.01);
            let d = (x - self.median[slot]).clamp(-6.0 * spread, 6.0 * spread);
            self.median[slot] += rate * d.clamp(-spread, spread);
            self.spread[slot] += rate * (d.abs() - self.spread[slot]);
        }
        self.slot_seen[slot] = n.saturating_add(1);
        self.seen = self.seen.saturating_add(1);
    }

    /// How many spreads `value` is from the cohort's median for that hour, once the cohort
    /// (and that hour) has seen enough points.
    pub fn deviation(&self, unix_seconds: i64, value: f64) -> Option<f32> {
        let slot = hour_slot(unix_seconds);
        if self.seen < COHORT_MIN_POINTS
            || self.slot_seen[slot] < COHORT_MIN_POINTS / SEASON_SLOTS as u32
        {
            return None;
        }
        let spread = self.spread[slot].max(1e-3 * self.median[slot].abs() + 1e-6);
        let d = ((value as f32) - self.median[slot]).abs() / spread;
        d.is_finite().then_some(d)
    }
}
