//! Resumable downloads over real HTTP on loopback: a server that cuts the connection in
//! the middle of a range response, a retry that resumes from the first chunk not written,
//! and a restart (a new process, as after a reboot) that resumes from the saved progress.
//! No byte of a chunk that was not completely received and verified is ever written.

use std::path::Path;
use std::time::Duration;

use edgeward_update::delta::{self, assemble, Job, LocalChunks, Options, Plan, Report};
use edgeward_update::tuf::store::MetadataStore;
use edgeward_update::tuf::transport::{AnyTransport, Limits};
use edgeward_update::tuf::{ClientConfig, Updater};

use crate::delta::{noise, target_file};
use crate::sim::{Behaviour, SimRepo};

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Publishes `new` as `fw.img` with its chunk index and returns the served file's path.
fn publish(repo: &mut SimRepo, new: &[u8]) -> String {
    let file = target_file(new);
    repo.add_target("targets", "fw.img", new, file.custom);
    repo.publish(&["targets", "snapshot", "timestamp"]);
    repo.target_file_path("targets", "fw.img")
}

/// One update attempt by a device whose active slot is `active`, as a fresh process.
fn attempt(
    repo: &SimRepo,
    state: &Path,
    active: &Path,
    dest: &Path,
    retries: u32,
) -> Result<Report, delta::DeltaError> {
    let meta = state.join("meta");
    if !meta.exists() {
        std::fs::create_dir(&meta).expect("mkdir");
        MetadataStore::new(&meta)
            .write("root", &repo.initial_root())
            .expect("root");
    }
    let transport = AnyTransport::new(Limits::default(), None).expect("transport");
    let mut u = Updater::new(
        MetadataStore::new(&meta),
        &repo.metadata_url(),
        &transport,
        ClientConfig::default(),
        now(),
    )
    .expect("updater");
    u.refresh().expect("refresh");
    let found = u.find_target("fw.img").expect("found");
    let index = delta::target_index(&found.file)
        .expect("valid")
        .expect("index");
    let local = LocalChunks::scan(&index.params, &[active.to_path_buf()], u64::MAX).expect("scan");
    let plan = Plan::new(&index, &local);
    let url = u.target_url(&repo.targets_url(), &found);
    let progress = state.join("fw.img.progress");
    let job = Job {
        target: "fw.img",
        file: &found.file,
        index: &index,
        url: &url,
        dest,
        progress: &progress,
    };
    let options = Options {
        retries,
        backoff: Duration::from_millis(10),
        sync_every: 64 * 1024,
        max_request: 1 << 20,
    };
    assemble(&job, &plan, &local, &transport, &options)
}

#[test]
fn a_connection_cut_mid_transfer_is_resumed_with_a_range_request() {
    let mut repo = SimRepo::new();
    let old = noise(3 << 20, 21);
    let mut new = old.clone();
    new.splice(1_500_000..1_500_000, noise(700_000, 22));
    let served = publish(&mut repo, &new);
    repo.behave(&served, Behaviour::CutOnce(300_000));
    let dir = tempfile::tempdir().expect("tempdir");
    let active = dir.path().join("slot-a");
    let dest = dir.path().join("slot-b");
    std::fs::write(&active, &old).expect("write");
    let report = attempt(&repo, dir.path(), &active, &dest, 3).expect("completes");
    assert_eq!(std::fs::read(&dest).expect("read"), new);
    assert_eq!(std::fs::read(&active).expect("read"), old);
    assert!(report.requests >= 2, "{report:?}");
    assert!(report.fetched < 700_000 + 200_000, "{report:?}");
    assert!(!dir.path().join("fw.img.progress").exists());
}

#[test]
fn a_download_cut_repeatedly_resumes_after_a_restart_without_unverified_bytes() {
    let mut repo = SimRepo::new();
    let new = noise(4 << 20, 23);
    let served = publish(&mut repo, &new);
    repo.behave(&served, Behaviour::Cut(300_000));
    let dir = tempfile::tempdir().expect("tempdir");
    let active = dir.path().join("slot-a");
    let dest = dir.path().join("slot-b");
    let err = attempt(&repo, dir.path(), &active, &dest, 0).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "fetching fw.img: {}{}: request or response body error: error reading a body \
             from connection: end of file before message length reached",
            repo.base, served
        )
    );
    // Only whole verified chunks were written: the partial slot is a prefix of the
    // target ending on a chunk boundary, short of the 300 kB that arrived.
    let partial = std::fs::read(&dest).expect("read");
    let index = delta::target_index(&target_file(&new))
        .expect("ok")
        .expect("index");
    assert!(index
        .chunks
        .iter()
        .any(|c| c.offset + u64::from(c.length) == partial.len() as u64));
    assert!(partial.len() > 200_000 && partial.len() < 300_000);
    assert_eq!(partial[..], new[..partial.len()]);
    assert!(dir.path().join("fw.img.progress").exists());

    // The device restarts; the network is good again.
    repo.behave(&served, Behaviour::Normal);
    let report = attempt(&repo, dir.path(), &active, &dest, 0).expect("resumes");
    assert_eq!(report.resumed, partial.len() as u64);
    assert_eq!(report.fetched, (new.len() - partial.len()) as u64);
    assert_eq!(std::fs::read(&dest).expect("read"), new);
}
