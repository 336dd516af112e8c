//! Idle HTTP/1 keep-alive connections are parked (hyper's buffers freed) and come back on
//! their next request, through a real proxy on real sockets: the client never notices, and
//! the `switchyard_parked_connections` gauge shows them. A graceful stop reaches connections
//! in every state: parked, idle, and serving a request.
//!
//! A connection is parked after one second of idleness (`server.rs`, `PARK_AFTER`); each test
//! waits for the gauge rather than for a time.

mod common;

use std::time::Duration;

use switchyard_proxy::ProxyHandle;
use switchyard_tests::{TestApp, poll_until, within};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Far longer than any wait of these tests.
const BOUND: Duration = Duration::from_secs(10);

const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: app.test\r\n\r\n";

/// The parked-connections gauge from `/metrics`.
fn parked(proxy: &ProxyHandle) -> Option<u64> {
    let text = proxy.metrics_text();
    text.lines()
        .find_map(|l| l.strip_prefix("switchyard_parked_connections{} "))
        .and_then(|v| v.trim().parse().ok())
}

/// Reads one whole answer (the test app answers with a `Content-Length`), returns its status.
async fn answer(stream: &mut TcpStream) -> u16 {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if got.len() >= end + 4 + length {
                let status = head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
                got.drain(..end + 4 + length);
                assert!(got.is_empty(), "nothing more than one answer was sent");
                return status;
            }
        }
        let n = within(BOUND, stream.read(&mut buf))
            .await
            .expect("an answer in time")
            .expect("read");
        assert!(n > 0, "the proxy closed the connection");
        got.extend_from_slice(&buf[..n]);
    }
}

/// A connection to `addr` that has been served one request (and is idle now).
async fn served_once(addr: std::net::SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(GET).await.expect("write");
    assert_eq!(answer(&mut stream).await, 200);
    stream
}

/// Waits for the proxy to close `stream` without sending anything.
async fn closed_silently(stream: &mut TcpStream) {
    let mut buf = [0u8; 64];
    let read = within(BOUND, stream.read(&mut buf))
        .await
        .expect("closed in time");
    assert!(matches!(read, Ok(0) | Err(_)), "closed without a word");
}

async fn start(app: &TestApp, keepalive: Duration) -> ProxyHandle {
    let mut config = common::two_colours(&[app.addr()], &[app.addr()]);
    config.limits.keepalive_timeout = keepalive;
    let proxy = common::start(config).await;
    common::wait_healthy(&proxy, "green").await;
    proxy
}

#[tokio::test]
async fn parked_connections_serve_their_next_requests_unchanged() {
    let app = TestApp::start("green").await;
    let proxy = start(&app, Duration::from_secs(60)).await;
    let addr = common::http(&proxy);
    let mut clients = Vec::new();
    for _ in 0..20 {
        clients.push(served_once(addr).await);
    }
    poll_until(BOUND, || async { parked(&proxy) == Some(20) }).await;

    // Each parked connection takes its next request, and two pipelined ones in one write.
    let before = app.requests();
    for stream in &mut clients {
        stream.write_all(GET).await.expect("write");
        assert_eq!(answer(stream).await, 200);
    }
    poll_until(BOUND, || async { parked(&proxy) == Some(20) }).await;
    for stream in &mut clients {
        stream.write_all(&[GET, GET].concat()).await.expect("write");
        assert_eq!(answer(stream).await, 200);
        assert_eq!(answer(stream).await, 200);
    }
    assert_eq!(
        app.requests() - before,
        60,
        "every request reached the app once"
    );

    // A parked connection whose client closes is counted out.
    poll_until(BOUND, || async { parked(&proxy) == Some(20) }).await;
    clients.truncate(5);
    poll_until(BOUND, || async { parked(&proxy) == Some(5) }).await;
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_parked_connection_is_closed_at_its_keepalive_timeout_and_at_a_stop() {
    let app = TestApp::start("green").await;
    // Parked after one second, closed half a second later.
    let proxy = start(&app, Duration::from_millis(1500)).await;
    let addr = common::http(&proxy);
    let mut stream = served_once(addr).await;
    poll_until(BOUND, || async { parked(&proxy) == Some(1) }).await;
    closed_silently(&mut stream).await;
    poll_until(BOUND, || async { parked(&proxy) == Some(0) }).await;

    // A graceful stop closes parked connections at once.
    let mut stream = served_once(addr).await;
    poll_until(BOUND, || async { parked(&proxy) == Some(1) }).await;
    within(BOUND, proxy.shutdown())
        .await
        .expect("the stop does not wait for parked connections");
    closed_silently(&mut stream).await;
}

/// Reads until the proxy closes the connection.
async fn until_closed(stream: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match within(BOUND, stream.read(&mut buf))
            .await
            .expect("closed in time")
        {
            Ok(0) | Err(_) => return String::from_utf8_lossy(&got).into_owned(),
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test]
async fn a_stop_closes_an_idle_connection_and_answers_the_request_in_flight_with_close() {
    let app = TestApp::start("green").await;
    let proxy = start(&app, Duration::from_secs(60)).await;
    let addr = common::http(&proxy);
    // Idle: served once and left open (parked only after a second of idleness).
    let mut idle = served_once(addr).await;
    // Busy: its request is at the app, which answers after 400 ms.
    let mut busy = TcpStream::connect(addr).await.expect("connect");
    busy.write_all(b"GET /slow?ms=400 HTTP/1.1\r\nHost: app.test\r\n\r\n")
        .await
        .expect("write");
    poll_until(BOUND, || async { app.count_path("/slow") == 1 }).await;
    let stopping = tokio::spawn(async move { proxy.shutdown().await });
    closed_silently(&mut idle).await;
    let answer = until_closed(&mut busy).await.to_ascii_lowercase();
    assert!(answer.starts_with("http/1.1 200"), "{answer}");
    assert!(answer.contains("connection: close"), "{answer}");
    assert!(
        within(BOUND, stopping)
            .await
            .expect("the stop ends")
            .expect("the stop task"),
        "a clean stop"
    );
}
