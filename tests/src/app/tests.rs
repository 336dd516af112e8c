//! The fake app's own tests, driven by the harness's real clients.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;

use super::TestApp;
use crate::client::{KeepAliveClient, raw_request};
use crate::wait::{poll_until, within};

/// Generous bound for things that happen within milliseconds.
const READY: Duration = Duration::from_secs(5);

#[tokio::test]
async fn answers_its_colour_twice_on_one_keep_alive_connection() {
    let app = TestApp::start("blue").await;
    let mut client = KeepAliveClient::connect(app.addr()).await;
    for _ in 0..2 {
        let resp = client.get("/", "app.test").await.expect("GET /");
        assert_eq!(resp.status, StatusCode::OK);
        assert_eq!(resp.text(), "blue");
        assert_eq!(resp.colour(), Some("blue"));
    }
    assert_eq!(app.connections(), 1);
    assert_eq!(app.requests(), 2);
    assert_eq!(app.count_path("/"), 2);
    assert_eq!(client.requests_sent(), 2);
    assert!(!client.is_closed());
    assert_eq!(app.colour(), "blue");
}

#[tokio::test]
async fn slow_waits_before_answering() {
    let app = TestApp::start("green").await;
    let mut client = KeepAliveClient::connect(app.addr()).await;
    let started = tokio::time::Instant::now();
    let resp = client
        .get("/slow?ms=150", "app.test")
        .await
        .expect("GET /slow");
    // A lower bound only: a sleep never ends early, so this cannot flake.
    assert!(started.elapsed() >= Duration::from_millis(150));
    assert_eq!(resp.text(), "green");
    let bad = client.get("/slow", "app.test").await.expect("GET /slow");
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn slow_post_records_the_body_before_answering() {
    let app = Arc::new(TestApp::start("green").await);
    let addr = app.addr();
    let pending = tokio::spawn(async move {
        let mut client = KeepAliveClient::connect(addr).await;
        client
            .post("/slow-post?ms=60000", "app.test", "order-1")
            .await
    });
    poll_until(READY, || async { app.posts() == [Bytes::from("order-1")] }).await;
    assert_eq!(app.in_flight(), 1);
    assert!(!pending.is_finished(), "answered before its 60 s wait");
    app.kill().await;
    let result = pending.await.expect("client task");
    assert!(
        result
            .expect_err("killed mid-request")
            .is_connection_closed()
    );
}

#[tokio::test]
async fn echo_and_order_answer_at_once_and_are_recorded() {
    let app = TestApp::start("blue").await;
    let mut client = KeepAliveClient::connect(app.addr()).await;
    let echo = client
        .post("/echo", "app.test", "hello")
        .await
        .expect("echo");
    assert_eq!((echo.status, echo.text()), (StatusCode::OK, "hello".into()));
    let order = client
        .post("/order", "app.test", "o-2")
        .await
        .expect("order");
    assert_eq!(order.status, StatusCode::OK);
    assert_eq!(app.posts(), [Bytes::from("hello"), Bytes::from("o-2")]);
    assert_eq!(app.recorder().posts_to("/order"), [Bytes::from("o-2")]);
    let wrong_method = client.get("/order", "app.test").await.expect("GET /order");
    assert_eq!(wrong_method.status, StatusCode::NOT_FOUND);
    assert_eq!(wrong_method.colour(), Some("blue"));
}

#[tokio::test]
async fn kill_fails_the_in_flight_request_and_refuses_new_connects() {
    let app = Arc::new(TestApp::start("green").await);
    let mut client = KeepAliveClient::connect(app.addr()).await;
    let slow = tokio::spawn(async move { client.get("/slow?ms=60000", "app.test").await });
    poll_until(READY, || async { app.in_flight() == 1 }).await;

    app.kill().await;

    let err = slow
        .await
        .expect("client task")
        .expect_err("killed mid-request");
    assert!(err.is_connection_closed(), "unexpected error: {err}");
    assert!(!app.is_running());
    assert_eq!((app.in_flight(), app.open_connections()), (0, 0));
    let refused = KeepAliveClient::try_connect(app.addr())
        .await
        .expect_err("port closed");
    assert!(refused.is_refused(), "unexpected error: {refused}");
    app.kill().await; // a second kill does nothing
}

#[tokio::test]
async fn kill_closes_idle_keep_alive_connections() {
    let app = TestApp::start("green").await;
    let mut client = KeepAliveClient::connect(app.addr()).await;
    client.get("/", "app.test").await.expect("GET /");
    app.kill().await;
    assert!(within(READY, client.closed()).await.is_some());
    assert!(client.is_closed());
}

#[tokio::test]
async fn restart_serves_again_on_the_same_address_and_keeps_the_recorder() {
    let app = TestApp::start("blue").await;
    let addr = app.addr();
    let mut client = KeepAliveClient::connect(addr).await;
    client
        .post("/order", "app.test", "before")
        .await
        .expect("order");
    app.kill().await;

    app.restart().await;

    assert!(app.is_running());
    assert_eq!(app.addr(), addr);
    let mut client = KeepAliveClient::connect(addr).await;
    let resp = client
        .get("/", "app.test")
        .await
        .expect("GET / after restart");
    assert_eq!(resp.text(), "blue");
    assert_eq!(app.requests(), 2);
    assert_eq!(app.connections(), 2);
    assert_eq!(app.posts(), [Bytes::from("before")]);

    // Restarting a running app kills it first: its connections die, the port serves again.
    app.restart().await;
    assert!(within(READY, client.closed()).await.is_some());
    let mut client = KeepAliveClient::connect(addr).await;
    assert_eq!(client.get("/", "x").await.expect("GET /").text(), "blue");
}

#[tokio::test]
async fn health_follows_set_healthy_and_is_counted_apart() {
    let app = TestApp::start("green").await;
    let mut client = KeepAliveClient::connect(app.addr()).await;
    let ok = client.get("/health", "app.test").await.expect("health");
    assert_eq!((ok.status, ok.text()), (StatusCode::OK, "ok".into()));
    app.set_healthy(false);
    assert!(!app.is_healthy());
    let down = client.get("/health", "app.test").await.expect("health");
    assert_eq!(down.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(down.colour(), Some("green"));
    assert_eq!(app.health_checks(), 2);
    assert_eq!(app.requests(), 0, "health checks are not requests");
    assert_eq!(app.count_path("/health"), 2);
    app.restart().await;
    let mut client = KeepAliveClient::connect(app.addr()).await;
    let still_down = client.get("/health", "app.test").await.expect("health");
    assert_eq!(still_down.status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn headers_reports_what_was_sent() {
    let app = TestApp::start("blue").await;
    let mut client = KeepAliveClient::connect(app.addr()).await;
    let req = Request::get("/headers?q=1")
        .header("host", "shop.example.com")
        .header("x-multi", "a")
        .header("x-multi", "b")
        .header("x-forwarded-for", "10.0.0.1")
        .body(Full::new(Bytes::new()))
        .expect("valid request");
    let resp = client.request(req).await.expect("GET /headers");
    assert_eq!(resp.header("content-type"), Some("application/json"));
    let json = resp.json();
    assert_eq!(json["host"], serde_json::json!(["shop.example.com"]));
    assert_eq!(json["x-multi"], serde_json::json!(["a", "b"]));
    assert_eq!(json["x-forwarded-for"], serde_json::json!(["10.0.0.1"]));
    assert_eq!(json["_method"], "GET");
    assert_eq!(json["_uri"], "/headers?q=1");
    assert_eq!(json["_version"], "HTTP/1.1");
}

#[tokio::test]
async fn status_answers_the_asked_code_and_unknown_paths_404() {
    let app = TestApp::start("blue").await;
    let mut client = KeepAliveClient::connect(app.addr()).await;
    let teapot = client.get("/status/418", "x").await.expect("status");
    assert_eq!(teapot.status, StatusCode::IM_A_TEAPOT);
    let post = client
        .post("/status/503", "x", "body")
        .await
        .expect("status");
    assert_eq!(post.status, StatusCode::SERVICE_UNAVAILABLE);
    let empty = client.get("/status/204", "x").await.expect("status");
    assert_eq!(
        (empty.status, empty.body.len()),
        (StatusCode::NO_CONTENT, 0)
    );
    let bad = client.get("/status/99", "x").await.expect("status");
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let missing = client.get("/nope", "x").await.expect("404");
    assert_eq!(
        (missing.status, missing.colour()),
        (StatusCode::NOT_FOUND, Some("blue"))
    );
    assert_eq!(app.connections(), 1, "errors keep the connection");
}

#[tokio::test]
async fn drop_closes_the_connection_unanswered_after_recording() {
    let app = TestApp::start("green").await;
    let mut client = KeepAliveClient::connect(app.addr()).await;
    let err = client
        .post("/drop", "x", "pay-1")
        .await
        .expect_err("no answer");
    assert!(err.is_connection_closed(), "unexpected error: {err}");
    assert_eq!(app.posts(), [Bytes::from("pay-1")]);
    assert!(within(READY, client.closed()).await.is_some());
}

#[tokio::test]
async fn raw_request_reads_until_the_server_closes() {
    let app = TestApp::start("red").await;
    let ok = raw_request(
        app.addr(),
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    let ok = String::from_utf8_lossy(&ok);
    assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
    assert!(ok.contains("x-colour: red\r\n"), "{ok}");
    assert!(ok.ends_with("\r\n\r\nred"), "{ok}");

    let bad = raw_request(app.addr(), b"NOT HTTP AT ALL\r\n\r\n").await;
    let bad = String::from_utf8_lossy(&bad);
    assert!(bad.starts_with("HTTP/1.1 400"), "{bad}");
}

#[tokio::test]
async fn start_on_a_busy_port_fails_and_dropping_the_app_frees_it() {
    let app = TestApp::start("blue").await;
    let addr = app.addr();
    assert!(TestApp::try_start_on("green", addr).await.is_err());
    drop(app);
    // The accept task is aborted on drop; the port frees as soon as the runtime drops it.
    let again = within(READY, async {
        loop {
            if let Ok(app) = TestApp::try_start_on("green", addr).await {
                return app;
            }
            tokio::time::sleep(crate::wait::POLL_INTERVAL).await;
        }
    })
    .await
    .expect("the port is free again after the drop");
    assert_eq!(again.addr(), addr);
}

#[tokio::test(start_paused = true)]
async fn works_on_paused_tokio_time() {
    // Real sockets on paused time: the app's 60 s wait passes in virtual time, and the
    // wall-clock timeouts of the client and of poll_until do not fire early.
    let app = TestApp::start("blue").await;
    let mut client = KeepAliveClient::connect(app.addr()).await;
    let started = tokio::time::Instant::now();
    let resp = client.get("/slow?ms=60000", "x").await.expect("GET /slow");
    assert_eq!(resp.text(), "blue");
    assert!(started.elapsed() >= Duration::from_secs(60));
    poll_until(READY, || async { app.requests() == 1 }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_and_restart_on_a_multi_thread_runtime() {
    let app = Arc::new(TestApp::start("green").await);
    let mut clients = Vec::new();
    for _ in 0..4 {
        let mut client = KeepAliveClient::connect(app.addr()).await;
        clients.push(tokio::spawn(async move {
            client.get("/slow?ms=60000", "x").await
        }));
    }
    poll_until(READY, || async { app.in_flight() == 4 }).await;
    app.kill().await;
    for client in clients {
        let err = client.await.expect("client task").expect_err("killed");
        assert!(err.is_connection_closed(), "unexpected error: {err}");
    }
    app.restart().await;
    let mut client = KeepAliveClient::connect(app.addr()).await;
    assert_eq!(client.get("/", "x").await.expect("GET /").text(), "green");
}
