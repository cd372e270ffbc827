//! The incident-response part of `edgeward demo`: a server in process with detection on, a
//! camera that reports a healthy inference rate, then a tamper event. The default playbook
//! contains it (quarantine, sessions dropped, updates held, forensics requested) and the
//! time from the triggering telemetry is shown; the device uploads its forensic bundle, an
//! operator approves the wipe the playbook held back and closes the incident, and the
//! post-mortem is written in Markdown and HTML. The story ends with the report's path.

use super::{
    fail,
    server::{self, tls_client, AdminApi},
    StepResult,
};
use std::{path::Path, time::Duration};

use edgeward_proto::token;
use serde_json::{json, Value};

use crate::demo::Demo;

fn now() -> u64 {
    edgeward_core::civil::unix_now()
}

/// A forensic bundle answering command `command_id`: `body` behind a header signed by the
/// device key, as the agent's collect_forensics makes it (docs/formats.md).
fn signed_bundle(device: &str, key_pem: &str, command_id: i64, body: &[u8]) -> StepResult<Vec<u8>> {
    use edgeward_proto::{command, forensics};
    let header = serde_json::to_vec(&forensics::BundleHeader {
        v: forensics::VERSION,
        device_id: device.to_string(),
        command_id,
        created_at: now() as i64,
        body_bytes: body.len() as u64,
        body_sha256: hex::encode(edgeward_core::sha256(body)),
    })?;
    let key = edgeward_core::keys::SigningKey::from_pem(key_pem.as_bytes(), None)?;
    let signature = key.sign(&command::signed_message(forensics::BUNDLE_CONTEXT, &header));
    Ok(forensics::assemble(
        &command::Signed::new(&header, &signature),
        body,
    ))
}

