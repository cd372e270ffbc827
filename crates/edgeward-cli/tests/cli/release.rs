//! `edgeward release …`: publish, list and rotate-keys on a repository directory (and
//! their refusals: a key that is not the role's, the key a rotation retired, a wrong root
//! passphrase), then rollout and status against a real edgeward-server serving that
//! repository (refusals: an unknown version, a bad percentage, no selector).

use std::path::Path;

use serde_json::Value;

use crate::common::*;
use crate::fleet::{args, cli, Env};

fn publish(repo: &Path, version: &str, file: &Path, extra: &[&str]) -> std::process::Command {
    let mut c = edgeward();
    c.args(["release", "publish", "--repo"])
        .arg(repo)
        .args(["--version", version, "--hardware", "cam"])
        .args(extra)
        .arg(file);
    c
}

fn list(repo: &Path) -> Value {
    let out = ok(edgeward()
        .args(["release", "list", "--json", "--repo"])
        .arg(repo));
    serde_json::from_str(&out).expect("json")
}

#[test]
fn publish_list_rotate_and_their_refusals() {
    let tmp = tempfile::tempdir().expect("tmp");
    let repo = tmp.path().join("repo");
    let keys = tmp.path().join("repo.keys");
    let fw = tmp.path().join("fw.img");
    std::fs::write(&fw, bytes(200_000, 1)).expect("write");

    let out = ok(&mut publish(
        &repo,
        "1.0.0",
        &fw,
        &["--security-counter", "3"],
    ));
    assert!(
        out.starts_with("published fw.img (200000 bytes, ")
            && out.contains("as 1.0.0 in role targets"),
        "{out}"
    );
    let v = list(&repo);
    let t = &v["targets"][0];
    assert_eq!(
        (
            t["target"].as_str(),
            t["version"].as_str(),
            t["security_counter"].as_u64()
        ),
        (Some("fw.img"), Some("1.0.0"), Some(3))
    );
    assert_eq!(t["hardware"], serde_json::json!(["cam"]));

    // A key that is not the targets role's cannot publish; nothing changes.
    let err = fails(
        &mut publish(
            &repo,
            "1.0.1",
            &fw,
            &[
                "--targets-key",
                keys.join("snapshot.key").to_str().expect("utf8"),
            ],
        ),
        2,
    );
    assert!(err.contains("is not a key of role targets"), "{err}");
    assert_eq!(list(&repo)["targets"][0]["version"], "1.0.0");

    // A wrong root passphrase rotates nothing.
    let err = fails(
        edgeward()
            .env("EDGEWARD_ROOT_PASSPHRASE", "not-the-passphrase")
            .args(["release", "rotate-keys", "--repo"])
            .arg(&repo),
        2,
    );
    assert!(err.contains("root.key"), "{err}");
    assert!(!repo.join("metadata/2.root.json").exists());

    let out = ok(edgeward()
        .args(["release", "rotate-keys", "--repo"])
        .arg(&repo));
    assert!(
        out.contains("root version 2 signed by the old and the new root keys"),
        "{out}"
    );
    // The retired signing key no longer publishes; the new one does.
    let old = keys.join("previous/targets-root1.key");
    let err = fails(
        &mut publish(
            &repo,
            "1.1.0",
            &fw,
            &["--targets-key", old.to_str().expect("utf8")],
        ),
        2,
    );
    assert!(err.contains("is not a key of role targets"), "{err}");
    let fw2 = tmp.path().join("fw2.img");
    std::fs::write(&fw2, bytes(1000, 2)).expect("write");
    ok(&mut publish(&repo, "1.1.0", &fw2, &[]));
    let targets = list(&repo)["targets"].as_array().expect("targets").len();
    assert_eq!(targets, 2);

    let err = fails(&mut publish(&repo, "1.2.0", &fw2, &["--kind", "kernel"]), 2);
    assert!(err.contains("invalid value 'kernel'"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollout_and_status_against_a_real_server() {
    let tmp = tempfile::tempdir().expect("tmp");
    let repo = tmp.path().join("repo");
    let fw = tmp.path().join("fw.img");
    std::fs::write(&fw, bytes(5000, 3)).expect("write");
    ok(&mut publish(&repo, "1.0.0", &fw, &[]));
    let data = tempfile::tempdir().expect("tmp");
    let running = edgeward_server::start(edgeward_server::Config {
        data_dir: data.path().to_path_buf(),
        listen: ([127, 0, 0, 1], 0).into(),
        admin_listen: ([127, 0, 0, 1], 0).into(),
        enroll_listen: ([127, 0, 0, 1], 0).into(),
        update_repo: Some(repo.clone()),
        ..Default::default()
    })
    .await
    .expect("server");
    let env = Env {
        server: format!("https://localhost:{}", running.admin_addr.port()),
        ca: data.path().join("server-ca.pem"),
        token_file: data.path().join("admin-token"),
    };
    for (a, code, needle) in [
        (
            &["release", "rollout", "9.9.9", "--percent", "5"][..],
            1,
            "unknown version \"9.9.9\"",
        ),
        (
            &["release", "rollout", "1.0.0", "--percent", "0"],
            1,
            "percent must be above 0",
        ),
        (
            &["release", "rollout", "1.0.0", "--percent", "100.5"],
            1,
            "percent must be above 0",
        ),
        (
            &[
                "release",
                "rollout",
                "1.0.0",
                "--percent",
                "5",
                "--threshold",
                "101",
            ],
            1,
            "threshold must be",
        ),
        (
            &[
                "release",
                "rollout",
                "1.0.0",
                "--percent",
                "5",
                "--hardware",
                "cam",
            ],
            2,
            "cannot be used with",
        ),
        (
            &["release", "rollout", "1.0.0"],
            2,
            "the following required arguments were not provided",
        ),
        (
            &["release", "status", "1.0.0"],
            1,
            "no rollout of version \"1.0.0\"",
        ),
    ] {
        let err = cli(args(a), &env, code).await;
        assert!(err.contains(needle), "{a:?}: {err}");
    }
    let out = cli(
        args(&["release", "rollout", "1.0.0", "--percent", "25"]),
        &env,
        0,
    )
    .await;
    assert_eq!(
        out,
        "1.0.0 stage 1: offered to 25 % of devices; halts above 5 % reverted once 10 finished\n"
    );
    let out = cli(
        args(&[
            "release",
            "rollout",
            "1.0.0",
            "--hardware",
            "cam",
            "--threshold",
            "2.5",
            "--min-sample",
            "3",
        ]),
        &env,
        0,
    )
    .await;
    assert!(
        out.starts_with("1.0.0 stage 2: offered to hardware class cam"),
        "{out}"
    );
    let out = cli(args(&["release", "status", "1.0.0"]), &env, 0).await;
    assert_eq!(
        out,
        "release 1.0.0 stage 2: offered to hardware class cam, threshold 2.5 %, min sample 3\n\
         offered 0  downloaded 0  installed 0  confirmed 0  reverted 0\nrunning\n"
    );
    let out = cli(args(&["release", "status", "1.0.0", "--json"]), &env, 0).await;
    let v: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(
        (v["stage"].as_i64(), v["halted"].as_bool()),
        (Some(2), Some(false))
    );
    assert_eq!(v["selector"], serde_json::json!({"hardware": "cam"}));
    running.stop().await;
}
