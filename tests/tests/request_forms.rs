//! Request forms the proxy never forwards (CONNECT, asterisk-form targets other than
//! `OPTIONS *`), and a `101` the upstream gives without agreeing to the WebSocket upgrade the
//! client asked for: a 502 and no tunnel.

mod common;

use std::net::SocketAddr;

use switchyard_tests::{TestApp, raw_request, raw_status};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[tokio::test]
async fn connect_and_asterisk_forms_are_not_forwarded() {
    let green = TestApp::start("green").await;
    let blue = TestApp::start("blue").await;
    let proxy = common::start(common::two_colours(&[green.addr()], &[blue.addr()])).await;
    common::wait_healthy(&proxy, "green").await;
    let addr = common::http(&proxy);
    let before = green.requests();

    let answer = raw_request(
        addr,
        b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(
        raw_status(&answer),
        405,
        "{}",
        String::from_utf8_lossy(&answer)
    );

    let answer = raw_request(
        addr,
        b"GET * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(
        raw_status(&answer),
        400,
        "{}",
        String::from_utf8_lossy(&answer)
    );

    let answer = raw_request(
        addr,
        b"OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    let text = String::from_utf8_lossy(&answer).to_ascii_lowercase();
    assert_eq!(raw_status(&answer), 200, "{text}");
    assert!(text.contains("allow: get, head"), "{text}");

    assert_eq!(green.requests(), before, "none of them reached the app");
    proxy.shutdown().await;
}

/// An upstream that answers every request with `answer` on each connection, then keeps the
/// connection open (as a tunnel would be).
async fn fixed_upstream(answer: &'static [u8]) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut seen = Vec::new();
                loop {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                    if seen.windows(4).any(|w| w == b"\r\n\r\n") {
                        seen.clear();
                        if s.write_all(answer).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_101_without_the_upgrade_agreed_is_a_502_and_opens_no_tunnel() {
    let bare = fixed_upstream(b"HTTP/1.1 101 Switching Protocols\r\n\r\n").await;
    let wrong = fixed_upstream(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: upgrade\r\n\r\n",
    )
    .await;
    let websocket_handshake = b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, close\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    for upstream in [bare, wrong] {
        let mut config = common::two_colours(&[upstream], &[upstream]);
        if let Some(svc) = config.services.get_mut("app") {
            // The fixed upstream answers health checks with a 101 as well: no health gate.
            svc.health.path = "/".into();
            svc.retry.attempts = 1;
        }
        let proxy = common::start(config).await;
        let answer = raw_request(common::http(&proxy), websocket_handshake).await;
        let text = String::from_utf8_lossy(&answer);
        assert_eq!(raw_status(&answer), 502, "{text}");
        assert!(
            !text.to_ascii_lowercase().contains("upgrade: websocket"),
            "no upgrade the upstream never agreed to: {text}"
        );
        // And a plain request answered 101 is a 502 too.
        let answer = raw_request(
            common::http(&proxy),
            b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert_eq!(
            raw_status(&answer),
            502,
            "{}",
            String::from_utf8_lossy(&answer)
        );
        proxy.shutdown().await;
    }
}
