//! Attack tests: every way of tampering with an artifact, its signature or its signer is
//! refused, each with a message that names what failed.

use std::{fs, path::Path};

use edgeward_artifact::{
    bundle_signing::{sign_path, verify_path, SignOptions},
    hashing, ArtifactError, NoProgress,
};
use edgeward_core::{
    bundle::{Bundle, Material},
    cert_policy::Policy,
    dsse::pae,
    keys::SigningKey,
    pem,
    verify::{verify_bundle, Trust},
};
use edgeward_pki::{issue, keyfile, Hierarchy};
use rcgen::KeyPair;
use time::{Duration, OffsetDateTime};

const PASS: &[u8] = b"correct horse battery";
const SHARD: u64 = 1 << 20;

struct Fixture {
    _tmp: tempfile::TempDir,
    pki: Hierarchy,
    model: std::path::PathBuf,
    firmware: std::path::PathBuf,
    now: u64,
}

fn pseudo_random(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn fixture() -> Fixture {
    fixture_of("Test")
}

fn fixture_of(org: &str) -> Fixture {
    let tmp = tempfile::tempdir().expect("tempdir");
    let now = OffsetDateTime::now_utc();
    let pki = Hierarchy::init(
        &tmp.path().join("pki"),
        org,
        PASS,
        90,
        edgeward_core::keys::KeyAlgorithm::P256,
        now,
    )
    .expect("init");
    let model = tmp.path().join("model");
    fs::create_dir_all(model.join("sub")).expect("mkdir");
    fs::write(model.join("config.json"), b"{\"layers\": 4}").expect("write");
    fs::write(
        model.join("weights.bin"),
        pseudo_random(3 * SHARD as usize + 12_345, 1),
    )
    .expect("write");
    fs::write(model.join("sub/tok.txt"), b"a\nb\nc\n").expect("write");
    let firmware = tmp.path().join("firmware.bin");
    fs::write(&firmware, pseudo_random(2 * SHARD as usize + 7, 2)).expect("write");
    Fixture {
        pki,
        model,
        firmware,
        now: now.unix_timestamp() as u64,
        _tmp: tmp,
    }
}

impl Fixture {
    fn signing_key(&self) -> SigningKey {
        SigningKey::from_pem(&fs::read(self.pki.path("signing.key")).expect("key"), None)
            .expect("parse key")
    }
    fn chain(&self) -> Vec<Vec<u8>> {
        pem::parse_labelled(
            &fs::read(self.pki.path("signing-chain.pem")).expect("chain"),
            "CERTIFICATE",
        )
        .expect("pem")
    }
    fn roots(&self) -> Vec<Vec<u8>> {
        pem::parse_labelled(
            &fs::read(self.pki.path("root.pem")).expect("root"),
            "CERTIFICATE",
        )
        .expect("pem")
    }
    fn crls(&self) -> Vec<Vec<u8>> {
        pem::parse_labelled(
            &fs::read(self.pki.path("crl.pem")).expect("crl"),
            "X509 CRL",
        )
        .expect("pem")
    }
    fn options(&self, shard: Option<u64>) -> SignOptions {
        SignOptions {
            shard_size: shard,
            ignore_paths: vec![],
            ignore_git_paths: true,
            signed_at: self.now,
        }
    }
    fn sign(&self, path: &Path) -> Bundle {
        sign_path(
            path,
            &self.signing_key(),
            Some(self.chain()),
            &self.options(Some(SHARD)),
            &NoProgress,
        )
        .expect("sign")
    }
    fn verify(&self, path: &Path, bundle: &Bundle) -> Result<(), ArtifactError> {
        let (roots, crls) = (self.roots(), self.crls());
        let trust = Trust::Roots {
            roots: &roots,
            crls: &crls,
            policy: Policy::default(),
        };
        verify_path(path, bundle, &trust, self.now, &[], &NoProgress).map(|_| ())
    }
    /// An issuer holding the real root key, to mint certificates the policy must refuse.
    fn root_issuer(&self) -> rcgen::Issuer<'static, KeyPair> {
        let der = keyfile::decrypt_pkcs8(
            &fs::read_to_string(self.pki.path("root.key")).expect("root key"),
            PASS,
        )
        .expect("decrypt");
        let key = KeyPair::try_from(der.as_slice()).expect("key pair");
        issue::issuer_from_pem(
            &fs::read_to_string(self.pki.path("root.pem")).expect("root"),
            key,
        )
        .expect("issuer")
    }
}

