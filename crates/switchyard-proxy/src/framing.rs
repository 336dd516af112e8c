//! The request-framing guard: an IO wrapper between the client socket and the HTTP/1 server
//! (Switchyard's own, `server::h1`) that checks every HTTP/1 request head before the server
//! sees a byte of it, and refuses heads whose body framing is ambiguous — the raw material of
//! request smuggling.
//!
//! An edge proxy must refuse requests whose framing two HTTP implementations could read
//! differently: both `Content-Length` and `Transfer-Encoding`, `Transfer-Encoding: chunked,
//! chunked` or `gzip, chunked`, several `Transfer-Encoding` headers, and repeated
//! `Content-Length` headers, even equal ones. The HTTP/1 server does not check for them: it
//! applies the plain framing rules, relying on this guard. [`Guarded`] reads ahead of the
//! server, holds each head until it is complete, and then either releases it unchanged or
//! hands the server a fixed invalid head instead ([`REJECT_HEAD`]), which the server answers
//! with `400 Bad Request` before closing the connection. Rules: `head.rs`.
//!
//! Heads over `max_header_bytes` or with more than `max_headers` fields are replaced too, with
//! a head the server answers with `431` ([`TOO_LARGE_HEAD`]), so both limits are exact whatever
//! the server's read buffer does; a head whose request line alone is over the limit gets `414`
//! instead ([`URI_TOO_LONG_HEAD`], which the service answers).
//!
//! Between heads it follows the body (`Content-Length` bytes, or the chunked framing in
//! `chunked.rs`) so it always knows where the next head starts, also when requests are
//! pipelined. Whenever nothing is set aside, the client's bytes are read straight into the
//! server's read buffer and judged there; only an incomplete head (or bytes held back until an
//! answer is known) is copied aside, and that buffer is freed as soon as it is empty. An HTTP/2
//! connection (the prior-knowledge preface) passes untouched, and so does a connection once it
//! has become a tunnel — which the guard only learns from the HTTP/1 server, which reports each
//! answer to it ([`Guarded::track_answers`]); without that, every byte of the connection is
//! checked as HTTP/1.
//!
//! It also keeps the client-side clocks of HTTP/1 (`timer.rs`): the first byte must come within
//! `header_timeout` of the accept, a started head must be complete within `header_timeout` of
//! its first byte, and an idle keep-alive connection is closed after `keepalive_timeout`. When
//! one runs out the guard ends the read side (EOF), which the HTTP/1 server takes as the client
//! leaving: it closes the connection without writing anything. No clock runs while a request
//! is served, while a body streams, or once the connection is HTTP/2 or a tunnel.

mod answers;
mod chunked;
mod head;
mod park;
mod read;
mod timer;

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::AsyncWrite;

use self::answers::Answers;
use self::chunked::Chunked;
use self::head::Tunnel;
use self::park::Park;
pub use self::park::{ParkSignal, Protocol, ReadReady};
use self::timer::{Phase, Timer};

/// The HTTP/2 connection preface (RFC 9113 §3.4).
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What the HTTP/1 server is given instead of a refused head: a NUL where the method should
/// be, which its head parser refuses, so it answers `400 Bad Request` with `connection: close`
/// and closes. Nothing follows it but EOF.
pub const REJECT_HEAD: &[u8] = b"\x00\r\n\r\n";

/// The start of what the HTTP/1 server is given instead of a head over the limits: a head that
/// never ends. It is followed by [`Limits::read_buf_limit`] filler bytes in one header value, so
/// the server's read buffer reaches its limit before EOF with no complete head in it, and the
/// server answers `431 Request Header Fields Too Large` and closes.
pub const TOO_LARGE_HEAD: &[u8] = b"GET / HTTP/1.1\r\nx-too-large: ";

/// The method of the head the HTTP/1 server is given instead of one whose request line alone is
/// over `max_head_bytes` (nginx answers those 414 rather than 431): the server parses it as an
/// extension method, and the service answers it with `414 URI Too Long` and closes. A client
/// sending this method itself only gets the same 414.
pub const URI_TOO_LONG_METHOD: &str = "SWITCHYARD-URI-TOO-LONG";

/// What the HTTP/1 server is given instead of a head whose request line is over the limit.
/// Nothing follows it: reads then stay pending until the server, having written the service's
/// answer, closes the connection.
pub const URI_TOO_LONG_HEAD: &[u8] =
    b"SWITCHYARD-URI-TOO-LONG / HTTP/1.1\r\nhost: uri-too-long.invalid\r\nconnection: close\r\n\r\n";

