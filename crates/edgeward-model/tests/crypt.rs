//! The encrypted-model container end to end, with real `soft` secure elements as devices:
//! several recipients, a copied model refused by name, every tampering refused with its
//! own error, rewrap touching only the header, and HPKE interop with the `hpke` crate in
//! both directions.

use edgeward_core::keys::PublicKey;
use edgeward_model::crypt::{
    self,
    container::{
        Header, FIXED_LEN, MIN_CHUNK_SIZE, RECIPIENT_LEN, TAG_LEN, VERSION, VERSION_SPKI_IDS,
    },
    envelope::{recipient_id, WRAP_INFO},
    hpke as ew_hpke, CryptError, EncryptOptions, RecipientKey,
};
use edgeward_se::{KeyAlgorithm, SecureElement};

struct Device {
    _dir: tempfile::TempDir,
    se: Box<dyn SecureElement>,
    key: PublicKey,
}

fn device() -> Device {
    let dir = tempfile::tempdir().unwrap();
    let se = edgeward_se::open(&format!("soft:{}", dir.path().display())).unwrap();
    let key = se.generate_key("device", KeyAlgorithm::P256).unwrap();
    Device { _dir: dir, se, key }
}

fn recipient(d: &Device) -> RecipientKey {
    RecipientKey::new(&d.key).unwrap()
}

fn model(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

const CHUNK: u32 = MIN_CHUNK_SIZE;
const STRIDE: usize = CHUNK as usize + TAG_LEN;

fn encrypt_for(plain: &[u8], devices: &[&Device]) -> Vec<u8> {
    let rs: Vec<RecipientKey> = devices.iter().map(|d| recipient(d)).collect();
    crypt::encrypt(
        plain,
        &rs,
        EncryptOptions {
            chunk_size: CHUNK,
            ..EncryptOptions::default()
        },
    )
    .unwrap()
}

fn header_len(container: &[u8]) -> usize {
    Header::parse(container).unwrap().1
}

#[test]
fn every_recipient_decrypts_and_a_copy_on_another_device_fails_by_name() {
    let (a, b, other) = (device(), device(), device());
    let plain = model(50_000);
    let c = encrypt_for(&plain, &[&a, &b]);
    assert_eq!(
        &crypt::decrypt(&c, &*a.se, "device").unwrap()[..],
        &plain[..]
    );
    assert_eq!(
        &crypt::decrypt(&c, &*b.se, "device").unwrap()[..],
        &plain[..]
    );
    let err = crypt::decrypt(&c, &*other.se, "device").unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, CryptError::NotARecipient { .. }), "{msg}");
    assert!(msg.contains(&other.key.fingerprint()), "{msg}");
    assert!(msg.contains(&a.key.fingerprint()) && msg.contains(&b.key.fingerprint()));
    // A missing slot is an element error, not a rejection.
    assert!(matches!(
        crypt::decrypt(&c, &*a.se, "nope"),
        Err(CryptError::Element(_))
    ));
}

#[test]
fn empty_and_exact_multiple_models_roundtrip() {
    let a = device();
    for len in [0, 1, CHUNK as usize, 3 * CHUNK as usize] {
        let plain = model(len);
        let c = encrypt_for(&plain, &[&a]);
        assert_eq!(
            &crypt::decrypt(&c, &*a.se, "device").unwrap()[..],
            &plain[..]
        );
    }
}

