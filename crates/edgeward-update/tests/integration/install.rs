//! The installer end to end over a real HTTP repository and a file-backed secure element:
//! A/B slots and versioned directories, trial, confirmation (the anti-rollback counter is
//! raised only then), every revert reason reaching the report outbox, and the refusals,
//! each leaving the installed version untouched.
//!
//! Some tests run the installer in a child process (this test binary again, running the
//! ignored `install::child_process` test) so that it can die mid-way like a real crash.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use edgeward_proto::update_report::{Phase, Reason};
use edgeward_se::soft::SoftElement;
use edgeward_se::SecureElement;
use edgeward_update::delta;
use edgeward_update::install::{
    points, Check, HealthCheck, InstallConfig, InstallError, Installer, Layout, Outcome, SlotState,
    Started,
};
use edgeward_update::release::{Kind, ReleaseInfo};
use edgeward_update::tuf::hash::sha256;
use edgeward_update::tuf::transport::{AnyTransport, Limits};
use serde_json::{json, Value};

use crate::delta::{noise, target_file};
use crate::sim::SimRepo;

/// The anti-rollback counter the tests use.
pub(crate) const COUNTER: &str = "update.fw";

/// Now, Unix seconds.
pub(crate) fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Publishes `data` as target `path`, release `version` for `hardware` with `counter`
/// (with its chunk index unless `chunked` is false).
pub(crate) fn publish(
    repo: &mut SimRepo,
    path: &str,
    data: &[u8],
    version: &str,
    hardware: &str,
    counter: u64,
) {
    let mut custom = ReleaseInfo {
        version: version.into(),
        kind: Kind::Firmware,
        hardware: vec![hardware.into()],
        security_counter: counter,
    }
    .to_custom();
    custom["edgeward"]["chunks"] =
        target_file(data).custom.expect("custom")["edgeward"]["chunks"].clone();
    repo.add_target("targets", path, data, Some(custom));
    repo.publish(&["targets", "snapshot", "timestamp"]);
}

/// A device of hardware class `rpi4`: its element, slots and installer directory.
pub(crate) struct Device {
    /// Everything lives here.
    pub(crate) dir: PathBuf,
    /// Its configuration.
    pub(crate) config: InstallConfig,
    _keep: Option<tempfile::TempDir>,
}

/// Which layout a test device uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kinds {
    /// A/B slot files.
    Slots,
    /// Versioned directories.
    Versions,
}

