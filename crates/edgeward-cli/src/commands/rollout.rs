//! `edgeward release rollout` and `edgeward release status`: staged rollouts of a published
//! release through edgeward-server's admin API. `rollout` starts the next stage (a
//! percentage of devices, a list of devices or a hardware class) with its halt rule;
//! `status` shows what devices reported and whether the stage halted itself.

use clap::{ArgGroup, Args};
use serde_json::{json, Value};

use crate::commands::fleet::{Admin, ServerArgs};
use crate::outcome::{print_json, Failure, Outcome};

/// `release rollout`.
#[derive(Args, Debug)]
#[command(group(ArgGroup::new("who").required(true).args(["percent", "devices", "hardware"])))]
pub(crate) struct RolloutArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// The release version (as published with `release publish --version`).
    #[arg(value_name = "VERSION", id = "release_version")]
    version: String,
    /// Offer it to this share of devices (above 0, at most 100, in steps of 0.01),
    /// chosen by a hash of the device id and the version: the same devices stay chosen as
    /// the share grows.
    #[arg(long)]
    percent: Option<f64>,
    /// Offer it to these devices.
    #[arg(long, value_delimiter = ',')]
    devices: Option<Vec<String>>,
    /// Offer it to every device of this hardware class.
    #[arg(long)]
    hardware: Option<String>,
    /// Halt the stage when more than this percentage of its finished updates reverted.
    #[arg(long, default_value_t = 5.0)]
    threshold: f64,
    /// Finished (confirmed or reverted) updates the stage needs before it can halt.
    #[arg(long, default_value_t = edgeward_proto::rollout::DEFAULT_MIN_SAMPLE)]
    min_sample: u32,
}

/// `release status`.
#[derive(Args, Debug)]
pub(crate) struct StatusArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// The release version.
    #[arg(value_name = "VERSION", id = "release_version")]
    version: String,
}

/// `VERSION` as one URL path segment (everything but unreserved characters escaped); `.`
/// and `..` cannot be one.
fn segment(version: &str) -> Result<String, Failure> {
    if version == "." || version == ".." {
        return Err(Failure::operator(format!(
            "{version:?} cannot be a release version"
        )));
    }
    Ok(version
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect())
}

/// Runs `release rollout`.
pub(crate) fn rollout(a: RolloutArgs, json_out: bool) -> Outcome {
    let mut body = json!({ "threshold": a.threshold, "min_sample": a.min_sample });
    if let Some(p) = a.percent {
        body["percent"] = json!(p);
    }
    if let Some(d) = &a.devices {
        body["devices"] = json!(d);
    }
    if let Some(h) = &a.hardware {
        body["hardware"] = json!(h);
    }
    let v = Admin::new(&a.server)?.post(
        &format!("/v1/admin/releases/{}/rollout", segment(&a.version)?),
        body,
        "rollout",
    )?;
    if json_out {
        print_json(&v);
    } else {
        println!(
            "{} stage {}: offered to {}; halts above {} % reverted once {} finished",
            a.version,
            v["stage"],
            who(&v["selector"]),
            number(&v["threshold"]),
            v["min_sample"]
        );
    }
    Ok(())
}

/// Runs `release status`.
pub(crate) fn status(a: StatusArgs, json_out: bool) -> Outcome {
    let v = Admin::new(&a.server)?.get(
        &format!("/v1/admin/releases/{}/status", segment(&a.version)?),
        "status",
    )?;
    if json_out {
        print_json(&v);
        return Ok(());
    }
    print!("{}", status_text(&v));
    Ok(())
}

/// A JSON number as people write it (`5`, `12.5`).
fn number(v: &Value) -> String {
    v.as_f64().map_or_else(|| v.to_string(), |n| n.to_string())
}

/// Who a selector offers the release to, in words.
fn who(selector: &Value) -> String {
    if let Some(p) = selector.get("percent") {
        format!("{} % of devices", number(p))
    } else if let Some(d) = selector.get("devices").and_then(Value::as_array) {
        let ids: Vec<&str> = d.iter().filter_map(Value::as_str).collect();
        format!("devices {}", ids.join(","))
    } else if let Some(h) = selector.get("hardware").and_then(Value::as_str) {
        format!("hardware class {h}")
    } else {
        "nobody".into()
    }
}

/// The status answer as lines of text.
pub(crate) fn status_text(v: &Value) -> String {
    let mut out = format!(
        "release {} stage {}: offered to {}, threshold {} %, min sample {}\n",
        v["version"].as_str().unwrap_or("?"),
        v["stage"],
        who(&v["selector"]),
        number(&v["threshold"]),
        v["min_sample"]
    );
    let counts = [
        "offered",
        "downloaded",
        "installed",
        "confirmed",
        "reverted",
    ]
    .iter()
    .map(|p| format!("{p} {}", v["counts"][p]))
    .collect::<Vec<_>>()
    .join("  ");
    out.push_str(&counts);
    out.push('\n');
    if let Some(reasons) = v["revert_reasons"].as_object().filter(|r| !r.is_empty()) {
        let list = reasons
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect::<Vec<_>>()
            .join(", ");
        out.push_str(&format!("revert reasons: {list}\n"));
    }
    match v["halt_reason"].as_str() {
        Some(reason) if v["halted"] == json!(true) => {
            out.push_str(&format!("HALTED: {reason}\n"));
        }
        _ => out.push_str("running\n"),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_one_path_segment() {
        assert_eq!(segment("2.0.0-rc1").expect("ok"), "2.0.0-rc1");
        assert_eq!(segment("a/../b c").expect("ok"), "a%2F..%2Fb%20c");
        assert!(segment("..").is_err());
    }
}
