//! Updates on the device: the `[update]` section of `agent.toml`, and the glue between the
//! agent and `edgeward_update::install` — one installer per configured component, run by
//! `edgeward-agent update`, by the daemon at start (to decide a running trial) and on its
//! periodic check, and by the signed `update` command ([`run_update_command`]). Reports
//! the installers queue are posted to the server by [`deliver_reports`].
//!
//! Where releases come from ([`Source`]): by default the server itself — metadata and
//! targets through the mTLS device API, with the client key inside the secure element and
//! a fresh device token on every request, and only the release the server's rollouts
//! offer this device (`GET /v1/device/update/offer`; nothing while an incident holds its
//! updates). With `metadata_url` and `targets_url` set, a repository elsewhere (a static
//! HTTP server or a directory), every release it signs taken as it comes.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use edgeward_se::SecureElement;
use edgeward_update::delta;
use edgeward_update::install::{
    Check, HealthCheck, InstallConfig, InstallError, Installer, Layout, Outcome, Started,
};
use edgeward_update::tuf::transport::{AnyTransport, Authorize, Limits, TlsConfig};
use serde::{Deserialize, Serialize};

use crate::{enroll::Identity, net::DeviceClient, AgentError};

/// Largest server CA file read for the repository's TLS.
const MAX_CA: u64 = 1024 * 1024;

/// The update repository's metadata on the device API.
pub const METADATA_PATH: &str = "/v1/device/update/metadata/";
/// Its targets.
pub const TARGETS_PATH: &str = "/v1/device/update/targets/";
/// Which release the server offers this device.
pub const OFFER_PATH: &str = "/v1/device/update/offer";

/// The `[update]` section.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UpdateConfig {
    /// This device's hardware class (releases must list it).
    pub hardware: String,
    /// Base URL of the TUF repository's metadata (`http://`, `https://` or `file://`);
    /// none (with no `targets_url`): the server's device API, its rollouts deciding.
    #[serde(default)]
    pub metadata_url: Option<String>,
    /// Base URL of its targets (set with `metadata_url` or not at all).
    #[serde(default)]
    pub targets_url: Option<String>,
    /// The initial trusted TUF root (shipped with the device).
    pub trusted_root: PathBuf,
    /// Seconds between the daemon's checks (60 s to 30 days).
    #[serde(default = "default_interval")]
    pub check_interval_secs: u64,
    /// The components kept up to date.
    #[serde(rename = "component")]
    pub components: Vec<ComponentConfig>,
}

/// One `[[update.component]]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ComponentConfig {
    /// A short name (`[a-z0-9_-]`, 1–32): its state directory and default counter name.
    pub name: String,
    /// The TUF target path it follows.
    pub target: String,
    /// A/B slots: two files or block devices.
    #[serde(default)]
    pub slots: Option<[PathBuf; 2]>,
    /// Versioned directories: the component's directory (`current` links the version in use).
    #[serde(default)]
    pub directory: Option<PathBuf>,
    /// The secure element counter (default `update.NAME`).
    #[serde(default)]
    pub counter: Option<String>,
    /// A health-check command (exit 0 confirms).
    #[serde(default)]
    pub health_command: Option<Vec<String>>,
    /// A health probe URL (2xx confirms).
    #[serde(default)]
    pub health_url: Option<String>,
    /// Seconds the health check has (1 s to 1 hour).
    #[serde(default = "default_deadline")]
    pub health_deadline_secs: u64,
    /// Starts on trial without confirmation before a crash-loop revert (1–100).
    #[serde(default = "default_max_starts")]
    pub max_starts: u32,
}

fn default_interval() -> u64 {
    3600
}
fn default_deadline() -> u64 {
    120
}
fn default_max_starts() -> u32 {
    3
}

fn url_ok(url: &str) -> bool {
    ["http://", "https://", "file://"]
        .iter()
        .any(|p| url.starts_with(p))
}

