use std::fs;

use http_body_util::BodyExt;

use super::*;

/// `tmp/public` is served; `tmp/secret.txt` and `tmp/private/` lie next to it.
struct Site {
    tmp: tempfile::TempDir,
    cfg: StaticConfig,
}

fn site() -> Site {
    let tmp = tempfile::tempdir().expect("tempdir");
    let public = tmp.path().join("public");
    fs::create_dir_all(public.join("css")).expect("mkdir");
    fs::create_dir_all(public.join("docs")).expect("mkdir");
    fs::create_dir_all(public.join("empty")).expect("mkdir");
    fs::create_dir_all(tmp.path().join("private")).expect("mkdir");
    fs::write(public.join("hello.txt"), "hello, world\n").expect("write");
    fs::write(public.join("css/site.css"), "body{}").expect("write");
    fs::write(public.join("docs/index.html"), "<h1>docs</h1>").expect("write");
    fs::write(public.join("index.html"), "<h1>home</h1>").expect("write");
    fs::write(public.join("with space.txt"), "spaced").expect("write");
    fs::write(tmp.path().join("secret.txt"), "top secret").expect("write");
    fs::write(tmp.path().join("private/key.txt"), "private key").expect("write");
    let mut cfg = StaticConfig::new("/static", &public);
    cfg.index = Some("index.html".into());
    cfg.cache_control = Some("public, max-age=3600".into());
    Site { tmp, cfg }
}

async fn req(
    cfg: &StaticConfig,
    method: Method,
    path: &str,
    h: &[(&str, &str)],
) -> Response<ProxyBody> {
    let mut headers = HeaderMap::new();
    for (k, v) in h {
        headers.append(
            header::HeaderName::from_bytes(k.as_bytes()).expect("name"),
            HeaderValue::from_str(v).expect("value"),
        );
    }
    let uri: Uri = path.parse().expect("uri");
    serve(cfg, &method, &uri, &headers).await
}

async fn get(cfg: &StaticConfig, path: &str) -> Response<ProxyBody> {
    req(cfg, Method::GET, path, &[]).await
}

async fn body(resp: Response<ProxyBody>) -> Bytes {
    resp.into_body().collect().await.expect("body").to_bytes()
}

#[test]
fn prefixes_match_whole_segments_and_the_longest_wins() {
    let files = [
        StaticConfig::new("/static", "/a"),
        StaticConfig::new("/static/img", "/b"),
        StaticConfig::new("/", "/c"),
    ];
    let dir = |p: &str| matching(&files, p).map(|f| f.dir.to_string_lossy().into_owned());
    assert_eq!(dir("/static").as_deref(), Some("/a"));
    assert_eq!(dir("/static/x.css").as_deref(), Some("/a"));
    assert_eq!(dir("/static/img/logo.png").as_deref(), Some("/b"));
    assert_eq!(dir("/static/imgs").as_deref(), Some("/a"));
    assert_eq!(dir("/staticx").as_deref(), Some("/c"));
    assert_eq!(dir("/").as_deref(), Some("/c"));
    assert!(matching(&files[..2], "/staticx").is_none());
    assert!(matching(&files[..2], "/").is_none());
}

#[test]
fn unsafe_segments_are_refused_before_the_disk_is_touched() {
    assert_eq!(
        safe_segments("/a/b.txt"),
        Some(vec!["a".into(), "b.txt".into()])
    );
    assert_eq!(safe_segments("//a//"), Some(vec!["a".into()]));
    assert_eq!(
        safe_segments("/with%20space"),
        Some(vec!["with space".into()])
    );
    assert_eq!(
        safe_segments("/.well-known/x"),
        Some(vec![".well-known".into(), "x".into()])
    );
    assert_eq!(safe_segments(""), Some(vec![]));
    for bad in [
        "/..",
        "/a/../b",
        "/%2e%2e/x",
        "/%2E%2e",
        "/.%2e",
        "/..%2fsecret",
        "/a%2Fb",
        "/a%5cb",
        "/a%00b",
        "/.",
        "/%2e",
        "/%zz",
        "/%4",
        "/%ff%fe",
    ] {
        assert_eq!(safe_segments(bad), None, "{bad}");
    }
}

#[tokio::test]
async fn get_serves_the_file_with_its_headers() {
    let s = site();
    let resp = get(&s.cfg, "/static/hello.txt").await;
    assert_eq!(resp.status(), 200);
    let h = resp.headers().clone();
    assert_eq!(h["content-type"], "text/plain; charset=utf-8");
    assert_eq!(h["content-length"], "13");
    assert_eq!(h["cache-control"], "public, max-age=3600");
    let etag = h["etag"].to_str().expect("etag");
    assert!(etag.starts_with("\"d-") && etag.ends_with('"'), "{etag}");
    let lm = h["last-modified"].to_str().expect("date");
    httpdate::parse_http_date(lm).expect("an HTTP date");
    assert_eq!(body(resp).await, "hello, world\n");
    let resp = get(&s.cfg, "/static/css/site.css?v=3").await;
    assert_eq!(resp.headers()["content-type"], "text/css; charset=utf-8");
    assert_eq!(body(resp).await, "body{}");
    let resp = get(&s.cfg, "/static/with%20space.txt").await;
    assert_eq!(body(resp).await, "spaced");
}