/// The smallest read-buffer limit the HTTP/1 server is given: 8 KiB, one read's worth.
const MIN_READ_BUF: usize = 8192;

/// What the guard enforces on a connection. Serve the guarded stream with the HTTP/1 server set
/// to the same limits: `server::h1::Options` with `max_buf: limits.read_buf_limit()` and
/// `max_headers: limits.max_headers`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest request head in bytes (request line, headers, final empty line); a larger one
    /// gets 431 (nginx `large_client_header_buffers`).
    pub max_head_bytes: usize,
    /// Most header fields in one head; more get 431.
    pub max_headers: usize,
    /// Time for the first byte after the accept, and for a head after its first byte.
    pub header_timeout: Duration,
    /// Time an idle keep-alive connection is kept (needs answers reported: see
    /// [`Guarded::track_answers`]).
    pub keepalive_timeout: Duration,
}

impl Default for Limits {
    /// Switchyard's `[limits]` defaults: 32 KiB, 100 headers, 10 s, 75 s.
    fn default() -> Self {
        Limits {
            max_head_bytes: 32 * 1024,
            max_headers: 100,
            header_timeout: Duration::from_secs(10),
            keepalive_timeout: Duration::from_secs(75),
        }
    }
}

impl Limits {
    /// The HTTP/1 server's read-buffer limit (`server::h1::Options::max_buf`): enough for the
    /// largest head, and at least 8 KiB. [`TOO_LARGE_HEAD`] is padded past it.
    pub fn read_buf_limit(&self) -> usize {
        self.max_head_bytes.max(MIN_READ_BUF)
    }
}

/// An IO stream whose read side only lets through HTTP/1 request heads with unambiguous
/// framing and within the limits, and ends connections whose client is too slow. The write
/// side passes through untouched (a flush may start the keep-alive clock).
///
/// The HTTP/1 server never completes a head the guard has not accepted, whatever its own
/// limits: a refused head is replaced by one the server can only refuse, then EOF (or, for a
/// request line over the limit, by a request the service answers with 414). With the server
/// set to the guard's [`Limits`] the answers are exact (400 or 431); with other limits a
/// refused client may only get a different error, or a closed connection.
pub struct Guarded<IO> {
    /// The client stream.
    io: IO,
    /// Bytes set aside, not yet handed out: `buf[pos..end]`. Zero-filled storage, so
    /// reading into it needs no `unsafe`; freed whenever it is empty.
    buf: Vec<u8>,
    /// The first byte not yet handed out.
    pos: usize,
    /// The end of the bytes cleared to be handed out (`pos..ok`); `ok..end` is still being
    /// judged.
    ok: usize,
    /// The end of the bytes read.
    end: usize,
    /// Bytes of the pending head known not to complete it: no LF among them.
    scanned: usize,
    /// Where the connection is.
    state: State,
    /// Set by a head that may open a tunnel: hold after its body until its answer is known.
    hold: Option<(u64, Tunnel)>,
    /// What is enforced.
    limits: Limits,
    /// Heads released to the HTTP/1 server so far, numbering the requests for the answers.
    requests: u64,
    /// The answers, when the HTTP/1 server reports them (see [`Guarded::track_answers`]).
    answers: Option<Answers>,
    /// The header and keep-alive clocks.
    timer: Timer,
    /// The send clock: how long a write may stay blocked on a client that reads nothing.
    send: SendClock,
    /// When an idle connection may be parked (`park.rs`).
    park: Park,
    /// Bytes handed out so far (replacements included): where the next one is in what the
    /// reader has been given.
    handed: u64,
    /// The tokens of the last head accepted, for the HTTP/1 server.
    tokens: head::Tokens,
    /// Where the idle time after the last answer starts, when the reader gave a reading of
    /// the clock for it (see [`Guarded::answer_finished`]); else the clock is read when the
    /// wait starts.
    idle_from: Option<tokio::time::Instant>,
    /// A write to the client was blocked since the last answer was reported.
    write_blocked: bool,
}

