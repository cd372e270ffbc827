//! What Edgeward adds to a TUF target: the release's custom fields and the device-side
//! policy on them.
//!
//! TUF proves a target is the one the repository's keys signed; it does not say whether it
//! is meant for this device. Each Edgeward target carries, inside the signed targets
//! metadata, `custom.edgeward` = `{version, kind, hardware: [classes], security_counter}`.
//! A device refuses a target that does not list its hardware class, and one whose
//! security counter is below the anti-rollback counter in its secure element (a signed
//! but vulnerable old release). Both checks fail closed: a target without the fields is
//! refused.
//!
//! Time: TUF compares expiry with the update's start time. A device may have no
//! trustworthy clock (no RTC battery: it boots in 1970), so the start time is
//! `max(device clock, secure element time floor)` — see [`reference_time`].

use serde_json::{json, Value};

use crate::tuf::metadata::TargetFile;

/// The kind of thing a release installs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A firmware / OS image, installed into the inactive A/B slot.
    Firmware,
    /// An application, installed into a versioned directory.
    App,
    /// A model, installed into a versioned directory.
    Model,
}

impl Kind {
    /// The name in metadata.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Firmware => "firmware",
            Kind::App => "app",
            Kind::Model => "model",
        }
    }

    /// Parses a name from metadata or the command line.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "firmware" => Some(Kind::Firmware),
            "app" => Some(Kind::App),
            "model" => Some(Kind::Model),
            _ => None,
        }
    }
}

/// Why a signed target is not for this device.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReleaseError {
    /// The target has no (or a malformed) `custom.edgeward` object.
    #[error("target {target} has no valid Edgeward release fields: {reason}")]
    Fields {
        /// Target path.
        target: String,
        /// What is missing or wrong.
        reason: String,
    },
    /// The device's hardware class is not listed.
    #[error("target {target} is for hardware {listed:?}, not for this device's {class:?}")]
    WrongHardware {
        /// Target path.
        target: String,
        /// This device's class.
        class: String,
        /// Classes the release lists.
        listed: Vec<String>,
    },
    /// The release is older than the secure element's anti-rollback counter allows.
    #[error("target {target} has security counter {target_counter}, below the secure element's {element_counter}")]
    CounterTooLow {
        /// Target path.
        target: String,
        /// The release's counter.
        target_counter: u64,
        /// The element's counter.
        element_counter: u64,
    },
}

/// The Edgeward fields of a release target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseInfo {
    /// Release version as the operator named it.
    pub version: String,
    /// What it installs.
    pub kind: Kind,
    /// Hardware classes it is built for.
    pub hardware: Vec<String>,
    /// Anti-rollback counter it carries.
    pub security_counter: u64,
}

impl ReleaseInfo {
    /// The `custom` object for targets metadata.
    pub fn to_custom(&self) -> Value {
        json!({"edgeward": {
            "version": self.version,
            "kind": self.kind.name(),
            "hardware": self.hardware,
            "security_counter": self.security_counter,
        }})
    }

    /// Reads the fields of target `path`.
    pub fn from_target(path: &str, file: &TargetFile) -> Result<Self, ReleaseError> {
        let fail = |reason: &str| ReleaseError::Fields {
            target: path.to_string(),
            reason: reason.to_string(),
        };
        let e = file
            .custom
            .as_ref()
            .and_then(|c| c.get("edgeward"))
            .ok_or_else(|| fail("custom.edgeward is missing"))?;
        let version = e
            .get("version")
            .and_then(Value::as_str)
            .ok_or_else(|| fail("version must be a string"))?
            .to_string();
        let kind = e
            .get("kind")
            .and_then(Value::as_str)
            .and_then(Kind::parse)
            .ok_or_else(|| fail("kind must be firmware, app or model"))?;
        let hardware = e
            .get("hardware")
            .and_then(Value::as_array)
            .ok_or_else(|| fail("hardware must be a list of strings"))?
            .iter()
            .map(|h| h.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| fail("hardware must be a list of strings"))?;
        let security_counter = e
            .get("security_counter")
            .and_then(Value::as_u64)
            .ok_or_else(|| fail("security_counter must be a non-negative integer"))?;
        Ok(ReleaseInfo {
            version,
            kind,
            hardware,
            security_counter,
        })
    }

    /// Whether this device may install the release: its class is listed and the counter
    /// is not below the element's.
    pub fn check_device(
        &self,
        path: &str,
        class: &str,
        element_counter: u64,
    ) -> Result<(), ReleaseError> {
        if !self.hardware.iter().any(|h| h == class) {
            return Err(ReleaseError::WrongHardware {
                target: path.to_string(),
                class: class.to_string(),
                listed: self.hardware.clone(),
            });
        }
        if self.security_counter < element_counter {
            return Err(ReleaseError::CounterTooLow {
                target: path.to_string(),
                target_counter: self.security_counter,
                element_counter,
            });
        }
        Ok(())
    }
}

/// The update's fixed start time: the device clock, but never earlier than the secure
/// element's time floor (the newest trusted time the device has seen). A clock reading
/// 1970 therefore counts as the floor: metadata that expired before the floor is refused,
/// and a freeze can last at most as long as metadata validity past the floor. The floor
/// only moves forward.
pub fn reference_time(clock: i64, time_floor: u64) -> i64 {
    clock.max(i64::try_from(time_floor).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(custom: Value) -> TargetFile {
        TargetFile {
            length: 1,
            hashes: Default::default(),
            custom: Some(custom),
        }
    }

    #[test]
    fn round_trips_and_refuses_wrong_hardware_and_low_counter() {
        let info = ReleaseInfo {
            version: "2.1.0".into(),
            kind: Kind::Firmware,
            hardware: vec!["rpi4".into(), "orin".into()],
            security_counter: 5,
        };
        let parsed = ReleaseInfo::from_target("fw.img", &file(info.to_custom())).unwrap();
        assert_eq!(parsed, info);
        assert_eq!(parsed.check_device("fw.img", "orin", 5), Ok(()));
        assert_eq!(
            parsed
                .check_device("fw.img", "x86", 0)
                .unwrap_err()
                .to_string(),
            "target fw.img is for hardware [\"rpi4\", \"orin\"], not for this device's \"x86\""
        );
        assert_eq!(
            parsed
                .check_device("fw.img", "rpi4", 6)
                .unwrap_err()
                .to_string(),
            "target fw.img has security counter 5, below the secure element's 6"
        );
    }

    #[test]
    fn a_target_without_fields_is_refused() {
        let err = ReleaseInfo::from_target("x", &file(json!({"other": 1}))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "target x has no valid Edgeward release fields: custom.edgeward is missing"
        );
    }

    #[test]
    fn a_1970_clock_uses_the_floor() {
        assert_eq!(reference_time(0, 1_800_000_000), 1_800_000_000);
        assert_eq!(reference_time(1_900_000_000, 1_800_000_000), 1_900_000_000);
    }
}
