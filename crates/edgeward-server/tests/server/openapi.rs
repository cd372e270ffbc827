//! The OpenAPI document against the server it describes: its paths and methods are exactly
//! the routes the server declares (`routes::declared`), every operation documents its
//! parameters, a required body where it takes one, a typed success answer and its refusals
//! in the JSON error shape; axum's own refusals (no such route, another method, a path or
//! query that does not parse) come back in that shape on every listener; and schemathesis
//! (from the venv scripts/test.sh fills), driving the real server from the document as a
//! device over mutual TLS and as an admin, finds no server error and no answer the
//! document does not describe.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::Command,
};

use edgeward_server::config::LimitConfig;
use reqwest::Method;
use serde_json::Value;

use crate::{common::*, routes};

const METHODS: &[&str] = &["get", "post", "put", "patch", "delete", "head", "options"];

fn document() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("openapi.json")).expect("JSON")
}

/// `(METHOD, path)` of every operation the document lists.
fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            assert!(METHODS.contains(&method.as_str()), "{method} {path}");
            out.push((method.to_uppercase(), path.clone(), op));
        }
    }
    out
}

#[test]
fn the_document_lists_exactly_the_routes_the_server_declares() {
    let doc = document();
    let listed: BTreeSet<(String, String)> = operations(&doc)
        .into_iter()
        .map(|(m, p, _)| (m, p))
        .collect();
    // axum's `{*rest}` (a catch-all) is OpenAPI's `{rest}`.
    let declared: BTreeSet<(String, String)> = routes::declared()
        .into_iter()
        .map(|(m, p)| (m, p.replace("{*", "{")))
        .collect();
    let missing: Vec<_> = declared.difference(&listed).collect();
    let extra: Vec<_> = listed.difference(&declared).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "routes missing from openapi.json: {missing:?}; listed but not declared: {extra:?}"
    );
}

/// Resolves a `$ref` into `#/components/…`.
fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v["$ref"].as_str() {
        Some(r) => doc
            .pointer(r.strip_prefix('#').expect("local ref"))
            .unwrap_or_else(|| panic!("dangling {r}")),
        None => v,
    }
}

