//! Header hygiene through a real proxy: hop-by-hop stripping (including headers a client names
//! in `Connection` to delete ours), X-Forwarded-*, the client's Host, request ids, and 400 for a
//! missing or doubled Host.

mod common;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use serde_json::Value;
use switchyard_tests::{KeepAliveClient, TestApp, raw_request};

fn values(headers: &Value, name: &str) -> Vec<String> {
    headers[name]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn hop_by_hop_headers_are_stripped_before_ours_are_added() {
    let app = TestApp::start("green").await;
    let proxy = common::start(common::two_colours(&[app.addr()], &[app.addr()])).await;
    let mut client = KeepAliveClient::connect(common::http(&proxy)).await;
    let req = Request::get("/headers?x=1")
        .header("host", "Shop.Example.com:8080")
        .header(
            "connection",
            "keep-alive, X-Forwarded-For, X-Forwarded-Host, x-secret",
        )
        .header("keep-alive", "timeout=5")
        .header("x-secret", "do-not-forward")
        .header("x-forwarded-for", "203.0.113.9")
        .header("x-forwarded-host", "evil.example")
        .header("x-forwarded-proto", "gopher")
        .header("te", "trailers")
        .header("proxy-authorization", "Basic Zm9vOmJhcg==")
        .header("upgrade", "h2c")
        .header("accept", "text/html")
        .body(Full::new(Bytes::new()))
        .expect("request");
    let r = client.request(req).await.expect("answer");
    assert_eq!(r.status, 200);
    let seen = r.json();
    for gone in [
        "connection",
        "keep-alive",
        "x-secret",
        "te",
        "proxy-authorization",
        "upgrade",
    ] {
        assert!(
            seen.get(gone).is_none(),
            "{gone} must not reach the upstream: {seen}"
        );
    }
    // The client listed X-Forwarded-For in Connection: its copy is dropped as hop-by-hop, and
    // ours is added afterwards, so the upstream still learns the real client.
    assert_eq!(values(&seen, "x-forwarded-for"), vec!["127.0.0.1"]);
    assert_eq!(
        values(&seen, "x-forwarded-host"),
        vec!["Shop.Example.com:8080"]
    );
    assert_eq!(values(&seen, "x-forwarded-proto"), vec!["http"]);
    assert_eq!(
        values(&seen, "host"),
        vec!["Shop.Example.com:8080"],
        "the client's Host is kept"
    );
    assert_eq!(values(&seen, "accept"), vec!["text/html"]);
    assert_eq!(seen["_uri"], "/headers?x=1");
    // A generated request id reaches the upstream and comes back on the response.
    let id = values(&seen, "x-request-id");
    assert_eq!(id.len(), 1);
    assert_eq!(id[0].len(), 32);
    assert_eq!(r.header("x-request-id"), Some(id[0].as_str()));
    proxy.shutdown().await;
}

#[tokio::test]
async fn forwarded_for_is_appended_and_request_ids_are_kept() {
    let app = TestApp::start("green").await;
    let proxy = common::start(common::two_colours(&[app.addr()], &[app.addr()])).await;
    let mut client = KeepAliveClient::connect(common::http(&proxy)).await;
    let req = Request::get("/headers")
        .header("host", "a.test")
        .header("x-forwarded-for", "203.0.113.9, 198.51.100.7")
        .header("x-request-id", "abc-123")
        .body(Full::new(Bytes::new()))
        .expect("request");
    let r = client.request(req).await.expect("answer");
    let seen = r.json();
    assert_eq!(
        values(&seen, "x-forwarded-for"),
        vec!["203.0.113.9, 198.51.100.7, 127.0.0.1"]
    );
    assert_eq!(values(&seen, "x-request-id"), vec!["abc-123"]);
    assert_eq!(r.header("x-request-id"), Some("abc-123"));
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_service_that_generates_no_request_id_passes_only_the_clients() {
    let app = TestApp::start("green").await;
    let mut config = common::two_colours(&[app.addr()], &[app.addr()]);
    if let Some(app) = config.services.get_mut("app") {
        app.generate_request_id = false;
    }
    let proxy = common::start(config).await;
    let mut client = KeepAliveClient::connect(common::http(&proxy)).await;
    // Without one of its own the request has none, upstream or on the answer: the upstream
    // sees the three forwarding fields only.
    let r = client.get("/headers", "a.test").await.expect("answer");
    let seen = r.json();
    assert_eq!(values(&seen, "x-request-id"), Vec::<String>::new());
    assert_eq!(values(&seen, "x-forwarded-proto"), vec!["http"]);
    assert_eq!(r.header("x-request-id"), None);
    // The client's own still goes upstream and comes back.
    let req = Request::get("/headers")
        .header("host", "a.test")
        .header("x-request-id", "abc-123")
        .body(Full::new(Bytes::new()))
        .expect("request");
    let r = client.request(req).await.expect("answer");
    assert_eq!(values(&r.json(), "x-request-id"), vec!["abc-123"]);
    assert_eq!(r.header("x-request-id"), Some("abc-123"));
    proxy.shutdown().await;
}

#[tokio::test]
async fn missing_or_duplicate_host_is_rejected_and_never_forwarded() {
    let app = TestApp::start("green").await;
    let proxy = common::start(common::two_colours(&[app.addr()], &[app.addr()])).await;
    let addr = common::http(&proxy);
    let before = app.count_path("/headers");
    for (name, raw) in [
        ("missing Host", &b"GET /headers HTTP/1.1\r\n\r\n"[..]),
        (
            "duplicate Host",
            &b"GET /headers HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n"[..],
        ),
        (
            "absolute-form with another Host",
            &b"GET http://b.test/headers HTTP/1.1\r\nHost: a.test\r\n\r\n"[..],
        ),
    ] {
        let answer = raw_request(addr, raw).await;
        let text = String::from_utf8_lossy(&answer);
        assert!(text.starts_with("HTTP/1.1 400"), "{name}: {text}");
        assert!(
            text.to_ascii_lowercase().contains("connection: close"),
            "{name} closes the connection: {text}"
        );
    }
    assert_eq!(
        app.count_path("/headers"),
        before,
        "nothing reached the upstream"
    );
    // The proxy still serves.
    let answer = raw_request(
        addr,
        b"GET /headers HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"));
    proxy.shutdown().await;
}

#[tokio::test]
async fn unmatched_hosts_get_a_plain_404_and_upstream_failures_502() {
    let app = TestApp::start("green").await;
    let mut config = common::two_colours(&[app.addr()], &[app.addr()]);
    let svc = config.services.get_mut("app").expect("app");
    svc.hosts = vec![switchyard_config::HostPattern::Exact("only.test".into())];
    let proxy = common::start(config).await;
    let mut client = KeepAliveClient::connect(common::http(&proxy)).await;
    let r = client.get("/", "other.test").await.expect("answer");
    assert_eq!(r.status, 404);
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert!(r.text().len() < 200 && r.text().contains("no service"));
    let r = client.get("/", "only.test").await.expect("answer");
    assert_eq!(r.status, 200);
    app.kill().await;
    let r = client.get("/", "only.test").await.expect("answer");
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(r.header("x-request-id").is_some());
    assert!(
        !client.is_closed(),
        "an upstream failure does not close the client connection"
    );
    proxy.shutdown().await;
}

#[tokio::test]
async fn response_headers_are_set_on_every_answer_replacing_the_upstreams() {
    let app = TestApp::start("green").await;
    let mut config = common::two_colours(&[app.addr()], &[app.addr()]);
    config
        .services
        .get_mut("app")
        .expect("app")
        .response_headers = vec![
        (
            "Strict-Transport-Security".into(),
            "max-age=31536000".into(),
        ),
        ("X-Frame-Options".into(), "DENY".into()),
        ("X-Colour".into(), "overridden".into()),
    ];
    let proxy = common::start(config).await;
    let mut client = KeepAliveClient::connect(common::http(&proxy)).await;
    let r = client.get("/", "a.test").await.expect("answer");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("strict-transport-security"),
        Some("max-age=31536000")
    );
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
    assert_eq!(
        r.headers.get_all("x-colour").iter().count(),
        1,
        "replaced, not appended"
    );
    assert_eq!(r.header("x-colour"), Some("overridden"));
    // `always`: the proxy's own error answers carry them too.
    app.kill().await;
    let r = client.get("/", "a.test").await.expect("answer");
    assert_eq!(r.status, 502);
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
    proxy.shutdown().await;
}
