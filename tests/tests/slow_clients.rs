//! Slow clients are cut, and a client that stops reading holds a bounded amount of memory:
//! `limits.body_timeout` (between two reads of a request body: 408 and close), and
//! `limits.send_timeout` (a response the client does not take: close, and the upstream
//! connection with it).

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use switchyard_config::Config;
use switchyard_tests::{TestApp, poll_until, raw_request, raw_status};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn with_limits(mut config: Config, body: Duration, send: Duration) -> Config {
    config.limits.body_timeout = body;
    config.limits.send_timeout = send;
    config
}

#[tokio::test]
async fn a_body_that_stops_arriving_gets_408() {
    let green = TestApp::start("green").await;
    let blue = TestApp::start("blue").await;
    let config = with_limits(
        common::two_colours(&[green.addr()], &[blue.addr()]),
        Duration::from_millis(300),
        Duration::from_secs(60),
    );
    let proxy = common::start(config).await;
    common::wait_healthy(&proxy, "green").await;
    let addr = common::http(&proxy);
    // A small body (buffered for replay) that never comes.
    let answer = raw_request(
        addr,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc",
    )
    .await;
    assert_eq!(
        raw_status(&answer),
        408,
        "{}",
        String::from_utf8_lossy(&answer)
    );
    // A large body (streamed to the app) that stops half-way.
    let mut req = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n".to_vec();
    req.extend(std::iter::repeat_n(b'x', 70_000));
    let answer = raw_request(addr, &req).await;
    assert_eq!(
        raw_status(&answer),
        408,
        "{}",
        String::from_utf8_lossy(&answer)
    );
    assert!(
        green.posts().is_empty(),
        "no half body was processed as a whole one"
    );
    proxy.shutdown().await;
}

/// An upstream answering every request with a `size`-byte body written as fast as the
/// connection takes it. Counts connections whose writes blocked for a while (the reader
/// stalled) and connections that ended before the whole body was written.
struct Firehose {
    addr: SocketAddr,
    blocked: Arc<AtomicUsize>,
    cut: Arc<AtomicUsize>,
}

async fn firehose(size: usize) -> Firehose {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let blocked = Arc::new(AtomicUsize::new(0));
    let cut = Arc::new(AtomicUsize::new(0));
    let (b, c) = (blocked.clone(), cut.clone());
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let (blocked, cut) = (b.clone(), c.clone());
            tokio::spawn(async move {
                let mut head = vec![0u8; 4096];
                let mut seen = Vec::new();
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut head).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&head[..n]),
                    }
                }
                if seen.starts_with(b"GET /health") {
                    let _ = s
                        .write_all(
                            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                        )
                        .await;
                    return;
                }
                let answer = format!("HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n\r\n");
                if s.write_all(answer.as_bytes()).await.is_err() {
                    cut.fetch_add(1, Ordering::SeqCst);
                    return;
                }
                let chunk = vec![b'z'; 64 * 1024];
                let mut left = size;
                let mut counted = false;
                while left > 0 {
                    let n = left.min(chunk.len());
                    let write = s.write(&chunk[..n]);
                    let written =
                        match tokio::time::timeout(Duration::from_millis(200), write).await {
                            Ok(r) => r,
                            Err(_) => {
                                if !counted {
                                    counted = true;
                                    blocked.fetch_add(1, Ordering::SeqCst);
                                }
                                s.write(&chunk[..n]).await
                            }
                        };
                    match written {
                        Ok(0) | Err(_) => {
                            cut.fetch_add(1, Ordering::SeqCst);
                            return;
                        }
                        Ok(w) => left -= w,
                    }
                }
            });
        }
    });
    Firehose { addr, blocked, cut }
}

/// Opens a connection that asks for the big body and never reads.
async fn stalled_reader(proxy: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(proxy).await.expect("connect");
    s.write_all(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("request");
    s
}

fn rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_cut_after_send_timeout() {
    let up = firehose(50 * 1024 * 1024).await;
    let config = with_limits(
        common::two_colours(&[up.addr], &[up.addr]),
        Duration::from_secs(60),
        Duration::from_millis(300),
    );
    let proxy = common::start(config).await;
    common::wait_healthy(&proxy, "green").await;
    let mut client = stalled_reader(common::http(&proxy)).await;
    // The proxy stops reading the upstream once the client stops reading, then gives up on
    // the client after send_timeout: the upstream connection is cut too.
    poll_until(Duration::from_secs(10), || async {
        up.cut.load(Ordering::SeqCst) == 1
    })
    .await;
    // The client connection was closed by the proxy: reading drains what was sent, then EOF.
    let mut sink = vec![0u8; 1 << 20];
    let drained = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match client.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(drained.is_ok(), "the proxy closed the stalled connection");
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_readers_hold_bounded_memory() {
    const READERS: usize = 100;
    let up = firehose(50 * 1024 * 1024).await;
    let proxy = common::start(common::two_colours(&[up.addr], &[up.addr])).await;
    common::wait_healthy(&proxy, "green").await;
    let before = rss_kb();
    let mut readers = Vec::with_capacity(READERS);
    for _ in 0..READERS {
        readers.push(stalled_reader(common::http(&proxy)).await);
    }
    // Every upstream write blocks once the proxy stops reading for its stalled client.
    poll_until(Duration::from_secs(20), || async {
        up.blocked.load(Ordering::SeqCst) >= READERS
    })
    .await;
    let held_kb = rss_kb().saturating_sub(before);
    println!(
        "{READERS} stalled readers of a 50 MiB response: RSS grew by {held_kb} kB ({} kB each)",
        held_kb / READERS as u64
    );
    // Before the request path read upstream bodies only as the client took them, this was
    // ~0.9 MB per reader (91 MB for 100).
    assert!(held_kb < 32 * 1024, "100 stalled readers hold {held_kb} kB");
    drop(readers);
    proxy.shutdown().await;
}
