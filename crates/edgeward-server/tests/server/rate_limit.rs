//! Rate limits: exactly the burst, then exactly the rate (with a controllable clock); the
//! per-address limit in front of authentication; two replicas sharing one PostgreSQL and one
//! Redis admitting no more than the quota in total, and refusing on one a v2 nonce already
//! used on the other.

use std::sync::Arc;

use crate::common::*;
use edgeward_server::{
    clock::{Clock, ManualClock},
    config::LimitConfig,
};

fn real_now_ns() -> u64 {
    unix_now() * 1_000_000_000
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_the_burst_then_exactly_the_rate() {
    let clock = ManualClock::at(real_now_ns());
    let s = start_with(
        Backend::Sqlite,
        |c| {
            c.class_limits.insert(
                "cam".into(),
                LimitConfig {
                    per_second: 10,
                    burst: 5,
                },
            );
        },
        Some(Arc::new(clock.clone())),
    )
    .await;
    let e = s.enroll(&device_id("cam"), "cam").await;
    let c = s.device_client(&e);
    let now_secs = || clock.now_ns() / 1_000_000_000;
    let call = || {
        c.get(s.device_url("/v1/device/commands"))
            .header("authorization", v1(&e, now_secs()))
            .send()
    };
    let mut statuses = Vec::new();
    for _ in 0..8 {
        statuses.push(call().await.expect("call").status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429, 429, 429]);
    let r = call().await.expect("call");
    assert_eq!(
        r.headers().get("retry-after").and_then(|v| v.to_str().ok()),
        Some("1")
    );
    for step in 0..20 {
        clock.advance(100_000_000);
        assert_eq!(call().await.expect("call").status(), 200, "step {step}");
        assert_eq!(call().await.expect("call").status(), 429, "step {step}");
    }
    s.running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_address_limit_applies_before_authentication() {
    let clock = ManualClock::at(real_now_ns());
    let s = start_with(
        Backend::Sqlite,
        |c| {
            c.ip_limit = LimitConfig {
                per_second: 1,
                burst: 3,
            }
        },
        Some(Arc::new(clock.clone())),
    )
    .await;
    let e = s.enroll(&device_id("gw"), "gw").await;
    let c = s.device_client(&e);
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(
            c.get(s.device_url("/v1/device/commands"))
                .send()
                .await
                .expect("call")
                .status()
                .as_u16(),
        );
    }
    assert_eq!(statuses, [401, 401, 401, 429, 429]);
    s.running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_sharing_redis_admit_the_quota_once() {
    let redis =
        std::env::var("EDGEWARD_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let limit = |c: &mut edgeward_server::Config| {
        c.redis_url = Some(redis.clone());
        c.device_limit = LimitConfig {
            per_second: 1,
            burst: 10,
        };
    };
    let a = start_with(Backend::Postgres, limit, None).await;
    // The second replica shares the first one's registry (PostgreSQL), keys and Redis.
    let (b_running, _b_dir) = replica(&a, limit).await;
    let e = a.enroll(&device_id("fleet"), "cam").await;
    let c = a.device_client(&e);
    let mut allowed = 0;
    let mut tasks = Vec::new();
    for i in 0..40u16 {
        let port = if i % 2 == 0 {
            a.running.device_addr.port()
        } else {
            b_running.device_addr.port()
        };
        let (c, auth) = (c.clone(), v1(&e, unix_now()));
        tasks.push(tokio::spawn(async move {
            c.get(format!("https://127.0.0.1:{port}/v1/device/commands"))
                .header("authorization", auth)
                .send()
                .await
                .map(|r| r.status().as_u16())
        }));
    }
    for t in tasks {
        if t.await.expect("join").expect("call") == 200 {
            allowed += 1;
        }
    }
    // 10 at once, plus at most one more per second the test takes.
    assert!(
        (10..=12).contains(&allowed),
        "{allowed} requests admitted across both replicas"
    );
    b_running.stop().await;
    a.running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v2_nonce_used_on_one_replica_is_refused_on_the_other() {
    let redis =
        std::env::var("EDGEWARD_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let shared = |c: &mut edgeward_server::Config| c.redis_url = Some(redis.clone());
    let a = start_with(Backend::Postgres, shared, None).await;
    let (b_running, _b_dir) = replica(&a, shared).await;
    let e = a.enroll(&device_id("replay"), "cam").await;
    let c = a.device_client(&e);
    let req = edgeward_proto::token::Request {
        method: "GET",
        target: "/v1/device/commands",
        body_sha256: edgeward_proto::token::body_sha256(b""),
    };
    let token = format!(
        "Device {}",
        edgeward_proto::token::create_v2(&e.id, &e.secret, unix_now(), rand_bytes::<16>(), &req)
    );
    let call = |port: u16| {
        c.get(format!("https://127.0.0.1:{port}/v1/device/commands"))
            .header("authorization", token.clone())
            .send()
    };
    let first = call(a.running.device_addr.port()).await.expect("call");
    assert_eq!(first.status(), 200);
    let replay = call(b_running.device_addr.port()).await.expect("call");
    assert_eq!(replay.status(), 401);
    assert!(replay.text().await.expect("text").contains("replay"));
    b_running.stop().await;
    a.running.stop().await;
}

/// A weighted check (a download's KiB) in Redis is all or nothing, like in process: with
/// one unit a second and a burst of 1000, 600 pass, then 500 cannot (they would need 100 s
/// of refill), 400 can, and a fresh key never takes more than the burst.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_checks_in_redis_take_their_cost_or_nothing() {
    use edgeward_proto::gcra::{Decision, Quota};
    use edgeward_server::rate_limit::Store;
    let redis =
        std::env::var("EDGEWARD_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let store = Store::redis(&redis).await.expect("redis");
    let quota = Quota::per_second(1, 1000);
    let key = format!("upd:test-{}", device_id("w"));
    let check = |cost: u32| store.check_n(&key, &quota, 0, cost);
    assert!(matches!(
        check(600).await.expect("redis"),
        Decision::Allow { .. }
    ));
    match check(500).await.expect("redis") {
        Decision::Deny { retry_after_ns } => assert!(
            retry_after_ns > 90_000_000_000,
            "100 s less the time the test took: {retry_after_ns} ns"
        ),
        d => panic!("500 more passed: {d:?}"),
    }
    assert!(matches!(
        check(400).await.expect("redis"),
        Decision::Allow { .. }
    ));
    let fresh = format!("{key}-fresh");
    assert!(matches!(
        store.check_n(&fresh, &quota, 0, 1001).await.expect("redis"),
        Decision::Deny { .. }
    ));
}
