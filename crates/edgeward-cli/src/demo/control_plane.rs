//! The control-plane part of `edgeward demo`: the server in process on loopback (SQLite, a
//! development PKI), a device enrolled with a CSR, authenticated calls, and the attacks a
//! compromised or impersonated device would try, each refused.

use super::{
    fail,
    server::{self, tls_client, AdminApi},
};
use std::{path::Path, time::Duration};

use edgeward_proto::token;
use rand_core::{OsRng, RngCore};
use serde_json::{json, Value};

use crate::demo::Demo;

struct Device {
    id: String,
    secret: String,
    client: reqwest::Client,
}

fn now() -> u64 {
    edgeward_core::civil::unix_now()
}

/// Adds the control-plane steps to `demo`, keeping the server's files in `dir`.
pub(crate) fn story(demo: &mut Demo, dir: &Path) {
    let rt = match server::runtime() {
        Ok(rt) => rt,
        Err(e) => return demo.step("start the control plane", || Err(e.into())),
    };
    let mut config = server::loopback_config(dir);
    config.class_limits.insert(
        "demo-camera".into(),
        edgeward_server::config::LimitConfig {
            per_second: 5,
            burst: 10,
        },
    );
    let mut running = None;
    demo.step(
        "start the control plane (SQLite, development PKI, loopback)",
        || {
            let r = rt.block_on(edgeward_server::start(config))?;
            let detail = format!(
                "device API (mTLS) on {}, admin and enrollment API on {}",
                r.device_addr, r.admin_addr
            );
            running = Some(r);
            Ok(detail)
        },
    );
    let Some(server) = running else { return };
    let admin_url = |p: &str| format!("https://127.0.0.1:{}{p}", server.admin_addr.port());
    let device_url = |p: &str| format!("https://127.0.0.1:{}{p}", server.device_addr.port());
    let ca = std::fs::read(dir.join("server-ca.pem")).unwrap_or_default();
    let api = match AdminApi::new(&rt, dir, &server) {
        Ok(api) => api,
        Err(e) => return demo.step("reach the admin API", || Err(e)),
    };

    let mut device = None;
    demo.step("register and enroll a device (one-time token + CSR)", || {
        let id = "demo-cam-001";
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
        // The line claims the reused token is refused: check the status and the reason.
        let (reused, why) = rt.block_on(async {
            match c.post(admin_url("/v1/enroll")).json(&json!({ "token": enrollment, "csr": csr })).send().await {
                Ok(r) => {
                    let status = r.status().as_u16();
                    let v: Value = r.json().await.unwrap_or(Value::Null);
                    (status, v["message"].as_str().unwrap_or_default().to_string())
                }
                Err(e) => (0, e.to_string()),
            }
        });
        if (reused, why.as_str()) != (401, "enrollment token already used") {
            return fail(format!("reusing the enrollment token answered {reused} ({why})"));
        }
        device = Some(Device {
            id: id.to_string(),
            secret: v["secret"].as_str().unwrap_or_default().to_string(),
            client: tls_client(&ca, Some(format!("{cert}{}", key.serialize_pem())))?,
        });
        Ok(format!("{id} holds a device-CA certificate for a key it generated; reusing the token is refused ({reused}: {why})"))
    });
    let Some(dev) = device else { return };
    let telemetry = |auth: Option<String>, c: &reqwest::Client| -> u16 {
        rt.block_on(async {
            let mut r = c
                .post(device_url("/v1/device/telemetry"))
                .json(&json!({ "records": [{ "fps": 29.9, "temp_c": 61.0 }] }));
            if let Some(a) = auth {
                r = r.header("authorization", a);
            }
            r.send().await.map(|r| r.status().as_u16()).unwrap_or(0)
        })
    };
    let v1 = || format!("Device {}", token::create_v1(&dev.id, &dev.secret, now()));

    demo.step(
        "authenticated telemetry (mTLS + device token)",
        || match telemetry(Some(v1()), &dev.client) {
            200 => Ok(
                "POST /v1/device/telemetry → 200 with the recipe's v1 token inside mutual TLS"
                    .into(),
            ),
            s => fail(format!("answered {s}")),
        },
    );
    demo.step(
        "attack: no client certificate gets no device endpoint",
        || {
            let anonymous = tls_client(&ca, None)?;
            match telemetry(Some(v1()), &anonymous) {
                0 => Ok("the TLS handshake is refused before any HTTP".into()),
                s => fail(format!("answered {s}")),
            }
        },
    );
    demo.step("attack: a forged token is refused", || {
        let forged = format!(
            "Device {}",
            token::create_v1(&dev.id, "guessed-secret", now())
        );
        match telemetry(Some(forged), &dev.client) {
            401 => Ok("401: the MAC does not verify".into()),
            s => fail(format!("answered {s}")),
        }
    });
    demo.step("attack: a replayed v2 token is refused", || {
        let body = br#"{"records":[{"fps":30}]}"#;
        let req = token::Request {
            method: "POST",
            target: "/v1/device/telemetry",
            body_sha256: token::body_sha256(body),
        };
        let mut nonce = [0u8; 16];
        OsRng.fill_bytes(&mut nonce);
        let t = format!(
            "Device {}",
            token::create_v2(&dev.id, &dev.secret, now(), nonce, &req)
        );
        let send = || {
            rt.block_on(async {
                dev.client
                    .post(device_url("/v1/device/telemetry"))
                    .header("authorization", t.clone())
                    .body(body.to_vec())
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
                    .unwrap_or(0)
            })
        };
        match (send(), send()) {
            (200, 401) => Ok("first use 200, the same token again 401 (nonce already seen)".into()),
            other => fail(format!("answered {other:?}")),
        }
    });
    demo.step("attack: a flood is cut at the device's burst", || {
        let statuses: Vec<u16> = (0..30).map(|_| telemetry(Some(v1()), &dev.client)).collect();
        let ok = statuses.iter().filter(|s| **s == 200).count();
        let limited = statuses.iter().filter(|s| **s == 429).count();
        if limited > 0 && ok <= 12 {
            Ok(format!("{ok} admitted, {limited} answered 429 with Retry-After (class demo-camera: burst 10, 5/s)"))
        } else {
            fail(format!("{ok} admitted, {limited} limited"))
        }
    });
    demo.step("quarantine cuts the device off on its next call", || {
        std::thread::sleep(Duration::from_millis(1200));
        api.post("/v1/admin/devices/demo-cam-001/quarantine", json!({}))?;
        let after = telemetry(Some(v1()), &dev.client);
        let poll = rt.block_on(async {
            dev.client.get(device_url("/v1/device/commands")).header("authorization", v1()).send().await.map(|r| r.status().as_u16()).unwrap_or(0)
        });
        match (after, poll) {
            (403, 200) => Ok("telemetry 403 (quarantined); command poll still 200, so the device can be told what to do".into()),
            other => fail(format!("answered {other:?}")),
        }
    });
    rt.block_on(server.stop());
}
