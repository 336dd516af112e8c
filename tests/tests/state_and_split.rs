//! Durable decisions, weighted splits and draining, against real apps.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

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
