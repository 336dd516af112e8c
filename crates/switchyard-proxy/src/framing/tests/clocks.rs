//! The guard's clocks (header, keep-alive) over an in-memory duplex on paused time.

use std::time::Duration;

use futures_util::FutureExt;
use http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::time::Instant;

use super::super::{Guarded, Limits, PREFACE};
use super::{GET, UPGRADE, drain};

/// Clocks short enough to read, far apart enough to tell apart.
const HEADER: Duration = Duration::from_secs(2);
const KEEPALIVE: Duration = Duration::from_secs(7);

/// A guard over one end of a duplex (following answers), and the other end.
fn clocked() -> (Guarded<DuplexStream>, DuplexStream) {
    clocked_with(1 << 16)
}

/// [`clocked`] over a duplex that holds at most `room` bytes each way.
fn clocked_with(room: usize) -> (Guarded<DuplexStream>, DuplexStream) {
    let (client, server) = tokio::io::duplex(room);
    let mut guard = Guarded::new(
        server,
        Limits {
            header_timeout: HEADER,
            keepalive_timeout: KEEPALIVE,
            ..Limits::default()
        },
    );
    guard.track_answers();
    (guard, client)
}

/// Sends a GET from `client` and has the guard hand it out whole.
async fn get_through(guard: &mut Guarded<DuplexStream>, client: &mut DuplexStream) {
    client.write_all(GET).await.expect("write");
    assert_eq!(take(guard, GET.len()).await, GET);
}

/// Reads what the guard hands out until EOF; returns it and when the EOF came.
async fn until_eof(guard: &mut Guarded<DuplexStream>) -> (Vec<u8>, Instant) {
    let out = drain(guard, 8192).await;
    (out, Instant::now())
}

/// Reads exactly `n` bytes from the guard.
async fn take(guard: &mut Guarded<DuplexStream>, n: usize) -> Vec<u8> {
    let mut out = vec![0; n];
    guard
        .read_exact(&mut out)
        .await
        .expect("the guard hands out the bytes");
    out
}

/// Answers the oldest request with a 200 that is complete at once.
fn answer<IO>(guard: &mut Guarded<IO>) {
    answer_with(guard, StatusCode::OK);
}

#[tokio::test(start_paused = true)]
async fn a_silent_connection_ends_after_the_header_timeout() {
    let (mut guard, _client) = clocked();
    let opened = Instant::now();
    let (out, at) = until_eof(&mut guard).await;
    assert!(out.is_empty());
    assert_eq!(at - opened, HEADER);
}