fn rejected(result: Result<(), ArtifactError>, needle: &str) {
    match result {
        Ok(()) => panic!("accepted, expected a rejection mentioning {needle:?}"),
        Err(e) => {
            assert!(e.is_rejection(), "{e} should be a rejection");
            assert!(
                e.to_string().contains(needle),
                "{e:?} does not mention {needle:?}"
            );
        }
    }
}

#[test]
fn signed_file_and_directory_verify() {
    let f = fixture();
    f.verify(&f.model, &f.sign(&f.model))
        .expect("model verifies");
    f.verify(&f.firmware, &f.sign(&f.firmware))
        .expect("firmware verifies");
    let files_mode = sign_path(
        &f.model,
        &f.signing_key(),
        Some(f.chain()),
        &f.options(None),
        &NoProgress,
    )
    .expect("sign");
    f.verify(&f.model, &files_mode)
        .expect("files mode verifies");
}

#[test]
fn a_flipped_byte_anywhere_in_the_artifact_is_refused() {
    let f = fixture();
    let bundle = f.sign(&f.model);
    for name in ["config.json", "weights.bin", "sub/tok.txt"] {
        let path = f.model.join(name);
        let original = fs::read(&path).expect("read");
        for pos in [
            0,
            original.len() / 2,
            original.len() - 1,
            SHARD as usize + 1,
        ] {
            if pos >= original.len() {
                continue;
            }
            let mut bytes = original.clone();
            bytes[pos] ^= 0x01;
            fs::write(&path, &bytes).expect("write");
            rejected(f.verify(&f.model, &bundle), "was modified");
        }
        fs::write(&path, &original).expect("restore");
    }
    f.verify(&f.model, &bundle)
        .expect("restored model verifies");
}

#[test]
fn truncated_extended_added_removed_and_empty_files_are_refused() {
    let f = fixture();
    let bundle = f.sign(&f.model);
    let weights = f.model.join("weights.bin");
    let original = fs::read(&weights).expect("read");

    fs::write(&weights, &original[..original.len() - 1]).expect("truncate");
    rejected(f.verify(&f.model, &bundle), "changed size");
    let mut longer = original.clone();
    longer.push(0);
    fs::write(&weights, &longer).expect("extend");
    rejected(f.verify(&f.model, &bundle), "changed size");
    fs::write(&weights, &original).expect("restore");

    fs::write(f.model.join("extra.py"), b"import os").expect("add");
    rejected(
        f.verify(&f.model, &bundle),
        "\"extra.py\" is not covered by the signature",
    );
    fs::remove_file(f.model.join("extra.py")).expect("rm");

    fs::write(f.model.join("empty.flag"), b"").expect("add empty");
    rejected(
        f.verify(&f.model, &bundle),
        "empty file \"empty.flag\" is not covered",
    );
    fs::remove_file(f.model.join("empty.flag")).expect("rm");

    fs::remove_file(f.model.join("sub/tok.txt")).expect("remove");
    rejected(
        f.verify(&f.model, &bundle),
        "\"sub/tok.txt\" is signed but missing",
    );

    // In files mode (model-signing's default) size changes show as modified digests.
    fs::write(f.model.join("sub/tok.txt"), b"a\nb\nc\n").expect("restore");
    let files_mode = sign_path(
        &f.model,
        &f.signing_key(),
        Some(f.chain()),
        &f.options(None),
        &NoProgress,
    )
    .expect("sign");
    fs::write(&weights, &original[..10]).expect("truncate");
    rejected(
        f.verify(&f.model, &files_mode),
        "\"weights.bin\" was modified",
    );
}

