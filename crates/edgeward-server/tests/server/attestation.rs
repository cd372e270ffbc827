//! Attestation over the device API, end to end: a key hierarchy signs a five-stage boot
//! chain and its policy; devices enroll with keys generated inside their (software) secure
//! elements and speak mTLS through them; evidence of a real boot, produced inside the
//! element for a nonce the server issued, verifies. Each attack is refused with its own
//! error code and audited as `attestation.failed`: a replayed nonce, a nonce the server did
//! not issue to this device, another device's evidence answering this device's nonce, a
//! measurement outside the signed policy, a signature that is not the device key's, and a
//! device of a hardware class without a signed policy.

use std::{path::Path, sync::Arc};

use base64::{engine::general_purpose::STANDARD as B64, Engine};
use edgeward_boot::{
    attest,
    boot::{boot_chain, BootOptions},
    example,
    measure::{BootLog, Register},
};
use edgeward_core::keys::PublicKey;
use edgeward_se::{tls::SeClientCertResolver, tls::SeSigningKey, KeyAlgorithm, SecureElement};
use rustls::pki_types::{pem::PemObject, CertificateDer};
use serde_json::{json, Value};

use crate::common::*;

/// The hierarchy, the signed example chain, a server configured with its policy, and the
/// log of a real boot of that chain.
struct Fleet {
    base: tempfile::TempDir,
    server: Server,
    log: BootLog,
}

async fn fleet() -> Fleet {
    let base = tempfile::tempdir().expect("tmp");
    let pki = base.path().join("pki");
    let now = time::OffsetDateTime::now_utc();
    edgeward_pki::Hierarchy::init(
        &pki,
        "Attestation Test",
        b"attestation-test-passphrase",
        90,
        KeyAlgorithm::P256,
        now,
    )
    .expect("pki");
    let out = base.path().join("example");
    let booted = open_se(&out.join("se"));
    let ex = example::write_example(&pki, &out, booted.as_ref(), 64 << 10, 64 << 10, now)
        .expect("example chain");
    let log = boot_chain(
        &ex.chain,
        booted.as_ref(),
        &BootOptions {
            now: unix_now(),
            ..BootOptions::default()
        },
    )
    .unwrap_or_else(|r| panic!("boot: {}", r.summary()));
    let chain = ex.chain.clone();
    let server = start_with(
        Backend::Sqlite,
        |c| {
            c.device_ca_cert = Some(pki.join(edgeward_pki::files::DEVICE_CA_CERT));
            c.device_ca_key = Some(pki.join(edgeward_pki::files::DEVICE_CA_KEY));
            c.attestation.policies = vec![chain];
            c.attestation.roots = Some(pki.join(edgeward_pki::files::ROOT_CERT));
            // Every forgery comes from one device: with detection on, the default playbook
            // would quarantine it at the first (tests/server/detection.rs shows that).
            c.detection.enabled = false;
        },
        None,
    )
    .await;
    Fleet { base, server, log }
}

fn open_se(dir: &Path) -> Box<dyn SecureElement> {
    edgeward_se::open(&format!("soft:{}", dir.display())).expect("soft element")
}

/// A CSR signer whose key is the element's `device` slot (as the agent enrolls).
struct ElementKey {
    se: Arc<dyn SecureElement>,
    raw_public: Vec<u8>,
}

impl rcgen::PublicKeyData for ElementKey {
    fn der_bytes(&self) -> &[u8] {
        &self.raw_public
    }
    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_ECDSA_P256_SHA256
    }
}

impl rcgen::SigningKey for ElementKey {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        self.se
            .sign(attest::DEVICE_KEY_SLOT, msg)
            .map_err(|_| rcgen::Error::RemoteKeyError)
    }
}

/// A device whose key never leaves its element: enrolled with a CSR signed inside it, its
/// certificate and the device CA stored in it, its TLS client signing through it.
struct Device {
    id: String,
    se: Arc<dyn SecureElement>,
    secret: String,
    client: reqwest::Client,
    _dir: tempfile::TempDir,
}

