//! The traffic counters of each service and pool: relaxed atomics, carried by the snapshot.
//!
//! A [`Pool`](crate::Pool) holds its [`PoolCounters`] and a [`Service`](crate::Service) its
//! [`ServiceCounters`], each behind an `Arc` that the next snapshot takes over for the same
//! name (see `Snapshot::build_next`). The request path counts through the service and pool it
//! already holds: no name is looked up and no lock is taken. The proxy reads the counters when
//! `/metrics` or `/stats` is asked for, by walking the snapshot in force.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::retry::FailureKind;

/// Status classes, by index: `status / 100 - 1`, clamped.
pub const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Upper bounds of the latency buckets, in microseconds (the last bucket is `+Inf`).
pub const BUCKETS_US: [u64; 17] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000, 10_000_000,
];

/// Every reason an upstream attempt fails for, in the order of [`reason_index`].
pub const REASONS: [&str; 7] = [
    "connect_refused",
    "connect_timeout",
    "connect_error",
    "connection_closed_unsent",
    "reset_before_response",
    "response_timeout",
    "retryable_status",
];

/// Why a mirror copy was not sent, by index.
pub const MIRROR_SKIPS: [&str; 3] = ["max_in_flight", "body_not_buffered", "no_server"];

/// What became of mirror copies, by index: the answer's status class, or `error`.
pub const MIRROR_RESULTS: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "error"];

/// The index of `kind` in [`REASONS`].
pub fn reason_index(kind: FailureKind) -> usize {
    match kind {
        FailureKind::ConnectRefused => 0,
        FailureKind::ConnectTimeout => 1,
        FailureKind::ConnectError => 2,
        FailureKind::Unsent => 3,
        FailureKind::Reset => 4,
        FailureKind::ResponseTimeout => 5,
        FailureKind::Status(_) => 6,
    }
}

/// The index of `status`'s class in [`CLASSES`].
pub fn class_index(status: u16) -> usize {
    usize::from((status / 100).clamp(1, 5) - 1)
}

