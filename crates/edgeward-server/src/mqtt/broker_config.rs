//! `edgeward-server broker-config`: everything a Mosquitto broker needs to carry Edgeward's
//! device traffic, generated from a server's data directory (the server must have started
//! once there, which creates its CAs and writes the device CRL):
//!
//! - `mosquitto.conf`: one TLS listener requiring a client certificate from the device CA,
//!   checked against the device CRL the server keeps current (`crlfile` points into the
//!   data directory), the certificate's common name as the MQTT user name, no anonymous
//!   clients, the ACL file and the dynamic-security plugin;
//! - `acl`: a device may publish only its own requests (`devices/<its id>/telemetry`,
//!   `…/poll`, `…/result/+`) and read only its own `commands` and `acks`; the server's
//!   identity ([`super::credentials::SERVER_IDENTITY`]) reads every request, writes every
//!   reply and drives the dynamic-security plugin;
//! - `dynamic-security.json` (only when absent: the plugin keeps its state there): the
//!   server's control rights and the role that denies a revoked device everything
//!   ([`super::kick`]);
//! - `broker.pem` / `broker.key`: the broker's certificate from the server CA (what agents
//!   already trust), for the names it is reached by; `device-ca.pem`: the device CA and
//!   the root it chains to.

use std::{
    fmt::Write as _,
    net::SocketAddr,
    path::{Path, PathBuf},
};

use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, Issuer, KeyPair};
use time::{Duration, OffsetDateTime};
use zeroize::Zeroizing;

use super::{credentials::SERVER_IDENTITY, kick};

/// Where Debian installs the dynamic-security plugin.
pub const DEFAULT_PLUGIN: &str = "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so";

/// Days the broker certificate is valid (run `broker-config` again to renew it).
const BROKER_CERT_DAYS: i64 = 365;

/// What to generate.
#[derive(Debug, Clone)]
pub struct BrokerOptions {
    /// Where the broker listens (TLS).
    pub listen: SocketAddr,
    /// Names (DNS or IP) the broker's certificate carries besides localhost and loopback.
    pub names: Vec<String>,
    /// The user Mosquitto runs as (`user`); none: Mosquitto's default.
    pub run_as: Option<String>,
    /// The dynamic-security plugin's path.
    pub plugin: PathBuf,
    /// The root certificate the device CA chains to (OpenSSL, hence Mosquitto, accepts a
    /// client chain only up to a self-signed root); default: the development PKI's
    /// `pki/root.pem` in the data directory.
    pub root_ca: Option<PathBuf>,
    /// The output directory.
    pub out: PathBuf,
}

/// Writes the broker's files into `options.out` from the server data directory `data_dir`;
/// returns the configuration file's path.
pub fn write(
    data_dir: &Path,
    options: &BrokerOptions,
    now: OffsetDateTime,
) -> Result<PathBuf, String> {
    let data_dir = absolute(data_dir)?;
    let need = |name: &str| {
        let path = data_dir.join(name);
        if path.exists() {
            Ok(path)
        } else {
            Err(format!(
                "{} is missing: start edgeward-server once with this data directory first",
                path.display()
            ))
        }
    };
    let (server_ca, server_ca_key, device_ca, crl) = (
        need("server-ca.pem")?,
        need("server-ca.key")?,
        need("device-ca.pem")?,
        need("device-crl.pem")?,
    );
    let root_ca = match &options.root_ca {
        Some(path) => path.clone(),
        None => need(&format!("pki/{}", edgeward_pki::files::ROOT_CERT)).map_err(|_| {
            "the device CA's root certificate is not in the data directory: pass --root-ca"
                .to_string()
        })?,
    };
    std::fs::create_dir_all(&options.out).map_err(|e| format!("{}: {e}", options.out.display()))?;
    let out = absolute(&options.out)?;
    let read = |p: &Path| std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()));

    let (cert_pem, key_pem) = broker_certificate(
        &read(&server_ca)?,
        &Zeroizing::new(read(&server_ca_key)?),
        options,
        now,
    )?;
    let put = |name: &str, data: &str, secret: bool| {
        edgeward_pki::store::write_atomic(&out.join(name), data.as_bytes(), secret)
            .map_err(|e| format!("{}: {e}", out.join(name).display()))
    };
    put("broker.pem", &cert_pem, false)?;
    put("broker.key", &key_pem, true)?;
    put(
        "device-ca.pem",
        &format!("{}{}", read(&device_ca)?, read(&root_ca)?),
        false,
    )?;
    put("acl", &acl(), false)?;
    if !out.join("dynamic-security.json").exists() {
        put("dynamic-security.json", &dynamic_security(), true)?;
    }
    put(
        "mosquitto.conf",
        &mosquitto_conf(&out, &crl, options),
        false,
    )?;
    Ok(out.join("mosquitto.conf"))
}