#[tokio::test]
async fn head_sends_the_headers_only() {
    let s = site();
    let resp = req(&s.cfg, Method::HEAD, "/static/hello.txt", &[]).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-length"], "13");
    assert!(resp.headers().contains_key("etag"));
    assert!(body(resp).await.is_empty());
}

#[tokio::test]
async fn other_methods_get_405_with_allow() {
    let s = site();
    for m in [Method::POST, Method::PUT, Method::DELETE, Method::OPTIONS] {
        let resp = req(&s.cfg, m.clone(), "/static/hello.txt", &[]).await;
        assert_eq!(resp.status(), 405, "{m}");
        assert_eq!(resp.headers()["allow"], "GET, HEAD");
    }
}

#[tokio::test]
async fn conditional_requests_get_304_without_a_body() {
    let s = site();
    let first = get(&s.cfg, "/static/hello.txt").await;
    let etag = first.headers()["etag"].to_str().expect("etag").to_owned();
    let lm = first.headers()["last-modified"]
        .to_str()
        .expect("lm")
        .to_owned();
    let weak = format!("W/{etag}");
    let listed = format!("\"other\", {etag}");
    for cond in [
        [("if-none-match", etag.as_str())],
        [("if-none-match", weak.as_str())],
        [("if-none-match", listed.as_str())],
        [("if-none-match", "*")],
        [("if-modified-since", lm.as_str())],
    ] {
        let resp = req(&s.cfg, Method::GET, "/static/hello.txt", &cond).await;
        assert_eq!(resp.status(), 304, "{cond:?}");
        assert_eq!(resp.headers()["etag"], etag.as_str());
        assert_eq!(resp.headers()["cache-control"], "public, max-age=3600");
        assert!(resp.headers().get("content-length").is_none());
        assert!(body(resp).await.is_empty());
    }
    let old = "Mon, 01 Jan 2001 00:00:00 GMT";
    let stale = [
        vec![("if-none-match", "\"other\"")],
        vec![("if-modified-since", old)],
        vec![("if-modified-since", "not a date")],
        // If-None-Match decides when both are present.
        vec![
            ("if-none-match", "\"other\""),
            ("if-modified-since", lm.as_str()),
        ],
    ];
    for cond in stale {
        let resp = req(&s.cfg, Method::GET, "/static/hello.txt", &cond).await;
        assert_eq!(resp.status(), 200, "{cond:?}");
    }
}

#[tokio::test]
async fn directories_serve_their_index_at_the_slash_url() {
    let s = site();
    let resp = get(&s.cfg, "/static/docs/").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/html; charset=utf-8");
    assert_eq!(body(resp).await, "<h1>docs</h1>");
    let resp = get(&s.cfg, "/static/").await;
    assert_eq!(body(resp).await, "<h1>home</h1>");
    let resp = get(&s.cfg, "/static/docs?x=1").await;
    assert_eq!(resp.status(), 301);
    assert_eq!(resp.headers()["location"], "/static/docs/?x=1");
    let resp = get(&s.cfg, "/static").await;
    assert_eq!(resp.status(), 301);
    assert_eq!(resp.headers()["location"], "/static/");
    // A directory without its index file, and no index configured at all.
    assert_eq!(get(&s.cfg, "/static/empty/").await.status(), 404);
    let mut no_index = s.cfg.clone();
    no_index.index = None;
    assert_eq!(get(&no_index, "/static/docs/").await.status(), 404);
    assert_eq!(get(&no_index, "/static/docs").await.status(), 404);
}

#[tokio::test]
async fn a_root_prefix_serves_the_whole_site() {
    let s = site();
    let mut root = s.cfg.clone();
    root.path_prefix = "/".into();
    assert_eq!(body(get(&root, "/").await).await, "<h1>home</h1>");
    assert_eq!(body(get(&root, "/hello.txt").await).await, "hello, world\n");
    assert_eq!(get(&root, "/../secret.txt").await.status(), 404);
}

#[tokio::test]
async fn escapes_never_leave_the_directory() {
    let s = site();
    for path in [
        "/static/../secret.txt",
        "/static/%2e%2e/secret.txt",
        "/static/%2E%2E/secret.txt",
        "/static/..%2fsecret.txt",
        "/static/..%2Fsecret.txt",
        "/static/css/../../secret.txt",
        "/static/%2e%2e%2fsecret.txt",
        "/static/..%5csecret.txt",
        "/static/hello.txt%00.png",
        "/static/%2fetc%2fpasswd",
        "/static//etc/passwd",
        "/static/missing.txt",
        "/static/hello.txt/",
        "/static/%zz",
    ] {
        let resp = get(&s.cfg, path).await;
        assert_eq!(resp.status(), 404, "{path}");
        let text = body(resp).await;
        assert!(!String::from_utf8_lossy(&text).contains("secret"), "{path}");
    }
}

