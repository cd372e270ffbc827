//! The post-mortem: an incident as a document an operator can file, in Markdown or HTML.
//! Summary, timeline (every event and action with its actor), detections, actions and who
//! took them, evidence hashes, affected devices, the device's metrics around the detection
//! (a text sparkline in Markdown, an inline SVG chart in HTML), and the root-cause and
//! lessons fields the operator fills in (`edgeward incidents close --root-cause … --lessons …`).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use edgeward_detect::records::{self, Observation};
use serde_json::Value;

/// The report's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Markdown.
    Markdown,
    /// A self-contained HTML page.
    Html,
}

impl std::str::FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "md" | "markdown" => Ok(Format::Markdown),
            "html" => Ok(Format::Html),
            other => Err(format!("report format {other:?}: expected md or html")),
        }
    }
}

impl Format {
    /// The HTTP content type.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Markdown => "text/markdown; charset=utf-8",
            Format::Html => "text/html; charset=utf-8",
        }
    }
}

/// Most metrics charted.
const MAX_CHARTS: usize = 4;

/// A metric's points around the detection: (Unix seconds, value).
type Series = BTreeMap<String, Vec<(i64, f64)>>;

/// The device's metric series from its stored telemetry, preferring the metrics its
/// behaviour alerts named.
fn series(details: &Value, telemetry: &[(i64, String)]) -> Series {
    let mut all: Series = BTreeMap::new();
    for (received, body) in telemetry {
        let Ok(o) = records::parse(body.as_bytes(), *received, i64::MIN, i64::MAX) else {
            continue;
        };
        for item in o.items {
            if let Observation::Metric { metric, at, value } = item {
                all.entry(metric).or_default().push((at, value));
            }
        }
    }
    for points in all.values_mut() {
        points.sort_by_key(|p| p.0);
    }
    let named: Vec<String> = details["alerts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["body"]["metric"].as_str().map(str::to_string))
        .collect();
    let mut chosen: Series = all
        .iter()
        .filter(|(m, _)| named.contains(m))
        .map(|(m, p)| (m.clone(), p.clone()))
        .collect();
    for (m, p) in &all {
        if chosen.len() >= MAX_CHARTS {
            break;
        }
        chosen.entry(m.clone()).or_insert_with(|| p.clone());
    }
    chosen
}

fn ms_text(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(time::macros::format_description!(
                "[year]-[month]-[day] [hour]:[minute]:[second].[subsecond digits:3]Z"
            ))
            .ok()
        })
        .unwrap_or_else(|| ms.to_string())
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "—".to_string(),
        other => other.to_string(),
    }
}

/// Renders the report.
pub fn render(format: Format, details: &Value, telemetry: &[(i64, String)]) -> String {
    let charts = series(details, telemetry);
    match format {
        Format::Markdown => markdown(details, &charts),
        Format::Html => html(details, &charts),
    }
}

/// A one-line sparkline of `points`.
pub fn sparkline(points: &[(i64, f64)]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let (lo, hi) = bounds(points);
    // At most 120 characters: every n-th point.
    let step = points.len().div_ceil(120).max(1);
    points
        .iter()
        .step_by(step)
        .map(|(_, v)| {
            let f = if hi > lo { (v - lo) / (hi - lo) } else { 0.5 };
            BARS[((f * 7.0).round() as usize).min(7)]
        })
        .collect()
}

fn bounds(points: &[(i64, f64)]) -> (f64, f64) {
    points
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), (_, v)| {
            (lo.min(*v), hi.max(*v))
        })
}

