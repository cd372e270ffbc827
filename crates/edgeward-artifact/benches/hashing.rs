//! Hashing throughput on disk: `sha256_file` (one stream, what raw signatures sign) on a
//! 64 MiB file and `manifest_of` in shards mode (parallel, what bundles sign) on a 256 MiB
//! file. The files are written once to a temporary directory and are in the page cache, so
//! this measures hashing and reading from cache, not the disk.
//!
//! Run with `cargo bench -p edgeward-artifact --bench hashing` (well under a minute).
// criterion_group! defines a public function that cannot carry a doc comment.
#![allow(missing_docs)]

use std::{io::Write, path::Path, time::Duration};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use edgeward_artifact::{hashing, NoProgress};
use edgeward_core::manifest::{Method, Serialization};

const MIB: u64 = 1024 * 1024;

/// Writes `len` bytes of a cheap pseudo-random pattern (xorshift) to `path`.
fn write_file(path: &Path, len: u64) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut block = vec![0u8; MIB as usize];
    for _ in 0..len / MIB {
        for chunk in block.chunks_exact_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            chunk.copy_from_slice(&state.to_le_bytes());
        }
        f.write_all(&block).unwrap();
    }
    f.flush().unwrap();
}

fn hashing(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();

    let small = dir.path().join("firmware.bin");
    write_file(&small, 64 * MIB);
    let mut g = c.benchmark_group("sha256_file");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .throughput(Throughput::Bytes(64 * MIB));
    g.bench_function("64MiB", |b| {
        b.iter(|| hashing::sha256_file(&small, &NoProgress).unwrap())
    });
    g.finish();

    let model = dir.path().join("model");
    std::fs::create_dir(&model).unwrap();
    write_file(&model.join("weights.bin"), 256 * MIB);
    let serialization = Serialization {
        method: Method::Shards {
            shard_size: hashing::DEFAULT_SHARD_SIZE,
        },
        allow_symlinks: false,
        ignore_paths: Vec::new(),
    };
    let mut g = c.benchmark_group("manifest_of_shards");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(8))
        .throughput(Throughput::Bytes(256 * MIB));
    g.bench_function("256MiB", |b| {
        b.iter(|| hashing::manifest_of(&model, &serialization, &NoProgress).unwrap())
    });
    g.finish();
}

criterion_group!(benches, hashing);
criterion_main!(benches);
