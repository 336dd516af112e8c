//! Metrics: lock-free counters on the request path, the Prometheus exposition at scrape time.
//!
//! The request path only ever does an `ArcSwap` load, two ordered-map look-ups by the service
//! and pool names it already carries, and a few relaxed atomic adds: no lock, no allocation.
//! The counters live in [`PoolCounters`] and [`ServiceCounters`] objects keyed by name that the
//! control plane carries over from one table to the next (`Metrics::sync`, called before every
//! snapshot is stored), so a switch or a reload never resets them — the same rule as the live
//! state in `switchyard_core::Registry`.
//!
//! Everything that is a fact about *now* (in-flight counts, health, the active colour, the
//! generation, open connections) is not counted at all: [`Scrape`] reads it from the snapshot
//! in force when `/metrics` is asked for, through `prometheus-client`'s custom-collector
//! interface, which also does the text encoding (OpenMetrics).

mod exposition;
mod mirror;
mod process;

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwap;
use switchyard_core::Snapshot;
use switchyard_core::retry::FailureKind;
use tokio::time::Instant;

pub(crate) use exposition::{render, render_text};
pub(crate) use mirror::{MIRROR_RESULTS, MIRROR_SKIPS, MirrorCounters, PoolReading};

use crate::shared::Shared;

/// The content type of the OpenMetrics exposition (for a scraper that asks for it).
pub(crate) const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The content type of the Prometheus text exposition (the default).
pub(crate) const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Status classes, by index: `status / 100 - 1`, clamped.
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Upper bounds of the latency buckets, in microseconds (the last bucket is `+Inf`).
const BUCKETS_US: [u64; 17] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000, 10_000_000,
];

/// Every reason an upstream attempt fails for, in the order of [`reason_index`].
const REASONS: [&str; 7] = [
    "connect_refused",
    "connect_timeout",
    "connect_error",
    "connection_closed_unsent",
    "reset_before_response",
    "response_timeout",
    "retryable_status",
];

/// The label of requests the proxy answered before choosing a pool (a body too large, say).
const NO_POOL: &str = "-";

