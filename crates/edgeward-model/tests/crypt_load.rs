//! Verified secure loading of a safetensors model: signed (root, chain, CRL) and encrypted
//! for a device, loaded through one call, identical to the plaintext; a bad signature stops
//! the load before the element is asked to decrypt; other devices and swapped models fail.

mod crypt_common;

use crypt_common::{device, pki};
use edgeward_model::{
    crypt::{self, CryptError, EncryptOptions, RecipientKey},
    secure_load::{open_verified, open_verified_bytes, open_with_key, release_key, LoadError},
};

fn safetensors_model(seed: f32) -> Vec<u8> {
    let w: Vec<u8> = (0..64 * 32)
        .flat_map(|i| (i as f32 * 0.001 + seed).to_le_bytes())
        .collect();
    let b: Vec<u8> = (0..32)
        .flat_map(|i| (i as f32 - seed).to_le_bytes())
        .collect();
    let tensors = [
        (
            "layer.weight",
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![64, 32], &w)
                .unwrap(),
        ),
        (
            "layer.bias",
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![32], &b).unwrap(),
        ),
    ];
    safetensors::serialize(tensors, None).unwrap()
}

#[test]
fn signed_encrypted_safetensors_loads_identically_and_only_on_its_device() {
    let pki = pki();
    let (dev, other) = (device(), device());
    let dir = tempfile::tempdir().unwrap();
    let plain_path = dir.path().join("model.safetensors");
    let plain = safetensors_model(0.5);
    std::fs::write(&plain_path, &plain).unwrap();
    let bundle = pki.sign(&plain_path);
    let container = crypt::encrypt(
        &plain,
        &[RecipientKey::new(&dev.key).unwrap()],
        EncryptOptions::default(),
    )
    .unwrap();
    let enc_path = dir.path().join("model.ewm");
    std::fs::write(&enc_path, &container).unwrap();

    let model =
        open_verified(&enc_path, &bundle, &pki.trust(), pki.now, &dev.se, "device").unwrap();
    assert_eq!(model.bytes(), &plain[..]);
    let loaded = model.safetensors().unwrap();
    let reference = safetensors::SafeTensors::deserialize(&plain).unwrap();
    for name in ["layer.weight", "layer.bias"] {
        let (a, b) = (
            loaded.tensor(name).unwrap(),
            reference.tensor(name).unwrap(),
        );
        assert_eq!(a.shape(), b.shape());
        assert_eq!(a.data(), b.data());
    }
    assert!(model.verification().certificate.is_some());

    // The same files on another device: refused by name.
    let err = open_verified(
        &enc_path,
        &bundle,
        &pki.trust(),
        pki.now,
        &other.se,
        "device",
    )
    .unwrap_err();
    assert!(
        matches!(err, LoadError::Decrypt(CryptError::NotARecipient { .. })),
        "{err}"
    );
    assert!(err.to_string().contains(&other.key.fingerprint()));
}

#[test]
fn a_bad_signature_stops_the_load_before_decryption() {
    let pki = pki();
    let dev = device();
    let dir = tempfile::tempdir().unwrap();
    let plain_path = dir.path().join("model.safetensors");
    let plain = safetensors_model(1.0);
    std::fs::write(&plain_path, &plain).unwrap();
    let mut bundle = pki.sign(&plain_path);
    let container = crypt::encrypt(
        &plain,
        &[RecipientKey::new(&dev.key).unwrap()],
        EncryptOptions::default(),
    )
    .unwrap();
    let last = bundle.signature.len() - 1;
    bundle.signature[last] ^= 1;
    let err = open_verified_bytes(
        &container,
        &bundle,
        &pki.trust(),
        pki.now,
        &dev.se,
        "device",
    )
    .unwrap_err();
    assert!(matches!(err, LoadError::Signature(_)), "{err}");
    assert_eq!(
        dev.se.ecdh_calls(),
        0,
        "the element was never asked to decrypt"
    );

    // Signed by a key no trusted root endorses.
    let stranger = crypt_common::pki();
    let foreign = stranger.sign(&plain_path);
    let err = open_verified_bytes(
        &container,
        &foreign,
        &pki.trust(),
        pki.now,
        &dev.se,
        "device",
    )
    .unwrap_err();
    assert!(matches!(err, LoadError::Signature(_)), "{err}");
    assert_eq!(dev.se.ecdh_calls(), 0);
}

#[test]
fn an_encrypted_model_that_is_not_the_signed_one_is_refused_before_parsing() {
    let pki = pki();
    let dev = device();
    let dir = tempfile::tempdir().unwrap();
    let signed_path = dir.path().join("signed.safetensors");
    std::fs::write(&signed_path, safetensors_model(2.0)).unwrap();
    let bundle = pki.sign(&signed_path);
    // A validly encrypted, different model (same length) under a genuine signature.
    let swapped = crypt::encrypt(
        &safetensors_model(3.0),
        &[RecipientKey::new(&dev.key).unwrap()],
        EncryptOptions::default(),
    )
    .unwrap();
    let err = open_verified_bytes(&swapped, &bundle, &pki.trust(), pki.now, &dev.se, "device")
        .unwrap_err();
    assert!(matches!(err, LoadError::Integrity(_)), "{err}");
    assert_eq!(
        dev.se.ecdh_calls(),
        1,
        "decrypted, then refused before any parse"
    );

    // A tampered container is refused by the decryption itself.
    let mut good = crypt::encrypt(
        &safetensors_model(2.0),
        &[RecipientKey::new(&dev.key).unwrap()],
        EncryptOptions::default(),
    )
    .unwrap();
    let n = good.len();
    good[n - 20] ^= 1;
    let err =
        open_verified_bytes(&good, &bundle, &pki.trust(), pki.now, &dev.se, "device").unwrap_err();
    assert!(
        matches!(err, LoadError::Decrypt(CryptError::ChunkCorrupted { .. })),
        "{err}"
    );
}

