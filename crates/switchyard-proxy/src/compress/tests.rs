use std::io::{Read, Write};

use http_body_util::BodyExt;
use tokio::sync::mpsc;

use super::*;

fn on() -> CompressionConfig {
    CompressionConfig {
        enabled: true,
        ..CompressionConfig::default()
    }
}

fn neg(cfg: &CompressionConfig, header: &str) -> Option<Encoding> {
    negotiate(cfg, Some(&HeaderValue::from_str(header).expect("header")))
}

#[test]
fn negotiation_honours_q_values_and_prefers_brotli() {
    let cfg = on();
    assert_eq!(negotiate(&cfg, None), None, "no header, no compression");
    assert_eq!(neg(&cfg, "gzip"), Some(Encoding::Gzip));
    assert_eq!(neg(&cfg, "x-gzip"), Some(Encoding::Gzip));
    assert_eq!(neg(&cfg, "br"), Some(Encoding::Brotli));
    assert_eq!(neg(&cfg, "gzip, deflate, br"), Some(Encoding::Brotli));
    assert_eq!(neg(&cfg, "GZIP, BR"), Some(Encoding::Brotli));
    assert_eq!(neg(&cfg, "gzip;q=1.0, br;q=0.5"), Some(Encoding::Gzip));
    assert_eq!(neg(&cfg, "gzip;q=0.8, br;q=0.9"), Some(Encoding::Brotli));
    assert_eq!(neg(&cfg, "gzip ; Q=0.8 , br;q=0.8"), Some(Encoding::Brotli));
    assert_eq!(neg(&cfg, "br;q=0, gzip"), Some(Encoding::Gzip));
    assert_eq!(neg(&cfg, "br;q=0, gzip;q=0.000"), None);
    assert_eq!(neg(&cfg, "identity"), None);
    assert_eq!(neg(&cfg, "deflate"), None);
    assert_eq!(neg(&cfg, ""), None);
    assert_eq!(neg(&cfg, " , ,"), None);
}

#[test]
fn star_stands_for_codings_not_named() {
    let cfg = on();
    assert_eq!(neg(&cfg, "*"), Some(Encoding::Brotli));
    assert_eq!(neg(&cfg, "*;q=0"), None);
    assert_eq!(neg(&cfg, "br;q=0, *"), Some(Encoding::Gzip));
    assert_eq!(neg(&cfg, "gzip;q=0.5, *;q=0.1"), Some(Encoding::Gzip));
    assert_eq!(neg(&cfg, "*;q=0, gzip"), Some(Encoding::Gzip));
}

#[test]
fn malformed_q_values_refuse_the_coding() {
    let cfg = on();
    assert_eq!(neg(&cfg, "br;q=2, gzip"), Some(Encoding::Gzip));
    assert_eq!(neg(&cfg, "br;q=abc, gzip;q=0.1"), Some(Encoding::Gzip));
    assert_eq!(neg(&cfg, "br;q=0.1234"), None);
    assert_eq!(neg(&cfg, "br;q=1.001"), None);
    assert_eq!(neg(&cfg, "br;q=1.000"), Some(Encoding::Brotli));
    assert_eq!(
        neg(&cfg, "br;level=3"),
        Some(Encoding::Brotli),
        "other params ignored"
    );
    assert_eq!(parse_q("0.5"), Some(500));
    assert_eq!(parse_q("0.05"), Some(50));
    assert_eq!(parse_q("1"), Some(1000));
    assert_eq!(parse_q("0."), Some(0));
    assert_eq!(parse_q("-0"), None);
}

#[test]
fn only_enabled_encodings_are_chosen() {
    let mut cfg = on();
    cfg.brotli = false;
    assert_eq!(neg(&cfg, "br, gzip"), Some(Encoding::Gzip));
    assert_eq!(neg(&cfg, "br"), None);
    cfg.brotli = true;
    cfg.gzip = false;
    assert_eq!(neg(&cfg, "gzip"), None);
    assert_eq!(neg(&cfg, "gzip, br;q=0.1"), Some(Encoding::Brotli));
    cfg.enabled = false;
    assert_eq!(neg(&cfg, "br"), None);
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            header::HeaderName::from_bytes(k.as_bytes()).expect("name"),
            HeaderValue::from_str(v).expect("value"),
        );
    }
    h
}

