//! Incidents: what the server does about an alert. The first alert of a device opens an
//! incident (later ones join it while it is open) and the playbook's matching rule acts on
//! it: quarantine, dropped sessions (its HTTPS connections and its MQTT session), held
//! updates, a forensics request, a notice to the sinks; destructive actions (wipe,
//! re-provisioning) wait for an operator's approval. Every alert, action and decision goes
//! on the incident's timeline with its actor, and the registry's audit log. An incident
//! moves forward only: detected → contained → investigating → remediated → closed.

pub mod api;
pub mod report;
pub mod store;

use edgeward_detect::{
    alert::Alert,
    incident::Status,
    playbook::{Action, Rule},
};
use serde_json::json;

use crate::{
    app::Shared,
    db::{Change, DbError, DeviceStatus, Transition},
    detection::now_ms,
};

/// Containment: the actions `edgeward incidents contain` takes.
pub const CONTAIN: &[Action] = &[
    Action::Quarantine,
    Action::DropSessions,
    Action::HoldUpdates,
    Action::CollectForensics,
];

/// The command kinds sent to the device.
pub const COLLECT_FORENSICS: &str = "collect_forensics";
/// The wipe command.
pub const WIPE: &str = "wipe";

/// Opens or joins the device's incident for a stored alert and runs the playbook's rule.
pub async fn on_alert(
    app: &Shared,
    alert_id: i64,
    alert: &Alert,
    received_ms: i64,
) -> Result<(), DbError> {
    let Some(detection) = app.detection.as_ref() else {
        return Ok(());
    };
    let rule = detection.playbook.matching(alert).cloned();
    let open = store::open_for(&app.db, &alert.device).await?;
    // Alerts no rule acts on are kept, and join an open incident, but open none.
    if rule.is_none() && open.is_none() {
        return Ok(());
    }
    let severity = json!(alert.severity)
        .as_str()
        .unwrap_or_default()
        .to_string();
    let title = format!("{}: {}", alert.kind.name(), alert.detail);
    let (incident, opened) = match open {
        Some(i) => (i, false),
        None => {
            store::open(
                &app.db,
                &alert.device,
                &severity,
                &title,
                rule.as_ref().map(|r| r.name.as_str()),
                now_ms(app),
                received_ms,
            )
            .await?
        }
    };
    if alert_id > 0 {
        crate::detection::store::link_alert(&app.db, alert_id, incident.id).await?;
    }
    store::event(
        &app.db,
        incident.id,
        received_ms,
        "detector",
        "alert",
        &format!("alert #{alert_id} ({severity}) {title}"),
    )
    .await?;
    if !opened {
        return Ok(());
    }
    app.audit(
        "detector",
        "incident.open",
        Some(&alert.device),
        &format!("incident #{}: {title}", incident.id),
    )
    .await;
    if let Some(rule) = rule {
        let actor = format!("playbook:{}", rule.name);
        run(app, incident.id, &alert.device, &rule, &actor, received_ms).await?;
    }
    Ok(())
}

/// Runs a rule's actions on an incident as `actor`; destructive actions wait for approval.
pub async fn run(
    app: &Shared,
    incident: i64,
    device: &str,
    rule: &Rule,
    actor: &str,
    trigger_ms: i64,
) -> Result<(), DbError> {
    for action in &rule.actions {
        if rule.needs_approval(*action) {
            let id =
                store::add_action(&app.db, incident, name(*action), actor, now_ms(app)).await?;
            store::event(
                &app.db,
                incident,
                now_ms(app),
                actor,
                "approval.requested",
                &format!(
                    "{} (action #{id}) waits for an operator's approval",
                    name(*action)
                ),
            )
            .await?;
        } else {
            act(app, incident, device, *action, actor, None).await?;
        }
    }
    if rule.actions.iter().any(|a| a.contains()) {
        contained(app, incident, actor, trigger_ms).await?;
    }
    Ok(())
}

/// The action's name as in playbooks.
pub fn name(action: Action) -> &'static str {
    match action {
        Action::Quarantine => "quarantine",
        Action::DropSessions => "drop_sessions",
        Action::HoldUpdates => "hold_updates",
        Action::CollectForensics => "collect_forensics",
        Action::Notify => "notify",
        Action::Wipe => "wipe",
        Action::Reprovision => "reprovision",
    }
}