impl UpdateConfig {
    /// Checks every value (called when `agent.toml` is loaded).
    pub fn check(&self) -> Result<(), String> {
        if self.metadata_url.is_some() != self.targets_url.is_some() {
            return Err(
                "update: give both metadata_url and targets_url, or neither (the server's device API)"
                    .into(),
            );
        }
        for (key, url) in [
            ("metadata_url", &self.metadata_url),
            ("targets_url", &self.targets_url),
        ] {
            let Some(url) = url else { continue };
            if !url_ok(url) {
                return Err(format!(
                    "update.{key} must be an http(s):// or file:// URL, not {url:?}"
                ));
            }
        }
        if self.hardware.is_empty() || self.hardware.len() > 64 {
            return Err("update.hardware must be 1 to 64 characters".into());
        }
        if !(60..=30 * 86_400).contains(&self.check_interval_secs) {
            return Err("update.check_interval_secs is 60 s to 30 days".into());
        }
        let mut names = std::collections::BTreeSet::new();
        for c in &self.components {
            let name_ok = (1..=32).contains(&c.name.len())
                && c.name.chars().all(|ch| {
                    ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_' || ch == '-'
                });
            if !name_ok {
                return Err(format!(
                    "update component name {:?} must be 1 to 32 of a-z 0-9 _ -",
                    c.name
                ));
            }
            if !names.insert(&c.name) {
                return Err(format!("update component {:?} is configured twice", c.name));
            }
            let what = format!("update component {}", c.name);
            if c.slots.is_some() == c.directory.is_some() {
                return Err(format!("{what}: give exactly one of slots and directory"));
            }
            match (&c.health_command, &c.health_url) {
                (Some(argv), None) if !argv.is_empty() => {}
                (None, Some(url)) if url.starts_with("http://") || url.starts_with("https://") => {}
                _ => {
                    return Err(format!(
                        "{what}: give exactly one of health_command (non-empty) and health_url (http(s)://)"
                    ))
                }
            }
            if !(1..=3600).contains(&c.health_deadline_secs) {
                return Err(format!("{what}: health_deadline_secs is 1 to 3600"));
            }
            if !(1..=100).contains(&c.max_starts) {
                return Err(format!("{what}: max_starts is 1 to 100"));
            }
            if c.target.is_empty() || c.target.starts_with('/') || c.target.ends_with('/') {
                return Err(format!(
                    "{what}: target {:?} is not a target path",
                    c.target
                ));
            }
        }
        Ok(())
    }

    /// The interval between the daemon's checks.
    pub fn check_interval(&self) -> Duration {
        Duration::from_secs(self.check_interval_secs)
    }

    /// Whether releases come from the server's device API (no repository URLs set).
    pub fn from_server(&self) -> bool {
        self.metadata_url.is_none()
    }

    /// The metadata and targets base URLs: the configured ones, else the device API of
    /// `server` (`https://HOST:PORT`).
    pub fn urls(&self, server: &str) -> (String, String) {
        match (&self.metadata_url, &self.targets_url) {
            (Some(m), Some(t)) => (m.clone(), t.clone()),
            _ => {
                let base = server.trim_end_matches('/');
                (
                    format!("{base}{METADATA_PATH}"),
                    format!("{base}{TARGETS_PATH}"),
                )
            }
        }
    }

