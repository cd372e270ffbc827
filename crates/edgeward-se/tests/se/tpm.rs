//! The conformance suite on the TPM backend against a real swtpm (one simulator per test on
//! free loopback ports), plus TPM-only properties: keys cannot leave the TPM, PCR extend.

use std::path::{Path, PathBuf};

use crate::common::Fixture;
use crate::swtpm::Swtpm;
use edgeward_se::{tpm::TpmElement, KeyAlgorithm, SeError, SecureElement};
use sha2::{Digest as _, Sha256};

fn tpm() -> Fixture {
    let swtpm = Swtpm::start();
    let dir = tempfile::tempdir().unwrap();
    let uri = format!("tpm:{}?state={}", swtpm.tcti(), dir.path().display());
    Fixture {
        se: edgeward_se::open(&uri).unwrap(),
        ed25519: false,
        guards: vec![Box::new(dir), Box::new(swtpm)],
    }
}

conformance_suite!(tpm);

fn element(swtpm: &Swtpm, dir: &Path) -> TpmElement {
    TpmElement::open(&swtpm.tcti(), dir).unwrap()
}

#[test]
fn ed25519_is_unsupported() {
    let f = tpm();
    assert!(matches!(
        f.se.generate_key("ed", KeyAlgorithm::Ed25519),
        Err(SeError::Unsupported { .. })
    ));
}

#[test]
fn private_keys_cannot_leave_the_tpm() {
    use std::os::unix::fs::PermissionsExt;
    use tss_esapi::{
        constants::SessionType,
        handles::ObjectHandle,
        interface_types::{algorithm::HashingAlgorithm, session_handles::AuthSession},
        structures::{SymmetricDefinition, SymmetricDefinitionObject},
    };
    let swtpm = Swtpm::start();
    let parent = tempfile::tempdir().unwrap();
    let state = parent.path().join("se");
    let se = element(&swtpm, &state);
    se.generate_key("device", KeyAlgorithm::P256).unwrap();

    let attributes = se
        .with_loaded_key("device", |ctx, handle| {
            let (public, _, _) = ctx.read_public(handle).unwrap();
            public.object_attributes()
        })
        .unwrap();
    assert!(attributes.fixed_tpm(), "fixedTPM");
    assert!(attributes.fixed_parent(), "fixedParent");
    assert!(
        attributes.sensitive_data_origin(),
        "generated inside the TPM"
    );
    assert!(!attributes.encrypted_duplication());
    assert!(!attributes.admin_with_policy());

    // TPM2_Duplicate is refused, with a password session and with a policy session
    // satisfying PolicyCommandCode(TPM2_Duplicate).
    let refused = se
        .with_loaded_key("device", |ctx, handle| {
            let with_password = ctx.execute_with_session(Some(AuthSession::Password), |ctx| {
                ctx.duplicate(
                    ObjectHandle::from(handle),
                    ObjectHandle::Null,
                    None,
                    SymmetricDefinitionObject::Null,
                )
            });
            let session = ctx
                .start_auth_session(
                    None,
                    None,
                    None,
                    SessionType::Policy,
                    SymmetricDefinition::Null,
                    HashingAlgorithm::Sha256,
                )
                .unwrap()
                .unwrap();
            ctx.policy_command_code(
                session.try_into().unwrap(),
                tss_esapi::constants::CommandCode::Duplicate,
            )
            .unwrap();
            let with_policy = ctx.execute_with_session(Some(session), |ctx| {
                ctx.duplicate(
                    ObjectHandle::from(handle),
                    ObjectHandle::Null,
                    None,
                    SymmetricDefinitionObject::Null,
                )
            });
            ctx.flush_context(tss_esapi::handles::SessionHandle::from(session).into())
                .unwrap();
            (with_password.is_err(), with_policy.is_err())
        })
        .unwrap();
    assert_eq!(refused, (true, true), "TPM2_Duplicate must be refused");

    // On disk: only the TPM-wrapped private (TPM2B_PRIVATE: integrity HMAC + encrypted
    // sensitive area), 0600 — and it does not load on another TPM.
    let keys = state.join("keys");
    let mode = |p: PathBuf| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(state), 0o700);
    assert_eq!(mode(keys.clone()), 0o700);
    assert_eq!(mode(keys.join("device.priv")), 0o600);
    assert_eq!(mode(keys.join("device.pub")), 0o600);
    let other_swtpm = Swtpm::start();
    let other_dir = tempfile::tempdir().unwrap();
    let other = element(&other_swtpm, other_dir.path());
    other.generate_key("mine", KeyAlgorithm::P256).unwrap();
    for suffix in ["pub", "priv"] {
        std::fs::copy(
            keys.join(format!("device.{suffix}")),
            other_dir.path().join(format!("keys/stolen.{suffix}")),
        )
        .unwrap();
    }
    let err = other.sign("stolen", b"m").unwrap_err();
    assert!(matches!(err, SeError::Backend { .. }), "{err}");
    assert!(err.to_string().contains("TPM2_Load"), "{err}");
}

