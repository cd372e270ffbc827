//! Memory for a simulated fleet: registers DEVICES devices (default 1,000,000) with 8 metrics
//! each, feeds every metric 3 points, and prints the resident memory and the bytes per
//! device-metric (bench/detect.sh runs it).

use edgeward_detect::baseline::Baseline;
use edgeward_detect::fleet::{Fleet, FleetConfig};
use edgeward_detect::state::STATE_BYTES;

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .map(str::to_string)
        })
        .and_then(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

fn main() {
    let devices: usize = std::env::var("DEVICES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let metrics = [
        "inference_rate",
        "latency_ms",
        "cpu",
        "mem",
        "soc_temp_c",
        "net_tx",
        "net_rx",
        "errors",
    ];
    let before = rss_bytes();
    let mut fleet = Fleet::new(FleetConfig::default());
    for d in 0..devices {
        let id = format!("dev-{d:07}");
        fleet.register(&id, "jetson-orin", "1.4.2");
        for (m, name) in metrics.iter().enumerate() {
            for k in 0..3 {
                let _ = fleet.observe_metric(
                    &id,
                    name,
                    1_767_225_600 + k * 60,
                    (d % 97 + m + k as usize) as f64,
                );
            }
        }
    }
    let used = rss_bytes().saturating_sub(before);
    let pairs = devices * metrics.len();
    println!(
        "devices {devices}  metrics/device {}  device-metrics {pairs}",
        metrics.len()
    );
    println!(
        "baseline state: {} bytes in memory, {STATE_BYTES} bytes serialized",
        size_of::<Baseline>()
    );
    println!(
        "resident memory: {:.2} GiB ({} bytes per device-metric, all state included)",
        used as f64 / (1u64 << 30) as f64,
        used / pairs as u64
    );
    assert_eq!(fleet.devices(), devices);
}
