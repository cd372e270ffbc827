//! The per-device, per-metric behavioural baseline: a streaming detector in constant memory
//! (under 256 bytes of state).
//!
//! Each point is compared with two forecasts: a fast exponentially weighted mean, for series
//! that wander, and a slow level plus a 24-slot hour-of-day profile, for series with a daily
//! cycle. The profile is used only once it has seen two days and explains a good share of the
//! spread, so the baseline is seasonal only where the data is; a point is then surprising
//! only if neither forecast expected it, and a day that departs from the usual profile is
//! judged on its own too. The forecast error divided by the typical error is the surprise.
//! Errors are clipped before they update anything, so one outlier does not drag the baseline,
//! but an outlier confirmed by the next point is a level shift and is followed at once.
//!
//! Each surprise is then judged against this series' own history of surprises (how many
//! standard deviations above their long-run mean it is: an anomaly likelihood, as Numenta's
//! HTM detector computes one), which makes one threshold meaningful across very different
//! devices. Finally an anomaly is reported once: the score is by how much the likelihood
//! exceeds the level recently reported, which decays point by point.

use serde::{Deserialize, Serialize};

/// Hour-of-day slots of the seasonal profile.
pub const SEASON_SLOTS: usize = 24;

/// Tuning of the baseline. One parameter set serves every device and metric.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Params {
    /// Weight of a new point in the fast forecast.
    pub fast_alpha: f32,
    /// Time constant of the seasonal model's level, in seconds.
    pub level_seconds: f32,
    /// Memory of each hour-of-day slot, in days.
    pub slot_days: f32,
    /// Weight of a new error in the typical error of the fast forecast.
    pub error_alpha: f32,
    /// Surprises are clipped to this many typical errors before they update the state.
    pub clip: f32,
    /// Weight of a new surprise in its long-run mean and variance.
    pub long_alpha: f32,
    /// Points before the baseline scores anything.
    pub warmup: u32,
    /// Factor by which the recently reported level decays per point.
    pub peak_decay: f32,
    /// Share of the spread the daily profile must explain before it is used.
    pub min_seasonality: f32,
    /// Surprises are capped at this many typical errors before their likelihood is judged.
    pub cap: f32,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            fast_alpha: 0.5,
            level_seconds: 86_400.0,
            slot_days: 3.0,
            error_alpha: 0.02,
            clip: 10.0,
            long_alpha: 0.002,
            warmup: 50,
            peak_decay: 0.995,
            min_seasonality: 0.3,
            cap: 24.0,
        }
    }
}

/// The state of one device-metric baseline. Plain numbers only, so it serializes as it is
/// and a restarted detector carries on where it stopped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    /// Points seen (saturating).
    pub(crate) seen: u32,
    /// Timestamp of the latest point.
    pub(crate) last: i64,
    /// Typical interval between points, in seconds.
    pub(crate) interval: f32,
    /// Fast exponentially weighted mean.
    pub(crate) fast: f32,
    /// Typical absolute error of the fast forecast.
    pub(crate) fast_error: f32,
    /// Direction of the previous point if it was an outlier (-1, 0 or 1).
    pub(crate) outlier: i8,
    /// Slow level (time constant [`Params::level_seconds`]).
    pub(crate) level: f32,
    /// Typical absolute deviation from the level.
    pub(crate) spread: f32,
    /// Typical absolute deviation from the level plus the hour's offset.
    pub(crate) season_spread: f32,
    /// Hour-of-day offsets from the level.
    pub(crate) slot_mean: [f32; SEASON_SLOTS],
    /// Typical absolute deviation from each hour's forecast.
    pub(crate) slot_dev: [f32; SEASON_SLOTS],
    /// Surprises of the best forecast.
    pub(crate) forecast_track: Track,
    /// Deviations from the daily profile.
    pub(crate) season_track: Track,
    /// The likelihood level most recently reported, decaying.
    pub(crate) peak: f32,
}

/// What the baseline made of one point.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Verdict {
    /// How many typical errors the point is from its forecast.
    pub surprise: f32,
    /// How unusual the recent surprises are for this series, in standard deviations.
    pub likelihood: f32,
    /// The anomaly score in [0, 1): the new part of the likelihood, squashed.
    pub score: f32,
}

impl Default for Baseline {
    fn default() -> Self {
        Self::new()
    }
}

const DAY: f32 = 86_400.0;

impl Baseline {
    /// An empty baseline.
    pub fn new() -> Self {
        Baseline {
            seen: 0,
            last: 0,
            interval: 0.0,
            fast: 0.0,
            fast_error: 0.0,
            outlier: 0,
            level: 0.0,
            spread: 0.0,
            season_spread: 0.0,
            slot_mean: [0.0; SEASON_SLOTS],
            slot_dev: [0.0; SEASON_SLOTS],
            forecast_track: Track::default(),
            season_track: Track::default(),
            peak: 0.0,
        }
    }

    /// Points seen so far (saturating at `u32::MAX`).
    pub fn seen(&self) -> u32 {
        self.seen
    }

    /// How much of the spread around the level the daily profile explains, in [0, 1].
    pub fn seasonality(&self) -> f32 {
        if self.spread <= 0.0 {
            return 0.0;
        }
        (1.0 - self.season_spread / self.spread).clamp(0.0, 1.0)
    }