    /// The installer configuration of `component`, keeping its state under `state_dir`,
    /// fetching from `urls` (metadata, targets).
    pub fn install_config(
        &self,
        component: &ComponentConfig,
        state_dir: &Path,
        device_id: &str,
        urls: &(String, String),
    ) -> InstallConfig {
        let layout = match (&component.slots, &component.directory) {
            (Some([a, b]), _) => Layout::Slots {
                a: a.clone(),
                b: b.clone(),
            },
            (None, Some(root)) => Layout::Versions { root: root.clone() },
            (None, None) => Layout::Versions {
                root: state_dir.join("update").join(&component.name).join("files"),
            },
        };
        let health = match (&component.health_command, &component.health_url) {
            (Some(argv), _) => HealthCheck::Command(argv.clone()),
            (None, Some(url)) => HealthCheck::Http(url.clone()),
            (None, None) => HealthCheck::Command(Vec::new()),
        };
        InstallConfig {
            state_dir: state_dir.join("update").join(&component.name),
            trusted_root: self.trusted_root.clone(),
            device_id: device_id.to_string(),
            hardware: self.hardware.clone(),
            metadata_url: urls.0.clone(),
            targets_url: urls.1.clone(),
            target: component.target.clone(),
            layout,
            counter: component
                .counter
                .clone()
                .unwrap_or_else(|| format!("update.{}", component.name)),
            health,
            deadline: Duration::from_secs(component.health_deadline_secs),
            max_starts: component.max_starts,
            download: delta::Options::default(),
            boot_id: boot_id(),
        }
    }
}

/// The running boot's identity (Linux), so an A/B trial waits for the reboot.
fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// What happened to one component.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ComponentResult {
    /// The component.
    pub name: String,
    /// Its target path.
    pub target: String,
    /// `up_to_date`, `available`, `rejected` (reverted here before), `not_offered` (no
    /// rollout offers this device the release), `held` (an incident holds its updates),
    /// `installed`, `awaiting_reboot`, `confirmed`, `reverted`, `steady` or `failed`.
    pub status: String,
    /// The release concerned (`not_offered`, `held`: the release in use, if known).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The slot now active (after an install).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slot: Option<String>,
    /// Bytes fetched from the repository.
    pub fetched: u64,
    /// Bytes reused from the device.
    pub reused: u64,
    /// A revert's reason code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The error or revert detail.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The transport to a repository of the configuration: plain HTTP, files, or HTTPS
/// trusting `server_ca`.
pub fn transport(server_ca: &Path) -> Result<AnyTransport, AgentError> {
    let roots_pem = crate::files::read_bounded(server_ca, MAX_CA)?.unwrap_or_default();
    let tls = TlsConfig {
        roots_pem,
        identity_pem: None,
    };
    let tls = (!tls.roots_pem.is_empty()).then_some(&tls);
    AnyTransport::new(Limits::default(), tls)
        .map_err(|e| AgentError::Config(format!("update transport: {e}")))
}

/// The server's answer to `GET /v1/device/update/offer`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct ServerOffer {
    /// The release offered; none: nothing now.
    #[serde(default)]
    pub version: Option<String>,
    /// Its target paths for this device's hardware class.
    #[serde(default)]
    pub targets: Vec<String>,
    /// An open incident holds this device's updates.
    #[serde(default)]
    pub held: bool,
}

/// Which releases a pass may install.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    /// Whatever the repository signs (a repository of the configuration).
    Any,
    /// Only what the server offers.
    Offered(ServerOffer),
    /// The server's offer could not be read: decide trials, install nothing.
    Unknown(String),
}

/// How to reach the repository (the transport itself is made in the blocking pass: a
/// blocking HTTP client may be neither made nor dropped on the async runtime).
enum Connect {
    /// A repository of the configuration, trusting the server CA file for HTTPS.
    Configured(PathBuf),
    /// The device API: the device's mutual TLS and a fresh device token per request.
    Device {
        tls: Box<rustls::ClientConfig>,
        authorize: Authorize,
    },
}

/// Where one pass takes releases from: the repository, its base URLs, the gate.
pub struct Source {
    connect: Connect,
    urls: (String, String),
    gate: Gate,
}

impl Source {
    /// A repository of the configuration (`metadata_url`, `targets_url`), over plain
    /// HTTP, files, or HTTPS trusting `server_ca`; every release it signs is taken.
    pub fn configured(update: &UpdateConfig, server_ca: &Path) -> Result<Self, AgentError> {
        Ok(Source {
            connect: Connect::Configured(server_ca.to_path_buf()),
            urls: update.urls(""),
            gate: Gate::Any,
        })
    }

