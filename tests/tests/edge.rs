//! The nginx-replacing edge features through a real proxy: response compression (gzip and
//! brotli negotiation, streaming, what is left alone), static files (headers, HEAD, conditional
//! requests, index files, and escape attempts that must never leave the directory), and
//! per-client rate limits with `Retry-After`.
//!
//! Most upstreams are the harness's `TestApp`; its `/headers` route answers JSON whose size the
//! test controls with a padding header. Two answers it cannot give — a body the upstream
//! already compressed, and a body that pauses half-way — come from a tiny upstream in
//! `edge/support.rs`.

mod common;
#[path = "edge/support.rs"]
mod support;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use switchyard_config::{CompressionConfig, Config, RateLimitConfig, ServiceConfig, StaticConfig};
use switchyard_proxy::ProxyHandle;
use switchyard_tests::{KeepAliveClient, Resp, TestApp, raw_request};

use support::{
    Custom, PRE_ENCODED_TEXT, decode_prefix, get_from, gunzip, open_stream, raw_status, unbrotli,
};

// ---------------------------------------------------------------------------------------------
// Set-up

/// A one-service config on `upstream` with `edit` applied to the service.
fn config(upstream: SocketAddr, edit: impl FnOnce(&mut ServiceConfig)) -> Config {
    let mut config = common::two_colours(&[upstream], &[upstream]);
    edit(config.services.get_mut("app").expect("service app"));
    config
}

/// A GET (or HEAD) with extra headers, on the client's one connection.
async fn send(
    client: &mut KeepAliveClient,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
) -> Resp {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "app.test");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Full::new(Bytes::new())).expect("request");
    client.request(req).await.expect("an answer")
}

// ---------------------------------------------------------------------------------------------
// Compression

fn compressing(svc: &mut ServiceConfig) {
    svc.compression = CompressionConfig {
        enabled: true,
        min_size: 2048,
        ..CompressionConfig::default()
    };
}

#[tokio::test]
async fn gzip_and_brotli_are_negotiated_and_decode_to_the_upstream_body() {
    let app = TestApp::start("green").await;
    let proxy = common::start(config(app.addr(), compressing)).await;
    let mut client = KeepAliveClient::connect(common::http(&proxy)).await;
    let pad = "lorem ipsum dolor sit amet".repeat(200);
    for (accept, expected) in [
        ("gzip", Some("gzip")),
        ("br", Some("br")),
        ("gzip, deflate, br", Some("br")),
        ("br;q=0.5, gzip", Some("gzip")),
        ("br;q=0, gzip;q=0", None),
        ("identity", None),
    ] {
        let r = send(
            &mut client,
            Method::GET,
            "/headers",
            &[("accept-encoding", accept), ("x-pad", &pad)],
        )
        .await;
        assert_eq!(r.status, 200, "{accept}");
        assert_eq!(
            r.header("content-encoding"),
            expected,
            "Accept-Encoding: {accept}"
        );
        assert_eq!(
            r.header("vary"),
            Some("Accept-Encoding"),
            "{accept}: caches must keep the forms apart"
        );
        let plain = match expected {
            Some("gzip") => {
                assert!(r.header("content-length").is_none(), "the length changed");
                gunzip(&r.body)
            }
            Some(_) => unbrotli(&r.body),
            None => {
                assert_eq!(
                    r.header("content-length"),
                    Some(r.body.len().to_string().as_str())
                );
                r.body.to_vec()
            }
        };
        if expected.is_some() {
            assert!(
                r.body.len() * 4 < plain.len(),
                "{accept}: {} → {} bytes",
                plain.len(),
                r.body.len()
            );
        }
        let seen: serde_json::Value = serde_json::from_slice(&plain).expect("the upstream's JSON");
        assert!(
            seen["x-pad"][0] == pad.as_str(),
            "{accept}: the decoded body is the upstream's"
        );
        assert!(
            seen.get("accept-encoding").is_some(),
            "the client's Accept-Encoding still reaches the upstream"
        );
    }
    proxy.shutdown().await;
}

