//! The attacks beyond plain TUF, over real HTTP: a release for other hardware, a
//! release below the secure element's security counter, a tampered chunk and a server
//! that ignores range requests during a delta update — each refused with the exact
//! error and the installed version (the active slot) untouched.

use std::path::Path;
use std::time::Duration;

use edgeward_update::delta::{self, assemble, Job, LocalChunks, Options, Plan};
use edgeward_update::release::{Kind, ReleaseInfo};
use edgeward_update::tuf::hash::sha256;
use edgeward_update::tuf::store::MetadataStore;
use edgeward_update::tuf::transport::{AnyTransport, Limits};
use edgeward_update::tuf::{ClientConfig, Updater};

use crate::delta::{noise, target_file};
use crate::sim::{Behaviour, SimRepo};

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Publishes `data` as `fw.img` for `hardware` with `counter`, with its chunk index.
fn publish(repo: &mut SimRepo, data: &[u8], hardware: &str, counter: u64) -> String {
    let mut custom = ReleaseInfo {
        version: "2.0.0".into(),
        kind: Kind::Firmware,
        hardware: vec![hardware.into()],
        security_counter: counter,
    }
    .to_custom();
    custom["edgeward"]["chunks"] =
        target_file(data).custom.expect("custom")["edgeward"]["chunks"].clone();
    repo.add_target("targets", "fw.img", data, Some(custom));
    repo.publish(&["targets", "snapshot", "timestamp"]);
    repo.target_file_path("targets", "fw.img")
}

/// A device of class `rpi4` whose secure element's counter is 5 runs one update into
/// `dest` from `active`.
fn update(repo: &SimRepo, state: &Path, active: &Path, dest: &Path) -> Result<(), String> {
    let meta = state.join("meta");
    std::fs::create_dir_all(&meta).expect("mkdir");
    MetadataStore::new(&meta)
        .write("root", &repo.initial_root())
        .expect("root");
    let transport = AnyTransport::new(Limits::default(), None).expect("transport");
    let mut u = Updater::new(
        MetadataStore::new(&meta),
        &repo.metadata_url(),
        &transport,
        ClientConfig::default(),
        now(),
    )
    .map_err(|e| e.to_string())?;
    u.refresh().map_err(|e| e.to_string())?;
    let found = u.find_target("fw.img").map_err(|e| e.to_string())?;
    ReleaseInfo::from_target("fw.img", &found.file)
        .and_then(|info| info.check_device("fw.img", "rpi4", 5))
        .map_err(|e| e.to_string())?;
    let index = delta::target_index(&found.file)
        .map_err(|e| e.to_string())?
        .ok_or("no chunk index")?;
    let local = LocalChunks::scan(&index.params, &[active.to_path_buf()], u64::MAX)
        .map_err(|e| e.to_string())?;
    let plan = Plan::new(&index, &local);
    let url = u.target_url(&repo.targets_url(), &found);
    let progress = state.join("progress");
    let job = Job {
        target: "fw.img",
        file: &found.file,
        index: &index,
        url: &url,
        dest,
        progress: &progress,
    };
    let options = Options {
        retries: 1,
        backoff: Duration::from_millis(10),
        ..Options::default()
    };
    assemble(&job, &plan, &local, &transport, &options)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

struct Device {
    dir: tempfile::TempDir,
    old: Vec<u8>,
}

impl Device {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let old = noise(1 << 20, 31);
        std::fs::write(dir.path().join("slot-a"), &old).expect("write");
        Device { dir, old }
    }

    fn run(&self, repo: &SimRepo) -> Result<(), String> {
        update(
            repo,
            self.dir.path(),
            &self.dir.path().join("slot-a"),
            &self.dir.path().join("slot-b"),
        )
    }

    fn assert_untouched(&self) {
        assert_eq!(
            std::fs::read(self.dir.path().join("slot-a")).expect("read"),
            self.old
        );
    }
}

fn new_image(old: &[u8]) -> Vec<u8> {
    let mut new = old.to_vec();
    new[400_000..450_000].copy_from_slice(&noise(50_000, 32));
    new
}

#[test]
fn a_release_for_other_hardware_is_refused() {
    let mut repo = SimRepo::new();
    let d = Device::new();
    publish(&mut repo, &new_image(&d.old), "orin", 9);
    assert_eq!(
        d.run(&repo).unwrap_err(),
        "target fw.img is for hardware [\"orin\"], not for this device's \"rpi4\""
    );
    d.assert_untouched();
    assert!(!d.dir.path().join("slot-b").exists());
}

#[test]
fn a_release_below_the_secure_elements_counter_is_refused() {
    let mut repo = SimRepo::new();
    let d = Device::new();
    publish(&mut repo, &new_image(&d.old), "rpi4", 4);
    assert_eq!(
        d.run(&repo).unwrap_err(),
        "target fw.img has security counter 4, below the secure element's 5"
    );
    d.assert_untouched();
    assert!(!d.dir.path().join("slot-b").exists());
}

#[test]
fn a_tampered_chunk_served_over_http_is_refused() {
    let mut repo = SimRepo::new();
    let d = Device::new();
    let new = new_image(&d.old);
    let served = publish(&mut repo, &new, "rpi4", 5);
    let mut tampered = new.clone();
    tampered[420_000] ^= 0x01;
    repo.serve_file(&served, tampered.clone());
    let index = delta::target_index(&target_file(&new))
        .expect("ok")
        .expect("index");
    let (i, c) = index
        .chunks
        .iter()
        .enumerate()
        .find(|(_, c)| c.offset <= 420_000 && 420_000 < c.offset + u64::from(c.length))
        .expect("chunk");
    let end = c.offset + u64::from(c.length);
    let got = sha256(&tampered[c.offset as usize..end as usize]);
    assert_eq!(
        d.run(&repo).unwrap_err(),
        format!(
            "chunk {i} (bytes {}..{end}) of fw.img: sha256 {} does not match the signed {}",
            c.offset,
            hex::encode(got),
            hex::encode(c.sha256)
        )
    );
    d.assert_untouched();
    let written = std::fs::read(d.dir.path().join("slot-b")).unwrap_or_default();
    assert!(
        written.len() as u64 <= c.offset,
        "the tampered chunk or one after it was written"
    );
}

#[test]
fn a_server_ignoring_range_requests_is_refused_not_trusted() {
    let mut repo = SimRepo::new();
    let d = Device::new();
    let served = publish(&mut repo, &new_image(&d.old), "rpi4", 5);
    // Streams the whole file and then zeros with a 200, whatever range was asked.
    repo.behave(&served, Behaviour::Endless);
    let err = d.run(&repo).unwrap_err();
    assert!(
        err.starts_with(&format!(
            "fetching fw.img: {}{served}: asked for bytes ",
            repo.base
        )) && err.ends_with(", the server ignored the range"),
        "{err}"
    );
    d.assert_untouched();
}
