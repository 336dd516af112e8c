//! Static files through a real proxy, for what players, download managers and CDNs ask of
//! them: byte ranges (206, 416, `If-Range`), precompressed `.br`/`.gz` siblings chosen by
//! `Accept-Encoding`, and media types of common files.

mod common;

use std::io::{Read, Write};
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::Full;
use switchyard_config::{CompressionConfig, Config, StaticConfig};
use switchyard_proxy::ProxyHandle;
use switchyard_tests::{KeepAliveClient, Resp, TestApp};

/// Size of the "video": a few MB, so a range is a small part of it.
const VIDEO_LEN: usize = 3 * 1024 * 1024 + 17;

/// Byte `i` of the video: a pattern that differs at every offset within a block.
fn video_byte(i: usize) -> u8 {
    (i % 251) as u8
}

/// The text file, and its precompressed siblings' source.
const SCRIPT: &str = "console.log('served from the .js file itself');\n";

/// `tmp/public` with a multi-MB `.mp4`, a script with `.br` and `.gz` siblings, a stylesheet
/// with only a `.gz` sibling, and one small file of each common type.
fn site() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().expect("tempdir");
    let public = tmp.path().join("public");
    std::fs::create_dir_all(&public).expect("mkdir");
    let video: Vec<u8> = (0..VIDEO_LEN).map(video_byte).collect();
    std::fs::write(public.join("clip.mp4"), video).expect("write");
    std::fs::write(public.join("app.js"), SCRIPT).expect("write");
    let script = SCRIPT.repeat(3);
    let mut br = Vec::new();
    {
        let mut w = brotli::CompressorWriter::new(&mut br, 4096, 5, 22);
        w.write_all(script.as_bytes()).expect("brotli");
    }
    std::fs::write(public.join("app.js.br"), br).expect("write");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(script.as_bytes()).expect("gzip");
    std::fs::write(public.join("app.js.gz"), gz.finish().expect("gzip")).expect("write");
    std::fs::write(public.join("site.css"), "body{}").expect("write");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(b"body{color:red}").expect("gzip");
    std::fs::write(public.join("site.css.gz"), gz.finish().expect("gzip")).expect("write");
    for name in [
        "a.html",
        "a.json",
        "a.svg",
        "a.png",
        "a.jpg",
        "a.webp",
        "a.woff2",
        "a.wasm",
        "a.pdf",
        "a.webm",
        "a.mp3",
        "a.txt",
        "a.nosuchtype",
    ] {
        std::fs::write(public.join(name), "x").expect("write");
    }
    tmp
}

/// A proxy serving `site/public` at `/static`, with on-the-fly compression on, so the test
/// also sees that it leaves ranges and precompressed answers alone.
async fn proxy(site: &tempfile::TempDir) -> (ProxyHandle, TestApp) {
    let app = TestApp::start("green").await;
    let mut config: Config = common::two_colours(&[app.addr()], &[app.addr()]);
    let svc = config.services.get_mut("app").expect("service app");
    svc.static_files = vec![StaticConfig::new("/static", site.path().join("public"))];
    svc.compression = CompressionConfig {
        enabled: true,
        min_size: 1,
        types: vec!["text/*".into(), "video/*".into(), "application/*".into()],
        ..CompressionConfig::default()
    };
    (common::start(config).await, app)
}

async fn send(client: &mut KeepAliveClient, path: &str, headers: &[(&str, &str)]) -> Resp {
    let mut req = Request::builder()
        .method(Method::GET)
        .uri(path)
        .header("host", "app.test");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Full::new(Bytes::new())).expect("request");
    client.request(req).await.expect("an answer")
}

async fn client(proxy: &ProxyHandle) -> KeepAliveClient {
    let addr: SocketAddr = common::http(proxy);
    KeepAliveClient::connect(addr).await
}

