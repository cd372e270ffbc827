//! The data directory is one server's: a second server on it is refused, a failed start
//! leaves no half-made directory, everything in it is private, and telemetry is stored
//! exactly as sent or refused.

use std::os::unix::fs::PermissionsExt;

use crate::common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_server_on_the_same_data_directory_is_refused() {
    let s = start(Backend::Sqlite).await;
    // Other ports, same directory: two writers with two registry caches (a device
    // quarantined through one would keep its access through the other).
    let c = config(Backend::Sqlite, s.dir.path()).await;
    let refused = match edgeward_server::start(c).await {
        Ok(_) => panic!("a second server started on a data directory in use"),
        Err(e) => e.to_string(),
    };
    let expected = format!(
        "the data directory {} is in use by another edgeward-server (process {})",
        s.dir.path().display(),
        std::process::id()
    );
    assert!(refused.starts_with(&expected), "{refused}");
    assert!(
        refused.contains("one server per data directory"),
        "{refused}"
    );
    // Once the first has stopped, the lock is free again.
    let dir = s.dir;
    s.running.stop().await;
    let c = config(Backend::Sqlite, dir.path()).await;
    let again = edgeward_server::start(c)
        .await
        .expect("starts after the first stopped");
    again.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_start_leaves_no_half_made_directory() {
    let parent = tempfile::tempdir().expect("tmp");
    let busy = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let fresh = parent.path().join("data");
    let mut c = config(Backend::Sqlite, &fresh).await;
    c.admin_listen = busy.local_addr().expect("addr");
    let refused = match edgeward_server::start(c).await {
        Ok(_) => panic!("started on a port in use"),
        Err(e) => e.to_string(),
    };
    assert!(
        refused.starts_with(&format!("{}: ", busy.local_addr().expect("addr"))),
        "{refused}"
    );
    assert!(!fresh.exists(), "a failed start left {}", fresh.display());

    // A database that cannot be reached fails after the directory was made: it goes again.
    let mut c = config(Backend::Sqlite, &fresh).await;
    c.database_url = Some("postgres://postgres@127.0.0.1:1/none".into());
    assert!(edgeward_server::start(c).await.is_err());
    assert!(!fresh.exists(), "a failed start left {}", fresh.display());
}

/// Every file under `dir` (recursively) with its mode.
fn modes(dir: &std::path::Path, out: &mut Vec<(std::path::PathBuf, u32)>) {
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let entry = entry.expect("entry");
        let mode = entry.metadata().expect("metadata").permissions().mode() & 0o777;
        if entry.file_type().expect("type").is_dir() {
            out.push((entry.path(), mode));
            modes(&entry.path(), out);
        } else {
            out.push((entry.path(), mode));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_directory_is_private() {
    let s = start(Backend::Sqlite).await;
    let e = s.enroll(&device_id("cam"), "cam").await;
    let r = s
        .device_client(&e)
        .post(s.device_url("/v1/device/telemetry"))
        .header("authorization", v1(&e, unix_now()))
        .json(&json!({ "records": [{ "t": 1 }] }))
        .send()
        .await
        .expect("call");
    assert_eq!(r.status(), 200);
    let mode = std::fs::metadata(s.dir.path())
        .expect("dir")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o700, "the data directory");
    let mut all = Vec::new();
    modes(s.dir.path(), &mut all);
    let names: Vec<String> = all
        .iter()
        .filter_map(|(p, _)| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    for expected in [
        "edgeward.db",
        "edgeward.db-wal",
        "master.key",
        "server-ca.pem",
        "pki",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} in {names:?}"
        );
    }
    for (path, mode) in &all {
        let want = if path.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(*mode, want, "{} is {mode:o}", path.display());
    }
    s.running.stop().await;
}

both_backends!(
    telemetry_that_is_not_utf8_is_refused,
    |backend| async move {
        let s = start(backend).await;
        let e = s.enroll(&device_id("cam"), "cam").await;
        let c = s.device_client(&e);
        let r = c
            .post(s.device_url("/v1/device/telemetry"))
            .header("authorization", v1(&e, unix_now()))
            .header("content-type", "application/json")
            .body(b"{\"records\":[{\"s\":\"caf\xe9\"}]}".to_vec())
            .send()
            .await
            .expect("call");
        assert_eq!(r.status(), 400);
        let v: serde_json::Value = r.json().await.expect("json");
        assert_eq!(v["error"], "bad_request", "{v}");
        assert_eq!(
            v["message"],
            "the telemetry batch is not UTF-8 (invalid utf-8 sequence of 1 bytes from index 21)",
            "{v}"
        );
        let (_, d) = s.admin_get(&format!("/v1/admin/devices/{}", e.id)).await;
        assert_eq!(d["telemetry_batches"], 0, "nothing stored: {d}");
        s.running.stop().await;
    }
);
