//! Switchyard's own HTTP/1 server side, seen from raw client sockets through a real proxy:
//! `Expect: 100-continue`, HTTP/1.0 clients, `HEAD`, chunked request bodies with trailers,
//! answers of unknown length (chunked for HTTP/1.1, until close for HTTP/1.0) and the `Date` of
//! the proxy's own answers.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use switchyard_proxy::ProxyHandle;
use switchyard_tests::{Scripted, TestApp, scripted_upstream, within};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Far longer than any wait of these tests.
const BOUND: Duration = Duration::from_secs(10);

async fn start(upstream: SocketAddr) -> ProxyHandle {
    let proxy = common::start(common::two_colours(&[upstream], &[upstream])).await;
    common::wait_healthy(&proxy, "green").await;
    proxy
}

/// One answer as read from the socket.
#[derive(Debug)]
struct Answer {
    /// The status line.
    status_line: String,
    /// The header fields, names lower-cased.
    fields: Vec<(String, String)>,
    /// The body, de-chunked.
    body: Vec<u8>,
}

impl Answer {
    fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads bytes until `buf` holds `n` of them (panics at EOF).
async fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>, n: usize) {
    let mut chunk = [0u8; 4096];
    while buf.len() < n {
        let got = within(BOUND, stream.read(&mut chunk))
            .await
            .expect("bytes in time")
            .expect("read");
        assert!(
            got > 0,
            "the connection closed early: {:?}",
            String::from_utf8_lossy(buf)
        );
        buf.extend_from_slice(&chunk[..got]);
    }
}

/// Reads one line (up to CRLF); returns it without the CRLF and keeps the rest in `buf`.
async fn line(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Vec<u8> {
    loop {
        if let Some(i) = buf.windows(2).position(|w| w == b"\r\n") {
            let line = buf[..i].to_vec();
            buf.drain(..i + 2);
            return line;
        }
        let want = buf.len() + 1;
        fill(stream, buf, want).await;
    }
}

/// Reads up to and including the next CRLF CRLF; returns the head and keeps the rest in `buf`.
async fn head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> String {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            buf.drain(..end + 4);
            return head;
        }
        let want = buf.len() + 1;
        fill(stream, buf, want).await;
    }
}

/// Reads one answer to a request of `method`; bytes after it stay in `buf`.
async fn answer(stream: &mut TcpStream, buf: &mut Vec<u8>, method: &str) -> Answer {
    let text = head(stream, buf).await;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default().to_string();
    let fields: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut answer = Answer {
        status_line,
        fields,
        body: Vec::new(),
    };
    if method == "HEAD" {
        return answer;
    }
    if answer.field("transfer-encoding") == Some("chunked") {
        loop {
            let size_line = line(stream, buf).await;
            let size = usize::from_str_radix(String::from_utf8_lossy(&size_line).trim(), 16)
                .expect("a chunk size");
            if size == 0 {
                // Trailer lines, then an empty line.
                while !line(stream, buf).await.is_empty() {}
                break;
            }
            fill(stream, buf, size + 2).await;
            answer.body.extend_from_slice(&buf[..size]);
            buf.drain(..size + 2);
        }
    } else if let Some(n) = answer.field("content-length") {
        let n: usize = n.parse().expect("a length");
        fill(stream, buf, n).await;
        answer.body = buf.drain(..n).collect();
    } else {
        // Until the connection closes.
        within(BOUND, stream.read_to_end(buf))
            .await
            .expect("closed in time")
            .expect("read");
        answer.body = std::mem::take(buf);
    }
    answer
}

/// A new client connection to the proxy.
async fn connect(proxy: &ProxyHandle) -> TcpStream {
    TcpStream::connect(common::http(proxy))
        .await
        .expect("connect")
}

/// Sends `raw` and reads the answer to a request of `method`.
async fn ask(stream: &mut TcpStream, buf: &mut Vec<u8>, raw: &[u8], method: &str) -> Answer {
    stream.write_all(raw).await.expect("write");
    answer(stream, buf, method).await
}

/// Whether the proxy closes the connection (EOF, nothing more sent) within the bound.
async fn closes(stream: &mut TcpStream) -> bool {
    let mut rest = Vec::new();
    matches!(
        within(BOUND, stream.read_to_end(&mut rest)).await,
        Some(Ok(0))
    )
}