#[tokio::test]
async fn small_bodies_and_unlisted_types_are_left_alone() {
    let app = TestApp::start("green").await;
    let proxy = common::start(config(app.addr(), compressing)).await;
    let mut client = KeepAliveClient::connect(common::http(&proxy)).await;
    // JSON below min_size.
    let r = send(
        &mut client,
        Method::GET,
        "/headers",
        &[("accept-encoding", "gzip, br")],
    )
    .await;
    assert!(r.body.len() < 2048);
    assert!(r.header("content-encoding").is_none());
    assert_eq!(
        r.header("content-length"),
        Some(r.body.len().to_string().as_str())
    );
    r.json();
    // No Content-Type at all (TestApp's `/`): not a listed type.
    let r = send(
        &mut client,
        Method::GET,
        "/",
        &[("accept-encoding", "gzip, br")],
    )
    .await;
    assert_eq!(r.text(), "green");
    assert!(r.header("content-encoding").is_none());
    assert!(r.header("vary").is_none(), "never compressible: no Vary");
    proxy.shutdown().await;
}

#[tokio::test]
async fn head_requests_are_not_compressed() {
    let app = TestApp::start("green").await;
    let proxy = common::start(config(app.addr(), compressing)).await;
    let mut client = KeepAliveClient::connect(common::http(&proxy)).await;
    let pad = "x".repeat(4000);
    let r = send(
        &mut client,
        Method::HEAD,
        "/headers",
        &[("accept-encoding", "gzip, br"), ("x-pad", &pad)],
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(r.header("content-encoding").is_none());
    assert!(r.body.is_empty());
    proxy.shutdown().await;
}

#[tokio::test]
async fn compression_off_leaves_everything_alone() {
    let app = TestApp::start("green").await;
    let proxy = common::start(config(app.addr(), |_| {})).await;
    let mut client = KeepAliveClient::connect(common::http(&proxy)).await;
    let pad = "y".repeat(4000);
    let r = send(
        &mut client,
        Method::GET,
        "/headers",
        &[("accept-encoding", "gzip, br"), ("x-pad", &pad)],
    )
    .await;
    assert!(r.header("content-encoding").is_none());
    assert!(r.header("vary").is_none());
    r.json();
    proxy.shutdown().await;
}

#[tokio::test]
async fn an_upstream_encoded_response_passes_untouched() {
    let up = Custom::start().await;
    let proxy = common::start(config(up.addr, compressing)).await;
    let mut client = KeepAliveClient::connect(common::http(&proxy)).await;
    let r = send(
        &mut client,
        Method::GET,
        "/pre-encoded",
        &[("accept-encoding", "br")],
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-encoding"),
        Some("gzip"),
        "not re-encoded as br"
    );
    assert!(r.header("vary").is_none());
    assert_eq!(gunzip(&r.body), PRE_ENCODED_TEXT.repeat(200).as_bytes());
    proxy.shutdown().await;
}

#[tokio::test]
async fn compressed_streams_reach_the_client_before_the_upstream_finishes() {
    let up = Custom::start().await;
    let proxy = common::start(config(up.addr, compressing)).await;
    for enc in ["gzip", "br"] {
        let feed = up.feed();
        feed.send(Bytes::from("data: first event\n\n"))
            .await
            .expect("feed");
        let resp = open_stream(common::http(&proxy), "/stream", enc).await;
        assert_eq!(resp.headers()["content-encoding"], enc);
        let mut body = resp.into_body();
        // The upstream has sent one event and is waiting: it must be decodable already.
        let mut received = Vec::new();
        let first = loop {
            let frame = switchyard_tests::within(std::time::Duration::from_secs(10), body.frame())
                .await
                .expect("the first event arrives while the upstream still holds the body open")
                .expect("a frame")
                .expect("data");
            received.extend_from_slice(&frame.into_data().expect("data"));
            let decoded = decode_prefix(enc, &received);
            if !decoded.is_empty() {
                break decoded;
            }
        };
        assert_eq!(first, b"data: first event\n\n", "{enc}");
        feed.send(Bytes::from("data: second event\n\n"))
            .await
            .expect("feed");
        drop(feed);
        let rest = body.collect().await.expect("rest").to_bytes();
        received.extend_from_slice(&rest);
        let all = if enc == "gzip" {
            gunzip(&received)
        } else {
            unbrotli(&received)
        };
        assert_eq!(all, b"data: first event\n\ndata: second event\n\n", "{enc}");
    }
    proxy.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Static files

/// `tmp/public` served at `/static`; `tmp/secret` and `tmp/Cargo.toml` lie next to it, and
/// `tmp/public/leak` is a symlink to the secret.
fn site() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().expect("tempdir");
    let public = tmp.path().join("public");
    std::fs::create_dir_all(public.join("docs")).expect("mkdir");
    let write = |p: &Path, s: &str| std::fs::write(p, s).expect("write");
    write(&public.join("hello.txt"), "hello from disk\n");
    write(&public.join("index.html"), "<h1>home</h1>");
    write(&public.join("docs/index.html"), "<h1>docs</h1>");
    write(&public.join("app.js"), "console.log(1)");
    write(&public.join("logo.svg"), "<svg/>");
    write(&tmp.path().join("secret"), "TOP-SECRET");
    write(&tmp.path().join("Cargo.toml"), "TOP-SECRET manifest");
    #[cfg(unix)]
    std::os::unix::fs::symlink(tmp.path().join("secret"), public.join("leak")).expect("symlink");
    tmp
}

fn serving(site: &tempfile::TempDir) -> impl FnOnce(&mut ServiceConfig) {
    let mut files = StaticConfig::new("/static", site.path().join("public"));
    files.index = Some("index.html".into());
    files.cache_control = Some("public, max-age=600".into());
    move |svc| svc.static_files = vec![files]
}

#[tokio::test]
async fn static_files_are_served_from_disk_without_reaching_the_upstream() {
    let site = site();
    let app = TestApp::start("green").await;
    let proxy = common::start(config(app.addr(), serving(&site))).await;
    let mut client = KeepAliveClient::connect(common::http(&proxy)).await;
    let r = client
        .get("/static/hello.txt", "app.test")
        .await
        .expect("answer");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "hello from disk\n");
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(r.header("content-length"), Some("16"));
    assert_eq!(r.header("cache-control"), Some("public, max-age=600"));
    assert!(
        r.header("etag").is_some_and(|e| e.starts_with('"')),
        "a strong ETag"
    );
    assert!(r.header("last-modified").is_some());
    for (path, ct) in [
        ("/static/app.js", "text/javascript; charset=utf-8"),
        ("/static/logo.svg", "image/svg+xml"),
    ] {
        let r = client.get(path, "app.test").await.expect("answer");
        assert_eq!(r.header("content-type"), Some(ct), "{path}");
    }
    assert_eq!(
        client
            .get("/static/missing.css", "app.test")
            .await
            .expect("answer")
            .status,
        404
    );
    // Paths outside the prefix still go to the upstream.
    assert_eq!(
        client
            .get("/staticx", "app.test")
            .await
            .expect("answer")
            .status,
        404
    );
    assert_eq!(
        client.get("/", "app.test").await.expect("answer").text(),
        "green"
    );
    assert_eq!(
        app.requests(),
        2,
        "only /staticx and / reached the upstream"
    );
    proxy.shutdown().await;
}

