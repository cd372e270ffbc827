//! `edgeward demo`, the fleet loop with real device agents: two `edgeward-agent` daemons
//! (the agent's own `daemon::run`, in this process) on software secure elements enroll with
//! a server and stream telemetry. One is quarantined by a signed command, investigated (its
//! forensic bundle signed by its element and verified by the server), wiped (its keys
//! destroyed, a signed receipt, its certificate revoked) and re-provisioned with a new key,
//! while the other streams throughout and then rotates its key by a signed command (the old
//! key destroyed in its element, the old certificate revoked).

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use edgeward_agent::{status, AgentConfig};
use edgeward_se::{SeError, SecureElement};
use serde_json::{json, Value};
use std::thread::JoinHandle;
use tokio::{runtime::Runtime, sync::watch};

use super::{
    fail,
    server::{self, AdminApi},
    Demo, StepResult,
};

/// The hardware class both devices are registered with.
const CLASS: &str = "demo-gateway";
/// How long a step waits for the agents.
const WAIT_SECS: u64 = 30;

/// One agent daemon of the demo, on a thread of its own as the agent binary runs it (the
/// daemon is a single-threaded tokio program).
struct Agent {
    id: &'static str,
    dir: PathBuf,
    task: Option<JoinHandle<Result<(), String>>>,
}

impl Agent {
    fn status(&self, rt: &Runtime) -> Option<status::Status> {
        rt.block_on(status::query(&self.dir.join("state").join("status.sock")))
            .ok()
    }

    fn element(&self) -> StepResult<Box<dyn SecureElement>> {
        Ok(edgeward_se::open(&format!(
            "soft:{}",
            self.dir.join("se").display()
        ))?)
    }
}

/// Runs `edgeward_agent::daemon::run` on `config` on a thread of its own until `stop`.
fn spawn_agent(config: AgentConfig, stop: watch::Receiver<bool>) -> JoinHandle<Result<(), String>> {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?
            .block_on(edgeward_agent::daemon::run(config, stop))
            .map_err(|e| e.to_string())
    })
}