#[test]
fn pcr_extend_matches_sha256_of_old_and_digest() {
    let f = tpm();
    let before = f.se.read_pcr(16).unwrap();
    let digest: [u8; 32] = Sha256::digest(b"stage one").into();
    let after = f.se.extend_pcr(16, &digest).unwrap();
    let mut h = Sha256::new();
    h.update(before);
    h.update(digest);
    assert_eq!(after, <[u8; 32]>::from(h.finalize()));
    assert_eq!(f.se.read_pcr(16).unwrap(), after);
    assert!(matches!(
        f.se.extend_pcr(24, &digest),
        Err(SeError::InvalidArgument(_))
    ));
}

#[test]
fn state_survives_reopening() {
    let swtpm = Swtpm::start();
    let dir = tempfile::tempdir().unwrap();
    let a = element(&swtpm, dir.path());
    let public = a.generate_key("device", KeyAlgorithm::P256).unwrap();
    a.increment_counter("boot").unwrap();
    a.raise_time_floor(1_800_000_000).unwrap();
    let blob = a.seal(b"s").unwrap();
    drop(a);
    let b = element(&swtpm, dir.path());
    assert_eq!(b.public_key("device").unwrap(), public);
    assert_eq!(b.counter("boot").unwrap(), 1);
    assert_eq!(b.time_floor().unwrap(), 1_800_000_000);
    assert_eq!(b.unseal(&blob).unwrap().as_slice(), b"s");
}

#[test]
fn counter_start_is_kept_on_the_tpm_not_on_disk() {
    let swtpm = Swtpm::start();
    let dir = tempfile::tempdir().unwrap();
    let se = element(&swtpm, dir.path());
    // Raise the TPM's highest-ever counter value with one counter, then create another:
    // it must still start at 0, and a fresh state directory changes nothing.
    for _ in 0..3 {
        se.increment_counter("first").unwrap();
    }
    assert_eq!(se.increment_counter("second").unwrap(), 1);
    drop(se);
    let fresh = tempfile::tempdir().unwrap();
    let se = element(&swtpm, fresh.path());
    assert_eq!(se.counter("first").unwrap(), 3);
    assert_eq!(se.counter("second").unwrap(), 1);
}

#[test]
fn mtls_client_auth_signs_in_the_tpm() {
    let swtpm = Swtpm::start();
    let dir = tempfile::tempdir().unwrap();
    let se: std::sync::Arc<dyn SecureElement> = std::sync::Arc::new(element(&swtpm, dir.path()));
    se.generate_key("tls", KeyAlgorithm::P256).unwrap();
    crate::common::tls::mtls_handshake(se, "tls");
}

/// The NV index pair a counter name hashes to first (mirrors `tpm::nv`: top 18 bits of
/// SHA-256("edgeward-se/tpm/counter\0" ‖ name ‖ probe)).
fn first_pair(name: &str) -> u32 {
    let mut h = Sha256::new();
    h.update(b"edgeward-se/tpm/counter\0");
    h.update(name.as_bytes());
    h.update([0u8]);
    let d = h.finalize();
    u32::from_be_bytes([d[0], d[1], d[2], d[3]]) >> 14
}

#[test]
fn counters_whose_names_collide_stay_independent() {
    let mut seen = std::collections::HashMap::new();
    let (a, b) = (0..)
        .map(|i| format!("c{i}"))
        .find_map(|name| {
            let k = first_pair(&name);
            seen.insert(k, name.clone()).map(|other| (other, name))
        })
        .unwrap();
    let swtpm = Swtpm::start();
    let dir = tempfile::tempdir().unwrap();
    let se = element(&swtpm, dir.path());
    assert_eq!(se.increment_counter(&a).unwrap(), 1);
    assert_eq!(
        se.counter(&b).unwrap(),
        0,
        "{b} must not read {a}'s counter"
    );
    assert_eq!(se.increment_counter(&b).unwrap(), 1);
    assert_eq!(se.increment_counter(&b).unwrap(), 2);
    assert_eq!(se.counter(&a).unwrap(), 1);
    assert_eq!(se.counter(&b).unwrap(), 2);
}
