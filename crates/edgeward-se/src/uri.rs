//! The element URI: one string in a configuration file or on a command line selects the
//! backend and where its state lives. Parsing is total (bad input gives
//! [`SeError::InvalidArgument`] naming the problem) because URIs come from operators and
//! configuration files.
//!
//! * `soft:DIR` — the file-backed development element in directory `DIR`.
//! * `pkcs11:MODULE_PATH?token=LABEL&pin-env=VAR` — the token labelled `LABEL` in the
//!   PKCS#11 module at `MODULE_PATH`, logged in with the user PIN held in environment
//!   variable `VAR` (never in the URI itself, so it does not end up in shell history or logs).
//! * `tpm:TCTI?state=DIR` — a TPM 2.0 reached through the TSS TCTI configuration `TCTI`
//!   (`device:/dev/tpmrm0`, `swtpm:host=127.0.0.1,port=2321`, `tabrmd:`), with the key
//!   context blobs kept in `DIR`.

use std::path::PathBuf;

use crate::SeError;

/// Longest URI accepted.
pub const MAX_URI_LEN: usize = 4096;

/// A parsed element URI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ElementUri {
    /// The file-backed development element.
    Soft {
        /// Directory holding the element's files.
        dir: PathBuf,
    },
    /// A PKCS#11 token.
    Pkcs11 {
        /// Path of the PKCS#11 module (shared library).
        module: PathBuf,
        /// Label of the token to use.
        token: String,
        /// Name of the environment variable holding the user PIN.
        pin_env: String,
    },
    /// A TPM 2.0.
    Tpm {
        /// The TCTI configuration string (`device:/dev/tpmrm0`, `swtpm:host=…,port=…`).
        tcti: String,
        /// Directory for key context blobs and the backend's bookkeeping.
        state_dir: PathBuf,
    },
}

/// Parses an element URI (see the module documentation for the three forms).
pub fn parse_uri(uri: &str) -> Result<ElementUri, SeError> {
    if uri.len() > MAX_URI_LEN {
        return Err(invalid(format!(
            "element URI is {} bytes long (at most {MAX_URI_LEN})",
            uri.len()
        )));
    }
    if uri.chars().any(char::is_control) {
        return Err(invalid("element URI contains a control character"));
    }
    let (scheme, rest) = uri.split_once(':').ok_or_else(|| {
        invalid(format!(
            "element URI `{uri}` has no scheme (expected soft:DIR, pkcs11:MODULE?token=…&pin-env=… or tpm:TCTI?state=DIR)"
        ))
    })?;
    match scheme {
        "soft" => {
            non_empty("soft: directory", rest)?;
            Ok(ElementUri::Soft {
                dir: PathBuf::from(rest),
            })
        }
        "pkcs11" => parse_pkcs11(rest),
        "tpm" => parse_tpm(rest),
        other => Err(invalid(format!(
            "unknown element backend `{other}` (expected soft, pkcs11 or tpm)"
        ))),
    }
}

fn parse_pkcs11(rest: &str) -> Result<ElementUri, SeError> {
    let (module, query) = rest.split_once('?').unwrap_or((rest, ""));
    non_empty("pkcs11: module path", module)?;
    let params = parse_query(query, &["token", "pin-env"])?;
    let token = required(&params, "token", "pkcs11:MODULE?token=LABEL&pin-env=VAR")?;
    let pin_env = required(&params, "pin-env", "pkcs11:MODULE?token=LABEL&pin-env=VAR")?;
    if !pin_env
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err(invalid(format!(
            "pin-env `{pin_env}` is not an environment variable name (A-Z a-z 0-9 _)"
        )));
    }
    Ok(ElementUri::Pkcs11 {
        module: PathBuf::from(module),
        token,
        pin_env,
    })
}

fn parse_tpm(rest: &str) -> Result<ElementUri, SeError> {
    let (tcti, query) = rest.rsplit_once('?').unwrap_or((rest, ""));
    non_empty("tpm: TCTI configuration", tcti)?;
    let params = parse_query(query, &["state"])?;
    let state = required(&params, "state", "tpm:TCTI?state=DIR")?;
    Ok(ElementUri::Tpm {
        tcti: tcti.to_owned(),
        state_dir: PathBuf::from(state),
    })
}

/// Splits `a=1&b=2`, refusing unknown, repeated or empty parameters.
fn parse_query(query: &str, known: &[&str]) -> Result<Vec<(String, String)>, SeError> {
    let mut params: Vec<(String, String)> = Vec::new();
    if query.is_empty() {
        return Ok(params);
    }
    for pair in query.split('&') {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| invalid(format!("URI parameter `{pair}` has no `=`")))?;
        if !known.contains(&key) {
            return Err(invalid(format!(
                "unknown URI parameter `{key}` (known: {})",
                known.join(", ")
            )));
        }
        if params.iter().any(|(k, _)| k == key) {
            return Err(invalid(format!("URI parameter `{key}` is given twice")));
        }
        non_empty(&format!("URI parameter `{key}`"), value)?;
        params.push((key.to_owned(), value.to_owned()));
    }
    Ok(params)
}

fn required(params: &[(String, String)], key: &str, form: &str) -> Result<String, SeError> {
    params
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
        .ok_or_else(|| {
            invalid(format!(
                "the URI lacks the `{key}` parameter (form: {form})"
            ))
        })
}

fn non_empty(what: &str, value: &str) -> Result<(), SeError> {
    if value.is_empty() {
        Err(invalid(format!("{what} is empty")))
    } else {
        Ok(())
    }
}

fn invalid(message: impl Into<String>) -> SeError {
    SeError::InvalidArgument(message.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_forms() {
        assert_eq!(
            parse_uri("soft:/var/lib/se").unwrap(),
            ElementUri::Soft {
                dir: "/var/lib/se".into()
            }
        );
        assert_eq!(
            parse_uri("pkcs11:/usr/lib/softhsm/libsofthsm2.so?token=dev&pin-env=SE_PIN").unwrap(),
            ElementUri::Pkcs11 {
                module: "/usr/lib/softhsm/libsofthsm2.so".into(),
                token: "dev".into(),
                pin_env: "SE_PIN".into()
            }
        );
        assert_eq!(
            parse_uri("tpm:swtpm:host=127.0.0.1,port=2321?state=/tmp/t").unwrap(),
            ElementUri::Tpm {
                tcti: "swtpm:host=127.0.0.1,port=2321".into(),
                state_dir: "/tmp/t".into()
            }
        );
    }

    #[test]
    fn names_what_is_missing_or_wrong() {
        let cases = [
            ("", "no scheme"),
            ("soft:", "directory is empty"),
            ("hsm:x", "unknown element backend"),
            ("pkcs11:/m.so?token=a", "`pin-env`"),
            ("pkcs11:/m.so?pin-env=P", "`token`"),
            ("pkcs11:/m.so?token=a&token=b&pin-env=P", "twice"),
            (
                "pkcs11:/m.so?token=a&pin-env=P&pin=1234",
                "unknown URI parameter `pin`",
            ),
            (
                "pkcs11:/m.so?token=a&pin-env=A-B",
                "not an environment variable",
            ),
            ("tpm:device:/dev/tpmrm0", "`state`"),
            ("soft:a\nb", "control character"),
        ];
        for (uri, expected) in cases {
            let err = parse_uri(uri).unwrap_err().to_string();
            assert!(err.contains(expected), "{uri:?}: {err}");
        }
    }
}