fn should(h: &[(&str, &str)]) -> bool {
    should_compress(&on(), &Method::GET, StatusCode::OK, &headers(h))
}

#[test]
fn compressible_types_match_the_essence_and_wildcards() {
    assert!(should(&[("content-type", "text/html")]));
    assert!(should(&[("content-type", "Text/HTML; charset=UTF-8")]));
    assert!(should(&[(
        "content-type",
        "application/json ; charset=utf-8"
    )]));
    assert!(!should(&[("content-type", "image/png")]));
    assert!(!should(&[("content-type", "application/jsonx")]));
    assert!(!should(&[("content-type", "garbage")]));
    assert!(!should(&[]), "no content type: unknown, left alone");
    let mut cfg = on();
    cfg.types = vec!["text/*".into()];
    let h = |ct| headers(&[("content-type", ct)]);
    assert!(should_compress(
        &cfg,
        &Method::GET,
        StatusCode::OK,
        &h("text/x-anything")
    ));
    assert!(!should_compress(
        &cfg,
        &Method::GET,
        StatusCode::OK,
        &h("application/json")
    ));
    assert!(!should_compress(
        &cfg,
        &Method::GET,
        StatusCode::OK,
        &h("textual/plain")
    ));
}

#[test]
fn responses_that_must_not_be_compressed() {
    let html = [("content-type", "text/html")];
    let cfg = on();
    let h = headers(&html);
    assert!(!should_compress(&cfg, &Method::HEAD, StatusCode::OK, &h));
    for status in [100, 101, 204, 206, 304] {
        let status = StatusCode::from_u16(status).expect("status");
        assert!(!should_compress(&cfg, &Method::GET, status, &h), "{status}");
    }
    assert!(should_compress(
        &cfg,
        &Method::POST,
        StatusCode::NOT_FOUND,
        &h
    ));
    assert!(!should(&[
        ("content-type", "text/html"),
        ("content-encoding", "gzip")
    ]));
    assert!(!should(&[
        ("content-type", "text/html"),
        ("content-encoding", "identity")
    ]));
    assert!(!should(&[
        ("content-type", "text/html"),
        ("content-range", "bytes 0-1/2")
    ]));
    assert!(!should(&[
        ("content-type", "text/html"),
        ("cache-control", "public, No-Transform")
    ]));
    assert!(should(&[
        ("content-type", "text/html"),
        ("cache-control", "max-age=60")
    ]));
    let mut off = on();
    off.enabled = false;
    assert!(!should_compress(&off, &Method::GET, StatusCode::OK, &h));
}

#[test]
fn min_size_applies_to_a_known_length_only() {
    let with_len = |len: &str| should(&[("content-type", "text/html"), ("content-length", len)]);
    assert!(!with_len("0"));
    assert!(!with_len("1023"));
    assert!(with_len("1024"));
    assert!(with_len("99999"));
    assert!(!with_len("nope"), "a broken length is left alone");
    assert!(
        should(&[("content-type", "text/html")]),
        "streamed: compressed"
    );
}

#[test]
fn vary_is_added_once() {
    let mut h = HeaderMap::new();
    add_vary(&mut h);
    add_vary(&mut h);
    assert_eq!(h.get_all(header::VARY).iter().count(), 1);
    let mut h = headers(&[("vary", "Origin")]);
    add_vary(&mut h);
    let all: Vec<_> = h.get_all(header::VARY).iter().collect();
    assert_eq!(all, ["Origin", "Accept-Encoding"]);
    let mut h = headers(&[("vary", "origin, accept-encoding")]);
    add_vary(&mut h);
    assert_eq!(h.get_all(header::VARY).iter().count(), 1);
    let mut h = headers(&[("vary", "*")]);
    add_vary(&mut h);
    assert_eq!(h.get_all(header::VARY).iter().count(), 1);
}

fn text(n: usize) -> String {
    (0..n)
        .map(|i| format!("line {i}: the quick brown fox jumps over the lazy dog\n"))
        .collect()
}

fn gunzip(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(data)
        .read_to_end(&mut out)
        .expect("valid gzip");
    out
}