/// nginx's `send_timeout`: a write to the client that stays blocked for longer fails, and
/// the connection ends. The clock starts when a write first blocks and stops at the next
/// write that goes through; its sleep is allocated the first time a write blocks.
#[derive(Debug, Default)]
struct SendClock {
    /// The limit; `None` runs no clock.
    limit: Option<Duration>,
    /// When the blocked write must have gone through.
    deadline: Option<tokio::time::Instant>,
    /// Fires at the deadline.
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl SendClock {
    /// Looks at a write's outcome: a write blocked past the limit becomes an error.
    fn check<T>(&mut self, cx: &mut Context<'_>, r: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        let Some(limit) = self.limit else {
            return r;
        };
        if r.is_ready() {
            self.deadline = None;
            return r;
        }
        let deadline = *self
            .deadline
            .get_or_insert_with(|| tokio::time::Instant::now() + limit);
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if sleep.deadline() != deadline {
            sleep.as_mut().reset(deadline);
        }
        if std::future::Future::poll(sleep.as_mut(), cx).is_ready() {
            tracing::debug!(
                ?limit,
                "client read nothing for send_timeout: closing the connection"
            );
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "send_timeout: the client read nothing",
            )));
        }
        Poll::Pending
    }
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
    /// A head was refused: hand out what is left of the replacement head (`head`, then
    /// `filler` bytes of padding), then EOF.
    Reject {
        /// The rest of the replacement head.
        head: &'static [u8],
        /// Padding bytes still to follow it.
        filler: usize,
        /// Stall instead of EOF after it: the replacement is a request the service answers
        /// (and an EOF would make the HTTP/1 server take the client for gone and drop it
        /// unanswered).
        stall: bool,
    },
    /// The replacement for a 414 was handed out: reads stay pending until the HTTP/1 server,
    /// having written the service's answer (`connection: close`), closes the connection.
    Stall,
    /// Hand out what was cleared, then EOF.
    Ending,
}

impl<IO> Guarded<IO> {
    /// Guards `io` with `limits`. The connection's clocks start now: call it when the connection
    /// is accepted (or its TLS handshake is done), within a Tokio runtime.
    pub fn new(io: IO, limits: Limits) -> Self {
        Guarded {
            io,
            buf: Vec::new(),
            pos: 0,
            ok: 0,
            end: 0,
            scanned: 0,
            state: State::Preface,
            hold: None,
            limits,
            requests: 0,
            answers: None,
            timer: Timer::new(),
            send: SendClock::default(),
            park: Park::default(),
            handed: 0,
            tokens: head::Tokens::default(),
            idle_from: None,
            write_blocked: false,
        }
    }

    /// The tokens of the head the reader has at the start of its `available` unused bytes,
    /// when the guard kept them (the last head it accepted, all of it handed out): its request
    /// line and length as from `switchyard_h1::tokenize_request` on those bytes, with its
    /// fields (name start and length, value start and length) swapped into `fields`. Every
    /// byte the reader was handed must be among the ones it used or the `available` ones.
    pub(crate) fn take_tokens(
        &mut self,
        available: usize,
        fields: &mut Vec<[usize; 4]>,
    ) -> Option<(switchyard_h1::RequestLine, usize)> {
        let at = self.handed.checked_sub(available as u64)?;
        self.tokens.take(at, available, fields)
    }

    /// Lets go of the kept tokens (when the connection is parked).
    pub(crate) fn release_tokens(&mut self) {
        self.tokens.release();
    }

    /// Ends the connection when a write to the client stays blocked for longer than `limit`
    /// (nginx `send_timeout`).
    pub fn with_send_timeout(mut self, limit: Duration) -> Self {
        self.send.limit = Some(limit);
        self
    }

    /// Has the guard follow the answers, which the reader then reports, every one in request
    /// order: [`answered`](Guarded::answered) when it has an answer's status, and
    /// [`answer_finished`](Guarded::answer_finished) once it is done with the answer's body
    /// (before it flushes the answer's last bytes). The guard then lets the connection become a
    /// tunnel after a 101 answer, or a 2xx answer to `CONNECT`, and starts the keep-alive clock
    /// once an answer is complete. After a request that could open a tunnel (`Upgrade` in
    /// HTTP/1.1, or `CONNECT`) the guard holds further bytes until its answer is reported: a
    /// read meanwhile is `Pending` without a waker, so the reader must read again after
    /// reporting, and a reader that does not report stalls such connections. A miscount can
    /// stall a tunnel but never lets a head through unchecked: the HTTP/1 server itself stops
    /// parsing HTTP/1 after a 101 or a 2xx to `CONNECT`. Without this no keep-alive clock runs
    /// (the header clocks do). Call before serving.
    pub fn track_answers(&mut self) {
        self.answers = Some(Answers::default());
    }