async fn enroll_device(f: &Fleet, name: &str, class: &str) -> Device {
    let s = &f.server;
    let id = device_id(name);
    let token = s.register(&id, class).await;
    let dir = tempfile::tempdir().expect("tmp");
    let se: Arc<dyn SecureElement> = open_se(dir.path()).into();
    let public = se
        .generate_key(attest::DEVICE_KEY_SLOT, KeyAlgorithm::P256)
        .expect("key in the element");
    assert!(matches!(public, PublicKey::P256(_)));
    let spki = public.to_spki_der();
    let key = ElementKey {
        se: se.clone(),
        raw_public: spki[spki.len() - 65..].to_vec(),
    };
    let csr = rcgen::CertificateParams::new(Vec::<String>::new())
        .and_then(|p| p.serialize_request(&key))
        .and_then(|c| c.pem())
        .expect("csr");
    let r = s
        .admin
        .post(s.admin_url("/v1/enroll"))
        .json(&json!({ "token": token, "csr": csr }))
        .send()
        .await
        .expect("enroll call");
    assert_eq!(r.status().as_u16(), 200);
    let v: Value = r.json().await.expect("enrollment");
    let cert_pem = v["certificate"].as_str().expect("certificate");
    let mut chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(cert_pem.as_bytes())
            .map(|c| c.expect("cert"))
            .collect();
    let ca_pem = std::fs::read(
        f.base
            .path()
            .join("pki")
            .join(edgeward_pki::files::DEVICE_CA_CERT),
    )
    .expect("device ca");
    let ca = CertificateDer::from_pem_slice(&ca_pem).expect("device ca");
    se.store_certificate(attest::DEVICE_CERT_SLOT, &chain[0])
        .expect("store certificate");
    se.store_certificate(attest::DEVICE_CA_SLOT, &ca)
        .expect("store device ca");
    if chain.len() == 1 {
        chain.push(ca);
    }

    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(s.server_ca()).expect("server ca") {
        roots.add(c.expect("cert")).expect("add");
    }
    let signing = SeSigningKey::new(se.clone(), attest::DEVICE_KEY_SLOT).expect("signing key");
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_client_cert_resolver(Arc::new(SeClientCertResolver::new(
        signing.certified_key(chain),
    )));
    let client = reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .timeout(std::time::Duration::from_secs(20))
        .build()
        .expect("client");
    Device {
        id,
        se,
        secret: v["secret"].as_str().expect("secret").to_string(),
        client,
        _dir: dir,
    }
}