    /// The server's device API, as `identity` (mutual TLS with its key in `element`, a
    /// fresh device token per request), installing only what the server offers: the
    /// offer is asked through `client` now (if that fails the pass decides trials only).
    pub async fn server(
        update: &UpdateConfig,
        server_ca: &Path,
        element: Arc<dyn SecureElement>,
        identity: &Identity,
        client: &DeviceClient,
    ) -> Result<Self, AgentError> {
        if !update.from_server() {
            return Self::configured(update, server_ca);
        }
        let tls = crate::net::device_tls(
            server_ca,
            element,
            &identity.stored.key_slot,
            vec![identity.certificate_der.clone()],
        )?;
        let connect = Connect::Device {
            tls: Box::new(tls),
            authorize: crate::net::update_authorizer(
                &identity.stored.device_id,
                identity.secret.clone(),
            ),
        };
        let gate = match client
            .call(reqwest::Method::GET, OFFER_PATH, Vec::new())
            .await
        {
            Ok(body) => match serde_json::from_slice::<ServerOffer>(&body) {
                Ok(offer) => Gate::Offered(offer),
                Err(e) => Gate::Unknown(format!("the server's offer does not parse: {e}")),
            },
            Err(e) => Gate::Unknown(format!("the server's offer: {e}")),
        };
        Ok(Source {
            connect,
            urls: update.urls(client.server()),
            gate,
        })
    }

    /// The transport to the repository (blocking: call it off the async runtime).
    fn transport(&self) -> Result<AnyTransport, AgentError> {
        match &self.connect {
            Connect::Configured(server_ca) => transport(server_ca),
            Connect::Device { tls, authorize } => {
                AnyTransport::with_preconfigured_tls(Limits::default(), (**tls).clone())
                    .map(|t| t.with_authorization(authorize.clone()))
                    .map_err(|e| AgentError::Config(format!("update transport: {e}")))
            }
        }
    }

    /// What this source lets a pass install.
    pub fn gate(&self) -> &Gate {
        &self.gate
    }
}

fn started(result: &mut ComponentResult, s: Started) {
    match s {
        Started::Steady => {}
        Started::AwaitingReboot { slot } => {
            result.status = "awaiting_reboot".into();
            result.slot = Some(slot);
        }
        Started::Confirmed { version, .. } => {
            result.status = "confirmed".into();
            result.version = Some(version);
        }
        Started::Reverted {
            version,
            reason,
            detail,
        } => {
            result.status = "reverted".into();
            result.version = Some(version);
            result.reason = Some(reason.code().into());
            result.error = Some(detail);
        }
    }
}

fn failed(result: &mut ComponentResult, e: &InstallError) {
    result.status = "failed".into();
    result.error = Some(e.to_string());
}

/// What the updates do in one pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    /// Decide running trials only (at start).
    Start,
    /// Check the repository, install nothing.
    CheckOnly,
    /// Decide trials, check, install, and decide a new trial of versioned directories
    /// (their switch takes effect at once; A/B slots wait for the reboot).
    Install,
}

/// Why `component` may not take a release now, under `gate` (`None`: it may, and the
/// release it must be when the server named one).
fn refusal<'g>(gate: &'g Gate, component: &ComponentConfig) -> Result<Option<&'g str>, Refusal> {
    match gate {
        Gate::Any => Ok(None),
        Gate::Unknown(e) => Err(Refusal::Failed(e.clone())),
        Gate::Offered(o) if o.held => Err(Refusal::Held),
        Gate::Offered(o) => match &o.version {
            Some(v) if o.targets.contains(&component.target) => Ok(Some(v)),
            _ => Err(Refusal::NotOffered),
        },
    }
}

