//! What a device tells the server about one update: the contract between the agent's
//! installer (`edgeward-update`, `edgeward-agent update`) and the server's rollouts.
//!
//! The agent posts one [`UpdateReport`] per phase it reaches for a release — offered,
//! downloaded, installed (switched to, on trial), confirmed (the health check passed, the
//! anti-rollback counter was raised) or reverted — to [`PATH`] over the mTLS device API.
//! A revert always carries a [`Reason`], so a rollout can count failures and say why.
//! Reports a device could not deliver are kept and sent again; the server treats a report
//! as a statement of the device's state and may receive one more than once.
//!
//! Body (`v` = [`VERSION`]; `reason` present exactly when `phase` is `reverted`):
//! `{"v":1,"device_id":"cam-7","target":"fw.img","version":"2.0.0","phase":"reverted",
//!   "reason":"timeout","detail":"no confirmation within 120 s","at":1764921600}`

use serde::{Deserialize, Serialize};

use crate::api::BodyError;
use crate::device_id;

/// Where the agent posts a report (`POST`, JSON body, mTLS device API).
pub const PATH: &str = "/v1/device/update-report";
/// The body format version.
pub const VERSION: u32 = 1;
/// Largest body accepted.
pub const MAX_BODY: usize = 8 * 1024;
/// Longest target path.
pub const MAX_TARGET: usize = 1024;
/// Longest release version.
pub const MAX_VERSION: usize = 128;
/// Longest free-text detail.
pub const MAX_DETAIL: usize = 2048;

/// How far a device got with a release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// The device saw the release in its repository and it passed the device checks.
    Offered,
    /// Every byte was fetched (or reused) and verified into the inactive slot.
    Downloaded,
    /// The device switched to it on trial.
    Installed,
    /// The health check confirmed it; the anti-rollback counter was raised.
    Confirmed,
    /// The device went back to the previous version ([`Reason`] says why).
    Reverted,
}

impl Phase {
    /// The name used on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Offered => "offered",
            Phase::Downloaded => "downloaded",
            Phase::Installed => "installed",
            Phase::Confirmed => "confirmed",
            Phase::Reverted => "reverted",
        }
    }
}

/// Why a device reverted (or refused to switch to) a release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The health check ran and reported failure.
    HealthCheckFailed,
    /// The health check did not confirm within its deadline.
    Timeout,
    /// The agent started N times on the trial version without confirming it.
    CrashLoop,
    /// The new version's bytes did not match the signed metadata (when fetched, or when
    /// re-checked before the switch or at start).
    VerificationFailed,
}

impl Reason {
    /// The code used on the wire and in the device's state file.
    pub fn code(self) -> &'static str {
        match self {
            Reason::HealthCheckFailed => "health_check_failed",
            Reason::Timeout => "timeout",
            Reason::CrashLoop => "crash_loop",
            Reason::VerificationFailed => "verification_failed",
        }
    }
}

/// One report, as the device sends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateReport {
    /// [`VERSION`].
    pub v: u32,
    /// The reporting device (the server checks it is the authenticated one).
    pub device_id: String,
    /// The TUF target path of the release.
    pub target: String,
    /// The release version (`custom.edgeward.version`).
    pub version: String,
    /// The phase reached.
    pub phase: Phase,
    /// Why it reverted; present exactly when `phase` is [`Phase::Reverted`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    /// Human-readable detail (the error that caused a revert), at most [`MAX_DETAIL`] bytes.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
    /// When the phase was reached (Unix seconds, device clock).
    pub at: i64,
}

