//! `[limits]` and the upstream timeouts through a real proxy: slow and silent clients, idle
//! keep-alive connections, head and body size limits, the connection limit, and upstreams that
//! never accept or answer too slowly.
//!
//! Clocks are set short (a few hundred milliseconds) and every wait is bounded; the tests only
//! tell "closed" from "still open" or read a status, never time anything.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use switchyard_config::Config;
use switchyard_proxy::ProxyHandle;
use switchyard_tests::{KeepAliveClient, TestApp, poll_until, raw_request, within};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Far longer than any clock of these tests: a connection still open after it stays open.
const BOUND: Duration = Duration::from_secs(5);

/// A config whose only upstream (in both pools) is `addr`, tuned by `tune`.
fn config(addr: SocketAddr, tune: impl FnOnce(&mut Config)) -> Config {
    let mut config = common::two_colours(&[addr], &[addr]);
    tune(&mut config);
    config
}

/// Starts the proxy and waits until it serves `app` (a fresh connection gets a 200).
async fn serving(config: Config) -> ProxyHandle {
    let proxy = common::start(config).await;
    let addr = common::http(&proxy);
    poll_until(BOUND, || async move {
        status(&raw_request(addr, GET_CLOSE).await) == Some(200)
    })
    .await;
    proxy
}

const GET_CLOSE: &[u8] = b"GET / HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n";

/// The status of the first line of a raw answer.
fn status(answer: &[u8]) -> Option<u16> {
    let text = String::from_utf8_lossy(answer);
    let code = text.strip_prefix("HTTP/1.1 ")?.get(..3)?;
    code.parse().ok()
}

/// Reads until the proxy closes the connection: what came, or `None` if it stayed open for
/// [`BOUND`].
async fn read_until_closed(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match within(BOUND, stream.read(&mut buf)).await? {
            Ok(0) | Err(_) => return Some(out),
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
}

async fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr)
        .await
        .expect("connect to the proxy");
    let _ = stream.set_nodelay(true);
    stream
}