fn reason_index(kind: FailureKind) -> usize {
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

fn class_index(status: u16) -> usize {
    usize::from((status / 100).clamp(1, 5) - 1)
}

fn load(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

/// A latency histogram in atomics: one counter per bucket plus the sum in microseconds.
/// The count is the sum of the buckets, so it always equals the `+Inf` bucket.
#[derive(Debug, Default)]
pub(crate) struct Latency {
    /// Observations per bucket (not cumulative); the last one is `+Inf`.
    buckets: [AtomicU64; BUCKETS_US.len() + 1],
    /// Sum of all observations, in microseconds (584 000 years before it wraps).
    sum_us: AtomicU64,
}

impl Latency {
    fn observe(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let i = BUCKETS_US
            .iter()
            .position(|b| us <= *b)
            .unwrap_or(BUCKETS_US.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    /// `(sum in seconds, count, per-bucket (upper bound in seconds, count))` as read now.
    fn read(&self) -> (f64, u64, Vec<(f64, u64)>) {
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

/// The counters of one pool (colour) of one service.
#[derive(Debug, Default)]
pub(crate) struct PoolCounters {
    /// Requests answered, by status class.
    requests: [AtomicU64; CLASSES.len()],
    /// Upstream attempts made for them (retries included).
    attempts: AtomicU64,
    /// Time from request head to response head.
    latency: Latency,
    /// Request body bytes that arrived from clients.
    bytes_in: AtomicU64,
    /// Response body bytes announced to clients (by `Content-Length`).
    bytes_out: AtomicU64,
    /// Failed upstream attempts on this pool (every reason).
    failures: AtomicU64,
    /// Requests sent to this pool because they named it (`[services.X.preview]`).
    previewed: AtomicU64,
    /// Copies of live requests sent to this pool by a mirror.
    pub(crate) mirror: MirrorCounters,
}

/// The counters of one service that are not per pool.
#[derive(Debug, Default)]
pub(crate) struct ServiceCounters {
    /// Requests answered before a pool was chosen.
    unpooled: PoolCounters,
    /// Failed upstream attempts, by reason.
    failures: [AtomicU64; REASONS.len()],
    /// Failed attempts that were retried, by reason.
    retries: [AtomicU64; REASONS.len()],
    /// Servers ejected after consecutive failures.
    ejections: AtomicU64,
}

/// One service's counters as the request path finds them.
#[derive(Debug, Clone, Default)]
struct ServiceEntry {
    counters: Arc<ServiceCounters>,
    pools: BTreeMap<String, Arc<PoolCounters>>,
}

/// The look-up table the request path reads: rebuilt by the control plane, never mutated.
#[derive(Debug, Default)]
struct Table {
    services: BTreeMap<String, ServiceEntry>,
}

/// Which control-plane action a switch counter counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum SwitchKind {
    /// A switch to a named pool.
    Switch,
    /// A rollback to the previous pool.
    Rollback,
    /// A weighted split set or ended.
    Split,
    /// A rollback the guard made by itself (also counted as a rollback).
    GuardRollback,
}

impl SwitchKind {
    fn as_str(self) -> &'static str {
        match self {
            SwitchKind::Switch => "switch",
            SwitchKind::Rollback => "rollback",
            SwitchKind::Split => "split",
            SwitchKind::GuardRollback => "guard_rollback",
        }
    }
}

/// How a config reload ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReloadResult {
    /// Applied.
    Ok,
    /// The new config was invalid; the running one stays.
    Rejected,
    /// Something else failed (no file to re-read, the state could not be saved).
    Failed,
}

/// Every counter of a running proxy.
#[derive(Debug)]
pub(crate) struct Metrics {
    /// The per-service and per-pool counters, by name.
    table: ArcSwap<Table>,
    /// Requests that matched no service (or a bad request head), by status class.
    unrouted: [AtomicU64; CLASSES.len()],
    /// Switches by service and kind: control plane only, so a mutex is fine here.
    switches: Mutex<BTreeMap<(String, SwitchKind), u64>>,
    /// Config reloads, by [`ReloadResult`] (ok, rejected, failed).
    reloads: [AtomicU64; 3],
    /// When the proxy started, for `/stats`.
    started: Instant,
    /// The traffic counters once a second over the last [`SERIES_LEN`] seconds, oldest first,
    /// so the dashboard can draw the last minutes as soon as it opens. Written by one sampling
    /// task, read by `/stats?series=1`: never on the request path.
    series: Mutex<VecDeque<(f64, Traffic)>>,
    /// Fleet mode: the fleet whose connection and applied revision are exported.
    pub(crate) fleet: std::sync::OnceLock<Arc<crate::fleet::Fleet>>,
}

/// Requests and 5xx answers so far, by service and pool.
pub(crate) type Traffic = BTreeMap<String, BTreeMap<String, (u64, u64)>>;

/// A latency histogram for `/stats`: per bucket its upper bound in seconds (`None` for
/// `+Inf`) and its count.
pub(crate) type LatencyBuckets = Vec<(Option<f64>, u64)>;

/// How many once-a-second samples `/stats?series=1` keeps: five minutes.
const SERIES_LEN: usize = 300;

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            table: ArcSwap::from_pointee(Table::default()),
            unrouted: Default::default(),
            switches: Mutex::new(BTreeMap::new()),
            reloads: Default::default(),
            started: Instant::now(),
            series: Mutex::new(VecDeque::with_capacity(SERIES_LEN)),
            fleet: std::sync::OnceLock::new(),
        }
    }
}

impl Metrics {
    /// Makes the table name exactly the services and pools of `snapshot`, keeping the counters
    /// of every name it already had. Call before the snapshot is stored, so a request routed by
    /// it always finds its counters.
    pub(crate) fn sync(&self, snapshot: &Snapshot) {
        let old = self.table.load_full();
        let services = snapshot
            .services
            .iter()
            .map(|svc| {
                let prev = old.services.get(&svc.name);
                let pools = svc
                    .pools
                    .iter()
                    .map(|p| {
                        let counters = prev
                            .and_then(|e| e.pools.get(&p.name))
                            .cloned()
                            .unwrap_or_default();
                        (p.name.clone(), counters)
                    })
                    .collect();
                let entry = ServiceEntry {
                    counters: prev.map(|e| e.counters.clone()).unwrap_or_default(),
                    pools,
                };
                (svc.name.clone(), entry)
            })
            .collect();
        self.table.store(Arc::new(Table { services }));
    }

