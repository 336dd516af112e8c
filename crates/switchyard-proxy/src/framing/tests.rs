//! The guard on its own, over a scripted stream that hands out bytes in awkward pieces.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::FutureExt;
use http::StatusCode;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

use super::{Guarded, PREFACE, REJECT_HEAD, WAKE_UP};

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

/// Everything the guard hands out until EOF, read `chunk` bytes at a time.
async fn drain(guard: &mut Guarded<Script>, chunk: usize) -> Vec<u8> {
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

/// What the guard hands out of `input` (cut in `split`-byte pieces, read in `chunk`s), with
/// the wake-up line left out when the guard added one.
async fn through(input: &[u8], split: usize, chunk: usize) -> Vec<u8> {
    let mut guard = Guarded::new(Script::split(input, split), 8192);
    unwoken(drain(&mut guard, chunk).await, input)
}

/// `out` without the wake-up line, if the guard put one before the bytes of `input`.
fn unwoken(out: Vec<u8>, input: &[u8]) -> Vec<u8> {
    match out.strip_prefix(WAKE_UP) {
        Some(rest) if !input.starts_with(WAKE_UP) || input.starts_with(rest) => rest.to_vec(),
        _ => out,
    }
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
async fn the_wake_up_line_comes_only_when_the_first_head_is_slow() {
    let mut guard = Guarded::new(Script::split(GET, GET.len()), 8192);
    assert_eq!(drain(&mut guard, 8192).await, GET);
    let mut guard = Guarded::new(Script::split(GET, 4), 8192);
    assert_eq!(drain(&mut guard, 8192).await, [WAKE_UP, GET].concat());
}

#[tokio::test]
async fn no_byte_of_a_head_passes_before_it_is_complete() {
    let head = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n";
    let mut guard = Guarded::new(Script::open(head, 3), 8192);
    assert_eq!(ready_now(&mut guard), WAKE_UP);
    let mut guard = Guarded::new(Script::open(&[GET, head].concat(), 5), 8192);
    assert_eq!(ready_now(&mut guard), [WAKE_UP, GET].concat());
}

#[tokio::test]
async fn http2_preface_passes_through() {
    let input = [
        &PREFACE[..],
        b"\x00\x00\x00\x04\x00\x00\x00\x00\x00GET / HTTP/1.1\r\n",
    ]
    .concat();
    for split in [1, 5, 23, 24, input.len()] {
        let mut guard = Guarded::new(Script::split(&input, split), 8192);
        assert_eq!(drain(&mut guard, 7).await, input, "split {split}");
    }
    // A method starting like the preface is still HTTP/1.
    let pri = b"PRI / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx";
    assert_eq!(through(pri, 1, 64).await, REJECT_HEAD);
}

/// Heads that must never reach hyper, each followed by a request that must not either.
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
            assert_eq!(through(&input, split, 64).await, REJECT_HEAD, "{fields:?}");
        }
        // Requests before it are answered first.
        let input = [GET, POST_CL, bad.as_bytes(), GET].concat();
        let expected = [GET, POST_CL, REJECT_HEAD].concat();
        assert_eq!(
            through(&input, 7, 64).await,
            expected,
            "{fields:?} after others"
        );
    }
}

#[tokio::test]
async fn malformed_heads_go_to_hyper_as_they_are_then_eof() {
    let bad = b"GET / HTTP/1.1\r\nHost : x\r\n\r\n";
    let input = [&bad[..], GET].concat();
    // hyper refuses the first head and closes: what follows it is never parsed.
    assert_eq!(through(&input, 64, 64).await, input);
    let out = through(&input, 10, 64).await;
    assert!(out.len() >= bad.len() && input.starts_with(&out), "{out:?}");
}

#[tokio::test]
async fn invalid_chunk_syntax_ends_the_connection_after_the_bad_byte() {
    let head = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
    let input = [&head[..], b"3\r\nabc\r\nzz\r\n\r\n", GET].concat();
    let expected = [&head[..], b"3\r\nabc\r\nz"].concat();
    for split in [1, 4, input.len()] {
        assert_eq!(through(&input, split, 64).await, expected, "split {split}");
    }
}

