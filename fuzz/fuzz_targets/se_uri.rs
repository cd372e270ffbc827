//! Secure-element URIs (`soft:`, `pkcs11:`, `tpm:`) from configuration files and command
//! lines: parsing never panics, and what parses has the parts its scheme requires.
#![no_main]

use edgeward_se::{parse_uri, ElementUri};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match parse_uri(text) {
        Ok(ElementUri::Soft { dir }) => assert!(!dir.as_os_str().is_empty()),
        Ok(ElementUri::Pkcs11 {
            module,
            token,
            pin_env,
        }) => {
            assert!(!module.as_os_str().is_empty() && !token.is_empty() && !pin_env.is_empty());
        }
        Ok(ElementUri::Tpm { tcti, state_dir }) => {
            assert!(!tcti.is_empty() && !state_dir.as_os_str().is_empty());
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
});