impl Device {
    /// A fresh device for `repo` with a factory image in slot `a` (Slots) or nothing
    /// (Versions).
    pub(crate) fn new(repo: &SimRepo, kind: Kinds) -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().to_path_buf();
        std::fs::write(dir.join("root.json"), repo.initial_root()).expect("root");
        std::fs::write(dir.join("slot-a"), noise(64 << 10, 99)).expect("factory image");
        let mut d = Device::at(&dir, &repo.metadata_url(), &repo.targets_url(), kind);
        d._keep = Some(tmp);
        d
    }

    /// The device kept in `dir` (made by [`Device::new`]).
    pub(crate) fn at(dir: &Path, metadata_url: &str, targets_url: &str, kind: Kinds) -> Self {
        let layout = match kind {
            Kinds::Slots => Layout::Slots {
                a: dir.join("slot-a"),
                b: dir.join("slot-b"),
            },
            Kinds::Versions => Layout::Versions {
                root: dir.join("model"),
            },
        };
        let config = InstallConfig {
            state_dir: dir.join("update"),
            trusted_root: dir.join("root.json"),
            device_id: "cam-7".into(),
            hardware: "rpi4".into(),
            metadata_url: metadata_url.into(),
            targets_url: targets_url.into(),
            target: "fw.img".into(),
            layout,
            counter: COUNTER.into(),
            health: HealthCheck::Command(vec!["true".into()]),
            deadline: Duration::from_secs(10),
            max_starts: 3,
            download: delta::Options {
                retries: 1,
                backoff: Duration::from_millis(10),
                sync_every: 16 << 10,
                ..delta::Options::default()
            },
            boot_id: None,
        };
        std::fs::create_dir_all(&config.state_dir).expect("state dir");
        Device {
            dir: dir.to_path_buf(),
            config,
            _keep: None,
        }
    }

    /// Its secure element.
    pub(crate) fn element(&self) -> SoftElement {
        SoftElement::open(&self.dir.join("se")).expect("element")
    }

    /// Runs `f` with an installer.
    pub(crate) fn with<T>(&self, f: impl FnOnce(&Installer<'_>) -> T) -> T {
        let se = self.element();
        let transport = AnyTransport::new(Limits::default(), None).expect("transport");
        let installer = Installer::new(&self.config, &se, &transport);
        f(&installer)
    }

    /// One update.
    pub(crate) fn update(&self) -> Result<Outcome, InstallError> {
        self.with(|i| i.update(now()))
    }

    /// One start.
    pub(crate) fn start(&self) -> Started {
        self.with(|i| i.start(now())).expect("start")
    }

    /// The state file.
    pub(crate) fn state(&self) -> SlotState {
        self.with(|i| i.state()).expect("state")
    }

    /// The element's counter.
    pub(crate) fn counter(&self) -> u64 {
        self.element().counter(COUNTER).expect("counter")
    }

    /// The bytes of the active slot (`None`: nothing installed).
    pub(crate) fn active_bytes(&self) -> Option<Vec<u8>> {
        let state = self.state();
        let path = self.config.layout.path(&state.active, "fw.img")?;
        std::fs::read(path).ok()
    }

    /// For Versions: the bytes `current/fw.img` gives an application.
    pub(crate) fn current_bytes(&self) -> Option<Vec<u8>> {
        std::fs::read(self.dir.join("model/current/fw.img")).ok()
    }

    /// The reports queued, as (phase, reason, version).
    pub(crate) fn reports(&self) -> Vec<(Phase, Option<Reason>, String)> {
        self.state()
            .outbox
            .into_iter()
            .map(|r| (r.phase, r.reason, r.version))
            .collect()
    }

    /// Runs this device's `action` ("update+start" or "start") in a child process, dying at
    /// write point `crash_at` (exit status 86) or, with `health` given, using that health
    /// command. Returns the exit status and the child's output.
    pub(crate) fn in_child(
        &self,
        kind: Kinds,
        action: &str,
        crash_at: Option<u64>,
        health: Option<&[&str]>,
    ) -> (i32, String) {
        let spec = json!({
            "dir": self.dir, "metadata_url": self.config.metadata_url,
            "targets_url": self.config.targets_url, "versions": kind == Kinds::Versions,
            "action": action, "crash_at": crash_at, "health": health,
        });
        let out = Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "install::child_process",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("EDGEWARD_INSTALL_CHILD", spec.to_string())
            .output()
            .expect("run the child");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code().unwrap_or(-1), text)
    }
}

/// Exit status of a child that died at its crash point.
pub(crate) const CRASHED: i32 = 86;

/// Not a test of its own: the body of the child process [`Device::in_child`] starts.
#[test]
#[ignore = "run by other tests as a child process"]
fn child_process() {
    let spec: Value = serde_json::from_str(
        &std::env::var("EDGEWARD_INSTALL_CHILD").expect("EDGEWARD_INSTALL_CHILD"),
    )
    .expect("spec");
    let kind = if spec["versions"] == json!(true) {
        Kinds::Versions
    } else {
        Kinds::Slots
    };
    let mut device = Device::at(
        Path::new(spec["dir"].as_str().expect("dir")),
        spec["metadata_url"].as_str().expect("url"),
        spec["targets_url"].as_str().expect("url"),
        kind,
    );
    if let Some(argv) = spec["health"].as_array() {
        device.config.health = HealthCheck::Command(
            argv.iter()
                .map(|a| a.as_str().expect("arg").to_string())
                .collect(),
        );
    }
    let crash_at = spec["crash_at"].as_u64();
    points::set_hook(Box::new(move |n, what| {
        if Some(n) == crash_at {
            eprintln!("CRASH at write point {n}: after {what}");
            std::process::exit(CRASHED);
        }
        eprintln!("POINT {n}: {what}");
    }));
    if spec["action"] == "update+start" {
        device.update().expect("update");
    }
    device.start();
    println!("POINTS {}", points::count());
}

