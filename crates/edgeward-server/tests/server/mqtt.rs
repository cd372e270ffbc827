//! Device traffic through a real Mosquitto (the Debian package's binary and its
//! dynamic-security plugin), started on a free loopback port with the configuration
//! `broker-config` generates: telemetry arrives through the same gate and entry point as
//! HTTPS, the broker's ACL confines each device to its own topics, a quarantined device's
//! telemetry is refused by the gate, a revocation closes the device's live session and
//! keeps its certificate out, and an incident's containment closes the session too.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS, SubscribeReasonCode};
use rustls::pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::{
    common::{self, Backend, Enrolled, Server},
    mosquitto::{BrokerSlot, Mosquitto},
};

/// A server consuming through a broker it generated the configuration of, both running.
async fn server_and_broker() -> (Server, Mosquitto) {
    let slot = BrokerSlot::new();
    let mqtt = slot.mqtt_config();
    let server = common::start_with(Backend::Sqlite, |c| c.mqtt = Some(mqtt), None).await;
    let broker = slot.start(server.dir.path());
    (server, broker)
}

/// What a device's connection saw.
#[derive(Debug)]
enum Seen {
    Connected,
    Subscribed(Vec<SubscribeReasonCode>),
    Message(String, Value),
    Lost(String),
}

/// A device's MQTT connection with its certificate, and what it sees.
struct Device {
    id: String,
    client: AsyncClient,
    seen: mpsc::UnboundedReceiver<Seen>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Device {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn device_tls(server: &Server, e: &Enrolled) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(server.server_ca()).expect("ca") {
        roots.add(c.expect("cert")).expect("add");
    }
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(e.cert_pem.as_bytes())
        .map(|c| c.expect("cert"))
        .collect();
    let key = PrivateKeyDer::from_pem_slice(e.key_pem.as_bytes()).expect("key");
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .expect("client auth")
}

impl Device {
    /// Connects as `e`; the connection keeps trying after a loss, reporting each.
    fn connect(server: &Server, broker: &Mosquitto, e: &Enrolled) -> Device {
        let mut options = MqttOptions::new(e.id.clone(), "127.0.0.1", broker.port);
        options.set_transport(rumqttc::Transport::tls_with_config(
            rumqttc::TlsConfiguration::Rustls(Arc::new(device_tls(server, e))),
        ));
        let (client, mut eventloop) = AsyncClient::new(options, 16);
        let (tx, seen) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            loop {
                let seen = match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => Seen::Connected,
                    Ok(Event::Incoming(Packet::SubAck(s))) => Seen::Subscribed(s.return_codes),
                    Ok(Event::Incoming(Packet::Publish(p))) => Seen::Message(
                        p.topic.clone(),
                        serde_json::from_slice(&p.payload).unwrap_or(Value::Null),
                    ),
                    Ok(_) => continue,
                    Err(e) => {
                        let _ = tx.send(Seen::Lost(e.to_string()));
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    }
                };
                if tx.send(seen).is_err() {
                    return;
                }
            }
        });
        Device {
            id: e.id.clone(),
            client,
            seen,
            task,
        }
    }

    /// The next thing seen within `secs`.
    async fn next(&mut self, secs: u64) -> Option<Seen> {
        tokio::time::timeout(Duration::from_secs(secs), self.seen.recv())
            .await
            .ok()
            .flatten()
    }

    /// Connects and subscribes to its own reply topics.
    async fn online(&mut self) {
        match self.next(10).await {
            Some(Seen::Connected) => {}
            other => panic!("{}: no connection: {other:?}", self.id),
        }
        for topic in ["commands", "acks"] {
            self.client
                .subscribe(format!("devices/{}/{topic}", self.id), QoS::AtLeastOnce)
                .await
                .expect("subscribe");
            match self.next(5).await {
                Some(Seen::Subscribed(codes)) => assert!(
                    matches!(codes[..], [SubscribeReasonCode::Success(_)]),
                    "{codes:?}"
                ),
                other => panic!("{}: no SUBACK: {other:?}", self.id),
            }
        }
    }

    async fn publish(&self, what: &str, payload: Value) {
        self.client
            .publish(
                format!("devices/{}/{what}", self.id),
                QoS::AtLeastOnce,
                false,
                payload.to_string(),
            )
            .await
            .expect("publish");
    }

    /// The next message on one of its topics (`commands` or `acks`).
    async fn message(&mut self, topic: &str) -> Value {
        let want = format!("devices/{}/{topic}", self.id);
        loop {
            match self.next(10).await {
                Some(Seen::Message(t, v)) if t == want => return v,
                Some(_) => continue,
                None => panic!("{}: nothing on {want}", self.id),
            }
        }
    }
}

