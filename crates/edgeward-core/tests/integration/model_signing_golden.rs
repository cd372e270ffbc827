//! Bundles made by every released model_signing version (upstream's own golden files, in
//! `tests/data/model-transparency`): key mode (P-384, v0.3.1–v1.1.0, the old ones with an
//! embedded key and `"keyid": null`), certificate mode (v0.2.0–v1.1.0, under upstream's
//! ten-year CA-signer test PKI) and keyless Sigstore (v0.3.1–v1.1.0, verified offline
//! against the public-good trusted root). Each is accepted with the right key, root or
//! identity, and refused with another, with the exact message.

use std::{fs, path::PathBuf};

use edgeward_core::{
    bundle::Bundle,
    cert_policy::Policy,
    keys::PublicKey,
    pem, sha256,
    sigstore::{KeylessPolicy, TrustedRoot},
    statement::StatementVersion,
    verify::{verify_bundle, Trust, Verified},
    Error,
};

const IDENTITY: &str = "stefanb@us.ibm.com";
const ISSUER: &str = "https://sigstore.verify.ibm.com/oauth2";
/// 2026-01-01: later than every golden signature.
const NOW: u64 = 1_767_225_600;

fn data(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(rel)
}

fn bundle(dir: &str) -> Bundle {
    let json = fs::read(data(&format!("model-transparency/{dir}/model.sig"))).unwrap();
    Bundle::parse(&json).unwrap_or_else(|e| panic!("{dir}: {e}"))
}

fn signing_key() -> PublicKey {
    PublicKey::from_pem(&fs::read(data("model-transparency/keys/signing-key-pub.pem")).unwrap())
        .unwrap()
}

fn upstream_root() -> Vec<Vec<u8>> {
    pem::parse_labelled(
        &fs::read(data("model-transparency/keys/ca-cert.pem")).unwrap(),
        "CERTIFICATE",
    )
    .unwrap()
}

fn trusted_root() -> TrustedRoot {
    TrustedRoot::parse(&fs::read(data("sigstore/trusted_root.json")).unwrap()).unwrap()
}

/// Every file the statement lists has the signed digest (what the artifact walk checks in
/// full in edgeward-artifact's tests).
fn assert_manifest_matches_files(dir: &str, v: &Verified) {
    for (item, digest) in &v.statement.manifest.items {
        let path = if item.path == "." {
            data(&format!(
                "model-transparency/{dir}/{}",
                v.statement.manifest.model_name
            ))
        } else {
            data(&format!("model-transparency/{dir}/{}", item.path))
        };
        assert_eq!(
            &sha256(&fs::read(&path).unwrap()),
            digest,
            "{dir}: {}",
            item.path
        );
    }
}

const KEY_DIRS: [&str; 4] = [
    "v0.3.1-elliptic-key",
    "v1.0.0-elliptic-key",
    "v1.0.1-elliptic-key",
    "v1.1.0-elliptic-key",
];
const CERT_DIRS: [&str; 5] = [
    "v0.2.0-certificate",
    "v0.3.1-certificate",
    "v1.0.0-certificate",
    "v1.0.1-certificate",
    "v1.1.0-certificate",
];
const SIGSTORE_DIRS: [&str; 4] = [
    "v0.3.1-sigstore",
    "v1.0.0-sigstore",
    "v1.0.1-sigstore",
    "v1.1.0-sigstore",
];

