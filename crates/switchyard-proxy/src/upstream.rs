//! The upstream connection pool: kept-alive HTTP/1.1 connections to each app server.
//!
//! A connection is a plain TCP stream with its read buffer ([`Conn`]); the request's own task
//! writes the request and reads the response on it with the `switchyard-h1` codec
//! (`exchange`), and the response body streams from it (`response`), so no task and no channel
//! stand between the client and the upstream. Because the request path writes the bytes
//! itself, it knows exactly whether any byte of a request reached the connection: that is what
//! makes retries of non-idempotent requests safe.
//!
//! Idle connections wait in a lock-free queue per server; a connection goes back to its queue
//! only when its response was read to the end with nothing left over, so a reused connection
//! is always between two messages. An idle connection holds no read buffer. Each queue is
//! attached to its server's live state when a snapshot naming the server is built, so the
//! request path reaches it from the server it picked: no map, no look-up, and nothing to keep
//! in step with the snapshot.

pub(crate) mod exchange;
pub(crate) mod passed;
pub(crate) mod response;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;
use crossbeam_queue::ArrayQueue;
use switchyard_config::UpstreamConfig;
use switchyard_core::retry::FailureKind;
use switchyard_core::{ServerState, Snapshot};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::alarm::Alarm;

/// The largest read buffer an idle connection keeps (the head reader makes room for 8 KiB).
const KEEP_BUF: usize = 16 * 1024;

/// One upstream connection: the stream and what was read from it but not consumed yet.
#[derive(Debug)]
pub(crate) struct Conn {
    /// The TCP stream.
    pub(crate) stream: TcpStream,
    /// Bytes read and not yet consumed; empty while idle (its room kept, up to [`KEEP_BUF`]).
    /// A request's head is encoded in it, and written from it, before the response is read.
    pub(crate) buf: BytesMut,
    /// True when the connection carried an earlier request.
    pub(crate) reused: bool,
    /// Watches each response's deadline (kept with the connection, so that consecutive
    /// requests on it reuse one timer).
    pub(crate) alarm: Alarm,
}

impl Conn {
    /// True when an idle connection can carry a request: the upstream has not closed it and
    /// sent nothing unasked. Costs no system call unless the connection became readable.
    fn is_usable(&self) -> bool {
        let mut probe = [0u8; 1];
        matches!(self.stream.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }
}

struct IdleConn {
    conn: Conn,
    since: Instant,
}

/// The connections to one upstream server. Its timeouts are not kept here but passed in by
/// each request from the service that routed it: a reload changes them by storing the next
/// snapshot, never by writing to an object the snapshot in force shares.
pub(crate) struct ServerConns {
    addr: SocketAddr,
    idle: ArrayQueue<IdleConn>,
    /// False when `max_idle_per_server = 0`: every connection is closed after its response.
    pooling: bool,
}

impl std::fmt::Debug for ServerConns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConns")
            .field("addr", &self.addr)
            .field("idle", &self.idle.len())
            .finish()
    }
}

impl ServerConns {
    fn new(addr: SocketAddr, cfg: &UpstreamConfig) -> Self {
        ServerConns {
            addr,
            idle: ArrayQueue::new(cfg.max_idle_per_server.max(1)),
            pooling: cfg.max_idle_per_server > 0,
        }
    }

    /// A connection ready for a request: a pooled one if any is still usable (idle for less
    /// than `cfg.idle_timeout` at `now`), else a new one.
    pub(crate) async fn checkout(
        &self,
        cfg: &UpstreamConfig,
        now: Instant,
    ) -> Result<Conn, FailureKind> {
        while let Some(idle) = self.idle.pop() {
            if now.saturating_duration_since(idle.since) >= cfg.idle_timeout
                || !idle.conn.is_usable()
            {
                continue;
            }
            return Ok(idle.conn);
        }
        self.connect(cfg).await
    }

    /// A fresh connection within `cfg.connect_timeout` (a WebSocket handshake takes one that
    /// is never pooled).
    pub(crate) async fn connect(&self, cfg: &UpstreamConfig) -> Result<Conn, FailureKind> {
        let timeout = cfg.connect_timeout;
        let stream = match tokio::time::timeout(timeout, TcpStream::connect(self.addr)).await {
            Err(_) => return Err(FailureKind::ConnectTimeout),
            Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => {
                return Err(FailureKind::ConnectRefused);
            }
            Ok(Err(e)) => {
                tracing::debug!(upstream = %self.addr, error = %e, "connect failed");
                return Err(FailureKind::ConnectError);
            }
            Ok(Ok(s)) => s,
        };
        let _ = stream.set_nodelay(true);
        Ok(Conn {
            stream,
            buf: BytesMut::new(),
            reused: false,
            alarm: Alarm::default(),
        })
    }

    /// Returns a connection whose last response was read to the end with nothing left over,
    /// idle from `now`.
    pub(crate) fn checkin(&self, mut conn: Conn, now: Instant) {
        if !self.pooling || !conn.buf.is_empty() {
            return;
        }
        // An idle connection keeps its buffer (one read's worth) for its next request: the
        // next head is encoded in it, and the next response read into it, without
        // allocating, once the last response's head, which shares it, is gone. A larger one
        // is let go.
        if conn.buf.capacity() > KEEP_BUF {
            conn.buf = BytesMut::new();
        }
        conn.reused = true;
        let _ = self.idle.push(IdleConn { conn, since: now });
    }

    /// Closes every idle connection (used when a pool goes idle after draining).
    pub(crate) fn close_idle(&self) -> usize {
        let mut n = 0;
        while self.idle.pop().is_some() {
            n += 1;
        }
        n
    }
}

/// Gives every server of `snapshot` that has none its connection queue (a server that has one
/// keeps it, untouched: the snapshot in force may be using it). Control plane only, before the
/// snapshot is stored: the request path then reaches a server's connections from the server
/// it picked. A server that leaves the config takes its queue with it once no snapshot names
/// it any more, and its idle connections close then.
pub(crate) fn attach(snapshot: &Snapshot) {
    for svc in &snapshot.services {
        let cfg = &svc.config.upstream;
        for server in svc.pools.iter().flat_map(|p| p.servers.iter()) {
            let state = &server.state;
            state.attach_with(|| Arc::new(ServerConns::new(state.addr, cfg)));
        }
    }
}

/// The connection queue of a server (attached when its first snapshot was built).
pub(crate) fn conns(state: &ServerState) -> Option<&ServerConns> {
    state.attached::<ServerConns>()
}
