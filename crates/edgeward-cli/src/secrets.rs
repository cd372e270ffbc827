//! Passphrases: from the environment variable the operator names, else a prompt on a TTY.
//! They are zeroized after use and never printed.

use std::io::IsTerminal;

use zeroize::Zeroizing;

use crate::outcome::Failure;

/// Reads a passphrase from `$env_var`, or prompts with `prompt` when stdin is a terminal.
pub(crate) fn passphrase(
    env_var: &str,
    prompt: &str,
    confirm: bool,
) -> Result<Zeroizing<Vec<u8>>, Failure> {
    if let Some(v) = std::env::var_os(env_var) {
        let v = v
            .into_string()
            .map_err(|_| Failure::operator(format!("${env_var} is not valid UTF-8")))?;
        return Ok(Zeroizing::new(v.into_bytes()));
    }
    if !std::io::stdin().is_terminal() {
        return Err(Failure::operator(format!(
            "no passphrase: set ${env_var} or run on a terminal to be prompted"
        )));
    }
    let first = Zeroizing::new(
        rpassword::prompt_password(prompt)
            .map_err(|e| Failure::operator(format!("reading the passphrase: {e}")))?,
    );
    if confirm {
        let again = Zeroizing::new(
            rpassword::prompt_password("Repeat the passphrase: ")
                .map_err(|e| Failure::operator(format!("reading the passphrase: {e}")))?,
        );
        if *again != *first {
            return Err(Failure::operator("the passphrases differ"));
        }
    }
    Ok(Zeroizing::new(first.as_bytes().to_vec()))
}
