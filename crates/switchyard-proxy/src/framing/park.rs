//! Parking an idle HTTP/1 connection: the guard's side.
//!
//! The HTTP/1 server (`server::h1`) keeps a read buffer and a write buffer for as long as it
//! serves a connection, also while the connection sits idle between requests — most of what an
//! idle keep-alive connection costs. nginx frees a connection's buffers when it goes idle;
//! Switchyard does the same by *parking* it: once the connection has been idle for a moment
//! (the park wait, counted from the end of the last answer), the guard raises a
//! [`ParkSignal`]; the HTTP/1 server, waiting for a head with nothing read, then returns the
//! stream, writing nothing, and its buffers go. The connection's driver (`server::conn`) waits
//! for the socket to become readable with nothing but the stream, this guard and the service
//! in memory, and serves the stream again with the HTTP/1 server for the next request. The
//! guard itself lives on, so the keep-alive clock counts from the end of the last answer,
//! parked or not.
//!
//! The guard only raises the signal when the connection is idle in every sense the HTTP/1
//! server knows: between requests, nothing of the next one received (so the server's read
//! buffer is empty), every answer's body dropped by the server, and everything it wrote
//! flushed. Parking needs no shutdown of the stream; while the signal is up, one is not passed
//! on anyway (see `poll_shutdown`).

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::AsyncRead;

use super::timer::Phase;
use super::{Guarded, PREFACE, State};

/// A stream whose readiness for reading can be awaited without reading (and so without a
/// buffer): what a parked connection waits on.
pub trait ReadReady {
    /// Ready when a read would not block (data, EOF or an error is there); otherwise the task
    /// is woken when it would not.
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
}

impl ReadReady for tokio::net::TcpStream {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        tokio::net::TcpStream::poll_read_ready(self, cx)
    }
}

impl<IO: ReadReady> ReadReady for tokio_rustls::server::TlsStream<IO> {
    /// The socket's readiness. When the guard parks, TLS has handed out every byte it could
    /// decrypt (the last read found the socket empty), so only new bytes can wake it.
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_ref().0.poll_read_ready(cx)
    }
}

/// What a connection speaks, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Anything but the HTTP/2 preface (including nothing: a connection closed early).
    Http1,
    /// The HTTP/2 connection preface (prior knowledge, or after ALPN `h2`).
    Http2,
}

/// Raised by the guard when its connection may be parked; looked at by the HTTP/1 server each
/// time a read finds nothing while it waits for a head with an empty read buffer.
#[derive(Debug, Clone, Default)]
pub struct ParkSignal(Arc<AtomicBool>);

impl ParkSignal {
    /// Whether the guard asks for the connection to be parked now.
    pub fn wanted(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    /// Lowers the signal (the driver does, once it has taken the stream back).
    pub fn clear(&self) {
        self.0.store(false, Ordering::Release);
    }

    fn raise(&self) {
        self.0.store(true, Ordering::Release);
    }
}

/// The guard's parking state.
#[derive(Debug)]
pub(super) struct Park {
    /// How long a connection stays idle before it is parked; `None` never parks.
    after: Option<Duration>,
    /// Shared with the driver.
    signal: ParkSignal,
    /// The idle period (numbered by the requests released before it) whose park wait is over.
    done_for: u64,
    /// Whether everything written to the client has been flushed.
    pub(super) flushed: bool,
}

impl Default for Park {
    fn default() -> Self {
        Park {
            after: None,
            signal: ParkSignal::default(),
            done_for: 0,
            flushed: true,
        }
    }
}

impl Park {
    /// How long the park wait of the idle period after `requests` requests lasts, if it is
    /// still to come.
    pub(super) fn wait(&self, requests: u64) -> Option<Duration> {
        self.after.filter(|_| self.done_for != requests)
    }

    /// The park wait of the idle period after `requests` requests is over: raise the signal,
    /// unless something written is still to be flushed (then this idle period is not parked).
    pub(super) fn due(&mut self, requests: u64) {
        self.done_for = requests;
        if self.flushed {
            self.signal.raise();
        }
    }
}

impl<IO> Guarded<IO> {
    /// Lets the connection be parked once it has been idle for `after` (see the module docs);
    /// serve it with the HTTP/1 server, which returns the stream when the returned signal is
    /// raised, then clear the signal, wait with [`Guarded::poll_wake`] and serve it again. Needs
    /// the answers tracked ([`Guarded::track_answers`]): without them the guard never knows the
    /// connection is idle.
    pub fn park_after(&mut self, after: Duration) -> ParkSignal {
        self.park.after = Some(after);
        self.park.signal.clone()
    }

    /// Waits, parked, until the client sends something (or closes), or the keep-alive clock
    /// runs out; either way the connection is then served again (the HTTP/1 server reads the
    /// bytes, or the EOF the guard hands out once the clock is out).
    pub fn poll_wake(&mut self, cx: &mut Context<'_>) -> Poll<()>
    where
        IO: ReadReady,
    {
        if self.pos < self.end || self.io.poll_read_ready(cx).is_ready() {
            return Poll::Ready(());
        }
        match self.clock() {
            Some((phase, limit))
                if self
                    .timer
                    .expired(cx, phase, self.requests, limit, self.idle_from) =>
            {
                Poll::Ready(())
            }
            Some(_) => Poll::Pending,
            // No clock runs: nothing but the client can end the wait.
            None => Poll::Pending,
        }
    }

    /// The park wait of this idle period has run out (see [`Park::due`]).
    pub(super) fn park_due(&mut self) {
        self.park.due(self.requests);
    }

    /// The park wait, when the connection is idle and its park is still to come.
    pub(super) fn park_clock(&self) -> Option<(Phase, Duration)> {
        let wait = self.park.wait(self.requests)?;
        Some((Phase::Park, wait.min(self.limits.keepalive_timeout)))
    }
}

impl<IO: AsyncRead + Unpin> Guarded<IO> {
    /// Reads the connection's first bytes, as far as needed to tell the HTTP/2 preface from
    /// anything else (the first-byte clock runs). The bytes stay with the guard, which hands
    /// them out (judged) to whoever reads next.
    pub fn poll_protocol(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Protocol>> {
        loop {
            match self.state {
                State::Preface => {}
                State::Pass => return Poll::Ready(Ok(Protocol::Http2)),
                _ => return Poll::Ready(Ok(Protocol::Http1)),
            }
            let seen = &self.buf[self.ok..self.end];
            let n = seen.len().min(PREFACE.len());
            if seen[..n] != PREFACE[..n] {
                return Poll::Ready(Ok(Protocol::Http1));
            }
            if n == PREFACE.len() {
                return Poll::Ready(Ok(Protocol::Http2));
            }
            match self.fill(cx) {
                // At EOF the state is `Ending`, read as HTTP/1 above.
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                // Out of time: the state is `Ending`.
                Poll::Pending if self.timed_out(cx) => {}
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}
