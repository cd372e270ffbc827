//! The JSON bodies of the device and admin APIs, parsed and bounded the same way on every
//! side. Each parser takes untrusted bytes and returns a typed value or a message saying
//! what was wrong; unknown fields are refused.

use serde::Deserialize;
use serde_json::Value;

use crate::device_id;

/// Most records in one telemetry batch.
pub const MAX_RECORDS: usize = 1000;
/// Longest command output a device may report.
pub const MAX_OUTPUT: usize = 64 * 1024;
/// Longest CSR accepted at enrollment.
pub const MAX_CSR: usize = 16 * 1024;
/// Longest enrollment token.
pub const MAX_ENROLLMENT_TOKEN: usize = 256;

/// Why a body was refused (answered with 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BodyError(pub String);

fn json<'a, T: Deserialize<'a>>(body: &'a [u8], what: &str) -> Result<T, BodyError> {
    serde_json::from_slice(body).map_err(|e| BodyError(format!("bad {what}: {e}")))
}

/// A JSON object whose fields are checked for well-formedness but not kept (telemetry is
/// stored as sent, so building a map per record would only be thrown away).
struct AnyObject;

impl<'de> Deserialize<'de> for AnyObject {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Fields;
        impl<'de> serde::de::Visitor<'de> for Fields {
            type Value = AnyObject;
            fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut m: A,
            ) -> Result<AnyObject, A::Error> {
                use serde::de::IgnoredAny;
                while m.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(AnyObject)
            }
        }
        d.deserialize_map(Fields)
    }
}

/// A parsed telemetry batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelemetryBatch {
    /// How many records it holds.
    pub records: usize,
    /// The agent's event numbers `first..=last`, when it numbers its events.
    pub seq: Option<(u64, u64)>,
}

/// `POST /v1/device/telemetry`: `{"records": [ {…}, … ]}` with 1–1000 objects, optionally
/// numbered with `"first_seq"` and `"last_seq"` (both or neither; one number per record, in
/// order, starting at 1) so the server can recognise a batch it already stored.
pub fn telemetry(body: &[u8]) -> Result<TelemetryBatch, BodyError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Batch {
        first_seq: Option<u64>,
        last_seq: Option<u64>,
        records: Vec<AnyObject>,
    }
    let b: Batch = json(body, "telemetry batch (expected {\"records\": [ {…}, … ]})")?;
    let n = b.records.len();
    if n == 0 || n > MAX_RECORDS {
        return Err(BodyError(format!(
            "a batch holds 1 to {MAX_RECORDS} records, not {n}"
        )));
    }
    let seq = match (b.first_seq, b.last_seq) {
        (None, None) => None,
        (Some(first), Some(last))
            if first >= 1 && last.checked_sub(first) == Some(n as u64 - 1) =>
        {
            Some((first, last))
        }
        (Some(first), Some(last)) => {
            return Err(BodyError(format!(
                "first_seq {first} and last_seq {last} do not number {n} records from 1 up"
            )))
        }
        _ => return Err(BodyError("first_seq and last_seq go together".into())),
    };
    Ok(TelemetryBatch { records: n, seq })
}

/// `POST /v1/device/commands/{id}/result`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandResult {
    /// Whether the command succeeded.
    pub ok: bool,
    /// What it printed (at most 64 KiB).
    #[serde(default)]
    pub output: String,
}

/// Parses a command result.
pub fn command_result(body: &[u8]) -> Result<CommandResult, BodyError> {
    let r: CommandResult = json(body, "command result")?;
    if r.output.len() > MAX_OUTPUT {
        return Err(BodyError(format!(
            "output is limited to {MAX_OUTPUT} bytes"
        )));
    }
    Ok(r)
}

/// `POST /v1/device/attestation`: a JSON object.
pub fn attestation(body: &[u8]) -> Result<serde_json::Map<String, Value>, BodyError> {
    json(body, "attestation evidence (expected a JSON object)")
}

/// `POST /v1/admin/devices`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewDevice {
    /// The device id.
    pub id: String,
    /// Its hardware class.
    pub hardware_class: String,
}

/// Parses and validates a device registration.
pub fn new_device(body: &[u8]) -> Result<NewDevice, BodyError> {
    let d: NewDevice = json(body, "device")?;
    device_id::validate(&d.id).map_err(|e| BodyError(e.to_string()))?;
    device_id::validate(&d.hardware_class)
        .map_err(|e| BodyError(format!("hardware class: {e}")))?;
    Ok(d)
}

