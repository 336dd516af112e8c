//! Metrics: lock-free counters on the request path, the Prometheus exposition at scrape time.
//!
//! A service's and a pool's counters (`switchyard_core::counters`) are carried by the routing
//! snapshot: the request path counts through the service and pool it already holds, with a few
//! relaxed atomic adds — no map, no `ArcSwap` load, no lock, no allocation. The next snapshot
//! takes them over for every name that stays, so a switch or a reload never resets them, and a
//! name that goes takes its counters with it. [`Metrics`] keeps only what belongs to no
//! service: unrouted requests, switches, reloads, and the traffic series of `/stats`.
//!
//! Everything that is a fact about *now* (in-flight counts, health, the active colour, the
//! generation, open connections) is not counted at all: [`Scrape`] reads it from the snapshot
//! in force when `/metrics` is asked for, through `prometheus-client`'s custom-collector
//! interface, which also does the text encoding (OpenMetrics).

mod exposition;
mod process;
mod reading;

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use switchyard_core::Snapshot;
use switchyard_core::counters::{BUCKETS_US, CLASSES, class_index, load};
use tokio::time::Instant;

pub(crate) use exposition::{render, render_text};
pub(crate) use reading::PoolReading;

use crate::shared::Shared;

/// The content type of the OpenMetrics exposition (for a scraper that asks for it).
pub(crate) const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The content type of the Prometheus text exposition (the default).
pub(crate) const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The label of requests the proxy answered before choosing a pool (a body too large, say).
const NO_POOL: &str = "-";

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

/// The counters of a running proxy that belong to no service.
#[derive(Debug)]
pub(crate) struct Metrics {
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
    /// Counts a request that reached no service (or had a bad request head).
    pub(crate) fn unrouted(&self, status: u16) {
        self.unrouted[class_index(status)].fetch_add(1, Ordering::Relaxed);
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

    /// Time since the proxy started.
    pub(crate) fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// Adds one sample of the traffic counters of `snapshot` to the series, dropping the
    /// oldest.
    fn sample(&self, snapshot: &Snapshot) {
        let point = (self.uptime().as_secs_f64(), traffic(snapshot));
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
            _ = tick.tick() => shared.metrics.sample(&shared.snapshot.load()),
        }
    }
}

/// One pool's counters in `snapshot` as read now (zeros for a pool it does not have), for the
/// guard.
pub(crate) fn pool_reading(snapshot: &Snapshot, service: &str, pool: &str) -> PoolReading {
    let counters = snapshot
        .service(service)
        .and_then(|s| s.pools.iter().find(|p| p.name == pool));
    let Some(c) = counters.map(|p| &p.counters) else {
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

/// Requests and 5xx answers so far per service and pool of `snapshot`, for `/stats`.
pub(crate) fn traffic(snapshot: &Snapshot) -> Traffic {
    snapshot
        .services
        .iter()
        .map(|svc| {
            let pools = svc
                .pools
                .iter()
                .map(|p| (p.name.clone(), (p.counters.requests(), p.counters.errors())))
                .collect();
            (svc.name.clone(), pools)
        })
        .collect()
}

/// Each pool's latency histogram as read now, for `/stats`: per bucket its upper bound in
/// seconds (`None` for `+Inf`) and its count (not cumulative).
pub(crate) fn latencies(snapshot: &Snapshot) -> BTreeMap<(String, String), LatencyBuckets> {
    let mut out = BTreeMap::new();
    for svc in &snapshot.services {
        for p in &svc.pools {
            let (_, _, buckets) = p.counters.latency.read();
            let buckets = buckets
                .into_iter()
                .map(|(le, n)| (le.is_finite().then_some(le), n))
                .collect();
            out.insert((svc.name.clone(), p.name.clone()), buckets);
        }
    }
    out
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
    let snapshot = shared.snapshot.load_full();
    let mut doc = serde_json::json!({
        "generation": snapshot.generation,
        "open_connections": shared.connections.count(),
        "uptime_seconds": metrics.uptime().as_secs_f64(),
        "services": traffic_json(traffic(&snapshot)),
    });
    // Latency buckets per pool, for the dashboard's p50/p99.
    for ((svc, pool), buckets) in latencies(&snapshot) {
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
    fn the_series_keeps_the_last_minutes() {
        let m = Metrics::default();
        let config = switchyard_config::default_config();
        let snapshot = Snapshot::build(
            &config,
            &switchyard_core::snapshot::decisions_from_config(&config),
            &switchyard_core::Registry::new(),
            1,
        );
        for _ in 0..SERIES_LEN + 5 {
            m.sample(&snapshot);
        }
        assert_eq!(m.series.lock().map(|s| s.len()).unwrap_or(0), SERIES_LEN);
    }
}
