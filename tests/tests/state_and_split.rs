//! Durable decisions, weighted splits and draining, against real apps.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use switchyard_config::RateLimitConfig;
use switchyard_proxy::ControlError;
use switchyard_tests::{KeepAliveClient, TestApp, poll_until};

#[tokio::test]
async fn a_switch_survives_a_restart_through_the_state_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state.json");
    let green = TestApp::start("green").await;
    let blue = TestApp::start("blue").await;
    let mut config = common::two_colours(&[green.addr()], &[blue.addr()]);
    config.state.file = Some(state.clone());

    let proxy = common::start(config.clone()).await;
    common::wait_healthy(&proxy, "blue").await;
    proxy.switch(None, "blue", false).await.expect("switch");
    proxy.shutdown().await;
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&state).expect("state written")).expect("JSON");
    assert_eq!(saved["services"]["app"]["active"], "blue");

    // A new proxy from the same config starts on blue, with green as the rollback target.
    let proxy = common::start(config.clone()).await;
    let s = proxy.status();
    assert_eq!(s.services["app"].active, "blue");
    assert_eq!(s.services["app"].previous.as_deref(), Some("green"));
    let mut client = KeepAliveClient::connect(common::http(&proxy)).await;
    assert_eq!(
        client.get("/", "a.test").await.expect("answer").colour(),
        Some("blue")
    );
    proxy.rollback(None, true).await.expect("rollback");
    proxy.shutdown().await;
    let proxy = common::start(config.clone()).await;
    assert_eq!(proxy.status().services["app"].active, "green");
    proxy.shutdown().await;

    // The config's own `active` changed since the decision: the config wins.
    let proxy = common::start(config.clone()).await;
    proxy.switch(None, "blue", true).await.expect("switch");
    proxy.shutdown().await;
    let mut edited = config.clone();
    edited.services.get_mut("app").expect("app").active = "blue".into();
    let proxy = common::start(edited.clone()).await;
    assert_eq!(proxy.status().services["app"].active, "blue");
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_corrupt_or_stale_state_file_is_ignored_not_fatal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state.json");
    let green = TestApp::start("green").await;
    let blue = TestApp::start("blue").await;
    let mut config = common::two_colours(&[green.addr()], &[blue.addr()]);
    config.state.file = Some(state.clone());

    std::fs::write(&state, b"{ this is not json").expect("write");
    let proxy = common::start(config.clone()).await;
    assert_eq!(proxy.status().services["app"].active, "green");
    proxy.shutdown().await;

    // Stale: names a pool the config no longer has, and a service that is gone.
    std::fs::write(
        &state,
        br#"{"version":1,"generation":9,"services":{
            "app":{"active":"purple","previous":"green","config_active":"green"},
            "gone":{"active":"blue","previous":null,"config_active":"blue"}}}"#,
    )
    .expect("write");
    let proxy = common::start(config.clone()).await;
    assert_eq!(proxy.status().services["app"].active, "green");
    // The next switch rewrites the file cleanly.
    proxy.switch(None, "blue", true).await.expect("switch");
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&state).expect("state")).expect("JSON");
    assert_eq!(saved["services"]["app"]["active"], "blue");
    assert!(saved["services"].get("gone").is_none());
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_sends_its_share_and_a_switch_ends_it() {
    let green = TestApp::start("green").await;
    let blue = TestApp::start("blue").await;
    let proxy = common::start(common::two_colours(&[green.addr()], &[blue.addr()])).await;
    // A split is health-gated like a switch: blue must pass its checks first.
    common::wait_healthy(&proxy, "blue").await;
    let weights = BTreeMap::from([("blue".to_string(), 10), ("green".to_string(), 90)]);
    proxy.split(None, weights).await.expect("split");
    let s = proxy.status();
    assert_eq!(
        s.services["app"].split.as_ref().map(|w| w["blue"]),
        Some(10)
    );
    assert_eq!(
        s.services["app"].pools["blue"].state, "active",
        "a pool with a share is live"
    );

    const N: usize = 3000;
    let mut client = KeepAliveClient::connect(common::http(&proxy)).await;
    let mut blue_answers = 0;
    for _ in 0..N {
        let r = client.get("/", "a.test").await.expect("answer");
        if r.colour() == Some("blue") {
            blue_answers += 1;
        }
    }
    let share = blue_answers as f64 / N as f64;
    println!("split 10/90 over {N} requests: blue share {share:.3}");
    // Binomial(3000, 0.1) has a standard deviation of ~0.55%: ±3% is over five of them.
    assert!((0.07..=0.13).contains(&share), "blue share {share}");

    proxy.switch(None, "blue", true).await.expect("switch");
    assert!(
        proxy.status().services["app"].split.is_none(),
        "a switch ends the split"
    );
    for _ in 0..50 {
        assert_eq!(
            client.get("/", "a.test").await.expect("answer").colour(),
            Some("blue")
        );
    }
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_old_pool_drains_then_goes_idle() {
    let green = TestApp::start("green").await;
    let blue = TestApp::start("blue").await;
    let proxy = common::start(common::two_colours(&[green.addr()], &[blue.addr()])).await;
    common::wait_healthy(&proxy, "blue").await;
    let addr = common::http(&proxy);
    let slow = tokio::spawn(async move {
        let mut client = KeepAliveClient::connect(addr).await;
        client
            .get("/slow?ms=600", "a.test")
            .await
            .expect("slow answer")
    });
    poll_until(Duration::from_secs(10), || {
        let n = proxy.status().services["app"].pools["green"].in_flight;
        async move { n == 1 }
    })
    .await;
    proxy.switch(None, "blue", false).await.expect("switch");
    let s = proxy.status();
    assert_eq!(s.services["app"].pools["green"].state, "draining");
    assert_eq!(s.services["app"].pools["green"].in_flight, 1);
    assert_eq!(s.services["app"].pools["green"].servers[0].in_flight, 1);
    assert_eq!(s.services["app"].pools["blue"].state, "active");
    let r = slow.await.expect("task");
    assert_eq!(
        r.colour(),
        Some("green"),
        "the in-flight request finished on its colour"
    );
    poll_until(Duration::from_secs(10), || {
        let state = proxy.status().services["app"].pools["green"].state.clone();
        async move { state == "idle" }
    })
    .await;
    // A few seconds after draining, the idle pool's pooled connections to green are closed
    // (health checks use one-shot connections, so green ends with none open).
    assert!(
        green.open_connections() > 0,
        "the proxy kept a pooled connection to green"
    );
    poll_until(Duration::from_secs(15), || {
        let open = green.open_connections();
        async move { open == 0 }
    })
    .await;
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_reload_that_cannot_be_saved_leaves_routing_limits_and_connections_as_they_were() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state_dir = dir.path().join("state");
    std::fs::create_dir(&state_dir).expect("state dir");
    let green = TestApp::start("green").await;
    let blue = TestApp::start("blue").await;
    let mut config = common::two_colours(&[green.addr()], &[blue.addr()]);
    config.state.file = Some(state_dir.join("state.json"));
    let app = config.services.get_mut("app").expect("app");
    // One health check per server at the start and none during the test, so the apps'
    // connection counts are the proxy's upstream connections.
    app.health.interval = Duration::from_secs(3600);
    app.rate_limits = vec![RateLimitConfig {
        path_prefix: Some("/status".into()),
        rate: 0.2,
        burst: 0,
    }];
    let proxy = common::start(config.clone()).await;
    poll_until(Duration::from_secs(10), || async {
        green.health_checks() >= 1 && blue.health_checks() >= 1
    })
    .await;
    let mut client = KeepAliveClient::connect(common::http(&proxy)).await;
    assert_eq!(
        client.get("/", "a.test").await.expect("answer").colour(),
        Some("green")
    );
    assert_eq!(status_200(&mut client).await, 200);
    assert_eq!(status_200(&mut client).await, 429);
    let connections = green.connections();
    let before = proxy.snapshot();

    // The state file's directory becomes a plain file: nothing can be saved (even as root).
    std::fs::remove_dir_all(&state_dir).expect("remove the state dir");
    std::fs::write(&state_dir, b"not a directory").expect("a file in its place");
    // The new config swaps the apps of the two pools (green's traffic to the blue app),
    // loosens the limit and keeps idle upstream connections for 1 ms only.
    let mut next = common::two_colours(&[blue.addr()], &[green.addr()]);
    next.state = config.state.clone();
    let app = next.services.get_mut("app").expect("app");
    app.health = config.services["app"].health.clone();
    app.rate_limits = vec![RateLimitConfig {
        burst: 5,
        ..config.services["app"].rate_limits[0].clone()
    }];
    app.upstream.idle_timeout = Duration::from_millis(1);
    let refused = proxy.reload(next.clone()).await;
    assert!(
        matches!(refused, Err(ControlError::Persist(_))),
        "the reload cannot be saved: {refused:?}"
    );
    assert!(
        std::sync::Arc::ptr_eq(&before, &proxy.snapshot()),
        "the running snapshot stays in force"
    );
    // Long enough for a 1 ms idle timeout to pass, had it leaked into the running snapshot.
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(
        client.get("/", "a.test").await.expect("answer").colour(),
        Some("green"),
        "the old routing still works, to the server the failed reload took out of the pool"
    );
    assert_eq!(
        green.connections(),
        connections,
        "the idle upstream connection was reused: the old idle timeout still applies"
    );
    assert_eq!(
        status_200(&mut client).await,
        429,
        "the rate limit and its buckets are unchanged"
    );
    let metrics = proxy.metrics_text();
    assert!(
        metrics.contains(r#"switchyard_requests_total{service="app",pool="green",class="2xx"} 3"#),
        "the counters are unchanged:\n{metrics}"
    );

    // Once the state can be saved again, the same reload applies.
    std::fs::remove_file(&state_dir).expect("remove the file");
    std::fs::create_dir(&state_dir).expect("state dir");
    proxy.reload(next).await.expect("the reload applies");
    assert_eq!(
        client.get("/", "a.test").await.expect("answer").colour(),
        Some("blue")
    );
    assert_eq!(
        status_200(&mut client).await,
        200,
        "the changed limit starts afresh"
    );
    proxy.shutdown().await;
}

/// The status of `GET /status/200` on `a.test` (the rate-limited path of the reload test).
async fn status_200(client: &mut KeepAliveClient) -> http::StatusCode {
    client
        .get("/status/200", "a.test")
        .await
        .expect("answer")
        .status
}
