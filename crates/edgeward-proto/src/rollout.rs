//! The body of `POST /v1/admin/releases/{version}/rollout` (`edgeward release rollout`):
//! which devices a release is offered to — a percentage of the fleet, a list of devices,
//! or a hardware class, exactly one — and when the rollout halts itself (failure-rate
//! threshold in percent, minimum sample of finished updates).
//!
//! Percentages are kept in basis points (hundredths of a percent) so that the server's
//! bucketing and its comparisons are integer arithmetic; a value finer than that, a
//! non-finite number, or one outside its range is refused, not rounded.

use serde::Deserialize;

use crate::{api::BodyError, device_id};

/// Most devices one `devices` rollout may name (larger groups: a hardware class or a
/// percentage).
pub const MAX_DEVICES: usize = 1000;
/// The failure threshold when none is given: 5 %.
pub const DEFAULT_THRESHOLD_BP: u32 = 500;
/// The minimum number of finished (confirmed or reverted) updates in a stage before its
/// failure rate can halt it, when none is given.
pub const DEFAULT_MIN_SAMPLE: u32 = 10;
/// Largest minimum sample.
pub const MAX_MIN_SAMPLE: u32 = 1_000_000;

/// Who is offered the release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// This share of devices, in basis points (1..=10000), chosen by a hash of the device
    /// id and the version, so the same devices stay chosen as the share grows.
    Percent(u32),
    /// These devices.
    Devices(Vec<String>),
    /// Every device of this hardware class.
    Hardware(String),
}

/// A validated rollout request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rollout {
    /// Who is offered the release.
    pub selector: Selector,
    /// The failure rate, in basis points, above which the stage halts (0..=10000).
    pub threshold_bp: u32,
    /// Finished updates needed in the stage before it can halt (at least 1).
    pub min_sample: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    percent: Option<f64>,
    devices: Option<Vec<String>>,
    hardware: Option<String>,
    threshold: Option<f64>,
    min_sample: Option<u32>,
}

/// `value` percent in basis points, if it is finite, within `min..=10000` basis points and
/// a whole number of them.
pub fn basis_points(value: f64, min: u32) -> Option<u32> {
    let bp = value * 100.0;
    if !bp.is_finite() || (bp - bp.round()).abs() > 1e-6 {
        return None;
    }
    let bp = bp.round();
    (f64::from(min)..=10_000.0)
        .contains(&bp)
        .then_some(bp as u32)
}

/// Parses and validates a rollout request.
pub fn rollout(body: &[u8]) -> Result<Rollout, BodyError> {
    let b: Body =
        serde_json::from_slice(body).map_err(|e| BodyError(format!("bad rollout: {e}")))?;
    let selector = match (b.percent, b.devices, b.hardware) {
        (Some(p), None, None) => Selector::Percent(basis_points(p, 1).ok_or_else(|| {
            BodyError(format!(
                "percent must be above 0 and at most 100, in steps of 0.01 (got {p})"
            ))
        })?),
        (None, Some(devices), None) => {
            if devices.is_empty() || devices.len() > MAX_DEVICES {
                return Err(BodyError(format!(
                    "devices must list 1 to {MAX_DEVICES} device ids"
                )));
            }
            for d in &devices {
                device_id::validate(d).map_err(|e| BodyError(format!("devices: {e}")))?;
            }
            let mut devices = devices;
            devices.sort();
            devices.dedup();
            Selector::Devices(devices)
        }
        (None, None, Some(class)) => {
            device_id::validate(&class).map_err(|e| BodyError(format!("hardware: {e}")))?;
            Selector::Hardware(class)
        }
        _ => {
            return Err(BodyError(
                "give exactly one of percent, devices and hardware".into(),
            ))
        }
    };
    let threshold_bp = match b.threshold {
        None => DEFAULT_THRESHOLD_BP,
        Some(t) => basis_points(t, 0).ok_or_else(|| {
            BodyError(format!(
                "threshold must be 0 to 100 percent, in steps of 0.01 (got {t})"
            ))
        })?,
    };
    let min_sample = b.min_sample.unwrap_or(DEFAULT_MIN_SAMPLE);
    if !(1..=MAX_MIN_SAMPLE).contains(&min_sample) {
        return Err(BodyError(format!(
            "min_sample must be 1 to {MAX_MIN_SAMPLE}"
        )));
    }
    Ok(Rollout {
        selector,
        threshold_bp,
        min_sample,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(body: &str) -> String {
        rollout(body.as_bytes()).unwrap_err().0
    }

    #[test]
    fn one_selector_with_defaults() {
        assert_eq!(
            rollout(br#"{"percent": 12.5}"#),
            Ok(Rollout {
                selector: Selector::Percent(1250),
                threshold_bp: DEFAULT_THRESHOLD_BP,
                min_sample: DEFAULT_MIN_SAMPLE
            })
        );
        assert_eq!(
            rollout(br#"{"devices": ["b", "a", "b"], "threshold": 0, "min_sample": 1}"#),
            Ok(Rollout {
                selector: Selector::Devices(vec!["a".into(), "b".into()]),
                threshold_bp: 0,
                min_sample: 1
            })
        );
        assert_eq!(
            rollout(br#"{"hardware": "cam", "threshold": 2.5}"#)
                .expect("ok")
                .threshold_bp,
            250
        );
    }

    #[test]
    fn bad_values_are_refused_not_rounded() {
        for p in ["0", "-1", "100.01", "12.345", "1e400"] {
            assert!(
                err(&format!(r#"{{"percent": {p}}}"#)).starts_with("percent must")
                    || err(&format!(r#"{{"percent": {p}}}"#)).starts_with("bad rollout"),
                "{p}"
            );
        }
        assert_eq!(
            err(r#"{"percent": 5, "hardware": "cam"}"#),
            "give exactly one of percent, devices and hardware"
        );
        assert_eq!(
            err("{}"),
            "give exactly one of percent, devices and hardware"
        );
        assert!(err(r#"{"devices": []}"#).starts_with("devices must list"));
        assert!(err(r#"{"devices": ["../x"]}"#).starts_with("devices: "));
        assert!(err(r#"{"hardware": "a b"}"#).starts_with("hardware: "));
        assert!(err(r#"{"percent": 5, "threshold": 101}"#).starts_with("threshold must"));
        assert!(err(r#"{"percent": 5, "min_sample": 0}"#).starts_with("min_sample must"));
        assert!(err(r#"{"percent": 5, "stage": 2}"#).contains("unknown field"));
    }
}