#[test]
fn header_bit_flips_are_refused_before_any_payload_is_touched() {
    let (a, b) = (device(), device());
    let c = encrypt_for(&model(20_000), &[&a, &b]);
    let hl = header_len(&c);
    // Fixed part (chunk size, length, salt), b's entry, the MAC: the header MAC fails.
    for byte in [17, 22, 30, FIXED_LEN + 2 + RECIPIENT_LEN + 40, hl - 1] {
        let mut bad = c.clone();
        bad[byte] ^= 0x01;
        let err = crypt::decrypt(&bad, &*a.se, "device").unwrap_err();
        assert!(
            matches!(
                err,
                CryptError::HeaderTampered | CryptError::MalformedHeader(_)
            ),
            "byte {byte}: {err}"
        );
    }
    let mut bad = c.clone();
    bad[20 + 7] ^= 0x01; // low bit of the plaintext length
    assert!(matches!(
        crypt::decrypt(&bad, &*a.se, "device"),
        Err(CryptError::HeaderTampered)
    ));
    // a's own wrapped key: the element cannot open it.
    let mut bad = c.clone();
    bad[FIXED_LEN + 2 + 1 + 32 + 65 + 3] ^= 0x80;
    assert!(matches!(
        crypt::decrypt(&bad, &*a.se, "device"),
        Err(CryptError::UnwrapFailed(_))
    ));
    // a's recipient id: a is no longer listed.
    let mut bad = c.clone();
    bad[FIXED_LEN + 2 + 1] ^= 0x01;
    assert!(matches!(
        crypt::decrypt(&bad, &*a.se, "device"),
        Err(CryptError::NotARecipient { .. })
    ));
    // The magic and version.
    let mut bad = c.clone();
    bad[0] ^= 0x01;
    assert!(matches!(
        crypt::decrypt(&bad, &*a.se, "device"),
        Err(CryptError::NotAContainer)
    ));
    let mut bad = c;
    bad[8] = 3;
    assert!(matches!(
        crypt::decrypt(&bad, &*a.se, "device"),
        Err(CryptError::Unsupported(_))
    ));
}

#[test]
fn payload_attacks_each_get_their_own_error() {
    let a = device();
    let c = encrypt_for(&model(6 * CHUNK as usize + 123), &[&a]);
    let hl = header_len(&c);
    let (head, payload) = c.split_at(hl);
    let chunk = |i: usize| payload[i * STRIDE..(i + 1) * STRIDE].to_vec();
    let with = |p: Vec<u8>| [head.to_vec(), p].concat();
    let dec = |bytes: &[u8]| crypt::decrypt(bytes, &*a.se, "device").unwrap_err();

    let e = dec(&c[..c.len() - 10]);
    assert!(matches!(e, CryptError::Truncated { .. }), "{e}");
    let e = dec(&c[..hl + 3 * STRIDE]);
    assert!(matches!(e, CryptError::Truncated { .. }), "{e}");

    let mut swapped = payload.to_vec();
    swapped[2 * STRIDE..3 * STRIDE].copy_from_slice(&chunk(4));
    swapped[4 * STRIDE..5 * STRIDE].copy_from_slice(&chunk(2));
    let e = dec(&with(swapped));
    assert!(
        matches!(
            e,
            CryptError::ChunkReordered {
                position: 2,
                belongs_at: 4
            }
        ),
        "{e}"
    );

    let dropped = [&payload[..STRIDE], &payload[2 * STRIDE..]].concat();
    let e = dec(&with(dropped));
    assert!(
        matches!(e, CryptError::ChunkDropped { index: 1, found: 2 }),
        "{e}"
    );

    let duplicated = [&payload[..3 * STRIDE], &chunk(2), &payload[3 * STRIDE..]].concat();
    let e = dec(&with(duplicated));
    assert!(
        matches!(
            e,
            CryptError::ChunkDuplicated {
                position: 3,
                copy_of: 2
            }
        ),
        "{e}"
    );

    let mut flipped = payload.to_vec();
    flipped[5 * STRIDE + 100] ^= 1;
    let e = dec(&with(flipped));
    assert!(matches!(e, CryptError::ChunkCorrupted { index: 5 }), "{e}");

    let e = dec(&[c.as_slice(), b"x"].concat());
    assert!(matches!(e, CryptError::TrailingData { extra: 1 }), "{e}");

    // A payload moved under another container's header (same device, other file key).
    let other = encrypt_for(&model(6 * CHUNK as usize + 123), &[&a]);
    let e = dec(&[&other[..hl], payload].concat());
    assert!(matches!(e, CryptError::ChunkCorrupted { index: 0 }), "{e}");
}

