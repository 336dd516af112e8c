//! WebSocket pass-through across a flip: an open websocket stays on its colour (counted in its
//! pool's in-flight, so the pool stays `draining`) while new ones go to the new colour; with
//! `upgraded_drain_timeout` the old ones are closed after the flip. `Upgrade: h2c` is never
//! forwarded as an upgrade.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use switchyard_tests::{TestApp, poll_until, raw_request};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// A WebSocket echo server that prefixes every echo with its colour.
async fn ws_app(colour: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                // Health checks are plain HTTP: answer them without a handshake.
                let mut peek = [0u8; 16];
                if let Ok(n) = stream.peek(&mut peek).await {
                    if peek[..n].starts_with(b"GET /health") {
                        use tokio::io::AsyncWriteExt;
                        let mut stream = stream;
                        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok").await;
                        return;
                    }
                }
                let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                while let Some(Ok(msg)) = ws.next().await {
                    if let Message::Text(t) = msg {
                        if ws
                            .send(Message::text(format!("{colour}: {t}")))
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                }
            });
        }
    });
    addr
}

type Ws = tokio_tungstenite::WebSocketStream<TcpStream>;

async fn connect(proxy: SocketAddr) -> Ws {
    let stream = TcpStream::connect(proxy).await.expect("connect");
    let mut req = format!("ws://{proxy}/chat")
        .into_client_request()
        .expect("request");
    req.headers_mut()
        .insert("host", "chat.test".parse().expect("host"));
    let (ws, resp) = tokio_tungstenite::client_async(req, stream)
        .await
        .expect("handshake through the proxy");
    assert_eq!(resp.status(), 101);
    ws
}

async fn echo(ws: &mut Ws, text: &str) -> Option<String> {
    ws.send(Message::text(text)).await.ok()?;
    match ws.next().await {
        Some(Ok(Message::Text(t))) => Some(t.to_string()),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websockets_stay_on_their_colour_across_a_flip() {
    let green = ws_app("green").await;
    let blue = ws_app("blue").await;
    let proxy = common::start(common::two_colours(&[green], &[blue])).await;
    common::wait_healthy(&proxy, "blue").await;
    let addr = common::http(&proxy);

    let mut old = connect(addr).await;
    assert_eq!(echo(&mut old, "hi").await.as_deref(), Some("green: hi"));
    assert_eq!(
        proxy.status().services["app"].pools["green"].in_flight,
        1,
        "an open websocket is in flight"
    );

    proxy.switch(None, "blue", false).await.expect("switch");
    let mut new = connect(addr).await;
    assert_eq!(
        echo(&mut new, "hello").await.as_deref(),
        Some("blue: hello")
    );
    // The old websocket carries on, on green, both directions.
    assert_eq!(
        echo(&mut old, "still here").await.as_deref(),
        Some("green: still here")
    );
    assert_eq!(
        proxy.status().services["app"].pools["green"].state,
        "draining"
    );

    old.close(None).await.expect("close");
    drop(old);
    poll_until(Duration::from_secs(10), || {
        let s = proxy.status();
        async move {
            s.services["app"].pools["green"].in_flight == 0
                && s.services["app"].pools["green"].state == "idle"
        }
    })
    .await;
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drain_timeout_closes_websockets_of_a_pool_that_is_no_longer_live() {
    let green = ws_app("green").await;
    let blue = ws_app("blue").await;
    let mut config = common::two_colours(&[green], &[blue]);
    config
        .services
        .get_mut("app")
        .expect("app")
        .upgraded_drain_timeout = Some(Duration::from_millis(200));
    let proxy = common::start(config).await;
    common::wait_healthy(&proxy, "blue").await;
    let mut old = connect(common::http(&proxy)).await;
    assert_eq!(echo(&mut old, "a").await.as_deref(), Some("green: a"));
    proxy.switch(None, "blue", false).await.expect("switch");
    // Within the liveness check period plus the timeout, the proxy closes it.
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match old.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "the old websocket was closed by the drain timeout"
    );
    poll_until(Duration::from_secs(10), || {
        let n = proxy.status().services["app"].pools["green"].in_flight;
        async move { n == 0 }
    })
    .await;
    proxy.shutdown().await;
}

#[tokio::test]
async fn h2c_upgrades_are_not_forwarded() {
    let app = TestApp::start("green").await;
    let proxy = common::start(common::two_colours(&[app.addr()], &[app.addr()])).await;
    let answer = raw_request(
        common::http(&proxy),
        b"GET /headers HTTP/1.1\r\nHost: a.test\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
    )
    .await;
    let text = String::from_utf8_lossy(&answer);
    assert!(
        text.starts_with("HTTP/1.1 200"),
        "answered as plain HTTP/1.1: {text}"
    );
    let body = text
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert!(
        !body.contains("\"upgrade\"") && !body.contains("http2-settings"),
        "no upgrade reached the upstream: {body}"
    );
    proxy.shutdown().await;
}
