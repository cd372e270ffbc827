//! What detection reads in a device's telemetry batch (`{"records": [ … ]}`, see
//! docs/detection.md): metric points, rule events and reported locations. The records come
//! from the device, so this is a parser of untrusted input: bounded, total (anything it does
//! not understand is skipped and counted, never a panic) and it never trusts a device's clock
//! beyond the limits the caller gives.
//!
//! - `{"type": "device", "at": T, "metrics": {"name": number, …, "listening_ports": [p, …]},
//!   "location": {"latitude": φ, "longitude": λ}, "firmware": "1.4.2"}`: what
//!   `edgeward-agent` sends. Every finite number in `metrics` is a point of that metric;
//!   `listening_ports` is the ports rule.
//! - `{"type": "event", "at": T, "event": "tamper", "detail": "…"}`: a rule event, named as
//!   in [`crate::rules::Event`] (`model_loaded` with `hash`, `attestation_failed`, …).

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::fleet::MAX_METRIC_NAME;
use crate::geo::Point;
use crate::rules::Event;

/// Most observations taken from one batch (a batch holds at most 1,000 records).
pub const MAX_OBSERVATIONS: usize = 16_384;

/// Longest firmware version kept.
pub const MAX_FIRMWARE: usize = 64;

/// One thing a batch says about the device.
#[derive(Debug, Clone, PartialEq)]
pub enum Observation {
    /// A point of a metric.
    Metric {
        /// The metric's name.
        metric: String,
        /// When it was sampled (Unix seconds, clamped by the caller's limits).
        at: i64,
        /// Its value.
        value: f64,
    },
    /// A rule event.
    Event {
        /// When it happened.
        at: i64,
        /// What happened.
        event: Event,
    },
    /// Where the device says it is.
    Location {
        /// When.
        at: i64,
        /// Where.
        place: Point,
    },
}

/// What a batch held for detection.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observations {
    /// The observations, in record order.
    pub items: Vec<Observation>,
    /// The firmware version the device reported last in the batch, if any.
    pub firmware: Option<String>,
    /// Records or fields skipped as not understood (an unknown type, a bad value).
    pub skipped: usize,
}

/// Why a batch could not be read at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("telemetry batch: {0}")]
pub struct RecordsError(pub String);

#[derive(Deserialize)]
struct Batch {
    records: Vec<Map<String, Value>>,
}

/// Reads a batch body. A record's `at` is used when it lies in `[not_before, not_after]`
/// (the device's clock is trusted that far and no further); otherwise `now` is.
pub fn parse(
    body: &[u8],
    now: i64,
    not_before: i64,
    not_after: i64,
) -> Result<Observations, RecordsError> {
    let batch: Batch = serde_json::from_slice(body).map_err(|e| RecordsError(e.to_string()))?;
    let mut out = Observations::default();
    for record in batch.records {
        if out.items.len() >= MAX_OBSERVATIONS {
            out.skipped += 1;
            continue;
        }
        let at = record
            .get("at")
            .and_then(Value::as_i64)
            .filter(|t| (not_before..=not_after).contains(t))
            .unwrap_or(now);
        match record.get("type").and_then(Value::as_str) {
            Some("device") => device_record(&record, at, &mut out),
            Some("event") => match serde_json::from_value::<Event>(Value::Object(record)) {
                Ok(event) => out.items.push(Observation::Event { at, event }),
                Err(_) => out.skipped += 1,
            },
            _ => out.skipped += 1,
        }
    }
    out.items.truncate(MAX_OBSERVATIONS);
    Ok(out)
}