fn sha(data: &[u8]) -> String {
    hex::encode(sha256(data))
}

#[test]
fn installs_on_trial_and_raises_the_counter_only_on_confirmation() {
    let mut repo = SimRepo::new();
    let d = Device::new(&repo, Kinds::Slots);
    let factory = std::fs::read(d.dir.join("slot-a")).expect("factory");
    let v1 = noise(64 << 10, 1);
    publish(&mut repo, "fw.img", &v1, "1.0.0", "rpi4", 3);
    let Outcome::Installed { slot, version, .. } = d.update().expect("update") else {
        panic!("not installed")
    };
    assert_eq!((slot.as_str(), version.as_str()), ("b", "1.0.0"));
    let s = d.state();
    assert_eq!((s.active.as_str(), s.previous.as_deref()), ("b", Some("a")));
    assert_eq!(s.trial.as_ref().map(|t| t.starts), Some(0));
    assert_eq!(d.counter(), 0, "the counter moved before confirmation");
    assert_eq!(std::fs::read(d.dir.join("slot-a")).expect("a"), factory);
    assert_eq!(
        d.start(),
        Started::Confirmed {
            version: "1.0.0".into(),
            counter: 3
        }
    );
    assert_eq!(d.counter(), 3);
    assert_eq!(d.active_bytes(), Some(v1.clone()));

    // v2: a small change, assembled mostly from slot b into slot a.
    let mut v2 = v1.clone();
    v2[30_000..31_000].copy_from_slice(&noise(1000, 2));
    publish(&mut repo, "fw.img", &v2, "2.0.0", "rpi4", 5);
    assert!(matches!(
        d.with(|i| i.check(now())),
        Ok(Check::Available(_))
    ));
    let Outcome::Installed { slot, transfer, .. } = d.update().expect("update") else {
        panic!("not installed")
    };
    assert_eq!(slot, "a");
    assert!(
        transfer.fetched < 32 << 10 && transfer.reused > 32 << 10,
        "{transfer:?}"
    );
    assert_eq!(d.counter(), 3);
    assert!(matches!(d.start(), Started::Confirmed { counter: 5, .. }));
    assert_eq!(d.active_bytes(), Some(v2));
    assert_eq!(
        d.update().expect("update"),
        Outcome::Nothing("2.0.0".into())
    );
    assert_eq!(d.start(), Started::Steady);
    let phases: Vec<Phase> = d.reports().into_iter().map(|r| r.0).collect();
    use Phase::*;
    assert_eq!(
        phases,
        [Offered, Downloaded, Installed, Confirmed, Offered, Downloaded, Installed, Confirmed]
    );
    d.with(|i| i.delivered(5)).expect("delivered");
    assert_eq!(d.reports().len(), 3);
}

/// Installs `v1` (counter 3) and confirms it, then offers `v2` (counter 5), installed on
/// trial; returns the device and both images.
fn on_trial(repo: &mut SimRepo, kind: Kinds) -> (Device, Vec<u8>, Vec<u8>) {
    let d = Device::new(repo, kind);
    let v1 = noise(64 << 10, 1);
    publish(repo, "fw.img", &v1, "1.0.0", "rpi4", 3);
    d.update().expect("v1");
    assert!(matches!(d.start(), Started::Confirmed { .. }));
    let mut v2 = v1.clone();
    v2[10_000..12_000].copy_from_slice(&noise(2000, 3));
    publish(repo, "fw.img", &v2, "2.0.0", "rpi4", 5);
    assert!(matches!(d.update(), Ok(Outcome::Installed { .. })));
    (d, v1, v2)
}