#[tokio::test]
async fn static_head_and_conditional_requests() {
    let site = site();
    let app = TestApp::start("green").await;
    let proxy = common::start(config(app.addr(), serving(&site))).await;
    let mut client = KeepAliveClient::connect(common::http(&proxy)).await;
    let r = send(&mut client, Method::HEAD, "/static/hello.txt", &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-length"),
        Some("16"),
        "HEAD announces the GET's length"
    );
    assert!(r.body.is_empty());
    let etag = r.header("etag").expect("etag").to_owned();
    let modified = r.header("last-modified").expect("last-modified").to_owned();
    for cond in [
        ("if-none-match", etag.as_str()),
        ("if-modified-since", modified.as_str()),
    ] {
        let r = send(&mut client, Method::GET, "/static/hello.txt", &[cond]).await;
        assert_eq!(r.status, 304, "{cond:?}");
        assert!(r.body.is_empty());
        assert_eq!(r.header("etag"), Some(etag.as_str()));
    }
    let r = send(
        &mut client,
        Method::GET,
        "/static/hello.txt",
        &[("if-none-match", "\"stale\"")],
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "hello from disk\n");
    let r = send(&mut client, Method::POST, "/static/hello.txt", &[]).await;
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
    assert_eq!(app.requests(), 0);
    proxy.shutdown().await;
}

