//! The conformance suite on the pkcs11 backend against a real SoftHSM2 token, plus proof
//! that private and sealing keys cannot be read or wrapped out of the token.
//! Needs `softhsm2` (module `/usr/lib/softhsm/libsofthsm2.so`, `softhsm2-util`); fails if
//! it is missing.

use std::{
    path::Path,
    process::Command,
    sync::{
        atomic::{AtomicUsize, Ordering},
        OnceLock,
    },
};

use crate::common::Fixture;
use cryptoki::{
    mechanism::Mechanism,
    object::{Attribute, AttributeInfo, AttributeType, ObjectClass},
    session::UserType,
    types::AuthPin,
};
use edgeward_se::KeyAlgorithm;

const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
const PIN: &str = "123456";
const PIN_ENV: &str = "EDGEWARD_SE_TEST_PIN";

/// Tokens initialised per test process. SoftHSM2 only sees tokens that exist at
/// `C_Initialize`, so the whole pool is created before the first element opens.
const POOL: usize = 24;

/// One SoftHSM2 configuration per test process (the module reads it at `C_Initialize`),
/// with [`POOL`] fresh tokens `edgeward-0`, `edgeward-1`, ….
fn softhsm_dir() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        assert!(
            Path::new(MODULE).exists(),
            "{MODULE} is missing: apt-get install softhsm2"
        );
        let dir = tempfile::tempdir().unwrap();
        let tokens = dir.path().join("tokens");
        std::fs::create_dir(&tokens).unwrap();
        let conf = dir.path().join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                tokens.display()
            ),
        )
        .unwrap();
        std::env::set_var("SOFTHSM2_CONF", &conf);
        std::env::set_var(PIN_ENV, PIN);
        for i in 0..POOL {
            let status = Command::new("softhsm2-util")
                .args([
                    "--init-token",
                    "--free",
                    "--label",
                    &format!("edgeward-{i}"),
                ])
                .args(["--pin", PIN, "--so-pin", "so-pin-0"])
                .stdout(std::process::Stdio::null())
                .status()
                .expect("softhsm2-util is missing: apt-get install softhsm2");
            assert!(status.success(), "softhsm2-util --init-token failed");
        }
        dir
    })
    .path()
}

/// A token no other test uses.
fn new_token() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    softhsm_dir();
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    assert!(n < POOL, "more than {POOL} tokens used: raise POOL");
    format!("edgeward-{n}")
}

fn uri(label: &str) -> String {
    format!("pkcs11:{MODULE}?token={label}&pin-env={PIN_ENV}")
}

fn pkcs11() -> Fixture {
    let label = new_token();
    Fixture {
        se: edgeward_se::open(&uri(&label)).unwrap(),
        ed25519: true,
        guards: Vec::new(),
    }
}

conformance_suite!(pkcs11);

#[test]
fn private_and_sealing_keys_cannot_leave_the_token() {
    let label = new_token();
    let se = edgeward_se::open(&uri(&label)).unwrap();
    se.generate_key("device", KeyAlgorithm::P256).unwrap();
    se.seal(b"creates the sealing key").unwrap();

    // Inspect the token through its own session, as any other application could.
    let ctx = edgeward_se::pkcs11::shared_context(Path::new(MODULE)).unwrap();
    let slot = ctx
        .get_slots_with_initialized_token()
        .unwrap()
        .into_iter()
        .find(|s| ctx.get_token_info(*s).unwrap().label().trim_end() == label)
        .unwrap();
    let session = ctx.open_rw_session(slot).unwrap();
    match session.login(UserType::User, Some(&AuthPin::new(PIN.into()))) {
        Ok(())
        | Err(cryptoki::error::Error::Pkcs11(cryptoki::error::RvError::UserAlreadyLoggedIn, _)) => {
        }
        Err(e) => panic!("{e}"),
    }
    for (class, object_label) in [
        (ObjectClass::PRIVATE_KEY, "edgeward:key:device"),
        (ObjectClass::SECRET_KEY, "edgeward:seal"),
    ] {
        let found = session
            .find_objects(&[
                Attribute::Class(class),
                Attribute::Label(object_label.as_bytes().to_vec()),
            ])
            .unwrap();
        assert_eq!(found.len(), 1, "{object_label}");
        let key = found[0];
        let info = session
            .get_attribute_info(key, &[AttributeType::Value])
            .unwrap();
        assert!(
            matches!(info[0], AttributeInfo::Sensitive),
            "{object_label}: CKA_VALUE is {:?}",
            info[0]
        );
        let attrs = session
            .get_attributes(
                key,
                &[
                    AttributeType::Sensitive,
                    AttributeType::Extractable,
                    AttributeType::Token,
                    AttributeType::NeverExtractable,
                ],
            )
            .unwrap();
        for attr in attrs {
            match attr {
                Attribute::Sensitive(v) => assert!(v, "{object_label} not sensitive"),
                Attribute::Extractable(v) => assert!(!v, "{object_label} extractable"),
                Attribute::Token(v) => assert!(v, "{object_label} not a token object"),
                Attribute::NeverExtractable(v) => assert!(v, "{object_label} was extractable"),
                other => panic!("unexpected {other:?}"),
            }
        }
        // Wrapping it out under a key we know must be refused.
        let wrapper = session
            .generate_key(
                &Mechanism::AesKeyGen,
                &[
                    Attribute::Class(ObjectClass::SECRET_KEY),
                    Attribute::ValueLen(32.into()),
                    Attribute::Token(false),
                    Attribute::Wrap(true),
                    Attribute::Extractable(true),
                ],
            )
            .unwrap();
        let wrapped = session.wrap_key(&Mechanism::AesKeyWrapPad, wrapper, key);
        assert!(
            wrapped.is_err(),
            "{object_label} was wrapped out of the token"
        );
        session.destroy_object(wrapper).unwrap();
    }
}

#[test]
fn missing_pin_env_and_unknown_token_are_named() {
    softhsm_dir();
    let err = edgeward_se::open(&format!(
        "pkcs11:{MODULE}?token=x&pin-env=EDGEWARD_SE_UNSET_PIN_VAR"
    ))
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("EDGEWARD_SE_UNSET_PIN_VAR"), "{err}");
    let err = edgeward_se::open(&uri("no-such-token"))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("no-such-token"), "{err}");
}

#[test]
fn mtls_client_auth_signs_in_the_token() {
    let se: std::sync::Arc<dyn edgeward_se::SecureElement> =
        edgeward_se::open(&uri(&new_token())).unwrap().into();
    se.generate_key("tls", KeyAlgorithm::P256).unwrap();
    crate::common::tls::mtls_handshake(se, "tls");
}