fn unbrotli(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    brotli::Decompressor::new(data, 4096)
        .read_to_end(&mut out)
        .expect("valid brotli");
    out
}

fn response(body: &str, extra: &[(&str, &str)]) -> Response<ProxyBody> {
    let mut resp = Response::new(ProxyBody::full(body.to_string()));
    *resp.headers_mut() = headers(extra);
    resp.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    resp
}

#[tokio::test]
async fn gzip_and_brotli_round_trip_with_headers_rewritten() {
    let original = text(500);
    for (enc, decode) in [
        (Encoding::Gzip, gunzip as fn(&[u8]) -> Vec<u8>),
        (Encoding::Brotli, unbrotli),
    ] {
        let resp = response(
            &original,
            &[
                ("content-type", "text/plain"),
                ("etag", "\"abc\""),
                ("accept-ranges", "bytes"),
            ],
        );
        let resp = compress(resp, enc);
        let h = resp.headers();
        assert_eq!(h["content-encoding"], enc.as_str());
        assert!(h.get("content-length").is_none());
        assert!(h.get("accept-ranges").is_none());
        assert_eq!(h["etag"], "W/\"abc\"");
        assert_eq!(h["vary"], "Accept-Encoding");
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        assert!(
            body.len() < original.len() / 4,
            "{enc:?}: {} bytes",
            body.len()
        );
        assert_eq!(decode(&body), original.as_bytes(), "{enc:?}");
    }
}

#[tokio::test]
async fn weak_etags_stay_and_an_empty_body_is_still_valid() {
    let resp = compress(response("", &[("etag", "W/\"x\"")]), Encoding::Gzip);
    assert_eq!(resp.headers()["etag"], "W/\"x\"");
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    assert!(gunzip(&body).is_empty());
    let resp = compress(response("", &[]), Encoding::Brotli);
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    assert!(unbrotli(&body).is_empty());
}

#[tokio::test]
async fn apply_compresses_or_adds_vary() {
    let cfg = on();
    let big = text(100);
    let br = HeaderValue::from_static("br");
    let resp = apply(
        &cfg,
        &Method::GET,
        Some(&br),
        response(&big, &[("content-type", "text/html")]),
    );
    assert_eq!(resp.headers()["content-encoding"], "br");
    // Compressible, but the client takes no encoding: plain, with Vary.
    let resp = apply(
        &cfg,
        &Method::GET,
        None,
        response(&big, &[("content-type", "text/html")]),
    );
    assert!(resp.headers().get("content-encoding").is_none());
    assert_eq!(resp.headers()["vary"], "Accept-Encoding");
    assert_eq!(
        resp.headers()["content-length"],
        big.len().to_string().as_str()
    );
    // Not compressible whatever the client says: untouched, no Vary.
    let resp = apply(
        &cfg,
        &Method::GET,
        Some(&br),
        response(&big, &[("content-type", "image/png")]),
    );
    assert!(resp.headers().get("content-encoding").is_none());
    assert!(resp.headers().get("vary").is_none());
    let resp = apply(
        &cfg,
        &Method::GET,
        Some(&br),
        response("tiny", &[("content-type", "text/html")]),
    );
    assert!(resp.headers().get("content-encoding").is_none());
}

/// A body fed by the test, frame by frame, that pauses (Pending) when nothing was sent.
struct Fed(mpsc::Receiver<Result<Frame<Bytes>, BoxError>>);

impl Body for Fed {
    type Data = Bytes;
    type Error = BoxError;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.0.poll_recv(cx)
    }
}

fn fed(enc: Encoding) -> (mpsc::Sender<Result<Frame<Bytes>, BoxError>>, Encoded<Fed>) {
    let (tx, rx) = mpsc::channel(8);
    (tx, Encoded::new(Fed(rx), enc))
}

/// What a streaming decoder makes of `data` alone (a prefix of a compressed stream).
fn decode_prefix(enc: Encoding, data: &[u8]) -> Vec<u8> {
    match enc {
        Encoding::Gzip => {
            let mut dec = flate2::write::GzDecoder::new(Vec::new());
            dec.write_all(data).expect("decodes");
            dec.flush().expect("flush");
            dec.get_ref().clone()
        }
        Encoding::Brotli => {
            let mut dec = brotli::DecompressorWriter::new(Vec::new(), 4096);
            dec.write_all(data).expect("decodes");
            dec.flush().expect("flush");
            dec.get_ref().clone()
        }
    }
}