    /// Records that the connection's next unanswered request was answered with `status`
    /// (see [`track_answers`](Guarded::track_answers)).
    pub fn answered(&mut self, status: http::StatusCode) {
        if let Some(answers) = &mut self.answers {
            answers.answered(status);
        }
        self.write_blocked = false;
    }

    /// Records that the reader is done with the body of the oldest unfinished answer (sent
    /// whole, or given up on); the keep-alive clock may start at the next flush. `complete_at`
    /// is a clock reading taken when the whole answer was at hand, if the reader has one: the
    /// idle time counts from it (no write to the client having blocked since the answer, its
    /// bytes went out at once) instead of from a new reading.
    pub fn answer_finished(&mut self, complete_at: Option<tokio::time::Instant>) {
        if let Some(answers) = &mut self.answers {
            answers.finished_one();
        }
        self.idle_from = if self.write_blocked {
            None
        } else {
            complete_at
        };
    }

    /// A write to the client did not go through at once: the idle time, if it starts after
    /// this answer, counts from when the answer has gone out, not from a reading before.
    fn blocked(&mut self) {
        self.write_blocked = true;
        self.idle_from = None;
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &IO {
        &self.io
    }

    /// The wrapped stream, mutably (reading from it directly would confuse the guard).
    pub fn get_mut(&mut self) -> &mut IO {
        &mut self.io
    }

    /// Whether the connection is idle: between requests, nothing of the next one received, and
    /// every answer complete.
    fn idle(&self) -> bool {
        matches!(self.state, State::Head)
            && self.end == self.pos
            && self.requests > 0
            && self
                .answers
                .as_ref()
                .is_some_and(|a| a.finished(self.requests))
    }

    /// The clock that runs while the guard waits for the client now, if any.
    fn clock(&self) -> Option<(Phase, Duration)> {
        let started = self.end > self.ok;
        let limits = &self.limits;
        match self.state {
            State::Preface | State::Head if started => Some((Phase::Head, limits.header_timeout)),
            State::Preface => Some((Phase::First, limits.header_timeout)),
            State::Head if self.requests == 0 => Some((Phase::First, limits.header_timeout)),
            State::Head if self.idle() => self
                .park_clock()
                .or(Some((Phase::Idle, limits.keepalive_timeout))),
            _ => None,
        }
    }

    /// Called when the client has nothing more to read: whether the connection's clock has run
    /// out (the task is woken when it will).
    fn timed_out(&mut self, cx: &mut Context<'_>) -> bool {
        let (phase, limit) = loop {
            let Some((phase, limit)) = self.clock() else {
                return false;
            };
            if !self
                .timer
                .expired(cx, phase, self.requests, limit, self.idle_from)
            {
                return false;
            }
            if phase != Phase::Park {
                break (phase, limit);
            }
            // The connection may be parked now; the keep-alive clock goes on from the start
            // of the park wait.
            self.park_due();
        };
        tracing::debug!(?phase, ?limit, "client too slow: closing the connection");
        // Nothing cleared is left (it is handed out before reading); drop what was pending.
        self.end = self.ok;
        self.state = State::Ending;
        self.release_buffer();
        true
    }

    /// Frees the set-aside buffer once everything in it has been handed out.
    fn release_buffer(&mut self) {
        if self.pos == self.end {
            self.pos = 0;
            self.ok = 0;
            self.end = 0;
            self.buf = Vec::new();
        }
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Guarded<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.park.flushed = false;
        let r = Pin::new(&mut this.io).poll_write(cx, buf);
        if r.is_pending() {
            this.blocked();
        }
        this.send.check(cx, r)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.park.flushed = false;
        let r = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        if r.is_pending() {
            this.blocked();
        }
        this.send.check(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let flushed = Pin::new(&mut this.io).poll_flush(cx);
        if flushed.is_pending() {
            this.blocked();
        }
        let flushed = this.send.check(cx, flushed);
        if let Poll::Ready(Ok(())) = flushed {
            this.park.flushed = true;
        }
        // The HTTP/1 server drops a finished answer's body (and reports it), writes the
        // answer's last bytes and flushes: the idle wait starts here, so the keep-alive clock
        // runs without the task being woken to read.
        if flushed.is_ready() && this.idle() && this.timed_out(cx) {
            // Already over: let the HTTP/1 server read the EOF.
            cx.waker().wake_by_ref();
        }
        flushed
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // The HTTP/1 server parks a connection by returning the stream, never by shutting it
        // down: a shutdown always closes.
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod server_tests;
#[cfg(test)]
mod tests;
