//! The update chapter of `edgeward demo`: releases published to a TUF repository, served by
//! edgeward-server in process over the mTLS device API, and three demo devices that take
//! them the way the agent does — an offer from the rollout, then the agent's installer
//! (`edgeward_update::install::Installer`, through the server): the offered release
//! verified through TUF and the device checks (hardware class, the secure element's
//! security counter), a delta download into the inactive A/B slot, the switch on trial, a
//! health check, then confirm (counter raised) or revert, each phase queued and reported.
//! Shown: a delta update, a downgrade and a tampered target refused, and a release that
//! fails its health check reverted on every device while its rollout halts itself.
//!
//! Two files per device stand for its A/B slots and a soft secure element holds its
//! counter; the health check is a shell command that finds the active slot in the
//! installer's `state.json` the way a boot loader would (docs/updates.md) and checks that
//! the image starts with its self-test's `EWFW-OK` header.

use super::{fail, server, StepResult};
use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use edgeward_se::SecureElement;
use edgeward_update::{
    delta::{self, ChunkIndex, Params},
    install::{HealthCheck, InstallConfig, Installer, Layout, Outcome, Started},
    release::{Kind, ReleaseInfo},
    repo::{Expiry, Repository, RootKeys},
    tuf::{
        keys::Scheme,
        signer::SigningKey,
        transport::{HttpTransport, Limits, TlsConfig},
    },
};
use serde_json::{json, Value};

use crate::commands::fleet::{call, client};
use crate::demo::{random_bytes, read, Demo};

/// Size of the demo's firmware image.
const IMAGE: usize = 4 << 20;
/// The hardware class of the demo's devices.
const CLASS: &str = "demo-camera";
/// What a healthy image starts with (the demo's health check).
const HEALTHY: &[u8] = b"EWFW-OK\n";

fn now() -> i64 {
    i64::try_from(edgeward_core::civil::unix_now()).unwrap_or(i64::MAX)
}

/// The repository and the keys that sign it.
struct Repo {
    dir: PathBuf,
    targets: SigningKey,
    snapshot: SigningKey,
    timestamp: SigningKey,
}

impl Repo {
    fn create(dir: &Path) -> StepResult<Self> {
        let key = || SigningKey::generate(Scheme::Ed25519).map(|k| k.0);
        let (root, targets, snapshot, timestamp) = (key()?, key()?, key()?, key()?);
        Repository::create(
            dir,
            &RootKeys {
                root: vec![&root],
                targets: &targets,
                snapshot: &snapshot,
                timestamp: &timestamp,
            },
            Expiry::default(),
            now(),
        )?;
        Ok(Repo {
            dir: dir.to_path_buf(),
            targets,
            snapshot,
            timestamp,
        })
    }

    /// Publishes `image` as `fw/cam-VERSION.img` with its release fields and chunk index.
    fn publish(&self, image: &[u8], version: &str, counter: u64) -> StepResult<String> {
        let path = format!("fw/cam-{version}.img");
        let src = self.dir.with_extension(format!("{version}.img"));
        std::fs::write(&src, image)?;
        let mut custom = ReleaseInfo {
            version: version.into(),
            kind: Kind::Firmware,
            hardware: vec![CLASS.into()],
            security_counter: counter,
        }
        .to_custom();
        custom["edgeward"]["chunks"] = ChunkIndex::build(image, Params::default())?.to_json();
        let mut repo = Repository::open(&self.dir, Expiry::default(), now())?;
        repo.add_target("targets", &path, &src, Some(custom))?;
        repo.publish(
            &[("targets", &[&self.targets])],
            &self.snapshot,
            &self.timestamp,
        )?;
        Ok(path)
    }
}

/// A firmware image: random bytes behind its self-test header (healthy or not).
fn image(healthy: bool) -> Vec<u8> {
    let mut bytes = random_bytes(IMAGE);
    let header: &[u8] = if healthy { HEALTHY } else { b"EWFW-NO\n" };
    bytes[..header.len()].copy_from_slice(header);
    bytes
}