impl Device {
    async fn post(&self, s: &Server, path: &str, body: Vec<u8>) -> (u16, Value) {
        let token = edgeward_proto::token::create_v1(&self.id, &self.secret, unix_now());
        let r = self
            .client
            .post(s.device_url(path))
            .header("authorization", format!("Device {token}"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("device call");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn nonce(&self, s: &Server) -> Vec<u8> {
        let (status, v) = self
            .post(s, "/v1/device/attestation/nonce", Vec::new())
            .await;
        assert_eq!(status, 200, "{v}");
        hex::decode(v["nonce"].as_str().expect("nonce")).expect("hex")
    }

    async fn attest(&self, s: &Server, evidence: Vec<u8>) -> (u16, Value) {
        self.post(s, "/v1/device/attestation", evidence).await
    }

    fn evidence(&self, log: &BootLog, nonce: &[u8]) -> Vec<u8> {
        attest::produce(self.se.as_ref(), log, nonce).expect("evidence")
    }
}

fn assert_refused(answer: (u16, Value), code: &str) {
    let (status, v) = answer;
    assert_eq!(status, 403, "{v}");
    assert_eq!(v["error"], code, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evidence_verifies_and_every_forgery_is_refused_and_audited() {
    let f = fleet().await;
    let s = &f.server;
    let a = enroll_device(&f, "attest-a", example::EXAMPLE_HARDWARE).await;
    let b = enroll_device(&f, "attest-b", example::EXAMPLE_HARDWARE).await;

    // Real evidence for a fresh nonce verifies.
    let nonce = a.nonce(s).await;
    let good = a.evidence(&f.log, &nonce);
    let (status, v) = a.attest(s, good.clone()).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["verified"], true);
    assert_eq!(v["register"], hex::encode(f.log.register));

    // The same evidence again: its nonce was used.
    assert_refused(a.attest(s, good).await, "attestation_replayed_nonce");

    // A nonce the server never issued, and one it issued to another device.
    let made_up = a.evidence(&f.log, &rand_bytes::<48>());
    assert_refused(a.attest(s, made_up).await, "attestation_bad_nonce");
    let bs_nonce = b.nonce(s).await;
    let answering_b = a.evidence(&f.log, &bs_nonce);
    assert_refused(a.attest(s, answering_b).await, "attestation_bad_nonce");

    // Another device's evidence answering this device's nonce (a relay).
    let nonce = a.nonce(s).await;
    let relayed = b.evidence(&f.log, &nonce);
    assert_refused(a.attest(s, relayed).await, "attestation_wrong_device");

    // A consistent log and register whose OS measurement is not the signed release's.
    let mut log = f.log.clone();
    log.events[2].digest = [9u8; 32];
    log.register = Register::replay(&log.events).0;
    let nonce = a.nonce(s).await;
    let foreign_os = a.evidence(&log, &nonce);
    assert_refused(
        a.attest(s, foreign_os).await,
        "attestation_unknown_measurement",
    );

    // Valid claims whose signature is not the device key's over them.
    let nonce = a.nonce(s).await;
    let mut env: Value = serde_json::from_slice(&a.evidence(&f.log, &nonce)).expect("json");
    let other =
        a.se.sign(attest::DEVICE_KEY_SLOT, b"something else")
            .expect("sign");
    env["signature"] = B64.encode(other).into();
    let forged = serde_json::to_vec(&env).expect("json");
    assert_refused(a.attest(s, forged).await, "attestation_bad_signature");
    // The nonce of a refused submission stays unused: the genuine evidence still verifies.
    let (status, v) = a.attest(s, a.evidence(&f.log, &nonce)).await;
    assert_eq!(status, 200, "{v}");

    // Not evidence at all.
    let (status, v) = a.attest(s, b"{\"boot\": \"fine\"}".to_vec()).await;
    assert_eq!(
        (status, v["error"].as_str()),
        (400, Some("attestation_malformed")),
        "{v}"
    );

    // A device of a class with no signed policy here: nothing to verify against.
    let c = enroll_device(&f, "attest-c", "other-board").await;
    let nonce = c.nonce(s).await;
    assert_refused(
        c.attest(s, c.evidence(&f.log, &nonce)).await,
        "attestation_no_reference",
    );

    // Every failure is a security event in the audit log.
    let (status, v) = s
        .admin_get(&format!(
            "/v1/admin/audit?action=attestation.failed&device={}&limit=100",
            a.id
        ))
        .await;
    assert_eq!(status, 200, "{v}");
    let details: Vec<&str> = v["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["detail"].as_str())
        .collect();
    for code in [
        "attestation_replayed_nonce",
        "attestation_bad_nonce",
        "attestation_wrong_device",
        "attestation_unknown_measurement",
        "attestation_bad_signature",
        "attestation_malformed",
    ] {
        assert!(
            details.iter().any(|d| d.starts_with(code)),
            "{code} not audited: {details:?}"
        );
    }
    let (_, v) = s
        .admin_get(&format!(
            "/v1/admin/audit?action=attestation.verified&device={}",
            a.id
        ))
        .await;
    assert_eq!(v["entries"].as_array().map(Vec::len), Some(2), "{v}");
}
