//! Request-framing hygiene through a real proxy, table-driven: raw byte vectors of ambiguous or
//! malformed requests (request-smuggling material) and valid controls, each with the status the
//! client must get, whether the upstream may see it, and whether the connection must close.
//! After every vector a fresh connection must still be served.
//!
//! The `Upgrade: h2c` vector is answered as a plain request: the proxy does not forward the
//! upgrade, so the upstream must see a GET without `Upgrade` or `HTTP2-Settings`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use switchyard_config::{Config, PoolConfig, ServerConfig, ServiceConfig};
use switchyard_proxy::{Listeners, ProxyHandle};
use switchyard_tests::{TestApp, poll_until, within};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One raw request and what must come of it.
struct Vector {
    /// Named in every assertion message.
    name: &'static str,
    /// The bytes written on a fresh connection.
    raw: Vec<u8>,
    /// The status of the first answer; `None`: the connection closes without an answer.
    status: Option<u16>,
    /// Whether the upstream app must receive the request (exactly once) or not at all.
    upstream_must_receive: bool,
    /// Whether the proxy must close the connection (EOF, not a read timeout).
    connection_must_close: bool,
    /// For a POST that must get through: the body the app must record.
    posted: Option<&'static [u8]>,
    /// Text that must not appear anywhere in the answer.
    absent: &'static [&'static str],
}

/// A vector the proxy must refuse with 400 and a closed connection, never forwarding it.
fn refused(name: &'static str, raw: &[u8]) -> Vector {
    Vector {
        name,
        raw: raw.to_vec(),
        status: Some(400),
        upstream_must_receive: false,
        connection_must_close: true,
        posted: None,
        absent: &[],
    }
}

/// A valid request (sent with `Connection: close`) that must reach the upstream.
fn control(name: &'static str, raw: &[u8], posted: Option<&'static [u8]>) -> Vector {
    Vector {
        name,
        raw: raw.to_vec(),
        status: Some(200),
        upstream_must_receive: true,
        connection_must_close: true,
        posted,
        absent: &[],
    }
}

