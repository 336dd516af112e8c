//! Safe rollouts against real apps: a sticky split keeps clients on their pool, a ramp moves
//! the split in even steps and ends as a switch (also across a restart), and a rollback during
//! a ramp returns everything at once.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use switchyard_proxy::SplitOptions;
use switchyard_tests::{KeepAliveClient, TestApp, poll_until};

const COOKIE: &str = "switchyard_pool_app";

async fn get_with_cookie(
    client: &mut KeepAliveClient,
    cookie: Option<&str>,
) -> switchyard_tests::Resp {
    let mut req = http::Request::builder().uri("/").header("host", "app.test");
    if let Some(c) = cookie {
        req = req.header("cookie", format!("theme=dark; {COOKIE}={c}"));
    }
    let req = req
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .expect("request");
    client.request(req).await.expect("an answer")
}

/// The pool a `Set-Cookie` answer names, if it sets the sticky cookie.
fn set_pool(resp: &switchyard_tests::Resp) -> Option<String> {
    resp.headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix(&format!("{COOKIE}=")))
        .and_then(|v| v.split(';').next())
        .map(str::to_string)
}

#[tokio::test]
async fn a_sticky_split_keeps_each_client_on_the_pool_it_first_got() {
    let green = TestApp::start("green").await;
    let blue = TestApp::start("blue").await;
    let proxy = common::start(common::two_colours(&[green.addr()], &[blue.addr()])).await;
    common::wait_healthy(&proxy, "blue").await;
    proxy
        .split_with(
            "test",
            None,
            BTreeMap::from([("blue".to_string(), 50)]),
            SplitOptions {
                force: false,
                sticky: true,
            },
        )
        .await
        .expect("sticky split");
    assert!(proxy.status().services["app"].sticky);
    let addr = common::http(&proxy);
    let mut seen = BTreeMap::<String, u32>::new();
    for _ in 0..40 {
        let mut client = KeepAliveClient::connect(addr).await;
        let first = get_with_cookie(&mut client, None).await;
        let colour = first.colour().expect("a colour").to_string();
        assert_eq!(
            set_pool(&first).as_deref(),
            Some(colour.as_str()),
            "the first answer names its pool"
        );
        *seen.entry(colour.clone()).or_default() += 1;
        for _ in 0..10 {
            let again = get_with_cookie(&mut client, Some(&colour)).await;
            assert_eq!(
                again.colour(),
                Some(colour.as_str()),
                "a sticky client stays"
            );
            assert_eq!(set_pool(&again), None, "no new cookie while it stays");
        }
    }
    assert_eq!(
        seen.len(),
        2,
        "new clients are drawn between both pools: {seen:?}"
    );

    // A cookie naming no pool of the service is ignored, and replaced.
    let mut client = KeepAliveClient::connect(addr).await;
    let resp = get_with_cookie(&mut client, Some("purple")).await;
    assert_eq!(set_pool(&resp).as_deref(), resp.colour());

    // Green leaves the split: a cookie naming it is ignored; the client moves to blue.
    proxy
        .split_with(
            "test",
            None,
            BTreeMap::from([("blue".to_string(), 100)]),
            SplitOptions {
                force: false,
                sticky: true,
            },
        )
        .await
        .expect("blue only");
    let resp = get_with_cookie(&mut client, Some("green")).await;
    assert_eq!(resp.colour(), Some("blue"));
    assert_eq!(set_pool(&resp).as_deref(), Some("blue"));
    // Without sticky, no cookie is set.
    proxy
        .split(None, BTreeMap::from([("blue".to_string(), 50)]))
        .await
        .expect("plain split");
    let resp = get_with_cookie(&mut client, None).await;
    assert_eq!(set_pool(&resp), None);
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ramp_moves_the_split_in_steps_and_ends_as_a_switch() {
    let green = TestApp::start("green").await;
    let blue = TestApp::start("blue").await;
    let proxy = common::start(common::two_colours(&[green.addr()], &[blue.addr()])).await;
    common::wait_healthy(&proxy, "blue").await;
    proxy
        .switch_ramped_as("test", None, "blue", false, Duration::from_secs(2))
        .await
        .expect("ramp starts");
    let addr = common::http(&proxy);
    let mut client = KeepAliveClient::connect(addr).await;
    // Requests all along, and the weight of blue each time it changes.
    let mut answers = Vec::new();
    let mut weights = Vec::new();
    let started = std::time::Instant::now();
    loop {
        let s = proxy.status();
        let app = &s.services["app"];
        let blue_weight = match &app.split {
            Some(split) => split.get("blue").copied().unwrap_or(0),
            None if app.active == "blue" => 100,
            None => 0,
        };
        if weights.last() != Some(&blue_weight) {
            weights.push(blue_weight);
        }
        if app.active == "blue" && app.split.is_none() {
            assert!(app.ramp.is_none(), "the ramp ends with the switch");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the ramp did not end: {weights:?}"
        );
        let resp = client.get("/", "app.test").await.expect("an answer");
        answers.push(resp.colour() == Some("blue"));
    }
    assert!(
        weights.windows(2).all(|w| w[0] < w[1]),
        "blue only grows: {weights:?}"
    );
    assert_eq!(
        weights.first(),
        Some(&10),
        "the first step at once: {weights:?}"
    );
    assert_eq!(weights.last(), Some(&100));
    assert!(weights.len() >= 5, "the steps were seen: {weights:?}");
    let quarter = answers.len() / 4;
    let share = |part: &[bool]| part.iter().filter(|b| **b).count() as f64 / part.len() as f64;
    let (early, late) = (
        share(&answers[..quarter]),
        share(&answers[answers.len() - quarter..]),
    );
    assert!(
        early < late,
        "blue's share rises: {early:.2} then {late:.2} over {} answers",
        answers.len()
    );
    let history = proxy.history(20);
    let steps = history.iter().filter(|e| e.actor == "ramp").count();
    assert!(steps >= 5, "each step is in the history: {history:?}");
    assert_eq!(history[0].actor, "ramp");
    assert_eq!(history[0].to.as_deref(), Some("blue"));
    assert!(
        history
            .iter()
            .any(|e| e.action == switchyard_proxy::history::HistoryAction::Ramp)
    );
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_rollback_or_a_switch_during_a_ramp_ends_it_at_once() {
    let green = TestApp::start("green").await;
    let blue = TestApp::start("blue").await;
    let proxy = common::start(common::two_colours(&[green.addr()], &[blue.addr()])).await;
    common::wait_healthy(&proxy, "blue").await;
    proxy
        .switch_ramped_as("test", None, "blue", false, Duration::from_secs(60))
        .await
        .expect("ramp");
    let s = proxy.status();
    assert_eq!(
        s.services["app"].split.as_ref().map(|w| w["blue"]),
        Some(10)
    );
    assert!(s.services["app"].ramp.is_some());
    proxy.rollback(None, false).await.expect("rollback");
    let s = proxy.status();
    assert_eq!(s.services["app"].active, "green");
    assert_eq!(s.services["app"].split, None);
    assert!(s.services["app"].ramp.is_none());

    proxy
        .switch_ramped_as("test", None, "blue", false, Duration::from_secs(60))
        .await
        .expect("ramp again");
    proxy
        .switch(None, "blue", false)
        .await
        .expect("switch at once");
    let s = proxy.status();
    assert_eq!(s.services["app"].active, "blue");
    assert!(s.services["app"].ramp.is_none() && s.services["app"].split.is_none());
    // A ramp to the colour already active is refused.
    let err = proxy
        .switch_ramped_as("test", None, "blue", false, Duration::from_secs(5))
        .await
        .expect_err("nothing to ramp");
    assert_eq!(err.status(), 400);
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ramp_goes_on_after_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let green = TestApp::start("green").await;
    let blue = TestApp::start("blue").await;
    let mut config = common::two_colours(&[green.addr()], &[blue.addr()]);
    config.state.file = Some(dir.path().join("state.json"));
    let proxy = common::start(config.clone()).await;
    common::wait_healthy(&proxy, "blue").await;
    proxy
        .switch_ramped_as("test", None, "blue", false, Duration::from_secs(2))
        .await
        .expect("ramp");
    proxy.shutdown().await;
    let proxy = common::start(config).await;
    let s = proxy.status();
    let app = &s.services["app"];
    assert!(
        app.ramp.is_some() || app.active == "blue",
        "the restarted proxy carries the ramp: {app:?}"
    );
    poll_until(Duration::from_secs(10), || async {
        let s = proxy.status();
        s.services["app"].active == "blue" && s.services["app"].split.is_none()
    })
    .await;
    proxy.shutdown().await;
}

fn guarded(green: &TestApp, blue: &TestApp, window: Duration) -> switchyard_config::Config {
    let mut config = common::two_colours(&[green.addr()], &[blue.addr()]);
    let app = config.services.get_mut("app").expect("app");
    app.guard = Some(switchyard_config::GuardConfig {
        window,
        max_error_rate: 0.05,
        min_requests: 20,
        max_p99_factor: 0.0,
    });
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guard_rolls_back_a_colour_that_answers_500() {
    let green = TestApp::start("green").await;
    let blue = TestApp::start("blue").await;
    let proxy = common::start(guarded(&green, &blue, Duration::from_secs(60))).await;
    common::wait_healthy(&proxy, "blue").await;
    proxy.switch(None, "blue", false).await.expect("switch");
    let guard = proxy.status().services["app"]
        .guard
        .clone()
        .expect("a guard watch");
    assert_eq!(
        (guard.pool.as_str(), guard.verdict.as_str()),
        ("blue", "watching")
    );
    // The new colour fails every request.
    let mut client = KeepAliveClient::connect(common::http(&proxy)).await;
    for _ in 0..40 {
        let resp = client
            .get("/status/500", "app.test")
            .await
            .expect("an answer");
        if resp.colour() == Some("green") {
            break;
        }
    }
    poll_until(Duration::from_secs(5), || async {
        proxy.status().services["app"].active == "green"
    })
    .await;
    let status = proxy.status();
    let guard = status.services["app"]
        .guard
        .clone()
        .expect("the verdict stays");
    assert_eq!(guard.verdict, "rolled_back");
    assert!(guard.requests >= 20 && guard.error_rate > 0.05, "{guard:?}");
    let entry = proxy.history(1).remove(0);
    assert_eq!(entry.actor, "guard");
    assert_eq!(
        entry.action,
        switchyard_proxy::history::HistoryAction::Rollback
    );
    assert!(
        entry
            .detail
            .as_deref()
            .is_some_and(|d| d.contains("error rate")),
        "{entry:?}"
    );
    assert!(
        proxy
            .metrics_text()
            .lines()
            .any(|l| l.contains("kind=\"guard_rollback\"") && l.ends_with(" 1"))
    );
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guard_never_rolls_back_a_healthy_colour() {
    let green = TestApp::start("green").await;
    let blue = TestApp::start("blue").await;
    let proxy = common::start(guarded(&green, &blue, Duration::from_millis(1500))).await;
    common::wait_healthy(&proxy, "blue").await;
    proxy.switch(None, "blue", false).await.expect("switch");
    let mut client = KeepAliveClient::connect(common::http(&proxy)).await;
    let started = std::time::Instant::now();
    loop {
        let verdict = proxy.status().services["app"]
            .guard
            .clone()
            .expect("a watch")
            .verdict;
        if verdict != "watching" {
            assert_eq!(verdict, "passed");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the window never ended"
        );
        let resp = client.get("/", "app.test").await.expect("an answer");
        assert_eq!(resp.colour(), Some("blue"));
    }
    let status = proxy.status();
    assert_eq!(status.services["app"].active, "blue");
    assert!(
        status.services["app"]
            .guard
            .as_ref()
            .is_some_and(|g| g.requests >= 20)
    );
    assert!(proxy.history(10).iter().all(|e| e.actor != "guard"));
    proxy.shutdown().await;
}