/// The element's anti-rollback counter the firmware component uses.
const COUNTER: &str = "update.firmware";

/// A demo device: its credentials, its two slots and its secure element.
struct Device {
    id: String,
    secret: String,
    dir: PathBuf,
    /// mTLS client for the device API's JSON calls.
    http: reqwest::blocking::Client,
    /// The same identity for the installer's TUF client and downloads.
    transport: HttpTransport,
    /// Holds the anti-rollback counter.
    element: Box<dyn SecureElement>,
}

impl Device {
    fn token(&self) -> String {
        device_token(&self.id, &self.secret)
    }
    fn slot(&self, name: &str) -> PathBuf {
        self.dir.join(format!("slot-{name}"))
    }
    /// The installer's state directory.
    fn state_dir(&self) -> PathBuf {
        self.dir.join("installer")
    }
    /// The slot the device runs, as the installer's state records it.
    fn active(&self) -> StepResult<PathBuf> {
        let state = read(&self.state_dir().join("state.json"));
        let active = state
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .and_then(|v| v["active"].as_str().map(str::to_string))
            .unwrap_or_else(|| "a".into());
        Ok(self.slot(&active))
    }
    fn counter(&self) -> StepResult<u64> {
        Ok(self.element.counter(COUNTER)?)
    }
    /// The installer's configuration for `target`, fetched from the server at `base`.
    fn install_config(&self, base: &str, repo_root: &Path, target: &str) -> InstallConfig {
        let state = self.state_dir().join("state.json");
        let check = format!(
            "s=$(sed -n 's/^  \"active\": \"\\([ab]\\)\",$/\\1/p' '{}'); head -c 7 '{}'/slot-$s | grep -qx EWFW-OK",
            state.display(),
            self.dir.display()
        );
        InstallConfig {
            state_dir: self.state_dir(),
            trusted_root: repo_root.join("metadata/1.root.json"),
            device_id: self.id.clone(),
            hardware: CLASS.into(),
            metadata_url: format!("{base}/v1/device/update/metadata/"),
            targets_url: format!("{base}/v1/device/update/targets/"),
            target: target.into(),
            layout: Layout::Slots {
                a: self.slot("a"),
                b: self.slot("b"),
            },
            counter: COUNTER.into(),
            health: HealthCheck::Command(vec!["sh".into(), "-c".into(), check]),
            deadline: std::time::Duration::from_secs(30),
            max_starts: 3,
            download: delta::Options::default(),
            // No reboot in a demo: the trial is decided at once.
            boot_id: None,
        }
    }
}

fn device_token(id: &str, secret: &str) -> String {
    format!(
        "Device {}",
        edgeward_proto::token::create_v1(id, secret, edgeward_core::civil::unix_now())
    )
}

/// The server's addresses and the operator's client.
struct Fleet {
    admin: reqwest::blocking::Client,
    admin_key: String,
    admin_base: String,
    device_base: String,
    ca: Vec<u8>,
}

impl Fleet {
    fn admin(&self, path: &str, body: Option<Value>) -> StepResult<Value> {
        let url = format!("{}{path}", self.admin_base);
        let req = match body {
            Some(b) => self.admin.post(url).json(&b),
            None => self.admin.get(url),
        };
        Ok(call(req.bearer_auth(&self.admin_key), path).map_err(|f| f.message)?)
    }

