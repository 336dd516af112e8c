//! What a [`TestApp`](super::TestApp) saw: counters and recorded POST bodies that outlive a
//! kill and a restart of the app, so a test can tell whether a request reached it twice.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;

/// Counters and recorded bodies of one test app, shared by all its incarnations.
///
/// Health checks (`GET`/`HEAD /health`) are counted apart from other requests, so the proxy's
/// health checker does not disturb a test's request counts.
#[derive(Debug, Default)]
pub struct Recorder {
    /// Requests received, health checks excepted.
    requests: AtomicU64,
    /// Health checks received.
    health_checks: AtomicU64,
    /// TCP connections accepted, over the app's whole life.
    connections: AtomicU64,
    /// TCP connections open right now (a gauge: goes down when one closes or is killed).
    open_connections: AtomicU64,
    /// Requests being handled right now (a gauge), so a test can wait for a slow request to
    /// arrive instead of sleeping.
    in_flight: AtomicU64,
    /// Requests per path (query left out), health checks included.
    paths: Mutex<HashMap<String, u64>>,
    /// Bodies of recording POSTs, in arrival order, with their path.
    posts: Mutex<Vec<(String, Bytes)>>,
}

/// Locks a mutex, ignoring poisoning: a panicking test thread must not hide the counts.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Recorder {
    /// A fresh recorder with every count at zero.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Requests received, health checks excepted.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }

    /// Health checks (`GET`/`HEAD /health`) received.
    pub fn health_checks(&self) -> u64 {
        self.health_checks.load(Ordering::SeqCst)
    }

    /// TCP connections accepted so far (health-checker connections included).
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::SeqCst)
    }

    /// TCP connections open right now.
    pub fn open_connections(&self) -> u64 {
        self.open_connections.load(Ordering::SeqCst)
    }

    /// Requests being handled right now.
    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// Requests received for `path` (without query), health checks included.
    pub fn count_path(&self, path: &str) -> u64 {
        lock(&self.paths).get(path).copied().unwrap_or(0)
    }

    /// Every recorded POST body (`/echo`, `/order`, `/slow-post`, `/drop`), in arrival order.
    pub fn posts(&self) -> Vec<Bytes> {
        lock(&self.posts).iter().map(|(_, b)| b.clone()).collect()
    }

    /// The recorded POST bodies sent to `path`, in arrival order.
    pub fn posts_to(&self, path: &str) -> Vec<Bytes> {
        lock(&self.posts)
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, b)| b.clone())
            .collect()
    }

    /// Sets every running total back to zero and forgets recorded bodies; the live gauges
    /// (open connections, requests in flight) are left alone.
    pub fn reset(&self) {
        self.requests.store(0, Ordering::SeqCst);
        self.health_checks.store(0, Ordering::SeqCst);
        self.connections.store(0, Ordering::SeqCst);
        lock(&self.paths).clear();
        lock(&self.posts).clear();
    }

    /// Counts a request; the guard keeps it in flight until dropped (also when it is aborted).
    pub(crate) fn on_request(self: &Arc<Self>, path: &str, health_check: bool) -> Gauge {
        if health_check {
            self.health_checks.fetch_add(1, Ordering::SeqCst);
        } else {
            self.requests.fetch_add(1, Ordering::SeqCst);
        }
        *lock(&self.paths).entry(path.to_owned()).or_default() += 1;
        Gauge::up(self, Which::InFlight)
    }

    /// Counts an accepted connection; the guard keeps it open until dropped.
    pub(crate) fn on_connection(self: &Arc<Self>) -> Gauge {
        self.connections.fetch_add(1, Ordering::SeqCst);
        Gauge::up(self, Which::OpenConnections)
    }

    /// Records the body of a POST to `path`.
    pub(crate) fn record_post(&self, path: &str, body: Bytes) {
        lock(&self.posts).push((path.to_owned(), body));
    }
}

/// Which gauge a [`Gauge`] guard holds up.
#[derive(Debug, Clone, Copy)]
enum Which {
    InFlight,
    OpenConnections,
}

/// Holds one gauge of a [`Recorder`] up by one while alive.
#[derive(Debug)]
pub(crate) struct Gauge {
    recorder: Arc<Recorder>,
    which: Which,
}

impl Gauge {
    fn up(recorder: &Arc<Recorder>, which: Which) -> Self {
        let gauge = Self {
            recorder: Arc::clone(recorder),
            which,
        };
        gauge.counter().fetch_add(1, Ordering::SeqCst);
        gauge
    }

    fn counter(&self) -> &AtomicU64 {
        match self.which {
            Which::InFlight => &self.recorder.in_flight,
            Which::OpenConnections => &self.recorder.open_connections,
        }
    }
}

impl Drop for Gauge {
    fn drop(&mut self) {
        self.counter().fetch_sub(1, Ordering::SeqCst);
    }
}
