//! `collect_forensics`: a bundle of what an investigation needs from the device — the
//! measured-boot event log of the last boot, the digests of the installed artifacts, the
//! agent's recent log lines, the process list and open sockets from `/proc`, and the
//! telemetry queue — as canonical JSON (fields in a fixed order), with a header signed by
//! the device key inside the element (`edgeward_proto::forensics`), uploaded to
//! `/v1/device/forensics` (open to a quarantined device). The result names the bundle's
//! SHA-256 so the server's record can be matched to it.

use std::{
    fs,
    io::Read,
    path::{Path, PathBuf},
};

use edgeward_proto::{
    command::{self, Signed},
    forensics::{self, BundleHeader},
};
use reqwest::Method;
use serde::Serialize;
use serde_json::{json, value::RawValue, Value};
use sha2::{Digest, Sha256};

use super::{procfs, Context};
use crate::{logbuf, AgentError};

/// Largest bundle body (the server takes 16 MiB with the header line).
pub const MAX_BODY: usize = 16 * 1024 * 1024 - forensics::MAX_HEADER_LINE - 1;
/// Most artifact files digested.
const MAX_ARTIFACTS: usize = 10_000;

/// The evidence, in the order it is serialized.
#[derive(Serialize)]
struct Evidence {
    v: u32,
    device_id: String,
    command_id: i64,
    collected_at: i64,
    /// The last boot's measured-boot log, or why there is none.
    boot_log: Result<Value, String>,
    artifacts: Vec<Artifact>,
    logs: Vec<String>,
    processes: Vec<procfs::Process>,
    sockets: Vec<procfs::Socket>,
    queue: Vec<Box<RawValue>>,
}

/// One installed file and its digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Artifact {
    /// Its path.
    pub path: String,
    /// Its length.
    pub bytes: u64,
    /// Its SHA-256, hex.
    pub sha256: String,
}

/// Runs `collect_forensics` for command `id`: (ok, output).
pub async fn run(ctx: &Context<'_>, id: i64) -> (bool, Value) {
    let bundle = match build(ctx, id) {
        Ok(b) => b,
        Err(e) => return (false, json!({ "error": format!("collecting: {e}") })),
    };
    let sha256 = hex::encode(Sha256::digest(&bundle));
    let bytes = bundle.len();
    match ctx
        .client
        .call(Method::POST, "/v1/device/forensics", bundle)
        .await
    {
        Ok(answer) => {
            let v: Value = serde_json::from_slice(&answer).unwrap_or(Value::Null);
            (
                true,
                json!({ "sha256": sha256, "bytes": bytes, "upload": v["id"] }),
            )
        }
        Err(e) => (
            false,
            json!({ "error": format!("uploading: {e}"), "sha256": sha256, "bytes": bytes }),
        ),
    }
}

/// Collects the evidence and assembles the signed bundle file.
pub fn build(ctx: &Context<'_>, id: i64) -> Result<Vec<u8>, AgentError> {
    let device = &ctx.identity.stored.device_id;
    let proc = Path::new("/proc");
    let evidence = Evidence {
        v: forensics::VERSION,
        device_id: device.clone(),
        command_id: id,
        collected_at: super::now(),
        boot_log: boot_log(ctx.config.boot_state_dir.as_deref()),
        artifacts: ctx
            .config
            .models_dir
            .as_deref()
            .map(artifacts)
            .unwrap_or_default(),
        logs: logbuf::recent(),
        processes: procfs::processes(proc),
        sockets: procfs::sockets(proc),
        queue: ctx
            .queue
            .snapshot()
            .into_iter()
            .filter_map(|e| RawValue::from_string(e).ok())
            .collect(),
    };
    let body = serde_json::to_vec(&evidence).map_err(|e| AgentError::Protocol(e.to_string()))?;
    if body.len() > MAX_BODY {
        return Err(AgentError::Protocol(format!(
            "the evidence is {} bytes, over the {MAX_BODY} a bundle carries",
            body.len()
        )));
    }
    let header = BundleHeader {
        v: forensics::VERSION,
        device_id: device.clone(),
        command_id: id,
        created_at: evidence.collected_at,
        body_bytes: body.len() as u64,
        body_sha256: hex::encode(Sha256::digest(&body)),
    };
    let header = serde_json::to_vec(&header).map_err(|e| AgentError::Protocol(e.to_string()))?;
    let signature = ctx.element.sign(
        &ctx.identity.stored.key_slot,
        &command::signed_message(forensics::BUNDLE_CONTEXT, &header),
    )?;
    Ok(forensics::assemble(
        &Signed::new(&header, &signature),
        &body,
    ))
}

fn boot_log(dir: Option<&Path>) -> Result<Value, String> {
    let dir = dir.ok_or("no boot_state_dir is configured")?;
    let log = edgeward_boot::state::StateDir::open(dir)
        .and_then(|s| s.boot_log())
        .map_err(|e| e.to_string())?;
    serde_json::to_value(log).map_err(|e| e.to_string())
}

/// The regular files under `dir` (not following links), sorted by path, with their digests.
pub fn artifacts(dir: &Path) -> Vec<Artifact> {
    let mut files = Vec::new();
    let mut pending: Vec<PathBuf> = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(t) = e.file_type() else { continue };
            if t.is_dir() {
                pending.push(e.path());
            } else if t.is_file() && files.len() < MAX_ARTIFACTS {
                files.push(e.path());
            }
        }
    }
    files.sort();
    files
        .into_iter()
        .filter_map(|p| {
            let (bytes, sha256) = digest(&p)?;
            Some(Artifact {
                path: p.display().to_string(),
                bytes,
                sha256,
            })
        })
        .collect()
}

fn digest(path: &Path) -> Option<(u64, String)> {
    let mut f = fs::File::open(path).ok()?;
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = f.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        total += n as u64;
        hash.update(&buf[..n]);
    }
    Some((total, hex::encode(hash.finalize())))
}
