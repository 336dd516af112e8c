//! The request-framing guard: an IO wrapper between the client socket and hyper that checks
//! every HTTP/1 request head before hyper sees a byte of it, and refuses heads whose body
//! framing is ambiguous — the raw material of request smuggling.
//!
//! hyper 1.12 accepts, and silently normalises, requests an edge proxy must refuse: both
//! `Content-Length` and `Transfer-Encoding` (the length is dropped from the header map, so the
//! service cannot even tell), `Transfer-Encoding: chunked, chunked` or `gzip, chunked`, several
//! `Transfer-Encoding` headers, and repeated equal `Content-Length` headers. [`Guarded`] reads
//! ahead of hyper, holds each head until it is complete, and then either releases it unchanged
//! or hands hyper a fixed invalid head instead ([`REJECT_HEAD`]), which hyper answers with
//! `400 Bad Request` before closing the connection. Rules: `head.rs`.
//!
//! Between heads it follows the body (`Content-Length` bytes, or the chunked framing in
//! `chunked.rs`) so it always knows where the next head starts, also when requests are
//! pipelined. Body bytes pass straight into hyper's buffer whenever the guard has nothing
//! buffered. An HTTP/2 connection (the prior-knowledge preface) passes untouched, and so does a
//! connection once it has become a tunnel — which the guard only learns from the service through
//! a [`TunnelSignal`]; without one, every byte of the connection is checked as HTTP/1.

mod chunked;
mod head;
mod read;
mod tunnel;

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;

use self::chunked::Chunked;
use self::head::Tunnel;
pub use self::tunnel::TunnelSignal;
use self::tunnel::TunnelWatch;

/// The HTTP/2 connection preface (RFC 9113 §3.4).
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What hyper is given instead of a refused head: a NUL where the method should be, which hyper
/// answers with `400 Bad Request` and `connection: close`. Nothing follows it but EOF.
pub const REJECT_HEAD: &[u8] = b"\x00\r\n\r\n";

/// An empty line handed to hyper when the first head is slow to arrive. hyper-util's auto
/// builder must see a byte before it picks HTTP/1 and starts hyper's header timeout; the empty
/// line is skipped by hyper's parser (RFC 9112 §2.2), so the head timeout applies to the first
/// head too without releasing any byte of it.
const WAKE_UP: &[u8] = b"\r\n";

/// An IO stream whose read side only lets through HTTP/1 request heads with unambiguous
/// framing. The write side passes through untouched.
///
/// `max_head_bytes` must be at least hyper's `max_buf_size`: a head that grows past it is handed
/// to hyper as it is (hyper answers 431 by its own limit), followed by EOF, so hyper never
/// completes a head the guard has not seen whatever the limits are.
pub struct Guarded<IO> {
    /// The client stream.
    io: IO,
    /// Bytes read from the client and not yet handed to hyper: `buf[pos..end]`. Zero-filled
    /// storage, so reading into it needs no `unsafe`; reused for the connection's life.
    buf: Vec<u8>,
    /// The first byte not yet handed to hyper.
    pos: usize,
    /// The end of the bytes cleared for hyper (`pos..ok`); `ok..end` is still being judged.
    ok: usize,
    /// The end of the bytes read.
    end: usize,
    /// Bytes of the pending head (from `ok`) known not to complete it: no LF among them.
    scanned: usize,
    /// Where the connection is.
    state: State,
    /// Set by a head that may open a tunnel: hold after its body until its answer is known.
    hold: Option<(u64, Tunnel)>,
    /// Largest pending head checked before giving up on it.
    max_head: usize,
    /// Heads released to hyper so far, numbering the requests for the tunnel watch.
    requests: u64,
    /// Bytes to hand out before anything else (the wake-up line).
    prefix: &'static [u8],
    /// Whether hyper has been handed any byte yet.
    started: bool,
    /// The service's answers, when it reports them (see [`Guarded::tunnel_signal`]).
    watch: Option<TunnelWatch>,
}

/// The read side's state.
#[derive(Debug)]
enum State {
    /// The connection's first bytes: HTTP/2 preface or not.
    Preface,
    /// Collecting an HTTP/1 request head.
    Head,
    /// Inside a body with this many bytes left.
    Length(u64),
    /// Inside a chunked body.
    Chunked(Chunked),
    /// Holding everything after a request that may open a tunnel until its answer is known.
    Hold {
        /// The request's number.
        request: u64,
        /// Which answer would open the tunnel.
        tunnel: Tunnel,
    },
    /// HTTP/2 or a tunnel: everything passes.
    Pass,
    /// A head was refused: hand out what is left of the replacement head, then EOF.
    Reject(&'static [u8]),
    /// Hand out what was cleared, then EOF.
    Ending,
}

impl<IO> Guarded<IO> {
    /// Guards `io`; heads larger than `max_head_bytes` are left to hyper's own limit.
    pub fn new(io: IO, max_head_bytes: usize) -> Self {
        Guarded {
            io,
            buf: Vec::new(),
            pos: 0,
            ok: 0,
            end: 0,
            scanned: 0,
            state: State::Preface,
            hold: None,
            max_head: max_head_bytes,
            requests: 0,
            prefix: &[],
            started: false,
            watch: None,
        }
    }

    /// Links the guard to the service: report every response status on the returned signal
    /// (in request order) and the guard lets the connection become a tunnel after a 101 answer,
    /// or a 2xx answer to `CONNECT`. After a request that could open a tunnel (`Upgrade` in
    /// HTTP/1.1, or `CONNECT`) the guard holds further bytes until its answer is reported, so a
    /// service that does not report every answer stalls such connections until hyper's header
    /// timeout closes them. A miscount can stall a tunnel but never lets a head through
    /// unchecked: hyper itself stops parsing HTTP/1 after a 101 or a 2xx to `CONNECT`.
    /// Call before serving; a second call replaces the first signal.
    pub fn tunnel_signal(&mut self) -> TunnelSignal {
        let (signal, watch) = tunnel::pair();
        self.watch = Some(watch);
        signal
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &IO {
        &self.io
    }

    /// The wrapped stream, mutably (reading from it directly would confuse the guard).
    pub fn get_mut(&mut self) -> &mut IO {
        &mut self.io
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Guarded<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod hyper_tests;
#[cfg(test)]
mod tests;