#[test]
fn key_mode_bundles_of_every_version_verify_with_the_p384_key_only() {
    let key = signing_key();
    assert_eq!(key.algorithm(), "ecdsa-p384-sha384");
    let other = PublicKey::P384(
        *p384::ecdsa::SigningKey::from_slice(&[7u8; 48])
            .unwrap()
            .verifying_key(),
    );
    for dir in KEY_DIRS {
        let b = bundle(dir);
        let v = verify_bundle(&b, &Trust::PublicKey(&key), NOW)
            .unwrap_or_else(|e| panic!("{dir}: {e}"));
        assert_eq!(v.policy, "key");
        assert!(!v.legacy_pae);
        assert_manifest_matches_files(dir, &v);
        let err = verify_bundle(&b, &Trust::PublicKey(&other), NOW).unwrap_err();
        let expected = if b.embedded_key.is_some() {
            format!(
                "key mismatch: the bundle was signed by the ecdsa-p384-sha384 key {}, not by the trusted ecdsa-p384-sha384 key {}",
                key.fingerprint(),
                other.fingerprint()
            )
        } else {
            format!(
                "key mismatch: the bundle was signed by key {}, not by the trusted key {}",
                key.fingerprint(),
                other.fingerprint()
            )
        };
        assert_eq!(err.to_string(), expected, "{dir}");
    }
    // The old versions carry the key and `"keyid": null`; v1.1 a hint.
    assert!(bundle("v1.0.0-elliptic-key").embedded_key.is_some());
    assert!(bundle("v1.1.0-elliptic-key").embedded_key.is_none());
}

#[test]
fn certificate_bundles_need_the_model_signing_policy_and_its_root() {
    let roots = upstream_root();
    let rogue = rcgen::CertificateParams::new(Vec::<String>::new())
        .unwrap()
        .self_signed(&rcgen::KeyPair::generate().unwrap())
        .unwrap();
    let rogue_roots = vec![rogue.der().to_vec()];
    let key = signing_key();
    for dir in CERT_DIRS {
        let b = bundle(dir);
        // Edgeward's own policy stays the default and names why it refuses.
        let err = verify_bundle(
            &b,
            &Trust::Roots {
                roots: &roots,
                crls: &[],
                policy: Policy::default(),
            },
            NOW,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "signature by key {} is not endorsed by the root: signing certificate CN=intermediate-ca is valid for 3650 days, longer than the 90-day rotation policy",
                key.fingerprint()
            ),
            "{dir}"
        );
        let v = verify_bundle(&b, &Trust::ModelSigningRoots { roots: &roots }, NOW)
            .unwrap_or_else(|e| panic!("{dir}: {e}"));
        assert_eq!(v.policy, "model-signing");
        assert_eq!(v.key, key);
        assert_eq!(
            v.certificate.as_ref().unwrap().subject,
            "CN=intermediate-ca"
        );
        assert_manifest_matches_files(dir, &v);
        let legacy = dir.starts_with("v0.2");
        assert_eq!(v.legacy_pae, legacy, "{dir}");
        assert_eq!(
            v.statement_version,
            if legacy {
                StatementVersion::V0_2
            } else {
                StatementVersion::V1
            }
        );
        let err = verify_bundle(
            &b,
            &Trust::ModelSigningRoots {
                roots: &rogue_roots,
            },
            NOW,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "signature by key {} is not endorsed by the root: no chain from CN=intermediate-ca to a trust root: issuer CN=root-ca is not a trust root and no certificate of the bundle signed it",
                key.fingerprint()
            ),
            "{dir}"
        );
    }
}

#[test]
fn a_changed_payload_is_refused_even_under_the_legacy_encoding() {
    let roots = upstream_root();
    for dir in ["v0.2.0-certificate", "v1.0.0-certificate"] {
        let mut b = bundle(dir);
        let at = b.payload.iter().position(|&c| c == b'f').unwrap();
        b.payload[at] = b'e';
        let err = verify_bundle(&b, &Trust::ModelSigningRoots { roots: &roots }, NOW).unwrap_err();
        assert!(matches!(err, Error::BadSignature(_)), "{dir}: {err}");
        assert!(err.to_string().starts_with("signature does not verify: DSSE envelope: ECDSA P-384 signature (sha384) is not by key"), "{err}");
    }
}

fn keyless<'a>(root: &'a TrustedRoot, identity: &'a str, issuer: &'a str) -> Trust<'a> {
    Trust::Sigstore(KeylessPolicy {
        root,
        identity,
        issuer,
    })
}