/// Takes one action on the incident's device and records it. `admin` is the approving
/// operator for destructive actions (re-provisioning answers the new enrollment token).
pub async fn act(
    app: &Shared,
    incident: i64,
    device: &str,
    action: Action,
    actor: &str,
    admin: Option<&crate::admin_api::Admin>,
) -> Result<Option<serde_json::Value>, DbError> {
    let mut answer = None;
    let detail = match action {
        Action::Quarantine => match app
            .db
            .transition(device, Change::Quarantine, app.now())
            .await?
        {
            Transition::Done { from, .. } => {
                app.registry.invalidate(device);
                format!("{from} -> quarantined")
            }
            Transition::Refused(DeviceStatus::Quarantined) => "already quarantined".to_string(),
            Transition::Refused(status) => format!("not quarantined: the device is {status}"),
            Transition::NoDevice => "not quarantined: no such device".to_string(),
        },
        Action::DropSessions => {
            let closed = app.conns.close_all(device);
            app.metrics.add(
                "edgeward_connections_closed_total",
                "reason=\"incident\"".into(),
                closed as u64,
            );
            let mqtt = match app.mqtt.get() {
                None => String::new(),
                Some(client) => match crate::mqtt::kick::close(app, client, device).await {
                    Ok(()) => {
                        app.metrics.inc("edgeward_mqtt_kicks_total", String::new());
                        "; its MQTT session closed at the broker".to_string()
                    }
                    Err(e) => format!("; its MQTT session could not be closed: {e}"),
                },
            };
            // The device may hold connections to other replicas: they close theirs when
            // they read this request (within REVOCATION_SYNC).
            let replicas = match app
                .db
                .record_session_drop(device, &app.instance, now_ms(app))
                .await
            {
                Ok(()) => "; the other replicas asked to close theirs",
                Err(e) => {
                    tracing::error!(%e, device, "the session drop could not be recorded");
                    "; the other replicas could not be asked to close theirs"
                }
            };
            format!("{closed} live device connection(s) closed here{replicas}{mqtt}")
        }
        Action::HoldUpdates => {
            store::hold_updates(&app.db, device, incident, now_ms(app)).await?;
            "updates held until the incident is closed".to_string()
        }
        Action::CollectForensics => queue(app, actor, device, COLLECT_FORENSICS, incident).await,
        Action::Notify => {
            if let Some(i) = store::get(&app.db, incident).await? {
                if let Some(d) = app.detection.as_ref() {
                    d.sinks
                        .send(device, &json!({ "type": "incident", "incident": i }));
                }
            }
            "incident sent to the alert sinks".to_string()
        }
        Action::Wipe => queue(app, actor, device, WIPE, incident).await,
        Action::Reprovision => match admin {
            Some(admin) => match crate::admin_api::reprovision_device(app, admin, device).await {
                Ok(v) => {
                    answer = Some(v);
                    "back to pending with a new enrollment token; its certificate revoked"
                        .to_string()
                }
                Err(e) => format!("not re-provisioned: {}", e.message),
            },
            None => "not re-provisioned: it needs an approving operator".to_string(),
        },
    };
    store::event(&app.db, incident, now_ms(app), actor, name(action), &detail).await?;
    app.audit(
        actor,
        &format!("incident.{}", name(action)),
        Some(device),
        &format!("incident #{incident}: {detail}"),
    )
    .await;
    Ok(answer)
}

/// Queues a signed command for the device (`crate::commands::enqueue`); says what happened.
async fn queue(app: &Shared, actor: &str, device: &str, kind: &str, incident: i64) -> String {
    match crate::commands::enqueue(app, actor, device, kind, json!({ "incident": incident })).await
    {
        Ok(q) => format!("command #{} {kind} queued for the device", q.id),
        Err(e) => format!("{kind} not queued: {}", e.message),
    }
}

/// Marks the incident contained (from detected) and records how long it took from the
/// triggering telemetry.
async fn contained(
    app: &Shared,
    incident: i64,
    actor: &str,
    trigger_ms: i64,
) -> Result<(), DbError> {
    let now = now_ms(app);
    if store::transition(&app.db, incident, Status::Detected, Status::Contained, now).await? {
        app.metrics.add(
            "edgeward_containment_ms_total",
            String::new(),
            u64::try_from(now - trigger_ms).unwrap_or(0),
        );
        store::event(
            &app.db,
            incident,
            now,
            actor,
            "contained",
            &format!(
                "contained {} ms after the triggering telemetry",
                now - trigger_ms
            ),
        )
        .await?;
    }
    Ok(())
}

/// `edgeward incidents contain`: quarantine, drop sessions, hold updates, collect forensics.
pub async fn contain(app: &Shared, incident: &store::Incident, actor: &str) -> Result<(), DbError> {
    for action in CONTAIN {
        act(app, incident.id, &incident.device_id, *action, actor, None).await?;
    }
    contained(app, incident.id, actor, now_ms(app)).await
}

/// A forensic bundle arrived from `device`: it goes on the device's open incident as
/// evidence, and the incident moves to investigating.
pub async fn evidence_received(app: &Shared, device: &str, upload: i64, sha256: &str, bytes: u64) {
    let result = async {
        let Some(incident) = store::open_for(&app.db, device).await? else {
            return Ok::<_, DbError>(());
        };
        let now = now_ms(app);
        store::event(
            &app.db,
            incident.id,
            now,
            &format!("device:{device}"),
            "evidence",
            &format!("forensic bundle #{upload}: sha256 {sha256}, {bytes} bytes"),
        )
        .await?;
        let from: Status = incident.status.parse().unwrap_or(Status::Closed);
        if from < Status::Investigating
            && store::transition(&app.db, incident.id, from, Status::Investigating, now).await?
        {
            store::event(
                &app.db,
                incident.id,
                now,
                "detector",
                "investigating",
                "evidence received; the incident is under investigation",
            )
            .await?;
        }
        Ok(())
    }
    .await;
    if let Err(e) = result {
        tracing::error!(%e, device, "forensic evidence not linked to its incident");
    }
}