fn batch(first: u64, n: u64) -> Value {
    let records: Vec<Value> = (first..first + n)
        .map(|i| json!({ "type": "device", "n": i }))
        .collect();
    json!({ "first_seq": first, "last_seq": first + n - 1, "records": records })
}

/// Publishes a batch until the server (which may still be connecting) answers.
async fn first_batch(d: &mut Device) -> Value {
    for _ in 0..40 {
        d.publish("telemetry", batch(1, 3)).await;
        if let Ok(v) = tokio::time::timeout(Duration::from_millis(500), d.message("acks")).await {
            return v;
        }
    }
    panic!("the server never answered over MQTT");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telemetry_over_mqtt_and_https_reaches_the_registry_and_devices_keep_to_their_topics() {
    let (server, broker) = server_and_broker().await;
    let a = server.enroll(&common::device_id("mq-a"), "cam").await;
    let b = server.enroll(&common::device_id("mq-b"), "cam").await;
    let db = &server.running.app.db;

    let mut da = Device::connect(&server, &broker, &a);
    da.online().await;
    let ack = first_batch(&mut da).await;
    assert_eq!(ack["request"], "telemetry", "{ack}");
    assert_eq!(ack["status"], 200, "{ack}");
    assert_eq!(ack["body"]["accepted"], 3, "{ack}");
    assert_eq!(ack["body"]["acked_through"], 3, "{ack}");
    assert_eq!(db.telemetry_count(&a.id).await.expect("count"), 1);
    // The same batch again (its reply lost, say) is acknowledged, not stored twice.
    da.publish("telemetry", batch(1, 3)).await;
    let again = da.message("acks").await;
    assert_eq!(again["body"], json!({ "accepted": 0, "acked_through": 3 }));
    assert_eq!(db.telemetry_count(&a.id).await.expect("count"), 1);

    // Device b over HTTPS: the same registry.
    let r = server
        .device_client(&b)
        .post(server.device_url("/v1/device/telemetry"))
        .header("authorization", common::v1(&b, common::unix_now()))
        .json(&batch(1, 2))
        .send()
        .await
        .expect("https telemetry");
    assert_eq!(r.status(), 200);
    assert_eq!(db.telemetry_count(&b.id).await.expect("count"), 1);

    // a publishes under b's topic: the broker drops it (b's count stays). a subscribes to
    // b's commands (Mosquitto grants the subscription and filters at delivery): when b
    // polls over MQTT and gets its commands, a gets nothing.
    da.client
        .publish(
            format!("devices/{}/telemetry", b.id),
            QoS::AtLeastOnce,
            false,
            batch(10, 1).to_string(),
        )
        .await
        .expect("publish");
    da.client
        .subscribe(format!("devices/{}/commands", b.id), QoS::AtLeastOnce)
        .await
        .expect("subscribe");
    let mut db_ = Device::connect(&server, &broker, &b);
    db_.online().await;
    db_.publish("poll", Value::Null).await;
    assert!(db_.message("commands").await["commands"].is_array());
    // Ordered after a's publish on one connection: the server has had its chance.
    da.publish("telemetry", batch(4, 1)).await;
    assert_eq!(da.message("acks").await["body"]["acked_through"], 4);
    assert_eq!(db.telemetry_count(&b.id).await.expect("count"), 1);
    while let Ok(seen) = da.seen.try_recv() {
        if let Seen::Message(topic, v) = seen {
            assert!(!topic.contains(&b.id), "a read b's {topic}: {v}");
        }
    }
    let denied = format!("Denied PUBLISH from {} ", a.id);
    assert!(
        broker
            .log()
            .lines()
            .any(|l| l.contains(&denied) && l.contains(&format!("devices/{}/", b.id))),
        "the broker's log shows no refusal:\n{}",
        broker.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quarantined_devices_mqtt_telemetry_is_refused_by_the_gate_while_commands_flow() {
    let (server, broker) = server_and_broker().await;
    let a = server.enroll(&common::device_id("mq-q"), "cam").await;
    let mut da = Device::connect(&server, &broker, &a);
    da.online().await;
    first_batch(&mut da).await;
    let (status, v) = server
        .admin_post(&format!("/v1/admin/devices/{}/quarantine", a.id), json!({}))
        .await;
    assert_eq!(status, 200, "{v}");

    da.publish("telemetry", batch(4, 2)).await;
    let refused = da.message("acks").await;
    assert_eq!(refused["status"], 403, "{refused}");
    assert_eq!(refused["error"], "quarantined", "{refused}");
    let db = &server.running.app.db;
    assert_eq!(db.telemetry_count(&a.id).await.expect("count"), 1);

    // The command channel stays open: a poll is answered on the commands topic.
    da.publish("poll", Value::Null).await;
    let commands = da.message("commands").await;
    assert!(commands["commands"].is_array(), "{commands}");

    let (_, audit) = server
        .admin_get(&format!("/v1/admin/audit?device={}&limit=50", a.id))
        .await;
    let entries = audit["entries"].as_array().cloned().unwrap_or_default();
    assert!(
        entries.iter().any(|e| e["action"] == "gate.refused"
            && e["detail"]
                .as_str()
                .is_some_and(|d| d.contains("telemetry over mqtt"))),
        "{audit}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_closes_the_live_session_and_the_certificate_cannot_connect_again() {
    let (server, broker) = server_and_broker().await;
    let a = server.enroll(&common::device_id("mq-r"), "cam").await;
    let mut da = Device::connect(&server, &broker, &a);
    da.online().await;
    first_batch(&mut da).await;

    let revoked_at = Instant::now();
    let (status, v) = server
        .admin_post(&format!("/v1/admin/devices/{}/revoke", a.id), json!({}))
        .await;
    assert_eq!(status, 200, "{v}");
    let lost = loop {
        match da.next(5).await {
            Some(Seen::Lost(e)) => break e,
            Some(_) => continue,
            None => panic!("the revoked device's session is still open after 5 s"),
        }
    };
    let elapsed = revoked_at.elapsed();
    eprintln!("revocation to disconnect: {elapsed:?} ({lost})");
    assert!(
        broker.log().contains(&format!(
            "Client {} been disconnected by administrative action",
            a.id
        )) || broker
            .log()
            .contains("disconnected by administrative action"),
        "{}",
        broker.log()
    );

    // The connection keeps trying: the broker, having reloaded the CRL, refuses the
    // certificate at the handshake, every time.
    let mut refusals = 0;
    while refusals < 3 {
        match da.next(10).await {
            Some(Seen::Lost(_)) => refusals += 1,
            Some(Seen::Connected) => panic!("the revoked certificate connected again"),
            Some(_) => continue,
            None => panic!("no further connection attempt"),
        }
    }
    assert!(
        broker.log().contains("certificate revoked")
            || broker.log().contains("certificate verify failed"),
        "{}",
        broker.log()
    );
}

/// Issue 17: containment drops the device's sessions on every transport. A tamper event
/// sent over MQTT makes the default playbook contain the device; its live MQTT session is
/// closed by the broker (through the dynamic-security plugin, as after a revocation), the
/// timeline says so, and the device may connect again, its telemetry refused by the gate
/// while its command channel works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containment_closes_the_devices_live_mqtt_session() {
    let (server, broker) = server_and_broker().await;
    let a = server.enroll(&common::device_id("mq-c"), "cam").await;
    let mut da = Device::connect(&server, &broker, &a);
    da.online().await;
    first_batch(&mut da).await;

    let tamper = json!({"type": "event", "at": common::unix_now(), "event": "tamper",
                        "detail": "enclosure opened"});
    da.publish(
        "telemetry",
        json!({"first_seq": 4, "last_seq": 4, "records": [tamper]}),
    )
    .await;
    let lost = loop {
        match da.next(10).await {
            Some(Seen::Lost(e)) => break e,
            Some(_) => continue,
            None => panic!("the contained device's MQTT session is still open after 10 s"),
        }
    };
    eprintln!("contained, session closed: {lost}");
    assert!(
        broker.log().contains(&format!("Client {} ", a.id))
            && broker
                .log()
                .contains("disconnected by administrative action"),
        "{}",
        broker.log()
    );
    let (_, incidents) = server.admin_get("/v1/admin/incidents").await;
    let incident = incidents["incidents"]
        .as_array()
        .expect("incidents")
        .iter()
        .find(|i| i["device_id"] == a.id.as_str())
        .cloned()
        .unwrap_or_else(|| panic!("no incident for {}: {incidents}", a.id));
    let (_, d) = server
        .admin_get(&format!("/v1/admin/incidents/{}", incident["id"]))
        .await;
    let dropped = d["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .find(|e| e["kind"] == "drop_sessions")
        .cloned()
        .unwrap_or_else(|| panic!("no drop_sessions on the timeline: {d}"));
    assert!(
        dropped["detail"]
            .as_str()
            .is_some_and(|t| t.contains("MQTT session closed at the broker")),
        "{dropped}"
    );

    // Not revoked: it connects again, and the gate keeps it to its command channel.
    loop {
        match da.next(10).await {
            Some(Seen::Connected) => break,
            Some(_) => continue,
            None => panic!("the contained device could not connect again"),
        }
    }
    for topic in ["commands", "acks"] {
        da.client
            .subscribe(format!("devices/{}/{topic}", a.id), QoS::AtLeastOnce)
            .await
            .expect("subscribe");
    }
    da.publish("telemetry", batch(5, 1)).await;
    let refused = da.message("acks").await;
    assert_eq!(refused["error"], "quarantined", "{refused}");
    da.publish("poll", Value::Null).await;
    assert!(da.message("commands").await["commands"].is_array());
}