#[test]
fn a_bundle_for_another_artifact_is_refused() {
    let f = fixture();
    let firmware_bundle = f.sign(&f.firmware);
    rejected(
        f.verify(&f.model, &firmware_bundle),
        "covers a single file (firmware.bin), but",
    );
    let other = f.firmware.with_file_name("other.bin");
    fs::write(&other, pseudo_random(1000, 9)).expect("write");
    rejected(f.verify(&other, &firmware_bundle), "changed size");
}

#[test]
fn every_single_bit_flip_in_a_bundle_is_refused() {
    let f = fixture();
    let small = f.firmware.with_file_name("small.bin");
    fs::write(&small, b"tiny firmware").expect("write");
    let key = f.signing_key();
    let actual = hashing::manifest_of(
        &small,
        &edgeward_core::manifest::Serialization {
            method: edgeward_core::manifest::Method::Shards { shard_size: SHARD },
            allow_symlinks: false,
            ignore_paths: vec![],
        },
        &NoProgress,
    )
    .expect("manifest");
    let (roots, crls) = (f.roots(), f.crls());
    for bundle in [
        sign_path(&small, &key, None, &f.options(Some(SHARD)), &NoProgress).expect("key mode"),
        sign_path(
            &small,
            &key,
            Some(f.chain()),
            &f.options(Some(SHARD)),
            &NoProgress,
        )
        .expect("cert mode"),
    ] {
        let public = key.public_key();
        let trust = match bundle.material {
            Material::KeyHint(_) => Trust::PublicKey(&public),
            Material::Chain(_) => Trust::Roots {
                roots: &roots,
                crls: &crls,
                policy: Policy::default(),
            },
        };
        let json = bundle.to_json().into_bytes();
        let accept = |bytes: &[u8]| -> bool {
            let Ok(b) = Bundle::parse(bytes) else {
                return false;
            };
            let Ok(v) = verify_bundle(&b, &trust, f.now) else {
                return false;
            };
            v.statement.manifest.check_matches(&actual).is_ok()
        };
        assert!(accept(&json), "the untouched bundle verifies");
        for i in 0..json.len() {
            for mask in [0x01u8, 0x20, 0x80] {
                let mut bad = json.clone();
                bad[i] ^= mask;
                assert!(
                    !accept(&bad),
                    "flip {mask:#04x} at byte {i} ({:?}) was accepted in {}",
                    json[i] as char,
                    String::from_utf8_lossy(&json)
                );
            }
        }
    }
}

#[test]
fn unendorsed_keys_and_foreign_roots_are_refused() {
    let f = fixture();
    // A key with a chain to a root the verifier never trusted.
    let other = fixture_of("Mallory");
    rejected(
        f.verify(&f.firmware, &other.sign(&f.firmware)),
        "is not a trust root",
    );
    // An impostor root that copies the real root's name.
    let impostor = fixture();
    rejected(
        f.verify(&f.firmware, &impostor.sign(&f.firmware)),
        "was not signed by that key",
    );
    // A bare key (no certificate at all) checked against the root.
    let bare = sign_path(
        &f.firmware,
        &f.signing_key(),
        None,
        &f.options(Some(SHARD)),
        &NoProgress,
    )
    .expect("sign");
    rejected(f.verify(&f.firmware, &bare), "carries no certificate chain");
    // Key mode with the wrong public key.
    let wrong = other.signing_key().public_key();
    let result = verify_path(
        &f.firmware,
        &bare,
        &Trust::PublicKey(&wrong),
        f.now,
        &[],
        &NoProgress,
    );
    rejected(result.map(|_| ()), "key mismatch");
    // A certificate chain whose leaf is real but signed by another key.
    let mut forged = f.sign(&f.firmware);
    forged.signature = other
        .signing_key()
        .sign(&pae(&forged.payload_type, &forged.payload));
    rejected(f.verify(&f.firmware, &forged), "signature does not verify");
}

fn bundle_with_cert(f: &Fixture, params: rcgen::CertificateParams, signed_at: u64) -> Bundle {
    let issuer = f.root_issuer();
    let key = issue::generate_key(edgeward_core::keys::KeyAlgorithm::P256).expect("key");
    let cert = params.signed_by(&key, &issuer).expect("cert");
    let signer = SigningKey::from_pkcs8_der(&key.serialize_der()).expect("signer");
    let mut options = f.options(Some(SHARD));
    options.signed_at = signed_at;
    sign_path(
        &f.firmware,
        &signer,
        Some(vec![cert.der().to_vec(), f.roots()[0].clone()]),
        &options,
        &NoProgress,
    )
    .expect("sign")
}