#[tokio::test]
async fn ranges_of_a_large_file_are_served_as_206() {
    let site = site();
    let (proxy, app) = proxy(&site).await;
    let mut c = client(&proxy).await;
    let expect = |from: usize, to: usize| (from..=to).map(video_byte).collect::<Vec<u8>>();

    let r = send(&mut c, "/static/clip.mp4", &[("range", "bytes=0-99")]).await;
    assert_eq!(r.status, 206);
    assert_eq!(
        r.header("content-range"),
        Some(&*format!("bytes 0-99/{VIDEO_LEN}"))
    );
    assert_eq!(r.header("content-length"), Some("100"));
    assert_eq!(r.header("content-type"), Some("video/mp4"));
    assert_eq!(
        r.header("content-encoding"),
        None,
        "a range is never recompressed"
    );
    assert_eq!(r.body.as_ref(), expect(0, 99).as_slice());

    // A range that starts past the first read chunk and crosses several.
    let (from, to) = (1_000_003, 1_300_000);
    let r = send(
        &mut c,
        "/static/clip.mp4",
        &[("range", &format!("bytes={from}-{to}"))],
    )
    .await;
    assert_eq!(r.status, 206);
    assert_eq!(r.body.as_ref(), expect(from, to).as_slice());

    // The tail, two ways, and an end past the file.
    for spec in [
        "bytes=-500",
        &format!("bytes={}-", VIDEO_LEN - 500),
        &format!("bytes={}-99999999", VIDEO_LEN - 500),
    ] {
        let r = send(&mut c, "/static/clip.mp4", &[("range", spec)]).await;
        assert_eq!(r.status, 206, "{spec}");
        assert_eq!(
            r.header("content-range"),
            Some(&*format!(
                "bytes {}-{}/{VIDEO_LEN}",
                VIDEO_LEN - 500,
                VIDEO_LEN - 1
            )),
            "{spec}"
        );
        assert_eq!(
            r.body.as_ref(),
            expect(VIDEO_LEN - 500, VIDEO_LEN - 1).as_slice()
        );
    }

    // No Range: the whole file, announcing that ranges are served.
    let r = send(&mut c, "/static/clip.mp4", &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("accept-ranges"), Some("bytes"));
    assert_eq!(r.body.len(), VIDEO_LEN);
    // A malformed Range is ignored.
    let r = send(&mut c, "/static/clip.mp4", &[("range", "bytes=9-3")]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), VIDEO_LEN);
    assert_eq!(app.requests(), 0);
    proxy.shutdown().await;
}

#[tokio::test]
async fn unsatisfiable_and_multiple_ranges_get_416() {
    let site = site();
    let (proxy, _app) = proxy(&site).await;
    let mut c = client(&proxy).await;
    for spec in [
        format!("bytes={VIDEO_LEN}-"),
        format!("bytes={}-{}", VIDEO_LEN + 10, VIDEO_LEN + 20),
        "bytes=0-9,20-29".to_string(),
    ] {
        let r = send(&mut c, "/static/clip.mp4", &[("range", &spec)]).await;
        assert_eq!(r.status, 416, "{spec}");
        assert_eq!(
            r.header("content-range"),
            Some(&*format!("bytes */{VIDEO_LEN}")),
            "{spec}"
        );
        assert!(r.body.len() < 100, "{spec}: no file bytes in a 416");
    }
    proxy.shutdown().await;
}

#[tokio::test]
async fn if_range_serves_the_range_only_for_the_current_file() {
    let site = site();
    let (proxy, _app) = proxy(&site).await;
    let mut c = client(&proxy).await;
    let head = send(&mut c, "/static/clip.mp4", &[("range", "bytes=0-0")]).await;
    let etag = head.header("etag").expect("etag").to_owned();
    let modified = head
        .header("last-modified")
        .expect("last-modified")
        .to_owned();

    for current in [etag.as_str(), modified.as_str()] {
        let r = send(
            &mut c,
            "/static/clip.mp4",
            &[("range", "bytes=10-19"), ("if-range", current)],
        )
        .await;
        assert_eq!(r.status, 206, "If-Range {current}");
        assert_eq!(r.body.len(), 10);
    }
    for stale in [
        "\"0-0\"",
        &format!("W/{etag}"),
        "Mon, 01 Jan 2001 00:00:00 GMT",
    ] {
        let r = send(
            &mut c,
            "/static/clip.mp4",
            &[("range", "bytes=10-19"), ("if-range", stale)],
        )
        .await;
        assert_eq!(r.status, 200, "If-Range {stale}: the whole new file");
        assert_eq!(r.body.len(), VIDEO_LEN);
    }
    proxy.shutdown().await;
}