fn markdown(d: &Value, charts: &Series) -> String {
    let i = &d["incident"];
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Post-mortem: incident {} — {}\n",
        s(&i["id"]),
        s(&i["title"])
    );
    let _ = writeln!(out, "## Summary\n");
    let _ = writeln!(out, "| | |\n|---|---|");
    for (k, v) in [
        ("Device", s(&i["device_id"])),
        ("Status", s(&i["status"])),
        ("Severity", s(&i["severity"])),
        ("Playbook rule", s(&i["rule"])),
        (
            "Triggering telemetry",
            i["trigger_ms"].as_i64().map(ms_text).unwrap_or_default(),
        ),
        (
            "Opened",
            i["opened_ms"].as_i64().map(ms_text).unwrap_or_default(),
        ),
        (
            "Contained",
            i["contained_ms"]
                .as_i64()
                .map(ms_text)
                .unwrap_or_else(|| "—".into()),
        ),
        (
            "Time to containment",
            d["containment_ms"]
                .as_i64()
                .map(|m| format!("{m} ms"))
                .unwrap_or_else(|| "—".into()),
        ),
        (
            "Closed",
            i["closed_ms"]
                .as_i64()
                .map(ms_text)
                .unwrap_or_else(|| "—".into()),
        ),
        ("Updates held", s(&d["updates_held"])),
    ] {
        let _ = writeln!(out, "| {k} | {} |", md_cell(&v));
    }
    let _ = writeln!(out, "\n## Affected devices\n\n- {}\n", s(&i["device_id"]));
    let _ = writeln!(
        out,
        "## Detections\n\n| alert | kind | severity | observed | detail |\n|---|---|---|---|---|"
    );
    for a in d["alerts"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "| #{} | {} | {} | {} | {} |",
            s(&a["id"]),
            s(&a["kind"]),
            s(&a["severity"]),
            a["received_ms"].as_i64().map(ms_text).unwrap_or_default(),
            md_cell(&s(&a["detail"]))
        );
    }
    let _ = writeln!(
        out,
        "\n## Timeline\n\n| time | actor | event | detail |\n|---|---|---|---|"
    );
    for e in d["timeline"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            e["at_ms"].as_i64().map(ms_text).unwrap_or_default(),
            md_cell(&s(&e["actor"])),
            md_cell(&s(&e["kind"])),
            md_cell(&s(&e["detail"]))
        );
    }
    let _ = writeln!(out, "\n## Actions and who took them\n");
    for e in d["timeline"].as_array().into_iter().flatten() {
        if e["actor"] != "detector" && e["kind"] != "alert" {
            let _ = writeln!(
                out,
                "- {} by {}: {}",
                s(&e["kind"]),
                s(&e["actor"]),
                md_cell(&s(&e["detail"]))
            );
        }
    }
    for a in d["actions"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "- {} (action #{}) requested by {}: {}{}",
            s(&a["action"]),
            s(&a["id"]),
            s(&a["requested_by"]),
            s(&a["status"]),
            a["decided_by"]
                .as_str()
                .map(|b| format!(" by {b}"))
                .unwrap_or_default()
        );
    }
    let _ = writeln!(out, "\n## Evidence\n");
    let evidence = d["evidence"].as_array().cloned().unwrap_or_default();
    if evidence.is_empty() {
        let _ = writeln!(out, "No forensic bundle received.");
    }
    for e in evidence {
        let _ = writeln!(
            out,
            "- bundle #{}: sha256 `{}`",
            s(&e["upload"]),
            s(&e["sha256"])
        );
    }
    let _ = writeln!(out, "\n## Metrics around the detection\n");
    if charts.is_empty() {
        let _ = writeln!(out, "No metric telemetry in the hour before the detection.");
    }
    for (metric, points) in charts {
        let (lo, hi) = bounds(points);
        let _ = writeln!(
            out,
            "- `{metric}` ({} points, {lo} … {hi}):\n\n  `{}`\n",
            points.len(),
            sparkline(points)
        );
    }
    let _ = writeln!(
        out,
        "## Root cause\n\n{}\n",
        i["root_cause"]
            .as_str()
            .unwrap_or("_(to be filled in by the operator)_")
    );
    let _ = writeln!(
        out,
        "## Lessons\n\n{}",
        i["lessons"]
            .as_str()
            .unwrap_or("_(to be filled in by the operator)_")
    );
    out
}

