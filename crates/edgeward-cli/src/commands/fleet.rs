//! `edgeward fleet …`: the admin API of `edgeward-server`, over HTTPS trusting only the
//! given server CA.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use reqwest::blocking::Client;
use serde_json::{json, Value};

use crate::outcome::{print_json, read_operator_file, Failure, Outcome};

/// Where the server is and how to authenticate to its admin API.
#[derive(Args, Debug)]
pub(crate) struct ServerArgs {
    /// The admin/enrollment listener, e.g. https://fleet.example.com:8444.
    #[arg(long, env = "EDGEWARD_SERVER")]
    pub(crate) server: String,
    /// The server CA to trust (the server writes server-ca.pem into its data directory).
    #[arg(long, env = "EDGEWARD_SERVER_CA")]
    pub(crate) server_ca: PathBuf,
    /// File holding an admin API key (the server writes admin-token on first start).
    #[arg(long, env = "EDGEWARD_ADMIN_TOKEN_FILE")]
    pub(crate) admin_token_file: Option<PathBuf>,
}

/// `edgeward fleet …`.
#[derive(Subcommand, Debug)]
pub(crate) enum FleetCommand {
    /// Register a device; prints its one-time enrollment token.
    AddDevice(FleetAddArgs),
    /// List devices.
    List(ServerArgs),
    /// Show one device.
    Show(FleetDeviceArgs),
    /// Quarantine a device: only command poll and forensic upload remain.
    Quarantine(FleetDeviceArgs),
    /// Release a device from quarantine.
    Release(FleetDeviceArgs),
    /// Revoke a device: its certificate goes on the CRL and its connections close.
    Revoke(FleetDeviceArgs),
    /// Queue a signed command for a device (quarantine, release, collect_forensics, wipe,
    /// reprovision, attest, update); prints its id.
    Command(FleetCommandArgs),
    /// Show a command's status and its verified signed result.
    Result(FleetResultArgs),
    /// Issue a one-time enrollment token bound to a device, its status unchanged.
    EnrollmentToken(FleetDeviceArgs),
}

/// Arguments of `fleet command`.
#[derive(Args, Debug)]
pub(crate) struct FleetCommandArgs {
    #[command(flatten)]
    pub(crate) server: ServerArgs,
    /// The device id.
    pub(crate) id: String,
    /// The command's kind.
    pub(crate) kind: String,
    /// Its arguments, a JSON object (e.g. '{"reason":"beaconing"}', '{"nonce":"…"}').
    #[arg(long, default_value = "{}")]
    pub(crate) args: String,
}

/// Arguments of `fleet result`.
#[derive(Args, Debug)]
pub(crate) struct FleetResultArgs {
    #[command(flatten)]
    pub(crate) server: ServerArgs,
    /// The device id.
    pub(crate) id: String,
    /// The command id.
    pub(crate) command: i64,
}

/// Arguments of `fleet add-device`.
#[derive(Args, Debug)]
pub(crate) struct FleetAddArgs {
    #[command(flatten)]
    pub(crate) server: ServerArgs,
    /// The device id (letters, digits, '.', '_', '-'; at most 128).
    #[arg(value_name = "ID", required_unless_present = "id_flag")]
    pub(crate) id: Option<String>,
    /// The device id (the older spelling of ID).
    #[arg(long = "id", value_name = "ID", conflicts_with = "id")]
    pub(crate) id_flag: Option<String>,
    /// The hardware class (selects the device's rate limit).
    #[arg(long)]
    pub(crate) hardware: String,
}

/// Arguments of the commands about one device.
#[derive(Args, Debug)]
pub(crate) struct FleetDeviceArgs {
    #[command(flatten)]
    pub(crate) server: ServerArgs,
    /// The device id.
    pub(crate) id: String,
}

