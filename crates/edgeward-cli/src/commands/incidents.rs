//! `edgeward incidents …` and `edgeward alerts list`: detection and response through the
//! admin API of `edgeward-server`. List and show incidents, contain one (quarantine, dropped
//! sessions, held updates, forensics requested), approve its destructive actions, close it
//! with the post-mortem's root cause and lessons, and write the post-mortem report.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
use serde_json::{json, Value};

use super::fleet::{Admin, ServerArgs};
use crate::outcome::{print_json, Failure, Outcome};

/// `edgeward incidents …`.
#[derive(Subcommand, Debug)]
pub(crate) enum IncidentsCommand {
    /// List incidents, newest first.
    List(ListArgs),
    /// Show an incident: its timeline, alerts, actions and evidence.
    Show(IncidentArgs),
    /// Contain the incident's device: quarantine, drop its sessions, hold its updates,
    /// request forensics.
    Contain(IncidentArgs),
    /// Approve the incident's pending destructive actions (wipe, re-provisioning).
    Approve(ApproveArgs),
    /// Close the incident, recording the post-mortem's root cause and lessons.
    Close(CloseArgs),
    /// Write the post-mortem report.
    Report(ReportArgs),
}

/// `edgeward alerts …`.
#[derive(Subcommand, Debug)]
pub(crate) enum AlertsCommand {
    /// List alerts, newest first.
    List(AlertListArgs),
}

/// Arguments of `incidents list`.
#[derive(Args, Debug)]
pub(crate) struct ListArgs {
    #[command(flatten)]
    pub(crate) server: ServerArgs,
    /// Only incidents in this status (detected, contained, investigating, remediated, closed).
    #[arg(long)]
    pub(crate) status: Option<String>,
}

/// Arguments of the commands about one incident.
#[derive(Args, Debug)]
pub(crate) struct IncidentArgs {
    #[command(flatten)]
    pub(crate) server: ServerArgs,
    /// The incident id.
    pub(crate) id: i64,
}

/// Arguments of `incidents approve`.
#[derive(Args, Debug)]
pub(crate) struct ApproveArgs {
    #[command(flatten)]
    pub(crate) incident: IncidentArgs,
    /// Approve only this pending action (all pending actions when absent).
    #[arg(long)]
    pub(crate) action: Option<i64>,
}

/// Arguments of `incidents close`.
#[derive(Args, Debug)]
pub(crate) struct CloseArgs {
    #[command(flatten)]
    pub(crate) incident: IncidentArgs,
    /// What caused the incident (goes into the post-mortem).
    #[arg(long)]
    pub(crate) root_cause: Option<String>,
    /// What was learned (goes into the post-mortem).
    #[arg(long)]
    pub(crate) lessons: Option<String>,
}

/// The post-mortem's format.
#[derive(ValueEnum, Clone, Copy, Debug)]
pub(crate) enum ReportFormat {
    /// Markdown, with text sparklines.
    Md,
    /// HTML, with inline SVG charts.
    Html,
}

/// Arguments of `incidents report`.
#[derive(Args, Debug)]
pub(crate) struct ReportArgs {
    #[command(flatten)]
    pub(crate) incident: IncidentArgs,
    /// md or html.
    #[arg(long, value_enum, default_value = "md")]
    pub(crate) format: ReportFormat,
    /// Write the report here (stdout when absent).
    #[arg(long, short)]
    pub(crate) out: Option<PathBuf>,
}

/// Arguments of `alerts list`.
#[derive(Args, Debug)]
pub(crate) struct AlertListArgs {
    #[command(flatten)]
    pub(crate) server: ServerArgs,
    /// Only this device's alerts.
    #[arg(long)]
    pub(crate) device: Option<String>,
    /// Only this incident's alerts.
    #[arg(long)]
    pub(crate) incident: Option<i64>,
    /// At most this many (1-500).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(i64).range(1..=500))]
    pub(crate) limit: i64,
}

fn ms(v: &Value) -> String {
    v.as_i64()
        .and_then(|ms| time::OffsetDateTime::from_unix_timestamp(ms / 1000).ok())
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "-".into())
}

fn incident_line(i: &Value) -> String {
    format!(
        "{:<5} {:<14} {:<9} {:<20} {}",
        i["id"],
        i["status"].as_str().unwrap_or(""),
        i["severity"].as_str().unwrap_or(""),
        i["device_id"].as_str().unwrap_or(""),
        i["title"].as_str().unwrap_or("")
    )
}

fn details_text(v: &Value) -> String {
    let i = &v["incident"];
    let mut out = vec![
        incident_line(i),
        format!(
            "containment: {}; updates held: {}",
            v["containment_ms"]
                .as_i64()
                .map(|m| format!("{m} ms after the triggering telemetry"))
                .unwrap_or_else(|| "not contained".into()),
            v["updates_held"]
        ),
        "timeline:".into(),
    ];
    for e in v["timeline"].as_array().into_iter().flatten() {
        out.push(format!(
            "  {} {:<28} {:<20} {}",
            ms(&e["at_ms"]),
            e["actor"].as_str().unwrap_or(""),
            e["kind"].as_str().unwrap_or(""),
            e["detail"].as_str().unwrap_or("")
        ));
    }
    for a in v["actions"].as_array().into_iter().flatten() {
        out.push(format!(
            "action #{} {} {} (requested by {})",
            a["id"],
            a["action"].as_str().unwrap_or(""),
            a["status"].as_str().unwrap_or(""),
            a["requested_by"].as_str().unwrap_or("")
        ));
    }
    for e in v["evidence"].as_array().into_iter().flatten() {
        out.push(format!(
            "evidence: bundle #{} sha256 {}",
            e["upload"],
            e["sha256"].as_str().unwrap_or("")
        ));
    }
    out.join("\n")
}

