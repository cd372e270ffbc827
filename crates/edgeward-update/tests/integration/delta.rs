//! Delta updates from a repository directory (`file://`): chunks reused from the active
//! slot, only the others fetched, every byte verified; a tampered chunk refused with the
//! installed version untouched; an interrupted assembly resumed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use edgeward_update::delta::{self, assemble, ChunkIndex, Job, LocalChunks, Options, Plan};
use edgeward_update::tuf::hash::sha256;
use edgeward_update::tuf::metadata::TargetFile;
use edgeward_update::tuf::transport::{FileTransport, Limits};
use serde_json::json;

/// Deterministic pseudo-random bytes (xorshift64).
pub(crate) fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(n);
    out
}

/// A signed target description for `data` carrying its chunk index, as publish makes it.
pub(crate) fn target_file(data: &[u8]) -> TargetFile {
    let index = ChunkIndex::build(data, delta::Params::default()).expect("index");
    let mut hashes = std::collections::BTreeMap::new();
    hashes.insert("sha256".to_string(), hex::encode(sha256(data)));
    TargetFile {
        length: data.len() as u64,
        hashes,
        custom: Some(json!({"edgeward": {"chunks": index.to_json()}})),
    }
}

fn file_url(path: &Path) -> String {
    format!("file://{}", path.display())
}

fn options() -> Options {
    Options {
        backoff: Duration::from_millis(1),
        ..Options::default()
    }
}

struct Setup {
    dir: tempfile::TempDir,
    active: PathBuf,
    served: PathBuf,
    dest: PathBuf,
}

fn setup(old: &[u8], new: &[u8]) -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let active = dir.path().join("slot-a");
    let served = dir.path().join("repo-target");
    let dest = dir.path().join("slot-b");
    std::fs::write(&active, old).expect("write");
    std::fs::write(&served, new).expect("write");
    Setup {
        dir,
        active,
        served,
        dest,
    }
}

fn run(s: &Setup, file: &TargetFile, opts: &Options) -> Result<delta::Report, delta::DeltaError> {
    let index = delta::target_index(file)
        .expect("valid")
        .expect("has index");
    let local =
        LocalChunks::scan(&index.params, std::slice::from_ref(&s.active), u64::MAX).expect("scan");
    let plan = Plan::new(&index, &local);
    let progress = s.dir.path().join("progress.json");
    let url = file_url(&s.served);
    let job = Job {
        target: "fw.img",
        file,
        index: &index,
        url: &url,
        dest: &s.dest,
        progress: &progress,
    };
    assemble(
        &job,
        &plan,
        &local,
        &FileTransport::new(Limits::default()),
        opts,
    )
}

#[test]
fn an_insertion_fetches_little_and_assembles_the_exact_target() {
    let old = noise(4 << 20, 1);
    let mut new = old.clone();
    let insert = noise(100_000, 2);
    new.splice(2_000_000..2_000_000, insert.iter().copied());
    let s = setup(&old, &new);
    let file = target_file(&new);
    let report = run(&s, &file, &options()).expect("assembles");
    assert_eq!(std::fs::read(&s.dest).expect("read"), new);
    assert_eq!(report.fetched + report.reused, new.len() as u64);
    assert!(
        report.fetched < 100_000 + 200_000,
        "fetched {} bytes for a 100 kB insertion",
        report.fetched
    );
    assert_eq!(std::fs::read(&s.active).expect("read"), old);
    assert!(!s.dir.path().join("progress.json").exists());
}