/// Reads a counter.
pub fn load(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

/// A latency histogram in atomics: one counter per bucket plus the sum in microseconds.
/// The count is the sum of the buckets, so it always equals the `+Inf` bucket.
#[derive(Debug, Default)]
pub struct Latency {
    /// Observations per bucket (not cumulative); the last one is `+Inf`.
    pub buckets: [AtomicU64; BUCKETS_US.len() + 1],
    /// Sum of all observations, in microseconds (584 000 years before it wraps).
    pub sum_us: AtomicU64,
}

impl Latency {
    /// Counts one observation.
    pub fn observe(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let i = BUCKETS_US
            .iter()
            .position(|b| us <= *b)
            .unwrap_or(BUCKETS_US.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    /// `(sum in seconds, count, per-bucket (upper bound in seconds, count))` as read now.
    pub fn read(&self) -> (f64, u64, Vec<(f64, u64)>) {
        let buckets: Vec<(f64, u64)> = self
            .buckets
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let bound = BUCKETS_US
                    .get(i)
                    .map_or(f64::INFINITY, |us| *us as f64 / 1e6);
                (bound, load(n))
            })
            .collect();
        let count = buckets.iter().map(|(_, n)| n).sum();
        (load(&self.sum_us) as f64 / 1e6, count, buckets)
    }
}

/// The counters of the copies a mirror sends to one pool.
#[derive(Debug, Default)]
pub struct MirrorCounters {
    /// Copies by result ([`MIRROR_RESULTS`]).
    pub results: [AtomicU64; MIRROR_RESULTS.len()],
    /// Copies skipped, by reason ([`MIRROR_SKIPS`]).
    pub skips: [AtomicU64; MIRROR_SKIPS.len()],
    /// Time from sending a copy to its answer's head.
    pub latency: Latency,
    /// Copies in flight now.
    pub in_flight: AtomicU64,
}

impl MirrorCounters {
    /// Counts a copy's answer (`None`: it failed) and its latency.
    pub fn answered(&self, status: Option<u16>, took: Duration) {
        let i = status.map_or(MIRROR_RESULTS.len() - 1, class_index);
        self.results[i].fetch_add(1, Ordering::Relaxed);
        self.latency.observe(took);
    }

    /// Counts a skipped copy.
    pub fn skipped(&self, reason: usize) {
        if let Some(n) = self.skips.get(reason) {
            n.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The counters of one pool (colour) of one service.
#[derive(Debug, Default)]
pub struct PoolCounters {
    /// Requests answered, by status class ([`CLASSES`]).
    pub requests: [AtomicU64; CLASSES.len()],
    /// Upstream attempts made for them (retries included).
    pub attempts: AtomicU64,
    /// Time from request head to response head.
    pub latency: Latency,
    /// Request body bytes that arrived from clients.
    pub bytes_in: AtomicU64,
    /// Response body bytes announced to clients (by `Content-Length`).
    pub bytes_out: AtomicU64,
    /// Failed upstream attempts on this pool (every reason).
    pub failures: AtomicU64,
    /// Requests sent to this pool because they named it (`[services.X.preview]`).
    pub previewed: AtomicU64,
    /// Copies of live requests sent to this pool by a mirror.
    pub mirror: MirrorCounters,
}

impl PoolCounters {
    /// Counts one answered request: its status, latency, attempts and body bytes (in, out).
    pub fn record(&self, status: u16, duration: Duration, attempts: u32, bytes: (u64, u64)) {
        self.requests[class_index(status)].fetch_add(1, Ordering::Relaxed);
        if bytes.0 > 0 {
            self.bytes_in.fetch_add(bytes.0, Ordering::Relaxed);
        }
        if bytes.1 > 0 {
            self.bytes_out.fetch_add(bytes.1, Ordering::Relaxed);
        }
        if attempts > 0 {
            self.attempts
                .fetch_add(u64::from(attempts), Ordering::Relaxed);
        }
        self.latency.observe(duration);
    }

    /// Counts a request sent here because it named this pool.
    pub fn previewed(&self) {
        self.previewed.fetch_add(1, Ordering::Relaxed);
    }

    /// Requests answered so far.
    pub fn requests(&self) -> u64 {
        self.requests.iter().map(load).sum()
    }

    /// Requests answered with a 5xx status so far.
    pub fn errors(&self) -> u64 {
        load(&self.requests[4])
    }
}

/// The counters of one service that are not per pool.
#[derive(Debug, Default)]
pub struct ServiceCounters {
    /// Requests answered before a pool was chosen.
    pub unpooled: PoolCounters,
    /// Failed upstream attempts, by reason ([`REASONS`]).
    pub failures: [AtomicU64; REASONS.len()],
    /// Failed attempts that were retried, by reason.
    pub retries: [AtomicU64; REASONS.len()],
    /// Servers ejected after consecutive failures.
    pub ejections: AtomicU64,
}

impl ServiceCounters {
    /// Counts one failed upstream attempt on `pool` (one of this service's), and whether it is
    /// retried.
    pub fn attempt_failed(&self, pool: &PoolCounters, kind: FailureKind, retried: bool) {
        pool.failures.fetch_add(1, Ordering::Relaxed);
        let i = reason_index(kind);
        self.failures[i].fetch_add(1, Ordering::Relaxed);
        if retried {
            self.retries[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts an ejection.
    pub fn ejected(&self) {
        self.ejections.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_classes() {
        assert_eq!(CLASSES[class_index(101)], "1xx");
        assert_eq!(CLASSES[class_index(200)], "2xx");
        assert_eq!(CLASSES[class_index(308)], "3xx");
        assert_eq!(CLASSES[class_index(404)], "4xx");
        assert_eq!(CLASSES[class_index(503)], "5xx");
        assert_eq!(CLASSES[class_index(0)], "1xx");
        assert_eq!(CLASSES[class_index(999)], "5xx");
    }

    #[test]
    fn reasons_match_the_core_names() {
        for kind in crate::retry::ALL_KINDS {
            assert_eq!(REASONS[reason_index(kind)], kind.reason());
        }
    }

    #[test]
    fn latency_buckets_are_per_bucket_and_count_everything() {
        let h = Latency::default();
        h.observe(Duration::from_micros(500));
        h.observe(Duration::from_millis(1));
        h.observe(Duration::from_millis(30));
        h.observe(Duration::from_secs(60));
        let (sum, count, buckets) = h.read();
        assert_eq!(count, 4);
        assert!((sum - 60.0315).abs() < 1e-9, "{sum}");
        assert_eq!(buckets[0], (0.00005, 0));
        assert_eq!(buckets[3], (0.0005, 1));
        assert_eq!(buckets[4], (0.001, 1));
        assert_eq!(buckets[9], (0.05, 1));
        assert_eq!(buckets.last().copied(), Some((f64::INFINITY, 1)));
        assert_eq!(buckets.iter().map(|b| b.1).sum::<u64>(), 4);
    }

    #[test]
    fn pool_counters_split_by_class() {
        let c = PoolCounters::default();
        c.record(200, Duration::ZERO, 1, (0, 0));
        c.record(502, Duration::ZERO, 2, (0, 0));
        c.record(404, Duration::ZERO, 0, (0, 0));
        assert_eq!((c.requests(), c.errors(), load(&c.attempts)), (3, 1, 3));
    }

    #[test]
    fn counters_follow_their_names_from_one_snapshot_to_the_next() {
        use std::collections::BTreeMap;
        use std::sync::Arc;

        use switchyard_config::{Config, PoolConfig, ServerConfig, ServiceConfig};

        use crate::live::Registry;
        use crate::snapshot::{Snapshot, decisions_from_config};

        let config = |services: &[(&str, &[&str])]| {
            let server = ServerConfig::new(std::net::SocketAddr::from(([127, 0, 0, 1], 9)));
            let mut config = Config::default();
            for (name, pools) in services {
                let pools: BTreeMap<String, PoolConfig> = pools
                    .iter()
                    .map(|p| (p.to_string(), PoolConfig::new(vec![server.clone()])))
                    .collect();
                let active = pools.keys().next().cloned().unwrap_or_default();
                let svc = ServiceConfig::new(*name, &active, pools);
                config.services.insert(name.to_string(), svc);
            }
            config
        };
        let registry = Registry::new();
        let next = |previous: &Snapshot, config: &Config| {
            previous.build_next(config, &decisions_from_config(config), &registry)
        };
        let pool = |s: &Snapshot, svc: &str, pool: &str| {
            let svc = s.service(svc).expect("service");
            svc.pools[svc.pool_index(pool).expect("pool")]
                .counters
                .clone()
        };
        let both = config(&[("app", &["blue", "green"]), ("web", &["green"])]);
        let first = Snapshot::build(&both, &decisions_from_config(&both), &registry, 1);
        pool(&first, "app", "green").record(200, Duration::ZERO, 1, (0, 0));
        first.services[0].counters.ejected();

        // Same names: the same counters, and the next generation.
        let second = next(&first, &both);
        assert_eq!(second.generation, 2);
        assert!(Arc::ptr_eq(
            &pool(&first, "app", "green"),
            &pool(&second, "app", "green")
        ));
        assert!(Arc::ptr_eq(
            &first.services[0].counters,
            &second.services[0].counters
        ));
        assert_eq!(pool(&second, "app", "green").requests(), 1);

        // A pool and a service leave: the others keep theirs.
        let fewer = config(&[("app", &["blue"])]);
        let third = next(&second, &fewer);
        assert!(third.service("web").is_none());
        assert!(Arc::ptr_eq(
            &pool(&second, "app", "blue"),
            &pool(&third, "app", "blue")
        ));
        assert_eq!(load(&third.services[0].counters.ejections), 1);

        // They come back: at zero.
        let fourth = next(&third, &both);
        assert_eq!(pool(&fourth, "app", "green").requests(), 0);
        assert_eq!(pool(&fourth, "web", "green").requests(), 0);
        // The snapshot built from is untouched.
        assert_eq!(pool(&second, "app", "green").requests(), 1);
    }
}
