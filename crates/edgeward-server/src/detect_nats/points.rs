//! What a detection worker scores in a telemetry batch: every numeric top-level field of
//! every record is one point of the metric of that name, at the record's `ts` (Unix
//! seconds) when it has one, else when the server received the batch. The batch was
//! checked by the server before it was published; a worker still parses it as untrusted.

use serde_json::Value;

/// Fields that are not metrics.
const NOT_METRICS: [&str; 3] = ["ts", "seq", "at"];

/// Longest metric name scored (longer ones are skipped and counted).
pub const MAX_METRIC_NAME: usize = 64;

/// One metric value.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// The metric's name.
    pub metric: String,
    /// Unix seconds.
    pub at: i64,
    /// The value.
    pub value: f64,
}

/// The points of a batch; `None` if it is not a telemetry batch (`{"records": [...]}`).
pub fn points(batch: &[u8], received_at: i64) -> Option<Vec<Point>> {
    let v: Value = serde_json::from_slice(batch).ok()?;
    let records = v.get("records")?.as_array()?;
    let mut out = Vec::new();
    for record in records {
        let Some(fields) = record.as_object() else {
            continue;
        };
        let at = fields
            .get("ts")
            .and_then(Value::as_i64)
            .unwrap_or(received_at);
        for (name, value) in fields {
            let Some(value) = value.as_f64().filter(|v| v.is_finite()) else {
                continue;
            };
            if NOT_METRICS.contains(&name.as_str())
                || name.is_empty()
                || name.len() > MAX_METRIC_NAME
                || !name.bytes().all(|b| b.is_ascii_graphic())
            {
                continue;
            }
            out.push(Point {
                metric: name.clone(),
                at,
                value,
            });
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_fields_are_points() {
        let p = points(
            br#"{"records":[{"ts":100,"temp":41.5,"fw":"1.2","rate":7},{"temp":40}]}"#,
            999,
        )
        .expect("batch");
        assert_eq!(p.len(), 3);
        assert_eq!(p[0].at, 100);
        assert_eq!(p[2].at, 999);
        assert!(points(b"[1,2]", 0).is_none());
        assert!(points(b"{\"records\": 3}", 0).is_none());
    }
}
