//! `edgeward device enroll`: what a factory or the agent does to join the fleet, as an
//! HTTPS client of `edgeward-server` trusting only the given server CA.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::json;

use crate::{
    commands::fleet::{call, client},
    outcome::{print_json, Failure, Outcome},
};

/// `edgeward device …`.
#[derive(Subcommand, Debug)]
pub(crate) enum DeviceCommand {
    /// Enroll: generate a key, send a CSR with the one-time token, write the credentials.
    Enroll(DeviceEnrollArgs),
}

/// Arguments of `device enroll`.
#[derive(Args, Debug)]
pub(crate) struct DeviceEnrollArgs {
    /// The admin/enrollment listener.
    #[arg(long, env = "EDGEWARD_SERVER")]
    pub(crate) server: String,
    /// The server CA to trust.
    #[arg(long, env = "EDGEWARD_SERVER_CA")]
    pub(crate) server_ca: PathBuf,
    /// The one-time enrollment token from `fleet add-device`.
    #[arg(long)]
    pub(crate) token: String,
    /// Where to write key.pem, cert.pem, ca.pem, device-ca.pem and secret.
    #[arg(long)]
    pub(crate) out: PathBuf,
}

/// Runs `device …`.
pub(crate) fn run(cmd: DeviceCommand, json: bool) -> Outcome {
    match cmd {
        DeviceCommand::Enroll(a) => enroll(a, json),
    }
}

/// `edgeward device enroll`: a fresh P-256 key, a CSR, the one-time token; writes `key.pem`
/// (0600), `cert.pem`, `ca.pem` (the server CA, as the recipe's `load_verify_locations`
/// expects), `device-ca.pem` and `secret` (0600).
fn enroll(a: DeviceEnrollArgs, json: bool) -> Outcome {
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
    if json {
        print_json(&json!({ "device_id": id, "dir": a.out }));
    } else {
        println!(
            "enrolled {id}: key.pem, cert.pem, ca.pem, device-ca.pem and secret in {}",
            a.out.display()
        );
    }
    Ok(())
}