#[test]
fn rewrap_adds_and_removes_recipients_without_touching_the_payload() {
    let (a, b, c_dev) = (device(), device(), device());
    let plain = model(30_000);
    let c = encrypt_for(&plain, &[&a, &b]);
    let old_hl = header_len(&c);

    let r = crypt::rewrap(
        &c,
        &*a.se,
        "device",
        &[recipient(&c_dev)],
        &[b.key.fingerprint()],
    )
    .unwrap();
    assert_eq!(r.old_header_len, old_hl);
    assert_eq!(r.added, vec![c_dev.key.fingerprint()]);
    assert_eq!(r.removed, vec![b.key.fingerprint()]);
    let new = [r.header.as_slice(), &c[old_hl..]].concat();
    assert_eq!(&new[header_len(&new)..], &c[old_hl..], "payload unchanged");
    assert_eq!(
        &crypt::decrypt(&new, &*a.se, "device").unwrap()[..],
        &plain[..]
    );
    assert_eq!(
        &crypt::decrypt(&new, &*c_dev.se, "device").unwrap()[..],
        &plain[..]
    );
    assert!(matches!(
        crypt::decrypt(&new, &*b.se, "device"),
        Err(CryptError::NotARecipient { .. })
    ));

    // Only a recipient can rewrap; the last recipient cannot be removed; no duplicates.
    assert!(matches!(
        crypt::rewrap(&new, &*b.se, "device", &[recipient(&b)], &[]),
        Err(CryptError::NotARecipient { .. })
    ));
    let only_a = crypt::rewrap(&new, &*a.se, "device", &[], &[c_dev.key.fingerprint()])
        .unwrap()
        .header;
    let only_a = [only_a.as_slice(), &c[old_hl..]].concat();
    assert!(matches!(
        crypt::rewrap(&only_a, &*a.se, "device", &[], &[a.key.fingerprint()]),
        Err(CryptError::InvalidArgument(_))
    ));
    assert!(matches!(
        crypt::rewrap(&only_a, &*a.se, "device", &[recipient(&a)], &[]),
        Err(CryptError::InvalidArgument(_))
    ));
    assert!(matches!(
        crypt::rewrap(&only_a, &*a.se, "device", &[], &["zz".into()]),
        Err(CryptError::InvalidArgument(_))
    ));
}

#[test]
fn recipients_from_device_certificates_and_non_p256_keys_refused() {
    let a = device();
    // A device certificate over the element's key, issued by a throwaway CA.
    let ca_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut ca_params = rcgen::CertificateParams::new(vec![]).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let spki = rcgen::SubjectPublicKeyInfo::from_der(&a.key.to_spki_der()).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["device-1.example".into()])
        .unwrap()
        .signed_by(&spki, &issuer)
        .unwrap();
    let from_cert = PublicKey::from_pem(cert.pem().as_bytes()).unwrap();
    assert_eq!(
        recipient_id(&from_cert, VERSION),
        recipient_id(&a.key, VERSION)
    );
    let c = crypt::encrypt(
        b"weights",
        &[RecipientKey::new(&from_cert).unwrap()],
        EncryptOptions::default(),
    )
    .unwrap();
    assert_eq!(
        &crypt::decrypt(&c, &*a.se, "device").unwrap()[..],
        b"weights"
    );

    let ed = edgeward_core::keys::SigningKey::from_pkcs8_der(
        &rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519)
            .unwrap()
            .serialize_der(),
    )
    .unwrap();
    assert!(matches!(
        RecipientKey::new(&ed.public_key()),
        Err(CryptError::BadRecipient(_))
    ));
}