fn gunzip(data: &[u8]) -> String {
    let mut out = String::new();
    flate2::read::GzDecoder::new(data)
        .read_to_string(&mut out)
        .expect("valid gzip");
    out
}

fn unbrotli(data: &[u8]) -> String {
    let mut out = String::new();
    brotli::Decompressor::new(data, 4096)
        .read_to_string(&mut out)
        .expect("valid brotli");
    out
}

#[tokio::test]
async fn precompressed_siblings_are_chosen_by_accept_encoding() {
    let site = site();
    let (proxy, _app) = proxy(&site).await;
    let mut c = client(&proxy).await;
    // The siblings hold the script three times, so a served sibling is told apart from the
    // proxy compressing the .js itself.
    let three = SCRIPT.repeat(3);

    let r = send(&mut c, "/static/app.js", &[("accept-encoding", "gzip, br")]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-encoding"), Some("br"));
    assert_eq!(
        r.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert_eq!(r.header("vary"), Some("Accept-Encoding"));
    assert_eq!(unbrotli(&r.body), three);

    let r = send(
        &mut c,
        "/static/app.js",
        &[("accept-encoding", "gzip;q=1, br;q=0.5")],
    )
    .await;
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(gunzip(&r.body), three);

    let r = send(
        &mut c,
        "/static/site.css",
        &[("accept-encoding", "br, gzip")],
    )
    .await;
    assert_eq!(
        r.header("content-encoding"),
        Some("gzip"),
        "no .br: the .gz"
    );
    assert_eq!(r.header("content-type"), Some("text/css; charset=utf-8"));
    assert_eq!(gunzip(&r.body), "body{color:red}");

    let r = send(&mut c, "/static/app.js", &[("accept-encoding", "identity")]).await;
    assert_eq!(r.header("content-encoding"), None);
    assert_eq!(r.header("vary"), Some("Accept-Encoding"));
    assert_eq!(r.text(), SCRIPT);

    // The encoded form has its own validator, and a range of it is a range of its bytes.
    let br = send(&mut c, "/static/app.js", &[("accept-encoding", "br")]).await;
    let plain = send(&mut c, "/static/app.js", &[]).await;
    assert_ne!(br.header("etag"), plain.header("etag"));
    let r = send(
        &mut c,
        "/static/app.js",
        &[("accept-encoding", "br"), ("range", "bytes=0-3")],
    )
    .await;
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-encoding"), Some("br"));
    assert_eq!(r.body.as_ref(), &br.body[..4]);
    proxy.shutdown().await;
}

#[tokio::test]
async fn common_files_get_their_media_types() {
    let site = site();
    let (proxy, _app) = proxy(&site).await;
    let mut c = client(&proxy).await;
    for (name, ct) in [
        ("a.html", "text/html; charset=utf-8"),
        ("a.json", "application/json"),
        ("a.svg", "image/svg+xml"),
        ("a.png", "image/png"),
        ("a.jpg", "image/jpeg"),
        ("a.webp", "image/webp"),
        ("a.woff2", "font/woff2"),
        ("a.wasm", "application/wasm"),
        ("a.pdf", "application/pdf"),
        ("a.webm", "video/webm"),
        ("a.mp3", "audio/mpeg"),
        ("a.txt", "text/plain; charset=utf-8"),
        ("a.nosuchtype", "application/octet-stream"),
    ] {
        let r = send(&mut c, &format!("/static/{name}"), &[]).await;
        assert_eq!(r.status, 200, "{name}");
        assert_eq!(r.header("content-type"), Some(ct), "{name}");
    }
    proxy.shutdown().await;
}