#[tokio::test]
async fn a_head_over_the_limit_goes_to_hyper_unchecked_then_eof() {
    let long = format!("GET / HTTP/1.1\r\nX-Long: {}\r\n", "a".repeat(300));
    let input = [
        long.as_bytes(),
        b"Content-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
    ]
    .concat();
    let mut guard = Guarded::new(Script::split(&input, 100), 128);
    let out = drain(&mut guard, 8192).await;
    let out = out.strip_prefix(WAKE_UP).unwrap_or(&out);
    assert!(
        out.len() > 128 && input.starts_with(out),
        "{} bytes",
        out.len()
    );
    assert!(
        out.len() < input.len(),
        "the rest of the head must not follow"
    );
}

#[tokio::test]
async fn body_bytes_that_look_like_heads_are_not_judged() {
    let body = b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n";
    let cl = format!("POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n", body.len());
    let input = [cl.as_bytes(), body, GET].concat();
    assert_eq!(through(&input, 3, 64).await, input);
    let chunked = format!(
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n",
        body.len()
    );
    let input = [chunked.as_bytes(), body, b"\r\n0\r\n\r\n", GET].concat();
    assert_eq!(through(&input, 3, 64).await, input);
}

const UPGRADE: &[u8] =
    b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
const SMUGGLED: &[u8] =
    b"POST / HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n";

#[tokio::test]
async fn without_a_signal_upgrade_requests_stay_guarded() {
    let input = [UPGRADE, SMUGGLED, b"0\r\n\r\n"].concat();
    assert_eq!(
        through(&input, 64, 64).await,
        [UPGRADE, REJECT_HEAD].concat()
    );
}

#[tokio::test]
async fn a_101_answer_opens_the_tunnel() {
    let frames = b"\x81\x05hello\r\n\r\n\x00 anything";
    let mut guard = Guarded::new(Script::open(&[GET, UPGRADE, frames].concat(), 9), 8192);
    let signal = guard.tunnel_signal();
    assert_eq!(ready_now(&mut guard), [WAKE_UP, GET, UPGRADE].concat());
    signal.answered(StatusCode::OK);
    assert_eq!(
        ready_now(&mut guard),
        b"",
        "the upgrade request is not answered yet"
    );
    signal.answered(StatusCode::SWITCHING_PROTOCOLS);
    assert_eq!(ready_now(&mut guard), frames);
}

#[tokio::test]
async fn another_answer_to_an_upgrade_request_keeps_the_checks() {
    let input = [UPGRADE, GET, SMUGGLED, b"0\r\n\r\n"].concat();
    let mut guard = Guarded::new(Script::split(&input, 5), 8192);
    let signal = guard.tunnel_signal();
    assert_eq!(ready_now(&mut guard), [WAKE_UP, UPGRADE].concat());
    signal.answered(StatusCode::NOT_FOUND);
    assert_eq!(drain(&mut guard, 64).await, [GET, REJECT_HEAD].concat());
}

#[tokio::test]
async fn connect_opens_a_tunnel_on_2xx_only() {
    let connect = b"CONNECT x:443 HTTP/1.1\r\nHost: x:443\r\n\r\n";
    let tls = b"\x16\x03\x01\x00\x05hello";
    let mut guard = Guarded::new(Script::split(&[&connect[..], tls].concat(), 64), 8192);
    let signal = guard.tunnel_signal();
    assert_eq!(ready_now(&mut guard), connect);
    signal.answered(StatusCode::OK);
    assert_eq!(drain(&mut guard, 64).await, tls);

    let mut guard = Guarded::new(Script::split(&[&connect[..], SMUGGLED].concat(), 64), 8192);
    let signal = guard.tunnel_signal();
    assert_eq!(ready_now(&mut guard), connect);
    signal.answered(StatusCode::SWITCHING_PROTOCOLS);
    // 101 hands the connection over whatever the method (hyper's rule too).
    assert_eq!(drain(&mut guard, 64).await, SMUGGLED);
    let mut guard = Guarded::new(Script::split(&[&connect[..], SMUGGLED].concat(), 64), 8192);
    let signal = guard.tunnel_signal();
    assert_eq!(ready_now(&mut guard), connect);
    signal.answered(StatusCode::FORBIDDEN);
    assert_eq!(drain(&mut guard, 64).await, REJECT_HEAD);
}

#[tokio::test]
async fn writes_pass_through() {
    let mut guard = Guarded::new(Script::default(), 8192);
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