/// The `hpke` crate (RustCrypto-based, independent of this code) encapsulates to the
/// element's key; the element-based decapsulation opens it.
#[test]
fn hpke_crate_seals_and_the_element_opens() {
    use hpke::{
        aead::AesGcm256, kdf::HkdfSha256, kem::DhP256HkdfSha256, Deserializable, Kem, OpModeS,
        Serializable,
    };
    let a = device();
    let PublicKey::P256(vk) = &a.key else {
        panic!("P-256")
    };
    let pk_r_bytes = vk.to_encoded_point(false).as_bytes().to_vec();
    let pk_r = <DhP256HkdfSha256 as Kem>::PublicKey::from_bytes(&pk_r_bytes).unwrap();
    let mut rng = rand_core::OsRng;
    let (enc, ct) = hpke::single_shot_seal::<AesGcm256, HkdfSha256, DhP256HkdfSha256, _>(
        &OpModeS::Base,
        &pk_r,
        b"info string",
        b"file key bytes",
        b"aad",
        &mut rng,
    )
    .unwrap();
    let enc: [u8; 65] = enc.to_bytes().as_slice().try_into().unwrap();
    let pk: [u8; 65] = pk_r_bytes.as_slice().try_into().unwrap();
    let opened = ew_hpke::open(
        &enc,
        &pk,
        |peer| Ok(a.se.ecdh("device", peer)?),
        b"info string",
        b"aad",
        &ct,
    )
    .unwrap();
    assert_eq!(&opened[..], b"file key bytes");
}

/// This code seals (as `edgeward model encrypt` does, with the container's `info`); the
/// `hpke` crate opens with the private key.
#[test]
fn this_code_seals_and_the_hpke_crate_opens() {
    use hpke::{
        aead::AesGcm256, kdf::HkdfSha256, kem::DhP256HkdfSha256, Deserializable, Kem, OpModeR,
    };
    let sk = p256::SecretKey::random(&mut rand_core::OsRng);
    let (enc, ct) = ew_hpke::seal(&sk.public_key(), WRAP_INFO, b"id", &[42u8; 32]).unwrap();
    let sk_r = <DhP256HkdfSha256 as Kem>::PrivateKey::from_bytes(&sk.to_bytes()).unwrap();
    let enc = <DhP256HkdfSha256 as Kem>::EncappedKey::from_bytes(&enc).unwrap();
    let pt = hpke::single_shot_open::<AesGcm256, HkdfSha256, DhP256HkdfSha256>(
        &OpModeR::Base,
        &sk_r,
        &enc,
        WRAP_INFO,
        &ct,
        b"id",
    )
    .unwrap();
    assert_eq!(pt, vec![42u8; 32]);
}

