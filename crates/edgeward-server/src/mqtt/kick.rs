//! Closing a device's live MQTT session: after a revocation, and when an incident contains
//! the device ([`close`], called by [`crate::incidents`]: the device may connect again, and
//! the gate lets only its command channel through while it is quarantined). Mosquitto
//! checks the CRL only at the TLS handshake, so a session opened before a revocation would
//! go on. After every revocation
//! (made here or by another replica: both rewrite the CRL and bump
//! [`crate::app::App::crl_changed`]) the server sends the broker's dynamic-security plugin,
//! for each newly revoked device, `deleteClient`, `createClient` and `disableClient` for
//! its user name: disabling kicks every session of that name at once. A device revoked for
//! good keeps the `edgeward-revoked` role, which denies it every publish and subscription
//! should it reconnect before the broker has reloaded the CRL; a device whose old
//! certificate was revoked by re-enrollment is deleted again, so its new certificate works.
//! With `reload_pid_file` the broker is then sent SIGHUP and reloads the CRL, refusing the
//! revoked certificate's next handshake.

use std::{collections::HashSet, path::PathBuf};

use rumqttc::{AsyncClient, QoS};
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::{
    app::{App, Shared},
    db::DeviceStatus,
};

/// The dynamic-security plugin's command topic.
pub const CONTROL_TOPIC: &str = "$CONTROL/dynamic-security/v1";
/// Where the plugin answers.
pub const RESPONSE_TOPIC: &str = "$CONTROL/dynamic-security/v1/response";
/// The role that denies a revoked device everything.
pub const REVOKED_ROLE: &str = "edgeward-revoked";

/// The commands that close `device`'s sessions; `for_good` keeps it denied.
pub fn commands(device: &str, for_good: bool) -> Value {
    let roles = if for_good {
        json!([{ "rolename": REVOKED_ROLE }])
    } else {
        json!([])
    };
    let mut list = vec![
        json!({ "command": "deleteClient", "username": device }),
        json!({ "command": "createClient", "username": device, "roles": roles }),
        json!({ "command": "disableClient", "username": device }),
    ];
    if !for_good {
        list.push(json!({ "command": "deleteClient", "username": device }));
    }
    json!({ "commands": list })
}

/// Logs the plugin's answer when it reports an error (a `deleteClient` of a device the
/// plugin did not know yet is expected and not reported).
pub fn response(payload: &[u8]) {
    let Ok(v) = serde_json::from_slice::<Value>(payload) else {
        tracing::warn!("undecodable dynamic-security response");
        return;
    };
    for r in v["responses"].as_array().into_iter().flatten() {
        if let Some(error) = r["error"].as_str() {
            if r["command"] != "deleteClient" {
                tracing::warn!(command = %r["command"], error, "dynamic-security command failed");
            }
        }
    }
}

/// Kicks newly revoked devices after each CRL change until shutdown.
pub async fn follow(
    app: Shared,
    client: AsyncClient,
    reload_pid_file: Option<PathBuf>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut changed = app.crl_changed.subscribe();
    let mut known: HashSet<String> = match app.db.revocations().await {
        Ok(r) => r.into_iter().map(|(serial, _)| serial).collect(),
        Err(e) => {
            tracing::error!(%e, "reading revocations");
            HashSet::new()
        }
    };
    loop {
        tokio::select! {
            r = changed.changed() => if r.is_err() { return },
            _ = shutdown.changed() => return,
        }
        let revocations = match app.db.revocations().await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(%e, "reading revocations");
                continue;
            }
        };
        let mut kicked = 0u64;
        for (serial, device) in revocations {
            if !known.insert(serial) {
                continue;
            }
            match close(&app, &client, &device).await {
                Ok(()) => kicked += 1,
                Err(e) => tracing::error!(%e, %device, "asking the broker to close a session"),
            }
        }
        if kicked > 0 {
            app.metrics
                .add("edgeward_mqtt_kicks_total", String::new(), kicked);
            if let Some(path) = &reload_pid_file {
                reload(path);
            }
        }
    }
}

/// Asks the broker to close every live session of `device` now. A revoked device (or one
/// no longer registered) stays denied everything should it reconnect; any other device may
/// connect again at once.
pub async fn close(app: &App, client: &AsyncClient, device: &str) -> Result<(), String> {
    let for_good = match app.db.device(device).await {
        Ok(Some(d)) => d.status == DeviceStatus::Revoked,
        Ok(None) => true,
        Err(e) => {
            tracing::error!(%e, device, "reading a device whose session is closed");
            true
        }
    };
    client
        .publish(
            CONTROL_TOPIC,
            QoS::AtLeastOnce,
            false,
            commands(device, for_good).to_string(),
        )
        .await
        .map_err(|e| e.to_string())
}

/// Sends SIGHUP to the broker whose pid `path` holds (it reloads its CRL).
fn reload(path: &std::path::Path) {
    let pid = std::fs::read_to_string(path)
        .ok()
        .and_then(|t| t.trim().parse::<i32>().ok())
        .and_then(rustix::process::Pid::from_raw);
    let Some(pid) = pid else {
        tracing::error!(path = %path.display(), "no broker pid to reload");
        return;
    };
    if let Err(e) = rustix::process::kill_process(pid, rustix::process::Signal::HUP) {
        tracing::error!(%e, "signalling the broker to reload its CRL");
    }
}
