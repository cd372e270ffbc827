//! Verification costs of the core crate: raw ECDSA P-256 and Ed25519 signature checks, and
//! parsing plus verifying a key-mode bundle whose statement lists 100 resources.
//!
//! Run with `cargo bench -p edgeward-core --bench verify`.
// criterion_group! defines a public function that cannot carry a doc comment.
#![allow(missing_docs)]

use std::collections::{BTreeMap, BTreeSet};

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use edgeward_core::{
    bundle::Bundle,
    keys::SigningKey,
    manifest::{ItemKey, Manifest, Method, Serialization},
    raw_signature,
    sign::sign_manifest,
    statement::Statement,
    verify::{verify_bundle, Trust},
};

/// A fixed time inside any plausible validity window (key mode does not look at it).
const NOW: u64 = 1_800_000_000;

/// Deterministic keys: the benchmarks measure verification, not key generation.
fn p256_key() -> SigningKey {
    SigningKey::P256(p256::ecdsa::SigningKey::from_bytes(&[7u8; 32].into()).unwrap())
}

fn ed25519_key() -> SigningKey {
    SigningKey::Ed25519(ed25519_dalek::SigningKey::from_bytes(&[9u8; 32]))
}

/// A files-method manifest of `n` resources with distinct names and digests.
fn manifest(n: usize) -> Manifest {
    let items: BTreeMap<ItemKey, [u8; 32]> = (0..n)
        .map(|i| {
            let key = ItemKey {
                path: format!("model/shard-{i:05}.safetensors"),
                range: None,
            };
            (key, edgeward_core::sha256(&i.to_le_bytes()))
        })
        .collect();
    Manifest {
        model_name: "bench-model".into(),
        serialization: Serialization {
            method: Method::Files,
            allow_symlinks: false,
            ignore_paths: vec![".git".into()],
        },
        items,
        empty_files: BTreeSet::new(),
    }
}

fn raw_signatures(c: &mut Criterion) {
    let mut g = c.benchmark_group("raw_signature");

    let key = p256_key();
    let public = key.public_key();
    let digest = edgeward_core::sha256(b"firmware image");
    let sig = key.sign_sha256_digest(&digest).unwrap();
    raw_signature::verify_digest(&public, &digest, &sig).unwrap();
    g.bench_function("ecdsa_p256_verify_digest", |b| {
        b.iter(|| {
            raw_signature::verify_digest(black_box(&public), black_box(&digest), black_box(&sig))
        })
    });

    let key = ed25519_key();
    let public = key.public_key();
    let message: Vec<u8> = (0..1024u32).map(|i| (i * 31 % 251) as u8).collect();
    let sig = key.sign(&message);
    raw_signature::verify_message(&public, &message, &sig).unwrap();
    g.throughput(Throughput::Bytes(message.len() as u64));
    g.bench_function("ed25519_verify_message_1KiB", |b| {
        b.iter(|| {
            raw_signature::verify_message(black_box(&public), black_box(&message), black_box(&sig))
        })
    });
    g.finish();
}

fn bundles(c: &mut Criterion) {
    let key = p256_key();
    let public = key.public_key();
    let bundle = sign_manifest(manifest(100), Some(NOW - 60), &key, None).unwrap();
    let json = bundle.to_json();
    let payload = bundle.payload;
    // The benchmarked path must be the accepting one.
    let parsed = Bundle::parse(json.as_bytes()).unwrap();
    let verified = verify_bundle(&parsed, &Trust::PublicKey(&public), NOW).unwrap();
    assert_eq!(verified.statement.manifest.items.len(), 100);

    let mut g = c.benchmark_group("bundle_100_resources");
    g.throughput(Throughput::Bytes(json.len() as u64));
    g.bench_function("parse_and_verify", |b| {
        b.iter(|| {
            let bundle = Bundle::parse(black_box(json.as_bytes())).unwrap();
            verify_bundle(&bundle, &Trust::PublicKey(&public), NOW).unwrap()
        })
    });
    g.bench_function("parse_only", |b| {
        b.iter(|| Bundle::parse(black_box(json.as_bytes())).unwrap())
    });
    g.bench_function("verify_only", |b| {
        b.iter_batched_ref(
            || parsed.clone(),
            |bundle| verify_bundle(bundle, &Trust::PublicKey(&public), NOW).unwrap(),
            BatchSize::SmallInput,
        )
    });
    g.throughput(Throughput::Bytes(payload.len() as u64));
    g.bench_function("statement_parse", |b| {
        b.iter(|| Statement::parse(black_box(&payload)).unwrap())
    });
    g.finish();
}

criterion_group!(benches, raw_signatures, bundles);
criterion_main!(benches);