#[tokio::test]
async fn static_directories_serve_their_index_file() {
    let site = site();
    let app = TestApp::start("green").await;
    let proxy = common::start(config(app.addr(), serving(&site))).await;
    let mut client = KeepAliveClient::connect(common::http(&proxy)).await;
    let r = client.get("/static/", "app.test").await.expect("answer");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "<h1>home</h1>");
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    let r = client
        .get("/static/docs/", "app.test")
        .await
        .expect("answer");
    assert_eq!(r.text(), "<h1>docs</h1>");
    let r = client
        .get("/static/docs", "app.test")
        .await
        .expect("answer");
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some("/static/docs/"));
    assert_eq!(app.requests(), 0);
    proxy.shutdown().await;
}

#[tokio::test]
async fn static_escape_attempts_never_leave_the_directory() {
    let site = site();
    let app = TestApp::start("green").await;
    let proxy = common::start(config(app.addr(), serving(&site))).await;
    for target in [
        "/static/../Cargo.toml",
        "/static/../secret",
        "/static/%2e%2e/secret",
        "/static/%2E%2E/Cargo.toml",
        "/static/..%2fsecret",
        "/static/..%2Fsecret",
        "/static/%2e%2e%2fsecret",
        "/static/docs/../../secret",
        "/static/..%5csecret",
        "/static/..\\secret",
        "/static/secret%00",
        "/static/leak",
        "/static//../secret",
    ] {
        let req = format!("GET {target} HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n");
        let answer = raw_request(common::http(&proxy), req.as_bytes()).await;
        let status = raw_status(&answer);
        assert!(status == 404 || status == 400, "{target}: {status}");
        assert!(
            !String::from_utf8_lossy(&answer).contains("TOP-SECRET"),
            "{target} leaked the file"
        );
    }
    assert_eq!(app.requests(), 0, "no escape attempt reached the upstream");
    proxy.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Rate limits

/// `/status/…` limited to `burst + 1` requests at once, refilling one every 5 s; `/` unlimited.
fn limited(burst: u32) -> impl FnOnce(&mut ServiceConfig) {
    move |svc| {
        svc.rate_limits = vec![RateLimitConfig {
            path_prefix: Some("/status".into()),
            rate: 0.2,
            burst,
        }];
    }
}

#[tokio::test]
async fn over_the_limit_a_client_gets_429_with_retry_after() {
    let app = TestApp::start("green").await;
    let proxy = common::start(config(app.addr(), limited(2))).await;
    let addr = common::http(&proxy);
    let me = Ipv4Addr::LOCALHOST;
    for i in 0..3 {
        assert_eq!(
            get_from(me, addr, "/status/200").await.0,
            200,
            "request {i} is within the burst"
        );
    }
    let (status, retry_after) = get_from(me, addr, "/status/200").await;
    assert_eq!(status, 429);
    let secs = retry_after.expect("Retry-After");
    assert!(
        (1..=5).contains(&secs),
        "one token every 5 s: Retry-After {secs}"
    );
    assert_eq!(
        app.count_path("/status/200"),
        3,
        "the refused request never reached the upstream"
    );
    // Paths outside the limit's prefix are not limited for the same client.
    for _ in 0..10 {
        assert_eq!(get_from(me, addr, "/").await.0, 200);
    }
    // Another client has its own bucket.
    let other = Ipv4Addr::new(127, 0, 0, 2);
    assert_eq!(get_from(other, addr, "/status/200").await.0, 200);
    assert_eq!(get_from(me, addr, "/status/200").await.0, 429);
    assert_eq!(app.count_path("/status/200"), 4);
    proxy.shutdown().await;
}

#[tokio::test]
async fn limits_keep_their_state_across_an_unchanged_reload_and_reset_when_changed() {
    let app = TestApp::start("green").await;
    let config = config(app.addr(), limited(0));
    let proxy: ProxyHandle = common::start(config.clone()).await;
    let addr = common::http(&proxy);
    let me = Ipv4Addr::LOCALHOST;
    assert_eq!(get_from(me, addr, "/status/200").await.0, 200);
    assert_eq!(get_from(me, addr, "/status/200").await.0, 429);
    proxy.reload(config.clone()).await.expect("reload");
    assert_eq!(
        get_from(me, addr, "/status/200").await.0,
        429,
        "a reload that changes nothing keeps the buckets"
    );
    let mut looser = config;
    looser.services.get_mut("app").expect("app").rate_limits[0].burst = 5;
    proxy.reload(looser).await.expect("reload");
    assert_eq!(
        get_from(me, addr, "/status/200").await.0,
        200,
        "a changed limit starts afresh"
    );
    proxy.shutdown().await;
}
