//! The upstream connection pool: kept-alive HTTP/1.1 connections to each app server.
//!
//! A connection is a plain TCP stream with its read buffer ([`Conn`]); the request's own task
//! writes the request and reads the response on it with the `switchyard-h1` codec
//! (`exchange`), and the response body streams from it (`response`), so no task and no channel
//! stand between the client and the upstream. Because the request path writes the bytes
//! itself, it knows exactly whether any byte of a request reached the connection: that is what
//! makes retries of non-idempotent requests safe.
//!
//! Idle connections wait in a stack per server, the most recently returned taken first; a
//! connection goes back only when its response was read to the end with nothing left over, so
//! a reused connection is always between two messages. An idle connection keeps its read
//! buffer (up to [`KEEP_BUF`]). Each stack is attached to its server's live state when a
//! snapshot naming the server is built, so the request path reaches it from the server it
//! picked: no map, no look-up, and nothing to keep in step with the snapshot.

pub(crate) mod exchange;
pub(crate) mod passed;
pub(crate) mod response;

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::BytesMut;
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
    /// Idle connections, the oldest at the front. A request takes the newest: under a steady
    /// load the same few connections carry the requests, their sockets and buffers still in
    /// the caches of this process and of the upstream (nginx's keep-alive cache is used the
    /// same way; taking the oldest would cycle through every connection a peak opened). Those
    /// at the old end that stay idle past the idle timeout are closed as requests go by.
    idle: Mutex<VecDeque<IdleConn>>,
    /// `max_idle_per_server`: at most this many idle connections are kept.
    max_idle: usize,
}

impl std::fmt::Debug for ServerConns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConns")
            .field("addr", &self.addr)
            .field("idle", &self.idle().len())
            .finish()
    }
}

impl ServerConns {
    fn new(addr: SocketAddr, cfg: &UpstreamConfig) -> Self {
        ServerConns {
            addr,
            idle: Mutex::new(VecDeque::new()),
            max_idle: cfg.max_idle_per_server,
        }
    }

    fn idle(&self) -> MutexGuard<'_, VecDeque<IdleConn>> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A connection ready for a request: the newest pooled one that is still usable (idle for
    /// less than `cfg.idle_timeout` at `now`, not closed by the upstream), else a new one. The
    /// oldest idle connection is closed when it has been idle too long.
    pub(crate) async fn checkout(
        &self,
        cfg: &UpstreamConfig,
        now: Instant,
    ) -> Result<Conn, FailureKind> {
        let stale = |idle: &IdleConn| now.saturating_duration_since(idle.since) >= cfg.idle_timeout;
        loop {
            // Connections leave the stack under the lock and are closed after it.
            let (newest, oldest) = {
                let mut idle = self.idle();
                let newest = idle.pop_back();
                let oldest = if idle.front().is_some_and(stale) {
                    idle.pop_front()
                } else {
                    None
                };
                (newest, oldest)
            };
            drop(oldest);
            match newest {
                None => break,
                Some(idle) if stale(&idle) || !idle.conn.is_usable() => {}
                Some(idle) => return Ok(idle.conn),
            }
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
        if self.max_idle == 0 || !conn.buf.is_empty() {
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
        // When the stack is full, the oldest connection makes room (and is closed after the
        // lock).
        let _oldest = {
            let mut idle = self.idle();
            let oldest = if idle.len() >= self.max_idle {
                idle.pop_front()
            } else {
                None
            };
            idle.push_back(IdleConn { conn, since: now });
            oldest
        };
    }

    /// Closes every idle connection (used when a pool goes idle after draining).
    pub(crate) fn close_idle(&self) -> usize {
        let closed = std::mem::take(&mut *self.idle());
        closed.len()
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    /// A new pooled connection to `listener`, and the upstream's end of it.
    async fn pair(
        conns: &ServerConns,
        cfg: &UpstreamConfig,
        listener: &TcpListener,
    ) -> (Conn, TcpStream) {
        let conn = conns.connect(cfg).await.expect("connect");
        let (server, _) = listener.accept().await.expect("accept");
        (conn, server)
    }

    /// Whether the upstream's end reads the connection's close (EOF).
    async fn closed(server: &mut TcpStream) -> bool {
        let mut byte = [0u8; 1];
        matches!(server.read(&mut byte).await, Ok(0))
    }

    #[tokio::test]
    async fn the_newest_idle_connection_is_taken_and_old_ones_are_closed() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let cfg = UpstreamConfig {
            max_idle_per_server: 2,
            idle_timeout: Duration::from_secs(10),
            ..UpstreamConfig::default()
        };
        let conns = ServerConns::new(listener.local_addr().expect("addr"), &cfg);
        let (a, mut server_a) = pair(&conns, &cfg, &listener).await;
        let (b, mut server_b) = pair(&conns, &cfg, &listener).await;
        let (c, _server_c) = pair(&conns, &cfg, &listener).await;
        let local = |conn: &Conn| conn.stream.local_addr().expect("local addr");
        let (b_addr, c_addr) = (local(&b), local(&c));
        let t0 = Instant::now();
        let secs = Duration::from_secs;
        conns.checkin(a, t0);
        conns.checkin(b, t0 + secs(1));
        // The stack is full: the oldest makes room and is closed.
        conns.checkin(c, t0 + secs(2));
        assert!(closed(&mut server_a).await, "the oldest is closed");

        // The newest is taken first, and goes back on top.
        let got = conns.checkout(&cfg, t0 + secs(3)).await.expect("a conn");
        assert_eq!(local(&got), c_addr);
        assert!(got.reused);
        conns.checkin(got, t0 + secs(3));

        // b has now been idle past the timeout: it is closed as the next request goes by,
        // which takes c (idle 8.5 s).
        let t = t0 + Duration::from_millis(11_500);
        let got = conns.checkout(&cfg, t).await.expect("a conn");
        assert_eq!(local(&got), c_addr);
        assert!(closed(&mut server_b).await, "the stale one is closed");
        assert_eq!(conns.idle().len(), 0, "b was {b_addr}");

        // Nothing idle: a new connection.
        let fresh = conns.checkout(&cfg, t).await.expect("a conn");
        assert!(!fresh.reused);
        let _server = listener.accept().await.expect("accept");
    }
}
