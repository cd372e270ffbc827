//! Installing a release on the device: A/B slots for firmware and OS images, versioned
//! directories for applications and models, a trial after every switch that a health check
//! must confirm within a deadline, and an automatic revert with a reason code otherwise.
//!
//! One update ([`Installer::update`]):
//! 1. TUF refresh at the reference time `max(clock, secure element time floor)`; a device
//!    whose reference time is before [`EARLIEST_TRUSTED_TIME`] has no trustworthy time at
//!    all and refuses to update (expiry could not protect it from a freeze);
//! 2. the target must list the device's hardware class, and its security counter must not
//!    be below the element's anti-rollback counter;
//! 3. the inactive slot is marked as being written (so it is never taken for a valid
//!    fallback), then assembled — reusing chunks of the active slot when the target has a
//!    chunk index, fetching the rest with resumable range requests — with every byte
//!    verified against the signed metadata before it is written;
//! 4. the slot is recorded as holding the release, and the switch is one write of the
//!    state file: `active` = the new slot on trial, `previous` = the old one.
//!
//! On every start ([`Installer::start`]) a trial is counted, its slot re-verified against
//! the signed hashes, and the health check run; a confirmation raises the element's
//! anti-rollback counter (only then), anything else reverts to the previous slot with a
//! reason code (`health_check_failed`, `timeout`, `crash_loop`, `verification_failed`).
//! Every phase queues an [`UpdateReport`] in the state file for the agent to deliver.
//! Each step is one crash-safe write of the state file, with the write points of
//! [`points`] between them.

pub mod health;
pub mod layout;
pub mod points;
pub mod state;

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use edgeward_proto::update_report::{Phase, Reason, UpdateReport, VERSION as REPORT_VERSION};
use edgeward_se::SecureElement;

pub use health::{HealthCheck, Unhealthy};
pub use layout::Layout;
pub use state::{Installed, SlotState, StateError, StateFile};

use crate::delta::{self, DeltaError, LocalChunks, Plan};
use crate::release::{reference_time, ReleaseError, ReleaseInfo};
use crate::tuf::hash::{HashCheck, HashError};
use crate::tuf::store::MetadataStore;
use crate::tuf::transport::Transport;
use crate::tuf::{ClientConfig, FoundTarget, TufError, Updater};

/// 2025-01-01T00:00:00Z. A reference time before it means the device knows nothing about
/// the date (clock at 1970 and no time floor in its element): updating then is refused.
pub const EARLIEST_TRUSTED_TIME: i64 = 1_735_689_600;

/// Largest stored trusted root read.
const MAX_ROOT: u64 = 512 * 1024;

/// What one installer manages: one target, installed into one layout.
#[derive(Debug, Clone)]
pub struct InstallConfig {
    /// The installer's own directory (state file, TUF metadata, download progress).
    pub state_dir: PathBuf,
    /// The initial trusted root (copied into the metadata store on first use).
    pub trusted_root: PathBuf,
    /// Device id put in reports.
    pub device_id: String,
    /// This device's hardware class.
    pub hardware: String,
    /// Base URL of the repository's metadata.
    pub metadata_url: String,
    /// Base URL of its targets.
    pub targets_url: String,
    /// The TUF target path this component follows.
    pub target: String,
    /// Where releases go.
    pub layout: Layout,
    /// The secure element's anti-rollback counter for this component.
    pub counter: String,
    /// What confirms a trial.
    pub health: HealthCheck,
    /// How long the health check has.
    pub deadline: Duration,
    /// Starts on trial without confirmation before a `crash_loop` revert.
    pub max_starts: u32,
    /// Download tuning.
    pub download: delta::Options,
    /// The identity of the running boot (Linux: `/proc/sys/kernel/random/boot_id`). With
    /// A/B slots a trial is decided only in a later boot than the one that switched; `None`
    /// decides it at the next start of the agent.
    pub boot_id: Option<String>,
}

