//! Criterion benchmark of measured boot's register extension (one per stage); whole-chain
//! verification against `openssl dgst` is measured by `bench/boot.sh`.

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