#[test]
fn a_chunk_not_matching_its_signed_hash_is_refused_and_never_written() {
    let old = noise(2 << 20, 3);
    let mut new = old.clone();
    new[1_000_000..1_050_000].copy_from_slice(&noise(50_000, 4));
    let file = target_file(&new);
    // The repository (or a man in the middle) serves other bytes in the changed region.
    let mut served = new.clone();
    served[1_020_000] ^= 0xff;
    let s = setup(&old, &served);
    let index = delta::target_index(&file).expect("ok").expect("index");
    let bad = index
        .chunks
        .iter()
        .position(|c| c.offset <= 1_020_000 && 1_020_000 < c.offset + u64::from(c.length))
        .expect("chunk");
    let c = index.chunks[bad];
    let err = run(&s, &file, &options()).unwrap_err();
    let end = c.offset + u64::from(c.length);
    let got_bytes = &served[c.offset as usize..end as usize];
    assert_eq!(
        err.to_string(),
        format!(
            "chunk {bad} (bytes {}..{end}) of fw.img: sha256 {} does not match the signed {}",
            c.offset,
            hex::encode(sha256(got_bytes)),
            hex::encode(c.sha256)
        )
    );
    // The installed version is untouched, and the tampered bytes were never written.
    assert_eq!(std::fs::read(&s.active).expect("read"), old);
    let dest = std::fs::read(&s.dest).expect("read");
    let written = dest.get(c.offset as usize..end as usize);
    assert_ne!(written, Some(got_bytes));
}

#[test]
fn a_local_chunk_altered_after_the_scan_is_fetched_instead() {
    let old = noise(1 << 20, 5);
    let mut new = old.clone();
    new[500_000] ^= 1;
    let s = setup(&old, &new);
    let file = target_file(&new);
    let index = delta::target_index(&file).expect("ok").expect("index");
    let local =
        LocalChunks::scan(&index.params, std::slice::from_ref(&s.active), u64::MAX).expect("scan");
    let plan = Plan::new(&index, &local);
    // The active slot is rewritten between planning and assembly.
    std::fs::write(&s.active, noise(1 << 20, 6)).expect("write");
    let progress = s.dir.path().join("p.json");
    let url = file_url(&s.served);
    let job = Job {
        target: "fw.img",
        file: &file,
        index: &index,
        url: &url,
        dest: &s.dest,
        progress: &progress,
    };
    let report = assemble(
        &job,
        &plan,
        &local,
        &FileTransport::new(Limits::default()),
        &options(),
    )
    .expect("assembles");
    assert_eq!(report.reused, 0);
    assert_eq!(report.fetched, new.len() as u64);
    assert_eq!(std::fs::read(&s.dest).expect("read"), new);
}

#[test]
fn an_interrupted_assembly_resumes_from_its_saved_progress() {
    let old = vec![0u8; 0];
    let new = noise(3 << 20, 7);
    let s = setup(&old, &new);
    let file = target_file(&new);
    // The repository has only the first half yet (a cut connection, as far as the
    // client can tell): the run stops with a network error after writing what it got.
    std::fs::write(&s.served, &new[..new.len() / 2]).expect("write");
    let opts = Options {
        retries: 0,
        sync_every: 64 * 1024,
        max_request: 1 << 20,
        ..options()
    };
    let err = run(&s, &file, &opts).unwrap_err();
    assert!(
        err.to_string().starts_with(&format!(
            "fetching fw.img: file://{}: connection ended after",
            s.served.display()
        )),
        "{err}"
    );
    assert!(s.dir.path().join("progress.json").exists());
    std::fs::write(&s.served, &new).expect("write");
    let report = run(&s, &file, &opts).expect("resumes");
    assert!(report.resumed >= (1 << 20), "resumed {}", report.resumed);
    assert_eq!(report.resumed + report.fetched, new.len() as u64);
    assert_eq!(std::fs::read(&s.dest).expect("read"), new);
}

#[test]
fn resumed_bytes_are_re_verified() {
    let new = noise(1 << 20, 8);
    let s = setup(&[], &new);
    let file = target_file(&new);
    let opts = Options {
        retries: 0,
        sync_every: 1,
        ..options()
    };
    std::fs::write(&s.served, &new[..600_000]).expect("write");
    run(&s, &file, &opts).unwrap_err();
    // Someone alters the partial destination between runs.
    let mut partial = std::fs::read(&s.dest).expect("read");
    partial[10] ^= 1;
    std::fs::write(&s.dest, &partial).expect("write");
    std::fs::write(&s.served, &new).expect("write");
    let report = run(&s, &file, &opts).expect("assembles");
    assert_eq!(report.resumed, 0);
    assert_eq!(std::fs::read(&s.dest).expect("read"), new);
}