#[tokio::test]
async fn a_silent_connection_is_closed_after_the_header_timeout() {
    let app = TestApp::start("green").await;
    let proxy = serving(config(app.addr(), |c| {
        c.limits.header_timeout = Duration::from_millis(300);
    }))
    .await;
    let mut stream = connect(common::http(&proxy)).await;
    let answer = read_until_closed(&mut stream).await;
    assert_eq!(answer, Some(Vec::new()), "closed without a word");
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_trickled_head_is_cut_and_never_reaches_the_app() {
    let app = TestApp::start("green").await;
    let proxy = serving(config(app.addr(), |c| {
        c.limits.header_timeout = Duration::from_millis(300);
    }))
    .await;
    let requests = app.requests();
    let stream = connect(common::http(&proxy)).await;
    let (mut read, mut write) = stream.into_split();
    // Slowloris: one byte every 100 ms, the whole head would take seconds.
    let trickle = tokio::spawn(async move {
        for byte in b"GET / HTTP/1.1\r\nHost: app.test\r\nX-Slow: yes\r\n\r\n" {
            if write.write_all(&[*byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let mut out = Vec::new();
    let closed = within(BOUND, read.read_to_end(&mut out)).await;
    assert!(closed.is_some(), "the slow head was not cut");
    assert!(out.is_empty(), "nothing is answered: {out:?}");
    trickle.abort();
    assert_eq!(app.requests(), requests, "the app never sees the head");
    proxy.shutdown().await;
}

#[tokio::test]
async fn an_idle_keepalive_connection_is_closed_and_a_busy_one_stays_open() {
    let app = TestApp::start("green").await;
    // Idle periods longer than the header timeout but within the keep-alive timeout keep the
    // connection (the header timeout does not run between requests).
    let proxy = serving(config(app.addr(), |c| {
        c.limits.header_timeout = Duration::from_millis(200);
        c.limits.keepalive_timeout = Duration::from_millis(1500);
    }))
    .await;
    let addr = common::http(&proxy);
    let mut idle = KeepAliveClient::connect(addr).await;
    let mut busy = KeepAliveClient::connect(addr).await;
    assert_eq!(idle.get("/", "app.test").await.expect("answer").status, 200);
    for i in 0..4 {
        let resp = busy.get("/", "app.test").await;
        assert_eq!(resp.expect("answer").status, 200, "request {i}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(!busy.is_closed(), "a connection in use stays open");
    assert!(
        within(BOUND, idle.closed()).await.is_some(),
        "the idle connection was not closed"
    );
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_head_over_max_header_bytes_gets_431() {
    let app = TestApp::start("green").await;
    let proxy = serving(config(app.addr(), |c| c.limits.max_header_bytes = 4096)).await;
    let addr = common::http(&proxy);
    let requests = app.requests();
    let head = |value: usize| {
        format!(
            "GET / HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\nX-Big: {}\r\n\r\n",
            "a".repeat(value)
        )
    };
    for size in [6 * 1024, 64 * 1024] {
        let answer = raw_request(addr, head(size).as_bytes()).await;
        assert_eq!(status(&answer), Some(431), "{size} bytes of header value");
    }
    assert_eq!(app.requests(), requests, "the app sees none of them");
    let answer = raw_request(addr, head(3 * 1024).as_bytes()).await;
    assert_eq!(status(&answer), Some(200), "a head within the limit");
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_request_line_over_max_header_bytes_gets_414() {
    let app = TestApp::start("green").await;
    let proxy = serving(config(app.addr(), |c| c.limits.max_header_bytes = 4096)).await;
    let addr = common::http(&proxy);
    let requests = app.requests();
    for size in [5 * 1024, 64 * 1024] {
        let head = format!(
            "GET /{} HTTP/1.1\r\nHost: app.test\r\n\r\n",
            "u".repeat(size)
        );
        let answer = raw_request(addr, head.as_bytes()).await;
        assert_eq!(status(&answer), Some(414), "a {size}-byte URI");
        let text = String::from_utf8_lossy(&answer).to_ascii_lowercase();
        assert!(text.contains("connection: close"), "{text}");
    }
    // A long URI after a first request on the same connection: the first is answered, then 414.
    let pipelined = format!(
        "GET / HTTP/1.1\r\nHost: app.test\r\n\r\nGET /{} HTTP/1.1\r\nHost: app.test\r\n\r\n",
        "u".repeat(8 * 1024)
    );
    let answer =
        String::from_utf8_lossy(&raw_request(addr, pipelined.as_bytes()).await).into_owned();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("HTTP/1.1 414"), "{answer}");
    assert_eq!(app.requests(), requests + 1, "the app sees only the first");
    // Headers over the limit with a short request line stay 431.
    let head = format!(
        "GET / HTTP/1.1\r\nHost: app.test\r\nX-Big: {}\r\n\r\n",
        "a".repeat(5 * 1024)
    );
    assert_eq!(status(&raw_request(addr, head.as_bytes()).await), Some(431));
    proxy.shutdown().await;
}

#[tokio::test]
async fn over_http2_a_long_target_gets_414_and_a_large_header_list_431() {
    let app = TestApp::start("green").await;
    let proxy = serving(config(app.addr(), |c| c.limits.max_header_bytes = 4096)).await;
    let client = switchyard_tests::Http2Client::connect(common::http(&proxy)).await;
    let requests = app.requests();
    let long = format!("/{}", "u".repeat(5 * 1024));
    let resp = client.get(&long, "app.test").await.expect("an answer");
    assert_eq!(resp.status.as_u16(), 414, "a 5 KiB target");
    let req = http::Request::builder()
        .uri("http://app.test/")
        .header("x-big", "a".repeat(5 * 1024))
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .expect("request");
    let resp = client.request(req).await.expect("an answer");
    assert_eq!(resp.status.as_u16(), 431, "a 5 KiB header field");
    // The connection stays usable, and a head within the limit goes through.
    let resp = client.get("/", "app.test").await.expect("an answer");
    assert_eq!(resp.status.as_u16(), 200);
    assert_eq!(
        app.requests(),
        requests + 1,
        "the app sees only the last one"
    );
    proxy.shutdown().await;
}

#[tokio::test]
async fn more_than_max_headers_gets_431() {
    let app = TestApp::start("green").await;
    let proxy = serving(config(app.addr(), |c| c.limits.max_headers = 10)).await;
    let addr = common::http(&proxy);
    let requests = app.requests();
    let head = |extra: usize| {
        format!(
            "GET / HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n{}\r\n",
            "X-Filler: 1\r\n".repeat(extra)
        )
    };
    let answer = raw_request(addr, head(9).as_bytes()).await;
    assert_eq!(status(&answer), Some(431), "11 header fields");
    assert_eq!(app.requests(), requests);
    let answer = raw_request(addr, head(8).as_bytes()).await;
    assert_eq!(status(&answer), Some(200), "10 header fields");
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_content_length_over_max_body_gets_413_before_the_body_is_sent() {
    let app = TestApp::start("green").await;
    let proxy = serving(config(app.addr(), |c| c.limits.max_body = 1024)).await;
    let requests = app.requests();
    let mut stream = connect(common::http(&proxy)).await;
    // Only the head: the answer must not wait for a body.
    stream
        .write_all(b"POST /echo HTTP/1.1\r\nHost: app.test\r\nContent-Length: 2048\r\n\r\n")
        .await
        .expect("write");
    let mut buf = [0u8; 1024];
    let n = within(BOUND, stream.read(&mut buf))
        .await
        .expect("an answer before the body")
        .expect("read");
    assert_eq!(
        status(&buf[..n]),
        Some(413),
        "{:?}",
        String::from_utf8_lossy(&buf[..n])
    );
    assert_eq!(app.requests(), requests, "the upstream sees nothing");
    assert!(app.posts().is_empty());
    proxy.shutdown().await;
}

/// A chunked POST of `total` bytes in 256-byte chunks.
fn chunked_post(total: usize) -> Vec<u8> {
    let mut raw = b"POST /echo HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\
        Connection: close\r\n\r\n"
        .to_vec();
    for _ in 0..total / 256 {
        raw.extend_from_slice(b"100\r\n");
        raw.extend_from_slice(&[b'b'; 256]);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    raw
}

#[tokio::test]
async fn a_chunked_body_crossing_max_body_is_refused_and_never_delivered_whole() {
    let app = TestApp::start("green").await;
    // Buffered for replay (limit 64 KiB), and streamed (replay buffer 512 bytes).
    for replay_buffer in [64 * 1024, 512] {
        let proxy = serving(config(app.addr(), |c| {
            c.limits.max_body = 2048;
            if let Some(svc) = c.services.get_mut("app") {
                svc.retry.replay_buffer = replay_buffer;
            }
        }))
        .await;
        let addr = common::http(&proxy);
        let answer = raw_request(addr, &chunked_post(8 * 1024)).await;
        let code = status(&answer);
        assert!(
            code == Some(413) || code.is_none(),
            "replay buffer {replay_buffer}: 413 or a failed request, got {:?}",
            String::from_utf8_lossy(&answer)
        );
        assert!(app.posts().is_empty(), "no complete body reached the app");
        // A body within the limit passes.
        let answer = raw_request(addr, &chunked_post(1024)).await;
        assert_eq!(status(&answer), Some(200), "replay buffer {replay_buffer}");
        assert_eq!(app.posts().len(), 1);
        app.recorder().reset();
        proxy.shutdown().await;
    }
}

#[tokio::test]
async fn a_connection_over_max_connections_waits_until_one_closes() {
    let app = TestApp::start("green").await;
    let proxy = serving(config(app.addr(), |c| c.limits.max_connections = 2)).await;
    let addr = common::http(&proxy);
    let mut first = KeepAliveClient::connect(addr).await;
    let mut second = KeepAliveClient::connect(addr).await;
    assert_eq!(first.get("/", "app.test").await.expect("first").status, 200);
    assert_eq!(
        second.get("/", "app.test").await.expect("second").status,
        200
    );
    // The third connects (the kernel queues it) but is not served...
    let mut third = KeepAliveClient::connect(addr).await;
    let waiting = tokio::spawn(async move {
        let resp = third.get("/", "app.test").await;
        (resp.map(|r| r.status), third)
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!waiting.is_finished(), "a third connection was served");
    assert_eq!(
        second.get("/", "app.test").await.expect("second").status,
        200
    );
    // ...until one of the first two closes.
    drop(first);
    let (status, _third) = within(BOUND, waiting)
        .await
        .expect("the third connection is served once a slot is free")
        .expect("task");
    assert_eq!(status.expect("third").as_u16(), 200);
    proxy.shutdown().await;
}

#[tokio::test]
async fn an_upstream_that_never_accepts_gets_504_after_the_connect_timeout() {
    // A listener with a backlog of 1 that never accepts: once its queue is full, the kernel
    // drops further SYNs and connects hang (Linux).
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .expect("bind");
    let listener = socket.listen(1).expect("listen");
    let addr = listener.local_addr().expect("addr");
    let mut fillers = Vec::new();
    let mut hangs = false;
    for _ in 0..4 {
        match within(Duration::from_millis(300), TcpStream::connect(addr)).await {
            Some(Ok(stream)) => fillers.push(stream),
            Some(Err(e)) => panic!("connect to the full listener: {e}"),
            None => {
                hangs = true;
                break;
            }
        }
    }
    if !hangs {
        // Linux (and so CI) always hangs them: there, not hanging is a failure, not a skip.
        assert!(
            !cfg!(target_os = "linux") && std::env::var_os("CI").is_none(),
            "connects to a full backlog did not hang; the connect timeout cannot be tested"
        );
        println!("note: connects to a full backlog do not hang here; connect timeout not tested");
        return;
    }
    let proxy = common::start(config(addr, |c| {
        if let Some(svc) = c.services.get_mut("app") {
            svc.upstream.connect_timeout = Duration::from_millis(200);
        }
    }))
    .await;
    let mut client = KeepAliveClient::connect(common::http(&proxy)).await;
    let resp = client.get("/", "app.test").await.expect("an answer");
    assert_eq!(resp.status, 504, "{}", resp.text());
    drop(fillers);
    drop(listener);
    proxy.shutdown().await;
}

#[tokio::test]
async fn an_upstream_slower_than_the_response_timeout_gets_504() {
    let app = TestApp::start("green").await;
    let proxy = serving(config(app.addr(), |c| {
        if let Some(svc) = c.services.get_mut("app") {
            svc.upstream.response_timeout = Duration::from_millis(200);
        }
    }))
    .await;
    let mut client = KeepAliveClient::connect(common::http(&proxy)).await;
    // An idempotent GET is retried on another server only if there is one: here there is not.
    let resp = client
        .get("/slow?ms=2000", "app.test")
        .await
        .expect("an answer");
    assert_eq!(resp.status, 504, "{}", resp.text());
    assert_eq!(app.count_path("/slow"), 1, "tried once");
    proxy.shutdown().await;
}
