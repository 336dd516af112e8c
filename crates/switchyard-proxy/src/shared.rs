//! What the request path shares with the control plane: the snapshot pointer and live state.

use std::sync::atomic::{AtomicUsize, Ordering};

use arc_swap::ArcSwap;
use switchyard_core::{Registry, Snapshot};
use tokio::sync::Notify;

use crate::metrics::Metrics;

/// State shared by every connection task and the control plane.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The one routing snapshot; the control plane is its only writer.
    pub(crate) snapshot: ArcSwap<Snapshot>,
    /// Live per-server and per-pool state, reused by every snapshot built.
    pub(crate) registry: Registry,
    /// Open client connections, so a graceful stop knows when it is done.
    pub(crate) connections: ConnCounter,
    /// Per-client rate limiters, kept across snapshot swaps (synced by the control plane).
    pub(crate) rate_limits: crate::ratelimit::RateLimiters,
    /// Request, retry and control-plane counters (lock-free on the request path).
    pub(crate) metrics: Metrics,
    /// The buffered access log; `None` sends access lines to `tracing` (an embedding
    /// program's default) or, with `[log] access = false`, nowhere.
    pub(crate) access: Option<crate::access_log::AccessLog>,
}

/// Counts open client connections and wakes a waiter when none is left.
#[derive(Debug, Default)]
pub(crate) struct ConnCounter {
    open: AtomicUsize,
    idle: Notify,
}

/// Holds one connection's place in the count.
#[derive(Debug)]
pub(crate) struct ConnGuard<'a>(&'a ConnCounter);

impl ConnCounter {
    /// Counts a new connection until the guard drops.
    pub(crate) fn open(&self) -> ConnGuard<'_> {
        self.open.fetch_add(1, Ordering::Relaxed);
        ConnGuard(self)
    }

    /// Connections open now.
    pub(crate) fn count(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// Waits until no connection is open.
    pub(crate) async fn wait_idle(&self) {
        loop {
            let notified = self.idle.notified();
            if self.count() == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for ConnGuard<'_> {
    fn drop(&mut self) {
        if self.0.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// Resolves once the stop flag turns true (never, if the flag's sender is gone: dropping every
/// handle does not stop a running proxy).
pub(crate) async fn stopped(rx: &mut tokio::sync::watch::Receiver<bool>) {
    if rx.wait_for(|s| *s).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Drives a client or admin connection to its end; once `stop` turns true it is asked to finish
/// gracefully (HTTP/1: close after the response in flight; HTTP/2: GOAWAY) and then awaited.
pub(crate) async fn serve_until_stopped<C>(
    conn: C,
    stop: &mut tokio::sync::watch::Receiver<bool>,
) -> Result<(), C::Error>
where
    C: hyper_util::server::graceful::GracefulConnection,
{
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => r,
        _ = stopped(stop) => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    }
}
