//! Raw bytes over a fresh TCP connection, for requests no HTTP library would send.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::wait::within;

/// How long [`raw_request`] reads before it gives up waiting for the server to close.
pub const RAW_TIMEOUT: Duration = Duration::from_secs(5);

/// Writes `bytes` on a fresh connection to `addr` and returns everything read back until the
/// server closes, or until [`RAW_TIMEOUT`]. Send `Connection: close` in a well-formed request
/// unless you want to wait for the timeout. Panics if the connect fails.
pub async fn raw_request(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    raw_request_timeout(addr, bytes, RAW_TIMEOUT).await
}

/// [`raw_request`] with a chosen bound on the reading (wall clock).
pub async fn raw_request_timeout(addr: SocketAddr, bytes: &[u8], timeout: Duration) -> Vec<u8> {
    let mut stream = match TcpStream::connect(addr).await {
        Ok(stream) => stream,
        Err(e) => panic!("raw request: connect to {addr}: {e}"),
    };
    let _ = stream.set_nodelay(true);
    // A server may answer and close before reading everything (431, for one): a failed
    // write is not the test's concern, what came back is.
    let _ = stream.write_all(bytes).await;
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match within(left, stream.read(&mut buf)).await {
            Some(Ok(n)) if n > 0 => out.extend_from_slice(&buf[..n]),
            // EOF, a reset, or the time is up.
            _ => return out,
        }
    }
}

/// The status code of a raw HTTP/1 answer; panics with the answer when it is not one.
pub fn raw_status(answer: &[u8]) -> u16 {
    let text = String::from_utf8_lossy(answer);
    text.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {text:?}"))
}