/// Runs `incidents …`.
pub(crate) fn run(cmd: IncidentsCommand, json: bool) -> Outcome {
    let path = |id: i64, what: &str| format!("/v1/admin/incidents/{id}{what}");
    let (value, text) = match cmd {
        IncidentsCommand::List(a) => {
            let query = a
                .status
                .as_deref()
                .map(|s| format!("?status={s}"))
                .unwrap_or_default();
            let v = Admin::new(&a.server)?.get(&format!("/v1/admin/incidents{query}"), "list")?;
            let text = v["incidents"]
                .as_array()
                .map(|is| is.iter().map(incident_line).collect::<Vec<_>>().join("\n"))
                .unwrap_or_default();
            (v, text)
        }
        IncidentsCommand::Show(a) => {
            let v = Admin::new(&a.server)?.get(&path(a.id, ""), "show")?;
            let text = details_text(&v);
            (v, text)
        }
        IncidentsCommand::Contain(a) => {
            let v = Admin::new(&a.server)?.post(&path(a.id, "/contain"), json!({}), "contain")?;
            let text = details_text(&v);
            (v, text)
        }
        IncidentsCommand::Approve(a) => {
            let body = match a.action {
                Some(id) => json!({ "action": id }),
                None => json!({}),
            };
            let v = Admin::new(&a.incident.server)?.post(
                &path(a.incident.id, "/approve"),
                body,
                "approve",
            )?;
            let mut text = details_text(&v);
            for ap in v["approved"].as_array().into_iter().flatten() {
                text.push_str(&format!(
                    "\napproved action #{} {}",
                    ap["action"],
                    ap["name"].as_str().unwrap_or("")
                ));
                if let Some(token) = ap["result"]["enrollment_token"].as_str() {
                    text.push_str(&format!("; new enrollment token {token}"));
                }
            }
            (v, text)
        }
        IncidentsCommand::Close(a) => {
            let mut body = serde_json::Map::new();
            if let Some(r) = a.root_cause {
                body.insert("root_cause".into(), json!(r));
            }
            if let Some(l) = a.lessons {
                body.insert("lessons".into(), json!(l));
            }
            let v = Admin::new(&a.incident.server)?.post(
                &path(a.incident.id, "/close"),
                Value::Object(body),
                "close",
            )?;
            let text = details_text(&v);
            (v, text)
        }
        IncidentsCommand::Report(a) => return report(a, json),
    };
    if json {
        print_json(&value);
    } else if !text.is_empty() {
        println!("{text}");
    }
    Ok(())
}

fn report(a: ReportArgs, json: bool) -> Outcome {
    let admin = Admin::new(&a.incident.server)?;
    let format = match a.format {
        ReportFormat::Md => "md",
        ReportFormat::Html => "html",
    };
    let url = format!(
        "{}/v1/admin/incidents/{}/report?format={format}",
        admin.base, a.incident.id
    );
    let r = admin
        .client
        .get(url)
        .bearer_auth(&admin.token)
        .send()
        .map_err(|e| Failure::operator(format!("report: cannot reach the server: {e}")))?;
    let status = r.status();
    let text = r
        .text()
        .map_err(|e| Failure::operator(format!("report: {e}")))?;
    if !status.is_success() {
        let message = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_string))
            .unwrap_or_else(|| "(no message)".into());
        return Err(Failure::rejected(format!(
            "report: the server answered {status}: {message}"
        )));
    }
    match &a.out {
        Some(path) => {
            std::fs::write(path, &text)
                .map_err(|e| Failure::operator(format!("{}: {e}", path.display())))?;
            if json {
                print_json(
                    &json!({ "ok": true, "incident": a.incident.id, "format": format, "path": path, "bytes": text.len() }),
                );
            } else {
                println!(
                    "post-mortem of incident {} written to {}",
                    a.incident.id,
                    path.display()
                );
            }
        }
        None if json => print_json(
            &json!({ "ok": true, "incident": a.incident.id, "format": format, "report": text }),
        ),
        None => print!("{text}"),
    }
    Ok(())
}

/// Runs `alerts …`.
pub(crate) fn run_alerts(cmd: AlertsCommand, json: bool) -> Outcome {
    let AlertsCommand::List(a) = cmd;
    let mut query = vec![format!("limit={}", a.limit)];
    if let Some(d) = &a.device {
        query.push(format!("device={d}"));
    }
    if let Some(i) = a.incident {
        query.push(format!("incident={i}"));
    }
    let v =
        Admin::new(&a.server)?.get(&format!("/v1/admin/alerts?{}", query.join("&")), "alerts")?;
    if json {
        print_json(&v);
    } else {
        for al in v["alerts"].as_array().into_iter().flatten() {
            println!(
                "{:<6} {} {:<9} {:<20} {:<20} {}",
                al["id"],
                ms(&al["received_ms"]),
                al["severity"].as_str().unwrap_or(""),
                al["device_id"].as_str().unwrap_or(""),
                al["kind"].as_str().unwrap_or(""),
                al["detail"].as_str().unwrap_or("")
            );
        }
    }
    Ok(())
}