fn md_cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// Escapes text for HTML.
fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// An inline SVG line chart of `points` with the detection time marked.
fn svg(points: &[(i64, f64)], trigger: i64) -> String {
    let (w, h, pad) = (640.0, 160.0, 24.0);
    let (lo, hi) = bounds(points);
    let (t0, t1) = (
        points.first().map(|p| p.0).unwrap_or(0).min(trigger),
        points.last().map(|p| p.0).unwrap_or(0).max(trigger),
    );
    let x = |t: i64| pad + (t - t0) as f64 / (t1 - t0).max(1) as f64 * (w - 2.0 * pad);
    let y = |v: f64| {
        let f = if hi > lo { (v - lo) / (hi - lo) } else { 0.5 };
        h - pad - f * (h - 2.0 * pad)
    };
    let line: Vec<String> = points
        .iter()
        .map(|(t, v)| format!("{:.1},{:.1}", x(*t), y(*v)))
        .collect();
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" role=\"img\">\
<rect width=\"{w}\" height=\"{h}\" fill=\"#fafafa\" stroke=\"#ccc\"/>\
<polyline fill=\"none\" stroke=\"#2563eb\" stroke-width=\"1.5\" points=\"{}\"/>\
<line x1=\"{tx:.1}\" y1=\"{pad}\" x2=\"{tx:.1}\" y2=\"{yb}\" stroke=\"#dc2626\" stroke-dasharray=\"4 3\"/>\
<text x=\"{tx:.1}\" y=\"14\" font-size=\"11\" fill=\"#dc2626\" text-anchor=\"middle\">detection</text>\
<text x=\"2\" y=\"{pad}\" font-size=\"10\">{hi}</text><text x=\"2\" y=\"{yb}\" font-size=\"10\">{lo}</text></svg>",
        line.join(" "),
        tx = x(trigger),
        yb = h - pad,
    )
}

