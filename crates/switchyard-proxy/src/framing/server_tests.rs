//! The guard in front of the real servers, served the way `server.rs` serves clients
//! (`server::conn`: Switchyard's own HTTP/1 driver with upgrades, parking and the guard's
//! limits, and hyper's HTTP/2, over an in-memory duplex): what the client is answered, when the
//! connection closes, and that the clocks, HTTP/2 and upgrades work.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Empty, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

use super::{Guarded, Limits, ReadReady};

/// The serving set-up of these tests.
struct TestHost {
    setup: crate::server::conn::Setup,
    counter: crate::shared::ConnCounter,
}

impl crate::server::conn::Host for TestHost {
    fn setup(&self) -> &crate::server::conn::Setup {
        &self.setup
    }

    fn connections(&self) -> &crate::shared::ConnCounter {
        &self.counter
    }
}

/// A duplex has no readiness to wait for: a parked connection resumes at once.
impl ReadReady for DuplexStream {
    fn poll_read_ready(
        &self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

/// What the test service saw: `METHOD path body` per request.
type Seen = Arc<Mutex<Vec<String>>>;

/// The test service: records each request, answers 200 `ok` (400 when the body fails), and
/// answers `/ws` with 101 and an echo over the upgraded connection. `/slow` takes
/// [`SLOW`] to answer.
async fn app(mut req: Request<crate::body::ClientBody>, seen: Seen) -> Response<Full<Bytes>> {
    let line = format!("{} {}", req.method(), req.uri().path());
    if req.uri().path() == "/slow" {
        tokio::time::sleep(SLOW).await;
    }
    if req.uri().path() == "/ws" && req.headers().contains_key(header::UPGRADE) {
        let upgrade = req
            .extensions_mut()
            .remove::<crate::server::h1::OnUpgrade>();
        tokio::spawn(async move {
            let Some(upgrade) = upgrade else {
                return;
            };
            if let Ok(mut io) = upgrade.await {
                let mut buf = [0u8; 64];
                if let Ok(n) = io.read(&mut buf).await {
                    let _ = io.write_all(&buf[..n]).await;
                }
            }
        });
        seen.lock().unwrap_or_else(|e| e.into_inner()).push(line);
        let mut resp = Response::new(Full::default());
        *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        resp.headers_mut()
            .insert(header::UPGRADE, "websocket".parse().expect("static"));
        resp.headers_mut()
            .insert(header::CONNECTION, "upgrade".parse().expect("static"));
        return resp;
    }
    let body = req.into_body().collect().await.map(|c| c.to_bytes());
    let mut resp = Response::new(Full::new(Bytes::from_static(b"ok")));
    match body {
        Ok(body) => {
            let line = format!("{line} {}", String::from_utf8_lossy(&body));
            seen.lock().unwrap_or_else(|e| e.into_inner()).push(line);
        }
        Err(_) => *resp.status_mut() = StatusCode::BAD_REQUEST,
    }
    resp
}

/// How long `/slow` takes: longer than every clock of [`limits`].
const SLOW: Duration = Duration::from_secs(100);

/// The guard's limits, with the clocks given.
fn limits(header_timeout: Duration, keepalive_timeout: Duration) -> Limits {
    Limits {
        max_head_bytes: 8192,
        header_timeout,
        keepalive_timeout,
        ..Limits::default()
    }
}

/// Serves one guarded connection; returns the client end and what the service saw. Without
/// `track` the guard does not follow the answers the HTTP/1 server reports.
fn serve(track: bool, limits: Limits) -> (DuplexStream, Seen) {
    let (client, server) = tokio::io::duplex(1 << 16);
    let seen = Seen::default();
    let mut guard = Guarded::new(server, limits);
    if track {
        guard.track_answers();
    }
    let app_seen = seen.clone();
    let svc = crate::server::conn::WithMap(service_fn(move |req| {
        let seen = app_seen.clone();
        async move { Ok::<_, Infallible>(app(req, seen).await) }
    }));
    tokio::spawn(async move {
        // As `server.rs` sets it up; parking after a moment, so that every test also runs
        // across parks (a duplex is always "readable": a parked connection resumes at once).
        let host = TestHost {
            setup: crate::server::conn::Setup {
                h1: crate::server::h1::Options {
                    max_buf: limits.read_buf_limit(),
                    max_headers: limits.max_headers,
                },
                h2: hyper::server::conn::http2::Builder::new(TokioExecutor::new()),
                park_after: Some(Duration::from_millis(10)),
            },
            counter: crate::shared::ConnCounter::default(),
        };
        let (_stop_tx, stop) = tokio::sync::watch::channel(false);
        let _ = crate::server::conn::serve(guard, svc, host, stop, ()).await;
    });
    (client, seen)
}

/// Writes `raw` and reads until the server closes (panics after 10 s).
async fn exchange(client: &mut DuplexStream, raw: &[u8]) -> String {
    client.write_all(raw).await.expect("write");
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), client.read_to_end(&mut out)).await;
    assert!(
        read.is_ok(),
        "the server did not close: {:?}",
        String::from_utf8_lossy(&out)
    );
    String::from_utf8_lossy(&out).into_owned()
}