#[test]
fn every_operation_documents_parameters_bodies_and_refusals() {
    let doc = document();
    for (method, path, op) in operations(&doc) {
        let what = format!("{method} {path}");
        let params = op["parameters"].as_array().cloned().unwrap_or_default();
        for name in path
            .split('{')
            .skip(1)
            .filter_map(|s| s.split_once('}').map(|(n, _)| n))
        {
            assert!(
                params
                    .iter()
                    .any(|p| p["name"] == name && p["in"] == "path" && p["required"] == true),
                "{what}: path parameter {name} undocumented"
            );
        }
        if !op["requestBody"].is_null() {
            assert_eq!(op["requestBody"]["required"], true, "{what}: body required");
        }
        let responses = op["responses"].as_object().expect("responses");
        let mut success = 0;
        for (code, r) in responses {
            let status: u16 = code.parse().unwrap_or_else(|_| panic!("{what}: {code}"));
            let r = resolve(&doc, r);
            assert!(r["description"].is_string(), "{what} {code}: description");
            if status >= 400 {
                assert_eq!(
                    r["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/Error",
                    "{what} {code}: refusals have the JSON error shape"
                );
            } else {
                success += 1;
                assert!(
                    r["content"].as_object().is_some_and(|c| !c.is_empty()),
                    "{what} {code}: the answer's type and schema"
                );
            }
        }
        assert!(success > 0, "{what}: no success answer");
        let secured = |scheme: &str| {
            op["security"]
                .as_array()
                .is_some_and(|s| s.iter().any(|s| !s[scheme].is_null()))
        };
        if path.starts_with("/v1/admin/") {
            assert!(secured("admin"), "{what}: admin key");
            assert!(responses.contains_key("401") && responses.contains_key("403"));
        }
        if path.starts_with("/v1/device/") {
            assert!(
                secured("mtls") && secured("device"),
                "{what}: device credentials"
            );
            assert!(responses.contains_key("401") && responses.contains_key("403"));
        }
    }
}

/// The status, the `Allow` header and the JSON error code of a call.
async fn refusal(r: reqwest::RequestBuilder) -> (u16, Option<String>, String) {
    let r = r.send().await.expect("call");
    let status = r.status().as_u16();
    let allow = r
        .headers()
        .get("allow")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let ctype = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    assert_eq!(ctype.as_deref(), Some("application/json"), "{status}");
    let v: Value = r.json().await.expect("JSON error");
    assert!(v["message"].is_string(), "{v}");
    (
        status,
        allow,
        v["error"].as_str().expect("code").to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axum_refusals_have_the_json_error_shape_on_every_listener() {
    let s = start(Backend::Sqlite).await;
    let e = s.enroll(&device_id("oa"), "cam").await;
    let key = s.admin_key.trim().to_string();
    let admin =
        |method: Method, path: &str| s.admin.request(method, s.admin_url(path)).bearer_auth(&key);
    let got = refusal(admin(Method::GET, "/no/such/route")).await;
    assert_eq!((got.0, got.2.as_str()), (404, "not_found"));
    let got = refusal(admin(Method::DELETE, "/v1/admin/devices")).await;
    assert_eq!((got.0, got.2.as_str()), (405, "method_not_allowed"));
    assert!(got
        .1
        .is_some_and(|a| a.contains("GET") && a.contains("POST")));
    let got = refusal(admin(Method::GET, "/v1/admin/incidents/not-a-number")).await;
    assert_eq!((got.0, got.2.as_str()), (400, "bad_request"));
    let got = refusal(admin(Method::GET, "/v1/admin/audit?limit=many")).await;
    assert_eq!((got.0, got.2.as_str()), (400, "bad_request"));
    let got = refusal(admin(Method::GET, "/v1/admin/audit/entries")).await;
    assert_eq!((got.0, got.2.as_str()), (400, "bad_request"));

    let device = s.device_client(&e);
    let got = refusal(device.get(s.device_url("/no/such/route"))).await;
    assert_eq!((got.0, got.2.as_str()), (404, "not_found"));
    let got = refusal(
        device
            .get(s.device_url("/v1/device/telemetry"))
            .header("authorization", v1(&e, unix_now())),
    )
    .await;
    assert_eq!((got.0, got.2.as_str()), (405, "method_not_allowed"));

    let enroll = format!(
        "https://127.0.0.1:{}/v1/enroll",
        s.running.enroll_addr.port()
    );
    let got = refusal(s.admin.get(&enroll)).await;
    assert_eq!((got.0, got.2.as_str()), (405, "method_not_allowed"));
    let got = refusal(
        s.admin
            .get(enroll.replace("/v1/enroll", "/v1/admin/devices")),
    )
    .await;
    assert_eq!((got.0, got.2.as_str()), (404, "not_found"));
    s.running.stop().await;
}

/// The schemathesis of the venv scripts/test.sh fills.
fn schemathesis() -> PathBuf {
    let venv = std::env::var_os("EDGEWARD_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/edgeward/venv"));
    let tool = venv.join("bin/schemathesis");
    assert!(
        tool.exists(),
        "{} not found: scripts/test.sh installs schemathesis into the venv",
        tool.display()
    );
    tool
}

/// The checks every answer must pass: no server error, and status, content type, headers
/// and body as the document describes them.
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance";

/// Runs schemathesis over the operations whose path matches `paths`, at `base`, with
/// `args`; fails with its report unless it found nothing.
fn run_schemathesis(dir: &Path, base: &str, paths: &str, args: &[&str]) {
    let out = Command::new(schemathesis())
        .arg("run")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi.json"))
        .args(["--url", base, "--include-path-regex", paths])
        .args(["--checks", CHECKS, "--max-examples", "25", "--seed", "7"])
        // One worker: with two, hypothesis sometimes fails inside its own lambda descriptions
        // (an AST recursion-depth mismatch between threads), an error of the tool's.
        .args(["--phases", "examples,coverage,fuzzing", "--workers", "1"])
        .args(["--request-timeout", "20", "--suppress-health-check", "all"])
        .args([
            "--max-time",
            "25",
            "--no-color",
            "--generation-database",
            "none",
        ])
        .args(["--generation-with-security-parameters", "false"])
        .arg("--tls-verify")
        .arg(dir.join("server-ca.pem"))
        .args(args)
        .env("HOME", dir)
        .current_dir(dir)
        .output()
        .expect("run schemathesis");
    assert!(
        out.status.success(),
        "schemathesis on {paths}:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_nothing_as_a_device_or_an_admin() {
    let lifted = LimitConfig {
        per_second: 100_000,
        burst: 100_000,
    };
    let s = start_with(
        Backend::Sqlite,
        |c| {
            c.ip_limit = lifted;
            c.device_limit = lifted;
            c.enroll_limit = lifted;
            // Every malformed request comes from one device: with detection on, the first
            // attestation that does not verify has the default playbook quarantine it and
            // close its connections, and every later call is refused 403 or cut.
            c.detection.enabled = false;
        },
        None,
    )
    .await;
    let e = s.enroll(&device_id("st"), "cam").await;
    let dir = s.dir.path().to_path_buf();
    std::fs::write(dir.join("device.pem"), &e.cert_pem).expect("cert");
    std::fs::write(dir.join("device.key"), &e.key_pem).expect("key");
    let device_base = s.device_url("");
    let admin_base = s.admin_url("");
    let token = format!("Authorization: {}", v1(&e, unix_now()));
    let bearer = format!("Authorization: Bearer {}", s.admin_key.trim());
    let ran = tokio::task::spawn_blocking(move || {
        run_schemathesis(
            &dir,
            &device_base,
            "^/v1/device/",
            &[
                "--request-cert",
                "device.pem",
                "--request-cert-key",
                "device.key",
                "-H",
                &token,
            ],
        );
        run_schemathesis(
            &dir,
            &admin_base,
            "^/v1/admin/|^/v1/enroll$|^/healthz$",
            &["-H", &bearer],
        );
    })
    .await;
    s.running.stop().await;
    ran.expect("schemathesis runs");
}
