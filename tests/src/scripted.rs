//! An upstream that answers with bytes a test chose, for heads no HTTP library would send.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// What a scripted upstream does with one request.
pub struct Scripted {
    /// The bytes it answers with.
    pub answer: Vec<u8>,
    /// Whether it closes the connection after them.
    pub close: bool,
}

/// Starts an upstream on `127.0.0.1:0` that reads each request head on a kept-alive
/// connection, and the body its `Content-Length` announces (no other framing), and answers with
/// what `script` makes of the head's text. Returns its address.
pub async fn scripted_upstream(
    script: impl Fn(&str) -> Scripted + Send + Sync + 'static,
) -> SocketAddr {
    let script = std::sync::Arc::new(script);
    let listener = match TcpListener::bind("127.0.0.1:0").await {
        Ok(l) => l,
        Err(e) => panic!("scripted upstream: bind: {e}"),
    };
    let addr = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => panic!("scripted upstream: address: {e}"),
    };
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let script = script.clone();
            tokio::spawn(async move {
                let mut got = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") else {
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => got.extend_from_slice(&chunk[..n]),
                        }
                        continue;
                    };
                    let head = String::from_utf8_lossy(&got[..end]).into_owned();
                    let body = content_length(&head);
                    while got.len() < end + 4 + body {
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => got.extend_from_slice(&chunk[..n]),
                        }
                    }
                    got.drain(..end + 4 + body);
                    let Scripted { answer, close } = script(&head);
                    if stream.write_all(&answer).await.is_err() {
                        return;
                    }
                    if close {
                        let _ = stream.shutdown().await;
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// The `Content-Length` of a head's text (0 without one).
fn content_length(head: &str) -> usize {
    head.lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.trim().parse().ok())
        .unwrap_or(0)
}