#[tokio::test]
async fn expect_continue_is_answered_before_the_body_is_sent() {
    let app = TestApp::start("green").await;
    let proxy = start(app.addr()).await;
    let mut stream = connect(&proxy).await;
    stream
        .write_all(
            b"POST /echo HTTP/1.1\r\nHost: app.test\r\nContent-Length: 5\r\n\
              Expect: 100-continue\r\n\r\n",
        )
        .await
        .expect("write head");
    let mut buf = Vec::new();
    let interim = head(&mut stream, &mut buf).await;
    assert_eq!(interim, "HTTP/1.1 100 Continue");
    assert!(
        app.recorder().posts_to("/echo").is_empty(),
        "nothing reached the app before the body"
    );
    stream.write_all(b"hello").await.expect("write body");
    let a = answer(&mut stream, &mut buf, "POST").await;
    assert!(a.status_line.starts_with("HTTP/1.1 200"), "{a:?}");
    assert_eq!(a.body, b"hello");
    assert_eq!(
        app.recorder().posts_to("/echo"),
        [bytes::Bytes::from("hello")]
    );
}

#[tokio::test]
async fn http10_clients_get_http10_answers_and_keep_alive_only_when_asked() {
    let app = TestApp::start("green").await;
    let proxy = start(app.addr()).await;

    let mut plain = connect(&proxy).await;
    let mut buf = Vec::new();
    let a = ask(
        &mut plain,
        &mut buf,
        b"GET / HTTP/1.0\r\nHost: app.test\r\n\r\n",
        "GET",
    )
    .await;
    assert!(a.status_line.starts_with("HTTP/1.0 200"), "{a:?}");
    assert_eq!(a.body, b"green");
    assert!(
        closes(&mut plain).await,
        "an HTTP/1.0 connection without keep-alive closes"
    );

    let mut kept = connect(&proxy).await;
    let get = b"GET / HTTP/1.0\r\nHost: app.test\r\nConnection: keep-alive\r\n\r\n";
    let mut buf = Vec::new();
    for _ in 0..2 {
        let a = ask(&mut kept, &mut buf, get, "GET").await;
        assert!(a.status_line.starts_with("HTTP/1.0 200"), "{a:?}");
        assert_eq!(a.field("connection"), Some("keep-alive"), "{a:?}");
        assert_eq!(a.body, b"green");
    }
}

#[tokio::test]
async fn head_answers_keep_their_length_and_carry_no_body() {
    let app = TestApp::start("green").await;
    let proxy = start(app.addr()).await;
    let mut stream = connect(&proxy).await;
    let mut buf = Vec::new();
    let head_answer = ask(
        &mut stream,
        &mut buf,
        b"HEAD / HTTP/1.1\r\nHost: app.test\r\n\r\nGET / HTTP/1.1\r\nHost: app.test\r\n\r\n",
        "HEAD",
    )
    .await;
    assert!(
        head_answer.status_line.starts_with("HTTP/1.1 200"),
        "{head_answer:?}"
    );
    assert_eq!(head_answer.field("content-length"), Some("5"));
    // The next bytes are the second answer's: the HEAD answer had no body.
    let get_answer = answer(&mut stream, &mut buf, "GET").await;
    assert!(
        get_answer.status_line.starts_with("HTTP/1.1 200"),
        "{get_answer:?}"
    );
    assert_eq!(get_answer.body, b"green");
}

#[tokio::test]
async fn a_chunked_request_body_with_trailers_reaches_the_app_whole() {
    let app = TestApp::start("green").await;
    let proxy = start(app.addr()).await;
    let mut stream = connect(&proxy).await;
    // Sent in pieces, so the body arrives over several reads.
    let pieces: [&[u8]; 4] = [
        b"POST /echo HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
        b"lo\r\n6\r\n world\r\n",
        b"0\r\nx-checksum: 1\r\n",
        b"\r\n",
    ];
    for piece in pieces {
        stream.write_all(piece).await.expect("write");
        stream.flush().await.expect("flush");
    }
    let mut buf = Vec::new();
    let a = answer(&mut stream, &mut buf, "POST").await;
    assert!(a.status_line.starts_with("HTTP/1.1 200"), "{a:?}");
    assert_eq!(a.body, b"hello world");
    assert_eq!(
        app.recorder().posts_to("/echo"),
        [bytes::Bytes::from("hello world")]
    );
}

/// An upstream that answers every request with a body of unknown length (no `Content-Length`,
/// not chunked: it ends when the upstream closes).
async fn until_close_upstream() -> SocketAddr {
    scripted_upstream(|_| Scripted {
        answer: b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nstreamed to the end".to_vec(),
        close: true,
    })
    .await
}

