//! Offline operation against the real server: while the server is down the agent queues
//! every event on disk; when it returns, each queued event arrives exactly once and in order
//! (the agent resends nothing the server acknowledged); and an agent killed (SIGKILL) in the
//! middle of delivering a backlog loses nothing and duplicates nothing after its restart.

mod common;

use std::process::{Child, Command};

use common::*;

fn agent(config: &std::path::Path) -> Child {
    spawn_agent(env!("CARGO_BIN_EXE_edgeward-agent"), config)
}

fn status(config: &std::path::Path) -> Option<serde_json::Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_edgeward-agent"))
        .args(["status", "--json", "--config"])
        .arg(config)
        .output()
        .ok()?;
    serde_json::from_slice(&out.stdout).ok()
}

/// Every event number the server stored for `id`, in storage order.
async fn stored_seqs(server: &Server, id: &str) -> Vec<u64> {
    let mut seqs = Vec::new();
    for batch in server.telemetry(id).await {
        let (first, last) = (
            batch["first_seq"].as_u64().expect("numbered batch"),
            batch["last_seq"].as_u64().expect("numbered batch"),
        );
        assert_eq!(
            batch["records"].as_array().map(Vec::len),
            Some((last - first + 1) as usize)
        );
        seqs.extend(first..=last);
    }
    seqs
}

async fn duplicates(server: &Server) -> u64 {
    let r = server
        .admin
        .get(server.admin_url("/metrics"))
        .send()
        .await
        .expect("metrics");
    let text = r.text().await.expect("text");
    text.lines()
        .find(|l| l.starts_with("edgeward_telemetry_batches_total{outcome=\"duplicate\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn kill(child: &mut Child, signal: &str) {
    let ok = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(ok.success());
    let _ = child.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_then_kill_mid_delivery_every_event_exactly_once_in_order() {
    let server = Server::start().await;
    let ports = server.ports();
    let id = device_id("cam");
    let token = server.register(&id).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = agent_config(&server, dir.path(), &token, "batch_max = 3\n");
    let mut child = agent(&config);
    wait_for(30, "first telemetry", || async {
        !stored_seqs(&server, &id).await.is_empty()
    })
    .await;

    // The server goes away; the agent keeps sampling into its queue.
    let data = server.stop().await;
    wait_for(30, "a backlog of 12 events", || async {
        status(&config).is_some_and(|s| {
            s["queue_len"].as_u64().unwrap_or(0) >= 12
                && !s["server_reachable"].as_bool().unwrap_or(true)
        })
    })
    .await;
    let server = Server::start_on(data, ports).await;
    wait_for(30, "the backlog delivered", || async {
        status(&config).is_some_and(|s| s["queue_len"] == 0 && s["server_reachable"] == true)
    })
    .await;
    let seqs = stored_seqs(&server, &id).await;
    let expected: Vec<u64> = (1..=*seqs.last().expect("events")).collect();
    assert_eq!(seqs, expected, "every event once, in order");
    // At most the batch in flight when the server stopped comes again: stored, but its answer
    // never reached the agent (and the server recognises it).
    assert!(
        duplicates(&server).await <= 1,
        "only an unanswered batch is sent again"
    );

    // Another outage; then the agent is killed while it delivers the backlog in batches of 3.
    let data = server.stop().await;
    wait_for(30, "a second backlog", || async {
        status(&config).is_some_and(|s| s["queue_len"].as_u64().unwrap_or(0) >= 30)
    })
    .await;
    let server = Server::start_on(data, ports).await;
    let stored_before = stored_seqs(&server, &id).await.len();
    wait_for(30, "delivery under way", || async {
        stored_seqs(&server, &id).await.len() > stored_before
    })
    .await;
    kill(&mut child, "-KILL");
    let mid = stored_seqs(&server, &id).await.len();
    let mut child = agent(&config);
    wait_for(30, "the rest delivered after the restart", || async {
        status(&config).is_some_and(|s| s["queue_len"] == 0 && s["server_reachable"] == true)
            && stored_seqs(&server, &id).await.len() > mid
    })
    .await;
    let seqs = stored_seqs(&server, &id).await;
    let expected: Vec<u64> = (1..=*seqs.last().expect("events")).collect();
    assert_eq!(
        seqs, expected,
        "nothing lost, nothing stored twice across the kill"
    );
    // At most the batch in flight at the kill was sent again (and recognised).
    assert!(duplicates(&server).await <= 1);
    kill(&mut child, "-TERM");
}
