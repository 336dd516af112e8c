//! Retries against real failing servers: connect-refused POSTs succeed on another server, a
//! dead server is ejected and gets no more attempts, and the retry budget caps the extra load a
//! failing pool can cause.

mod common;

use std::time::Duration;

use bytes::Bytes;
use switchyard_config::{EjectionConfig, HealthConfig, RetryConfig};
use switchyard_tests::{KeepAliveClient, TestApp, poll_until};

/// Health checks that run once at start and then practically never, so the tests see what
/// passive failure handling alone does.
fn lazy_health() -> HealthConfig {
    HealthConfig {
        interval: Duration::from_secs(3600),
        ..HealthConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_refused_posts_succeed_via_retry_and_the_dead_server_is_ejected() {
    let a = TestApp::start("green").await;
    let b = TestApp::start("green").await;
    let blue = TestApp::start("blue").await;
    let mut config = common::two_colours(&[a.addr(), b.addr()], &[blue.addr()]);
    let svc = config.services.get_mut("app").expect("app");
    svc.health = lazy_health();
    svc.ejection = EjectionConfig {
        consecutive_failures: 2,
        base: Duration::from_secs(3600),
        max: Duration::from_secs(3600),
        ..EjectionConfig::default()
    };
    let proxy = common::start(config).await;
    common::wait_healthy(&proxy, "green").await;
    a.kill().await;

    let mut client = KeepAliveClient::connect(common::http(&proxy)).await;
    for i in 0..20 {
        let body = format!("order {i}");
        let r = client
            .post("/order", "app.test", body.clone())
            .await
            .expect("answer");
        assert_eq!(r.status, 200, "POST {i} succeeds: {}", r.text());
        assert_eq!(r.colour(), Some("green"));
    }
    // Every POST was processed exactly once, all by the live server.
    let mut posts: Vec<Bytes> = b.posts();
    posts.sort();
    let mut expected: Vec<Bytes> = (0..20).map(|i| Bytes::from(format!("order {i}"))).collect();
    expected.sort();
    assert_eq!(posts, expected);

    let status = proxy.status();
    let dead = status.services["app"].pools["green"]
        .servers
        .iter()
        .find(|s| s.addr == a.addr().to_string())
        .expect("server a in status");
    assert!(dead.ejected, "the dead server is ejected: {dead:?}");
    assert!(!dead.healthy);

    // Bring it back: while ejected (and with no health check to end the ejection) it gets
    // no attempts at all.
    a.restart().await;
    for _ in 0..10 {
        let r = client.get("/", "app.test").await.expect("answer");
        assert_eq!(r.status, 200);
    }
    assert_eq!(a.count_path("/"), 0, "an ejected server receives nothing");
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passing_health_check_ends_an_ejection() {
    let a = TestApp::start("green").await;
    let b = TestApp::start("green").await;
    let blue = TestApp::start("blue").await;
    let mut config = common::two_colours(&[a.addr(), b.addr()], &[blue.addr()]);
    let svc = config.services.get_mut("app").expect("app");
    svc.health.fall = 100; // health checks alone never mark it down
    svc.ejection = EjectionConfig {
        consecutive_failures: 1,
        base: Duration::from_secs(3600),
        max: Duration::from_secs(3600),
        ..EjectionConfig::default()
    };
    let proxy = common::start(config).await;
    common::wait_healthy(&proxy, "green").await;
    a.kill().await;
    let mut client = KeepAliveClient::connect(common::http(&proxy)).await;
    // Traffic until the proxy has tried (and ejected) the dead server.
    for _ in 0..4 {
        assert_eq!(
            client.get("/", "app.test").await.expect("answer").status,
            200
        );
    }
    let ejected = || {
        proxy.status().services["app"].pools["green"]
            .servers
            .iter()
            .any(|s| s.ejected)
    };
    assert!(ejected(), "the dead server was ejected");
    // The app comes back on the same port: its next passing health check ends the ejection,
    // long before the hour-long ejection period.
    a.restart().await;
    poll_until(Duration::from_secs(10), || {
        let e = ejected();
        async move { !e }
    })
    .await;
    let before = a.count_path("/");
    for _ in 0..6 {
        assert_eq!(
            client.get("/", "app.test").await.expect("answer").status,
            200
        );
    }
    assert!(
        a.count_path("/") > before,
        "the restarted server is back in rotation"
    );
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retry_budget_caps_attempts_when_a_whole_pool_fails() {
    let apps = [
        TestApp::start("green").await,
        TestApp::start("green").await,
        TestApp::start("green").await,
    ];
    let blue = TestApp::start("blue").await;
    let addrs: Vec<_> = apps.iter().map(TestApp::addr).collect();
    let mut config = common::two_colours(&addrs, &[blue.addr()]);
    let svc = config.services.get_mut("app").expect("app");
    svc.ejection.consecutive_failures = 0; // keep every server in rotation: count pure retries
    svc.retry = RetryConfig {
        attempts: 3,
        backoff_base: Duration::ZERO,
        backoff_max: Duration::ZERO,
        budget_ratio: 0.2,
        budget_min: 0,
        ..RetryConfig::default()
    };
    let proxy = common::start(config).await;
    common::wait_healthy(&proxy, "green").await;

    const REQUESTS: u64 = 200;
    let mut client = KeepAliveClient::connect(common::http(&proxy)).await;
    for _ in 0..REQUESTS {
        let r = client.get("/status/503", "app.test").await.expect("answer");
        // The upstream's own 503 is passed on once retries are exhausted or refused.
        assert_eq!(r.status, 503);
        assert_eq!(r.colour(), Some("green"), "the answer is the upstream's");
    }
    let attempts: u64 = apps.iter().map(|a| a.count_path("/status/503")).sum();
    let retries = attempts - REQUESTS;
    println!(
        "retry budget: {REQUESTS} requests to a failing pool made {attempts} attempts ({retries} retries; without a budget up to {})",
        REQUESTS * 3
    );
    assert!(retries > 0, "failed idempotent requests are retried");
    // 20% of the requests in the window, plus slack for the window boundary.
    assert!(
        retries <= REQUESTS / 5 + 2,
        "the budget caps retries: {retries}"
    );
    proxy.shutdown().await;
}
