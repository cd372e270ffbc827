//! Device identifiers: what registration accepts, so that a token (`id:timestamp:mac`) and
//! a certificate subject can never be ambiguous.

/// Longest device identifier, in bytes.
pub const MAX_DEVICE_ID_LEN: usize = 128;

/// Why a device identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceIdError {
    /// Empty or longer than [`MAX_DEVICE_ID_LEN`].
    #[error("device id must be 1 to {MAX_DEVICE_ID_LEN} bytes, got {0}")]
    Length(usize),
    /// A character outside `A-Z a-z 0-9 . _ -` (in particular `:`, whitespace, control).
    #[error("device id may only contain letters, digits, '.', '_' and '-' (found {0:?})")]
    Character(char),
}

/// Checks a device identifier: 1–128 of `A-Z a-z 0-9 . _ -`, not starting with `.` or `-`.
pub fn validate(id: &str) -> Result<(), DeviceIdError> {
    if id.is_empty() || id.len() > MAX_DEVICE_ID_LEN {
        return Err(DeviceIdError::Length(id.len()));
    }
    if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(DeviceIdError::Character(c));
    }
    if let Some(c) = id.chars().next().filter(|c| matches!(c, '.' | '-')) {
        return Err(DeviceIdError::Character(c));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_ids_and_refuses_separators_and_controls() {
        for ok in ["dev-001", "cam_7.lobby", "A"] {
            assert!(validate(ok).is_ok(), "{ok}");
        }
        assert_eq!(validate(""), Err(DeviceIdError::Length(0)));
        for (bad, c) in [
            ("dev:1", ':'),
            ("dev 1", ' '),
            ("dev\n1", '\n'),
            ("dev\u{0}", '\0'),
            ("-x", '-'),
            (".x", '.'),
            ("été", 'é'),
        ] {
            assert_eq!(validate(bad), Err(DeviceIdError::Character(c)), "{bad:?}");
        }
        assert!(validate(&"a".repeat(128)).is_ok());
        assert_eq!(validate(&"a".repeat(129)), Err(DeviceIdError::Length(129)));
    }
}
