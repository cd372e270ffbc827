//! A baseline's state as fixed-size bytes, for checkpoints (a detection worker's state in
//! PostgreSQL, a restart of the embedded detector). Decoding checks everything: a stored
//! state comes back exactly, and damaged bytes give a typed error, never a poisoned baseline.

use crate::baseline::{Baseline, Track, SEASON_SLOTS};

/// Format version written as the first byte.
pub const STATE_VERSION: u8 = 1;

/// Length of an encoded state.
pub const STATE_BYTES: usize = 1 + 4 + 8 + 4 * 3 + 1 + 4 * 3 + 4 * 2 * SEASON_SLOTS + 4 * 4 + 4;

/// Why stored state bytes were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    /// The length is not [`STATE_BYTES`].
    #[error("baseline state is {0} bytes, expected {STATE_BYTES}")]
    Length(usize),
    /// The version byte is unknown.
    #[error("baseline state version {0} is not supported (expected {STATE_VERSION})")]
    Version(u8),
    /// A field holds a value no baseline can have.
    #[error("baseline state field {0} is out of range")]
    Field(&'static str),
}

impl Baseline {
    /// The state as [`STATE_BYTES`] little-endian bytes.
    pub fn to_bytes(&self) -> [u8; STATE_BYTES] {
        let mut out = [0u8; STATE_BYTES];
        let mut w = Writer {
            out: &mut out,
            at: 0,
        };
        w.put(&[STATE_VERSION]);
        w.put(&self.seen.to_le_bytes());
        w.put(&self.last.to_le_bytes());
        for v in [self.interval, self.fast, self.fast_error] {
            w.put(&v.to_le_bytes());
        }
        w.put(&self.outlier.to_le_bytes());
        for v in [self.level, self.spread, self.season_spread] {
            w.put(&v.to_le_bytes());
        }
        for v in self.slot_mean.iter().chain(&self.slot_dev) {
            w.put(&v.to_le_bytes());
        }
        for track in [&self.forecast_track, &self.season_track] {
            w.put(&track.mean.to_le_bytes());
            w.put(&track.var.to_le_bytes());
        }
        w.put(&self.peak.to_le_bytes());
        out
    }

    /// Restores a state written by [`Baseline::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Baseline, StateError> {
        if bytes.len() != STATE_BYTES {
            return Err(StateError::Length(bytes.len()));
        }
        let mut r = Reader { bytes, at: 0 };
        let version = r.take::<1>()[0];
        if version != STATE_VERSION {
            return Err(StateError::Version(version));
        }
        let seen = u32::from_le_bytes(r.take());
        let last = i64::from_le_bytes(r.take());
        let interval = r.nonnegative("interval")?;
        let fast = r.finite("fast")?;
        let fast_error = r.nonnegative("fast_error")?;
        let outlier = i8::from_le_bytes(r.take());
        if !(-1..=1).contains(&outlier) {
            return Err(StateError::Field("outlier"));
        }
        let level = r.finite("level")?;
        let spread = r.nonnegative("spread")?;
        let season_spread = r.nonnegative("season_spread")?;
        let mut slot_mean = [0.0; SEASON_SLOTS];
        for v in &mut slot_mean {
            *v = r.finite("slot_mean")?;
        }
        let mut slot_dev = [0.0; SEASON_SLOTS];
        for v in &mut slot_dev {
            *v = r.nonnegative("slot_dev")?;
        }
        let forecast_track = Track {
            mean: r.finite("track mean")?,
            var: r.nonnegative("track var")?,
        };
        let season_track = Track {
            mean: r.finite("track mean")?,
            var: r.nonnegative("track var")?,
        };
        let peak = r.finite("peak")?;
        Ok(Baseline {
            seen,
            last,
            interval,
            fast,
            fast_error,
            outlier,
            level,
            spread,
            season_spread,
            slot_mean,
            slot_dev,
            forecast_track,
            season_track,
            peak,
        })
    }
}

struct Writer<'a> {
    out: &'a mut [u8; STATE_BYTES],
    at: usize,
}

impl Writer<'_> {
    fn put(&mut self, bytes: &[u8]) {
        self.out[self.at..self.at + bytes.len()].copy_from_slice(bytes);
        self.at += bytes.len();
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    /// The next `N` bytes; the caller checked the total length up front.
    fn take<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        out.copy_from_slice(&self.bytes[self.at..self.at + N]);
        self.at += N;
        out
    }

    fn finite(&mut self, field: &'static str) -> Result<f32, StateError> {
        let v = f32::from_le_bytes(self.take());
        if v.is_finite() {
            Ok(v)
        } else {
            Err(StateError::Field(field))
        }
    }

    fn nonnegative(&mut self, field: &'static str) -> Result<f32, StateError> {
        let v = self.finite(field)?;
        if v >= 0.0 {
            Ok(v)
        } else {
            Err(StateError::Field(field))
        }
    }
}
