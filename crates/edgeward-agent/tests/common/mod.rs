//! A real `edgeward-server` on loopback (in process, SQLite) and helpers to register devices
//! and configure agents against it.

#![allow(dead_code)]

pub(crate) mod broker;

use std::path::{Path, PathBuf};

use edgeward_server::{Config, Running};
use serde_json::{json, Value};

pub(crate) struct Server {
    pub(crate) running: Running,
    pub(crate) dir: tempfile::TempDir,
    pub(crate) admin_key: String,
    pub(crate) admin: reqwest::Client,
}

impl Server {
    pub(crate) async fn start() -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        Self::start_in(dir).await
    }

    /// Starts (or restarts) a server on the data directory `dir`, on fixed ports if given.
    pub(crate) async fn start_in(dir: tempfile::TempDir) -> Server {
        let running = edgeward_server::start(config(dir.path(), None))
            .await
            .expect("server starts");
        Self::with(running, dir)
    }

    /// Starts a server whose configuration `edit` changed.
    pub(crate) async fn start_with(edit: impl FnOnce(&mut Config)) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut c = config(dir.path(), None);
        edit(&mut c);
        let running = edgeward_server::start(c).await.expect("server starts");
        Self::with(running, dir)
    }

    pub(crate) async fn start_on(dir: tempfile::TempDir, ports: (u16, u16, u16)) -> Server {
        let running = edgeward_server::start(config(dir.path(), Some(ports)))
            .await
            .expect("server starts");
        Self::with(running, dir)
    }

    pub(crate) fn with(running: Running, dir: tempfile::TempDir) -> Server {
        let admin_key =
            std::fs::read_to_string(dir.path().join("admin-token")).expect("admin token");
        let ca = reqwest::Certificate::from_pem(
            &std::fs::read(dir.path().join("server-ca.pem")).expect("server CA"),
        )
        .expect("CA");
        let admin = reqwest::Client::builder()
            .add_root_certificate(ca)
            .build()
            .expect("client");
        Server {
            running,
            dir,
            admin_key: admin_key.trim().to_string(),
            admin,
        }
    }

    pub(crate) fn ports(&self) -> (u16, u16, u16) {
        (
            self.running.device_addr.port(),
            self.running.admin_addr.port(),
            self.running.enroll_addr.port(),
        )
    }

    pub(crate) fn admin_url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.running.admin_addr.port())
    }

    pub(crate) async fn admin_call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Value,
    ) -> (u16, Value) {
        let r = self
            .admin
            .request(method, self.admin_url(path))
            .bearer_auth(&self.admin_key)
            .json(&body)
            .send()
            .await
            .expect("admin call");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Registers `id` and returns its enrollment token.
    pub(crate) async fn register(&self, id: &str) -> String {
        let (status, v) = self
            .admin_call(
                reqwest::Method::POST,
                "/v1/admin/devices",
                json!({ "id": id, "hardware_class": "cam" }),
            )
            .await;
        assert_eq!(status, 201, "{v}");
        v["enrollment_token"].as_str().expect("token").to_string()
    }

    pub(crate) async fn device(&self, id: &str) -> Value {
        let (status, v) = self
            .admin_call(
                reqwest::Method::GET,
                &format!("/v1/admin/devices/{id}"),
                Value::Null,
            )
            .await;
        assert_eq!(status, 200, "{v}");
        v
    }

    /// The telemetry the server stored for `id`, as the JSON batches it received.
    pub(crate) async fn telemetry(&self, id: &str) -> Vec<Value> {
        let url = format!("sqlite://{}", self.dir.path().join("edgeward.db").display());
        let pool = sqlx_pool(&url).await;
        let rows: Vec<(String,)> =
            sqlx::query_as("SELECT body FROM telemetry WHERE device_id = ? ORDER BY id")
                .bind(id)
                .fetch_all(&pool)
                .await
                .expect("telemetry");
        rows.into_iter()
            .map(|(b,)| serde_json::from_str(&b).expect("stored JSON"))
            .collect()
    }

    pub(crate) async fn stop(self) -> tempfile::TempDir {
        self.running.stop().await;
        self.dir
    }
}

