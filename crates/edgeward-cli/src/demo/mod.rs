//! `edgeward demo`: the whole story on the embedded default, in a temporary directory, with
//! no services, told in chapters: the key ceremony, signing and verification with two
//! attacks refused (`signing`); the device (`device`); the model's protection
//! (`encrypted_model`, `watermark`); the control plane (`control_plane`); signed updates
//! with staged rollouts (`updates`); two real device agents through quarantine, forensics,
//! wipe and re-provisioning (`agents`); and an incident from detection to post-mortem
//! (`incident`).

mod agents;
mod control_plane;
mod device;
mod encrypted_model;
mod incident;
mod server;
mod signing;
mod updates;
mod watermark;

use std::{fs, path::Path, path::PathBuf, time::Instant};

use clap::Args;
use rand_core::{OsRng, RngCore};
use serde::Serialize;

use crate::outcome::{print_json, Failure, Outcome};

/// Arguments of `demo`.
#[derive(Args, Debug)]
pub(crate) struct DemoArgs {
    /// Keep the demo's files in this directory instead of a temporary one.
    #[arg(long)]
    pub(crate) keep: Option<PathBuf>,
}

/// Why a step of the demo did not go as expected: the library's own error (its message is the
/// step's detail), or the demo's account of an outcome it did not expect ([`fail`]).
pub(crate) type StepError = Box<dyn std::error::Error + Send + Sync>;

/// What a step, or a helper of one, returns.
pub(crate) type StepResult<T> = Result<T, StepError>;

/// A step's failure with the demo's own account of it.
pub(crate) fn fail<T>(why: impl Into<String>) -> StepResult<T> {
    Err(why.into().into())
}

/// One step of the demo: `ok` means the step had the expected outcome (for an attack: it
/// was refused).
#[derive(Serialize)]
struct Step {
    name: &'static str,
    ok: bool,
    detail: String,
    millis: u128,
}

pub(crate) struct Demo {
    steps: Vec<Step>,
    json: bool,
}

impl Demo {
    pub(crate) fn step(&mut self, name: &'static str, f: impl FnOnce() -> StepResult<String>) {
        let start = Instant::now();
        let (ok, detail) = match f() {
            Ok(d) => (true, d),
            Err(e) => (false, e.to_string()),
        };
        if !self.json {
            println!("{} {name}\n    {detail}", if ok { "✓" } else { "✗" });
        }
        self.steps.push(Step {
            name,
            ok,
            detail,
            millis: start.elapsed().as_millis(),
        });
    }
}

/// Runs the demo; with `json`, one JSON object with a `steps` array instead of text.
pub(crate) fn run(a: DemoArgs, json: bool) -> Outcome {
    let tmp;
    let dir = match &a.keep {
        Some(d) => {
            if d.join("pki").exists() {
                return Err(Failure::operator(format!(
                    "{} already holds a demo; give --keep an empty or new directory",
                    d.display()
                )));
            }
            fs::create_dir_all(d)
                .map_err(|e| Failure::operator(format!("{}: {e}", d.display())))?;
            d.clone()
        }
        None => {
            tmp = tempfile::tempdir()
                .map_err(|e| Failure::operator(format!("temporary directory: {e}")))?;
            tmp.path().to_path_buf()
        }
    };
    let mut demo = Demo {
        steps: Vec::new(),
        json,
    };
    if !json {
        println!("Edgeward demo in {}\n", dir.display());
    }
    signing::story(&mut demo, &dir);
    device::story(&mut demo, &dir.join("device"), &dir.join("pki"));
    encrypted_model::story(&mut demo, &dir.join("model"), &dir.join("pki"));
    watermark::story(&mut demo, &dir.join("watermark"));
    control_plane::story(&mut demo, &dir.join("server"));
    updates::story(&mut demo, &dir.join("updates"));
    agents::story(&mut demo, &dir.join("agents"));
    incident::story(&mut demo, &dir.join("incident"));
    let passed = demo.steps.iter().filter(|s| s.ok).count();
    let all_ok = passed == demo.steps.len();
    let report = serde_json::json!({
        "ok": all_ok,
        "dir": dir,
        "steps": demo.steps,
    });
    if json && all_ok {
        print_json(&report);
    } else if !json {
        println!(
            "\nsummary: {passed}/{} steps as expected — {}",
            demo.steps.len(),
            if all_ok {
                "signed artifacts verify under the root, tampering and unendorsed keys are refused; the device boots only a signed chain, attests from its element and opens only models encrypted to it; a stolen model carries its owner's mark; the control plane admits only enrolled, authenticated, unquarantined devices within their rate; updates arrive as verified deltas, a downgrade and a tampered target are refused, and a release that fails its health check is reverted and halts its rollout; device agents enroll from their elements and carry out signed quarantine, forensics, wipe and re-provisioning; a tampered device is detected, contained, investigated, remediated and reported"
            } else {
                "SOMETHING IS WRONG"
            }
        );
    }
    if all_ok {
        Ok(())
    } else {
        // With --json the steps go out inside the error object, as the one line printed.
        Err(Failure::rejected("the demo did not go as expected").with_context(report))
    }
}

pub(crate) fn random_bytes(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    OsRng.fill_bytes(&mut v);
    v
}

pub(crate) fn read(p: &Path) -> StepResult<Vec<u8>> {
    fs::read(p).map_err(|e| format!("{}: {e}", p.display()).into())
}