    /// Feeds one point observed at `unix_seconds` and returns the verdict on it. Non-finite
    /// values are ignored (the state is unchanged and the verdict is zero).
    pub fn update(&mut self, params: &Params, unix_seconds: i64, value: f64) -> Verdict {
        let quiet = Verdict {
            surprise: 0.0,
            likelihood: 0.0,
            score: 0.0,
        };
        let x = value as f32;
        if !x.is_finite() {
            return quiet;
        }
        let slot = hour_slot(unix_seconds);
        if self.seen == 0 {
            self.last = unix_seconds;
            self.fast = x;
            self.level = x;
            self.seen = 1;
            return quiet;
        }
        let step = (unix_seconds - self.last) as f32;
        if step > 0.0 {
            self.interval += if self.interval == 0.0 {
                step
            } else {
                0.05 * (step - self.interval)
            };
            self.last = unix_seconds;
        }
        let dt = if step > 0.0 {
            step.min(DAY)
        } else {
            self.interval.max(1.0)
        };
        let warming = self.seen < params.warmup;
        let ea = if warming {
            1.0 / (self.seen as f32 + 1.0)
        } else {
            params.error_alpha
        };
        let floor = 1e-3 * self.level.abs() + 1e-6;

        // The fast forecast.
        let fast_err = x - self.fast;
        let fast_scale = self.fast_error.max(floor);
        let fast_surprise = fast_err.abs() / fast_scale;
        // An outlier moves the forecast only a little, unless the next point confirms it:
        // then the level has shifted and the forecast follows at once.
        let limit = params.clip * fast_scale;
        let direction = if fast_err > limit {
            1
        } else if fast_err < -limit {
            -1
        } else {
            0
        };
        let confirmed = direction != 0 && direction == self.outlier;
        self.outlier = direction;
        let clip_fast = if confirmed {
            fast_err
        } else {
            clamp(fast_err, limit)
        };
        self.fast_error += ea * (clamp(fast_err, limit).abs() - self.fast_error);
        self.fast += if confirmed {
            fast_err
        } else {
            params.fast_alpha * clip_fast
        };

        // The daily profile: a slow level plus an offset per hour of the day.
        let season_forecast = self.level + self.slot_mean[slot];
        let season_err = x - season_forecast;
        let slot_scale = self.slot_dev[slot]
            .max(self.season_spread * 0.25)
            .max(floor);
        let season_surprise = season_err.abs() / slot_scale;
        let clip_season = clamp(season_err, params.clip * slot_scale);
        let level_err = clamp(x - self.level, params.clip * self.spread.max(floor));
        let la = 1.0 - (-dt / params.level_seconds).exp();
        let sa = (dt / (params.slot_days * 3_600.0)).min(1.0);
        let sa_all = if warming {
            ea
        } else {
            (dt / (params.slot_days * DAY)).min(1.0).max(ea * 0.1)
        };
        self.spread += sa_all * (level_err.abs() - self.spread);
        self.season_spread += sa_all * (clip_season.abs() - self.season_spread);
        self.level += la * clip_season;
        self.slot_mean[slot] += sa * clip_season;
        self.slot_dev[slot] += sa * (clip_season.abs() - self.slot_dev[slot]);
        self.seen = self.seen.saturating_add(1);

        let seasonal = self.seen as f32 * self.interval >= 2.0 * DAY
            && self.seasonality() >= params.min_seasonality;
        let cap = params.cap;
        let forecast_surprise = if seasonal {
            fast_surprise.min(season_surprise)
        } else {
            fast_surprise
        };
        let z_forecast =
            self.forecast_track
                .update(params, warming, self.seen, forecast_surprise.min(cap));
        let z_season =
            self.season_track
                .update(params, warming, self.seen, season_surprise.min(cap));
        if warming {
            return Verdict {
                surprise: forecast_surprise,
                likelihood: 0.0,
                score: 0.0,
            };
        }
        let (surprise, likelihood) = if seasonal && z_season > z_forecast {
            (season_surprise, z_season)
        } else {
            (forecast_surprise, z_forecast)
        };
        let excess = (likelihood - self.peak).max(0.0);
        self.peak = (self.peak * params.peak_decay).max(likelihood);
        Verdict {
            surprise,
            likelihood,
            score: excess / (excess + 10.0),
        }
    }
}

/// One kind of surprise, judged against its own long-run mean and variance.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Track {
    pub(crate) mean: f32,
    pub(crate) var: f32,
}

impl Track {
    /// Adds a surprise; returns how many long-run standard deviations it is above the
    /// long-run mean (0 while warming up).
    fn update(&mut self, params: &Params, warming: bool, seen: u32, surprise: f32) -> f32 {
        let d = surprise - self.mean;
        if warming {
            let k = 1.0 / seen as f32;
            self.mean += k * d;
            self.var += k * (d * (surprise - self.mean) - self.var);
            return 0.0;
        }
        let z = d / self.var.max(1e-6).sqrt();
        self.mean += params.long_alpha * d;
        self.var += params.long_alpha * (d * d - self.var);
        z
    }
}

/// The hour-of-day slot (UTC) of a timestamp.
pub fn hour_slot(unix_seconds: i64) -> usize {
    (unix_seconds.rem_euclid(86_400) / 3_600) as usize
}

fn clamp(v: f32, limit: f32) -> f32 {
    v.max(-limit).min(limit)
}