fn vectors() -> Vec<Vector> {
    let many_headers = format!(
        "GET / HTTP/1.1\r\nHost: app.test\r\n{}\r\n",
        "X-Filler: 1\r\n".repeat(120)
    );
    vec![
        control(
            "valid GET",
            b"GET / HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n",
            None,
        ),
        control(
            "valid POST with Content-Length",
            b"POST /echo HTTP/1.1\r\nHost: app.test\r\nContent-Length: 5\r\n\
              Connection: close\r\n\r\nhello",
            Some(b"hello"),
        ),
        control(
            "valid chunked POST with extension and trailer",
            b"POST /echo HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\
              Connection: close\r\n\r\n4;ext=1\r\nwiki\r\n5\r\npedia\r\n0\r\nX-Trailer: t\r\n\r\n",
            Some(b"wikipedia"),
        ),
        refused(
            "CL + TE (CL first)",
            b"POST /echo HTTP/1.1\r\nHost: app.test\r\nContent-Length: 6\r\n\
              Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nX",
        ),
        refused(
            "TE + CL (TE first)",
            b"POST /echo HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\
              Content-Length: 6\r\n\r\n0\r\n\r\nX",
        ),
        refused(
            "TE: chunked, chunked",
            b"POST /echo HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked, chunked\r\n\
              \r\n5\r\nhello\r\n0\r\n\r\n",
        ),
        refused(
            "TE: gzip, chunked",
            b"POST /echo HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: gzip, chunked\r\n\
              \r\n5\r\nhello\r\n0\r\n\r\n",
        ),
        refused(
            "TE: xchunked",
            b"POST /echo HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: xchunked\r\n\
              \r\n5\r\nhello\r\n0\r\n\r\n",
        ),
        refused(
            "two TE headers",
            b"POST /echo HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\
              Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        ),
        refused(
            "TE in HTTP/1.0",
            b"POST /echo HTTP/1.0\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\
              \r\n5\r\nhello\r\n0\r\n\r\n",
        ),
        refused(
            "duplicate equal CLs",
            b"POST /echo HTTP/1.1\r\nHost: app.test\r\nContent-Length: 5\r\n\
              Content-Length: 5\r\n\r\nhello",
        ),
        refused(
            "duplicate different CLs",
            b"POST /echo HTTP/1.1\r\nHost: app.test\r\nContent-Length: 5\r\n\
              Content-Length: 6\r\n\r\nhello!",
        ),
        refused(
            "CL list 5, 5",
            b"POST /echo HTTP/1.1\r\nHost: app.test\r\nContent-Length: 5, 5\r\n\r\nhello",
        ),
        refused(
            "signed CL +5",
            b"POST /echo HTTP/1.1\r\nHost: app.test\r\nContent-Length: +5\r\n\r\nhello",
        ),
        refused(
            "negative CL",
            b"POST /echo HTTP/1.1\r\nHost: app.test\r\nContent-Length: -5\r\n\r\nhello",
        ),
        refused(
            "CL spelled Content_Length",
            b"POST /echo HTTP/1.1\r\nHost: app.test\r\nContent_Length: 5\r\n\r\nhello",
        ),
        refused(
            "invalid chunk size zz",
            b"POST /echo HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n\
              zz\r\nhello\r\n0\r\n\r\n",
        ),
        refused(
            "chunk size overflow",
            b"POST /echo HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n\
              ffffffffffffffffff\r\nhello\r\n0\r\n\r\n",
        ),
        refused(
            "space before colon",
            b"POST /echo HTTP/1.1\r\nHost: app.test\r\nContent-Length : 5\r\n\r\nhello",
        ),
        refused(
            "obs-fold",
            b"GET / HTTP/1.1\r\nHost: app.test\r\nX-Folded: a\r\n b\r\n\r\n",
        ),
        refused(
            "bare CR in a header value",
            b"GET / HTTP/1.1\r\nHost: app.test\r\nX-Bad: a\rb\r\n\r\n",
        ),
        refused(
            "NUL in a header value",
            b"GET / HTTP/1.1\r\nHost: app.test\r\nX-Bad: a\x00b\r\n\r\n",
        ),
        refused("missing Host", b"GET / HTTP/1.1\r\nX-A: 1\r\n\r\n"),
        refused(
            "duplicate Host",
            b"GET / HTTP/1.1\r\nHost: app.test\r\nHost: other.test\r\n\r\n",
        ),
        refused(
            "absolute-form URI with a different Host",
            b"GET http://other.test/ HTTP/1.1\r\nHost: app.test\r\n\r\n",
        ),
        Vector {
            status: Some(431),
            ..refused("120 headers", many_headers.as_bytes())
        },
        Vector {
            // Passed through to hyper's HTTP/2 server, which answers with frames and closes.
            status: None,
            ..refused(
                "HTTP/2 preface followed by garbage",
                b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\nGET / HTTP/1.1\r\nHost: app.test\r\n\r\n",
            )
        },
        Vector {
            absent: &["\"upgrade\"", "\"http2-settings\"", "101 Switching"],
            ..control(
                "Upgrade: h2c (answered as plain HTTP/1.1)",
                b"GET /headers HTTP/1.1\r\nHost: app.test\r\n\
                  Connection: Upgrade, HTTP2-Settings\r\nConnection: close\r\n\
                  Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n",
                None,
            )
        },
    ]
}

/// What came back on one connection.
struct Answer {
    /// Every byte read.
    bytes: Vec<u8>,
    /// Whether the proxy closed (EOF or reset) before the read timeout.
    closed: bool,
}

impl Answer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }

    /// The status codes of every HTTP/1 status line in the answer, in order.
    fn statuses(&self) -> Vec<u16> {
        self.text()
            .split("HTTP/1.1 ")
            .skip(1)
            .filter_map(|s| s.get(..3)?.parse().ok())
            .collect()
    }

    /// The status of the first line, if it is a status line.
    fn status(&self) -> Option<u16> {
        let text = self.text();
        let line = text.lines().next()?;
        let mut parts = line.split(' ');
        match (parts.next(), parts.next()) {
            (Some("HTTP/1.1" | "HTTP/1.0"), Some(code)) => code.parse().ok(),
            _ => None,
        }
    }
}

/// Writes `raw` on a fresh connection and reads until the proxy closes (or 5 s pass).
async fn send_raw(addr: SocketAddr, raw: &[u8]) -> Answer {
    let mut stream = TcpStream::connect(addr)
        .await
        .expect("connect to the proxy");
    let _ = stream.set_nodelay(true);
    // The proxy may answer and close before reading everything; what comes back matters.
    let _ = stream.write_all(raw).await;
    let mut bytes = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match within(Duration::from_secs(5), stream.read(&mut buf)).await {
            Some(Ok(0) | Err(_)) => {
                return Answer {
                    bytes,
                    closed: true,
                };
            }
            Some(Ok(n)) => bytes.extend_from_slice(&buf[..n]),
            None => {
                return Answer {
                    bytes,
                    closed: false,
                };
            }
        }
    }
}

