//! Per-operation latency of the TPM backend on swtpm (loopback TCP), next to the soft
//! backend doing the same operations in software: what a TPM round trip costs.
//! `cargo bench -p edgeward-se --features tpm --bench tpm`.
// criterion_group! defines a public function that cannot carry a doc comment.
#![allow(missing_docs)]

#[path = "../tests/se/swtpm.rs"]
mod swtpm;

use criterion::{criterion_group, criterion_main, Criterion};
use edgeward_se::{KeyAlgorithm, SecureElement};

fn operations(c: &mut Criterion, name: &str, se: &dyn SecureElement) {
    se.generate_key("bench", KeyAlgorithm::P256).unwrap();
    let peer = se.generate_key("peer", KeyAlgorithm::P256).unwrap();
    let edgeward_se::PublicKey::P256(peer) = peer else {
        unreachable!("P-256 requested")
    };
    let peer_sec1 = peer.to_encoded_point(false).as_bytes().to_vec();
    let blob = se.seal(&[7u8; 32]).unwrap();
    let mut group = c.benchmark_group(name);
    group.sample_size(20);
    group.bench_function("sign_digest", |b| {
        b.iter(|| se.sign_digest("bench", &[1u8; 32]).unwrap())
    });
    group.bench_function("ecdh", |b| b.iter(|| se.ecdh("bench", &peer_sec1).unwrap()));
    group.bench_function("unseal_32B", |b| b.iter(|| se.unseal(&blob).unwrap()));
    group.bench_function("increment_counter", |b| {
        b.iter(|| se.increment_counter("bench").unwrap())
    });
    group.bench_function("random_32B", |b| {
        let mut out = [0u8; 32];
        b.iter(|| se.random(&mut out).unwrap())
    });
    group.finish();
}

fn tpm_vs_soft(c: &mut Criterion) {
    let simulator = swtpm::Swtpm::start();
    let dir = tempfile::tempdir().unwrap();
    let tpm = edgeward_se::open(&format!(
        "tpm:{}?state={}",
        simulator.tcti(),
        dir.path().join("tpm").display()
    ))
    .unwrap();
    operations(c, "tpm-swtpm", tpm.as_ref());
    let soft = edgeward_se::open(&format!("soft:{}", dir.path().join("soft").display())).unwrap();
    operations(c, "soft", soft.as_ref());
}

criterion_group!(benches, tpm_vs_soft);
criterion_main!(benches);