#[test]
fn keyless_bundles_verify_offline_for_their_identity_only() {
    let root = trusted_root();
    for dir in SIGSTORE_DIRS {
        let b = bundle(dir);
        let v = verify_bundle(&b, &keyless(&root, IDENTITY, ISSUER), NOW)
            .unwrap_or_else(|e| panic!("{dir}: {e}"));
        assert_eq!(v.policy, "sigstore");
        let k = v.keyless.as_ref().unwrap();
        assert_eq!(k.identity.names, [IDENTITY]);
        assert_eq!(k.log_url, "https://rekor.sigstore.dev");
        assert!(k.inclusion_proof_checked);
        assert_eq!(k.certificate_authority, "https://fulcio.sigstore.dev");
        assert_eq!(v.judged_at, k.integrated_time);
        assert_manifest_matches_files(dir, &v);
        let fp = v.key.fingerprint();

        let err =
            verify_bundle(&b, &keyless(&root, "mallory@example.com", ISSUER), NOW).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("signature by key {fp} is not endorsed by the root: the certificate was issued to {IDENTITY}, not to the expected identity mallory@example.com")
        );
        let err = verify_bundle(
            &b,
            &keyless(&root, IDENTITY, "https://accounts.google.com"),
            NOW,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("signature by key {fp} is not endorsed by the root: the certificate's identity was vouched for by {ISSUER}, not by the expected identity provider https://accounts.google.com")
        );
        // A keyless bundle is not taken for a certificate-mode one.
        let err = verify_bundle(
            &b,
            &Trust::ModelSigningRoots {
                roots: &upstream_root(),
            },
            NOW,
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("is a keyless Sigstore bundle"),
            "{err}"
        );
    }
}

#[test]
fn keyless_refusals_name_the_failing_piece() {
    let root = trusted_root();
    let good = bundle("v1.0.0-sigstore");
    let trust = keyless(&root, IDENTITY, ISSUER);

    // The log's signed entry timestamp over another integrated time.
    let mut b = good.clone();
    b.tlog_entries[0].integrated_time += 1;
    let err = verify_bundle(&b, &trust, NOW).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "signature does not verify: the signed entry timestamp of log entry {} is not by the log's key {}",
            good.tlog_entries[0].log_index,
            root.tlogs[0].key.fingerprint()
        )
    );

    // An inclusion-proof hash changed.
    let mut b = good.clone();
    b.tlog_entries[0].inclusion_proof.as_mut().unwrap().hashes[0][0] ^= 1;
    let err = verify_bundle(&b, &trust, NOW).unwrap_err();
    assert!(
        err.to_string().starts_with(&format!(
            "signature does not verify: the inclusion proof of log entry {} leads to root ",
            good.tlog_entries[0].log_index
        )),
        "{err}"
    );

    // A checkpoint whose signature was changed.
    let mut b = good.clone();
    let cp = &mut b.tlog_entries[0]
        .inclusion_proof
        .as_mut()
        .unwrap()
        .checkpoint;
    *cp = cp.replacen("\n\n", "\nextra\n\n", 1);
    let err = verify_bundle(&b, &trust, NOW).unwrap_err();
    assert!(
        err.to_string().contains("is not signed by the log's key"),
        "{err}"
    );

    // A trusted root without that log.
    let mut no_log = root.clone();
    no_log.tlogs.clear();
    let err = verify_bundle(&good, &keyless(&no_log, IDENTITY, ISSUER), NOW).unwrap_err();
    assert!(
        err.to_string().ends_with(&format!(
            "the log entry is from log {}, which the trusted root does not list",
            hex::encode(&good.tlog_entries[0].log_id)
        )),
        "{err}"
    );

    // A trusted root without the Fulcio CA that issued the certificate.
    let mut no_ca = root.clone();
    no_ca.certificate_authorities.retain(|ca| {
        !ca.validity
            .contains(good.tlog_entries[0].integrated_time as i64)
    });
    let err = verify_bundle(&good, &keyless(&no_ca, IDENTITY, ISSUER), NOW).unwrap_err();
    assert!(
        err.to_string().contains(
            "Fulcio certificate: no Fulcio certificate authority of the trusted root was valid at"
        ),
        "{err}"
    );

    // Another bundle's envelope under this entry: the log recorded another payload.
    let other = bundle("v1.0.1-sigstore");
    let mut b = good.clone();
    b.tlog_entries = other.tlog_entries;
    let err = verify_bundle(&b, &trust, NOW).unwrap_err();
    assert!(
        err.to_string().contains("records payload hash sha256"),
        "{err}"
    );
}