/// Why nothing is installed.
enum Refusal {
    /// The server could not be asked.
    Failed(String),
    /// An incident holds this device's updates.
    Held,
    /// No running rollout offers this device a release of the component.
    NotOffered,
}

impl Refusal {
    /// Records the refusal in `result` unless the start already decided something there.
    fn record(self, result: &mut ComponentResult) {
        if result.status != "steady" {
            return;
        }
        match self {
            Refusal::Failed(e) => {
                result.status = "failed".into();
                result.error = Some(e);
            }
            Refusal::Held => result.status = "held".into(),
            Refusal::NotOffered => result.status = "not_offered".into(),
        }
    }
}

/// Runs `pass` over every component with releases from `source` (blocking: call it off
/// the async runtime). One component's failure does not stop the others; it is in its
/// result.
pub fn run(
    update: &UpdateConfig,
    state_dir: &Path,
    device_id: &str,
    element: &dyn SecureElement,
    pass: Pass,
    source: &Source,
) -> Result<Vec<ComponentResult>, AgentError> {
    let transport = source.transport()?;
    let now = i64::try_from(edgeward_core::civil::unix_now()).unwrap_or(i64::MAX);
    let mut results = Vec::new();
    for component in &update.components {
        let config = update.install_config(component, state_dir, device_id, &source.urls);
        std::fs::create_dir_all(&config.state_dir)
            .map_err(|e| AgentError::io(&config.state_dir, e))?;
        let installer = Installer::new(&config, element, &transport);
        let mut result = ComponentResult {
            name: component.name.clone(),
            target: component.target.clone(),
            status: "steady".into(),
            ..ComponentResult::default()
        };
        if pass != Pass::CheckOnly {
            match installer.start(now) {
                Ok(s) => started(&mut result, s),
                Err(e) => failed(&mut result, &e),
            }
        }
        let allowed = refusal(&source.gate, component);
        match pass {
            Pass::Start => {}
            Pass::CheckOnly => match installer.check(now) {
                Ok(Check::UpToDate(v)) => {
                    result.status = "up_to_date".into();
                    result.version = Some(v);
                }
                Ok(Check::Rejected(v)) => {
                    result.status = "rejected".into();
                    result.version = Some(v);
                }
                Ok(Check::Available(offer)) => {
                    let version = offer.info.version;
                    match allowed {
                        Ok(Some(v)) if v != version => result.status = "not_offered".into(),
                        Ok(_) => result.status = "available".into(),
                        Err(refused) => refused.record(&mut result),
                    }
                    result.version = Some(version);
                }
                Err(e) => failed(&mut result, &e),
            },
            Pass::Install if result.status == "awaiting_reboot" => {}
            Pass::Install => {
                let offered = match allowed {
                    Ok(offered) => offered,
                    Err(refused) => {
                        refused.record(&mut result);
                        if result.version.is_none() {
                            // What the device runs (nothing offered is not nothing installed).
                            result.version = installer
                                .state()
                                .ok()
                                .and_then(|s| s.active_release().map(|r| r.version.clone()));
                        }
                        results.push(result);
                        continue;
                    }
                };
                match installer.update_offered(now, offered) {
                    Ok(Outcome::Nothing(v)) => {
                        if result.status == "steady" {
                            result.status = match offered {
                                Some(o) if o != v => "not_offered".into(),
                                _ => "up_to_date".into(),
                            };
                            result.version = Some(v);
                        }
                    }
                    Ok(Outcome::Installed {
                        version,
                        slot,
                        transfer,
                    }) => {
                        result.status = "installed".into();
                        result.version = Some(version);
                        result.slot = Some(slot);
                        result.fetched = transfer.fetched;
                        result.reused = transfer.reused + transfer.resumed;
                        match installer.start(now) {
                            Ok(s) => started(&mut result, s),
                            Err(e) => failed(&mut result, &e),
                        }
                    }
                    Err(e) => failed(&mut result, &e),
                }
            }
        }
        results.push(result);
    }
    Ok(results)
}

