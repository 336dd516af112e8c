//! The upstream's response fields as the client receives them, over HTTP/1.1 (where a plain
//! head is copied as bytes) and HTTP/2 (where it goes through a header map): hop-by-hop fields
//! dropped, the fields a `Connection` names dropped, the upstream's `Date` kept, repeated
//! fields kept in order, and the proxy's request id replacing the upstream's.

mod common;

use switchyard_proxy::ProxyHandle;
use switchyard_tests::{Http2Client, Scripted, raw_request, scripted_upstream};

/// A `Date` no clock would give now: the proxy must pass it on rather than write its own.
const UPSTREAM_DATE: &str = "Tue, 01 Dec 2026 10:00:00 GMT";

/// The upstream's answer to `/`: plain (its `Connection` names no other field).
fn plain_head() -> String {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Request-Id: from-upstream\r\n\
         Date: {UPSTREAM_DATE}\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n\
         X-Mixed-Case: Kept\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Length: 5\r\n\r\nhello"
    )
}

/// The upstream's answer to `/named`: its `Connection` names `X-Hop`, which must not pass.
const NAMED_HEAD: &str = "HTTP/1.1 200 OK\r\nConnection: X-Hop\r\nX-Hop: 1\r\nX-App: v\r\n\
                          Content-Length: 5\r\n\r\nhello";

/// The upstream's answer to a request head: the plain head, or the one naming `X-Hop`.
fn script(head: &str) -> Scripted {
    let answer = if head.starts_with("GET /named ") {
        NAMED_HEAD.to_string()
    } else {
        plain_head()
    };
    Scripted {
        answer: answer.into_bytes(),
        close: false,
    }
}

async fn start() -> ProxyHandle {
    let upstream = scripted_upstream(script).await;
    let proxy = common::start(common::two_colours(&[upstream], &[upstream])).await;
    common::wait_healthy(&proxy, "green").await;
    proxy
}

/// The field lines of a raw HTTP/1 answer, as sent (names in their case).
fn field_lines(answer: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(answer);
    let head = text.split("\r\n\r\n").next().unwrap_or_default();
    head.split("\r\n")
        .skip(1)
        .filter_map(|l| l.split_once(": "))
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

fn named<'a>(fields: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    fields
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect()
}

#[tokio::test]
async fn http1_answers_carry_the_upstreams_fields_as_sent_less_hop_by_hop() {
    let proxy = start().await;
    let answer = raw_request(
        common::http(&proxy),
        b"GET / HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.ends_with("\r\n\r\nhello"), "{text}");
    let fields = field_lines(&answer);
    // Passed on as sent: name case, order of repeated fields, the upstream's Date.
    assert!(
        fields.contains(&("X-Mixed-Case".into(), "Kept".into())),
        "{text}"
    );
    assert_eq!(named(&fields, "set-cookie"), ["a=1", "b=2"], "{text}");
    assert_eq!(named(&fields, "date"), [UPSTREAM_DATE], "{text}");
    assert_eq!(named(&fields, "content-length"), ["5"], "{text}");
    assert_eq!(named(&fields, "content-type"), ["text/plain"], "{text}");
    // The upstream's hop-by-hop fields stop here; the client's own `close` is answered.
    assert!(named(&fields, "keep-alive").is_empty(), "{text}");
    assert_eq!(named(&fields, "connection"), ["close"], "{text}");
    // The proxy's request id replaces the upstream's.
    let ids = named(&fields, "x-request-id");
    assert_eq!(ids.len(), 1, "{text}");
    assert_eq!(ids[0].len(), 32, "a generated id: {text}");

    let answer = raw_request(
        common::http(&proxy),
        b"GET /named HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    let fields = field_lines(&answer);
    let text = String::from_utf8_lossy(&answer);
    assert!(named(&fields, "x-hop").is_empty(), "{text}");
    assert_eq!(named(&fields, "x-app"), ["v"], "{text}");
    assert_eq!(named(&fields, "connection"), ["close"], "{text}");
    proxy.shutdown().await;
}

#[tokio::test]
async fn http2_answers_carry_the_same_fields() {
    let proxy = start().await;
    let client = Http2Client::connect(common::http(&proxy)).await;
    let resp = client.get("/", "app.test").await.expect("answer");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.text(), "hello");
    let all = |name: &str| -> Vec<String> {
        resp.headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().expect("text").to_string())
            .collect()
    };
    assert_eq!(all("x-mixed-case"), ["Kept"]);
    assert_eq!(all("set-cookie"), ["a=1", "b=2"]);
    assert_eq!(all("date"), [UPSTREAM_DATE]);
    assert_eq!(all("content-type"), ["text/plain"]);
    assert!(all("keep-alive").is_empty());
    assert!(all("connection").is_empty());
    let ids = all("x-request-id");
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_ne!(ids[0], "from-upstream");
    let resp = client.get("/named", "app.test").await.expect("answer");
    assert!(resp.headers.get("x-hop").is_none());
    assert_eq!(resp.header("x-app"), Some("v"));
    proxy.shutdown().await;
}