    /// Counts one answered request (request path).
    pub(crate) fn request(
        &self,
        service: Option<&str>,
        pool: Option<&str>,
        status: u16,
        duration: Duration,
        attempts: u32,
        bytes: (u64, u64),
    ) {
        let table = self.table.load();
        let Some(entry) = service.and_then(|s| table.services.get(s)) else {
            self.unrouted[class_index(status)].fetch_add(1, Ordering::Relaxed);
            return;
        };
        let counters = pool
            .and_then(|p| entry.pools.get(p))
            .map_or(&entry.counters.unpooled, |p| &**p);
        counters.record(status, duration, attempts, bytes);
    }

    /// Counts one failed upstream attempt, and whether it is retried (request path).
    pub(crate) fn attempt_failed(
        &self,
        service: &str,
        pool: &str,
        kind: FailureKind,
        retried: bool,
    ) {
        let table = self.table.load();
        if let Some(entry) = table.services.get(service) {
            if let Some(p) = entry.pools.get(pool) {
                p.failures.fetch_add(1, Ordering::Relaxed);
            }
            let i = reason_index(kind);
            entry.counters.failures[i].fetch_add(1, Ordering::Relaxed);
            if retried {
                entry.counters.retries[i].fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Counts a request sent to `pool` because it named it (preview; request path).
    pub(crate) fn previewed(&self, service: &str, pool: &str) {
        if let Some(p) = self
            .table
            .load()
            .services
            .get(service)
            .and_then(|e| e.pools.get(pool))
        {
            p.previewed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts an ejection (request path).
    pub(crate) fn ejected(&self, service: &str) {
        if let Some(entry) = self.table.load().services.get(service) {
            entry.counters.ejections.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts a switch, rollback or split that changed what a service routes to.
    pub(crate) fn switched(&self, service: &str, kind: SwitchKind) {
        let mut map = self.switches.lock().unwrap_or_else(PoisonError::into_inner);
        *map.entry((service.to_string(), kind)).or_default() += 1;
    }

    /// Counts a config reload.
    pub(crate) fn reloaded(&self, result: ReloadResult) {
        let i = match result {
            ReloadResult::Ok => 0,
            ReloadResult::Rejected => 1,
            ReloadResult::Failed => 2,
        };
        self.reloads[i].fetch_add(1, Ordering::Relaxed);
    }

    /// One pool's counters, when the pool is known.
    pub(crate) fn pool(&self, service: &str, pool: &str) -> Option<Arc<PoolCounters>> {
        self.table
            .load()
            .services
            .get(service)
            .and_then(|e| e.pools.get(pool))
            .cloned()
    }

    /// One pool's counters as read now (zeros for a pool never counted).
    pub(crate) fn pool_reading(&self, service: &str, pool: &str) -> PoolReading {
        let table = self.table.load();
        let Some(c) = table.services.get(service).and_then(|e| e.pools.get(pool)) else {
            return PoolReading {
                buckets: vec![0; BUCKETS_US.len() + 1],
                ..PoolReading::default()
            };
        };
        PoolReading {
            requests: c.requests(),
            errors: c.errors(),
            failures: load(&c.failures),
            buckets: c.latency.buckets.iter().map(load).collect(),
        }
    }

    /// Requests and 5xx answers so far per service and pool, for `/stats`.
    pub(crate) fn traffic(&self) -> Traffic {
        self.table
            .load()
            .services
            .iter()
            .map(|(name, e)| {
                let pools = e
                    .pools
                    .iter()
                    .map(|(p, c)| (p.clone(), (c.requests(), c.errors())))
                    .collect();
                (name.clone(), pools)
            })
            .collect()
    }

    /// Each pool's latency histogram as read now, for `/stats`: per bucket its upper bound in
    /// seconds (`None` for `+Inf`) and its count (not cumulative).
    pub(crate) fn latencies(&self) -> BTreeMap<(String, String), LatencyBuckets> {
        let table = self.table.load();
        let mut out = BTreeMap::new();
        for (svc, e) in &table.services {
            for (pool, c) in &e.pools {
                let (_, _, buckets) = c.latency.read();
                let buckets = buckets
                    .into_iter()
                    .map(|(le, n)| (le.is_finite().then_some(le), n))
                    .collect();
                out.insert((svc.clone(), pool.clone()), buckets);
            }
        }
        out
    }

    /// Time since the proxy started.
    pub(crate) fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// Adds one sample of the traffic counters to the series, dropping the oldest.
    fn sample(&self) {
        let point = (self.uptime().as_secs_f64(), self.traffic());
        let mut series = self.series.lock().unwrap_or_else(PoisonError::into_inner);
        if series.len() == SERIES_LEN {
            series.pop_front();
        }
        series.push_back(point);
    }
}

/// Samples the traffic counters once a second until `stop` turns true.
pub(crate) async fn sample_traffic(
    shared: Arc<Shared>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            _ = crate::shared::stopped(&mut stop) => return,
            _ = tick.tick() => shared.metrics.sample(),
        }
    }
}

fn traffic_json(traffic: Traffic) -> serde_json::Value {
    let services: serde_json::Map<String, serde_json::Value> = traffic
        .into_iter()
        .map(|(svc, pools)| {
            let pools: serde_json::Map<String, serde_json::Value> = pools
                .into_iter()
                .map(|(p, (requests, errors))| {
                    (
                        p,
                        serde_json::json!({ "requests": requests, "errors": errors }),
                    )
                })
                .collect();
            (svc, serde_json::json!({ "pools": pools }))
        })
        .collect();
    serde_json::Value::Object(services)
}

/// The small JSON document the dashboard polls: request and 5xx counters per pool, so rates
/// can be drawn from the difference between two polls, and each pool's latency buckets
/// (`[upper bound in seconds or null, count]`, time to the response head). With `series`, also
/// the samples of the last minutes (`t` is the uptime in seconds at each sample).
pub(crate) fn stats(shared: &Shared, series: bool) -> serde_json::Value {
    let metrics = &shared.metrics;
    let mut doc = serde_json::json!({
        "generation": shared.snapshot.load().generation,
        "open_connections": shared.connections.count(),
        "uptime_seconds": metrics.uptime().as_secs_f64(),
        "services": traffic_json(metrics.traffic()),
    });
    // Latency buckets per pool, for the dashboard's p50/p99.
    for ((svc, pool), buckets) in metrics.latencies() {
        if let Some(p) = doc["services"][&svc]["pools"].get_mut(&pool) {
            p["latency"] = serde_json::json!(buckets);
        }
    }
    if series {
        let samples: Vec<_> = metrics
            .series
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .cloned()
            .collect();
        doc["series"] = samples
            .into_iter()
            .map(|(t, traffic)| serde_json::json!({ "t": t, "services": traffic_json(traffic) }))
            .collect();
    }
    doc
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
        for kind in [
            FailureKind::ConnectRefused,
            FailureKind::ConnectTimeout,
            FailureKind::ConnectError,
            FailureKind::Unsent,
            FailureKind::Reset,
            FailureKind::ResponseTimeout,
            FailureKind::Status(503),
        ] {
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
    fn the_series_keeps_the_last_minutes() {
        let m = Metrics::default();
        for _ in 0..SERIES_LEN + 5 {
            m.sample();
        }
        assert_eq!(m.series.lock().map(|s| s.len()).unwrap_or(0), SERIES_LEN);
    }

    #[test]
    fn pool_counters_split_by_class() {
        let c = PoolCounters::default();
        c.record(200, Duration::ZERO, 1, (0, 0));
        c.record(502, Duration::ZERO, 2, (0, 0));
        c.record(404, Duration::ZERO, 0, (0, 0));
        assert_eq!((c.requests(), c.errors(), load(&c.attempts)), (3, 1, 3));
    }
}
