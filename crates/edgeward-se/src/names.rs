//! Slot and counter names: the one rule every backend maps to its own object names, so a
//! name can never smuggle a path separator into a file name or a label into another slot.

use crate::SeError;

/// Longest slot or counter name.
pub const MAX_NAME_LEN: usize = 64;

/// Checks that `name` is `[A-Za-z0-9._-]{1,64}` and not made of dots only; `what` names the
/// kind of name in the error ("slot", "counter").
pub fn check_name(what: &str, name: &str) -> Result<(), SeError> {
    let well_formed = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && !name.bytes().all(|b| b == b'.');
    if well_formed {
        Ok(())
    } else {
        Err(SeError::InvalidArgument(format!(
            "{what} name `{}` must be 1-{MAX_NAME_LEN} characters of A-Z a-z 0-9 . _ - (and not only dots)",
            name.escape_debug()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::{check_name, MAX_NAME_LEN};
    use crate::SeError;

    #[test]
    fn accepts_plain_names_and_refuses_paths() {
        for ok in ["device", "boot.stage-1", "a_b", &"x".repeat(64)] {
            assert!(check_name("slot", ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "a/b", "a b", "é", &"x".repeat(65), "a\0b"] {
            let want = format!(
                "slot name `{}` must be 1-{MAX_NAME_LEN} characters of A-Z a-z 0-9 . _ - (and not only dots)",
                bad.escape_debug()
            );
            assert!(
                matches!(check_name("slot", bad), Err(SeError::InvalidArgument(m)) if m == want),
                "{bad:?}"
            );
        }
    }
}