fn seen(seen: &Seen) -> Vec<String> {
    seen.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

const TIMEOUT: Duration = Duration::from_secs(30);

/// Limits whose clocks never get in the way.
fn relaxed() -> Limits {
    limits(TIMEOUT, TIMEOUT)
}

#[tokio::test]
async fn a_refused_head_gets_400_and_the_connection_closes() {
    for signal in [false, true] {
        let (mut client, log) = serve(signal, relaxed());
        let raw = b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\
            Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
        let answer = exchange(&mut client, raw).await;
        assert!(
            answer.starts_with("HTTP/1.1 400 Bad Request\r\n"),
            "{answer:?}"
        );
        assert!(
            answer.to_ascii_lowercase().contains("connection: close"),
            "{answer:?}"
        );
        assert_eq!(answer.matches("HTTP/1.1").count(), 1, "{answer:?}");
        assert!(seen(&log).is_empty());
    }
}

#[tokio::test]
async fn a_slow_refused_head_gets_400_too() {
    let (mut client, log) = serve(true, relaxed());
    client
        .write_all(b"POST /a HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    // Let the server take the first part.
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    let answer = exchange(
        &mut client,
        b"Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
    )
    .await;
    assert!(
        answer.starts_with("HTTP/1.1 400 Bad Request\r\n"),
        "{answer:?}"
    );
    assert!(seen(&log).is_empty());
}

#[tokio::test]
async fn large_bodies_pass_whole() {
    let (mut client, log) = serve(true, relaxed());
    let big = "a".repeat(200 * 1024);
    let chunk = "b".repeat(70 * 1024);
    let raw = format!(
        "POST /cl HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{big}\
         POST /chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
         {:x}\r\n{chunk}\r\n{:x}\r\n{chunk}\r\n0\r\n\r\n\
         GET /end HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        big.len(),
        chunk.len(),
        chunk.len(),
    );
    let answer = exchange(&mut client, raw.as_bytes()).await;
    assert_eq!(answer.matches("HTTP/1.1 200 OK").count(), 3, "{answer:?}");
    let log = seen(&log);
    assert_eq!(log.len(), 3);
    assert_eq!(log[0], format!("POST /cl {big}"));
    assert_eq!(log[1], format!("POST /chunked {chunk}{chunk}"));
    assert_eq!(log[2], "GET /end ");
}

#[tokio::test]
async fn pipelined_requests_are_all_served() {
    let (mut client, log) = serve(true, relaxed());
    let raw = b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\n\
        POST /2 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello\
        POST /3 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
        4;a=b\r\nwiki\r\n5\r\npedia\r\n0\r\nX-T: 1\r\n\r\n\
        GET /4 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let answer = exchange(&mut client, raw).await;
    assert_eq!(answer.matches("HTTP/1.1 200 OK").count(), 4, "{answer:?}");
    assert_eq!(
        seen(&log),
        ["GET /1 ", "POST /2 hello", "POST /3 wikipedia", "GET /4 "]
    );
}

#[tokio::test]
async fn a_broken_chunked_body_fails_and_nothing_after_it_is_served() {
    let (mut client, log) = serve(false, relaxed());
    let raw = b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
        zz\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
    let answer = exchange(&mut client, raw).await;
    assert!(
        answer.starts_with("HTTP/1.1 400 Bad Request\r\n"),
        "{answer:?}"
    );
    assert_eq!(answer.matches("HTTP/1.1").count(), 1, "{answer:?}");
    assert!(seen(&log).is_empty());
}

/// Reads until the server closes; returns what came and when the EOF came.
async fn until_closed(client: &mut DuplexStream) -> (String, tokio::time::Instant) {
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(1000), client.read_to_end(&mut out)).await;
    assert!(read.is_ok(), "the connection was not closed");
    (
        String::from_utf8_lossy(&out).into_owned(),
        tokio::time::Instant::now(),
    )
}

#[tokio::test(start_paused = true)]
async fn the_header_timeout_applies_to_a_slow_first_head() {
    let (mut client, log) = serve(false, limits(Duration::from_secs(5), TIMEOUT));
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    let started = tokio::time::Instant::now();
    let (answer, closed) = until_closed(&mut client).await;
    assert_eq!(closed - started, Duration::from_secs(5));
    assert_eq!(answer, "", "nothing is written");
    assert!(seen(&log).is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_silent_connection_is_closed_after_the_header_timeout() {
    let (mut client, log) = serve(true, limits(Duration::from_secs(5), TIMEOUT));
    let started = tokio::time::Instant::now();
    let (answer, closed) = until_closed(&mut client).await;
    assert_eq!(closed - started, Duration::from_secs(5));
    assert_eq!(answer, "");
    assert!(seen(&log).is_empty());
}

#[tokio::test(start_paused = true)]
async fn an_idle_keepalive_connection_closes_after_its_timeout_and_not_before() {
    let header = Duration::from_secs(5);
    let keepalive = Duration::from_secs(20);
    let (mut client, log) = serve(true, limits(header, keepalive));
    // Longer than the header timeout between requests: still open.
    for _ in 0..3 {
        client
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("write");
        let mut buf = [0u8; 256];
        let n = client.read(&mut buf).await.expect("an answer");
        assert!(buf[..n].starts_with(b"HTTP/1.1 200 OK\r\n"));
        tokio::time::sleep(keepalive - Duration::from_secs(1)).await;
    }
    let idle = tokio::time::Instant::now() - (keepalive - Duration::from_secs(1));
    let (answer, closed) = until_closed(&mut client).await;
    assert_eq!(answer, "", "closed without a word");
    assert_eq!(closed - idle, keepalive);
    assert_eq!(seen(&log).len(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_slow_answer_is_not_cut_by_the_clocks() {
    let clock = Duration::from_secs(5);
    let (mut client, log) = serve(true, limits(clock, clock));
    let started = tokio::time::Instant::now();
    client
        .write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\nGET /after HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let (answer, closed) = until_closed(&mut client).await;
    assert_eq!(answer.matches("HTTP/1.1 200 OK").count(), 2, "{answer:?}");
    assert_eq!(seen(&log), ["GET /slow ", "GET /after "]);
    // Then idle, closed by the keep-alive clock.
    assert_eq!(closed - started, SLOW + clock);
}

#[tokio::test]
async fn heads_over_the_limits_get_431() {
    let big = format!(
        "GET /big HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(2000)
    );
    let many = format!(
        "GET /many HTTP/1.1\r\nHost: x\r\n{}\r\n",
        "X-A: 1\r\n".repeat(20)
    );
    for raw in [big, many] {
        let limits = Limits {
            max_head_bytes: 1024,
            max_headers: 10,
            ..relaxed()
        };
        let (mut client, log) = serve(true, limits);
        let raw = format!("GET /ok HTTP/1.1\r\nHost: x\r\n\r\n{raw}GET /after HTTP/1.1\r\n\r\n");
        let answer = exchange(&mut client, raw.as_bytes()).await;
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer:?}");
        assert!(
            answer.contains("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
            "{answer:?}"
        );
        assert_eq!(answer.matches("HTTP/1.1").count(), 2, "{answer:?}");
        assert_eq!(seen(&log), ["GET /ok "]);
    }
}

#[tokio::test]
async fn http2_with_prior_knowledge_passes() {
    let (client, log) = serve(true, relaxed());
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(client))
            .await
            .expect("h2 handshake through the guard");
    tokio::spawn(conn);
    let req = Request::get("http://x/h2")
        .body(Empty::<Bytes>::new())
        .expect("request");
    let resp = sender.send_request(req).await.expect("h2 answer");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(seen(&log), ["GET /h2 "]);
}

#[tokio::test]
async fn an_upgrade_answered_101_becomes_a_tunnel() {
    let (mut client, log) = serve(true, relaxed());
    // The tunnel's first bytes arrive with the request, before the answer.
    let raw = b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n\
        ping\r\n\r\n\x00";
    let answer = exchange(&mut client, raw).await;
    assert!(
        answer.starts_with("HTTP/1.1 101 Switching Protocols\r\n"),
        "{answer:?}"
    );
    assert!(answer.ends_with("\r\n\r\nping\r\n\r\n\x00"), "{answer:?}");
    assert_eq!(seen(&log), ["GET /ws"]);
}

#[tokio::test]
async fn an_upgrade_answered_otherwise_keeps_the_checks() {
    let (mut client, log) = serve(true, relaxed());
    let raw =
        b"GET /plain HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n\
        POST /smuggled HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\
        Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    let answer = exchange(&mut client, raw).await;
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer:?}");
    assert!(
        answer.contains("HTTP/1.1 400 Bad Request\r\n"),
        "{answer:?}"
    );
    assert_eq!(seen(&log), ["GET /plain "]);
}
