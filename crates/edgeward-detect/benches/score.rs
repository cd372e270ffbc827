//! Detection throughput: telemetry points scored per second on one core, by one baseline and
//! through the fleet detector (hash lookup, cohort update, alert check included).
// criterion_group! defines a public function that cannot carry a doc comment.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use edgeward_detect::baseline::{Baseline, Params};
use edgeward_detect::fleet::{Fleet, FleetConfig};

const POINTS: usize = 10_000;

fn series() -> Vec<(i64, f64)> {
    (0..POINTS)
        .map(|i| {
            let t = 1_767_225_600 + i as i64 * 60;
            let day = (t % 86_400) as f64 / 86_400.0;
            (
                t,
                100.0 + 40.0 * (day * std::f64::consts::TAU).sin() + ((i * 7919) % 13) as f64,
            )
        })
        .collect()
}

fn baseline(c: &mut Criterion) {
    let data = series();
    let params = Params::default();
    let mut group = c.benchmark_group("score");
    group.throughput(Throughput::Elements(POINTS as u64));
    group.bench_function("baseline", |b| {
        b.iter(|| {
            let mut base = Baseline::new();
            data.iter()
                .map(|&(t, v)| base.update(&params, t, v).score)
                .sum::<f32>()
        })
    });
    group.bench_function("fleet_1000_devices", |b| {
        let mut fleet = Fleet::new(FleetConfig::default());
        let ids: Vec<String> = (0..1_000).map(|d| format!("dev-{d}")).collect();
        for id in &ids {
            fleet.register(id, "jetson-orin", "1.4.2");
        }
        b.iter(|| {
            let mut alerts = 0;
            for (i, &(t, v)) in data.iter().enumerate() {
                alerts += fleet
                    .observe_metric(&ids[i % 1_000], "inference_rate", t, v)
                    .unwrap()
                    .is_some() as usize;
            }
            alerts
        })
    });
    group.finish();
}

criterion_group!(benches, baseline);
criterion_main!(benches);