/// A client that trusts exactly `server_ca`.
pub(crate) fn client(server_ca: &Path) -> Result<Client, Failure> {
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
pub(crate) fn call(req: reqwest::blocking::RequestBuilder, what: &str) -> Result<Value, Failure> {
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

/// An admin API client: the server's URL, its CA and an admin key.
pub(crate) struct Admin {
    pub(crate) client: Client,
    pub(crate) base: String,
    pub(crate) token: String,
}

impl Admin {
    /// A client for the server `a` names, with the key from its token file.
    pub(crate) fn new(a: &ServerArgs) -> Result<Self, Failure> {
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
    /// `GET path`; the JSON answer.
    pub(crate) fn get(&self, path: &str, what: &str) -> Result<Value, Failure> {
        call(
            self.client
                .get(format!("{}{path}", self.base))
                .bearer_auth(&self.token),
            what,
        )
    }
    /// GETs `path` and returns the body, refusing one longer than `limit` bytes.
    pub(crate) fn get_bounded(
        &self,
        path: &str,
        what: &str,
        limit: u64,
    ) -> Result<Vec<u8>, Failure> {
        let r = self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .map_err(|e| Failure::operator(format!("{what}: cannot reach the server: {e}")))?;
        let status = r.status();
        let mut body = Vec::new();
        std::io::Read::read_to_end(&mut std::io::Read::take(r, limit + 1), &mut body)
            .map_err(|e| Failure::operator(format!("{what}: reading the answer: {e}")))?;
        if body.len() as u64 > limit {
            return Err(Failure::rejected(format!(
                "{what}: the server's answer is longer than {limit} bytes"
            )));
        }
        if !status.is_success() {
            let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            return Err(Failure::rejected(format!(
                "{what}: the server answered {status}: {}",
                v["message"].as_str().unwrap_or("(no message)")
            )));
        }
        Ok(body)
    }
    /// `POST path` with a JSON body; the JSON answer.
    pub(crate) fn post(&self, path: &str, body: Value, what: &str) -> Result<Value, Failure> {
        call(
            self.client
                .post(format!("{}{path}", self.base))
                .bearer_auth(&self.token)
                .json(&body),
            what,
        )
    }
}

/// Runs `fleet …`.
pub(crate) fn run(cmd: FleetCommand, json: bool) -> Outcome {
    let (value, text) = match cmd {
        FleetCommand::AddDevice(a) => {
            let id =
                a.id.or(a.id_flag)
                    .ok_or_else(|| Failure::operator("add-device needs the device id (ID)"))?;
            let admin = Admin::new(&a.server)?;
            let v = admin.post(
                "/v1/admin/devices",
                json!({ "id": id, "hardware_class": a.hardware }),
                "add-device",
            )?;
            let text = v["enrollment_token"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            (v, text)
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
            (v, text)
        }
        FleetCommand::Show(a) => {
            let v = Admin::new(&a.server)?.get(&format!("/v1/admin/devices/{}", a.id), "show")?;
            let text = serde_json::to_string_pretty(&v).unwrap_or_default();
            (v, text)
        }
        FleetCommand::Quarantine(a) => status_change(a, "quarantine")?,
        FleetCommand::Release(a) => status_change(a, "release")?,
        FleetCommand::Revoke(a) => status_change(a, "revoke")?,
        FleetCommand::Command(a) => {
            let args: Value = serde_json::from_str(&a.args)
                .map_err(|e| Failure::operator(format!("--args is not JSON: {e}")))?;
            let v = Admin::new(&a.server)?.post(
                &format!("/v1/admin/devices/{}/commands", a.id),
                json!({ "kind": a.kind, "body": args }),
                "command",
            )?;
            let text = format!("command {} queued for {}", v["id"], a.id);
            (v, text)
        }
        FleetCommand::Result(a) => {
            let v = Admin::new(&a.server)?.get(
                &format!("/v1/admin/devices/{}/commands/{}", a.id, a.command),
                "result",
            )?;
            let c = &v["command"];
            let text = format!(
                "command {} ({}): {}, signature verified: {}\n{}",
                a.command,
                c["kind"].as_str().unwrap_or("?"),
                c["status"].as_str().unwrap_or("?"),
                c["verified"],
                c["result"].as_str().unwrap_or("(no result yet)")
            );
            (v, text)
        }
        FleetCommand::EnrollmentToken(a) => {
            let v = Admin::new(&a.server)?.post(
                &format!("/v1/admin/devices/{}/enrollment-token", a.id),
                json!({}),
                "enrollment-token",
            )?;
            let text = v["enrollment_token"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            (v, text)
        }
    };
    if json {
        print_json(&value);
    } else if !text.is_empty() {
        println!("{text}");
    }
    Ok(())
}

fn status_change(a: FleetDeviceArgs, action: &str) -> Result<(Value, String), Failure> {
    let v = Admin::new(&a.server)?.post(
        &format!("/v1/admin/devices/{}/{action}", a.id),
        json!({}),
        action,
    )?;
    let text = format!("{} is now {}", a.id, v["status"].as_str().unwrap_or("?"));
    Ok((v, text))
}
