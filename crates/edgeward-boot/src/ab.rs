//! A/B install for one stage, with trial boot and confirm, each step an explicit, atomic
//! state change so that a power cut after any of them leaves a bootable device:
//!
//! 1. write the new image and bundle into the inactive slot;
//! 2. verify it there (signature, claims, counter);
//! 3. mark it for a trial boot (state file replaced atomically);
//! 4. trial boot: the state says "tried" *before* the image runs, so a crash during the
//!    trial reverts to the old slot on the next power-on;
//! 5. confirm: the new slot becomes the active one;
//! 6. raise the element's counter to the new image's — last, so until then the old image
//!    still passes the anti-rollback check and a revert stays possible.
//!
//! [`AbStage::power_on`] finishes an interrupted confirm by raising the counter to the
//! active image's value (idempotent).

use std::path::{Path, PathBuf};

use edgeward_core::{
    bundle::Bundle,
    cert_policy::Policy,
    verify::{verify_bundle, Trust},
};
use edgeward_se::SecureElement;
use serde::{Deserialize, Serialize};

use crate::{
    chain::{counter_name, StageFormat, StageSpec},
    stage::{verify_stage, StageTrust},
    BootError, FailureKind, StageFailure,
};

/// A slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Slot {
    /// Slot A.
    A,
    /// Slot B.
    B,
}

impl Slot {
    /// The other slot.
    pub fn other(self) -> Slot {
        match self {
            Slot::A => Slot::B,
            Slot::B => Slot::A,
        }
    }

    fn dir_name(self) -> &'static str {
        match self {
            Slot::A => "slot-a",
            Slot::B => "slot-b",
        }
    }
}

/// The persistent slot state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotState {
    /// The confirmed slot.
    pub active: Slot,
    /// A slot marked for a trial boot.
    pub trial: Option<Slot>,
    /// Whether the trial boot has started.
    pub trial_booted: bool,
}

/// The install steps, in order; a crash can be injected after any of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Half of the image is written (a cut in the middle of the write).
    WriteHalf,
    /// The image and bundle are in the inactive slot.
    Write,
    /// The inactive slot verified.
    Verify,
    /// The state marks it for a trial boot.
    MarkTrial,
    /// The trial boot started (and verified).
    TrialBoot,
    /// The state makes it the active slot.
    Confirm,
    /// The element's counter is raised.
    RaiseCounter,
}

/// Every step, in order.
pub const STEPS: [Step; 7] = [
    Step::WriteHalf,
    Step::Write,
    Step::Verify,
    Step::MarkTrial,
    Step::TrialBoot,
    Step::Confirm,
    Step::RaiseCounter,
];

/// Where the counter raise goes: last (correct) or before confirming (the mistake the
/// power-cut test shows to be unsafe).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Raise after confirm.
    CounterLast,
    /// Raise right after the trial boot, before confirm (wrong).
    CounterBeforeConfirm,
}

/// A booted slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Booted {
    /// The slot that booted.
    pub slot: Slot,
    /// Its signed security counter.
    pub counter: u64,
    /// Whether this is a trial boot.
    pub trial: bool,
}

/// One A/B stage on disk, with its element.
pub struct AbStage<'a> {
    /// The directory holding `state.json`, `slot-a/` and `slot-b/`.
    pub dir: PathBuf,
    /// The stage name.
    pub name: String,
    /// The element (counters).
    pub se: &'a dyn SecureElement,
    /// Anchors, time and hardware.
    pub trust: StageTrust<'a>,
}

const IMAGE: &str = "image";
const SIGNATURE: &str = "image.sig";
const STATE: &str = "state.json";