#[test]
fn certificates_outside_the_policy_are_refused() {
    let f = fixture();
    let now = OffsetDateTime::from_unix_timestamp(f.now as i64).expect("now");
    let d = Duration::days;

    let expired = issue::signing_params("Test", now - d(100), now - d(10), true);
    rejected(
        f.verify(&f.firmware, &bundle_with_cert(&f, expired, f.now)),
        "certificate expired",
    );

    let not_yet = issue::signing_params("Test", now + d(10), now + d(40), true);
    rejected(
        f.verify(&f.firmware, &bundle_with_cert(&f, not_yet, f.now)),
        "certificate not valid until",
    );

    let too_long = issue::signing_params("Test", now - d(1), now + d(365), true);
    rejected(
        f.verify(&f.firmware, &bundle_with_cert(&f, too_long, f.now)),
        "longer than the 90-day rotation policy",
    );

    let no_eku = issue::signing_params("Test", now - d(1), now + d(30), false);
    rejected(
        f.verify(&f.firmware, &bundle_with_cert(&f, no_eku, f.now)),
        "lacks the code-signing extended key usage",
    );

    // Signed while valid, verified later: accepted (judged at the signed time) …
    let old = issue::signing_params("Test", now - d(100), now - d(20), true);
    let at_signing = (now - d(50)).unix_timestamp() as u64;
    f.verify(&f.firmware, &bundle_with_cert(&f, old, at_signing))
        .expect("judged at signing time");
    // … but a signing time in the future is not believed.
    let valid = issue::signing_params("Test", now - d(1), now + d(30), true);
    let future = f.now + 3600;
    rejected(
        f.verify(&f.firmware, &bundle_with_cert(&f, valid, future)),
        "later than the verifier's time",
    );
}

#[test]
fn a_revoked_signing_certificate_is_refused() {
    let f = fixture();
    let bundle = f.sign(&f.firmware);
    f.verify(&f.firmware, &bundle)
        .expect("verifies before revocation");
    let serial = edgeward_core::cert_policy::cert_info(&f.chain()[0])
        .expect("info")
        .serial;
    f.pki
        .revoke(
            &edgeward_pki::RootKey {
                path: None,
                passphrase: PASS,
            },
            &serial,
            OffsetDateTime::now_utc(),
        )
        .expect("revoke");
    rejected(f.verify(&f.firmware, &bundle), "is revoked by the CRL");
    // A CRL from an impostor root with the same name is refused.
    let impostor = fixture();
    let (roots, crls) = (f.roots(), impostor.crls());
    let trust = Trust::Roots {
        roots: &roots,
        crls: &crls,
        policy: Policy::default(),
    };
    let err = verify_path(&f.firmware, &bundle, &trust, f.now, &[], &NoProgress)
        .expect_err("impostor CRL");
    assert!(
        err.to_string().contains("not signed by the root's key"),
        "{err}"
    );
    // A CRL from a different root is an operator error, not silently ignored.
    let other = fixture_of("Other");
    let (roots, crls) = (f.roots(), other.crls());
    let trust = Trust::Roots {
        roots: &roots,
        crls: &crls,
        policy: Policy::default(),
    };
    let err = verify_path(&f.firmware, &bundle, &trust, f.now, &[], &NoProgress)
        .expect_err("foreign CRL");
    assert!(
        !err.is_rejection() && err.to_string().contains("not the trust root"),
        "{err}"
    );
}

fn resign_with(f: &Fixture, bundle: &Bundle, edit: impl Fn(&mut serde_json::Value)) -> Bundle {
    let mut statement: serde_json::Value = serde_json::from_slice(&bundle.payload).expect("json");
    edit(&mut statement);
    let payload = serde_json::to_vec(&statement).expect("json");
    let mut b = bundle.clone();
    b.signature = f.signing_key().sign(&pae(&b.payload_type, &payload));
    b.payload = payload;
    b
}

