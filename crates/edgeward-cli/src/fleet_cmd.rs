//! `edgeward fleet …` (the admin API) and `edgeward device enroll` (what a factory or the
//! agent does): HTTPS clients of `edgeward-server`, trusting only the given server CA.

use std::path::Path;

use reqwest::blocking::Client;
use serde_json::{json, Value};

use crate::{
    cli::{DeviceEnrollArgs, FleetCommand, ServerArgs},
    outcome::{print_json, read_operator_file, Failure, Outcome},
};

/// A client that trusts exactly `server_ca`.
fn client(server_ca: &Path) -> Result<Client, Failure> {
    let pem = read_operator_file(server_ca)?;
    let ca = reqwest::Certificate::from_pem(&pem)
        .map_err(|e| Failure::operator(format!("{}: {e}", server_ca.display())))?;
    Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca)
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .map_err(|e| Failure::operator(format!("HTTPS client: {e}")))
}

/// Sends a request and returns the JSON answer; 4xx/5xx become failures with the server's
/// message (exit 1), connection problems operator errors (exit 2).
fn call(req: reqwest::blocking::RequestBuilder, what: &str) -> Result<Value, Failure> {
    let r = req
        .send()
        .map_err(|e| Failure::operator(format!("{what}: cannot reach the server: {e}")))?;
    let status = r.status();
    let body: Value = r.json().unwrap_or(Value::Null);
    if status.is_success() {
        Ok(body)
    } else {
        Err(Failure::rejected(format!(
            "{what}: the server answered {status}: {}",
            body["message"].as_str().unwrap_or("(no message)")
        )))
    }
}

struct Admin {
    client: Client,
    base: String,
    token: String,
}

impl Admin {
    fn new(a: &ServerArgs) -> Result<Self, Failure> {
        let token_file = a.admin_token_file.as_ref().ok_or_else(|| {
            Failure::operator("--admin-token-file (or EDGEWARD_ADMIN_TOKEN_FILE) is required")
        })?;
        let token = String::from_utf8(read_operator_file(token_file)?)
            .map_err(|_| Failure::operator(format!("{}: not text", token_file.display())))?;
        Ok(Admin {
            client: client(&a.server_ca)?,
            base: a.server.trim_end_matches('/').to_string(),
            token: token.trim().to_string(),
        })
    }
    fn get(&self, path: &str, what: &str) -> Result<Value, Failure> {
        call(
            self.client
                .get(format!("{}{path}", self.base))
                .bearer_auth(&self.token),
            what,
        )
    }
    fn post(&self, path: &str, body: Value, what: &str) -> Result<Value, Failure> {
        call(
            self.client
                .post(format!("{}{path}", self.base))
                .bearer_auth(&self.token)
                .json(&body),
            what,
        )
    }
}

pub fn run(cmd: FleetCommand) -> Outcome {
    let (json_out, value, text) = match cmd {
        FleetCommand::AddDevice(a) => {
            let admin = Admin::new(&a.server)?;
            let v = admin.post(
                "/v1/admin/devices",
                json!({ "id": a.id, "hardware_class": a.hardware }),
                "add-device",
            )?;
            let text = v["enrollment_token"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            (a.server.json, v, text)
        }
        FleetCommand::List(a) => {
            let v = Admin::new(&a)?.get("/v1/admin/devices", "list")?;
            let text = v["devices"]
                .as_array()
                .map(|ds| {
                    ds.iter()
                        .map(|d| {
                            format!(
                                "{:<24} {:<12} {:<12} {}",
                                d["id"].as_str().unwrap_or(""),
                                d["hardware_class"].as_str().unwrap_or(""),
                                d["status"].as_str().unwrap_or(""),
                                d["cert_serial"].as_str().unwrap_or("-")
                            )
                        })
                        .collect::<Vec<_>>()
                        .join("\n")
                })
                .unwrap_or_default();
            (a.json, v, text)
        }
        FleetCommand::Show(a) => {
            let v = Admin::new(&a.server)?.get(&format!("/v1/admin/devices/{}", a.id), "show")?;
            let text = serde_json::to_string_pretty(&v).unwrap_or_default();
            (a.server.json, v, text)
        }
        FleetCommand::Quarantine(a) => status_change(a, "quarantine")?,
        FleetCommand::Release(a) => status_change(a, "release")?,
        FleetCommand::Revoke(a) => status_change(a, "revoke")?,
    };
    if json_out {
        print_json(&value);
    } else if !text.is_empty() {
        println!("{text}");
    }
    Ok(())
}

fn status_change(
    a: crate::cli::FleetDeviceArgs,
    action: &str,
) -> Result<(bool, Value, String), Failure> {
    let v = Admin::new(&a.server)?.post(
        &format!("/v1/admin/devices/{}/{action}", a.id),
        json!({}),
        action,
    )?;
    let text = format!("{} is now {}", a.id, v["status"].as_str().unwrap_or("?"));
    Ok((a.server.json, v, text))
}

/// `edgeward device enroll`: a fresh P-256 key, a CSR, the one-time token; writes `key.pem`
/// (0600), `cert.pem`, `ca.pem` (the server CA, as the recipe's `load_verify_locations`
/// expects), `device-ca.pem` and `secret` (0600).
pub fn enroll(a: DeviceEnrollArgs) -> Outcome {
    let key = rcgen::KeyPair::generate()
        .map_err(|e| Failure::operator(format!("key generation: {e}")))?;
    let csr = rcgen::CertificateParams::new(Vec::<String>::new())
        .and_then(|p| p.serialize_request(&key))
        .and_then(|c| c.pem())
        .map_err(|e| Failure::operator(format!("CSR: {e}")))?;
    let c = client(&a.server_ca)?;
    let v = call(
        c.post(format!("{}/v1/enroll", a.server.trim_end_matches('/')))
            .json(&json!({ "token": a.token.trim(), "csr": csr })),
        "enroll",
    )?;
    std::fs::create_dir_all(&a.out)
        .map_err(|e| Failure::operator(format!("{}: {e}", a.out.display())))?;
    let field = |name: &str| {
        v[name]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| Failure::rejected(format!("the enrollment answer lacks {name}")))
    };
    let files: [(&str, String, bool); 5] = [
        ("key.pem", key.serialize_pem(), true),
        ("cert.pem", field("certificate")?, false),
        ("ca.pem", field("server_ca")?, false),
        ("device-ca.pem", field("device_ca")?, false),
        ("secret", field("secret")?, true),
    ];
    for (name, content, secret) in &files {
        let path = a.out.join(name);
        edgeward_pki::store::write_atomic(&path, content.as_bytes(), *secret)
            .map_err(|e| Failure::operator(format!("{}: {e}", path.display())))?;
    }
    let id = field("device_id")?;
    if a.json {
        print_json(&json!({ "device_id": id, "dir": a.out }));
    } else {
        println!(
            "enrolled {id}: key.pem, cert.pem, ca.pem, device-ca.pem and secret in {}",
            a.out.display()
        );
    }
    Ok(())
}