#[tokio::test(start_paused = true)]
async fn a_trickled_head_ends_after_the_header_timeout_from_its_first_byte() {
    let (mut guard, mut client) = clocked();
    let reader = tokio::spawn(async move { until_eof(&mut guard).await });
    tokio::time::sleep(Duration::from_secs(1)).await;
    let first = Instant::now();
    for byte in GET.iter().take(GET.len() - 1) {
        if client.write_all(&[*byte]).await.is_err() {
            break; // Closed.
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let (out, at) = reader.await.expect("reader");
    assert!(out.is_empty(), "no byte of the head may pass: {out:?}");
    assert_eq!(at - first, HEADER);
}

#[tokio::test(start_paused = true)]
async fn an_idle_connection_ends_after_the_keepalive_timeout() {
    let (mut guard, mut client) = clocked();
    get_through(&mut guard, &mut client).await;
    answer(&mut guard);
    let idle = Instant::now();
    let (out, at) = until_eof(&mut guard).await;
    assert!(out.is_empty());
    assert_eq!(at - idle, KEEPALIVE);
}

#[tokio::test(start_paused = true)]
async fn the_idle_time_counts_from_the_answers_own_clock_reading() {
    let (mut guard, mut client) = clocked();
    get_through(&mut guard, &mut client).await;
    // The answer was complete 3 s before the reader reported it finished.
    let complete = Instant::now();
    guard.answered(StatusCode::OK);
    tokio::time::sleep(Duration::from_secs(3)).await;
    guard.answer_finished(Some(complete));
    let (out, at) = until_eof(&mut guard).await;
    assert!(out.is_empty());
    assert_eq!(at - complete, KEEPALIVE);

    // A write to the client blocked after the answer: its reading is not used.
    // Room for the request, not for the answer.
    let (mut guard, client) = clocked_with(GET.len());
    let (mut client_read, mut client_write) = tokio::io::split(client);
    client_write.write_all(GET).await.expect("write");
    assert_eq!(take(&mut guard, GET.len()).await, GET);
    let complete = Instant::now();
    guard.answered(StatusCode::OK);
    let answer = [b'x'; 256];
    let blocked = guard.write(&answer).now_or_never();
    assert!(
        blocked.is_some_and(|w| w.is_ok_and(|n| n < answer.len())),
        "the first write fills the duplex"
    );
    assert!(guard.write(&answer).now_or_never().is_none(), "blocked");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut sink = vec![0; 256];
    let _ = client_read.read(&mut sink).await;
    guard.answer_finished(Some(complete));
    let idle = Instant::now();
    let (_, at) = until_eof(&mut guard).await;
    assert_eq!(at - idle, KEEPALIVE);
}

#[tokio::test(start_paused = true)]
async fn a_connection_that_keeps_sending_stays_open() {
    let (mut guard, mut client) = clocked();
    for _ in 0..5 {
        get_through(&mut guard, &mut client).await;
        answer(&mut guard);
        // Idle for most of the keep-alive period, then the next request.
        let next = tokio::time::timeout(KEEPALIVE - Duration::from_secs(1), guard.read_u8()).await;
        assert!(next.is_err(), "nothing to read yet, and still open");
    }
    // A head started on an idle connection has the header timeout from its first byte.
    client.write_all(&GET[..5]).await.expect("write");
    let started = Instant::now();
    let (out, at) = until_eof(&mut guard).await;
    assert!(out.is_empty());
    assert_eq!(at - started, HEADER);
}

#[tokio::test(start_paused = true)]
async fn no_clock_runs_while_a_request_is_served_or_a_body_streams() {
    let (mut guard, mut client) = clocked();
    get_through(&mut guard, &mut client).await;
    // Answered, but its body is still being sent.
    guard.answered(StatusCode::OK);
    let long = KEEPALIVE * 10;
    assert!(tokio::time::timeout(long, guard.read_u8()).await.is_err());
    guard.answer_finished(None);
    let idle = Instant::now();
    assert_eq!(until_eof(&mut guard).await.1 - idle, KEEPALIVE);

    // A request body that pauses.
    let (mut guard, mut client) = clocked();
    let head = b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\n";
    client.write_all(head).await.expect("write");
    client.write_all(b"12345").await.expect("write");
    assert_eq!(
        take(&mut guard, head.len() + 5).await,
        [&head[..], b"12345"].concat()
    );
    assert!(tokio::time::timeout(long, guard.read_u8()).await.is_err());
}

#[tokio::test(start_paused = true)]
async fn http2_and_tunnels_have_no_clock() {
    let (mut guard, mut client) = clocked();
    client.write_all(PREFACE).await.expect("write");
    assert_eq!(take(&mut guard, PREFACE.len()).await, PREFACE);
    assert!(
        tokio::time::timeout(KEEPALIVE * 10, guard.read_u8())
            .await
            .is_err()
    );

    let (mut guard, mut client) = clocked();
    client.write_all(UPGRADE).await.expect("write");
    assert_eq!(take(&mut guard, UPGRADE.len()).await, UPGRADE);
    answer_with(&mut guard, StatusCode::SWITCHING_PROTOCOLS);
    assert!(
        tokio::time::timeout(KEEPALIVE * 10, guard.read_u8())
            .await
            .is_err()
    );
    client.write_all(b"frame").await.expect("write");
    assert_eq!(take(&mut guard, 5).await, b"frame");
}

/// Answers the oldest request with `status`, complete at once.
fn answer_with<IO>(guard: &mut Guarded<IO>, status: StatusCode) {
    guard.answered(status);
    guard.answer_finished(None);
}
