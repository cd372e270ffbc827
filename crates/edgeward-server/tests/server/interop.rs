//! The device API with real clients: the best-practice guide's Python recipes verbatim
//! (`create_mtls_context()` reading /etc/device/{cert,key,ca}.pem, and
//! `create_device_token`), curl, and `openssl s_client` refused for a certificate from
//! another CA, an expired one, and none.

use std::{path::Path, process::Command};

use crate::common::*;
use serde_json::json;

/// The guide's two recipes, verbatim, then a call with them.
const RECIPES: &str = r#"
import ssl
import socket
def create_mtls_context():
    context = ssl.create_default_context(
        purpose=ssl.Purpose.SERVER_AUTH
    )
    # Device certificate and key
    context.load_cert_chain(
        certfile="/etc/device/cert.pem",
        keyfile="/etc/device/key.pem"
    )
    # CA certificate for server verification
    context.load_verify_locations(
        cafile="/etc/device/ca.pem"
    )
    return context

import hmac
import hashlib
import time
def create_device_token(device_id, secret_key):
    timestamp = str(int(time.time()))
    message = f"{device_id}:{timestamp}"
    signature = hmac.new(
        secret_key.encode(),
        message.encode(),
        hashlib.sha256
    ).hexdigest()
    return f"{device_id}:{timestamp}:{signature}"

import http.client, json, sys
port, device_id, secret = int(sys.argv[1]), sys.argv[2], sys.argv[3]
conn = http.client.HTTPSConnection("localhost", port, context=create_mtls_context())
body = json.dumps({"records": [{"temp": 40.0}]})
conn.request("POST", "/v1/device/telemetry", body=body, headers={"Authorization": "Device " + create_device_token(device_id, secret), "Content-Type": "application/json"})
r = conn.getresponse()
print(r.status, r.read().decode())
conn.request("GET", "/v1/device/commands", headers={"Authorization": "Device " + create_device_token(device_id, secret)})
r = conn.getresponse()
print(r.status, r.read().decode())
"#;

fn write_device_dir(dir: &Path, s: &Server, e: &Enrolled) {
    std::fs::write(dir.join("cert.pem"), &e.cert_pem).expect("cert");
    std::fs::write(dir.join("key.pem"), &e.key_pem).expect("key");
    std::fs::copy(s.server_ca(), dir.join("ca.pem")).expect("ca");
}

both_backends!(the_python_recipes_work_verbatim, |backend| async move {
    let s = start(backend).await;
    let e = s.enroll(&device_id("py"), "gateway").await;
    let dir = tempfile::tempdir().expect("tmp");
    write_device_dir(dir.path(), &s, &e);
    // The recipe reads /etc/device/…: give this process its own /etc/device in a private
    // mount namespace instead of touching the machine's.
    std::fs::create_dir_all("/etc/device").expect("mount point");
    let script = dir.path().join("recipes.py");
    std::fs::write(&script, RECIPES).expect("script");
    let port = s.running.device_addr.port().to_string();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("unshare")
            .args([
                "--mount",
                "sh",
                "-c",
                "mount --bind \"$1\" /etc/device && exec python3 \"$2\" \"$3\" \"$4\" \"$5\"",
                "sh",
            ])
            .arg(dir.path())
            .arg(&script)
            .args([&port, &e.id, &e.secret])
            .output()
            .expect("unshare + python3")
    })
    .await
    .expect("join");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines[0].starts_with("200 ") && lines[0].contains("\"accepted\":1"),
        "{stdout}"
    );
    assert!(
        lines[1].starts_with("200 ") && lines[1].contains("\"commands\""),
        "{stdout}"
    );
    s.running.stop().await;
});

fn curl(args: &[&str]) -> (String, bool) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10"])
        .args(args)
        .output()
        .expect("curl");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        out.status.success(),
    )
}