/// After a revert: v1 active again, the counter still v1's, the revert reported with
/// `reason`, and v2 not offered again.
fn assert_reverted(d: &Device, v1: &[u8], reason: Reason) {
    let s = d.state();
    assert!(s.trial.is_none());
    assert_eq!(d.active_bytes().as_deref(), Some(v1));
    assert_eq!(
        d.counter(),
        3,
        "the counter was raised for a reverted release"
    );
    assert_eq!(
        s.last_revert.as_ref().map(|r| r.reason.as_str()),
        Some(reason.code())
    );
    assert_eq!(
        d.reports().last(),
        Some(&(Phase::Reverted, Some(reason), "2.0.0".to_string()))
    );
    assert_eq!(
        d.update().expect("update"),
        Outcome::Nothing("2.0.0".into())
    );
    assert_eq!(d.active_bytes().as_deref(), Some(v1));
}

#[test]
fn a_failing_health_check_reverts_with_health_check_failed() {
    let mut repo = SimRepo::new();
    let (mut d, v1, _) = on_trial(&mut repo, Kinds::Slots);
    d.config.health = HealthCheck::Command(vec!["false".into()]);
    let Started::Reverted { reason, detail, .. } = d.start() else {
        panic!("not reverted")
    };
    assert_eq!(reason, Reason::HealthCheckFailed);
    assert_eq!(detail, "false exited with exit status: 1");
    assert_reverted(&d, &v1, Reason::HealthCheckFailed);
}

#[test]
fn a_health_check_past_its_deadline_reverts_with_timeout() {
    let mut repo = SimRepo::new();
    let (mut d, v1, _) = on_trial(&mut repo, Kinds::Slots);
    d.config.health = HealthCheck::Command(vec!["sleep".into(), "30".into()]);
    d.config.deadline = Duration::from_millis(300);
    let Started::Reverted { reason, .. } = d.start() else {
        panic!("not reverted")
    };
    assert_eq!(reason, Reason::Timeout);
    assert_reverted(&d, &v1, Reason::Timeout);
}

#[test]
fn an_http_probe_answering_404_reverts_and_a_200_confirms() {
    let mut repo = SimRepo::new();
    let (mut d, v1, _) = on_trial(&mut repo, Kinds::Slots);
    repo.serve_file("healthz", Vec::new());
    // The simulated server answers 404 for a path it does not serve.
    d.config.health = HealthCheck::Http(format!("{}nothing-here", repo.base));
    d.config.deadline = Duration::from_secs(2);
    let Started::Reverted { reason, detail, .. } = d.start() else {
        panic!("not reverted")
    };
    assert_eq!(reason, Reason::HealthCheckFailed);
    assert!(detail.ends_with("answered 404 Not Found"), "{detail}");
    assert_reverted(&d, &v1, Reason::HealthCheckFailed);

    let (mut d, _, v2) = on_trial(&mut repo, Kinds::Slots);
    d.config.health = HealthCheck::Http(format!("{}healthz", repo.base));
    assert!(matches!(d.start(), Started::Confirmed { counter: 5, .. }));
    assert_eq!(d.active_bytes(), Some(v2));
}

#[test]
fn starts_that_never_confirm_revert_with_crash_loop() {
    let mut repo = SimRepo::new();
    let (d, v1, _) = on_trial(&mut repo, Kinds::Slots);
    // The health check kills the agent that runs it, three starts in a row.
    for _ in 0..3 {
        let (code, out) = d.in_child(
            Kinds::Slots,
            "start",
            None,
            Some(&["sh", "-c", "kill -9 $PPID"]),
        );
        assert_eq!(code, -1, "the child was not killed: {out}");
        assert!(d.state().trial.is_some());
        assert_eq!(d.counter(), 3);
    }
    assert_eq!(d.state().trial.map(|t| t.starts), Some(3));
    let Started::Reverted { reason, detail, .. } = d.start() else {
        panic!("not reverted")
    };
    assert_eq!(reason, Reason::CrashLoop);
    assert_eq!(detail, "3 starts on trial without a confirmation");
    assert_reverted(&d, &v1, Reason::CrashLoop);
}

