//! The agent's HTTPS clients. Enrollment speaks server-authenticated TLS to the enrollment
//! listener; everything else speaks mutual TLS to the device API with the client key inside
//! the secure element (rustls asks the element for each handshake signature), and every
//! call carries a v2 device token binding its method, path, body and a fresh nonce.

use std::{path::Path, sync::Arc, time::Duration};

use edgeward_proto::token;
use edgeward_se::{tls::SeClientCertResolver, SecureElement};
use rand_core::{OsRng, RngCore};
use reqwest::Method;
use rustls::{crypto::CryptoProvider, ClientConfig, RootCertStore};
use rustls_pki_types::{pem::PemObject, CertificateDer};
use zeroize::Zeroizing;

use crate::AgentError;

/// Longest answer the agent reads from the server.
pub const MAX_RESPONSE: usize = 4 * 1024 * 1024;

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads the server CA file into a root store.
pub fn server_roots(server_ca: &Path) -> Result<RootCertStore, AgentError> {
    let pem = crate::files::read_bounded(server_ca, 1024 * 1024)?.ok_or_else(|| {
        AgentError::Config(format!("server CA {} does not exist", server_ca.display()))
    })?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert
            .map_err(|e| AgentError::Config(format!("server CA {}: {e}", server_ca.display())))?;
        roots
            .add(cert)
            .map_err(|e| AgentError::Config(format!("server CA {}: {e}", server_ca.display())))?;
    }
    if roots.is_empty() {
        return Err(AgentError::Config(format!(
            "server CA {} holds no certificate",
            server_ca.display()
        )));
    }
    Ok(roots)
}

fn http(tls: ClientConfig) -> Result<reqwest::Client, AgentError> {
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| AgentError::Config(format!("HTTPS client: {e}")))
}

fn tls_builder() -> Result<rustls::ConfigBuilder<ClientConfig, rustls::WantsVerifier>, AgentError> {
    ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| AgentError::Config(format!("TLS: {e}")))
}

/// A client for the enrollment listener: trusts only the server CA, presents no certificate.
pub fn enrollment_client(server_ca: &Path) -> Result<reqwest::Client, AgentError> {
    let tls = tls_builder()?
        .with_root_certificates(server_roots(server_ca)?)
        .with_no_client_auth();
    http(tls)
}

/// Reads a response: its body (bounded) when 2xx, else the server's refusal.
pub async fn read(what: &str, response: reqwest::Response) -> Result<Vec<u8>, AgentError> {
    let status = response.status();
    let mut response = response;
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| AgentError::Unreachable(format!("{what}: {e}")))?
    {
        if body.len() + chunk.len() > MAX_RESPONSE {
            return Err(AgentError::Protocol(format!(
                "{what}: the answer exceeds {MAX_RESPONSE} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    if status.is_success() {
        return Ok(body);
    }
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    Err(AgentError::Refused {
        what: what.to_string(),
        status: status.as_u16(),
        code: v["error"].as_str().unwrap_or("unknown").to_string(),
        message: v["message"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| String::from_utf8_lossy(&body).chars().take(200).collect()),
    })
}

/// Maps a transport failure (connection, TLS, timeout) to [`AgentError::Unreachable`].
pub fn unreachable(what: &str, e: reqwest::Error) -> AgentError {
    use std::error::Error;
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        message.push_str(&format!(": {s}"));
        source = s.source();
    }
    AgentError::Unreachable(format!("{what}: {message}"))
}

/// Mutual TLS as the device: trusts only the server CA and presents `chain` (leaf first)
/// with the key in `slot` of `element` (every handshake signature made inside it).
pub fn device_tls(
    server_ca: &Path,
    element: Arc<dyn SecureElement>,
    slot: &str,
    chain: Vec<CertificateDer<'static>>,
) -> Result<ClientConfig, AgentError> {
    let key = edgeward_se::tls::SeSigningKey::new(element, slot)?;
    let resolver = SeClientCertResolver::new(key.certified_key(chain));
    Ok(tls_builder()?
        .with_root_certificates(server_roots(server_ca)?)
        .with_client_cert_resolver(Arc::new(resolver)))
}

/// A mutually authenticated client of the device API for one enrolled identity; with
/// [`DeviceClient::with_mqtt`], telemetry and commands go through the broker instead.
pub struct DeviceClient {
    http: reqwest::Client,
    base: String,
    device_id: String,
    secret: Zeroizing<String>,
    mqtt: Option<crate::mqtt::MqttLink>,
}

impl std::fmt::Debug for DeviceClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceClient")
            .field("base", &self.base)
            .field("device_id", &self.device_id)
            .finish_non_exhaustive()
    }
}

