//! HTTP/2 to clients over cleartext with prior knowledge: several streams at once on one
//! connection, each forwarded to the HTTP/1.1 upstream pool with the `:authority` as `Host`.

mod common;

use std::time::Duration;

use switchyard_tests::{Http2Client, TestApp, poll_until};

#[tokio::test]
async fn concurrent_h2_streams_on_one_connection_reach_the_http1_upstream() {
    let green = TestApp::start("green").await;
    let blue = TestApp::start("blue").await;
    let proxy = common::start(common::two_colours(&[green.addr()], &[blue.addr()])).await;
    let client = Http2Client::connect(common::http(&proxy)).await;

    // Four slow requests at once: all four are at the app together, so they really are
    // multiplexed on the one client connection rather than queued behind each other.
    let slow: Vec<_> = (0..4)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.get("/slow?ms=300", "app.test").await })
        })
        .collect();
    poll_until(Duration::from_secs(10), || async { green.in_flight() >= 4 }).await;
    assert_eq!(proxy.open_connections(), 1);
    for task in slow {
        let resp = task.await.expect("task").expect("answer");
        assert_eq!(
            (resp.status.as_u16(), resp.version),
            (200, http::Version::HTTP_2)
        );
        assert_eq!(resp.text(), "green");
    }

    // The authority becomes the upstream Host; the upstream speaks HTTP/1.1.
    let echoes: Vec<_> = (0..3)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move {
                client
                    .get(
                        &format!("/headers?n={i}"),
                        &format!("Shop{i}.App.Test:8080"),
                    )
                    .await
            })
        })
        .collect();
    for (i, task) in echoes.into_iter().enumerate() {
        let seen = task.await.expect("task").expect("answer").json();
        let authority = format!("Shop{i}.App.Test:8080");
        assert_eq!(seen["host"], serde_json::json!([authority]));
        assert_eq!(seen["x-forwarded-host"], serde_json::json!([authority]));
        assert_eq!(seen["x-forwarded-proto"][0], "http");
        assert_eq!(seen["_version"], "HTTP/1.1");
        assert_eq!(seen["_uri"], format!("/headers?n={i}"));
    }
    assert!(!client.is_closed());
    proxy.shutdown().await;
}

#[tokio::test]
async fn h2_posts_are_forwarded_with_their_body() {
    let green = TestApp::start("green").await;
    let blue = TestApp::start("blue").await;
    let proxy = common::start(common::two_colours(&[green.addr()], &[blue.addr()])).await;
    let client = Http2Client::connect(common::http(&proxy)).await;
    let resp = client
        .post("/echo", "app.test", "hello over h2")
        .await
        .expect("answer");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.text(), "hello over h2");
    assert_eq!(green.posts(), vec![bytes::Bytes::from("hello over h2")]);
    proxy.shutdown().await;
}

/// One HTTP/2 frame: length, type, flags, stream, payload.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).expect("a small frame");
    let mut out = len.to_be_bytes()[1..].to_vec();
    out.extend_from_slice(&[kind, flags]);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// An HPACK literal field without indexing, with a literal name (RFC 7541 §6.2.2).
fn literal(name: &str, value: &str) -> Vec<u8> {
    let mut out = vec![0x00, u8::try_from(name.len()).expect("short")];
    out.extend_from_slice(name.as_bytes());
    out.push(u8::try_from(value.len()).expect("short"));
    out.extend_from_slice(value.as_bytes());
    out
}

/// Pseudo-header fields in trailers (RFC 9113 §8.1: a malformed request) are discarded by the
/// HTTP/2 layer before anything of Switchyard's sees them: the request is forwarded with its
/// body and without them, and they never change where it goes.
#[tokio::test]
async fn pseudo_headers_in_h2_trailers_never_reach_the_app() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let green = TestApp::start("green").await;
    let proxy = common::start(common::two_colours(&[green.addr()], &[green.addr()])).await;
    common::wait_healthy(&proxy, "green").await;
    let mut stream = tokio::net::TcpStream::connect(common::http(&proxy))
        .await
        .expect("connect");
    // :method POST, :scheme http (static table), :path /echo, :authority app.test.
    let mut head = vec![0x83, 0x86];
    head.extend_from_slice(&[0x04, 5]);
    head.extend_from_slice(b"/echo");
    head.extend_from_slice(&[0x01, 8]);
    head.extend_from_slice(b"app.test");
    let trailers = [
        literal(":path", "/x"),
        literal(":method", "GET"),
        literal("x-t", "1"),
    ]
    .concat();
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(frame(0x4, 0, 0, &[]));
    out.extend(frame(0x1, 0x4, 1, &head));
    out.extend(frame(0x0, 0, 1, b"hello"));
    out.extend(frame(0x1, 0x5, 1, &trailers));
    stream.write_all(&out).await.expect("write");

    // Read frames until stream 1 ends (END_STREAM) or is reset.
    let mut status_block = None;
    let mut body = Vec::new();
    let read = async {
        loop {
            let mut header = [0u8; 9];
            stream.read_exact(&mut header).await.expect("a frame");
            let len =
                usize::from(header[0]) << 16 | usize::from(header[1]) << 8 | usize::from(header[2]);
            let (kind, flags) = (header[3], header[4]);
            let id = u32::from_be_bytes([header[5], header[6], header[7], header[8]]) & 0x7fff_ffff;
            let mut payload = vec![0u8; len];
            stream.read_exact(&mut payload).await.expect("its payload");
            if id != 1 {
                continue;
            }
            match kind {
                0x1 => status_block = Some(payload),
                0x0 => body.extend_from_slice(&payload),
                0x3 => return "reset",
                _ => {}
            }
            if flags & 0x1 != 0 {
                return "ended";
            }
        }
    };
    let how = switchyard_tests::within(Duration::from_secs(10), read)
        .await
        .expect("stream 1 ends");
    assert_eq!(how, "ended");
    // 0x88: `:status 200` from the static table, as hyper encodes it.
    assert_eq!(status_block.as_deref().and_then(|b| b.first()), Some(&0x88));
    assert_eq!(body, b"hello");
    assert_eq!(
        green.recorder().posts_to("/echo"),
        vec![bytes::Bytes::from("hello")]
    );
    assert_eq!(green.count_path("/x"), 0);
    drop(stream);
    proxy.shutdown().await;
}
