//! Incident commands end to end: the real server, two agent daemons (soft secure
//! elements), each command queued through the admin API, signed by the server, verified
//! and run by the agent, and its result signed inside the element and verified by the
//! server before it is stored. Quarantine cuts the device off but for commands and
//! forensics; the forensic bundle's signature verifies and its hash is recorded; a wipe
//! leaves an element without keys and a certificate that no longer connects; re-provisioning
//! (after a wipe, and by command on a live device) brings a new certificate; replayed,
//! tampered and other devices' commands are refused and nothing runs.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command},
    sync::Arc,
};

use base64::Engine;
use edgeward_agent::{
    commands::verify::{self, Refusal},
    enroll,
    net::DeviceClient,
    AgentError,
};
use edgeward_se::SecureElement;
use serde_json::{json, Value};

use crate::common::*;

struct Device {
    id: String,
    dir: tempfile::TempDir,
    config: PathBuf,
    child: Child,
}

impl Device {
    async fn start(server: &Server) -> Device {
        let id = device_id("cam");
        let token = server.register(&id).await;
        let dir = tempfile::tempdir().expect("tempdir");
        let models = dir.path().join("models");
        std::fs::create_dir_all(&models).expect("models");
        std::fs::write(models.join("detector.onnx"), b"weights").expect("model");
        let boot = dir.path().join("boot");
        std::fs::create_dir_all(&boot).expect("boot");
        std::fs::write(boot.join("boot-log.json"), boot_log()).expect("boot log");
        let config = agent_config(
            server,
            dir.path(),
            &token,
            &format!(
                "boot_state_dir = \"{}\"\nmodels_dir = \"{}\"\n",
                boot.display(),
                models.display()
            ),
        );
        let child = spawn(&config);
        Device {
            id,
            dir,
            config,
            child,
        }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn status(&self) -> Value {
        let out = Command::new(env!("CARGO_BIN_EXE_edgeward-agent"))
            .args(["status", "--json", "--config"])
            .arg(&self.config)
            .output()
            .expect("status");
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
    }

    async fn wait_state(&self, state: &str) {
        wait_for(30, &format!("agent state {state}"), || async {
            self.status()["state"] == state
        })
        .await;
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(config: &Path) -> Child {
    spawn_agent(env!("CARGO_BIN_EXE_edgeward-agent"), config)
}

/// A measured-boot log of one stage that replays to its register.
fn boot_log() -> Vec<u8> {
    use edgeward_boot::measure::{BootLog, Event, Register};
    let events = vec![Event {
        index: 0,
        stage: "kernel".into(),
        format: "bundle".into(),
        digest: [7; 32],
        security_counter: 1,
        hardware: Some("cam".into()),
        signer: "test".into(),
    }];
    let log = BootLog {
        version: 1,
        hardware: "cam".into(),
        register: Register::replay(&events).0,
        events,
        booted_at: 1,
        policy: None,
    };
    serde_json::to_vec(&log).expect("json")
}

/// The signed result payload of a stored command.
fn payload(outcome: &Value) -> Value {
    serde_json::from_str(outcome["result"].as_str().expect("result")).expect("payload")
}

/// A device client for the identity in `state` with the element at `element`.
fn client(server: &Server, state: &Path, element: &Path) -> (DeviceClient, enroll::Identity) {
    let element: Arc<dyn SecureElement> = edgeward_se::open(&format!("soft:{}", element.display()))
        .expect("element")
        .into();
    let identity = enroll::load(state, element.as_ref())
        .expect("identity")
        .expect("enrolled");
    let (port, _, _) = server.ports();
    let client = DeviceClient::new(
        &format!("https://localhost:{port}"),
        &server.dir.path().join("server-ca.pem"),
        element,
        &identity.stored.key_slot,
        vec![identity.certificate_der.clone()],
        &identity.stored.device_id,
        identity.secret.clone(),
    )
    .expect("client");
    (client, identity)
}

fn copy_dir(from: &Path, to: &Path) {
    let ok = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .expect("cp");
    assert!(ok.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incident_commands_end_to_end() {
    let server = Server::start().await;
    let a = Device::start(&server).await;
    let b = Device::start(&server).await;
    for d in [&a, &b] {
        wait_for(30, "telemetry from both agents", || async {
            !server.telemetry(&d.id).await.is_empty()
        })
        .await;
    }

    // attest: evidence of the recorded boot over the server's nonce, in a signed result.
    let nonce = "5a".repeat(16);
    let (cid, _) = server
        .command(&a.id, "attest", json!({ "nonce": nonce }))
        .await;
    let o = server.answered(&a.id, cid).await;
    assert_eq!(
        (&o["status"], &o["verified"]),
        (&json!("done"), &json!(true)),
        "{o}"
    );
    let b64 = base64::engine::general_purpose::STANDARD;
    let evidence: Value = serde_json::from_slice(
        &b64.decode(
            payload(&o)["output"]["evidence"]
                .as_str()
                .expect("evidence"),
        )
        .expect("base64"),
    )
    .expect("evidence JSON");
    let claims: Value = serde_json::from_slice(
        &b64.decode(evidence["payload"].as_str().expect("payload"))
            .expect("b64"),
    )
    .expect("claims");
    assert_eq!(claims["nonce"], nonce.as_str());
    assert_eq!(evidence["certificates"].as_array().map(Vec::len), Some(2));

    // update: no update client configured is a signed failure, not a success.
    let (cid, _) = server.command(&a.id, "update", Value::Null).await;
    let o = server.answered(&a.id, cid).await;
    assert_eq!(
        (&o["status"], &o["verified"]),
        (&json!("failed"), &json!(true))
    );
    assert_eq!(
        payload(&o)["output"]["error"],
        "updates are not configured on this device"
    );

    // An attacker's copy of A's element (its key), to try the old certificate after the wipe.
    let stolen = a.path("stolen-se");
    copy_dir(&a.path("se"), &stolen);

    // quarantine: the registry and the agent both cut the device off.
    let (cid, _) = server
        .command(&a.id, "quarantine", json!({ "reason": "beaconing" }))
        .await;
    let o = server.answered(&a.id, cid).await;
    assert_eq!(
        (&o["status"], &o["verified"]),
        (&json!("done"), &json!(true))
    );
    let quarantine_id = cid;
    assert_eq!(
        server.device(&a.id).await["device"]["status"],
        "quarantined"
    );
    a.wait_state("quarantined").await;
    let (stolen_client, old) = client(&server, &a.path("state"), &stolen);
    let telemetry = stolen_client
        .call(
            reqwest::Method::POST,
            "/v1/device/telemetry",
            br#"{"records":[{"x":1}]}"#.to_vec(),
        )
        .await;
    assert!(
        matches!(&telemetry, Err(AgentError::Refused { status: 403, code, .. }) if code == "quarantined"),
        "{telemetry:?}"
    );
    stolen_client
        .call(reqwest::Method::GET, "/v1/device/commands", Vec::new())
        .await
        .expect("the command channel stays open");
    let junk = stolen_client
        .call(
            reqwest::Method::POST,
            "/v1/device/forensics",
            b"junk".to_vec(),
        )
        .await;
    assert!(
        matches!(&junk, Err(AgentError::Refused { status: 400, .. })),
        "the forensic channel is open, an unsigned bundle is refused: {junk:?}"
    );
    // The quarantined agent keeps sampling into its queue and sends none of it; B goes on.
    let (sent_a, sent_b) = (
        server.telemetry(&a.id).await.len(),
        server.telemetry(&b.id).await.len(),
    );
    let queued = a.status()["queue_len"].as_u64().expect("queue_len");
    wait_for(30, "B to send and A to queue", || async {
        server.telemetry(&b.id).await.len() > sent_b
            && a.status()["queue_len"].as_u64().expect("queue_len") > queued
    })
    .await;
    assert_eq!(server.telemetry(&a.id).await.len(), sent_a);

    // collect_forensics: the bundle is uploaded, its signature verifies, its hash recorded.
    let (cid, _) = server
        .command(&a.id, "collect_forensics", Value::Null)
        .await;
    let o = server.answered(&a.id, cid).await;
    assert_eq!(
        (&o["status"], &o["verified"]),
        (&json!("done"), &json!(true)),
        "{o}"
    );
    let sha = payload(&o)["output"]["sha256"]
        .as_str()
        .expect("sha256")
        .to_string();
    let recorded = server
        .query(
            "SELECT sha256 FROM uploads WHERE device_id = ? AND kind = 'forensics'",
            &a.id,
        )
        .await;
    assert_eq!(recorded, vec![sha.clone()]);
    let bundle =
        std::fs::read(server.dir.path().join("forensics").join(&sha)).expect("stored bundle");
    assert_eq!(hex::encode(edgeward_core::sha256(&bundle)), sha);
    let line = edgeward_proto::forensics::parse_header(&bundle).expect("header");
    let key =
        edgeward_core::keys::PublicKey::from_certificate_der(&old.certificate_der).expect("key");
    edgeward_core::raw_signature::verify_message(
        &key,
        &edgeward_proto::command::signed_message(
            edgeward_proto::forensics::BUNDLE_CONTEXT,
            &line.payload,
        ),
        &line.signature,
    )
    .expect("the bundle is signed by the device key");
    let body: Value = serde_json::from_slice(&bundle[line.body_offset..]).expect("body");
    assert_eq!(
        hex::encode(edgeward_core::sha256(&bundle[line.body_offset..])),
        line.header.body_sha256
    );
    assert!(body["processes"].as_array().is_some_and(|p| !p.is_empty()));
    assert!(body["logs"].as_array().is_some_and(|l| !l.is_empty()));
    assert!(body["queue"].as_array().is_some_and(|q| !q.is_empty()));
    assert_eq!(body["boot_log"]["Ok"]["hardware"], "cam");
    assert_eq!(
        body["artifacts"][0]["sha256"],
        hex::encode(edgeward_core::sha256(b"weights"))
    );

    // A replayed command (the server's queue tampered to deliver it again) is refused.
    let url = format!(
        "sqlite://{}",
        server.dir.path().join("edgeward.db").display()
    );
    let pool = sqlx::SqlitePool::connect(&url).await.expect("registry");
    sqlx::query("UPDATE commands SET status = 'pending' WHERE id = ?")
        .bind(quarantine_id)
        .execute(&pool)
        .await
        .expect("replay");
    wait_for(30, "the replay refused", || async {
        a.status()["commands_refused"].as_u64().unwrap_or(0) >= 1
    })
    .await;
    assert_eq!(
        server.command_outcome(&a.id, quarantine_id).await["status"],
        "sent",
        "no result for a command that did not run"
    );

    // wipe: a signed receipt, no keys left, the old certificate refused at the handshake.
    let models = a.path("models");
    let (cid, _) = server
        .command(&a.id, "wipe", json!({ "reason": "compromised" }))
        .await;
    let o = server.answered(&a.id, cid).await;
    assert_eq!(
        (&o["status"], &o["verified"]),
        (&json!("done"), &json!(true)),
        "{o}"
    );
    assert_eq!(payload(&o)["output"]["receipt"], "wipe");
    let kept: Value = serde_json::from_slice(
        &std::fs::read(a.path(&format!("state/wipe-receipts/{cid}.json"))).expect("receipt"),
    )
    .expect("receipt JSON");
    assert_eq!(
        b64.decode(kept["payload"].as_str().expect("payload"))
            .expect("base64"),
        o["result"].as_str().expect("result").as_bytes(),
        "the receipt kept on the device is the one the server verified"
    );
    wait_for(30, "the wiped device revoked", || async {
        server.device(&a.id).await["device"]["status"] == "revoked"
    })
    .await;
    a.wait_state("wiped").await;
    let element = edgeward_se::open(&format!("soft:{}", a.path("se").display())).expect("se");
    assert!(element.public_key(&old.stored.key_slot).is_err());
    assert_eq!(
        std::fs::read_dir(a.path("se/keys")).expect("keys").count(),
        0
    );
    assert_eq!(std::fs::read_dir(&models).expect("models").count(), 0);
    assert!(!a.path("state/identity.json").exists());
    let refused = stolen_client
        .call(reqwest::Method::GET, "/v1/device/commands", Vec::new())
        .await;
    assert!(
        matches!(&refused, Err(AgentError::Unreachable(_))),
        "the revoked certificate must not complete a handshake: {refused:?}"
    );

    // Re-provisioning after the wipe: a new token, a new key, a new certificate.
    let old_serial = server.device(&a.id).await["device"]["cert_serial"].clone();
    let (status, v) = server
        .admin_call(
            reqwest::Method::POST,
            &format!("/v1/admin/devices/{}/reprovision", a.id),
            Value::Null,
        )
        .await;
    assert_eq!(status, 200, "{v}");
    std::fs::write(
        a.path("enrollment-token"),
        v["enrollment_token"].as_str().expect("token"),
    )
    .expect("token file");
    a.wait_state("running").await;
    let device = server.device(&a.id).await;
    assert_eq!(device["device"]["status"], "active");
    assert_ne!(device["device"]["cert_serial"], old_serial);
    let before = server.telemetry(&a.id).await.len();
    wait_for(30, "telemetry from the re-provisioned device", || async {
        server.telemetry(&a.id).await.len() > before
    })
    .await;

    // reprovision by command on a live device: a new key, the old certificate revoked.
    let old_serial = server.device(&b.id).await["device"]["cert_serial"]
        .as_str()
        .expect("serial")
        .to_string();
    let old_slot = b.status()["key_slot"].clone();
    let (cid, v) = server.command(&b.id, "reprovision", Value::Null).await;
    assert!(v["enrollment_token"].is_string(), "{v}");
    let o = server.answered(&b.id, cid).await;
    assert_eq!(
        (&o["status"], &o["verified"]),
        (&json!("done"), &json!(true)),
        "{o}"
    );
    let result = payload(&o);
    let output = &result["output"];
    assert_eq!(output["previous_key_slot"], old_slot, "{o}");
    assert_eq!(output["previous_key_destroyed"], true, "{o}");
    // The old key is gone from the element; the new one is there and is the certificate's.
    let element = edgeward_se::open(&format!("soft:{}", b.path("se").display())).expect("se");
    let old_slot_name = old_slot.as_str().expect("slot");
    assert!(matches!(
        element.public_key(old_slot_name),
        Err(edgeward_se::SeError::NoSuchKey(slot)) if slot == old_slot_name
    ));
    let new_slot = output["key_slot"].as_str().expect("new slot");
    assert_ne!(new_slot, old_slot_name);
    element.public_key(new_slot).expect("the new key");
    assert!(!b.path("state/retiring-key-slot").exists());
    let device = server.device(&b.id).await;
    assert_eq!(device["device"]["status"], "active");
    assert_ne!(device["device"]["cert_serial"], old_serial.as_str());
    assert_eq!(
        server
            .query(
                "SELECT serial FROM revoked_certs WHERE serial = ?",
                &old_serial
            )
            .await,
        vec![old_serial.clone()]
    );
    wait_for(30, "B on its new key", || async {
        b.status()["key_slot"] != old_slot && b.status()["state"] == "running"
    })
    .await;
    let before = server.telemetry(&b.id).await.len();
    wait_for(30, "telemetry from B after its new key", || async {
        server.telemetry(&b.id).await.len() > before
    })
    .await;
}

/// Commands the server genuinely signed, checked by the agent's verification: given to
/// another device, edited after signing or delivered again, each is refused for its reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_foreign_and_replayed_commands_are_refused() {
    let server = Server::start().await;
    let id = device_id("cam");
    let token = server.register(&id).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let element: Arc<dyn SecureElement> =
        edgeward_se::open(&format!("soft:{}", dir.path().join("se").display()))
            .expect("element")
            .into();
    let (_, _, enroll_port) = server.ports();
    let ca = server.dir.path().join("server-ca.pem");
    let request = enroll::Request::new(&element).expect("key");
    let identity = enroll::enroll(
        &format!("https://localhost:{enroll_port}"),
        &ca,
        &dir.path().join("state"),
        &element,
        &request,
        &token,
    )
    .await
    .expect("enrolled");
    let (client, identity) = {
        drop(identity);
        client(&server, &dir.path().join("state"), &dir.path().join("se"))
    };
    let (cid, _) = server.command(&id, "quarantine", Value::Null).await;
    let body = client
        .call(reqwest::Method::GET, "/v1/device/commands", Vec::new())
        .await
        .expect("poll");
    let delivered = edgeward_proto::command::parse_delivery(&body).expect("delivery");
    assert_eq!(delivered.len(), 1);
    let genuine = &delivered[0];
    let key = verify::parse_command_key(&identity.stored.command_key).expect("pinned key");
    let now = edgeward_agent::commands::now();
    assert_eq!(
        verify::verify(&key, genuine, &id, 0, now, 3600).map(|c| c.id),
        Ok(cid)
    );
    assert_eq!(
        verify::verify(&key, genuine, "cam-other", 0, now, 3600),
        Err(Refusal::WrongDevice {
            id: cid,
            for_device: id.clone()
        })
    );
    assert_eq!(
        verify::verify(&key, genuine, &id, cid, now, 3600),
        Err(Refusal::Replayed { id: cid, last: cid })
    );
    let (payload, signature) = genuine.signed.decode().expect("decode");
    let edited = String::from_utf8(payload)
        .expect("utf8")
        .replace("\"quarantine\"", "\"wipe\"");
    let forged = edgeward_proto::command::Delivered {
        id: cid,
        signed: edgeward_proto::command::Signed::new(edited.as_bytes(), &signature),
    };
    assert_eq!(
        verify::verify(&key, &forged, &id, 0, now, 3600),
        Err(Refusal::BadSignature(cid))
    );
    // A key other than the pinned one (a server impersonator's) verifies nothing.
    let other = server.dir.path().join("other");
    std::fs::create_dir_all(&other).expect("dir");
    let stranger =
        edgeward_server::command_signing::CommandSigner::load_or_create(&other.join("command.key"))
            .expect("key");
    let impostor = edgeward_proto::command::Delivered {
        id: cid,
        signed: stranger.sign(&id, cid, "wipe", &Value::Null, now),
    };
    assert_eq!(
        verify::verify(&key, &impostor, &id, 0, now, 3600),
        Err(Refusal::BadSignature(cid))
    );
}
