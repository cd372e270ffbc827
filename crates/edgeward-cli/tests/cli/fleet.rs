//! `edgeward fleet …` and `edgeward device enroll` against a real edgeward-server on
//! loopback: register, enroll from a CSR, call the device API with the written credentials,
//! list, quarantine, release, revoke; a reused token and a bad device id are refused.

use crate::common::*;
use std::{fs, path::PathBuf};

/// Where the server's admin API is and how to reach it.
pub(crate) struct Env {
    pub(crate) server: String,
    pub(crate) ca: PathBuf,
    pub(crate) token_file: PathBuf,
}

/// Runs `edgeward ARGS` against `env`'s server, expecting exit `code`; stdout on success,
/// stderr otherwise.
pub(crate) async fn cli(args: Vec<String>, env: &Env, code: i32) -> String {
    let (server, ca, token_file) = (env.server.clone(), env.ca.clone(), env.token_file.clone());
    tokio::task::spawn_blocking(move || {
        let mut c = edgeward();
        c.args(&args)
            .env("EDGEWARD_SERVER", server)
            .env("EDGEWARD_SERVER_CA", ca)
            .env("EDGEWARD_ADMIN_TOKEN_FILE", token_file);
        if code == 0 {
            ok(&mut c)
        } else {
            fails(&mut c, code)
        }
    })
    .await
    .expect("join")
}

pub(crate) fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_and_device_enroll_against_a_real_server() {
    let data = tempfile::tempdir().expect("tmp");
    let running = edgeward_server::start(edgeward_server::Config {
        data_dir: data.path().to_path_buf(),
        listen: ([127, 0, 0, 1], 0).into(),
        admin_listen: ([127, 0, 0, 1], 0).into(),
        enroll_listen: ([127, 0, 0, 1], 0).into(),
        ..Default::default()
    })
    .await
    .expect("server");
    let env = Env {
        server: format!("https://localhost:{}", running.admin_addr.port()),
        ca: data.path().join("server-ca.pem"),
        token_file: data.path().join("admin-token"),
    };
    let token = cli(
        args(&["fleet", "add-device", "cam-7", "--hardware", "jetson"]),
        &env,
        0,
    )
    .await;
    assert!(token.trim().starts_with("ewe_"), "{token}");
    let err = cli(
        args(&[
            "fleet",
            "add-device",
            "--id",
            "cam:7",
            "--hardware",
            "jetson",
        ]),
        &env,
        1,
    )
    .await;
    assert!(err.contains("400"), "{err}");

    let out = tempfile::tempdir().expect("tmp");
    let dir = out.path().join("cam-7");
    let enrolled = cli(
        args(&[
            "device",
            "enroll",
            "--token",
            token.trim(),
            "--out",
            dir.to_str().expect("utf8"),
        ]),
        &env,
        0,
    )
    .await;
    assert!(enrolled.contains("enrolled cam-7"), "{enrolled}");
    #[cfg(unix)]
    for secret in ["key.pem", "secret"] {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(dir.join(secret))
                .expect("file")
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
    }
    let err = cli(
        args(&[
            "device",
            "enroll",
            "--token",
            token.trim(),
            "--out",
            dir.to_str().expect("utf8"),
        ]),
        &env,
        1,
    )
    .await;
    assert!(err.contains("already used"), "{err}");

    // The written credentials work as the recipe uses them: cert.pem + key.pem, ca.pem, secret.
    let secret = fs::read_to_string(dir.join("secret")).expect("secret");
    let identity = format!(
        "{}{}",
        fs::read_to_string(dir.join("cert.pem")).expect("cert"),
        fs::read_to_string(dir.join("key.pem")).expect("key")
    );
    let device = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(
            reqwest::Certificate::from_pem(&fs::read(dir.join("ca.pem")).expect("ca")).expect("ca"),
        )
        .identity(reqwest::Identity::from_pem(identity.as_bytes()).expect("identity"))
        .build()
        .expect("client");
    let now = edgeward_core::civil::unix_now();
    let token = edgeward_proto::token::create_v1("cam-7", secret.trim(), now);
    let url = format!(
        "https://localhost:{}/v1/device/commands",
        running.device_addr.port()
    );
    let r = device
        .get(&url)
        .header("authorization", format!("Device {token}"))
        .send()
        .await
        .expect("call");
    assert_eq!(r.status(), 200);

    let list: serde_json::Value =
        serde_json::from_str(&cli(args(&["fleet", "list", "--json"]), &env, 0).await)
            .expect("json");
    assert_eq!(list["devices"][0]["status"], "active", "{list}");
    assert!(cli(args(&["fleet", "quarantine", "cam-7"]), &env, 0)
        .await
        .contains("quarantined"));
    assert!(cli(args(&["fleet", "release", "cam-7"]), &env, 0)
        .await
        .contains("active"));
    let shown: serde_json::Value =
        serde_json::from_str(&cli(args(&["fleet", "show", "cam-7", "--json"]), &env, 0).await)
            .expect("json");
    assert_eq!(shown["device"]["hardware_class"], "jetson");
    assert!(cli(args(&["fleet", "revoke", "cam-7"]), &env, 0)
        .await
        .contains("revoked"));
    assert!(
        device
            .get(&url)
            .header("authorization", format!("Device {token}"))
            .send()
            .await
            .is_err(),
        "revoked: handshake refused"
    );
    // A wrong admin key is refused.
    fs::write(out.path().join("bad-token"), "ewk_wrong").expect("write");
    let bad = Env {
        token_file: out.path().join("bad-token"),
        ..env
    };
    let err = cli(args(&["fleet", "list"]), &bad, 1).await;
    assert!(err.contains("401"), "{err}");
    running.stop().await;
}