impl AbStage<'_> {
    fn slot_dir(&self, slot: Slot) -> PathBuf {
        self.dir.join(slot.dir_name())
    }

    /// The state (slot A active when none was written yet).
    pub fn state(&self) -> Result<SlotState, BootError> {
        let path = self.dir.join(STATE);
        match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| BootError::Malformed {
                what: "slot state",
                detail: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(SlotState {
                active: Slot::A,
                trial: None,
                trial_booted: false,
            }),
            Err(e) => Err(BootError::io(path, e)),
        }
    }

    fn save(&self, state: &SlotState) -> Result<(), BootError> {
        let path = self.dir.join(STATE);
        let json = serde_json::to_vec(state).map_err(|e| BootError::Malformed {
            what: "slot state",
            detail: e.to_string(),
        })?;
        edgeward_fs::write_atomic(&path, &json, edgeward_fs::Access::Public)
            .map_err(|e| BootError::io(path, e))
    }

    /// Verifies the image in `slot` against its own signed counter and the element's.
    pub fn verify_slot(&self, slot: Slot) -> Result<u64, StageFailure> {
        let dir = self.slot_dir(slot);
        let signature = dir.join(SIGNATURE);
        let bytes = std::fs::read(&signature).map_err(|e| {
            StageFailure::new(
                FailureKind::MissingSignature,
                format!("{}: {e}", signature.display()),
            )
        })?;
        let bundle = Bundle::parse(&bytes)
            .map_err(|e| StageFailure::new(FailureKind::Malformed, e.to_string()))?;
        let trust = Trust::Roots {
            roots: self.trust.roots,
            crls: self.trust.crls,
            policy: Policy::default(),
        };
        let claimed = verify_bundle(&bundle, &trust, self.trust.now)
            .map_err(|e| StageFailure::new(FailureKind::BadSignature, e.to_string()))?
            .statement
            .boot
            .security_counter
            .unwrap_or(0);
        let floor = self
            .se
            .counter(&counter_name(&self.name))
            .map_err(|e| StageFailure::new(FailureKind::SecureElement, e.to_string()))?;
        let spec = StageSpec {
            index: 0,
            name: self.name.clone(),
            image: dir.join(IMAGE),
            format: StageFormat::Bundle { signature },
            security_counter: claimed,
        };
        verify_stage(&spec, &self.trust, floor).map(|v| v.event.security_counter)
    }

    /// Installs `image` with `bundle` into the inactive slot, stopping (as a power cut
    /// would) right after `crash_after`. Returns the booted slot when it ran to the end.
    pub fn install(
        &self,
        image: &Path,
        bundle: &Path,
        order: Order,
        crash_after: Option<Step>,
    ) -> Result<Option<Booted>, BootError> {
        let crashed = |s: Step| crash_after == Some(s);
        let state = self.state()?;
        let target = state.active.other();
        let dir = self.slot_dir(target);
        std::fs::create_dir_all(&dir).map_err(|e| BootError::io(&dir, e))?;
        let data = std::fs::read(image).map_err(|e| BootError::io(image, e))?;
        let dest = dir.join(IMAGE);
        std::fs::write(&dest, &data[..data.len() / 2]).map_err(|e| BootError::io(&dest, e))?;
        if crashed(Step::WriteHalf) {
            return Ok(None);
        }
        std::fs::write(&dest, &data).map_err(|e| BootError::io(&dest, e))?;
        std::fs::copy(bundle, dir.join(SIGNATURE)).map_err(|e| BootError::io(bundle, e))?;
        if crashed(Step::Write) {
            return Ok(None);
        }
        let counter = self
            .verify_slot(target)
            .map_err(|f| BootError::Chain(format!("the new image was refused: {f}")))?;
        if crashed(Step::Verify) {
            return Ok(None);
        }
        self.save(&SlotState {
            active: state.active,
            trial: Some(target),
            trial_booted: false,
        })?;
        if crashed(Step::MarkTrial) {
            return Ok(None);
        }
        let booted = self.power_on()?;
        if !booted.trial || booted.slot != target {
            return Ok(Some(booted));
        }
        if order == Order::CounterBeforeConfirm {
            self.se
                .advance_counter(&counter_name(&self.name), counter)?;
        }
        if crashed(Step::TrialBoot) {
            return Ok(None);
        }
        self.save(&SlotState {
            active: target,
            trial: None,
            trial_booted: false,
        })?;
        if crashed(Step::Confirm) {
            return Ok(None);
        }
        self.se
            .advance_counter(&counter_name(&self.name), counter)?;
        if crashed(Step::RaiseCounter) {
            return Ok(None);
        }
        Ok(Some(Booted {
            slot: target,
            counter,
            trial: false,
        }))
    }

    /// Powers the device on: a pending trial boots once (marked tried first); an
    /// unconfirmed trial reverts; the active slot boots and its counter is raised to its
    /// image's (finishing an interrupted confirm); if it fails, the other slot is tried.
    pub fn power_on(&self) -> Result<Booted, BootError> {
        let mut state = self.state()?;
        if let Some(trial) = state.trial {
            if !state.trial_booted {
                state.trial_booted = true;
                self.save(&state)?;
                if let Ok(counter) = self.verify_slot(trial) {
                    return Ok(Booted {
                        slot: trial,
                        counter,
                        trial: true,
                    });
                }
            }
            state.trial = None;
            state.trial_booted = false;
            self.save(&state)?;
        }
        match self.verify_slot(state.active) {
            Ok(counter) => {
                self.se
                    .advance_counter(&counter_name(&self.name), counter)?;
                Ok(Booted {
                    slot: state.active,
                    counter,
                    trial: false,
                })
            }
            Err(first) => match self.verify_slot(state.active.other()) {
                Ok(counter) => Ok(Booted {
                    slot: state.active.other(),
                    counter,
                    trial: false,
                }),
                Err(second) => Err(BootError::Chain(format!(
                    "no bootable slot: {}: {first}; {}: {second}",
                    state.active.dir_name(),
                    state.active.other().dir_name()
                ))),
            },
        }
    }

    /// Puts a first image into slot A (factory install) and makes A active.
    pub fn factory_install(&self, image: &Path, bundle: &Path) -> Result<(), BootError> {
        let dir = self.slot_dir(Slot::A);
        std::fs::create_dir_all(&dir).map_err(|e| BootError::io(&dir, e))?;
        std::fs::copy(image, dir.join(IMAGE)).map_err(|e| BootError::io(image, e))?;
        std::fs::copy(bundle, dir.join(SIGNATURE)).map_err(|e| BootError::io(bundle, e))?;
        self.save(&SlotState {
            active: Slot::A,
            trial: None,
            trial_booted: false,
        })
    }
}