async fn sqlx_pool(url: &str) -> sqlx::SqlitePool {
    sqlx::SqlitePool::connect(url)
        .await
        .expect("open the registry")
}

fn config(dir: &Path, ports: Option<(u16, u16, u16)>) -> Config {
    let (d, a, e) = ports.unwrap_or((0, 0, 0));
    Config {
        data_dir: dir.to_path_buf(),
        listen: ([127, 0, 0, 1], d).into(),
        admin_listen: ([127, 0, 0, 1], a).into(),
        enroll_listen: ([127, 0, 0, 1], e).into(),
        ..Config::default()
    }
}

/// Writes an agent configuration for a device of `server` into `dir` and the token file.
pub(crate) fn agent_config(server: &Server, dir: &Path, token: &str, extra: &str) -> PathBuf {
    let token_file = dir.join("enrollment-token");
    std::fs::write(&token_file, token).expect("token file");
    let (device, _, enroll) = server.ports();
    let text = format!(
        "server = \"https://localhost:{device}\"\nenroll_server = \"https://localhost:{enroll}\"\nserver_ca = \"{}\"\nelement = \"soft:{}\"\nstate_dir = \"{}\"\nenrollment_token_file = \"{}\"\ntelemetry_interval_ms = 200\ncommand_interval_ms = 200\n{extra}",
        server.dir.path().join("server-ca.pem").display(),
        dir.join("se").display(),
        dir.join("state").display(),
        token_file.display(),
    );
    let path = dir.join("agent.toml");
    std::fs::write(&path, text).expect("config");
    path
}

/// Waits up to `secs` for `f` to hold.
pub(crate) async fn wait_for<F, Fut>(secs: u64, what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        if f().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("timed out after {secs} s waiting for {what}");
}

pub(crate) fn device_id(prefix: &str) -> String {
    use rand_core::RngCore;
    let mut b = [0u8; 4];
    rand_core::OsRng.fill_bytes(&mut b);
    format!("{prefix}-{}", hex::encode(b))
}

impl Server {
    /// Queues command `kind` with `args` for `id` through the admin API; its id and answer.
    pub(crate) async fn command(&self, id: &str, kind: &str, args: Value) -> (i64, Value) {
        let (status, v) = self
            .admin_call(
                reqwest::Method::POST,
                &format!("/v1/admin/devices/{id}/commands"),
                json!({ "kind": kind, "body": args }),
            )
            .await;
        assert_eq!(status, 201, "{v}");
        (v["id"].as_i64().expect("command id"), v)
    }

    /// The stored state of command `cid` of `id`.
    pub(crate) async fn command_outcome(&self, id: &str, cid: i64) -> Value {
        let (status, v) = self
            .admin_call(
                reqwest::Method::GET,
                &format!("/v1/admin/devices/{id}/commands/{cid}"),
                Value::Null,
            )
            .await;
        assert_eq!(status, 200, "{v}");
        v["command"].clone()
    }

    /// Waits for command `cid` of `id` to be answered; its stored state.
    pub(crate) async fn answered(&self, id: &str, cid: i64) -> Value {
        wait_for(30, &format!("a result for command {cid}"), || async {
            let status = self.command_outcome(id, cid).await["status"].clone();
            status != "sent" && status != "pending"
        })
        .await;
        self.command_outcome(id, cid).await
    }

    /// Rows of `sql` (one text column, one `?` bound to `arg`) from the server's registry.
    pub(crate) async fn query(&self, sql: &str, arg: &str) -> Vec<String> {
        let url = format!("sqlite://{}", self.dir.path().join("edgeward.db").display());
        let pool = sqlx_pool(&url).await;
        let rows: Vec<(String,)> = sqlx::query_as(sql)
            .bind(arg)
            .fetch_all(&pool)
            .await
            .expect("query");
        rows.into_iter().map(|(s,)| s).collect()
    }
}

/// Starts the agent binary `bin` as a daemon on `config`, its logs discarded.
pub(crate) fn spawn_agent(bin: &str, config: &Path) -> std::process::Child {
    std::process::Command::new(bin)
        .args(["run", "--config"])
        .arg(config)
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("agent starts")
}