impl UpdateReport {
    /// The JSON body.
    pub fn to_json(&self) -> Vec<u8> {
        // A struct of strings, numbers and enums always serializes.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Checks the bounds and the phase/reason pairing.
    pub fn validate(&self) -> Result<(), BodyError> {
        let fail = |m: String| Err(BodyError(m));
        if self.v != VERSION {
            return fail(format!(
                "update report version {} (expected {VERSION})",
                self.v
            ));
        }
        device_id::validate(&self.device_id).map_err(|e| BodyError(e.to_string()))?;
        if self.target.is_empty() || self.target.len() > MAX_TARGET {
            return fail(format!("target must be 1 to {MAX_TARGET} bytes"));
        }
        if self.version.is_empty() || self.version.len() > MAX_VERSION {
            return fail(format!("version must be 1 to {MAX_VERSION} bytes"));
        }
        if self.detail.len() > MAX_DETAIL {
            return fail(format!("detail is limited to {MAX_DETAIL} bytes"));
        }
        match (self.phase, self.reason) {
            (Phase::Reverted, None) => fail("a reverted report needs a reason".into()),
            (Phase::Reverted, Some(_)) | (_, None) => Ok(()),
            (p, Some(_)) => fail(format!("a report in phase {} carries no reason", p.name())),
        }
    }
}

/// Parses and checks a report body from a device.
pub fn parse(body: &[u8]) -> Result<UpdateReport, BodyError> {
    if body.len() > MAX_BODY {
        return Err(BodyError(format!(
            "an update report is limited to {MAX_BODY} bytes"
        )));
    }
    let r: UpdateReport =
        serde_json::from_slice(body).map_err(|e| BodyError(format!("bad update report: {e}")))?;
    r.validate()?;
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(phase: Phase, reason: Option<Reason>) -> UpdateReport {
        UpdateReport {
            v: VERSION,
            device_id: "cam-7".into(),
            target: "fw.img".into(),
            version: "2.0.0".into(),
            phase,
            reason,
            detail: String::new(),
            at: 1_764_921_600,
        }
    }

    #[test]
    fn round_trips_the_documented_body() {
        let body = br#"{"v":1,"device_id":"cam-7","target":"fw.img","version":"2.0.0","phase":"reverted","reason":"timeout","detail":"no confirmation within 120 s","at":1764921600}"#;
        let r = parse(body).unwrap();
        assert_eq!(r.phase, Phase::Reverted);
        assert_eq!(r.reason, Some(Reason::Timeout));
        assert_eq!(parse(&r.to_json()).unwrap(), r);
        let ok = report(Phase::Confirmed, None);
        assert_eq!(
            String::from_utf8(ok.to_json()).unwrap(),
            r#"{"v":1,"device_id":"cam-7","target":"fw.img","version":"2.0.0","phase":"confirmed","at":1764921600}"#
        );
    }

    #[test]
    fn every_reason_code_is_its_wire_name() {
        for r in [
            Reason::HealthCheckFailed,
            Reason::Timeout,
            Reason::CrashLoop,
            Reason::VerificationFailed,
        ] {
            assert_eq!(serde_json::to_value(r).unwrap(), r.code());
        }
    }

    #[test]
    fn refuses_unpaired_reasons_bad_ids_unknown_fields_and_oversize() {
        let err = |r: UpdateReport| parse(&r.to_json()).unwrap_err().0;
        assert_eq!(
            err(report(Phase::Reverted, None)),
            "a reverted report needs a reason"
        );
        assert_eq!(
            err(report(Phase::Installed, Some(Reason::Timeout))),
            "a report in phase installed carries no reason"
        );
        let mut bad = report(Phase::Offered, None);
        bad.device_id = "a:b".into();
        assert!(err(bad).contains("device id may only contain"));
        let mut long = report(Phase::Offered, None);
        long.detail = "x".repeat(MAX_DETAIL + 1);
        assert_eq!(err(long), "detail is limited to 2048 bytes");
        assert!(parse(br#"{"v":1,"extra":1}"#)
            .unwrap_err()
            .0
            .contains("unknown field"));
        assert!(parse(
            br#"{"v":1,"device_id":"d","target":"t","version":"1","phase":"exploded","at":0}"#
        )
        .unwrap_err()
        .0
        .contains("unknown variant"));
        assert_eq!(
            parse(&vec![b' '; MAX_BODY + 1]).unwrap_err().0,
            "an update report is limited to 8192 bytes"
        );
    }
}
