//! Criterion benchmark of measured boot's register extension (one per stage); whole-chain
//! verification against `openssl dgst` is measured by `bench/boot.sh`.
// criterion_group! defines a public function that cannot carry a doc comment.
#![allow(missing_docs)]

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use edgeward_boot::measure::Register;

fn bench(c: &mut Criterion) {
    c.bench_function("register extend x16", |b| {
        b.iter(|| {
            let mut r = Register::default();
            for i in 0..16u8 {
                r.extend(black_box(&[i; 32]));
            }
            r
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