#[test]
fn a_trial_slot_altered_before_the_start_reverts_with_verification_failed() {
    let mut repo = SimRepo::new();
    let (d, v1, v2) = on_trial(&mut repo, Kinds::Slots);
    let trial = d.state().active;
    let path = d.config.layout.path(&trial, "fw.img").expect("path");
    let mut bad = v2.clone();
    bad[100] ^= 1;
    std::fs::write(&path, &bad).expect("alter");
    let Started::Reverted { reason, detail, .. } = d.start() else {
        panic!("not reverted")
    };
    assert_eq!(reason, Reason::VerificationFailed);
    assert_eq!(
        detail,
        format!(
            "slot {trial} ({}): sha256 digest {} does not match the signed {}",
            path.display(),
            sha(&bad),
            sha(&v2)
        )
    );
    assert_reverted(&d, &v1, Reason::VerificationFailed);
}

#[test]
fn a_tampered_chunk_is_refused_reported_and_never_switched_to() {
    let mut repo = SimRepo::new();
    let d = Device::new(&repo, Kinds::Slots);
    let v1 = noise(64 << 10, 1);
    publish(&mut repo, "fw.img", &v1, "1.0.0", "rpi4", 3);
    d.update().expect("v1");
    d.start();
    let before = d.state();
    let mut v2 = v1.clone();
    v2[40_000..41_000].copy_from_slice(&noise(1000, 4));
    publish(&mut repo, "fw.img", &v2, "2.0.0", "rpi4", 5);
    let served = repo.target_file_path("targets", "fw.img");
    let mut tampered = v2.clone();
    tampered[40_500] ^= 0x80;
    repo.serve_file(&served, tampered);
    let err = d.update().unwrap_err();
    assert!(err.is_verification(), "{err}");
    assert!(
        err.to_string().contains("does not match the signed"),
        "{err}"
    );
    let after = d.state();
    assert_eq!(
        (after.active.as_str(), &after.slots["b"]),
        ("b", &before.slots["b"])
    );
    assert!(after.trial.is_none() && after.writing.is_none());
    assert!(
        !after.slots.contains_key("a"),
        "the half-written slot is recorded as valid"
    );
    assert_eq!(d.active_bytes(), Some(v1));
    assert_eq!(d.counter(), 3);
    assert_eq!(
        d.reports().last(),
        Some(&(
            Phase::Reverted,
            Some(Reason::VerificationFailed),
            "2.0.0".to_string()
        ))
    );
}

#[test]
fn wrong_hardware_and_a_counter_below_the_elements_are_refused_before_any_write() {
    let mut repo = SimRepo::new();
    let (d, v1, v2) = on_trial(&mut repo, Kinds::Slots);
    assert!(matches!(d.start(), Started::Confirmed { counter: 5, .. }));
    let before = d.state();
    let inactive = d.dir.join("slot-b");
    let inactive_before = std::fs::read(&inactive).expect("b");
    assert_eq!(inactive_before, v1);

    publish(&mut repo, "fw.img", &noise(64 << 10, 7), "3.0.0", "orin", 9);
    assert_eq!(
        d.update().unwrap_err().to_string(),
        "target fw.img is for hardware [\"orin\"], not for this device's \"rpi4\""
    );
    publish(&mut repo, "fw.img", &noise(64 << 10, 8), "1.9.0", "rpi4", 4);
    assert_eq!(
        d.update().unwrap_err().to_string(),
        "target fw.img has security counter 4, below the secure element's 5"
    );
    assert_eq!(d.state(), before, "a refused release changed the state");
    assert_eq!(std::fs::read(&inactive).expect("b"), inactive_before);
    assert_eq!(d.active_bytes(), Some(v2));
    assert_eq!(d.counter(), 5);
}