fn device_record(record: &Map<String, Value>, at: i64, out: &mut Observations) {
    if let Some(metrics) = record.get("metrics").and_then(Value::as_object) {
        for (name, value) in metrics {
            if name == "listening_ports" {
                match serde_json::from_value::<Vec<u16>>(value.clone()) {
                    Ok(ports) => out.items.push(Observation::Event {
                        at,
                        event: Event::ListeningPorts { ports },
                    }),
                    Err(_) => out.skipped += 1,
                }
                continue;
            }
            match value.as_f64().filter(|v| v.is_finite()) {
                Some(value) if name.len() <= MAX_METRIC_NAME => {
                    out.items.push(Observation::Metric {
                        metric: name.clone(),
                        at,
                        value,
                    })
                }
                // Absent readings (null) are not points; anything else is not understood.
                _ if value.is_null() => {}
                _ => out.skipped += 1,
            }
        }
    }
    if let Some(location) = record.get("location").and_then(Value::as_object) {
        let coordinate = |k: &str| location.get(k).and_then(Value::as_f64);
        match coordinate("latitude")
            .zip(coordinate("longitude"))
            .and_then(|(lat, lon)| Point::new(lat, lon))
        {
            Some(place) => out.items.push(Observation::Location { at, place }),
            None => out.skipped += 1,
        }
    }
    if let Some(firmware) = record.get("firmware").and_then(Value::as_str) {
        if !firmware.is_empty()
            && firmware.len() <= MAX_FIRMWARE
            && firmware.bytes().all(|b| b.is_ascii_graphic())
        {
            out.firmware = Some(firmware.to_string());
        } else {
            out.skipped += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_records_and_events_become_observations() {
        let body = br#"{"first_seq":1,"last_seq":3,"records":[
            {"type":"device","at":1000,"firmware":"1.4.2","metrics":{"cpu_percent":12.5,"temperature_c":null,"listening_ports":[22,8443]},
             "location":{"latitude":40.7,"longitude":-74.0,"source":"configured"}},
            {"type":"event","at":1001,"event":"tamper","detail":"case opened"},
            {"type":"queue","at":1002,"dropped_total":3}]}"#;
        let o = parse(body, 2000, 0, 2000).expect("parse");
        assert_eq!(o.firmware.as_deref(), Some("1.4.2"));
        assert_eq!(o.skipped, 1, "the queue record is not for detection");
        assert_eq!(
            o.items[0],
            Observation::Metric {
                metric: "cpu_percent".into(),
                at: 1000,
                value: 12.5
            }
        );
        assert!(o.items.contains(&Observation::Event {
            at: 1001,
            event: Event::Tamper {
                detail: "case opened".into()
            }
        }));
        assert!(o.items.contains(&Observation::Event {
            at: 1000,
            event: Event::ListeningPorts {
                ports: vec![22, 8443]
            }
        }));
        assert!(matches!(o.items.last(), Some(Observation::Event { .. })));
        assert_eq!(o.items.len(), 4);
    }

    #[test]
    fn a_device_clock_outside_the_window_is_replaced_by_now() {
        let body = br#"{"records":[{"type":"device","at":99999999999,"metrics":{"x":1}},
            {"type":"device","at":-5,"metrics":{"x":2}}]}"#;
        let o = parse(body, 500, 100, 600).expect("parse");
        assert!(o
            .items
            .iter()
            .all(|i| matches!(i, Observation::Metric { at: 500, .. })));
    }

    #[test]
    fn bad_values_are_skipped_and_bad_batches_refused() {
        let body = br#"{"records":[{"type":"device","metrics":{"x":"high","y":[1]},
            "location":{"latitude":123,"longitude":0},"firmware":"a b"},
            {"type":"event","event":"no_such_event"}]}"#;
        let o = parse(body, 1, 0, 1).expect("parse");
        assert!(o.items.is_empty());
        assert_eq!(o.skipped, 5);
        // The only refusal is a body that is not a batch: serde's words, kept as they are.
        assert_eq!(
            parse(b"[1,2]", 1, 0, 1).unwrap_err(),
            RecordsError(
                "invalid type: integer `1`, expected a sequence at line 1 column 2".into()
            )
        );
        let cut = parse(b"{\"records\":", 1, 0, 1).unwrap_err().0;
        assert!(cut.starts_with("EOF while parsing a value"), "{cut}");
    }
}