/// Adds the incident-response steps to `demo`, keeping the server's files in `dir`.
pub(crate) fn story(demo: &mut Demo, dir: &Path) {
    let rt = match server::runtime() {
        Ok(rt) => rt,
        Err(e) => return demo.step("start a server with detection", || Err(e.into())),
    };
    let config = server::loopback_config(dir);
    let mut running = None;
    demo.step("start a server with detection and the default playbook", || {
        let r = rt
            .block_on(edgeward_server::start(config))
            ?;
        running = Some(r);
        Ok("baselines per device and metric, cohorts, day-one rules, geography; playbook: contain on tamper, failed attestation, a foreign model or a cloned certificate".into())
    });
    let Some(server) = running else { return };
    let api = match AdminApi::new(&rt, dir, &server) {
        Ok(api) => api,
        Err(e) => return demo.step("reach the admin API", || Err(e)),
    };
    let admin_url = |p: &str| format!("https://127.0.0.1:{}{p}", server.admin_addr.port());
    let device_url = |p: &str| format!("https://127.0.0.1:{}{p}", server.device_addr.port());
    let ca = std::fs::read(dir.join("server-ca.pem")).unwrap_or_default();
    let report = |format: &str| api.text(&format!("/v1/admin/incidents/1/report?format={format}"));

    let id = "demo-cam-042";
    let mut device = None;
    demo.step("enroll a camera and report a healthy day", || {
        let v = api.post("/v1/admin/devices", json!({ "id": id, "hardware_class": "demo-camera" }))?;
        let enrollment = v["enrollment_token"].as_str().ok_or("no token")?.to_string();
        let key = rcgen::KeyPair::generate()?;
        let csr = rcgen::CertificateParams::new(Vec::<String>::new())
            .and_then(|p| p.serialize_request(&key))
            .and_then(|c| c.pem())
            ?;
        let c = tls_client(&ca, None)?;
        let v: Value = rt.block_on(async {
            let r = c.post(admin_url("/v1/enroll")).json(&json!({ "token": enrollment, "csr": csr })).send().await?;
            r.json().await
        })?;
        let cert = v["certificate"].as_str().ok_or_else(|| format!("enrollment refused: {v}"))?;
        let secret = v["secret"].as_str().unwrap_or_default().to_string();
        let dev = tls_client(&ca, Some(format!("{cert}{}", key.serialize_pem())))?;
        let t = now() as i64;
        let records: Vec<Value> = (0..240)
            .map(|k| {
                let day = ((t - 60 * (240 - k)) % 86_400) as f64 / 86_400.0;
                let rate = 30.0 + 5.0 * (2.0 * std::f64::consts::PI * day).sin() + ((k * 37) % 7) as f64 * 0.3;
                json!({"type": "device", "at": t - 60 * (240 - k), "firmware": "2.0.1", "metrics": {"inference_rate": rate}})
            })
            .collect();
        let auth = format!("Device {}", token::create_v1(id, &secret, now()));
        let status = rt.block_on(async {
            dev.post(device_url("/v1/device/telemetry")).header("authorization", auth).json(&json!({ "records": records })).send().await.map(|r| r.status().as_u16()).unwrap_or(0)
        });
        let alerts = api.get(&format!("/v1/admin/alerts?device={id}"))?;
        let n = alerts["alerts"].as_array().map(Vec::len).unwrap_or(0);
        device = Some((dev, secret, key.serialize_pem()));
        match (status, n) {
            (200, 0) => Ok("4 hours of inference rate (one point a minute) learned; no alert".into()),
            other => fail(format!("answered {other:?}")),
        }
    });
    let Some((dev, secret, key_pem)) = device else {
        return;
    };
    let auth = || format!("Device {}", token::create_v1(id, &secret, now()));

    demo.step("the enclosure is opened: detected, alerted, contained by the playbook", || {
        let body = json!({ "records": [{"type": "event", "at": now(), "event": "tamper", "detail": "enclosure opened"}] });
        let status = rt.block_on(async {
            dev.post(device_url("/v1/device/telemetry")).header("authorization", auth()).json(&body).send().await.map(|r| r.status().as_u16()).unwrap_or(0)
        });
        if status != 200 {
            return fail(format!("the tamper report answered {status}"));
        }
        for _ in 0..100 {
            let v = api.get("/v1/admin/incidents/1").unwrap_or(Value::Null);
            if let Some(ms) = v["containment_ms"].as_i64() {
                let after = rt.block_on(async {
                    dev.post(device_url("/v1/device/telemetry")).header("authorization", auth()).json(&json!({"records": [{"type": "device", "metrics": {}}]})).send().await.map(|r| r.status().as_u16()).unwrap_or(0)
                });
                return if after == 403 {
                    Ok(format!("critical tamper alert → incident 1 contained {ms} ms after the telemetry: quarantined (its next call is refused with 403), sessions dropped, updates held, forensics requested; the wipe waits for approval"))
                } else {
                    fail(format!("contained, but the device's next call answered {after}"))
                };
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err("the incident was not contained".into())
    });
    demo.step("investigate: the device sends its forensic bundle", || {
        let (commands, upload) = rt.block_on(async {
            let c: Value = match dev.get(device_url("/v1/device/commands")).header("authorization", auth()).send().await {
                Ok(r) => r.json().await.unwrap_or(Value::Null),
                Err(_) => Value::Null,
            };
            let command = c["commands"][0]["id"].as_i64().unwrap_or(0);
            let u = match signed_bundle(id, &key_pem, command, b"process list, open ports, boot log, model hash") {
                Ok(bundle) => dev.post(device_url("/v1/device/forensics")).header("authorization", auth()).body(bundle).send().await.map(|r| r.status().as_u16()).unwrap_or(0),
                Err(_) => 0,
            };
            (c, u)
        });
        let v = api.get("/v1/admin/incidents/1")?;
        match (commands["commands"][0]["kind"].as_str(), upload, v["incident"]["status"].as_str()) {
            (Some("collect_forensics"), 200, Some("investigating")) => Ok(format!(
                "signed collect_forensics command fetched while quarantined; bundle stored content-addressed (sha256 {}…); incident investigating",
                v["evidence"][0]["sha256"].as_str().unwrap_or("").get(..16).unwrap_or("")
            )),
            other => fail(format!("{other:?}")),
        }
    });
    demo.step("remediate: an admin approves the wipe and closes the incident", || {
        let v = api.post("/v1/admin/incidents/1/approve", json!({}))?;
        if v["incident"]["status"] != "remediated" {
            return fail(format!("after approval: {}", v["incident"]["status"]));
        }
        let v = api.post("/v1/admin/incidents/1/close", json!({
            "root_cause": "the camera's enclosure was opened on site; the tamper switch fired",
            "lessons": "seal enclosures; keep the tamper rule in the default playbook",
        }))?;
        match v["incident"]["status"].as_str() {
            Some("closed") => Ok("wipe command queued by the approving admin; incident remediated, then closed with its root cause and lessons; updates released".into()),
            other => fail(format!("{other:?}")),
        }
    });
    demo.step("post-mortem written", || {
        let md = report("md")?;
        let html = report("html")?;
        if !md.contains("## Timeline") || !html.contains("<svg") {
            return Err("the report lacks its timeline or chart".into());
        }
        let (md_path, html_path) = (dir.join("post-mortem-1.md"), dir.join("post-mortem-1.html"));
        std::fs::write(&md_path, md).map_err(|e| format!("{}: {e}", md_path.display()))?;
        std::fs::write(&html_path, html).map_err(|e| format!("{}: {e}", html_path.display()))?;
        Ok(format!(
            "{} (and {})",
            md_path.display(),
            html_path.display()
        ))
    });
    rt.block_on(server.stop());
}