/// Why an update or start-up step failed. The installed version is untouched.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// The TUF workflow refused or failed.
    #[error(transparent)]
    Tuf(#[from] TufError),
    /// The release is not for this device.
    #[error(transparent)]
    Release(#[from] ReleaseError),
    /// The target's chunk index is invalid.
    #[error("target {target}: {source}")]
    Index {
        /// Target path.
        target: String,
        /// The problem.
        source: delta::IndexError,
    },
    /// Downloading or assembling failed (verification failures included).
    #[error(transparent)]
    Delta(#[from] DeltaError),
    /// A whole-file download did not match its signed length and hashes.
    #[error("target {target} as downloaded {source}")]
    Whole {
        /// Target path.
        target: String,
        /// The mismatch.
        source: HashError,
    },
    /// The secure element failed.
    #[error("secure element: {0}")]
    Element(#[from] edgeward_se::SeError),
    /// The state file failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// Local storage failed.
    #[error("{path}: {source}")]
    Storage {
        /// The file.
        path: String,
        /// The error.
        source: io::Error,
    },
    /// No trustworthy time.
    #[error("no trustworthy time: the clock and the secure element's time floor both read before 2025-01-01 (reference {0}); refusing to update")]
    NoTrustedTime(i64),
    /// A trial is running: it must be confirmed or reverted first.
    #[error("version {0} is on trial; it must be confirmed (or reverted) before another update")]
    TrialPending(String),
    /// The layout cannot hold the target.
    #[error("target {0} has no file name to install")]
    BadTarget(String),
}

impl InstallError {
    /// Whether the bytes offered failed verification against the signed metadata (the
    /// `verification_failed` reason), as opposed to a refusal or an outage.
    pub fn is_verification(&self) -> bool {
        matches!(
            self,
            InstallError::Whole { .. }
                | InstallError::Delta(
                    DeltaError::ChunkMismatch { .. }
                        | DeltaError::Whole { .. }
                        | DeltaError::IndexLength { .. }
                )
        )
    }
}

fn storage(path: &Path) -> impl Fn(io::Error) -> InstallError + '_ {
    move |source| InstallError::Storage {
        path: path.display().to_string(),
        source,
    }
}

/// A release the repository offers this device.
#[derive(Debug, Clone)]
pub struct Offer {
    /// The target as found in signed metadata.
    pub found: FoundTarget,
    /// Its Edgeward fields.
    pub info: ReleaseInfo,
    /// Where its bytes are fetched.
    pub url: String,
}

/// What a check found.
#[derive(Debug, Clone)]
pub enum Check {
    /// The active slot holds the repository's release.
    UpToDate(String),
    /// The repository's release was reverted on this device before; it is not installed.
    Rejected(String),
    /// A newer release (or another one) is available.
    Available(Box<Offer>),
}

/// What an update did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing to install (the version in use, or a release this device reverted).
    Nothing(String),
    /// Installed into `slot` and switched to it on trial; the next start confirms it.
    Installed {
        /// The release version.
        version: String,
        /// The slot now active on trial.
        slot: String,
        /// Bytes fetched, reused, resumed.
        transfer: delta::Report,
    },
}

/// What a start found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Started {
    /// No trial was running.
    Steady,
    /// A/B slots: the switch happened in this boot; the trial starts after a reboot.
    AwaitingReboot {
        /// The slot the next boot runs.
        slot: String,
    },
    /// The trial was confirmed; the anti-rollback counter is now `counter`.
    Confirmed {
        /// The release.
        version: String,
        /// The element's counter.
        counter: u64,
    },
    /// The trial was given up; the previous slot is active again.
    Reverted {
        /// The release given up.
        version: String,
        /// Why.
        reason: Reason,
        /// The error behind it.
        detail: String,
    },
}

/// The installer of one component on one device.
pub struct Installer<'a> {
    config: &'a InstallConfig,
    element: &'a dyn SecureElement,
    transport: &'a dyn Transport,
    file: StateFile,
}

impl<'a> Installer<'a> {
    /// An installer for `config`, using `element` for counters and time, `transport` for
    /// the repository.
    pub fn new(
        config: &'a InstallConfig,
        element: &'a dyn SecureElement,
        transport: &'a dyn Transport,
    ) -> Self {
        Installer {
            config,
            element,
            transport,
            file: StateFile::new(&config.state_dir),
        }
    }

    /// The current state (initial when the installer never ran).
    pub fn state(&self) -> Result<SlotState, InstallError> {
        Ok(self.file.load_or(&self.config.layout.initial())?)
    }

    fn save(&self, state: &SlotState) -> Result<(), InstallError> {
        Ok(self.file.save(state)?)
    }

    fn report(
        &self,
        state: &mut SlotState,
        release: &Installed,
        phase: Phase,
        reason: Option<(Reason, &str)>,
        now: i64,
    ) {
        let detail: String = reason
            .map(|(_, d)| d)
            .unwrap_or_default()
            .chars()
            .take(512)
            .collect();
        state.report(UpdateReport {
            v: REPORT_VERSION,
            device_id: self.config.device_id.clone(),
            target: release.target.clone(),
            version: release.version.clone(),
            phase,
            reason: reason.map(|(r, _)| r),
            detail,
            at: now,
        });
    }

