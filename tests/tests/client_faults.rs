//! Failures the client causes are the client's: an upload broken off mid-body never counts
//! against the server (no ejection, no retry, logged as 499), and a client that goes away
//! while the app is still working gets an access-log line with 499 too.

mod common;

use std::time::Duration;

use serde_json::Value;
use switchyard_config::AllDown;
use switchyard_proxy::{AccessSink, Builder, Listeners, ProxyHandle};
use switchyard_tests::{CapturedLog, KeepAliveClient, TestApp, poll_until};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

async fn start(green: &TestApp, blue: &TestApp, log: &CapturedLog) -> ProxyHandle {
    let mut config = common::two_colours(&[green.addr()], &[blue.addr()]);
    config.log.format = switchyard_config::LogFormat::Json;
    if let Some(svc) = config.services.get_mut("app") {
        // The harshest setting: with every server ejected, requests get 503 at once.
        svc.ejection.all_down = AllDown::Fail;
    }
    let listeners = Listeners::loopback().await.expect("loopback listeners");
    Builder::new(config, listeners)
        .access_log(AccessSink::Writer(Box::new(log.clone())))
        .start()
        .expect("the proxy starts")
}

/// The sum of every `switchyard_ejections_total` sample.
fn ejections(proxy: &ProxyHandle) -> f64 {
    proxy
        .metrics_text()
        .lines()
        .filter(|l| l.starts_with("switchyard_ejections_total"))
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aborted_uploads_never_eject_a_server() {
    let green = TestApp::start("green").await;
    let blue = TestApp::start("blue").await;
    let log = CapturedLog::default();
    let proxy = start(&green, &blue, &log).await;
    common::wait_healthy(&proxy, "green").await;
    let addr = common::http(&proxy);
    // More than the replay buffer, so the body streams to the app as it arrives.
    let part = vec![b'x'; 70_000];
    let mut client = KeepAliveClient::connect(addr).await;
    let mut answered = 0;
    for _ in 0..20 {
        let mut uploads = Vec::new();
        for _ in 0..5 {
            let part = part.clone();
            uploads.push(tokio::spawn(async move {
                let mut s = TcpStream::connect(addr).await.expect("connect");
                let head = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n";
                s.write_all(head).await.expect("head");
                s.write_all(&part).await.expect("part");
                s.flush().await.expect("flush");
                // The kernel delivers the part, then the close.
                drop(s);
            }));
        }
        for u in uploads {
            u.await.expect("upload task");
        }
        let r = client.get("/", "x").await.expect("an answer");
        assert_eq!(r.status, 200, "a GET between aborted uploads is served");
        answered += 1;
    }
    assert_eq!(answered, 20);
    // Every aborted upload was logged as the client's, once the writer flushes.
    poll_until(Duration::from_secs(5), || {
        let log = log.clone();
        async move {
            log.json_lines()
                .iter()
                .filter(|l| l["fields"]["status"] == 499)
                .count()
                >= 100
        }
    })
    .await;
    let lines = log.json_lines();
    let aborted: Vec<&Value> = lines
        .iter()
        .filter(|l| l["fields"]["method"] == "POST")
        .collect();
    assert_eq!(aborted.len(), 100, "one line per aborted upload");
    for l in &aborted {
        let f = &l["fields"];
        assert_eq!(f["status"], 499, "{f}");
        assert_eq!(f["attempts"], 1, "never retried: {f}");
        let arrived = f["bytes_in"].as_u64().expect("bytes_in");
        assert!(
            (65_536..=70_000).contains(&arrived),
            "bytes_in is what arrived, not the declared length: {f}"
        );
    }
    assert_eq!(ejections(&proxy), 0.0, "{}", proxy.metrics_text());
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_client_that_goes_away_is_logged_with_499() {
    let green = TestApp::start("green").await;
    let blue = TestApp::start("blue").await;
    let log = CapturedLog::default();
    let proxy = start(&green, &blue, &log).await;
    common::wait_healthy(&proxy, "green").await;
    let mut s = TcpStream::connect(common::http(&proxy))
        .await
        .expect("connect");
    s.write_all(b"GET /slow?ms=3000 HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("request");
    poll_until(Duration::from_secs(5), || async { green.in_flight() == 1 }).await;
    drop(s);
    poll_until(Duration::from_secs(5), || {
        let log = log.clone();
        async move { !log.json_lines().is_empty() }
    })
    .await;
    let lines = log.json_lines();
    let f = &lines[0]["fields"];
    assert_eq!(f["status"], 499, "{f}");
    assert_eq!(f["path"], "/slow");
    assert_eq!(f["query"], "ms=3000");
    assert_eq!(f["colour"], "green");
    proxy.shutdown().await;
}