/// Polls `check` every 100 ms until it gives a value, for at most [`WAIT_SECS`].
fn wait<T>(what: &str, mut check: impl FnMut() -> StepResult<Option<T>>) -> StepResult<T> {
    for _ in 0..WAIT_SECS * 10 {
        if let Some(v) = check()? {
            return Ok(v);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    fail(format!("no {what} within {WAIT_SECS} s"))
}

/// The outcome of command `cid` of `device` once the agent answered it: its stored state
/// and the signed result's payload (already verified by the server).
fn answered(api: &AdminApi<'_>, device: &str, cid: i64) -> StepResult<Value> {
    let outcome = wait("answer to the command", || {
        let v = api.get(&format!("/v1/admin/devices/{device}/commands/{cid}"))?;
        let c = &v["command"];
        Ok((c["status"] != "sent" && c["status"] != "pending").then(|| c.clone()))
    })?;
    if outcome["status"] != "done" || outcome["verified"] != true {
        return fail(format!("command {cid}: {outcome}"));
    }
    let payload: Value = serde_json::from_str(outcome["result"].as_str().unwrap_or("null"))?;
    Ok(payload)
}

/// Queues command `kind` with `args` for `device`; its id.
fn command(api: &AdminApi<'_>, device: &str, kind: &str, args: Value) -> StepResult<i64> {
    let v = api.post(
        &format!("/v1/admin/devices/{device}/commands"),
        json!({ "kind": kind, "body": args }),
    )?;
    v["id"]
        .as_i64()
        .ok_or_else(|| format!("no command id in {v}").into())
}

/// Adds the fleet-loop steps to `demo`, keeping the server's and the agents' files in `dir`.
pub(crate) fn story(demo: &mut Demo, dir: &Path) {
    let rt = match server::runtime() {
        Ok(rt) => rt,
        Err(e) => return demo.step("start a server for two agents", || Err(e.into())),
    };
    let server_dir = dir.join("server");
    let server = match rt.block_on(edgeward_server::start(server::loopback_config(&server_dir))) {
        Ok(s) => s,
        Err(e) => return demo.step("start a server for two agents", || Err(e.into())),
    };
    let api = match AdminApi::new(&rt, &server_dir, &server) {
        Ok(api) => api,
        Err(e) => return demo.step("reach the admin API", || Err(e)),
    };
    let (stop, stopped) = watch::channel(false);
    let mut agents: Vec<Agent> = ["demo-gw-a", "demo-gw-b"]
        .into_iter()
        .map(|id| Agent {
            id,
            dir: dir.join(id),
            task: None,
        })
        .collect();

    demo.step(
        "two agents enroll from their secure elements and stream telemetry",
        || {
            for agent in &mut agents {
                let v = api.post(
                    "/v1/admin/devices",
                    json!({ "id": agent.id, "hardware_class": CLASS }),
                )?;
                let token = v["enrollment_token"].as_str().ok_or("no enrollment token")?;
                std::fs::create_dir_all(&agent.dir)?;
                let token_file = agent.dir.join("enrollment-token");
                std::fs::write(&token_file, token)?;
                let config = AgentConfig::parse(&format!(
                    "server = \"https://localhost:{}\"\nenroll_server = \"https://localhost:{}\"\n\
                     server_ca = {:?}\nelement = {:?}\nstate_dir = {:?}\n\
                     enrollment_token_file = {:?}\ntelemetry_interval_ms = 200\ncommand_interval_ms = 200\n",
                    server.device_addr.port(),
                    server.enroll_addr.port(),
                    server_dir.join("server-ca.pem").display().to_string(),
                    format!("soft:{}", agent.dir.join("se").display()),
                    agent.dir.join("state").display().to_string(),
                    token_file.display().to_string(),
                ))?;
                agent.task = Some(spawn_agent(config, stopped.clone()));
            }
            let mut lines = Vec::new();
            for agent in &agents {
                let s = wait("telemetry from the agent", || {
                    Ok(agent
                        .status(&rt)
                        .filter(|s| s.state == "running" && s.telemetry_sent > 0))
                })?;
                lines.push(format!(
                    "{} (key in element slot {}, events acknowledged: {})",
                    agent.id,
                    s.key_slot.unwrap_or_default(),
                    s.telemetry_sent
                ));
            }
            Ok(format!(
                "{}; each CSR was signed inside the element with the one-time token",
                lines.join(", ")
            ))
        },
    );
    let [a, b] = &agents[..] else { return };
    if a.task.is_none() || b.task.is_none() {
        return;
    }

    demo.step(
        "quarantine demo-gw-b: the server refuses its traffic, the agent obeys a signed command",
        || {
            api.post(&format!("/v1/admin/devices/{}/quarantine", b.id), json!({}))?;
            let cid = command(&api, b.id, "quarantine", json!({ "reason": "investigation" }))?;
            answered(&api, b.id, cid)?;
            let s = wait("the agent quarantined", || {
                Ok(b.status(&rt).filter(|s| s.state == "quarantined"))
            })?;
            Ok(format!(
                "registry status quarantined; command {cid} verified by the agent and its signed result by the server; the agent stopped serving (state {}), its command channel stays open",
                s.state
            ))
        },
    );

    demo.step(
        "investigate: the agent's forensic bundle, signed by its element, verified and stored",
        || {
            let cid = command(&api, b.id, "collect_forensics", json!({}))?;
            let payload = answered(&api, b.id, cid)?;
            let sha = payload["output"]["sha256"].as_str().unwrap_or_default();
            if sha.len() != 64 {
                return fail(format!("no bundle hash in {payload}"));
            }
            Ok(format!(
                "boot log, installed digests, logs, processes, sockets and queue; bundle sha256 {}… recorded",
                &sha[..16]
            ))
        },
    );

    demo.step(
        "wipe: the keys leave the element, a signed receipt, the certificate revoked",
        || {
            let slot = b.status(&rt).and_then(|s| s.key_slot).unwrap_or_default();
            let cid = command(&api, b.id, "wipe", json!({ "reason": "compromised" }))?;
            let receipt = answered(&api, b.id, cid)?;
            if receipt["output"]["receipt"] != "wipe" {
                return fail(format!("not a wipe receipt: {receipt}"));
            }
            wait("the device revoked", || {
                let v = api.get(&format!("/v1/admin/devices/{}", b.id))?;
                Ok((v["device"]["status"] == "revoked").then_some(()))
            })?;
            wait("the agent in recovery", || {
                Ok(b.status(&rt).filter(|s| s.state == "wiped"))
            })?;
            match b.element()?.public_key(&slot) {
                Err(SeError::NoSuchKey(_)) => Ok(format!(
                    "receipt {cid} signed before the keys went; slot {slot} is empty; the device waits in recovery"
                )),
                other => fail(format!("slot {slot} after the wipe: {other:?}")),
            }
        },
    );

    demo.step(
        "re-provision demo-gw-b: a new key in its element, a new certificate, telemetry again",
        || {
            let v = api.post(
                &format!("/v1/admin/devices/{}/reprovision", b.id),
                json!({}),
            )?;
            let token = v["enrollment_token"]
                .as_str()
                .ok_or("no enrollment token")?;
            std::fs::write(b.dir.join("enrollment-token"), token)?;
            let s = wait("the agent enrolled again", || {
                Ok(b.status(&rt)
                    .filter(|s| s.state == "running" && s.telemetry_sent > 0))
            })?;
            let v = api.get(&format!("/v1/admin/devices/{}", b.id))?;
            if v["device"]["status"] != "active" {
                return fail(format!("after re-provisioning: {}", v["device"]["status"]));
            }
            Ok(format!(
                "new key in slot {}, new certificate {}…, events acknowledged since: {}",
                s.key_slot.unwrap_or_default(),
                v["device"]["cert_serial"]
                    .as_str()
                    .unwrap_or("")
                    .get(..16)
                    .unwrap_or(""),
                s.telemetry_sent
            ))
        },
    );

    demo.step(
        "demo-gw-a streamed throughout, then rotates its key by a signed command",
        || {
            let before = a.status(&rt).ok_or("demo-gw-a has no status")?;
            let cid = command(&api, a.id, "reprovision", Value::Null)?;
            let payload = answered(&api, a.id, cid)?;
            let output = &payload["output"];
            let old = output["previous_key_slot"].as_str().unwrap_or_default();
            if output["previous_key_destroyed"] != true {
                return fail(format!("the old key was not destroyed: {payload}"));
            }
            match a.element()?.public_key(old) {
                Err(SeError::NoSuchKey(_)) => {}
                other => return fail(format!("slot {old} after the rotation: {other:?}")),
            }
            Ok(format!(
                "events acknowledged since its start: {}; key moved from slot {old} to {} (the old one destroyed in the element, its certificate revoked)",
                before.telemetry_sent,
                output["key_slot"].as_str().unwrap_or_default()
            ))
        },
    );

    let _ = stop.send(true);
    for agent in &mut agents {
        if let Some(task) = agent.task.take() {
            let _ = task.join();
        }
    }
    rt.block_on(server.stop());
}
