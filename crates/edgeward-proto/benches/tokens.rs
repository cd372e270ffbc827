//! Device-token verifications per second on one core (target: ≥ 1,000,000): parse, derive
//! nothing (the server derives the secret once per request; measured separately), HMAC and
//! window check, for v1 and v2 tokens.
// criterion_group! defines a public function that cannot carry a doc comment.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use edgeward_proto::{secret, token};

fn tokens(c: &mut Criterion) {
    let master = [7u8; 32];
    let secret = secret::derive(&master, "cam-000017");
    let now = 1_800_000_000;
    let v1 = token::create_v1("cam-000017", &secret, now);
    let req = token::Request {
        method: "POST",
        target: "/v1/device/telemetry",
        body_sha256: token::body_sha256(b"{\"records\":[{\"t\":1}]}"),
    };
    let v2 = token::create_v2("cam-000017", &secret, now, [9; 16], &req);
    let mut g = c.benchmark_group("token");
    g.throughput(Throughput::Elements(1));
    g.bench_function(BenchmarkId::new("verify", "v1"), |b| {
        b.iter(|| {
            let t = token::Token::parse(std::hint::black_box(&v1)).expect("parse");
            t.verify(&secret, now, 300, None).expect("verify");
        })
    });
    g.bench_function(BenchmarkId::new("verify", "v2"), |b| {
        b.iter(|| {
            let t = token::Token::parse(std::hint::black_box(&v2)).expect("parse");
            t.verify(&secret, now, 300, Some(&req)).expect("verify");
        })
    });
    g.bench_function("derive_secret", |b| {
        b.iter(|| secret::derive(std::hint::black_box(&master), "cam-000017"))
    });
    g.finish();
}

criterion_group!(benches, tokens);
criterion_main!(benches);