    /// Reports not yet delivered, oldest first.
    pub fn outbox(&self) -> Result<Vec<UpdateReport>, InstallError> {
        Ok(self.state()?.outbox)
    }

    /// Drops the first `n` reports of the outbox (they were delivered).
    pub fn delivered(&self, n: usize) -> Result<(), InstallError> {
        let mut state = self.state()?;
        let n = n.min(state.outbox.len());
        if n > 0 {
            state.outbox.drain(..n);
            self.save(&state)?;
        }
        Ok(())
    }

    fn metadata(&self) -> Result<MetadataStore, InstallError> {
        let dir = self.config.state_dir.join("metadata");
        std::fs::create_dir_all(&dir).map_err(storage(&dir))?;
        let store = MetadataStore::new(&dir);
        if store.read("root", MAX_ROOT)?.is_none() {
            let root = edgeward_fs::read_bounded(&self.config.trusted_root, MAX_ROOT)
                .map_err(storage(&self.config.trusted_root))?
                .ok_or_else(|| InstallError::Storage {
                    path: self.config.trusted_root.display().to_string(),
                    source: io::Error::new(io::ErrorKind::NotFound, "no trusted root"),
                })?;
            store.write("root", &root)?;
        }
        Ok(store)
    }

    /// Refreshes the repository's metadata and says whether the component's target is
    /// new for this device. Nothing is written but TUF metadata.
    pub fn check(&self, now: i64) -> Result<Check, InstallError> {
        let state = self.state()?;
        let time = reference_time(now, self.element.time_floor()?);
        if time < EARLIEST_TRUSTED_TIME {
            return Err(InstallError::NoTrustedTime(time));
        }
        if now < time {
            tracing::warn!(
                clock = now,
                floor = time,
                "the clock is behind the secure element's time floor; using the floor"
            );
        }
        let mut updater = Updater::new(
            self.metadata()?,
            &self.config.metadata_url,
            self.transport,
            ClientConfig::default(),
            time,
        )?;
        updater.refresh()?;
        let found = updater.find_target(&self.config.target)?;
        let info = ReleaseInfo::from_target(&found.path, &found.file)?;
        let id = state::release_id(&found.file.hashes);
        if state.active_release().map(Installed::id).as_deref() == Some(id.as_str()) {
            return Ok(Check::UpToDate(info.version));
        }
        info.check_device(
            &found.path,
            &self.config.hardware,
            self.element.counter(&self.config.counter)?,
        )?;
        if state.rejected.contains(&id) {
            return Ok(Check::Rejected(info.version));
        }
        let url = updater.target_url(&self.config.targets_url, &found);
        Ok(Check::Available(Box::new(Offer { found, info, url })))
    }

    /// Checks, and installs an available release into the inactive slot and switches to
    /// it on trial. A failed verification is reported (`reverted`, `verification_failed`)
    /// and returned; the active slot is never written.
    pub fn update(&self, now: i64) -> Result<Outcome, InstallError> {
        self.update_offered(now, None)
    }