#[tokio::test]
async fn a_pause_in_the_input_flushes_what_was_compressed() {
    for enc in [Encoding::Gzip, Encoding::Brotli] {
        let (tx, mut body) = fed(enc);
        // Two small events, then the upstream pauses: both must be decodable now.
        for event in [&b"event: one\n\n"[..], b"event: two\n\n"] {
            tx.send(Ok(Frame::data(Bytes::from_static(event))))
                .await
                .expect("send");
        }
        let first = body
            .frame()
            .await
            .expect("a frame")
            .expect("data")
            .into_data()
            .expect("data");
        assert_eq!(
            decode_prefix(enc, &first),
            b"event: one\n\nevent: two\n\n",
            "{enc:?}"
        );
        // Nothing more is ready: the body waits instead of spinning.
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert!(
            Pin::new(&mut body).poll_frame(&mut cx).is_pending(),
            "{enc:?}"
        );
        tx.send(Ok(Frame::data(Bytes::from_static(b"event: three\n\n"))))
            .await
            .expect("send");
        drop(tx);
        let rest = body.collect().await.expect("rest").to_bytes();
        let all: Vec<u8> = [first.as_ref(), rest.as_ref()].concat();
        let plain = match enc {
            Encoding::Gzip => gunzip(&all),
            Encoding::Brotli => unbrotli(&all),
        };
        assert_eq!(
            plain, b"event: one\n\nevent: two\n\nevent: three\n\n",
            "{enc:?}"
        );
    }
}

#[tokio::test]
async fn the_first_frame_alone_decodes_after_a_pause() {
    let (tx, mut body) = fed(Encoding::Gzip);
    tx.send(Ok(Frame::data(Bytes::from_static(b"hello"))))
        .await
        .expect("send");
    let data = body
        .frame()
        .await
        .expect("frame")
        .expect("data")
        .into_data()
        .expect("data");
    assert_eq!(decode_prefix(Encoding::Gzip, &data), b"hello");
    drop(tx);
}

#[tokio::test]
async fn trailers_follow_the_end_of_the_compressed_stream() {
    let (tx, body) = fed(Encoding::Gzip);
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    tx.send(Ok(Frame::data(Bytes::from(text(50)))))
        .await
        .expect("send");
    tx.send(Ok(Frame::trailers(trailers.clone())))
        .await
        .expect("send");
    drop(tx);
    let collected = body.collect().await.expect("body");
    assert_eq!(collected.trailers(), Some(&trailers));
    assert_eq!(gunzip(&collected.to_bytes()), text(50).as_bytes());
}

#[tokio::test]
async fn an_input_error_is_passed_on_and_ends_the_stream() {
    let (tx, mut body) = fed(Encoding::Brotli);
    tx.send(Err("upstream reset".into())).await.expect("send");
    let err = body.frame().await.expect("a frame").expect_err("the error");
    assert_eq!(err.to_string(), "upstream reset");
    assert!(body.is_end_stream());
}

#[tokio::test]
async fn large_bodies_are_emitted_while_they_stream() {
    let (tx, mut body) = fed(Encoding::Gzip);
    // Incompressible input fills the output buffer quickly; frames must come out before the end.
    let mut seed = 1u64;
    let noise: Vec<u8> = (0..256 * 1024)
        .map(|_| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 56) as u8
        })
        .collect();
    let sender = tokio::spawn({
        let noise = noise.clone();
        async move {
            for chunk in noise.chunks(16 * 1024) {
                tx.send(Ok(Frame::data(Bytes::copy_from_slice(chunk))))
                    .await
                    .expect("send");
            }
        }
    });
    let mut out = Vec::new();
    let mut frames = 0;
    while let Some(frame) = body.frame().await {
        out.extend_from_slice(&frame.expect("data").into_data().expect("data"));
        frames += 1;
    }
    sender.await.expect("sender");
    assert!(frames > 2, "{frames} frames");
    assert_eq!(gunzip(&out), noise);
}