/// Posts every queued update report of every component to the server, oldest first,
/// as `client`'s device; stops at the first failure (the rest stay queued). Returns how
/// many were delivered.
pub async fn deliver_reports(
    update: &UpdateConfig,
    state_dir: &Path,
    element: &dyn SecureElement,
    client: &DeviceClient,
) -> Result<usize, AgentError> {
    // The installers only read and trim their outboxes here: no repository is fetched
    // from, so no HTTP client (a blocking one may not live on the async runtime).
    let transport = edgeward_update::tuf::transport::FileTransport::new(Limits::default());
    let urls = update.urls(client.server());
    let mut sent = 0;
    for component in &update.components {
        let config = update.install_config(component, state_dir, client.device_id(), &urls);
        let installer = Installer::new(&config, element, &transport);
        let outbox = installer.outbox().map_err(install_error)?;
        let mut delivered = 0;
        let mut failure = None;
        for mut report in outbox {
            report.device_id = client.device_id().to_string();
            match client
                .call(
                    reqwest::Method::POST,
                    edgeward_proto::update_report::PATH,
                    report.to_json(),
                )
                .await
            {
                Ok(_) => delivered += 1,
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        installer.delivered(delivered).map_err(install_error)?;
        sent += delivered;
        if let Some(e) = failure {
            return Err(e);
        }
    }
    Ok(sent)
}

fn install_error(e: InstallError) -> AgentError {
    AgentError::Protocol(format!("update state: {e}"))
}

/// The signed `update` command's action, for the command dispatcher: one install pass
/// over every component from `source`; its output is the per-component results as JSON.
pub fn run_update_command(
    update: &UpdateConfig,
    state_dir: &Path,
    device_id: &str,
    element: &dyn SecureElement,
    source: &Source,
) -> Result<serde_json::Value, AgentError> {
    let results = run(update, state_dir, device_id, element, Pass::Install, source)?;
    serde_json::to_value(results).map_err(|e| AgentError::Protocol(e.to_string()))
}

/// Human-readable lines for `edgeward-agent update`.
pub fn render(results: &[ComponentResult]) -> String {
    let mut out = String::new();
    for r in results {
        let version = r.version.as_deref().unwrap_or("-");
        out.push_str(&format!("{}: {} {}", r.name, r.status, version));
        if let Some(slot) = &r.slot {
            out.push_str(&format!(" (slot {slot})"));
        }
        if r.fetched + r.reused > 0 {
            out.push_str(&format!(
                ", {} bytes fetched, {} reused",
                r.fetched, r.reused
            ));
        }
        if let Some(reason) = &r.reason {
            out.push_str(&format!(", reason {reason}"));
        }
        if let Some(e) = &r.error {
            out.push_str(&format!(": {e}"));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{refusal, ComponentResult, Gate, ServerOffer};
    use crate::AgentConfig;

    const BASE: &str = "server = \"https://s:8443\"\nenroll_server = \"https://s:8445\"\nserver_ca = \"/ca.pem\"\nelement = \"soft:/se\"\nstate_dir = \"/state\"\n[update]\nhardware = \"rpi4\"\nmetadata_url = \"https://u/metadata/\"\ntargets_url = \"https://u/targets/\"\ntrusted_root = \"/etc/root.json\"\n";

    const FIRMWARE: &str = "[[update.component]]\nname = \"firmware\"\ntarget = \"fw.img\"\nslots = [\"/dev/a\", \"/dev/b\"]\nhealth_command = [\"true\"]\n";

    #[test]
    fn an_update_section_maps_to_installers() {
        let c = AgentConfig::parse(&format!("{BASE}{FIRMWARE}")).expect("parse");
        let u = c.update.expect("update");
        let urls = u.urls("https://s:8443");
        assert_eq!(urls.0, "https://u/metadata/", "configured URLs win");
        let i = u.install_config(
            &u.components[0],
            std::path::Path::new("/state"),
            "cam-7",
            &urls,
        );
        assert_eq!(i.counter, "update.firmware");
        assert_eq!(i.state_dir, std::path::Path::new("/state/update/firmware"));
        assert_eq!(i.deadline.as_secs(), 120);
        assert_eq!(u.check_interval().as_secs(), 3600);
    }

    #[test]
    fn update_mistakes_are_refused_with_their_reason() {
        let err = |extra: &str| AgentConfig::parse(&format!("{BASE}{extra}")).unwrap_err();
        assert_eq!(
            err(&FIRMWARE.replace("slots = [\"/dev/a\", \"/dev/b\"]", "")),
            "update component firmware: give exactly one of slots and directory"
        );
        assert_eq!(
            err(&format!("{FIRMWARE}health_url = \"http://x/\"\n")),
            "update component firmware: give exactly one of health_command (non-empty) and health_url (http(s)://)"
        );
        assert_eq!(
            err(&format!("{FIRMWARE}{FIRMWARE}")),
            "update component \"firmware\" is configured twice"
        );
        assert_eq!(
            err(&FIRMWARE.replace("firmware", "Firm ware")),
            "update component name \"Firm ware\" must be 1 to 32 of a-z 0-9 _ -"
        );
        assert_eq!(
            AgentConfig::parse(&format!(
                "{}{FIRMWARE}",
                BASE.replace("https://u/metadata/", "ftp://u/")
            ))
            .unwrap_err(),
            "update.metadata_url must be an http(s):// or file:// URL, not \"ftp://u/\""
        );
        assert_eq!(
            AgentConfig::parse(&format!(
                "{}{FIRMWARE}",
                BASE.replace("targets_url = \"https://u/targets/\"\n", "")
            ))
            .unwrap_err(),
            "update: give both metadata_url and targets_url, or neither (the server's device API)"
        );
    }

    #[test]
    fn without_urls_the_server_is_the_repository_and_its_offer_decides() {
        let base = BASE
            .replace("metadata_url = \"https://u/metadata/\"\n", "")
            .replace("targets_url = \"https://u/targets/\"\n", "");
        let c = AgentConfig::parse(&format!("{base}{FIRMWARE}")).expect("parse");
        let u = c.update.expect("update");
        assert!(u.from_server());
        assert_eq!(
            u.urls("https://s:8443/"),
            (
                "https://s:8443/v1/device/update/metadata/".to_string(),
                "https://s:8443/v1/device/update/targets/".to_string()
            )
        );
        let fw = &u.components[0];
        let offer = |version: Option<&str>, targets: &[&str], held: bool| {
            Gate::Offered(ServerOffer {
                version: version.map(str::to_string),
                targets: targets.iter().map(|t| t.to_string()).collect(),
                held,
            })
        };
        let status = |gate: &Gate| match refusal(gate, fw) {
            Ok(v) => format!("ok {v:?}"),
            Err(r) => {
                let mut result = ComponentResult {
                    status: "steady".into(),
                    ..ComponentResult::default()
                };
                r.record(&mut result);
                result.status
            }
        };
        assert_eq!(status(&Gate::Any), "ok None");
        assert_eq!(
            status(&offer(Some("2.0"), &["fw.img"], false)),
            "ok Some(\"2.0\")"
        );
        assert_eq!(
            status(&offer(Some("2.0"), &["other.img"], false)),
            "not_offered"
        );
        assert_eq!(status(&offer(None, &[], false)), "not_offered");
        assert_eq!(status(&offer(None, &[], true)), "held");
        assert_eq!(status(&Gate::Unknown("down".into())), "failed");
        let parsed: ServerOffer =
            serde_json::from_str(r#"{"version": null, "targets": [], "held": true}"#)
                .expect("offer");
        assert!(parsed.held && parsed.version.is_none());
    }
}
