//! Retiring a re-provisioned device's old key. `reprovision` gives the device a new key in a
//! fresh slot because the old one may be compromised, so the old one must not outlive the
//! switch, not even across a crash: the slot to retire is recorded before enrollment starts
//! ([`begin`]), and whoever next holds the current identity — the command itself, or the
//! daemon at its next start — destroys it once the new identity is in place ([`finish`]).

use std::path::Path;

use edgeward_se::{SeError, SecureElement};

use crate::{files, AgentError};

/// The file naming the key slot to destroy once the device holds another identity.
pub const MARKER: &str = "retiring-key-slot";
const MAX_MARKER: u64 = 256;

/// Records that `slot` is to be destroyed once the device has a new identity.
pub fn begin(state_dir: &Path, slot: &str) -> Result<(), AgentError> {
    files::write_atomic(&state_dir.join(MARKER), slot.as_bytes(), false)
}

/// Forgets the record (the new identity was not obtained; `slot` stays the device's key).
pub fn abandon(state_dir: &Path) -> Result<(), AgentError> {
    files::remove(&state_dir.join(MARKER))
}

/// What [`finish`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Retired {
    /// Nothing was waiting to be retired.
    Nothing,
    /// The recorded slot is the current key (enrollment never completed); it was kept.
    Kept(String),
    /// The recorded slot's key was destroyed (or was already gone).
    Destroyed(String),
}

/// Destroys the recorded slot's key unless it is `current_slot`, then clears the record.
/// The record stays when the element fails, so the next start tries again.
pub fn finish(
    state_dir: &Path,
    element: &dyn SecureElement,
    current_slot: &str,
) -> Result<Retired, AgentError> {
    let path = state_dir.join(MARKER);
    let Some(bytes) = files::read_bounded(&path, MAX_MARKER)? else {
        return Ok(Retired::Nothing);
    };
    let slot = String::from_utf8_lossy(&bytes).trim().to_string();
    let retired = if slot == current_slot {
        Retired::Kept(slot)
    } else {
        match element.destroy_key(&slot) {
            Ok(()) | Err(SeError::NoSuchKey(_)) => Retired::Destroyed(slot),
            // No slot has that name: the record is garbage and can never be carried out.
            Err(e @ SeError::InvalidArgument(_)) => {
                files::remove(&path)?;
                return Err(e.into());
            }
            Err(e) => return Err(e.into()),
        }
    };
    files::remove(&path)?;
    Ok(retired)
}

#[cfg(test)]
mod tests {
    use edgeward_se::KeyAlgorithm;

    use super::*;

    fn element(dir: &Path) -> Box<dyn SecureElement> {
        edgeward_se::open(&format!("soft:{}", dir.join("se").display())).expect("element")
    }

    #[test]
    fn the_old_key_is_destroyed_once_the_device_holds_another() {
        let dir = tempfile::tempdir().expect("tmp");
        let se = element(dir.path());
        se.generate_key("device-1", KeyAlgorithm::P256)
            .expect("old");
        se.generate_key("device-2", KeyAlgorithm::P256)
            .expect("new");
        begin(dir.path(), "device-1").expect("begin");
        // The next start after a crash finds the record and finishes the job.
        assert_eq!(
            finish(dir.path(), se.as_ref(), "device-2").expect("finish"),
            Retired::Destroyed("device-1".into())
        );
        assert!(matches!(
            se.public_key("device-1"),
            Err(SeError::NoSuchKey(_))
        ));
        se.public_key("device-2").expect("the current key stays");
        assert_eq!(
            finish(dir.path(), se.as_ref(), "device-2").expect("again"),
            Retired::Nothing
        );
    }

    #[test]
    fn a_record_of_the_current_key_keeps_it_and_a_garbage_record_is_cleared() {
        let dir = tempfile::tempdir().expect("tmp");
        let se = element(dir.path());
        se.generate_key("device-1", KeyAlgorithm::P256)
            .expect("key");
        // Enrollment never completed: the recorded slot is still the device's key.
        begin(dir.path(), "device-1").expect("begin");
        assert_eq!(
            finish(dir.path(), se.as_ref(), "device-1").expect("finish"),
            Retired::Kept("device-1".into())
        );
        se.public_key("device-1").expect("kept");
        // A name no slot can have can never be destroyed: an error, and the record goes.
        begin(dir.path(), "../keys").expect("begin");
        assert!(matches!(
            finish(dir.path(), se.as_ref(), "device-1"),
            Err(AgentError::Element(SeError::InvalidArgument(_)))
        ));
        assert!(!dir.path().join(MARKER).exists());
        // A record abandoned before enrollment leaves nothing to do.
        begin(dir.path(), "device-1").expect("begin");
        abandon(dir.path()).expect("abandon");
        assert_eq!(
            finish(dir.path(), se.as_ref(), "device-1").expect("finish"),
            Retired::Nothing
        );
    }
}