#[test]
fn a_clock_at_1970_uses_the_time_floor_and_no_floor_refuses() {
    let mut repo = SimRepo::new();
    let d = Device::new(&repo, Kinds::Slots);
    publish(&mut repo, "fw.img", &noise(64 << 10, 1), "1.0.0", "rpi4", 3);
    let err = d.with(|i| i.update(0)).unwrap_err();
    assert!(matches!(err, InstallError::NoTrustedTime(0)), "{err}");
    assert!(d.state().slots.is_empty());
    d.element().raise_time_floor(now() as u64).expect("floor");
    assert!(matches!(
        d.with(|i| i.update(0)),
        Ok(Outcome::Installed { .. })
    ));
    // A floor past the metadata's expiry (30 days) is a freeze the device detects.
    d.element()
        .raise_time_floor(now() as u64 + 40 * 86_400)
        .expect("floor");
    let err = d.with(|i| i.check(0)).unwrap_err();
    assert!(err.to_string().contains("expired"), "{err}");
}

#[test]
fn versioned_directories_switch_the_current_link_and_revert_it() {
    let mut repo = SimRepo::new();
    let (mut d, v1, v2) = on_trial(&mut repo, Kinds::Versions);
    let s = d.state();
    assert!(
        s.active.starts_with("v2.0.0-")
            && s.previous
                .as_deref()
                .is_some_and(|p| p.starts_with("v1.0.0-"))
    );
    assert_eq!(d.current_bytes(), Some(v2));
    d.config.health = HealthCheck::Command(vec!["false".into()]);
    assert!(matches!(d.start(), Started::Reverted { .. }));
    assert_eq!(d.current_bytes(), Some(v1.clone()));
    assert_reverted(&d, &v1, Reason::HealthCheckFailed);
    let link = std::fs::read_link(d.dir.join("model/current")).expect("link");
    assert_eq!(link, Path::new("versions").join(d.state().active));
}

#[test]
fn an_ab_trial_waits_for_the_next_boot() {
    let mut repo = SimRepo::new();
    let mut d = Device::new(&repo, Kinds::Slots);
    d.config.boot_id = Some("boot-1".into());
    publish(&mut repo, "fw.img", &noise(64 << 10, 1), "1.0.0", "rpi4", 3);
    d.update().expect("update");
    assert_eq!(d.start(), Started::AwaitingReboot { slot: "b".into() });
    assert_eq!(d.state().trial.map(|t| t.starts), Some(0));
    assert_eq!(d.counter(), 0);
    d.config.boot_id = Some("boot-2".into());
    assert!(matches!(d.start(), Started::Confirmed { counter: 3, .. }));
}

/// `update_offered` installs only the release it is told: when the repository's signed
/// target is another version, nothing is written (no slot, no report, no state change);
/// the offered version installs as `update` would.
#[test]
fn an_offered_update_installs_only_the_offered_version() {
    let mut repo = SimRepo::new();
    let d = Device::new(&repo, Kinds::Slots);
    let factory = std::fs::read(d.dir.join("slot-a")).expect("factory");
    let v1 = noise(64 << 10, 7);
    publish(&mut repo, "fw.img", &v1, "1.0.0", "rpi4", 1);
    let before = d.state();
    assert_eq!(
        d.with(|i| i.update_offered(now(), Some("0.9.0")))
            .expect("update"),
        Outcome::Nothing("1.0.0".into())
    );
    assert_eq!(
        d.state(),
        before,
        "nothing recorded for a release not offered"
    );
    assert!(
        !d.dir.join("slot-b").exists()
            || std::fs::read(d.dir.join("slot-b")).expect("b").is_empty()
    );
    assert_eq!(std::fs::read(d.dir.join("slot-a")).expect("a"), factory);
    let Outcome::Installed { version, .. } = d
        .with(|i| i.update_offered(now(), Some("1.0.0")))
        .expect("update")
    else {
        panic!("the offered version was not installed")
    };
    assert_eq!(version, "1.0.0");
    assert!(matches!(d.start(), Started::Confirmed { .. }));
    assert_eq!(d.active_bytes(), Some(v1));
}
