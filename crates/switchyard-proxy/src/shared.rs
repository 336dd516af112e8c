//! What the request path shares with the control plane: the snapshot pointer and live state.

use std::sync::Arc;
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
    /// The counters that belong to no service (unrouted requests, switches, reloads); a
    /// service's and a pool's own counters are carried by the snapshot.
    pub(crate) metrics: Metrics,
    /// Upgrade requests from the admin API (`POST /upgrade`) to the signal loop that can carry
    /// them out; each carries where to answer (the new process's pid, or why it failed).
    pub(crate) upgrades: UpgradeRequests,
    /// The buffered access log; `None` sends access lines to `tracing` (an embedding
    /// program's default) or, with `[log] access = false`, nowhere.
    pub(crate) access: Option<crate::access_log::AccessLog>,
}

/// Counts open client connections and wakes a waiter when none is left.
#[derive(Debug, Default)]
pub(crate) struct ConnCounter {
    open: AtomicUsize,
    idle: Notify,
    /// Idle HTTP/1 connections parked now (`server::conn`).
    parked: AtomicUsize,
}

/// Holds one parked connection's place in the parked count.
#[derive(Debug)]
pub(crate) struct ParkedGuard<'a>(&'a AtomicUsize);

impl Drop for ParkedGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl ConnCounter {
    /// Connections open now.
    pub(crate) fn count(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// Counts a new connection of `shared` until the returned guard drops (a guard that can
    /// move into the connection's task).
    pub(crate) fn open(shared: &Arc<Shared>) -> OpenConn {
        shared.connections.open.fetch_add(1, Ordering::Relaxed);
        OpenConn(shared.clone())
    }

    /// Counts a parked connection until the guard drops.
    pub(crate) fn parked(&self) -> ParkedGuard<'_> {
        self.parked.fetch_add(1, Ordering::Relaxed);
        ParkedGuard(&self.parked)
    }

    /// Connections parked now.
    pub(crate) fn parked_count(&self) -> usize {
        self.parked.load(Ordering::Relaxed)
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

/// Holds one connection's place in the count of a [`Shared`]'s connections.
#[derive(Debug)]
pub(crate) struct OpenConn(Arc<Shared>);

impl Drop for OpenConn {
    fn drop(&mut self) {
        self.0.connections.close();
    }
}

impl ConnCounter {
    /// One connection fewer; wakes the waiter when none is left.
    fn close(&self) {
        if self.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.idle.notify_waiters();
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

/// The pause between failed `accept()` calls on one listener: 10 ms, doubling to 1 s while they
/// keep failing (out of file descriptors, say), back to nothing after a success. The first
/// failure of a streak is logged at warn, then one line per second of failures at most.
#[derive(Debug, Default)]
pub(crate) struct AcceptBackoff {
    delay: std::time::Duration,
    failures: u64,
    logged: Option<tokio::time::Instant>,
}

impl AcceptBackoff {
    /// An accept succeeded.
    pub(crate) fn succeeded(&mut self) {
        if self.failures > 0 {
            tracing::info!(
                listener_failures = self.failures,
                "accepting connections again"
            );
        }
        self.delay = std::time::Duration::ZERO;
        self.failures = 0;
    }

    /// An accept failed: waits before the next one.
    pub(crate) async fn failed(&mut self, listener: &str, error: &std::io::Error) {
        use std::time::Duration;
        self.failures += 1;
        self.delay = (self.delay * 2).clamp(Duration::from_millis(10), Duration::from_secs(1));
        let now = tokio::time::Instant::now();
        if self
            .logged
            .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1))
        {
            self.logged = Some(now);
            tracing::warn!(listener, error = %error, failures = self.failures, pause_ms = self.delay.as_millis() as u64, "accept failed; pausing this listener");
        }
        tokio::time::sleep(self.delay).await;
    }
}

/// Raises the soft limit on open files to the hard limit (a proxy with `max_connections` of
/// 10,000 needs more than the usual 1,024). Returns the soft limit before and after.
pub fn raise_fd_limit() -> std::io::Result<(Option<u64>, Option<u64>)> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let now = getrlimit(Resource::Nofile);
    // No hard limit: Linux still caps open files (fs.nr_open, 1,048,576 by default).
    let hard = now.maximum.unwrap_or(1 << 20);
    if now.current.is_some_and(|soft| soft >= hard) || now.current.is_none() {
        return Ok((now.current, now.current));
    }
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(hard),
            maximum: now.maximum,
        },
    )?;
    Ok((now.current, Some(hard)))
}

/// Where an upgrade request is answered: the new process's pid, or why it failed.
pub(crate) type UpgradeAnswer = tokio::sync::oneshot::Sender<Result<u32, String>>;

/// The channel of upgrade requests; the receiver is taken by the one loop that can upgrade.
#[derive(Debug)]
pub(crate) struct UpgradeRequests {
    /// Where the admin API sends requests.
    pub(crate) tx: tokio::sync::mpsc::Sender<UpgradeAnswer>,
    /// Taken by `signals::serve_until_signal_or_upgrade`.
    pub(crate) rx: std::sync::Mutex<Option<tokio::sync::mpsc::Receiver<UpgradeAnswer>>>,
}

impl Default for UpgradeRequests {
    fn default() -> Self {
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        UpgradeRequests {
            tx,
            rx: std::sync::Mutex::new(Some(rx)),
        }
    }
}
