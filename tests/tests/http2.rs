//! HTTP/2 to clients over cleartext with prior knowledge: several streams at once on one
//! connection, each forwarded to the HTTP/1.1 upstream pool with the `:authority` as `Host`.

mod common;

use std::time::Duration;

use switchyard_tests::{Http2Client, TestApp, poll_until};

#[tokio::test]
async fn concurrent_h2_streams_on_one_connection_reach_the_http1_upstream() {
    let green = TestApp::start("green").await;
    let blue = TestApp::start("blue").await;
    let proxy = common::start(common::two_colours(&[green.addr()], &[blue.addr()])).await;
    let client = Http2Client::connect(common::http(&proxy)).await;

    // Four slow requests at once: all four are at the app together, so they really are
    // multiplexed on the one client connection rather than queued behind each other.
    let slow: Vec<_> = (0..4)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.get("/slow?ms=300", "app.test").await })
        })
        .collect();
    poll_until(Duration::from_secs(10), || async { green.in_flight() >= 4 }).await;
    assert_eq!(proxy.open_connections(), 1);
    for task in slow {
        let resp = task.await.expect("task").expect("answer");
        assert_eq!(
            (resp.status.as_u16(), resp.version),
            (200, http::Version::HTTP_2)
        );
        assert_eq!(resp.text(), "green");
    }

    // The authority becomes the upstream Host; the upstream speaks HTTP/1.1.
    let echoes: Vec<_> = (0..3)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move {
                client
                    .get(
                        &format!("/headers?n={i}"),
                        &format!("Shop{i}.App.Test:8080"),
                    )
                    .await
            })
        })
        .collect();
    for (i, task) in echoes.into_iter().enumerate() {
        let seen = task.await.expect("task").expect("answer").json();
        let authority = format!("Shop{i}.App.Test:8080");
        assert_eq!(seen["host"], serde_json::json!([authority]));
        assert_eq!(seen["x-forwarded-host"], serde_json::json!([authority]));
        assert_eq!(seen["x-forwarded-proto"][0], "http");
        assert_eq!(seen["_version"], "HTTP/1.1");
        assert_eq!(seen["_uri"], format!("/headers?n={i}"));
    }
    assert!(!client.is_closed());
    proxy.shutdown().await;
}

#[tokio::test]
async fn h2_posts_are_forwarded_with_their_body() {
    let green = TestApp::start("green").await;
    let blue = TestApp::start("blue").await;
    let proxy = common::start(common::two_colours(&[green.addr()], &[blue.addr()])).await;
    let client = Http2Client::connect(common::http(&proxy)).await;
    let resp = client
        .post("/echo", "app.test", "hello over h2")
        .await
        .expect("answer");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.text(), "hello over h2");
    assert_eq!(green.posts(), vec![bytes::Bytes::from("hello over h2")]);
    proxy.shutdown().await;
}
