//! Mirror against real apps: copies reach the staged colour and never change the client's
//! answer, a target that never answers does not slow the client, `max_in_flight` bounds the
//! copies (the rest are skipped and counted), and mirroring pauses while the target is live.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use switchyard_proxy::ProxyHandle;
use switchyard_tests::{KeepAliveClient, TestApp, poll_until};
use tokio::io::AsyncReadExt;

async fn admin(
    proxy: &ProxyHandle,
    method: &str,
    path: &str,
    body: &str,
) -> (u16, serde_json::Value) {
    let mut client = KeepAliveClient::connect(proxy.admin_addr().expect("admin")).await;
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "admin")
        .body(http_body_util::Full::new(bytes::Bytes::from(
            body.to_string(),
        )))
        .expect("request");
    let resp = client.request(req).await.expect("the admin API answers");
    (resp.status.as_u16(), resp.json())
}

/// The value of a sample of the exposition whose line contains every one of `parts`.
fn sample(metrics: &str, parts: &[&str]) -> u64 {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| parts.iter().all(|p| l.contains(p)))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_reach_the_staged_colour_and_never_change_the_answer() {
    let green = TestApp::start("green").await;
    let blue = TestApp::start("blue").await;
    let proxy = common::start(common::two_colours(&[green.addr()], &[blue.addr()])).await;
    common::wait_healthy(&proxy, "blue").await;
    let (status, answer) = admin(&proxy, "PUT", "/mirror", r#"{"to": "blue"}"#).await;
    assert_eq!(status, 200, "{answer}");
    let mirror = proxy.status().services["app"]
        .mirror
        .clone()
        .expect("a mirror");
    assert_eq!((mirror.to.as_str(), mirror.percent), ("blue", 100));
    assert_eq!(mirror.methods, ["GET", "HEAD"]);

    let before = blue.count_path("/");
    let mut client = KeepAliveClient::connect(common::http(&proxy)).await;
    for _ in 0..50 {
        let resp = client.get("/", "app.test").await.expect("an answer");
        assert_eq!(
            resp.colour(),
            Some("green"),
            "the client's answer is the live colour's"
        );
    }
    // POSTs are not copied by default (both colours usually share a database).
    client
        .post("/echo", "app.test", "order")
        .await
        .expect("a POST");
    poll_until(Duration::from_secs(5), || async {
        blue.count_path("/") == before + 50
    })
    .await;
    assert!(blue.posts().is_empty(), "no POST reached the mirror target");
    let metrics = proxy.metrics_text();
    assert_eq!(
        sample(
            &metrics,
            &[
                "switchyard_mirror_copies",
                "pool=\"blue\"",
                "result=\"2xx\""
            ]
        ),
        50
    );

    // Mirroring pauses while the target is live: after a flip to blue, no copies anywhere.
    proxy.switch(None, "blue", false).await.expect("switch");
    let (green_before, blue_before) = (green.count_path("/"), blue.count_path("/"));
    for _ in 0..10 {
        assert_eq!(
            client
                .get("/", "app.test")
                .await
                .expect("an answer")
                .colour(),
            Some("blue")
        );
    }
    assert_eq!(
        blue.count_path("/"),
        blue_before + 10,
        "no copy on top of the live requests"
    );
    assert_eq!(green.count_path("/"), green_before);

    // Ended at runtime, and recorded.
    let (status, _) = admin(&proxy, "DELETE", "/mirror", "").await;
    assert_eq!(status, 200);
    assert!(proxy.status().services["app"].mirror.is_none());
    let history = proxy.history(5);
    assert!(history.iter().any(
        |e| e.action == switchyard_proxy::history::HistoryAction::Mirror
            && e.to.as_deref() == Some("blue")
    ));
    // A bad body is a JSON error.
    let (status, answer) = admin(&proxy, "PUT", "/mirror", r#"{"to": "purple"}"#).await;
    assert_eq!(status, 404, "{answer}");
    let (status, answer) = admin(
        &proxy,
        "PUT",
        "/mirror",
        r#"{"to": "blue", "percent": 101}"#,
    )
    .await;
    assert_eq!(status, 400, "{answer}");
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_never_answers_slows_no_client_and_copies_are_bounded() {
    let green = TestApp::start("green").await;
    // The mirror target accepts connections, reads, and never answers.
    let hole = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let hole_addr = hole.local_addr().expect("addr");
    let held = Arc::new(AtomicU64::new(0));
    let counter = held.clone();
    let sink = tokio::spawn(async move {
        let mut conns = Vec::new();
        while let Ok((mut s, _)) = hole.accept().await {
            let counter = counter.clone();
            conns.push(tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let mut counted = false;
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    let text = String::from_utf8_lossy(&buf[..n]);
                    if !counted && text.starts_with("GET / ") {
                        counted = true;
                        counter.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }));
        }
    });
    let mut config = common::two_colours(&[green.addr()], &[hole_addr]);
    let app = config.services.get_mut("app").expect("app");
    let mut mirror = switchyard_config::MirrorConfig::new("blue");
    mirror.max_in_flight = 4;
    app.mirror = Some(mirror);
    let proxy = common::start(config).await;
    common::wait_healthy(&proxy, "green").await;
    assert!(
        proxy.status().services["app"].mirror.is_some(),
        "the config's mirror is in force"
    );

    let mut client = KeepAliveClient::connect(common::http(&proxy)).await;
    client.set_timeout(Some(Duration::from_secs(2)));
    for i in 0..10 {
        let resp = client.get("/", "app.test").await.expect("answered at once");
        assert_eq!(resp.colour(), Some("green"), "request {i}");
    }
    // Four copies wait on the target; the six beyond max_in_flight were skipped.
    poll_until(Duration::from_secs(5), || async {
        held.load(Ordering::SeqCst) == 4
    })
    .await;
    let metrics = proxy.metrics_text();
    assert_eq!(
        sample(
            &metrics,
            &[
                "switchyard_mirror_skips",
                "pool=\"blue\"",
                "reason=\"max_in_flight\""
            ]
        ),
        6,
        "{}",
        metrics
            .lines()
            .filter(|l| l.contains("mirror"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert_eq!(held.load(Ordering::SeqCst), 4, "no copy beyond the bound");
    proxy.shutdown().await;
    sink.abort();
}