fn html(d: &Value, charts: &Series) -> String {
    // Markdown's content, as HTML: the same sections.
    let i = &d["incident"];
    let mut out = String::from("<!doctype html><html><head><meta charset=\"utf-8\"><title>");
    let _ = write!(out, "Post-mortem: incident {}</title>", esc(&s(&i["id"])));
    out.push_str("<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left}</style></head><body>");
    let _ = write!(
        out,
        "<h1>Post-mortem: incident {} — {}</h1>",
        esc(&s(&i["id"])),
        esc(&s(&i["title"]))
    );
    out.push_str("<h2>Summary</h2><table>");
    for (k, v) in [
        ("Device", s(&i["device_id"])),
        ("Status", s(&i["status"])),
        ("Severity", s(&i["severity"])),
        ("Playbook rule", s(&i["rule"])),
        (
            "Triggering telemetry",
            i["trigger_ms"].as_i64().map(ms_text).unwrap_or_default(),
        ),
        (
            "Contained",
            i["contained_ms"]
                .as_i64()
                .map(ms_text)
                .unwrap_or_else(|| "—".into()),
        ),
        (
            "Time to containment",
            d["containment_ms"]
                .as_i64()
                .map(|m| format!("{m} ms"))
                .unwrap_or_else(|| "—".into()),
        ),
        (
            "Closed",
            i["closed_ms"]
                .as_i64()
                .map(ms_text)
                .unwrap_or_else(|| "—".into()),
        ),
    ] {
        let _ = write!(out, "<tr><th>{k}</th><td>{}</td></tr>", esc(&v));
    }
    let _ = write!(
        out,
        "</table><h2>Affected devices</h2><ul><li>{}</li></ul>",
        esc(&s(&i["device_id"]))
    );
    out.push_str("<h2>Detections</h2><table><tr><th>alert</th><th>kind</th><th>severity</th><th>detail</th></tr>");
    for a in d["alerts"].as_array().into_iter().flatten() {
        let _ = write!(
            out,
            "<tr><td>#{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&s(&a["id"])),
            esc(&s(&a["kind"])),
            esc(&s(&a["severity"])),
            esc(&s(&a["detail"]))
        );
    }
    out.push_str("</table><h2>Timeline</h2><table><tr><th>time</th><th>actor</th><th>event</th><th>detail</th></tr>");
    for e in d["timeline"].as_array().into_iter().flatten() {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&e["at_ms"].as_i64().map(ms_text).unwrap_or_default()),
            esc(&s(&e["actor"])),
            esc(&s(&e["kind"])),
            esc(&s(&e["detail"]))
        );
    }
    out.push_str("</table><h2>Actions and who took them</h2><ul>");
    for a in d["actions"].as_array().into_iter().flatten() {
        let _ = write!(
            out,
            "<li>{} (action #{}) requested by {}: {} {}</li>",
            esc(&s(&a["action"])),
            esc(&s(&a["id"])),
            esc(&s(&a["requested_by"])),
            esc(&s(&a["status"])),
            esc(a["decided_by"].as_str().unwrap_or(""))
        );
    }
    out.push_str("</ul><h2>Evidence</h2><ul>");
    for e in d["evidence"].as_array().into_iter().flatten() {
        let _ = write!(
            out,
            "<li>bundle #{}: sha256 <code>{}</code></li>",
            esc(&s(&e["upload"])),
            esc(&s(&e["sha256"]))
        );
    }
    out.push_str("</ul><h2>Metrics around the detection</h2>");
    let trigger = i["trigger_ms"].as_i64().unwrap_or(0) / 1000;
    for (metric, points) in charts {
        let _ = write!(out, "<h3>{}</h3>{}", esc(metric), svg(points, trigger));
    }
    let _ = write!(
        out,
        "<h2>Root cause</h2><p>{}</p><h2>Lessons</h2><p>{}</p></body></html>",
        esc(i["root_cause"]
            .as_str()
            .unwrap_or("(to be filled in by the operator)")),
        esc(i["lessons"]
            .as_str()
            .unwrap_or("(to be filled in by the operator)"))
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn both_formats_carry_every_section_and_escape_what_the_device_wrote() {
        let details = json!({
            "incident": {"id": 7, "device_id": "cam-1", "status": "closed", "severity": "critical",
                "title": "tamper: <script>alert(1)</script>", "rule": "contain-compromise",
                "trigger_ms": 1_767_225_600_000i64, "opened_ms": 1_767_225_600_010i64,
                "contained_ms": 1_767_225_600_120i64, "closed_ms": 1_767_229_200_000i64,
                "root_cause": "case opened in transit", "lessons": null},
            "containment_ms": 120,
            "alerts": [{"id": 3, "kind": "behaviour", "severity": "high", "detail": "x | y",
                "received_ms": 1_767_225_600_000i64, "body": {"metric": "inference_rate"}}],
            "timeline": [{"at_ms": 1_767_225_600_050i64, "actor": "playbook:contain-compromise",
                "kind": "quarantine", "detail": "active -> quarantined"}],
            "actions": [{"id": 1, "action": "wipe", "status": "done", "requested_by": "playbook:contain-compromise", "decided_by": "admin:alice"}],
            "evidence": [{"upload": 4, "sha256": "ab".repeat(32)}],
            "updates_held": false
        });
        let telemetry: Vec<(i64, String)> = (0..30)
            .map(|k| {
                let v = if k == 29 { 1000.0 } else { 100.0 + k as f64 };
                (
                    1_767_225_600 - 60 * (29 - k),
                    format!(
                        r#"{{"records":[{{"type":"device","metrics":{{"inference_rate":{v}}}}}]}}"#
                    ),
                )
            })
            .collect();
        let md = render(Format::Markdown, &details, &telemetry);
        for section in [
            "## Summary",
            "## Timeline",
            "## Detections",
            "## Actions",
            "## Evidence",
            "## Affected devices",
            "## Metrics",
            "## Root cause",
            "## Lessons",
        ] {
            assert!(md.contains(section), "{section} missing:\n{md}");
        }
        assert!(
            md.contains("120 ms") && md.contains("admin:alice") && md.contains(&"ab".repeat(32))
        );
        assert!(md.contains("case opened in transit") && md.contains("to be filled in"));
        assert!(md.contains('█') && md.contains("x \\| y"), "{md}");
        let html = render(Format::Html, &details, &telemetry);
        assert!(html.contains("<svg") && html.contains("<polyline") && html.contains("detection"));
        assert!(!html.contains("<script>") && html.contains("&lt;script&gt;"));
        assert_eq!(sparkline(&[(0, 1.0), (1, 1.0)]), "▅▅");
    }
}
