//! The guard on its own, over a scripted stream that hands out bytes in awkward pieces (its
//! clocks, over an in-memory duplex on paused time: `clocks.rs`).

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::FutureExt;
use http::StatusCode;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

use super::{Guarded, Limits, PREFACE, REJECT_HEAD, TOO_LARGE_HEAD};

/// A client stream that hands out `pieces` one read at a time, then EOF (or, with `hang`,
/// nothing more ever); records what is written to it.
#[derive(Default)]
struct Script {
    pieces: VecDeque<Vec<u8>>,
    hang: bool,
    written: Vec<u8>,
}

impl Script {
    /// `bytes` cut in pieces of `split`.
    fn split(bytes: &[u8], split: usize) -> Self {
        Script {
            pieces: bytes.chunks(split.max(1)).map(<[u8]>::to_vec).collect(),
            ..Script::default()
        }
    }

    /// `bytes` in pieces of `split`, then a read that never completes (an open connection).
    fn open(bytes: &[u8], split: usize) -> Self {
        Script {
            hang: true,
            ..Script::split(bytes, split)
        }
    }
}

impl AsyncRead for Script {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let Some(mut piece) = self.pieces.pop_front() else {
            return if self.hang {
                Poll::Pending
            } else {
                Poll::Ready(Ok(()))
            };
        };
        let n = piece.len().min(buf.remaining());
        buf.put_slice(&piece[..n]);
        if n < piece.len() {
            self.pieces.push_front(piece.split_off(n));
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Script {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.written.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Limits with heads up to `max_head_bytes`.
fn limits(max_head_bytes: usize) -> Limits {
    Limits {
        max_head_bytes,
        ..Limits::default()
    }
}

/// `script` behind a guard with heads up to 8 KiB.
fn guard(script: Script) -> Guarded<Script> {
    Guarded::new(script, limits(8192))
}

/// Everything the guard hands out until EOF, read `chunk` bytes at a time.
async fn drain<IO: AsyncRead + Unpin>(guard: &mut Guarded<IO>, chunk: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; chunk];
    loop {
        match guard.read(&mut buf).await {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) => panic!("guard read failed: {e}"),
        }
    }
}

/// What the guard hands out of `input` (cut in `split`-byte pieces, read in `chunk`s).
async fn through(input: &[u8], split: usize, chunk: usize) -> Vec<u8> {
    drain(&mut guard(Script::split(input, split)), chunk).await
}

/// [`through`] read in small chunks (heads judged in the set-aside buffer) and in large ones
/// (judged in place in the reader's buffer), which must hand out the same bytes.
async fn through_both(input: &[u8], split: usize) -> Vec<u8> {
    let small = through(input, split, 64).await;
    let large = through(input, split, 8192).await;
    assert_eq!(small, large, "split {split}: small and large reads differ");
    small
}

/// Whatever the guard hands out before it would wait for more.
fn ready_now(guard: &mut Guarded<Script>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Some(Ok(n)) = guard.read(&mut buf).now_or_never() {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    out
}

const GET: &[u8] = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
const POST_CL: &[u8] = b"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello\r\n\r\nab";
const POST_CHUNKED: &[u8] = b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
    4;ext=1\r\nwiki\r\n5 \r\npedia\r\n0\r\nTrailer-A: 1\r\n\r\n";

fn pipeline() -> Vec<u8> {
    [b"\r\n", GET, POST_CL, POST_CHUNKED, GET].concat()
}

#[tokio::test]
async fn valid_requests_pass_unchanged_in_any_split() {
    let input = pipeline();
    for split in [1, 2, 3, 5, 7, 13, 64, input.len()] {
        for chunk in [1, 3, 16, 8192] {
            let out = through(&input, split, chunk).await;
            assert_eq!(out, input, "split {split}, chunk {chunk}");
        }
    }
}

#[tokio::test]
async fn a_slow_first_head_passes_as_it_is() {
    // Nothing is added in front of it (the HTTP/1 server needs no wake-up: the guard keeps the
    // clock).
    for split in [1, 4, GET.len()] {
        let mut guard = guard(Script::split(GET, split));
        assert_eq!(drain(&mut guard, 8192).await, GET, "split {split}");
    }
}

#[tokio::test]
async fn no_byte_of_a_head_passes_before_it_is_complete() {
    let head = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n";
    let mut g = guard(Script::open(head, 3));
    assert_eq!(ready_now(&mut g), b"");
    let mut g = guard(Script::open(&[GET, head].concat(), 5));
    assert_eq!(ready_now(&mut g), GET);
    // Read straight into the reader's buffer, the partial head is taken back out of it.
    let mut g = guard(Script::open(&[GET, head].concat(), 4096));
    assert_eq!(ready_now(&mut g), GET);
}

#[tokio::test]
async fn http2_preface_passes_through() {
    let input = [
        &PREFACE[..],
        b"\x00\x00\x00\x04\x00\x00\x00\x00\x00GET / HTTP/1.1\r\n",
    ]
    .concat();
    for split in [1, 5, 23, 24, input.len()] {
        for chunk in [7, 24, 8192] {
            let mut guard = guard(Script::split(&input, split));
            assert_eq!(drain(&mut guard, chunk).await, input, "split {split}");
        }
    }
    // A method starting like the preface is still HTTP/1.
    let pri = b"PRI / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx";
    assert_eq!(through(pri, 1, 64).await, REJECT_HEAD);
}

/// Heads that must never reach the HTTP/1 server, each followed by a request that must not
/// either.
const AMBIGUOUS: &[&str] = &[
    "Content-Length: 5\r\nTransfer-Encoding: chunked",
    "Transfer-Encoding: chunked\r\nContent-Length: 5",
    "Transfer-Encoding: chunked, chunked",
    "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked",
    "Transfer-Encoding: xchunked",
    "Content-Length: 5\r\nContent-Length: 5",
    "Content-Length: 5, 5",
    "Content-Length: +5",
    "Content_Length: 5",
];

#[tokio::test]
async fn each_ambiguous_head_is_replaced_and_ends_the_connection() {
    for fields in AMBIGUOUS {
        let bad = format!("POST / HTTP/1.1\r\nHost: x\r\n{fields}\r\n\r\n0\r\n\r\n");
        let input = [bad.as_bytes(), GET].concat();
        for split in [1, 9, input.len()] {
            assert_eq!(through_both(&input, split).await, REJECT_HEAD, "{fields:?}");
        }
        // Requests before it are answered first.
        let input = [GET, POST_CL, bad.as_bytes(), GET].concat();
        let expected = [GET, POST_CL, REJECT_HEAD].concat();
        for split in [7, input.len()] {
            assert_eq!(
                through_both(&input, split).await,
                expected,
                "{fields:?} after others"
            );
        }
    }
}

#[tokio::test]
async fn malformed_heads_go_to_hyper_as_they_are_then_eof() {
    let bad = b"GET / HTTP/1.1\r\nHost : x\r\n\r\n";
    let input = [&bad[..], GET].concat();
    // The HTTP/1 server refuses the first head (400) and closes: what follows it is never
    // parsed.
    assert_eq!(through_both(&input, 64).await, input);
    for chunk in [64, 8192] {
        let out = through(&input, 10, chunk).await;
        assert!(out.len() >= bad.len() && input.starts_with(&out), "{out:?}");
    }
}

#[tokio::test]
async fn invalid_chunk_syntax_ends_the_connection_after_the_bad_byte() {
    let head = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
    let input = [&head[..], b"3\r\nabc\r\nzz\r\n\r\n", GET].concat();
    let expected = [&head[..], b"3\r\nabc\r\nz"].concat();
    for split in [1, 4, input.len()] {
        assert_eq!(through_both(&input, split).await, expected, "split {split}");
    }
}

/// The replacement for a head over the limits: [`TOO_LARGE_HEAD`] and padding past the HTTP/1
/// server's read-buffer limit ([`Limits::read_buf_limit`], 8 KiB here).
fn too_large() -> Vec<u8> {
    let mut out = TOO_LARGE_HEAD.to_vec();
    out.resize(TOO_LARGE_HEAD.len() + 8192, b'a');
    out
}

#[tokio::test]
async fn a_head_over_the_limit_is_replaced_and_ends_the_connection() {
    let long = format!("GET / HTTP/1.1\r\nX-Long: {}\r\n", "a".repeat(300));
    // Incomplete: refused as soon as it is over the limit.
    let partial = [
        long.as_bytes(),
        b"Content-Length: 1\r\nTransfer-Encoding: chunked\r\n",
    ]
    .concat();
    // Complete: refused too, with what follows it.
    let complete = [long.as_bytes(), b"\r\n", GET].concat();
    for input in [partial, complete] {
        for split in [1, 100, input.len()] {
            let mut guard = Guarded::new(Script::split(&input, split), limits(128));
            assert_eq!(drain(&mut guard, 8192).await, too_large(), "split {split}");
        }
    }
    // Requests before it are served; a head just within the limit passes.
    let within = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(100));
    let input = [within.as_bytes(), long.as_bytes()].concat();
    let mut guard = Guarded::new(Script::split(&input, 7), limits(within.len()));
    let expected = [within.as_bytes(), &too_large()].concat();
    assert_eq!(drain(&mut guard, 64).await, expected);
}

#[tokio::test]
async fn a_head_with_too_many_fields_is_replaced() {
    let many = format!("GET / HTTP/1.1\r\n{}\r\n", "X-A: 1\r\n".repeat(101));
    let input = [GET, many.as_bytes(), GET].concat();
    for split in [9, input.len()] {
        assert_eq!(
            through_both(&input, split).await,
            [GET, &too_large()].concat()
        );
    }
    let few = Limits {
        max_headers: 2,
        ..limits(8192)
    };
    let three = b"GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\n\r\n";
    let mut guard = Guarded::new(Script::split(three, 64), few);
    assert_eq!(drain(&mut guard, 64).await, too_large());
}

#[tokio::test]
async fn body_bytes_that_look_like_heads_are_not_judged() {
    let body = b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n";
    let cl = format!("POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n", body.len());
    let input = [cl.as_bytes(), body, GET].concat();
    assert_eq!(through_both(&input, 3).await, input);
    assert_eq!(through_both(&input, input.len()).await, input);
    let chunked = format!(
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n",
        body.len()
    );
    let input = [chunked.as_bytes(), body, b"\r\n0\r\n\r\n", GET].concat();
    assert_eq!(through_both(&input, 3).await, input);
    assert_eq!(through_both(&input, input.len()).await, input);
}

const UPGRADE: &[u8] =
    b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
const SMUGGLED: &[u8] =
    b"POST / HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n";

#[tokio::test]
async fn without_answers_upgrade_requests_stay_guarded() {
    let input = [UPGRADE, SMUGGLED, b"0\r\n\r\n"].concat();
    assert_eq!(
        through_both(&input, 64).await,
        [UPGRADE, REJECT_HEAD].concat()
    );
}

#[tokio::test]
async fn a_101_answer_opens_the_tunnel() {
    let frames = b"\x81\x05hello\r\n\r\n\x00 anything";
    let mut guard = guard(Script::open(&[GET, UPGRADE, frames].concat(), 9));
    guard.track_answers();
    assert_eq!(ready_now(&mut guard), [GET, UPGRADE].concat());
    guard.answered(StatusCode::OK);
    assert_eq!(
        ready_now(&mut guard),
        b"",
        "the upgrade request is not answered yet"
    );
    guard.answered(StatusCode::SWITCHING_PROTOCOLS);
    assert_eq!(ready_now(&mut guard), frames);
}

#[tokio::test]
async fn another_answer_to_an_upgrade_request_keeps_the_checks() {
    let input = [UPGRADE, GET, SMUGGLED, b"0\r\n\r\n"].concat();
    let mut guard = guard(Script::split(&input, 5));
    guard.track_answers();
    assert_eq!(ready_now(&mut guard), UPGRADE);
    guard.answered(StatusCode::NOT_FOUND);
    assert_eq!(drain(&mut guard, 64).await, [GET, REJECT_HEAD].concat());
}

#[tokio::test]
async fn connect_opens_a_tunnel_on_2xx_only() {
    let connect = b"CONNECT x:443 HTTP/1.1\r\nHost: x:443\r\n\r\n";
    let tls = b"\x16\x03\x01\x00\x05hello";
    let mut guard = self::guard(Script::split(&[&connect[..], tls].concat(), 64));
    guard.track_answers();
    assert_eq!(ready_now(&mut guard), connect);
    guard.answered(StatusCode::OK);
    assert_eq!(drain(&mut guard, 64).await, tls);

    let mut guard = self::guard(Script::split(&[&connect[..], SMUGGLED].concat(), 64));
    guard.track_answers();
    assert_eq!(ready_now(&mut guard), connect);
    guard.answered(StatusCode::SWITCHING_PROTOCOLS);
    // 101 hands the connection over whatever the method (the HTTP/1 server's rule too).
    assert_eq!(drain(&mut guard, 64).await, SMUGGLED);
    let mut guard = self::guard(Script::split(&[&connect[..], SMUGGLED].concat(), 64));
    guard.track_answers();
    assert_eq!(ready_now(&mut guard), connect);
    guard.answered(StatusCode::FORBIDDEN);
    assert_eq!(drain(&mut guard, 64).await, REJECT_HEAD);
}

#[tokio::test]
async fn writes_pass_through() {
    let mut guard = guard(Script::default());
    guard.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.ok();
    let slices = [io::IoSlice::new(b"ab"), io::IoSlice::new(b"cd")];
    let n = guard.write_vectored(&slices).await.unwrap_or(0);
    guard.flush().await.ok();
    assert!(n >= 2);
    assert!(!guard.is_write_vectored());
    assert!(
        guard
            .get_ref()
            .written
            .starts_with(b"HTTP/1.1 200 OK\r\n\r\nab")
    );
}

#[tokio::test]
async fn heads_are_judged_in_the_readers_buffer_and_nothing_is_kept_between_requests() {
    let mut g = guard(Script::open(&pipeline(), 4096));
    assert_eq!(ready_now(&mut g), pipeline());
    assert_eq!(g.buf.capacity(), 0, "whole heads are never copied aside");
    // A head cut in two is set aside until complete, then the buffer is freed.
    let mut g = guard(Script::open(&[GET, &GET[..10]].concat(), 4096));
    assert_eq!(ready_now(&mut g), GET);
    assert!(g.buf.capacity() > 0);
    g.get_mut().pieces.push_back(GET[10..].to_vec());
    assert_eq!(ready_now(&mut g), GET);
    assert_eq!(g.buf.capacity(), 0, "an idle connection holds no buffer");
}

mod clocks;
