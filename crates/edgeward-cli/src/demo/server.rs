//! The demo's servers: each chapter that needs one starts `edgeward-server` in process on
//! loopback ports with its data in the chapter's directory, on a runtime of its own, and
//! reaches it through TLS clients that trust the server's own CA; the admin API is called
//! with the bootstrap admin key from the demo's synchronous steps.

use std::{path::Path, time::Duration};

use serde_json::Value;

use super::{fail, StepResult};

/// The runtime a chapter runs its server (and its clients) on.
pub(crate) fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
}

/// A server configuration with its data in `dir` and every listener on a free loopback port.
pub(crate) fn loopback_config(dir: &Path) -> edgeward_server::Config {
    edgeward_server::Config {
        data_dir: dir.to_path_buf(),
        listen: ([127, 0, 0, 1], 0).into(),
        admin_listen: ([127, 0, 0, 1], 0).into(),
        enroll_listen: ([127, 0, 0, 1], 0).into(),
        ..Default::default()
    }
}

/// A client that trusts only the CA in `ca_pem`, presenting `identity` (certificate and key,
/// PEM) when given.
pub(crate) fn tls_client(ca_pem: &[u8], identity: Option<String>) -> StepResult<reqwest::Client> {
    let mut b = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem)?)
        .timeout(Duration::from_secs(10));
    if let Some(pem) = identity {
        b = b.identity(reqwest::Identity::from_pem(pem.as_bytes())?);
    }
    Ok(b.build()?)
}

/// The admin API of the server whose data directory is `dir`.
pub(crate) struct AdminApi<'a> {
    rt: &'a tokio::runtime::Runtime,
    client: reqwest::Client,
    base: String,
    key: String,
}

impl<'a> AdminApi<'a> {
    /// The admin API of `server`, which keeps its files in `dir`.
    pub(crate) fn new(
        rt: &'a tokio::runtime::Runtime,
        dir: &Path,
        server: &edgeward_server::Running,
    ) -> StepResult<Self> {
        let ca = std::fs::read(dir.join("server-ca.pem"))?;
        let key = std::fs::read_to_string(dir.join("admin-token"))?;
        Ok(AdminApi {
            rt,
            client: tls_client(&ca, None)?,
            base: format!("https://127.0.0.1:{}", server.admin_addr.port()),
            key: key.trim().to_string(),
        })
    }

    /// `GET path`: the answer's JSON, or the failure with its status.
    pub(crate) fn get(&self, path: &str) -> StepResult<Value> {
        self.json(self.client.get(self.url(path)))
    }

    /// `POST path` with `body`: the answer's JSON, or the failure with its status.
    pub(crate) fn post(&self, path: &str, body: Value) -> StepResult<Value> {
        self.json(self.client.post(self.url(path)).json(&body))
    }

    /// `GET path`: the answer as text.
    pub(crate) fn text(&self, path: &str) -> StepResult<String> {
        let request = self.client.get(self.url(path)).bearer_auth(&self.key);
        self.rt
            .block_on(async { Ok(request.send().await?.text().await?) })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn json(&self, request: reqwest::RequestBuilder) -> StepResult<Value> {
        let request = request.bearer_auth(&self.key);
        self.rt.block_on(async {
            let r = request.send().await?;
            let status = r.status();
            let v: Value = r.json().await.unwrap_or(Value::Null);
            if status.is_success() {
                Ok(v)
            } else {
                fail(format!("{status}: {v}"))
            }
        })
    }
}