    /// Registers and enrolls `id` (a P-256 key and CSR), with the factory image in slot A.
    fn enroll(&self, id: &str, dir: &Path, factory: &[u8]) -> StepResult<Device> {
        let v = self.admin(
            "/v1/admin/devices",
            Some(json!({ "id": id, "hardware_class": CLASS })),
        )?;
        let key = rcgen::KeyPair::generate()?;
        let csr = rcgen::CertificateParams::new(Vec::<String>::new())
            .and_then(|p| p.serialize_request(&key))
            .and_then(|c| c.pem())?;
        let e = self.admin(
            "/v1/enroll",
            Some(json!({ "token": v["enrollment_token"], "csr": csr })),
        )?;
        let cert = e["certificate"].as_str().ok_or("no certificate")?;
        let secret = e["secret"].as_str().ok_or("no secret")?.to_string();
        let identity = format!("{cert}{}", key.serialize_pem()).into_bytes();
        let http = reqwest::blocking::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(&self.ca)?)
            .identity(reqwest::Identity::from_pem(&identity)?)
            .build()?;
        let (token_id, token_secret) = (id.to_string(), secret.clone());
        let transport = HttpTransport::with_tls(
            Limits::default(),
            &TlsConfig {
                roots_pem: self.ca.clone(),
                identity_pem: Some(identity),
            },
        )?
        .with_authorization(Arc::new(move |_url: &str| {
            device_token(&token_id, &token_secret)
        }));
        std::fs::create_dir_all(dir.join("installer"))?;
        std::fs::write(dir.join("slot-a"), factory)?;
        let element = edgeward_se::open(&format!("soft:{}", dir.join("se").display()))?;
        element.advance_counter(COUNTER, 1)?;
        Ok(Device {
            id: id.into(),
            secret,
            dir: dir.to_path_buf(),
            http,
            transport,
            element,
        })
    }

    /// A device call: the answer's JSON, or the status and message of a refusal.
    fn device_call(&self, d: &Device, path: &str, body: Option<Value>) -> StepResult<Value> {
        let url = format!("{}{path}", self.device_base);
        let req = match body {
            Some(b) => d.http.post(url).json(&b),
            None => d.http.get(url),
        };
        let r = req.header("authorization", d.token()).send()?;
        let status = r.status();
        let v: Value = r.json().unwrap_or(Value::Null);
        if status.is_success() {
            Ok(v)
        } else {
            fail(format!("{status}: {}", v["message"].as_str().unwrap_or("")))
        }
    }

    /// Posts the device's queued update reports (oldest first); whether one answer said
    /// the rollout halted.
    fn deliver(&self, d: &Device, installer: &Installer<'_>) -> StepResult<bool> {
        let mut halted = false;
        let outbox = installer.outbox()?;
        for (n, report) in outbox.iter().enumerate() {
            let body: Value = serde_json::from_slice(&report.to_json())?;
            match self.device_call(d, edgeward_proto::update_report::PATH, Some(body)) {
                Ok(answer) => halted |= answer["halted"] == json!(true),
                Err(e) => {
                    installer.delivered(n)?;
                    return Err(e);
                }
            }
        }
        installer.delivered(outbox.len())?;
        Ok(halted)
    }
}

/// What one update cycle of a device did.
struct Cycle {
    version: String,
    fetched: u64,
    length: u64,
    requests: u64,
    confirmed: bool,
    halted: bool,
}

/// One update cycle, as the agent runs it: ask for an offer, then the installer through
/// the server — the offered release verified through TUF and the device checks, assembled
/// into the inactive slot from the active one (delta), switched to on trial, its health
/// check run, then confirmed or reverted — and the queued reports delivered.
fn update(fleet: &Fleet, d: &mut Device, repo_root: &Path) -> StepResult<Option<Cycle>> {
    let offer = fleet.device_call(d, "/v1/device/update/offer", None)?;
    let (Some(version), Some(target)) = (offer["version"].as_str(), offer["targets"][0].as_str())
    else {
        return Ok(None);
    };
    let config = d.install_config(&fleet.device_base, repo_root, target);
    let installer = Installer::new(&config, d.element.as_ref(), &d.transport);
    let outcome = installer.update_offered(now(), Some(version));
    // A refusal may have queued a report (a verification failure); it goes out too.
    let halted = fleet.deliver(d, &installer)?;
    let (transfer, length) = match outcome? {
        Outcome::Nothing(found) => {
            return fail(format!(
                "offered {version}, but {target} is signed as {found}"
            ))
        }
        Outcome::Installed { transfer, .. } => (transfer, config_length(d, &installer)?),
    };
    let confirmed = match installer.start(now())? {
        Started::Confirmed { .. } => true,
        Started::Reverted { .. } => false,
        other => return fail(format!("the trial was not decided: {other:?}")),
    };
    let halted = fleet.deliver(d, &installer)? || halted;
    Ok(Some(Cycle {
        version: version.to_string(),
        fetched: transfer.fetched,
        length,
        requests: transfer.requests,
        confirmed,
        halted,
    }))
}

