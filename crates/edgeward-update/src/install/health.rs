//! The health check that confirms a release on trial: a command that must exit 0, or an
//! HTTP probe that must answer 2xx, within a deadline. Its failure modes map to the
//! revert reason codes: a check that answers "unhealthy" is `health_check_failed`, one that
//! gives no answer before the deadline is `timeout`.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use edgeward_proto::update_report::Reason;

/// How to tell a healthy device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthCheck {
    /// Run this program with these arguments; exit status 0 confirms. It is killed at the
    /// deadline.
    Command(Vec<String>),
    /// `GET` this `http://` or `https://` URL until it answers 2xx (confirms) or the
    /// deadline passes. Refused connections are retried (the service may still be
    /// starting); the last non-2xx status is the failure's detail.
    Http(String),
}

/// Why the check did not confirm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unhealthy {
    /// `health_check_failed` or `timeout`.
    pub reason: Reason,
    /// What happened.
    pub detail: String,
}

const POLL: Duration = Duration::from_millis(50);
const PROBE_INTERVAL: Duration = Duration::from_millis(500);

impl HealthCheck {
    /// Runs the check; `Ok` only when it confirmed within `deadline`.
    pub fn run(&self, deadline: Duration) -> Result<(), Unhealthy> {
        match self {
            HealthCheck::Command(argv) => run_command(argv, deadline),
            HealthCheck::Http(url) => probe(url, deadline),
        }
    }
}

fn failed(detail: String) -> Unhealthy {
    Unhealthy {
        reason: Reason::HealthCheckFailed,
        detail,
    }
}

fn run_command(argv: &[String], deadline: Duration) -> Result<(), Unhealthy> {
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| failed("the health check command is empty".into()))?;
    let start = Instant::now();
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| failed(format!("cannot run {program}: {e}")))?;
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => return Err(failed(format!("{program} exited with {status}"))),
            Ok(None) if start.elapsed() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Unhealthy {
                    reason: Reason::Timeout,
                    detail: format!("{program} did not finish within {} s", deadline.as_secs()),
                });
            }
            Ok(None) => std::thread::sleep(POLL),
            Err(e) => return Err(failed(format!("waiting for {program}: {e}"))),
        }
    }
}

fn probe(url: &str, deadline: Duration) -> Result<(), Unhealthy> {
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(failed(format!(
            "the health probe {url:?} is not an http(s) URL"
        )));
    }
    let start = Instant::now();
    let client = reqwest::blocking::Client::builder()
        .timeout(deadline)
        .build()
        .map_err(|e| failed(format!("health probe client: {e}")))?;
    let mut last: Option<String> = None;
    while start.elapsed() < deadline {
        let left = deadline.saturating_sub(start.elapsed());
        match client.get(url).timeout(left).send() {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(r) => last = Some(format!("{url} answered {}", r.status())),
            Err(e) => tracing::debug!(url, error = %e, "health probe not answered yet"),
        }
        std::thread::sleep(PROBE_INTERVAL.min(deadline.saturating_sub(start.elapsed())));
    }
    Err(match last {
        Some(detail) => failed(detail),
        None => Unhealthy {
            reason: Reason::Timeout,
            detail: format!("{url} did not answer within {} s", deadline.as_secs()),
        },
    })
}
