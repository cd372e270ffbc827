//! The server's log as a log shipper or a journal receives it: with stderr not a terminal,
//! text lines carry no ANSI colour codes, and `--log-format json` writes one JSON object per
//! line.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
};

/// Starts the real binary on free loopback ports with `extra` arguments and returns the log
/// lines up to and including the one that announces the device API.
fn log_until_listening(extra: &[&str]) -> Vec<String> {
    let dir = tempfile::tempdir().expect("tmp");
    let mut child = Command::new(env!("CARGO_BIN_EXE_edgeward-server"))
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .args(["--enroll-listen", "127.0.0.1:0"])
        .args(extra)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("server binary");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = Vec::new();
    for line in BufReader::new(stderr).lines().map_while(Result::ok) {
        let done = line.contains("device API");
        lines.push(line);
        if done {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        lines.last().is_some_and(|l| l.contains("device API")),
        "the server never announced its device API: {lines:?}"
    );
    lines
}

#[test]
fn text_logs_off_a_terminal_carry_no_colour_codes() {
    let lines = log_until_listening(&[]);
    for line in &lines {
        assert!(!line.contains('\u{1b}'), "ANSI escape in {line:?}");
        assert!(line.contains("INFO") || line.contains("WARN"), "{line:?}");
    }
}

#[test]
fn json_logs_are_one_object_per_line() {
    let lines = log_until_listening(&["--log-format", "json"]);
    for line in &lines {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line:?}"));
        assert!(v["timestamp"].is_string(), "{line}");
        assert!(v["level"].is_string(), "{line}");
        assert!(v["fields"]["message"].is_string(), "{line}");
    }
    let last: serde_json::Value = serde_json::from_str(&lines[lines.len() - 1]).expect("json");
    assert_eq!(last["level"], "INFO");
    assert!(
        last["fields"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("device API")),
        "{last}"
    );
}

#[test]
fn an_unknown_log_format_is_a_usage_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_edgeward-server"))
        .args(["--log-format", "xml"])
        .output()
        .expect("server binary");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("invalid value 'xml' for '--log-format <LOG_FORMAT>'"),
        "{stderr}"
    );
}
