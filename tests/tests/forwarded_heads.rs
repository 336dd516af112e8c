//! What an upstream receives, byte for byte, for HTTP/1 requests whose heads the proxy forwards
//! as they came (`server/h1/head.rs`, `RawHead`): the client's field lines unchanged, names in
//! the client's case, then the proxy's own fields and the framing it chose; and the same head
//! rewritten field by field when its lines were not written as the proxy writes them.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use switchyard_tests::{Scripted, scripted_upstream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// An upstream that answers every request `200 ok` and sends the head of each request whose
/// target starts with `/raw` to the returned channel.
async fn recording_upstream() -> (SocketAddr, mpsc::UnboundedReceiver<String>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let addr = scripted_upstream(move |head| {
        if head.starts_with("GET /raw") || head.starts_with("POST /raw") {
            let _ = tx.send(format!("{head}\r\n\r\n"));
        }
        Scripted {
            answer: b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec(),
            close: false,
        }
    })
    .await;
    (addr, rx)
}

/// Sends `request` on `client` and reads the proxy's `200 ok` answer to it.
async fn exchange(client: &mut TcpStream, request: &[u8]) {
    client.write_all(request).await.expect("write");
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !got.ends_with(b"\r\n\r\nok") {
        let n = client.read(&mut buf).await.expect("read");
        assert!(n > 0, "the proxy closed: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    assert!(
        got.starts_with(b"HTTP/1.1 200 "),
        "{}",
        String::from_utf8_lossy(&got)
    );
}

/// Sends `request` on `client`, reads its answer, and returns the head the upstream got for
/// it, its generated request id replaced by `ID` ([`without_generated_id`]).
async fn forwarded(
    client: &mut TcpStream,
    rx: &mut mpsc::UnboundedReceiver<String>,
    request: &[u8],
) -> String {
    exchange(client, request).await;
    let head = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("the request reached the upstream in time")
        .expect("the upstream is running");
    without_generated_id(&head)
}

/// Splits off the proxy's `X-Request-Id` line (32 hex digits, generated) and returns the head
/// with a placeholder in its place.
fn without_generated_id(head: &str) -> String {
    let Some(at) = head.find("X-Request-Id: ") else {
        panic!("no generated request id: {head}");
    };
    let id = &head[at + 14..at + 14 + 32];
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{head}");
    format!("{}X-Request-Id: ID{}", &head[..at], &head[at + 14 + 32..])
}

#[tokio::test]
async fn plain_heads_reach_the_upstream_as_the_client_wrote_them() {
    let (upstream, mut rx) = recording_upstream().await;
    let mut config = common::two_colours(&[upstream], &[upstream]);
    if let Some(svc) = config.services.get_mut("app") {
        svc.health.path = "/".into();
    }
    let proxy = common::start(config).await;
    common::wait_healthy(&proxy, "green").await;
    let mut client = TcpStream::connect(common::http(&proxy))
        .await
        .expect("connect");

    // Lines as the proxy would write them: passed on as one block, names in their case,
    // inner spaces of values kept.
    assert_eq!(
        forwarded(
            &mut client,
            &mut rx,
            b"GET /raw/1?q=a HTTP/1.1\r\nHost: Shop.Example:8080\r\nUser-Agent: Tester/1\r\nX-Mixed-Case: two  spaces\r\nAccept: */*\r\n\r\n",
        )
        .await,
        "GET /raw/1?q=a HTTP/1.1\r\nHost: Shop.Example:8080\r\nUser-Agent: Tester/1\r\nX-Mixed-Case: two  spaces\r\nAccept: */*\r\n\
         X-Forwarded-For: 127.0.0.1\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: Shop.Example:8080\r\nX-Request-Id: ID\r\n\r\n"
    );

    // Lines written otherwise (no space after the colon, spaces around a value, a body): each
    // field written anew, the client's Content-Length replaced by the proxy's.
    assert_eq!(
        forwarded(
            &mut client,
            &mut rx,
            b"POST /raw/2 HTTP/1.1\r\nHost:a.test\r\nContent-Length: 4\r\nX-A:   b c  \r\n\r\nbody",
        )
        .await,
        "POST /raw/2 HTTP/1.1\r\nHost: a.test\r\nX-A: b c\r\n\
         X-Forwarded-For: 127.0.0.1\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: a.test\r\nX-Request-Id: ID\r\ncontent-length: 4\r\n\r\n"
    );

    // A head with a field the proxy acts on goes through the header map: names in lower case,
    // the hop-by-hop field and the one it names gone.
    assert_eq!(
        forwarded(
            &mut client,
            &mut rx,
            b"GET /raw/3 HTTP/1.1\r\nHost: a.test\r\nConnection: X-Secret\r\nX-Secret: s\r\nAccept: */*\r\n\r\n",
        )
        .await,
        "GET /raw/3 HTTP/1.1\r\nhost: a.test\r\naccept: */*\r\n\
         X-Forwarded-For: 127.0.0.1\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: a.test\r\nX-Request-Id: ID\r\n\r\n"
    );
    proxy.shutdown().await;
}