/// A proxy with one catch-all service whose single pool is `app`.
async fn start_proxy(app: &TestApp) -> ProxyHandle {
    let pools = BTreeMap::from([(
        "green".to_string(),
        PoolConfig::new(vec![ServerConfig::new(app.addr())]),
    )]);
    let mut config = Config::default();
    config
        .services
        .insert("app".into(), ServiceConfig::new("app", "green", pools));
    let listeners = Listeners::loopback()
        .await
        .expect("bind loopback listeners");
    let proxy = switchyard_proxy::start(config, listeners).expect("the proxy starts");
    let addr = proxy.http_addrs()[0];
    // Ready once the pool serves (its server may start out unhealthy until checked).
    poll_until(
        Duration::from_secs(10),
        || async move { serves(addr).await },
    )
    .await;
    proxy
}

/// Whether a normal GET on a fresh connection gets the app's 200.
async fn serves(addr: SocketAddr) -> bool {
    let answer = send_raw(
        addr,
        b"GET / HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    answer.status() == Some(200) && answer.text().ends_with("green")
}

#[tokio::test]
async fn raw_vectors_get_the_right_answer_and_never_an_ambiguous_forward() {
    let app = TestApp::start("green").await;
    let proxy = start_proxy(&app).await;
    let addr = proxy.http_addrs()[0];
    for v in vectors() {
        let requests = app.requests();
        let posts = app.posts().len();
        let answer = send_raw(addr, &v.raw).await;
        let name = v.name;
        let text = answer.text();
        assert_eq!(answer.status(), v.status, "{name}: status; answer {text:?}");
        if v.connection_must_close {
            assert!(
                answer.closed,
                "{name}: the connection stayed open; answer {text:?}"
            );
        }
        assert_eq!(
            answer.statuses().len(),
            usize::from(v.status.is_some()),
            "{name}: one answer only; answer {text:?}"
        );
        let received = app.requests() - requests;
        if v.upstream_must_receive {
            assert_eq!(received, 1, "{name}: the upstream must receive it once");
        } else {
            assert_eq!(received, 0, "{name}: the upstream must not receive it");
            assert_eq!(app.posts().len(), posts, "{name}: no body may be recorded");
        }
        if let Some(body) = v.posted {
            assert_eq!(app.posts().len(), posts + 1, "{name}: one body recorded");
            assert_eq!(
                app.posts().last().map(|b| &b[..]),
                Some(body),
                "{name}: body"
            );
        }
        for absent in v.absent {
            assert!(
                !text.contains(absent),
                "{name}: {absent} in answer {text:?}"
            );
        }
        assert!(
            serves(addr).await,
            "{name}: a fresh connection is no longer served"
        );
    }
    proxy.shutdown().await;
}

#[tokio::test]
async fn pipelined_requests_are_served_in_order_and_a_smuggled_one_is_refused() {
    let app = TestApp::start("green").await;
    let proxy = start_proxy(&app).await;
    let addr = proxy.http_addrs()[0];
    let requests = app.requests();
    let raw = b"GET / HTTP/1.1\r\nHost: app.test\r\n\r\n\
        POST /echo HTTP/1.1\r\nHost: app.test\r\nContent-Length: 5\r\n\r\nfirst\
        POST /echo HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n\
        6\r\nsecond\r\n0\r\n\r\n\
        POST /echo HTTP/1.1\r\nHost: app.test\r\nContent-Length: 6\r\n\
        Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: app.test\r\n\r\n";
    let answer = send_raw(addr, raw).await;
    let text = answer.text();
    assert_eq!(answer.statuses(), [200, 200, 200, 400], "answer {text:?}");
    assert!(answer.closed, "the connection must close after the 400");
    assert_eq!(app.requests() - requests, 3);
    assert_eq!(app.posts(), ["first", "second"]);
    assert_eq!(app.count_path("/smuggled"), 0);
    proxy.shutdown().await;
}

#[tokio::test]
async fn an_upgrade_request_does_not_open_a_way_past_the_checks() {
    let app = TestApp::start("green").await;
    let proxy = start_proxy(&app).await;
    let addr = proxy.http_addrs()[0];
    let requests = app.requests();
    let raw = b"GET /headers HTTP/1.1\r\nHost: app.test\r\nUpgrade: websocket\r\n\
        Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
        Sec-WebSocket-Version: 13\r\n\r\n\
        POST /echo HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\
        Content-Length: 5\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: app.test\r\n\r\n";
    let answer = send_raw(addr, raw).await;
    let statuses = answer.statuses();
    let text = answer.text();
    assert_eq!(statuses.last(), Some(&400), "answer {text:?}");
    assert!(!statuses.contains(&101), "answer {text:?}");
    assert!(answer.closed, "the connection must close after the 400");
    assert!(
        app.requests() - requests <= 1,
        "only the upgrade request may arrive"
    );
    assert!(app.posts().is_empty());
    assert_eq!(app.count_path("/smuggled"), 0);
    proxy.shutdown().await;
}