/// The signed length of the release on trial.
fn config_length(d: &Device, installer: &Installer<'_>) -> StepResult<u64> {
    let state = installer.state()?;
    state
        .slots
        .get(&state.active)
        .map(|r| r.length)
        .ok_or_else(|| format!("{}: the installed slot is not recorded", d.id).into())
}

fn sha(path: &Path) -> StepResult<String> {
    Ok(hex::encode(edgeward_core::sha256(&read(path)?)))
}

/// Adds the update steps to `demo`, keeping the repository, server and devices in `dir`.
pub(crate) fn story(demo: &mut Demo, dir: &Path) {
    let rt = match server::runtime() {
        Ok(rt) => rt,
        Err(e) => return demo.step("start the update server", || Err(e.into())),
    };
    let repo_dir = dir.join("repo");
    let v1 = image(true);
    // 1.1.0 changes 64 KiB in the middle of 1.0.0.
    let mut v11 = v1.clone();
    v11[IMAGE / 2..IMAGE / 2 + 65_536].copy_from_slice(&random_bytes(65_536));
    let mut repo = None;
    demo.step("publish releases 1.0.0 and 1.1.0 (4 MiB firmware, 64 KiB changed) to a TUF repository", || {
        let r = Repo::create(&repo_dir)?;
        let a = r.publish(&v1, "1.0.0", 1)?;
        let b = r.publish(&v11, "1.1.0", 2)?;
        repo = Some(r);
        Ok(format!("{a} (security counter 1) and {b} (counter 2), each with its chunk index in signed targets metadata"))
    });
    let Some(repo) = repo else { return };

    // The server's default limits: range requests of the delta downloads draw from the
    // devices' download budget (update_limit, by the KiB), not from their request limit.
    let config = edgeward_server::Config {
        update_repo: Some(repo_dir.clone()),
        ..server::loopback_config(&dir.join("server"))
    };
    let mut running = None;
    let mut fleet = None;
    let mut devices = Vec::new();
    demo.step(
        "serve it from edgeward-server (mTLS device API) and enroll three devices on 1.0.0",
        || {
            let r = rt.block_on(edgeward_server::start(config))?;
            let data = dir.join("server");
            let f = Fleet {
                admin: client(&data.join("server-ca.pem")).map_err(|f| f.message)?,
                admin_key: std::fs::read_to_string(data.join("admin-token"))?
                    .trim()
                    .to_string(),
                admin_base: format!("https://localhost:{}", r.admin_addr.port()),
                device_base: format!("https://localhost:{}", r.device_addr.port()),
                ca: read(&data.join("server-ca.pem"))?,
            };
            running = Some(r);
            for i in 1..=3 {
                let id = format!("demo-upd-{i}");
                devices.push(f.enroll(&id, &dir.join(&id), &v1)?);
            }
            fleet = Some(f);
            Ok("update_repo served at /v1/device/update/…; demo-upd-1..3 enrolled".into())
        },
    );
    let (Some(server), Some(fleet)) = (running, fleet) else {
        return;
    };

    demo.step("roll 1.1.0 out to demo-upd-1: it updates with a delta and confirms", || {
        fleet.admin("/v1/admin/releases/1.1.0/rollout", Some(json!({"devices": ["demo-upd-1"]})))?;
        let d = &mut devices[0];
        let c = update(&fleet, d, &repo_dir)?.ok_or("no offer")?;
        if !c.confirmed || sha(&d.active()?)? != hex::encode(edgeward_core::sha256(&v11)) {
            return Err("the device is not on 1.1.0".into());
        }
        Ok(format!(
            "{}: fetched {} of {} bytes ({:.2} %) in {} range requests, the rest reused from slot A; written into slot B, switched on trial, health check passed; counter now {}",
            c.version, c.fetched, c.length, c.fetched as f64 * 100.0 / c.length as f64, c.requests, d.counter()?
        ))
    });

    demo.step(
        "a malicious downgrade is refused: 1.0.0 offered to demo-upd-1",
        || {
            fleet.admin(
                "/v1/admin/releases/1.0.0/rollout",
                Some(json!({"devices": ["demo-upd-1"]})),
            )?;
            let d = &mut devices[0];
            let before = sha(&d.active()?)?;
            match update(&fleet, d, &repo_dir) {
                Ok(_) => Err("the downgrade was installed".into()),
                Err(e)
                    if e.to_string().contains("below the secure element's")
                        && sha(&d.active()?)? == before =>
                {
                    Ok(format!("refused: {e}; the running slot untouched"))
                }
                Err(e) => fail(format!("refused for another reason: {e}")),
            }
        },
    );

    demo.step(
        "a tampered target is refused: one byte of 1.1.0 changed on the server",
        || {
            let path = repo_dir.join(format!(
                "targets/fw/{}.cam-1.1.0.img",
                hex::encode(edgeward_core::sha256(&v11))
            ));
            let mut bytes = read(&path)?;
            bytes[IMAGE / 2 + 1000] ^= 0x01;
            std::fs::write(&path, &bytes)?;
            fleet.admin(
                "/v1/admin/releases/1.1.0/rollout",
                Some(json!({"devices": ["demo-upd-2"]})),
            )?;
            let d = &mut devices[1];
            let before = sha(&d.active()?)?;
            let outcome = update(&fleet, d, &repo_dir);
            bytes[IMAGE / 2 + 1000] ^= 0x01;
            std::fs::write(&path, &bytes)?;
            match outcome {
                Ok(_) => Err("the tampered target was installed".into()),
                Err(e)
                    if e.to_string().contains("does not match the signed")
                        && sha(&d.active()?)? == before
                        && d.active()? == d.slot("a") =>
                {
                    Ok(format!("refused: {e}; slot A untouched and still active, the refusal reported (verification_failed)"))
                }
                Err(e) => fail(format!("refused for another reason: {e}")),
            }
        },
    );

    demo.step("release 1.2.0 fails its health check: each device reverts and the rollout halts", || {
        let mut broken = v11.clone();
        broken[..HEALTHY.len()].copy_from_slice(b"EWFW-NO\n");
        repo.publish(&broken, "1.2.0", 2)?;
        fleet.admin(
            "/v1/admin/releases/1.2.0/rollout",
            Some(json!({"devices": ["demo-upd-1", "demo-upd-2", "demo-upd-3"], "threshold": 5, "min_sample": 2})),
        )?;
        let mut lines = Vec::new();
        for d in devices.iter_mut().take(2) {
            let before = sha(&d.active()?)?;
            let c = update(&fleet, d, &repo_dir)?.ok_or("no offer")?;
            if c.confirmed || sha(&d.active()?)? != before {
                return fail(format!("{} did not revert", d.id));
            }
            lines.push(format!("{} reverted to its previous slot (health_check_failed){}", d.id, if c.halted { "; the rollout halted" } else { "" }));
        }
        let third = fleet.device_call(&devices[2], "/v1/device/update/offer", None)?;
        if !third["version"].is_null() {
            return fail(format!("demo-upd-3 was still offered {}", third["version"]));
        }
        lines.push("demo-upd-3 is offered nothing".into());
        let status = fleet.admin("/v1/admin/releases/1.2.0/status", None)?;
        if status["halted"] != json!(true) {
            return Err("the rollout did not halt".into());
        }
        lines.push(crate::commands::rollout::status_text(&status).trim_end().replace('\n', "\n    "));
        Ok(lines.join("\n    "))
    });
    rt.block_on(server.stop());
}
