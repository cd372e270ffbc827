//! Device metrics read from `/proc` and `/sys`: CPU use (between two samples), memory,
//! the hottest thermal zone where one is readable, network bytes (all interfaces but
//! loopback), listening TCP ports, established TCP connections and the process count.
//! Every reader is bounded and tolerant: a missing or odd file leaves its field out rather
//! than stopping the sample.

use std::{collections::BTreeSet, fs, path::Path};

use serde::Serialize;

/// Largest `/proc` file read (the socket tables of a busy gateway stay well under).
const MAX_PROC_FILE: u64 = 4 * 1024 * 1024;

/// One device sample.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct DeviceSample {
    /// CPU busy share since the previous sample, percent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_percent: Option<f64>,
    /// Total memory, KiB.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mem_total_kib: Option<u64>,
    /// Available memory, KiB.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mem_available_kib: Option<u64>,
    /// The hottest thermal zone, degrees Celsius.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature_c: Option<f64>,
    /// Bytes received on every interface but loopback since boot.
    pub net_rx_bytes: u64,
    /// Bytes sent on every interface but loopback since boot.
    pub net_tx_bytes: u64,
    /// Listening TCP ports (IPv4 and IPv6).
    pub listening_ports: Vec<u16>,
    /// Established TCP connections.
    pub established_connections: u64,
    /// Processes.
    pub processes: u64,
}

/// CPU time counters from `/proc/stat` (busy, total) in clock ticks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTimes {
    busy: u64,
    total: u64,
}

/// Samples the device; `previous` is the CPU counters of the last sample (updated).
pub fn sample(root: &Path, previous: &mut Option<CpuTimes>) -> DeviceSample {
    let text = |p: &str| read(&root.join(p));
    let cpu = text("proc/stat").and_then(|s| cpu_times(&s));
    let cpu_percent = match (cpu, *previous) {
        (Some(now), Some(before)) if now.total > before.total => {
            let busy = now.busy.saturating_sub(before.busy) as f64;
            Some((busy * 100.0 / (now.total - before.total) as f64 * 10.0).round() / 10.0)
        }
        _ => None,
    };
    if cpu.is_some() {
        *previous = cpu;
    }
    let meminfo = text("proc/meminfo").unwrap_or_default();
    let (rx, tx) = text("proc/net/dev")
        .map(|s| net_bytes(&s))
        .unwrap_or((0, 0));
    let mut listening = BTreeSet::new();
    let mut established = 0;
    for table in ["proc/net/tcp", "proc/net/tcp6"] {
        if let Some(s) = text(table) {
            let (ports, n) = tcp_table(&s);
            listening.extend(ports);
            established += n;
        }
    }
    DeviceSample {
        cpu_percent,
        mem_total_kib: meminfo_field(&meminfo, "MemTotal:"),
        mem_available_kib: meminfo_field(&meminfo, "MemAvailable:"),
        temperature_c: temperature(&root.join("sys/class/thermal")),
        net_rx_bytes: rx,
        net_tx_bytes: tx,
        listening_ports: listening.into_iter().collect(),
        established_connections: established,
        processes: process_count(&root.join("proc")),
    }
}

fn read(path: &Path) -> Option<String> {
    let meta = fs::metadata(path).ok()?;
    // /proc files report length 0; bound them by reading through `take`.
    if meta.len() > MAX_PROC_FILE {
        return None;
    }
    use std::io::Read;
    let mut s = String::new();
    fs::File::open(path)
        .ok()?
        .take(MAX_PROC_FILE)
        .read_to_string(&mut s)
        .ok()?;
    Some(s)
}

/// Parses the aggregate `cpu` line of `/proc/stat`.
pub fn cpu_times(stat: &str) -> Option<CpuTimes> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal (guest time is inside user).
    let total: u64 = fields.iter().take(8).sum();
    let idle = fields.get(3).copied()? + fields.get(4).copied().unwrap_or(0);
    Some(CpuTimes {
        busy: total.saturating_sub(idle),
        total,
    })
}

fn meminfo_field(meminfo: &str, name: &str) -> Option<u64> {
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// Sums received and sent bytes over `/proc/net/dev`, loopback excluded.
pub fn net_bytes(dev: &str) -> (u64, u64) {
    let mut rx = 0u64;
    let mut tx = 0u64;
    for line in dev.lines().skip(2) {
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        if name.trim() == "lo" {
            continue;
        }
        let f: Vec<&str> = rest.split_whitespace().collect();
        let field = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        rx = rx.saturating_add(field(0));
        tx = tx.saturating_add(field(8));
    }
    (rx, tx)
}

/// Listening ports and the number of established connections in a `/proc/net/tcp*` table.
pub fn tcp_table(table: &str) -> (Vec<u16>, u64) {
    let mut ports = Vec::new();
    let mut established = 0;
    for line in table.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (Some(local), Some(state)) = (f.get(1), f.get(3)) else {
            continue;
        };
        match *state {
            "0A" => {
                if let Some(port) = local
                    .rsplit_once(':')
                    .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
                {
                    ports.push(port);
                }
            }
            "01" => established += 1,
            _ => {}
        }
    }
    (ports, established)
}

fn temperature(thermal: &Path) -> Option<f64> {
    let mut hottest: Option<i64> = None;
    for entry in fs::read_dir(thermal).ok()?.flatten().take(64) {
        if !entry
            .file_name()
            .to_string_lossy()
            .starts_with("thermal_zone")
        {
            continue;
        }
        if let Some(milli) = read(&entry.path().join("temp")).and_then(|s| s.trim().parse().ok()) {
            hottest = Some(hottest.map_or(milli, |h: i64| h.max(milli)));
        }
    }
    hottest.map(|m| m as f64 / 1000.0)
}

fn process_count(proc: &Path) -> u64 {
    fs::read_dir(proc)
        .map(|d| {
            d.flatten()
                .filter(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .bytes()
                        .all(|b| b.is_ascii_digit())
                })
                .count() as u64
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsers_read_real_layouts() {
        let stat = "cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 1 2 3 4\n";
        assert_eq!(
            cpu_times(stat),
            Some(CpuTimes {
                busy: 150,
                total: 1000
            })
        );
        let dev = "Inter-|   Receive\n face |bytes packets\n    lo: 500 5 0 0 0 0 0 0 500 5 0 0 0 0 0 0\n  eth0: 1000 10 0 0 0 0 0 0 2000 20 0 0 0 0 0 0\n";
        assert_eq!(net_bytes(dev), (1000, 2000));
        let tcp = "  sl  local_address rem_address   st\n   0: 00000000:1F90 00000000:0000 0A 0\n   1: 0100007F:A000 0100007F:1F90 01 0\n";
        assert_eq!(tcp_table(tcp), (vec![8080], 1));
    }

    #[test]
    fn this_machine_samples() {
        let mut prev = None;
        let first = sample(Path::new("/"), &mut prev);
        assert!(first.processes > 0 && first.mem_total_kib.unwrap_or(0) > 0);
        assert!(prev.is_some());
    }
}