/// `POST /v1/admin/devices/{id}/commands`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewCommand {
    /// The command's kind, e.g. `reboot`.
    pub kind: String,
    /// Its arguments.
    #[serde(default)]
    pub body: Value,
}

/// Parses and validates a command.
pub fn new_command(body: &[u8]) -> Result<NewCommand, BodyError> {
    let c: NewCommand = json(body, "command")?;
    device_id::validate(&c.kind).map_err(|e| BodyError(format!("command kind: {e}")))?;
    Ok(c)
}

/// `POST /v1/admin/keys`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    /// A name for the key.
    pub name: String,
    /// `viewer`, `operator` or `admin`.
    pub role: String,
}

/// Parses and validates an admin-key request.
pub fn new_key(body: &[u8]) -> Result<NewKey, BodyError> {
    let k: NewKey = json(body, "key")?;
    device_id::validate(&k.name).map_err(|e| BodyError(format!("key name: {e}")))?;
    if !matches!(k.role.as_str(), "viewer" | "operator" | "admin") {
        return Err(BodyError(format!(
            "unknown role {:?} (viewer, operator or admin)",
            k.role
        )));
    }
    Ok(k)
}

/// `POST /v1/enroll`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Enrollment {
    /// The one-time enrollment token.
    pub token: String,
    /// The PEM CSR.
    pub csr: String,
}

/// Parses an enrollment request.
pub fn enrollment(body: &[u8]) -> Result<Enrollment, BodyError> {
    let e: Enrollment = json(body, "enrollment")?;
    if e.token.len() > MAX_ENROLLMENT_TOKEN || e.csr.len() > MAX_CSR {
        return Err(BodyError(format!(
            "the token is limited to {MAX_ENROLLMENT_TOKEN} bytes and the CSR to {MAX_CSR}"
        )));
    }
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_bounded_and_strict() {
        let plain = |records| Ok(TelemetryBatch { records, seq: None });
        assert_eq!(telemetry(br#"{"records":[{"a":1},{}]}"#), plain(2));
        assert_eq!(
            telemetry(br#"{"records":[{"a":[1,{"b":null}],"c":"d"}]}"#),
            plain(1)
        );
        assert_eq!(
            telemetry(br#"{"first_seq":7,"last_seq":8,"records":[{},{}]}"#),
            Ok(TelemetryBatch {
                records: 2,
                seq: Some((7, 8))
            })
        );
        assert_eq!(
            telemetry(br#"{"first_seq":7,"last_seq":9,"records":[{},{}]}"#)
                .unwrap_err()
                .0,
            "first_seq 7 and last_seq 9 do not number 2 records from 1 up"
        );
        assert_eq!(
            telemetry(br#"{"first_seq":0,"last_seq":0,"records":[{}]}"#)
                .unwrap_err()
                .0,
            "first_seq 0 and last_seq 0 do not number 1 records from 1 up"
        );
        assert_eq!(
            telemetry(br#"{"last_seq":1,"records":[{}]}"#)
                .unwrap_err()
                .0,
            "first_seq and last_seq go together"
        );
        for bad in [
            &br#"{"records":[{"a":}]}"#[..],
            br#"{"records":[[1]]}"#,
            br#"{"records":[{"a":1]}"#,
            br#"{"records":["x"]}"#,
            &b"{}"[..],
            b"{\"records\":[]}",
            b"{\"records\":[1]}",
            b"{\"records\":[{}],\"x\":1}",
            b"[",
            b"",
        ] {
            assert!(
                telemetry(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let many = format!("{{\"records\":[{}]}}", vec!["{}"; 1001].join(","));
        assert!(telemetry(many.as_bytes()).is_err());
        assert!(new_device(br#"{"id":"a:b","hardware_class":"x"}"#).is_err());
        assert!(new_key(br#"{"name":"k","role":"root"}"#).is_err());
        assert!(command_result(
            format!("{{\"ok\":true,\"output\":\"{}\"}}", "x".repeat(70_000)).as_bytes()
        )
        .is_err());
        assert!(enrollment(br#"{"token":"t","csr":"c"}"#).is_ok());
    }
}