#[test]
fn every_signature_serialization_verifies_a_multi_shard_model_loaded_from_a_file() {
    let pki = pki();
    let dev = device();
    let dir = tempfile::tempdir().unwrap();
    // 3.2 MB: several 1 MiB shards, the last one short, over 64 KiB chunks.
    let plain: Vec<u8> = (0..3_200_013u32)
        .map(|i| (i * 13 + i / 4099) as u8)
        .collect();
    let plain_path = dir.path().join("model.bin");
    std::fs::write(&plain_path, &plain).unwrap();
    let recipients = [RecipientKey::new(&dev.key).unwrap()];
    let enc_path = dir.path().join("model.ewm");
    std::fs::write(
        &enc_path,
        crypt::encrypt(&plain, &recipients, EncryptOptions::default()).unwrap(),
    )
    .unwrap();
    // The same length, one byte different, in the third shard.
    let mut other = plain.clone();
    other[2_500_000] ^= 1;
    let other_path = dir.path().join("other.ewm");
    std::fs::write(
        &other_path,
        crypt::encrypt(&other, &recipients, EncryptOptions::default()).unwrap(),
    )
    .unwrap();
    // Shards on chunk boundaries (hashed as chunks decrypt), shards that are not, and one
    // digest for the whole file.
    for shard_size in [Some(1 << 20), Some(100_000), None] {
        let bundle = pki.sign_with(&plain_path, shard_size);
        let model = open_verified(&enc_path, &bundle, &pki.trust(), pki.now, &dev.se, "device")
            .unwrap_or_else(|e| panic!("{shard_size:?}: {e}"));
        assert_eq!(model.bytes(), &plain[..], "{shard_size:?}");
        let err = open_verified(
            &other_path,
            &bundle,
            &pki.trust(),
            pki.now,
            &dev.se,
            "device",
        )
        .unwrap_err();
        assert!(
            matches!(err, LoadError::Integrity(_)),
            "{shard_size:?}: {err}"
        );
    }
}

/// The split the isolated inference worker uses: `release_key` verifies the signature and
/// only then unwraps the file key in the element (nothing decrypted); `open_with_key`, with
/// no element, decrypts and checks the plaintext against the verified statement.
#[test]
fn a_released_key_opens_only_the_signed_model_and_only_after_the_signature_verified() {
    let pki = pki();
    let dev = device();
    let dir = tempfile::tempdir().unwrap();
    let plain_path = dir.path().join("model.safetensors");
    let plain = safetensors_model(4.0);
    std::fs::write(&plain_path, &plain).unwrap();
    let bundle = pki.sign(&plain_path);
    let enc_path = dir.path().join("model.ewm");
    let encrypt = |model: &[u8]| {
        crypt::encrypt(
            model,
            &[RecipientKey::new(&dev.key).unwrap()],
            EncryptOptions::default(),
        )
        .unwrap()
    };
    std::fs::write(&enc_path, encrypt(&plain)).unwrap();
    let file = std::fs::File::open(&enc_path).unwrap();

    let released = release_key(&file, &bundle, &pki.trust(), pki.now, &dev.se, "device").unwrap();
    assert_eq!(dev.se.ecdh_calls(), 1);
    let manifest = &released.verified.statement.manifest;
    let model = open_with_key(&file, &released.file_key, manifest).unwrap();
    assert_eq!(&model[..], &plain[..]);

    // Another key: the header's MAC refuses it.
    let err = open_with_key(&file, &[7; 32], manifest).unwrap_err();
    assert!(
        matches!(err, LoadError::Decrypt(CryptError::HeaderTampered)),
        "{err}"
    );

    // A bad signature: the element is never asked.
    let mut forged = bundle.clone();
    let last = forged.signature.len() - 1;
    forged.signature[last] ^= 1;
    let err = release_key(&file, &forged, &pki.trust(), pki.now, &dev.se, "device").unwrap_err();
    assert!(matches!(err, LoadError::Signature(_)), "{err}");
    assert_eq!(dev.se.ecdh_calls(), 1);

    // A different model encrypted to the device under the genuine signature: its key is
    // released (the element cannot tell), but the plaintext does not match the statement.
    let swapped_path = dir.path().join("swapped.ewm");
    std::fs::write(&swapped_path, encrypt(&safetensors_model(5.0))).unwrap();
    let swapped = std::fs::File::open(&swapped_path).unwrap();
    let released =
        release_key(&swapped, &bundle, &pki.trust(), pki.now, &dev.se, "device").unwrap();
    let err = open_with_key(
        &swapped,
        &released.file_key,
        &released.verified.statement.manifest,
    )
    .unwrap_err();
    assert!(matches!(err, LoadError::Integrity(_)), "{err}");
}
