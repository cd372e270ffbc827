//! Dependencies failing under traffic: a Redis of the test's own stopped (the server answers
//! 503 at once while it is gone, never admits unlimited traffic or leaves calls hanging) and
//! started again (the server uses it again within seconds),
//! and the server's PostgreSQL connections cut from the database side (the telemetry
//! writer connects again). The machine's shared services are never stopped.

use std::{
    process::{Child, Command, Stdio},
    time::Duration,
};

use crate::common::*;
use serde_json::json;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// A Redis of this test's own on `port` (no persistence).
fn own_redis(port: u16) -> Child {
    let mut child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server");
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return child;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("redis-server did not listen on {port}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_answers_503_at_once_and_back_is_used_again() {
    let port = free_port();
    let mut redis = own_redis(port);
    let s = start_with(
        Backend::Sqlite,
        |c| c.redis_url = Some(format!("redis://127.0.0.1:{port}")),
        None,
    )
    .await;
    let e = s.enroll(&device_id("cam"), "cam").await;
    let c = s.device_client(&e);
    let call = || {
        c.get(s.device_url("/v1/device/commands"))
            .header("authorization", v1(&e, unix_now()))
            .send()
    };
    assert_eq!(call().await.expect("call").status(), 200);

    redis.kill().expect("stop redis");
    redis.wait().expect("redis stopped");
    for _ in 0..3 {
        let asked = std::time::Instant::now();
        let r = call().await.expect("call");
        assert!(
            asked.elapsed() < Duration::from_secs(3),
            "{:?}",
            asked.elapsed()
        );
        assert_eq!(r.status(), 503);
        let v: serde_json::Value = r.json().await.expect("json");
        assert_eq!(v["error"], "unavailable", "{v}");
    }

    // Redis back on the same port: the server uses it again within a few seconds.
    let mut redis = own_redis(port);
    let back = std::time::Instant::now();
    let mut statuses = Vec::new();
    while back.elapsed() < Duration::from_secs(5) {
        let status = call().await.expect("call").status().as_u16();
        statuses.push(status);
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        statuses.last(),
        Some(&200),
        "Redis restarted {:?} ago, still refused: {statuses:?}",
        back.elapsed()
    );
    redis.kill().expect("stop redis");
    redis.wait().expect("redis stopped");

    s.running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_telemetry_writer_reconnects_after_postgres_cut_it_off() {
    let s = start(Backend::Postgres).await;
    let e = s.enroll(&device_id("cam"), "cam").await;
    let c = s.device_client(&e);
    let send = |i: i32| {
        c.post(s.device_url("/v1/device/telemetry"))
            .header("authorization", v1(&e, unix_now()))
            .json(&json!({ "records": [{ "i": i }] }))
            .send()
    };
    assert_eq!(send(0).await.expect("call").status(), 200);

    // Cut every connection of the server to its own test database (only that database's).
    let url = s.running.app.config.database_url();
    let database = url.rsplit('/').next().expect("database name").to_string();
    let admin = std::env::var("EDGEWARD_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let pool = sqlx::AnyPool::connect(&admin).await.expect("postgres");
    let cut = sqlx::query(&format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{database}'"
    ))
    .execute(&pool)
    .await
    .expect("terminate");
    assert!(cut.rows_affected() >= 1);

    let mut stored = 0;
    let mut statuses = Vec::new();
    for i in 1..=20 {
        let status = send(i).await.expect("call").status().as_u16();
        statuses.push(status);
        if status == 200 {
            stored += 1;
        } else {
            assert_eq!(status, 503, "{statuses:?}");
        }
        if stored >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(stored >= 3, "telemetry is not stored again: {statuses:?}");
    let (_, v) = s.admin_get(&format!("/v1/admin/devices/{}", e.id)).await;
    assert_eq!(v["telemetry_batches"], 1 + stored, "{v}");
    s.running.stop().await;
}
