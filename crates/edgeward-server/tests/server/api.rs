//! The device and admin APIs end to end, over real TLS, against SQLite and PostgreSQL.

use crate::common::*;
use serde_json::json;

both_backends!(enroll_then_authenticated_calls, |backend| async move {
    // A malformed attestation is an attestation failure: with detection on, the default
    // playbook would quarantine the device (tests/server/detection.rs shows that).
    let s = start_with(backend, |c| c.detection.enabled = false, None).await;
    let e = s.enroll(&device_id("cam"), "jetson").await;
    let c = s.device_client(&e);
    let r = c
        .post(s.device_url("/v1/device/telemetry"))
        .header("authorization", v1(&e, unix_now()))
        .json(&json!({ "records": [{ "temp": 41.5 }, { "temp": 41.7 }] }))
        .send()
        .await
        .expect("call");
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<serde_json::Value>().await.expect("json")["accepted"],
        2
    );
    let (status, v) = s
        .admin_post(
            &format!("/v1/admin/devices/{}/commands", e.id),
            json!({ "kind": "reboot" }),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    let r = c
        .get(s.device_url("/v1/device/commands"))
        .header("authorization", v1(&e, unix_now()))
        .send()
        .await
        .expect("call");
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.expect("json");
    let cmd = v["commands"][0]["id"].as_i64().expect("command id");
    assert_eq!(v["commands"][0]["kind"], "reboot");
    let r = c
        .post(s.device_url(&format!("/v1/device/commands/{cmd}/result")))
        .header("authorization", v1(&e, unix_now()))
        .json(&e.signed_result(cmd, true, json!("rebooting")))
        .send()
        .await
        .expect("call");
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.expect("json");
    assert_eq!(
        (v["recorded"].as_i64(), &v["verified"]),
        (Some(cmd), &json!(true))
    );
    // Any JSON object is not attestation evidence (attestation.rs verifies real evidence).
    for (path, body, status) in [
        (
            "/v1/device/attestation",
            b"{\"nonce\":\"00\"}".to_vec(),
            400,
        ),
        ("/v1/device/forensics", e.bundle(cmd, &[7u8; 100_000]), 200),
    ] {
        let r = c
            .post(s.device_url(path))
            .header("authorization", v1(&e, unix_now()))
            .body(body)
            .send()
            .await
            .expect("call");
        assert_eq!(r.status(), status, "{path}");
    }
    let (status, v) = s.admin_get(&format!("/v1/admin/devices/{}", e.id)).await;
    assert_eq!(status, 200);
    assert_eq!(
        (
            v["device"]["status"].as_str(),
            v["telemetry_batches"].as_i64()
        ),
        (Some("active"), Some(1)),
        "{v}"
    );
    // The health, metrics and OpenAPI endpoints.
    let r = c
        .get(s.device_url("/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(r.text().await.expect("text"), "ok");
    let metrics = s
        .admin
        .get(s.admin_url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("edgeward_requests_total{listener=\"device\",status=\"200\"}"),
        "{metrics}"
    );
    let (_, api) = s.admin_get("/openapi.json").await;
    assert!(api["paths"]["/v1/device/telemetry"].is_object());
    s.running.stop().await;
});

both_backends!(
    unauthenticated_forged_and_replayed_calls_are_refused,
    |backend| async move {
        let s = start(backend).await;
        let e = s.enroll(&device_id("gw"), "gateway").await;
        let other = s.enroll(&device_id("gw"), "gateway").await;
        let c = s.device_client(&e);
        let telemetry = |auth: Option<String>| {
            let mut r = c
                .post(s.device_url("/v1/device/telemetry"))
                .json(&json!({ "records": [{ "x": 1 }] }));
            if let Some(a) = auth {
                r = r.header("authorization", a);
            }
            r.send()
        };
        let status = |r: reqwest::Response| r.status().as_u16();
        assert_eq!(status(telemetry(None).await.expect("call")), 401);
        let mut forged = v1(&e, unix_now());
        let last = forged.pop().expect("char");
        forged.push(if last == '0' { '1' } else { '0' });
        assert_eq!(status(telemetry(Some(forged)).await.expect("call")), 401);
        assert_eq!(
            status(telemetry(Some(v1(&other, unix_now()))).await.expect("call")),
            401,
            "another device's token"
        );
        assert_eq!(
            status(
                telemetry(Some(v1(&e, unix_now() - 301)))
                    .await
                    .expect("call")
            ),
            401,
            "stale token"
        );
        assert_eq!(
            status(telemetry(Some(v1(&e, unix_now()))).await.expect("call")),
            200
        );

        // v2: bound to the request; a replay of the same token is refused.
        let body = br#"{"records":[{"x":2}]}"#;
        let req = edgeward_proto::token::Request {
            method: "POST",
            target: "/v1/device/telemetry",
            body_sha256: edgeward_proto::token::body_sha256(body),
        };
        let token = format!(
            "Device {}",
            edgeward_proto::token::create_v2(
                &e.id,
                &e.secret,
                unix_now(),
                rand_bytes::<16>(),
                &req
            )
        );
        let send = || {
            c.post(s.device_url("/v1/device/telemetry"))
                .header("authorization", token.clone())
                .body(body.to_vec())
                .send()
        };
        assert_eq!(status(send().await.expect("call")), 200);
        let replay = send().await.expect("call");
        assert_eq!(replay.status(), 401);
        assert!(replay.text().await.expect("text").contains("replay"));
        // The same v2 token on another request (different body) is refused.
        let r = c
            .post(s.device_url("/v1/device/telemetry"))
            .header("authorization", token.clone())
            .body(br#"{"records":[{"x":3}]}"#.to_vec())
            .send()
            .await
            .expect("call");
        assert_eq!(r.status(), 401);

        // Without a client certificate nothing on the device listener answers.
        let anonymous = client(&s.server_ca(), None);
        assert!(anonymous
            .get(s.device_url("/v1/device/commands"))
            .header("authorization", v1(&e, unix_now()))
            .send()
            .await
            .is_err());

        // Enrollment tokens: single use, and unknown ones are refused; all audited.
        let token = s.register(&device_id("cam"), "x").await;
        assert_eq!(enroll_with(&s, &token).await.0, 200);
        assert_eq!(enroll_with(&s, &token).await.0, 401, "reused token");
        assert_eq!(enroll_with(&s, "ewe_forged").await.0, 401, "forged token");
        let (_, audit) = s.admin_get("/v1/admin/audit?limit=100").await;
        let actions: Vec<&str> = audit["entries"]
            .as_array()
            .expect("entries")
            .iter()
            .filter_map(|e| e["action"].as_str())
            .collect();
        assert!(
            actions.iter().filter(|a| **a == "enroll.refused").count() >= 2,
            "{actions:?}"
        );
        assert!(actions.contains(&"auth.refused"), "{actions:?}");
        // Admin keys: unknown key refused; a viewer cannot register devices.
        let r = s
            .admin
            .get(s.admin_url("/v1/admin/devices"))
            .bearer_auth("ewk_nope")
            .send()
            .await
            .expect("call");
        assert_eq!(r.status(), 401);
        let (_, k) = s
            .admin_post(
                "/v1/admin/keys",
                json!({ "name": "dash", "role": "viewer" }),
            )
            .await;
        let viewer = k["key"].as_str().expect("key");
        let r = s
            .admin
            .post(s.admin_url("/v1/admin/devices"))
            .bearer_auth(viewer)
            .json(&json!({ "id": "zz", "hardware_class": "x" }))
            .send()
            .await
            .expect("call");
        assert_eq!(r.status(), 403);
        let r = s
            .admin
            .get(s.admin_url("/v1/admin/devices"))
            .bearer_auth(viewer)
            .send()
            .await
            .expect("call");
        assert_eq!(r.status(), 200);
        // Bad device ids are refused at registration.
        for bad in ["dev:1", "dev\n1", "", &"x".repeat(200)] {
            let (status, _) = s
                .admin_post(
                    "/v1/admin/devices",
                    json!({ "id": bad, "hardware_class": "x" }),
                )
                .await;
            assert_eq!(status, 400, "{bad:?}");
        }
        s.running.stop().await;
    }
);

both_backends!(
    quarantine_applies_on_the_next_request,
    |backend| async move {
        let s = start(backend).await;
        let e = s.enroll(&device_id("robot"), "npu").await;
        let c = s.device_client(&e);
        let post = |path: &'static str| {
            c.post(s.device_url(path))
                .header("authorization", v1(&e, unix_now()))
                .json(&json!({ "records": [{ "a": 1 }] }))
                .send()
        };
        assert_eq!(
            post("/v1/device/telemetry").await.expect("call").status(),
            200
        );
        let (status, _) = s
            .admin_post(&format!("/v1/admin/devices/{}/quarantine", e.id), json!({}))
            .await;
        assert_eq!(status, 200);
        let r = post("/v1/device/telemetry").await.expect("call");
        assert_eq!(r.status(), 403);
        assert_eq!(
            r.json::<serde_json::Value>().await.expect("json")["error"],
            "quarantined"
        );
        // Command poll and forensic upload stay open to a quarantined device.
        assert_eq!(
            c.get(s.device_url("/v1/device/commands"))
                .header("authorization", v1(&e, unix_now()))
                .send()
                .await
                .expect("call")
                .status(),
            200
        );
        let r = c
            .post(s.device_url("/v1/device/forensics"))
            .header("authorization", v1(&e, unix_now()))
            .body(e.bundle(1, b"{}"))
            .send()
            .await
            .expect("call");
        assert_eq!(r.status(), 200);
        let (status, _) = s
            .admin_post(&format!("/v1/admin/devices/{}/release", e.id), json!({}))
            .await;
        assert_eq!(status, 200);
        assert_eq!(
            post("/v1/device/telemetry").await.expect("call").status(),
            200
        );
        s.running.stop().await;
    }
);

/// Every device path the OpenAPI document lists, with every method, refuses a call that
/// carries a device certificate but no token, or another device's token: no device handler
/// runs without passing the gate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_device_route_is_gated() {
    let s = start(Backend::Sqlite).await;
    let e = s.enroll(&device_id("gate"), "cam").await;
    let other = s.enroll(&device_id("gate"), "cam").await;
    let c = s.device_client(&e);
    let (_, api) = s.admin_get("/openapi.json").await;
    let paths = api["paths"].as_object().expect("paths");
    let mut checked = 0;
    for (path, methods) in paths.iter().filter(|(p, _)| p.starts_with("/v1/device/")) {
        let path = path.replace("{id}", "1");
        for method in methods.as_object().expect("methods").keys() {
            let method: reqwest::Method = method.to_uppercase().parse().expect("method");
            for auth in [None, Some(v1(&other, unix_now()))] {
                let mut r = c.request(method.clone(), s.device_url(&path)).body("{}");
                if let Some(a) = &auth {
                    r = r.header("authorization", a);
                }
                let r = r.send().await.expect("call");
                assert_eq!(r.status(), 401, "{method} {path} with {auth:?}");
                checked += 1;
            }
        }
    }
    assert!(checked >= 10, "only {checked} device calls checked");
    s.running.stop().await;
}

// A command result or forensic bundle that is not signed by the device's own certificate
// key (forged, another device's, edited after signing, for another command) is refused and
// audited, and nothing is stored; the genuine one is stored as verified with its hash.
both_backends!(
    unverifiable_results_and_bundles_are_refused,
    |backend| async move {
        let s = start(backend).await;
        let e = s.enroll(&device_id("cam"), "cam").await;
        let other = s.enroll(&device_id("cam"), "cam").await;
        let c = s.device_client(&e);
        let (status, v) = s
            .admin_post(
                &format!("/v1/admin/devices/{}/commands", e.id),
                json!({ "kind": "attest", "body": { "nonce": "00" } }),
            )
            .await;
        assert_eq!(status, 201, "{v}");
        let cmd = v["id"].as_i64().expect("id");
        let r = c
            .get(s.device_url("/v1/device/commands"))
            .header("authorization", v1(&e, unix_now()))
            .send()
            .await
            .expect("poll");
        assert_eq!(r.status(), 200);
        let post = |path: String, body: Vec<u8>| {
            c.post(s.device_url(&path))
                .header("authorization", v1(&e, unix_now()))
                .body(body)
                .send()
        };
        let result_path = format!("/v1/device/commands/{cmd}/result");
        let json = |v: serde_json::Value| serde_json::to_vec(&v).expect("json");
        // Signed by another device's key, but naming this device.
        let mut forged = other.signed_result(cmd, true, json!("done"));
        let genuine = e.signed_result(cmd, true, json!("done"));
        forged["payload"] = genuine["payload"].clone();
        // Genuinely signed by this device, for another command.
        let wrong_command = e.signed_result(cmd + 1, true, json!("done"));
        for (body, status, code) in [
            (json(forged), 403, "bad_signature"),
            (json(wrong_command), 403, "result_mismatch"),
            (
                json(json!({ "ok": true, "output": "x" })),
                400,
                "bad_request",
            ),
        ] {
            let r = post(result_path.clone(), body).await.expect("call");
            assert_eq!(r.status(), status);
            let v: serde_json::Value = r.json().await.expect("json");
            assert_eq!(v["error"], code, "{v}");
        }
        let (_, v) = s
            .admin_get(&format!("/v1/admin/devices/{}/commands/{cmd}", e.id))
            .await;
        assert_eq!(
            (&v["command"]["status"], &v["command"]["verified"]),
            (&json!("sent"), &json!(false)),
            "{v}"
        );
        let r = post(result_path.clone(), json(genuine))
            .await
            .expect("call");
        assert_eq!(r.status(), 200);
        let (_, v) = s
            .admin_get(&format!("/v1/admin/devices/{}/commands/{cmd}", e.id))
            .await;
        assert_eq!(
            (&v["command"]["status"], &v["command"]["verified"]),
            (&json!("done"), &json!(true)),
            "{v}"
        );
        assert_eq!(
            v["command"]["result_sha256"].as_str().map(str::len),
            Some(64)
        );
        // Bundles: another device's signature, a body changed after signing.
        let mut tampered = e.bundle(cmd, b"{\"processes\":[]}");
        let last = tampered.len() - 2;
        tampered[last] = b'1';
        for (body, status) in [(other.bundle(cmd, b"{}"), 403), (tampered, 400)] {
            let r = post("/v1/device/forensics".into(), body)
                .await
                .expect("call");
            assert_eq!(r.status(), status);
        }
        let bundle = e.bundle(cmd, b"{\"processes\":[]}");
        let r = post("/v1/device/forensics".into(), bundle.clone())
            .await
            .expect("call");
        assert_eq!(r.status(), 200);
        let v: serde_json::Value = r.json().await.expect("json");
        assert_eq!(
            v["sha256"].as_str(),
            Some(hex::encode(edgeward_core::sha256(&bundle)).as_str())
        );
        let (_, audit) = s
            .admin_get(&format!("/v1/admin/audit?device={}", e.id))
            .await;
        let actions: Vec<&str> = audit["entries"]
            .as_array()
            .expect("entries")
            .iter()
            .filter_map(|e| e["action"].as_str())
            .collect();
        for action in [
            "command.result_refused",
            "forensics.refused",
            "command.result",
        ] {
            assert!(actions.contains(&action), "{action} in {actions:?}");
        }
        s.running.stop().await;
    }
);

both_backends!(
    a_numbered_batch_sent_twice_at_once_is_stored_once,
    |backend| async move {
        // The group commit decides the sequence numbers inside its transaction: two copies
        // of a batch racing each other (a resend while the first is still in flight) are
        // stored once, whichever commit they share.
        let s = start(backend).await;
        let e = s.enroll(&device_id("seq"), "jetson").await;
        let c = s.device_client(&e);
        let send = |n: u64| {
            c.post(s.device_url("/v1/device/telemetry"))
                .header("authorization", v1(&e, unix_now()))
                .json(&json!({ "first_seq": n, "last_seq": n, "records": [{ "n": n }] }))
                .send()
        };
        for n in 1..=10u64 {
            let (a, b) = tokio::join!(send(n), send(n));
            let mut stored = 0;
            for r in [a, b] {
                let r = r.expect("call");
                assert_eq!(r.status(), 200);
                let v: serde_json::Value = r.json().await.expect("json");
                assert_eq!(v["acked_through"], n, "{v}");
                stored += v["accepted"].as_u64().expect("accepted");
            }
            assert_eq!(stored, 1, "batch {n} stored {stored} times");
        }
        let v: serde_json::Value = send(3).await.expect("call").json().await.expect("json");
        assert_eq!(v, json!({ "accepted": 0, "acked_through": 10 }));
        let db = &s.running.app.db;
        assert_eq!(db.telemetry_count(&e.id).await.expect("count"), 10);
    }
);