#[test]
fn swapped_digest_algorithms_are_refused_even_when_signed() {
    let f = fixture();
    let bundle = f.sign(&f.firmware);
    let b = resign_with(&f, &bundle, |s| {
        s["predicate"]["serialization"]["hash_type"] = "blake2".into()
    });
    rejected(f.verify(&f.firmware, &b), "unsupported hash type");
    let b = resign_with(&f, &bundle, |s| {
        s["predicate"]["resources"][0]["algorithm"] = "sha256".into()
    });
    rejected(
        f.verify(&f.firmware, &b),
        "unsupported resource digest algorithm",
    );
    let b = resign_with(&f, &bundle, |s| {
        s["predicateType"] = "https://model_signing/Digests/v9".into()
    });
    rejected(f.verify(&f.firmware, &b), "unsupported predicate type");
    // Relabelled as model_signing v0.2's predicate, the statement is read in that layout
    // (files as subjects, always a directory), which cannot describe this single file.
    let b = resign_with(&f, &bundle, |s| {
        s["predicateType"] = "https://model_signing/Digests/v0.1".into()
    });
    rejected(f.verify(&f.firmware, &b), "covers a directory");
    let b = resign_with(&f, &bundle, |s| {
        s["predicate"]["resources"][0]["digest"] = "00".repeat(32).into()
    });
    rejected(f.verify(&f.firmware, &b), "subject digest does not match");
}

#[test]
fn malformed_json_base64_and_der_are_refused() {
    let f = fixture();
    let bundle = f.sign(&f.firmware);
    let json = bundle.to_json();
    let parse = |s: &str| {
        Bundle::parse(s.as_bytes())
            .map(|_| ())
            .map_err(ArtifactError::from)
    };
    rejected(parse(&json[..json.len() / 2]), "malformed bundle JSON");
    rejected(parse("[]"), "malformed bundle JSON");
    rejected(
        parse(&json.replacen("\"payload\":\"", "\"payload\":\"!", 1)),
        "bad base64",
    );
    rejected(
        parse(&json.replacen("\"sig\":\"", "\"sig\":\"%%", 1)),
        "bad base64",
    );
    rejected(
        parse(&json.replacen("\"mediaType\":\"", "\"extra\":1,\"mediaType\":\"", 1)),
        "unknown field",
    );

    let mut garbage_cert = bundle.clone();
    garbage_cert.material = Material::Chain(vec![b"\x30\x03\x02\x01\x01".to_vec()]);
    rejected(
        f.verify(&f.firmware, &garbage_cert),
        "malformed certificate DER",
    );

    let mut garbage_sig = bundle.clone();
    garbage_sig.signature = b"\x30\x06\x02\x01\x01\x02\x01".to_vec();
    rejected(
        f.verify(&f.firmware, &garbage_sig),
        "malformed ECDSA signature DER",
    );

    let mut not_json = bundle;
    not_json.payload = b"{\"_type\": ".to_vec();
    not_json.signature = f
        .signing_key()
        .sign(&pae(&not_json.payload_type, &not_json.payload));
    rejected(f.verify(&f.firmware, &not_json), "malformed statement JSON");

    for (bad_pem, says) in [
        (
            &b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"[..],
            "malformed public key DER",
        ),
        (b"not pem", "malformed PEM: no PEM block found"),
        (
            b"-----BEGIN PUBLIC KEY-----\n",
            "malformed PEM: no END line for PUBLIC KEY",
        ),
    ] {
        let e = edgeward_core::keys::PublicKey::from_pem(bad_pem).expect_err("refused");
        assert!(
            matches!(e, edgeward_core::Error::Malformed { .. }) && e.to_string().starts_with(says),
            "{says}: {e:?}"
        );
    }
    // An empty PKCS#8 structure parses as no key type Edgeward signs with.
    let e = SigningKey::from_pem(
        b"-----BEGIN PRIVATE KEY-----\nMAA=\n-----END PRIVATE KEY-----\n",
        None,
    )
    .expect_err("refused");
    assert!(
        matches!(&e, edgeward_core::Error::Unsupported { what, .. } if *what == "private key"),
        "{e:?}"
    );
}