#[tokio::test]
async fn a_body_of_unknown_length_goes_chunked_to_http11_and_until_close_to_http10() {
    let upstream = until_close_upstream().await;
    let proxy = start(upstream).await;

    let mut v11 = connect(&proxy).await;
    let mut buf = Vec::new();
    for _ in 0..2 {
        let a = ask(
            &mut v11,
            &mut buf,
            b"GET / HTTP/1.1\r\nHost: app.test\r\n\r\n",
            "GET",
        )
        .await;
        assert!(a.status_line.starts_with("HTTP/1.1 200"), "{a:?}");
        assert_eq!(a.field("transfer-encoding"), Some("chunked"), "{a:?}");
        assert_eq!(a.field("content-length"), None, "{a:?}");
        assert_eq!(a.body, b"streamed to the end");
    }

    let mut v10 = connect(&proxy).await;
    let mut buf = Vec::new();
    let a = ask(
        &mut v10,
        &mut buf,
        b"GET / HTTP/1.0\r\nHost: app.test\r\nConnection: keep-alive\r\n\r\n",
        "GET",
    )
    .await;
    assert!(a.status_line.starts_with("HTTP/1.0 200"), "{a:?}");
    assert_eq!(a.field("transfer-encoding"), None, "{a:?}");
    assert_ne!(a.field("connection"), Some("keep-alive"), "{a:?}");
    assert_eq!(a.body, b"streamed to the end");
}

#[tokio::test]
async fn the_proxys_own_answers_carry_a_date() {
    let app = TestApp::start("green").await;
    let proxy = start(app.addr()).await;
    let mut stream = connect(&proxy).await;
    let mut buf = Vec::new();
    let a = ask(
        &mut stream,
        &mut buf,
        b"OPTIONS * HTTP/1.1\r\nHost: app.test\r\n\r\n",
        "OPTIONS",
    )
    .await;
    assert!(a.status_line.starts_with("HTTP/1.1 200"), "{a:?}");
    let date = a.field("date").expect("a Date field");
    assert!(httpdate::parse_http_date(date).is_ok(), "{date:?}");
}

#[tokio::test]
async fn a_body_left_unread_ends_the_connection_after_the_answer() {
    let app = TestApp::start("green").await;
    let mut config = common::two_colours(&[app.addr()], &[app.addr()]);
    config.limits.max_body = 10;
    let proxy = common::start(config).await;
    common::wait_healthy(&proxy, "green").await;
    let mut stream = connect(&proxy).await;
    let mut buf = Vec::new();
    // Refused on its declared length, before a byte of the body is read: the rest of the body
    // would be read as the next request, so the connection ends after the answer.
    let a = ask(
        &mut stream,
        &mut buf,
        b"POST /echo HTTP/1.1\r\nHost: app.test\r\nContent-Length: 100\r\n\r\n",
        "POST",
    )
    .await;
    assert!(a.status_line.starts_with("HTTP/1.1 413"), "{a:?}");
    assert_eq!(a.field("connection"), Some("close"), "{a:?}");
    assert!(closes(&mut stream).await, "the connection closes");
    assert!(app.recorder().posts_to("/echo").is_empty());
}

#[tokio::test]
async fn a_body_cut_short_by_the_client_never_reaches_the_app() {
    let app = TestApp::start("green").await;
    let proxy = start(app.addr()).await;
    let mut cut = connect(&proxy).await;
    cut.write_all(b"POST /echo HTTP/1.1\r\nHost: app.test\r\nContent-Length: 10\r\n\r\nabc")
        .await
        .expect("write");
    cut.shutdown().await.expect("shutdown");
    // The proxy may still answer the cut request (an error), then it closes the connection.
    let mut rest = Vec::new();
    within(BOUND, cut.read_to_end(&mut rest))
        .await
        .expect("the proxy closes the cut connection")
        .expect("read");
    let answer = String::from_utf8_lossy(&rest);
    assert!(!answer.starts_with("HTTP/1.1 200"), "{answer:?}");

    let mut whole = connect(&proxy).await;
    let mut buf = Vec::new();
    let a = ask(
        &mut whole,
        &mut buf,
        b"POST /echo HTTP/1.1\r\nHost: app.test\r\nContent-Length: 2\r\n\r\nok",
        "POST",
    )
    .await;
    assert!(a.status_line.starts_with("HTTP/1.1 200"), "{a:?}");
    assert_eq!(
        app.recorder().posts_to("/echo"),
        [bytes::Bytes::from("ok")],
        "only the whole body reached the app"
    );
}
