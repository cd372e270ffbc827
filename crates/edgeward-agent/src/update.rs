//! Updates on the device: the `[update]` section of `agent.toml`, and the glue between the
//! agent and `edgeward_update::install` — one installer per configured component, run by
//! `edgeward-agent update`, by the daemon at start (to decide a running trial) and on its
//! periodic check, and by the signed `update` command ([`run_update_command`]). Reports
//! the installers queue are posted to the server by [`deliver_reports`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use edgeward_se::SecureElement;
use edgeward_update::delta;
use edgeward_update::install::{
    Check, HealthCheck, InstallConfig, InstallError, Installer, Layout, Outcome, Started,
};
use edgeward_update::tuf::transport::{AnyTransport, Limits, TlsConfig};
use serde::{Deserialize, Serialize};

use crate::{net::DeviceClient, AgentError};

/// Largest server CA file read for the repository's TLS.
const MAX_CA: u64 = 1024 * 1024;

/// The `[update]` section.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UpdateConfig {
    /// This device's hardware class (releases must list it).
    pub hardware: String,
    /// Base URL of the TUF repository's metadata (`http://`, `https://` or `file://`).
    pub metadata_url: String,
    /// Base URL of its targets.
    pub targets_url: String,
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
        for (key, url) in [
            ("metadata_url", &self.metadata_url),
            ("targets_url", &self.targets_url),
        ] {
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

    /// The installer configuration of `component`, keeping its state under `state_dir`.
    pub fn install_config(
        &self,
        component: &ComponentConfig,
        state_dir: &Path,
        device_id: &str,
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
            metadata_url: self.metadata_url.clone(),
            targets_url: self.targets_url.clone(),
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
    /// `up_to_date`, `available`, `rejected` (reverted here before), `installed`,
    /// `awaiting_reboot`, `confirmed`, `reverted`, `steady` or `failed`.
    pub status: String,
    /// The release concerned.
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

/// The transport to the repository: plain HTTP, files, or HTTPS trusting `server_ca`.
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

/// Runs `pass` over every component (blocking: call it off the async runtime). One
/// component's failure does not stop the others; it is in its result.
pub fn run(
    update: &UpdateConfig,
    state_dir: &Path,
    server_ca: &Path,
    device_id: &str,
    element: &dyn SecureElement,
    pass: Pass,
) -> Result<Vec<ComponentResult>, AgentError> {
    let transport = transport(server_ca)?;
    let now = i64::try_from(edgeward_core::civil::unix_now()).unwrap_or(i64::MAX);
    let mut results = Vec::new();
    for component in &update.components {
        let config = update.install_config(component, state_dir, device_id);
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
                    result.status = "available".into();
                    result.version = Some(offer.info.version);
                }
                Err(e) => failed(&mut result, &e),
            },
            Pass::Install if result.status == "awaiting_reboot" => {}
            Pass::Install => match installer.update(now) {
                Ok(Outcome::Nothing(v)) => {
                    if result.status == "steady" {
                        result.status = "up_to_date".into();
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
            },
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
    let transport = AnyTransport::new(Limits::default(), None)
        .map_err(|e| AgentError::Config(format!("update transport: {e}")))?;
    let mut sent = 0;
    for component in &update.components {
        let config = update.install_config(component, state_dir, client.device_id());
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
/// over every component; its output is the per-component results as JSON.
pub fn run_update_command(
    update: &UpdateConfig,
    state_dir: &Path,
    server_ca: &Path,
    device_id: &str,
    element: &dyn SecureElement,
) -> Result<serde_json::Value, AgentError> {
    let results = run(
        update,
        state_dir,
        server_ca,
        device_id,
        element,
        Pass::Install,
    )?;
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
    use crate::AgentConfig;

    const BASE: &str = "server = \"https://s:8443\"\nenroll_server = \"https://s:8445\"\nserver_ca = \"/ca.pem\"\nelement = \"soft:/se\"\nstate_dir = \"/state\"\n[update]\nhardware = \"rpi4\"\nmetadata_url = \"https://u/metadata/\"\ntargets_url = \"https://u/targets/\"\ntrusted_root = \"/etc/root.json\"\n";

    const FIRMWARE: &str = "[[update.component]]\nname = \"firmware\"\ntarget = \"fw.img\"\nslots = [\"/dev/a\", \"/dev/b\"]\nhealth_command = [\"true\"]\n";

    #[test]
    fn an_update_section_maps_to_installers() {
        let c = AgentConfig::parse(&format!("{BASE}{FIRMWARE}")).expect("parse");
        let u = c.update.expect("update");
        let i = u.install_config(&u.components[0], std::path::Path::new("/state"), "cam-7");
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
    }
}