    /// As [`Installer::update`], but when `offered` names a release (the one a rollout
    /// offers this device), only that release is installed: if the repository's signed
    /// target for this component is another one, nothing is written and the answer is
    /// [`Outcome::Nothing`] with the version the repository holds.
    pub fn update_offered(&self, now: i64, offered: Option<&str>) -> Result<Outcome, InstallError> {
        let pending = self.state()?;
        if let Some(trial) = &pending.trial {
            let version = pending
                .slots
                .get(&trial.slot)
                .map(|r| r.version.clone())
                .unwrap_or_default();
            return Err(InstallError::TrialPending(version));
        }
        let offer = match self.check(now)? {
            Check::UpToDate(v) | Check::Rejected(v) => return Ok(Outcome::Nothing(v)),
            Check::Available(offer) if offered.is_some_and(|v| v != offer.info.version) => {
                return Ok(Outcome::Nothing(offer.info.version))
            }
            Check::Available(offer) => offer,
        };
        let release = Installed {
            target: offer.found.path.clone(),
            version: offer.info.version.clone(),
            length: offer.found.file.length,
            hashes: offer.found.file.hashes.clone(),
            security_counter: offer.info.security_counter,
        };
        let mut state = self.state()?;
        let layout = &self.config.layout;
        let slot = match &state.writing {
            Some((slot, r)) if r == &release => slot.clone(),
            _ => layout.inactive(&state.active, &release.version, &release.id()),
        };
        let dest = layout
            .path(&slot, &release.target)
            .ok_or_else(|| InstallError::BadTarget(release.target.clone()))?;
        let complete =
            state.slots.get(&slot) == Some(&release) && verify_file(&dest, &release).is_ok();
        if !complete && state.writing.as_ref().map(|(_, r)| r) != Some(&release) {
            state.slots.remove(&slot);
            if state.previous.as_deref() == Some(slot.as_str()) {
                state.previous = None;
            }
            state.writing = Some((slot.clone(), release.clone()));
            self.report(&mut state, &release, Phase::Offered, None, now);
            self.save(&state)?;
        }
        layout.prepare(&slot).map_err(storage(&dest))?;
        let downloaded = if complete {
            Ok(delta::Report::default())
        } else {
            self.download(&offer, &state, &dest)
        };
        let transfer = match downloaded {
            Ok(t) => t,
            Err(e) if e.is_verification() => {
                state.writing = None;
                let detail = e.to_string();
                self.report(
                    &mut state,
                    &release,
                    Phase::Reverted,
                    Some((Reason::VerificationFailed, &detail)),
                    now,
                );
                self.save(&state)?;
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        if !complete {
            state.writing = None;
            state.slots.insert(slot.clone(), release.clone());
            self.report(&mut state, &release, Phase::Downloaded, None, now);
            self.save(&state)?;
        }

        // The switch: one write of the state file.
        state.previous = Some(std::mem::replace(&mut state.active, slot.clone()));
        state.trial = Some(state::Trial {
            slot: slot.clone(),
            starts: 0,
            since: now,
            boot: self.config.boot_id.clone(),
        });
        self.report(&mut state, &release, Phase::Installed, None, now);
        self.save(&state)?;
        layout.switch(&slot).map_err(storage(&dest))?;
        Ok(Outcome::Installed {
            version: release.version,
            slot,
            transfer,
        })
    }

    fn download(
        &self,
        offer: &Offer,
        state: &SlotState,
        dest: &Path,
    ) -> Result<delta::Report, InstallError> {
        let (found, url) = (&offer.found, offer.url.as_str());
        let index = delta::target_index(&found.file).map_err(|source| InstallError::Index {
            target: found.path.clone(),
            source,
        })?;
        let Some(index) = index else {
            return self.download_whole(found, url, dest);
        };
        let sources: Vec<PathBuf> = self
            .config
            .layout
            .path(&state.active, &found.path)
            .into_iter()
            .collect();
        let local = LocalChunks::scan(&index.params, &sources, found.file.length.max(1 << 30))
            .map_err(storage(dest))?;
        let plan = Plan::new(&index, &local);
        let progress = self.config.state_dir.join("download.progress");
        let job = delta::Job {
            target: &found.path,
            file: &found.file,
            index: &index,
            url,
            dest,
            progress: &progress,
        };
        Ok(delta::assemble(
            &job,
            &plan,
            &local,
            self.transport,
            &self.config.download,
        )?)
    }

    /// A target without a chunk index: fetched whole into the slot, checked against its
    /// signed length and hashes before the slot is recorded as holding it.
    fn download_whole(
        &self,
        found: &FoundTarget,
        url: &str,
        dest: &Path,
    ) -> Result<delta::Report, InstallError> {
        let mut check =
            HashCheck::new(&found.file.hashes).map_err(|source| InstallError::Whole {
                target: found.path.clone(),
                source,
            })?;
        let out = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(dest)
            .map_err(storage(dest))?;
        let mut offset = 0u64;
        let fetched = self
            .transport
            .fetch(url, 0, found.file.length, &mut |chunk| {
                out.write_all_at(chunk, offset)?;
                check.update(chunk);
                offset += chunk.len() as u64;
                Ok(())
            });
        fetched.map_err(|source| DeltaError::Fetch {
            target: found.path.clone(),
            source,
        })?;
        check
            .finish(Some(found.file.length))
            .map_err(|source| InstallError::Whole {
                target: found.path.clone(),
                source,
            })?;
        if out.metadata().map(|m| m.is_file()).unwrap_or(false) {
            out.set_len(found.file.length).map_err(storage(dest))?;
        }
        out.sync_all().map_err(storage(dest))?;
        points::reached("fsync the downloaded target");
        Ok(delta::Report {
            fetched: offset,
            requests: 1,
            ..delta::Report::default()
        })
    }

    /// Runs at every start of the agent (and after an install): finishes a confirmation
    /// interrupted before its counter was raised, and decides a running trial — counted,
    /// re-verified, health-checked — by confirming or reverting it.
    pub fn start(&self, now: i64) -> Result<Started, InstallError> {
        let mut state = self.state()?;
        self.config
            .layout
            .switch(&state.active)
            .map_err(storage(&self.config.state_dir))?;
        if let Some(counter) = state.raise_counter {
            self.raise(&mut state, counter)?;
        }
        let Some(mut trial) = state.trial.clone() else {
            return Ok(Started::Steady);
        };
        let slots = matches!(self.config.layout, Layout::Slots { .. });
        if slots && trial.boot.is_some() && trial.boot == self.config.boot_id {
            return Ok(Started::AwaitingReboot { slot: trial.slot });
        }
        let Some(release) = state.slots.get(&trial.slot).cloned() else {
            let detail = format!("slot {} on trial holds no recorded release", trial.slot);
            let unknown = Installed {
                target: self.config.target.clone(),
                version: "unknown".into(),
                length: 0,
                hashes: Default::default(),
                security_counter: 0,
            };
            return self.revert(state, &unknown, Reason::VerificationFailed, detail, now);
        };
        trial.starts = trial.starts.saturating_add(1);
        state.trial = Some(trial.clone());
        self.save(&state)?;
        if trial.starts > self.config.max_starts {
            let detail = format!(
                "{} starts on trial without a confirmation",
                self.config.max_starts
            );
            return self.revert(state, &release, Reason::CrashLoop, detail, now);
        }
        if let Err(detail) = self.verify_slot(&trial.slot, &release) {
            return self.revert(state, &release, Reason::VerificationFailed, detail, now);
        }
        if let Err(u) = self.config.health.run(self.config.deadline) {
            return self.revert(state, &release, u.reason, u.detail, now);
        }
        state.trial = None;
        state.raise_counter = Some(release.security_counter);
        self.report(&mut state, &release, Phase::Confirmed, None, now);
        self.save(&state)?;
        let counter = self.raise(&mut state, release.security_counter)?;
        let keep: Vec<&str> = [Some(state.active.as_str()), state.previous.as_deref()]
            .into_iter()
            .flatten()
            .collect();
        self.config
            .layout
            .clean(&keep)
            .map_err(storage(&self.config.state_dir))?;
        Ok(Started::Confirmed {
            version: release.version,
            counter,
        })
    }

    /// Raises the anti-rollback counter, then records that it was raised.
    fn raise(&self, state: &mut SlotState, counter: u64) -> Result<u64, InstallError> {
        let value = self
            .element
            .advance_counter(&self.config.counter, counter)?;
        points::reached("raise the anti-rollback counter");
        state.raise_counter = None;
        self.save(state)?;
        Ok(value)
    }

    fn revert(
        &self,
        mut state: SlotState,
        release: &Installed,
        reason: Reason,
        detail: String,
        now: i64,
    ) -> Result<Started, InstallError> {
        tracing::warn!(version = %release.version, reason = reason.code(), %detail, "reverting");
        let bad = std::mem::replace(&mut state.active, state.previous.take().unwrap_or_default());
        state.trial = None;
        state.slots.remove(&bad);
        if !release.hashes.is_empty() {
            state.reject(release.id());
        }
        state.last_revert = Some(state::Revert {
            version: release.version.clone(),
            reason: reason.code().into(),
            detail: detail.clone(),
            at: now,
        });
        self.report(
            &mut state,
            release,
            Phase::Reverted,
            Some((reason, &detail)),
            now,
        );
        self.save(&state)?;
        self.config
            .layout
            .switch(&state.active)
            .map_err(storage(&self.config.state_dir))?;
        Ok(Started::Reverted {
            version: release.version.clone(),
            reason,
            detail,
        })
    }

    /// Re-reads `slot` and checks it against the release's signed length and hashes.
    fn verify_slot(&self, slot: &str, release: &Installed) -> Result<(), String> {
        let path = self
            .config
            .layout
            .path(slot, &release.target)
            .ok_or_else(|| format!("slot {slot} has no path"))?;
        verify_file(&path, release).map_err(|e| format!("slot {slot} ({}): {e}", path.display()))
    }
}

/// Checks the first `release.length` bytes of `path` (a file of exactly that length, or a
/// block device) against the release's signed hashes.
pub fn verify_file(path: &Path, release: &Installed) -> Result<(), String> {
    let mut check = HashCheck::new(&release.hashes).map_err(|e| e.to_string())?;
    let file = File::open(path).map_err(|e| e.to_string())?;
    let meta = file.metadata().map_err(|e| e.to_string())?;
    if meta.is_file() && meta.len() != release.length {
        return Err(format!(
            "is {} bytes long, the signed length is {}",
            meta.len(),
            release.length
        ));
    }
    let mut reader = file.take(release.length);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = reader.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        check.update(&buf[..n]);
    }
    check
        .finish(Some(release.length))
        .map_err(|e| e.to_string())
}