/// Runs `openssl s_client` with a client certificate, sends a health request, and returns
/// everything it printed. A refused handshake yields no HTTP response.
fn s_client(port: u16, cert: &Path, key: &Path, ca: &Path) -> String {
    use std::io::Write;
    let mut child = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-servername",
            "localhost",
            "-quiet",
            "-cert",
        ])
        .arg(cert)
        .arg("-key")
        .arg(key)
        .arg("-CAfile")
        .arg(ca)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("openssl s_client");
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    }
    let out = child.wait_with_output().expect("s_client output");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn refused(out: &str) {
    assert!(!out.contains("200 OK"), "the handshake succeeded: {out}");
    assert!(out.contains("alert") || out.contains("error"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_and_openssl_s_client() {
    let s = start(Backend::Sqlite).await;
    let e = s.enroll(&device_id("cam"), "cam").await;
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    write_device_dir(d, &s, &e);
    let (cert, key, ca) = (d.join("cert.pem"), d.join("key.pem"), d.join("ca.pem"));
    let url = s.device_url("/v1/device/commands");
    let auth = format!("Authorization: {}", v1(&e, unix_now()));
    let args = |extra: &[&str]| {
        let mut v: Vec<String> = vec![
            "--cert".into(),
            cert.display().to_string(),
            "--key".into(),
            key.display().to_string(),
            "--cacert".into(),
            ca.display().to_string(),
        ];
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let a = args(&["-H", &auth, &url]);
    let (body, ok) = curl(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(ok && body.contains("\"commands\""), "{body}");
    // No client certificate: the handshake fails, no endpoint answers.
    let (_, ok) = curl(&["--cacert", &ca.display().to_string(), "-H", &auth, &url]);
    assert!(!ok);
    // With a certificate but no token: 401 with a JSON error body.
    let a = args(&["-w", "%{http_code}", &url]);
    let (body, _) = curl(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        body.ends_with("401") && body.contains("\"unauthenticated\""),
        "{body}"
    );

    let port = s.running.device_addr.port();
    let out = s_client(port, &cert, &key, &ca);
    assert!(out.contains("200 OK"), "{out}");

    // `NAME.pem` and `NAME.key` in `d`: neither openssl nor curl gets through the handshake.
    let refused_to_both = |name: &str| {
        let (cert, key) = (d.join(format!("{name}.pem")), d.join(format!("{name}.key")));
        refused(&s_client(port, &cert, &key, &ca));
        let (_, ok) = curl(&[
            "--cert",
            &cert.display().to_string(),
            "--key",
            &key.display().to_string(),
            "--cacert",
            &ca.display().to_string(),
            "-H",
            &auth,
            &url,
        ]);
        assert!(!ok, "curl got through with the {name} certificate");
    };

    // A certificate from another CA: handshake refused.
    let rogue_key = rcgen::KeyPair::generate().expect("key");
    let mut p = rcgen::CertificateParams::new(vec!["rogue".to_string()]).expect("params");
    p.distinguished_name
        .push(rcgen::DnType::CommonName, e.id.clone());
    let rogue = p.self_signed(&rogue_key).expect("cert");
    std::fs::write(d.join("rogue.pem"), rogue.pem()).expect("write");
    std::fs::write(d.join("rogue.key"), rogue_key.serialize_pem()).expect("write");
    refused_to_both("rogue");

    // An expired certificate from the right CA: handshake refused.
    let ca_files = s.dir.path().join("pki");
    let device_ca = edgeward_server::identity::DeviceCa::load(
        &ca_files.join("device-ca.pem"),
        &ca_files.join("device-ca.key"),
    )
    .expect("ca");
    let old_key = rcgen::KeyPair::generate().expect("key");
    let csr = rcgen::CertificateParams::new(Vec::<String>::new())
        .expect("p")
        .serialize_request(&old_key)
        .expect("csr");
    let long_ago = time::OffsetDateTime::now_utc() - time::Duration::days(400);
    let expired = device_ca
        .issue(&csr.pem().expect("pem"), &e.id, 30, long_ago)
        .expect("issue");
    std::fs::write(d.join("expired.pem"), &expired.cert_pem).expect("write");
    std::fs::write(d.join("expired.key"), old_key.serialize_pem()).expect("write");
    refused_to_both("expired");

    // A revoked certificate: handshake refused.
    let (status, _) = s
        .admin_post(&format!("/v1/admin/devices/{}/revoke", e.id), json!({}))
        .await;
    assert_eq!(status, 200);
    refused(&s_client(port, &cert, &key, &ca));
    s.running.stop().await;
}
