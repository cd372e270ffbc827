//! Bytes a device fetches for a delta update of a 256 MiB image (run by bench/delta.sh).
//!
//! Each case writes the old image (the active slot) and the new one (the repository's
//! target) to a scratch directory, builds the new target's chunk index as `release
//! publish` does, plans from the old image, and assembles the new image through the
//! `file://` transport with range reads, checking the result byte for byte. Data is
//! pseudo-random (no compression helps), so the numbers come from chunking alone.
//!
//! Cases: (a) 1 % of the image rewritten in 4 KiB blocks at random places (a root file
//! system where scattered files changed); (b) 4 MiB inserted in the middle; (c) a new
//! 32 MiB model file added next to the old model inside the image.

use std::path::Path;
use std::time::Instant;

use edgeward_update::delta::{assemble, ChunkIndex, Job, LocalChunks, Options, Params, Plan};
use edgeward_update::tuf::hash::sha256;
use edgeward_update::tuf::metadata::TargetFile;
use edgeward_update::tuf::transport::{FileTransport, Limits};

const MIB: usize = 1 << 20;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn fill(&mut self, n: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(n + 8);
        while out.len() < n {
            out.extend_from_slice(&self.next().to_le_bytes());
        }
        out.truncate(n);
        out
    }
}

fn case(dir: &Path, name: &str, old: &[u8], new: &[u8], changed: usize) -> anyhow::Result<()> {
    let active = dir.join("active.img");
    let served = dir.join("target.img");
    let dest = dir.join("inactive.img");
    let progress = dir.join("progress.json");
    std::fs::write(&active, old)?;
    std::fs::write(&served, new)?;
    let _ = std::fs::remove_file(&dest);

    let t = Instant::now();
    let index = ChunkIndex::build(new, params())?;
    let index_json = serde_json::to_vec(&index.to_json())?;
    let publish_s = t.elapsed().as_secs_f64();
    let file = TargetFile {
        length: new.len() as u64,
        hashes: [("sha256".to_string(), hex::encode(sha256(new)))].into(),
        custom: None,
    };

    let t = Instant::now();
    let local = LocalChunks::scan(&index.params, &[active], u64::MAX)?;
    let plan = Plan::new(&index, &local);
    let url = format!("file://{}", served.display());
    let job = Job {
        target: name,
        file: &file,
        index: &index,
        url: &url,
        dest: &dest,
        progress: &progress,
    };
    let report = assemble(
        &job,
        &plan,
        &local,
        &FileTransport::new(Limits::default()),
        &Options::default(),
    )?;
    let device_s = t.elapsed().as_secs_f64();
    anyhow::ensure!(std::fs::read(&dest)? == new, "assembled image differs");

    let size = new.len() as f64;
    let pct = |b: u64| 100.0 * b as f64 / size;
    println!(
        "{name}: new image {:.0} MiB, changed/new bytes {:.2} MiB ({:.2} %), chunks {}, \
         fetched {:.2} MiB = {:.2} % in {} range requests, index in metadata {:.2} MiB, \
         fetched + index = {:.2} %, reused {:.2} MiB; publish {:.1} s, device {:.1} s",
        size / MIB as f64,
        changed as f64 / MIB as f64,
        100.0 * changed as f64 / size,
        index.chunks.len(),
        report.fetched as f64 / MIB as f64,
        pct(report.fetched),
        report.requests,
        index_json.len() as f64 / MIB as f64,
        pct(report.fetched + index_json.len() as u64),
        report.reused as f64 / MIB as f64,
        publish_s,
        device_s,
    );
    Ok(())
}

/// The default parameters, or `min = avg / 4`, `max = avg * 8` for the average size in
/// `$DELTA_AVG_SIZE` (to compare sizes).
fn params() -> Params {
    match std::env::var("DELTA_AVG_SIZE")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
    {
        Some(avg) => Params {
            min_size: avg / 4,
            avg_size: avg,
            max_size: avg * 8,
        },
        None => Params::default(),
    }
}

fn main() -> anyhow::Result<()> {
    let p = params();
    println!(
        "chunking: FastCDC min {} / avg {} / max {} bytes",
        p.min_size, p.avg_size, p.max_size
    );
    let dir = tempfile::tempdir()?;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let size = 256 * MIB;
    let old = rng.fill(size);

    // (a) 1 % of the bytes, in 4 KiB blocks at distinct random block positions.
    let mut new = old.clone();
    let blocks = size / 4096;
    let wanted = size / 100 / 4096;
    let mut chosen = std::collections::BTreeSet::new();
    while chosen.len() < wanted {
        chosen.insert((rng.next() % blocks as u64) as usize);
    }
    for b in &chosen {
        let fresh = rng.fill(4096);
        new[b * 4096..(b + 1) * 4096].copy_from_slice(&fresh);
    }
    case(dir.path(), "(a) 1 % scattered", &old, &new, wanted * 4096)?;

    // (b) 4 MiB inserted in the middle (the image grows by 4 MiB).
    let mut new = old.clone();
    let insert = rng.fill(4 * MIB);
    new.splice(size / 2..size / 2, insert);
    case(dir.path(), "(b) 4 MiB insertion", &old, &new, 4 * MIB)?;

    // (c) image = system 160 MiB, old model 64 MiB, then the new 32 MiB model file.
    let old_c = old[..224 * MIB].to_vec();
    let mut new = old_c.clone();
    new.extend_from_slice(&rng.fill(32 * MIB));
    case(dir.path(), "(c) new model file", &old_c, &new, 32 * MIB)?;
    Ok(())
}
