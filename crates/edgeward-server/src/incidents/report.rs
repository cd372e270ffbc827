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
    let c = content(details);
    match format {
        Format::Markdown => markdown(&c, &charts),
        Format::Html => html(
            &c,
            &charts,
            details["incident"]["trigger_ms"].as_i64().unwrap_or(0),
        ),
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

/// What the report says, read once from the incident's details; the Markdown and HTML
/// renderers only lay it out, so the two formats cannot drift apart.
struct Content {
    id: String,
    title: String,
    device: String,
    /// Summary table: label, value.
    summary: Vec<(&'static str, String)>,
    /// Detections: `#id`, kind, severity, observed, detail.
    alerts: Vec<[String; 5]>,
    /// Timeline: time, actor, event, detail.
    timeline: Vec<[String; 4]>,
    /// Actions and who took them, one sentence each.
    actions: Vec<String>,
    /// Evidence: upload id, SHA-256.
    evidence: Vec<(String, String)>,
    root_cause: Option<String>,
    lessons: Option<String>,
}

/// Placeholder for the fields the operator fills in when closing the incident.
const TO_BE_FILLED: &str = "(to be filled in by the operator)";

fn content(d: &Value) -> Content {
    let i = &d["incident"];
    let ms = |v: &Value| v.as_i64().map(ms_text);
    let list = |v: &Value| v.as_array().cloned().unwrap_or_default();
    let summary = vec![
        ("Device", s(&i["device_id"])),
        ("Status", s(&i["status"])),
        ("Severity", s(&i["severity"])),
        ("Playbook rule", s(&i["rule"])),
        (
            "Triggering telemetry",
            ms(&i["trigger_ms"]).unwrap_or_default(),
        ),
        ("Opened", ms(&i["opened_ms"]).unwrap_or_default()),
        (
            "Contained",
            ms(&i["contained_ms"]).unwrap_or_else(|| "—".into()),
        ),
        (
            "Time to containment",
            d["containment_ms"]
                .as_i64()
                .map(|m| format!("{m} ms"))
                .unwrap_or_else(|| "—".into()),
        ),
        ("Closed", ms(&i["closed_ms"]).unwrap_or_else(|| "—".into())),
        ("Updates held", s(&d["updates_held"])),
    ];
    let alerts = list(&d["alerts"])
        .iter()
        .map(|a| {
            [
                format!("#{}", s(&a["id"])),
                s(&a["kind"]),
                s(&a["severity"]),
                ms(&a["received_ms"]).unwrap_or_default(),
                s(&a["detail"]),
            ]
        })
        .collect();
    let events = list(&d["timeline"]);
    let timeline = events
        .iter()
        .map(|e| {
            [
                ms(&e["at_ms"]).unwrap_or_default(),
                s(&e["actor"]),
                s(&e["kind"]),
                s(&e["detail"]),
            ]
        })
        .collect();
    let mut actions: Vec<String> = events
        .iter()
        .filter(|e| e["actor"] != "detector" && e["kind"] != "alert")
        .map(|e| {
            format!(
                "{} by {}: {}",
                s(&e["kind"]),
                s(&e["actor"]),
                s(&e["detail"])
            )
        })
        .collect();
    actions.extend(list(&d["actions"]).iter().map(|a| {
        format!(
            "{} (action #{}) requested by {}: {}{}",
            s(&a["action"]),
            s(&a["id"]),
            s(&a["requested_by"]),
            s(&a["status"]),
            a["decided_by"]
                .as_str()
                .map(|b| format!(" by {b}"))
                .unwrap_or_default()
        )
    }));
    let evidence = list(&d["evidence"])
        .iter()
        .map(|e| (s(&e["upload"]), s(&e["sha256"])))
        .collect();
    Content {
        id: s(&i["id"]),
        title: s(&i["title"]),
        device: s(&i["device_id"]),
        summary,
        alerts,
        timeline,
        actions,
        evidence,
        root_cause: i["root_cause"].as_str().map(str::to_string),
        lessons: i["lessons"].as_str().map(str::to_string),
    }
}

fn markdown(c: &Content, charts: &Series) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Post-mortem: incident {} — {}\n", c.id, c.title);
    let _ = writeln!(out, "## Summary\n");
    let _ = writeln!(out, "| | |\n|---|---|");
    for (k, v) in &c.summary {
        let _ = writeln!(out, "| {k} | {} |", md_cell(v));
    }
    let _ = writeln!(out, "\n## Affected devices\n\n- {}\n", c.device);
    let _ = writeln!(
        out,
        "## Detections\n\n| alert | kind | severity | observed | detail |\n|---|---|---|---|---|"
    );
    for [id, kind, severity, observed, detail] in &c.alerts {
        let _ = writeln!(
            out,
            "| {id} | {kind} | {severity} | {observed} | {} |",
            md_cell(detail)
        );
    }
    let _ = writeln!(
        out,
        "\n## Timeline\n\n| time | actor | event | detail |\n|---|---|---|---|"
    );
    for row in &c.timeline {
        let cells: Vec<String> = row.iter().map(|v| md_cell(v)).collect();
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
    let _ = writeln!(out, "\n## Actions and who took them\n");
    for line in &c.actions {
        let _ = writeln!(out, "- {}", md_cell(line));
    }
    let _ = writeln!(out, "\n## Evidence\n");
    if c.evidence.is_empty() {
        let _ = writeln!(out, "No forensic bundle received.");
    }
    for (upload, sha256) in &c.evidence {
        let _ = writeln!(out, "- bundle #{upload}: sha256 `{sha256}`");
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
    let filled = |v: &Option<String>| v.clone().unwrap_or_else(|| format!("_{TO_BE_FILLED}_"));
    let _ = writeln!(out, "## Root cause\n\n{}\n", filled(&c.root_cause));
    let _ = writeln!(out, "## Lessons\n\n{}", filled(&c.lessons));
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

fn html(c: &Content, charts: &Series, trigger_ms: i64) -> String {
    let mut out = String::from("<!doctype html><html><head><meta charset=\"utf-8\"><title>");
    let _ = write!(out, "Post-mortem: incident {}</title>", esc(&c.id));
    out.push_str("<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left}</style></head><body>");
    let _ = write!(
        out,
        "<h1>Post-mortem: incident {} — {}</h1>",
        esc(&c.id),
        esc(&c.title)
    );
    out.push_str("<h2>Summary</h2><table>");
    for (k, v) in &c.summary {
        let _ = write!(out, "<tr><th>{k}</th><td>{}</td></tr>", esc(v));
    }
    let _ = write!(
        out,
        "</table><h2>Affected devices</h2><ul><li>{}</li></ul>",
        esc(&c.device)
    );
    let row = |cells: &[String]| {
        let cells: String = cells
            .iter()
            .map(|v| format!("<td>{}</td>", esc(v)))
            .collect();
        format!("<tr>{cells}</tr>")
    };
    out.push_str("<h2>Detections</h2><table><tr><th>alert</th><th>kind</th><th>severity</th><th>observed</th><th>detail</th></tr>");
    for a in &c.alerts {
        out.push_str(&row(a));
    }
    out.push_str("</table><h2>Timeline</h2><table><tr><th>time</th><th>actor</th><th>event</th><th>detail</th></tr>");
    for e in &c.timeline {
        out.push_str(&row(e));
    }
    out.push_str("</table><h2>Actions and who took them</h2><ul>");
    for line in &c.actions {
        let _ = write!(out, "<li>{}</li>", esc(line));
    }
    out.push_str("</ul><h2>Evidence</h2>");
    if c.evidence.is_empty() {
        out.push_str("<p>No forensic bundle received.</p>");
    }
    out.push_str("<ul>");
    for (upload, sha256) in &c.evidence {
        let _ = write!(
            out,
            "<li>bundle #{}: sha256 <code>{}</code></li>",
            esc(upload),
            esc(sha256)
        );
    }
    out.push_str("</ul><h2>Metrics around the detection</h2>");
    if charts.is_empty() {
        out.push_str("<p>No metric telemetry in the hour before the detection.</p>");
    }
    for (metric, points) in charts {
        let _ = write!(
            out,
            "<h3>{}</h3>{}",
            esc(metric),
            svg(points, trigger_ms / 1000)
        );
    }
    let _ = write!(
        out,
        "<h2>Root cause</h2><p>{}</p><h2>Lessons</h2><p>{}</p></body></html>",
        esc(c.root_cause.as_deref().unwrap_or(TO_BE_FILLED)),
        esc(c.lessons.as_deref().unwrap_or(TO_BE_FILLED))
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
        // One content, two layouts: every summary row, every column and every action line
        // of the Markdown is in the HTML too.
        for (label, _) in content(&details).summary {
            assert!(md.contains(&format!("| {label} |")), "{label}:\n{md}");
            assert!(
                html.contains(&format!("<th>{label}</th>")),
                "{label}:\n{html}"
            );
        }
        assert!(html.contains("<th>observed</th>") && html.contains("admin:alice"));
        assert!(html.contains("quarantine by playbook:contain-compromise"));
        assert_eq!(sparkline(&[(0, 1.0), (1, 1.0)]), "▅▅");
    }
}