#[cfg(unix)]
#[tokio::test]
async fn symlinks_pointing_outside_are_refused() {
    let s = site();
    let public = s.tmp.path().join("public");
    std::os::unix::fs::symlink(s.tmp.path().join("secret.txt"), public.join("leak.txt"))
        .expect("symlink");
    std::os::unix::fs::symlink(s.tmp.path().join("private"), public.join("private"))
        .expect("symlink");
    std::os::unix::fs::symlink(public.join("hello.txt"), public.join("alias.txt"))
        .expect("symlink");
    assert_eq!(get(&s.cfg, "/static/leak.txt").await.status(), 404);
    assert_eq!(get(&s.cfg, "/static/private/key.txt").await.status(), 404);
    // A link that stays inside is fine.
    let resp = get(&s.cfg, "/static/alias.txt").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(body(resp).await, "hello, world\n");
}

#[cfg(unix)]
#[tokio::test]
async fn special_files_are_not_opened() {
    let s = site();
    let fifo = s.tmp.path().join("public/pipe.txt");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo runs");
    assert!(made.success());
    assert_eq!(get(&s.cfg, "/static/pipe.txt").await.status(), 404);
}

#[tokio::test]
async fn a_missing_directory_answers_404() {
    let s = site();
    let mut gone = s.cfg.clone();
    gone.dir = s.tmp.path().join("nope");
    assert_eq!(get(&gone, "/static/hello.txt").await.status(), 404);
}

#[tokio::test]
async fn large_files_stream_in_chunks() {
    let s = site();
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    fs::write(s.tmp.path().join("public/big.bin"), &data).expect("write");
    let resp = get(&s.cfg, "/static/big.bin").await;
    assert_eq!(resp.headers()["content-type"], "application/octet-stream");
    assert_eq!(resp.headers()["content-length"], "200000");
    let mut body = resp.into_body();
    assert_eq!(body.size_hint().exact(), Some(200_000));
    let mut frames = Vec::new();
    while let Some(frame) = body.frame().await {
        frames.push(frame.expect("frame").into_data().expect("data"));
    }
    assert_eq!(frames.len(), 4, "64 KiB chunks");
    assert!(frames.iter().all(|f| f.len() <= CHUNK));
    assert_eq!(frames.concat(), data);
    assert!(body.is_end_stream());
}

#[tokio::test]
async fn a_file_that_shrinks_fails_the_body() {
    let s = site();
    let path = s.tmp.path().join("public/shrinks.txt");
    fs::write(&path, vec![b'x'; 100_000]).expect("write");
    let resp = get(&s.cfg, "/static/shrinks.txt").await;
    fs::write(&path, b"short").expect("truncate");
    let result = resp.into_body().collect().await;
    assert!(result.is_err());
}

#[test]
fn content_types_by_extension() {
    let ct = |name: &str| content_type(Path::new(name));
    assert_eq!(ct("a.html"), "text/html; charset=utf-8");
    assert_eq!(ct("a.HTM"), "text/html; charset=utf-8");
    assert_eq!(ct("a.js"), "text/javascript; charset=utf-8");
    assert_eq!(ct("a.json"), "application/json");
    assert_eq!(ct("a.svg"), "image/svg+xml");
    assert_eq!(ct("a.png"), "image/png");
    assert_eq!(ct("a.jpeg"), "image/jpeg");
    assert_eq!(ct("a.gif"), "image/gif");
    assert_eq!(ct("a.webp"), "image/webp");
    assert_eq!(ct("favicon.ico"), "image/x-icon");
    assert_eq!(ct("f.woff2"), "font/woff2");
    assert_eq!(ct("m.wasm"), "application/wasm");
    assert_eq!(ct("d.pdf"), "application/pdf");
    assert_eq!(ct("README"), "application/octet-stream");
    assert_eq!(ct("x.unknown"), "application/octet-stream");
}

#[test]
fn etags_change_with_size_and_time() {
    let t = UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
    assert_ne!(etag(10, Some(t)), etag(11, Some(t)));
    assert_ne!(
        etag(10, Some(t)),
        etag(10, Some(t + std::time::Duration::from_nanos(1)))
    );
    assert_eq!(etag(10, None), "\"a-0\"");
}

#[cfg(unix)]
#[tokio::test]
async fn a_sibling_that_leads_outside_is_never_served() {
    let s = site();
    let public = s.tmp.path().join("public");
    std::os::unix::fs::symlink(s.tmp.path().join("secret.txt"), public.join("hello.txt.gz"))
        .expect("symlink");
    let resp = req(
        &s.cfg,
        Method::GET,
        "/static/hello.txt",
        &[("accept-encoding", "gzip")],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers().get(header::CONTENT_ENCODING).is_none());
    assert!(resp.headers().get(header::VARY).is_none());
    assert_eq!(body(resp).await, "hello, world\n");
}

#[tokio::test]
async fn head_with_a_range_announces_the_whole_file() {
    let s = site();
    let resp = req(
        &s.cfg,
        Method::HEAD,
        "/static/hello.txt",
        &[("range", "bytes=0-1")],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()[header::CONTENT_LENGTH], "13");
    assert_eq!(resp.headers()[header::ACCEPT_RANGES], "bytes");
}