impl DeviceClient {
    /// A client presenting `chain` (leaf first) with the key in `slot` of `element`.
    pub fn new(
        server: &str,
        server_ca: &Path,
        element: Arc<dyn SecureElement>,
        slot: &str,
        chain: Vec<CertificateDer<'static>>,
        device_id: &str,
        secret: Zeroizing<String>,
    ) -> Result<Self, AgentError> {
        let tls = device_tls(server_ca, element, slot, chain)?;
        Ok(DeviceClient {
            http: http(tls)?,
            base: server.trim_end_matches('/').to_string(),
            device_id: device_id.to_string(),
            secret,
            mqtt: None,
        })
    }

    /// Carries telemetry, command polls and command results through the MQTT broker at
    /// `broker` (`HOST:PORT`) with the same identity; other calls stay on HTTPS.
    pub fn with_mqtt(
        mut self,
        broker: &str,
        tls: ClientConfig,
        version: crate::mqtt::MqttVersion,
    ) -> Result<Self, AgentError> {
        self.mqtt = Some(crate::mqtt::MqttLink::connect(
            broker,
            tls,
            &self.device_id,
            version,
        )?);
        Ok(self)
    }

    /// The device this client speaks for.
    pub fn device_id(&self) -> &str {
        &self.device_id
    }

    /// The device API's base URL (`https://HOST:PORT`).
    pub fn server(&self) -> &str {
        &self.base
    }

    /// Calls `method path` with `body` and a v2 token; returns the answer's body.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Vec<u8>,
    ) -> Result<Vec<u8>, AgentError> {
        if let Some((mqtt, up)) = self
            .mqtt
            .as_ref()
            .and_then(|m| Some((m, crate::mqtt::route(&method, path)?)))
        {
            return mqtt.call(up, body).await;
        }
        let what = format!("{method} {path}");
        let token = device_token(&self.device_id, &self.secret, method.as_str(), path, &body);
        let response = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("authorization", format!("Device {token}"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| unreachable(&what, e))?;
        read(&what, response).await
    }
}

/// A v2 device token for `method target` (path and query) with `body`: now, a fresh nonce.
pub fn device_token(
    device_id: &str,
    secret: &str,
    method: &str,
    target: &str,
    body: &[u8],
) -> String {
    let mut nonce = [0u8; 16];
    OsRng.fill_bytes(&mut nonce);
    let request = token::Request {
        method,
        target,
        body_sha256: token::body_sha256(body),
    };
    token::create_v2(
        device_id,
        secret,
        edgeward_core::civil::unix_now(),
        nonce,
        &request,
    )
}

/// The `Authorization` header for each GET of the update client through the device API:
/// a fresh v2 token bound to the URL's path and query (the update client fetches with
/// blocking requests, one token each, so none ages out during a long download).
pub fn update_authorizer(
    device_id: &str,
    secret: Zeroizing<String>,
) -> edgeward_update::tuf::transport::Authorize {
    let device_id = device_id.to_string();
    Arc::new(move |url: &str| {
        let target = reqwest::Url::parse(url)
            .map(|u| match u.query() {
                Some(q) => format!("{}?{q}", u.path()),
                None => u.path().to_string(),
            })
            .unwrap_or_default();
        format!(
            "Device {}",
            device_token(&device_id, &secret, "GET", &target, b"")
        )
    })
}
