//! The upstream connection pool: kept-alive HTTP/1.1 connections to each app server.
//!
//! Written over `hyper::client::conn::http1` rather than the legacy pooled client so that the
//! request path knows exactly what happened to a request: a connect failure leaves the request
//! in our hands (nothing sent), and a pooled connection that closed before the request was
//! written hands the request back (`TrySendError::take_message`). That distinction is what
//! makes retries of non-idempotent requests safe.
//!
//! Idle connections wait in a lock-free queue per server; a connection goes back to its queue
//! only when the response body has been read to the end, so a reused connection is always
//! between two messages. The queues live in a map behind an `ArcSwap`, written only when the
//! control plane adds servers.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use crossbeam_queue::ArrayQueue;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use switchyard_config::UpstreamConfig;
use switchyard_core::retry::FailureKind;
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::body::UpstreamBody;

/// A connection ready to carry one request.
pub(crate) type Sender = SendRequest<UpstreamBody>;

struct IdleConn {
    sender: Sender,
    since: Instant,
}

/// The connections to one upstream server.
pub(crate) struct ServerConns {
    addr: SocketAddr,
    idle: ArrayQueue<IdleConn>,
    /// False when `max_idle_per_server = 0`: every connection is closed after its response.
    pooling: bool,
    connect_timeout_ms: AtomicU64,
    idle_timeout_ms: AtomicU64,
}

impl std::fmt::Debug for ServerConns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConns")
            .field("addr", &self.addr)
            .field("idle", &self.idle.len())
            .finish()
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl ServerConns {
    fn new(addr: SocketAddr, cfg: &UpstreamConfig) -> Self {
        ServerConns {
            addr,
            idle: ArrayQueue::new(cfg.max_idle_per_server.max(1)),
            pooling: cfg.max_idle_per_server > 0,
            connect_timeout_ms: AtomicU64::new(millis(cfg.connect_timeout)),
            idle_timeout_ms: AtomicU64::new(millis(cfg.idle_timeout)),
        }
    }

    fn update(&self, cfg: &UpstreamConfig) {
        self.connect_timeout_ms
            .store(millis(cfg.connect_timeout), Ordering::Relaxed);
        self.idle_timeout_ms
            .store(millis(cfg.idle_timeout), Ordering::Relaxed);
    }

    /// A connection ready for a request: a pooled one if any is still usable, else a new one.
    /// The flag is true for a reused connection.
    pub(crate) async fn checkout(&self) -> Result<(Sender, bool), FailureKind> {
        let idle_timeout = Duration::from_millis(self.idle_timeout_ms.load(Ordering::Relaxed));
        while let Some(mut conn) = self.idle.pop() {
            if conn.sender.is_closed() || conn.since.elapsed() >= idle_timeout {
                continue;
            }
            // The previous response is complete, so readiness is at most one poll away; an
            // error means the connection closed meanwhile.
            if conn.sender.ready().await.is_ok() {
                return Ok((conn.sender, true));
            }
        }
        self.connect().await.map(|s| (s, false))
    }

    async fn connect(&self) -> Result<Sender, FailureKind> {
        self.open(false).await
    }

    /// A fresh connection that may be upgraded (a WebSocket handshake); never pooled.
    pub(crate) async fn connect_upgradable(&self) -> Result<Sender, FailureKind> {
        self.open(true).await
    }

    async fn open(&self, upgrades: bool) -> Result<Sender, FailureKind> {
        let timeout = Duration::from_millis(self.connect_timeout_ms.load(Ordering::Relaxed));
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
        let (sender, conn) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|_| FailureKind::ConnectError)?;
        let addr = self.addr;
        tokio::spawn(async move {
            let result = if upgrades {
                conn.with_upgrades().await
            } else {
                conn.await
            };
            if let Err(e) = result {
                tracing::debug!(upstream = %addr, error = %e, "upstream connection ended");
            }
        });
        Ok(sender)
    }

    /// Returns a connection whose last response was read to the end.
    pub(crate) fn checkin(&self, sender: Sender) {
        if !self.pooling || sender.is_closed() {
            return;
        }
        let _ = self.idle.push(IdleConn {
            sender,
            since: Instant::now(),
        });
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

/// Every server's connections, keyed by address.
#[derive(Debug, Default)]
pub(crate) struct Upstreams {
    map: ArcSwap<HashMap<SocketAddr, Arc<ServerConns>>>,
}

impl Upstreams {
    /// The connections of the server at `addr`, if the control plane has registered it.
    pub(crate) fn get(&self, addr: SocketAddr) -> Option<Arc<ServerConns>> {
        self.map.load().get(&addr).cloned()
    }

    /// Makes the map hold exactly `servers` (with their settings); keeps existing pools.
    /// Control plane only.
    pub(crate) fn sync(&self, servers: &[(SocketAddr, UpstreamConfig)]) {
        let current = self.map.load_full();
        let mut next = HashMap::with_capacity(servers.len());
        for (addr, cfg) in servers {
            if next.contains_key(addr) {
                continue;
            }
            let conns = match current.get(addr) {
                Some(c) => {
                    c.update(cfg);
                    c.clone()
                }
                None => Arc::new(ServerConns::new(*addr, cfg)),
            };
            next.insert(*addr, conns);
        }
        for (addr, old) in current.iter() {
            if !next.contains_key(addr) {
                old.close_idle();
            }
        }
        self.map.store(Arc::new(next));
    }
}