fn absolute(path: &Path) -> Result<PathBuf, String> {
    std::path::absolute(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// The broker's certificate (leaf then server CA, PEM) and key (PKCS#8 PEM).
fn broker_certificate(
    server_ca_pem: &str,
    server_ca_key: &str,
    options: &BrokerOptions,
    now: OffsetDateTime,
) -> Result<(String, Zeroizing<String>), String> {
    let ca_key = KeyPair::from_pem(server_ca_key).map_err(|e| format!("server CA key: {e}"))?;
    let issuer =
        Issuer::from_ca_cert_pem(server_ca_pem, ca_key).map_err(|e| format!("server CA: {e}"))?;
    let mut names = vec!["localhost".to_string(), "127.0.0.1".into(), "::1".into()];
    let ip = options.listen.ip();
    if !ip.is_unspecified() && !names.contains(&ip.to_string()) {
        names.push(ip.to_string());
    }
    names.extend(options.names.iter().cloned());
    let mut params = CertificateParams::new(names).map_err(|e| e.to_string())?;
    params
        .distinguished_name
        .push(DnType::CommonName, "edgeward-broker");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.not_before = now - Duration::minutes(5);
    params.not_after = now + Duration::days(BROKER_CERT_DAYS);
    params.serial_number = Some(edgeward_pki::issue::random_serial());
    params.use_authority_key_identifier_extension = true;
    let key = KeyPair::generate().map_err(|e| e.to_string())?;
    let cert = params
        .signed_by(&key, &issuer)
        .map_err(|e| format!("issuing the broker certificate: {e}"))?;
    Ok((
        format!("{}{server_ca_pem}", cert.pem()),
        Zeroizing::new(key.serialize_pem()),
    ))
}

/// The ACL file.
pub fn acl() -> String {
    let mut acl = String::from(
        "# Generated by edgeward-server broker-config.\n\
         # A device (user name = its certificate's common name) publishes only its own\n\
         # requests and reads only its own replies.\n\
         pattern write devices/%u/telemetry\n\
         pattern write devices/%u/poll\n\
         pattern write devices/%u/result/+\n\
         pattern read devices/%u/commands\n\
         pattern read devices/%u/acks\n\n",
    );
    let _ = writeln!(
        acl,
        "# The server reads every request and writes every reply."
    );
    let _ = writeln!(acl, "user {SERVER_IDENTITY}");
    for topic in super::SUBSCRIPTIONS {
        let _ = writeln!(acl, "topic read {topic}");
    }
    acl.push_str("topic write devices/+/commands\ntopic write devices/+/acks\n");
    acl.push_str("topic readwrite $CONTROL/dynamic-security/#\n");
    acl
}

/// The dynamic-security plugin's initial state.
pub fn dynamic_security() -> String {
    let deny =
        |acltype: &str| serde_json::json!({ "acltype": acltype, "topic": "#", "allow": false });
    let control = |acltype: &str| serde_json::json!({ "acltype": acltype, "topic": "$CONTROL/dynamic-security/#", "allow": true });
    let state = serde_json::json!({
        "defaultACLAccess": {
            "publishClientSend": false,
            "publishClientReceive": true,
            "subscribe": false,
            "unsubscribe": true
        },
        "clients": [{ "username": SERVER_IDENTITY, "roles": [{ "rolename": "edgeward-server" }] }],
        "groups": [],
        "roles": [
            {
                "rolename": "edgeward-server",
                "acls": [control("publishClientSend"), control("publishClientReceive"), control("subscribePattern")]
            },
            {
                "rolename": kick::REVOKED_ROLE,
                "acls": [deny("publishClientSend"), deny("publishClientReceive"), deny("subscribePattern")]
            }
        ]
    });
    serde_json::to_string_pretty(&state).unwrap_or_default()
}

/// `mosquitto.conf`.
fn mosquitto_conf(out: &Path, crl: &Path, options: &BrokerOptions) -> String {
    let mut c =
        String::from("# Generated by edgeward-server broker-config (see docs/broker.md).\n");
    let _ = writeln!(c, "per_listener_settings false");
    let _ = writeln!(c, "allow_anonymous false");
    let _ = writeln!(c, "persistence false");
    let _ = writeln!(c, "pid_file {}", out.join("mosquitto.pid").display());
    if let Some(user) = &options.run_as {
        let _ = writeln!(c, "user {user}");
    }
    let _ = writeln!(
        c,
        "max_packet_size {}",
        edgeward_proto::mqtt::MAX_PAYLOAD + 4096
    );
    let _ = writeln!(c, "acl_file {}", out.join("acl").display());
    let _ = writeln!(c, "plugin {}", options.plugin.display());
    let _ = writeln!(
        c,
        "plugin_opt_config_file {}",
        out.join("dynamic-security.json").display()
    );
    let _ = writeln!(
        c,
        "\nlistener {} {}",
        options.listen.port(),
        options.listen.ip()
    );
    let _ = writeln!(c, "protocol mqtt");
    let _ = writeln!(c, "tls_version tlsv1.2");
    let _ = writeln!(c, "cafile {}", out.join("device-ca.pem").display());
    let _ = writeln!(c, "certfile {}", out.join("broker.pem").display());
    let _ = writeln!(c, "keyfile {}", out.join("broker.key").display());
    let _ = writeln!(c, "# Kept current by edgeward-server; reloaded on SIGHUP.");
    let _ = writeln!(c, "crlfile {}", crl.display());
    let _ = writeln!(c, "require_certificate true");
    let _ = writeln!(c, "use_identity_as_username true");
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_acl_confines_devices_to_their_own_topics() {
        let acl = acl();
        assert!(acl.contains("pattern write devices/%u/telemetry\n"));
        assert!(acl.contains("pattern read devices/%u/commands\n"));
        assert!(!acl.contains("pattern write devices/%u/#"));
        assert!(!acl.contains("pattern read devices/+"));
        let state: serde_json::Value = serde_json::from_str(&dynamic_security()).expect("json");
        assert_eq!(state["roles"][1]["rolename"], kick::REVOKED_ROLE);
    }
}