#[test]
fn streaming_a_file_in_windows_writes_only_authenticated_chunks() {
    let a = device();
    // More than two windows of plaintext.
    let plain = model(2 * crypt::stream::WINDOW + 3 * CHUNK as usize + 77);
    let c = encrypt_for(&plain, &[&a]);
    let hl = header_len(&c);
    let dir = tempfile::tempdir().unwrap();
    let run = |bytes: &[u8]| {
        let path = dir.path().join("c.ewm");
        std::fs::write(&path, bytes).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        let mut out = Vec::new();
        let result = crypt::decrypt_file_to(&file, &*a.se, "device", &mut out);
        (result, out)
    };
    let (n, out) = run(&c);
    assert_eq!(n.unwrap(), plain.len() as u64);
    assert!(out == plain, "streamed plaintext differs");

    // Length errors are found before anything is written.
    let (e, out) = run(&c[..c.len() - STRIDE]);
    assert!(matches!(e, Err(CryptError::Truncated { .. })), "{e:?}");
    assert!(out.is_empty());
    let (e, out) = run(&[c.as_slice(), b"xy"].concat());
    assert!(
        matches!(e, Err(CryptError::TrailingData { extra: 2 })),
        "{e:?}"
    );
    assert!(out.is_empty());

    // A chunk modified in the second window: the first window (authenticated) was written,
    // nothing of the second.
    let window_chunks = crypt::stream::WINDOW / CHUNK as usize;
    let index = window_chunks + 5;
    let mut flipped = c.clone();
    flipped[hl + index * STRIDE + 9] ^= 1;
    let (e, out) = run(&flipped);
    assert!(
        matches!(e, Err(CryptError::ChunkCorrupted { index: i }) if i == index as u64),
        "{e:?}"
    );
    assert!(
        out == plain[..crypt::stream::WINDOW],
        "only the first window"
    );

    // Reordered chunks are diagnosed from the file, by position.
    let mut swapped = c.clone();
    let (x, y) = (hl + 3 * STRIDE, hl + 7 * STRIDE);
    let chunk_x = c[x..x + STRIDE].to_vec();
    swapped.copy_within(y..y + STRIDE, x);
    swapped[y..y + STRIDE].copy_from_slice(&chunk_x);
    let (e, out) = run(&swapped);
    assert!(
        matches!(
            e,
            Err(CryptError::ChunkReordered {
                position: 3,
                belongs_at: 7
            })
        ),
        "{e:?}"
    );
    assert!(out.is_empty());

    // An empty model streams to nothing, and its single chunk is still authenticated.
    let empty = encrypt_for(&[], &[&a]);
    let (n, out) = run(&empty);
    assert_eq!((n.unwrap(), out.len()), (0, 0));
    let mut bad = empty;
    let last = bad.len() - 1;
    bad[last] ^= 1;
    assert!(matches!(
        run(&bad).0,
        Err(CryptError::ChunkCorrupted { index: 0 })
    ));
}

/// One key id everywhere: a version 2 container lists its recipients by the id every other
/// message shows, and version 1 files (SPKI ids) still open and rewrap as version 1.
#[test]
fn recipients_carry_the_key_id_and_version_1_still_opens() {
    let (a, b) = (device(), device());
    let c = encrypt_for(b"weights", &[&a]);
    let (header, _) = Header::parse(&c).unwrap();
    assert_eq!(header.fixed.version, VERSION);
    assert_eq!(header.recipients[0].fingerprint(), a.key.fingerprint());
    assert_eq!(&a.key.hint()[..16], a.key.fingerprint());

    let v1 = crypt::encrypt(
        b"weights",
        &[recipient(&a)],
        EncryptOptions {
            version: VERSION_SPKI_IDS,
            ..EncryptOptions::default()
        },
    )
    .unwrap();
    let (header, _) = Header::parse(&v1).unwrap();
    assert_eq!(header.fixed.version, VERSION_SPKI_IDS);
    assert_eq!(
        header.recipients[0].id,
        recipient_id(&a.key, VERSION_SPKI_IDS)
    );
    assert_ne!(header.recipients[0].fingerprint(), a.key.fingerprint());
    assert_eq!(
        &crypt::decrypt(&v1, &*a.se, "device").unwrap()[..],
        b"weights"
    );
    let re = crypt::rewrap(&v1, &*a.se, "device", &[recipient(&b)], &[]).unwrap();
    let (header, _) = Header::parse(&re.header).unwrap();
    assert_eq!(header.fixed.version, VERSION_SPKI_IDS);
    assert_eq!(
        re.added,
        vec![hex::encode(&recipient_id(&b.key, VERSION_SPKI_IDS)[..8])]
    );
    let mut rewrapped = re.header.clone();
    rewrapped.extend_from_slice(&v1[re.old_header_len..]);
    assert_eq!(
        &crypt::decrypt(&rewrapped, &*b.se, "device").unwrap()[..],
        b"weights"
    );
    assert!(matches!(
        crypt::encrypt(b"w", &[recipient(&a)], EncryptOptions { version: 3, ..EncryptOptions::default() }),
        Err(CryptError::InvalidArgument(m)) if m.contains("format version 3")
    ));
}
