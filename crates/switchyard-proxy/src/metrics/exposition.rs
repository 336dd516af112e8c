//! The Prometheus exposition: the counters of every service and pool of the snapshot in force
//! and those of [`Metrics`](super::Metrics), and the gauges read from the same snapshot,
//! encoded by `prometheus-client` through its custom-collector interface each time `/metrics`
//! is scraped.

use std::fmt;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, PoisonError};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};
use switchyard_core::counters::{
    CLASSES, MIRROR_RESULTS, MIRROR_SKIPS, REASONS, ServiceCounters, load,
};
use switchyard_core::{Health, Snapshot};
use tokio::time::Instant;

use super::NO_POOL;
use crate::shared::Shared;

/// Renders the whole exposition: every counter, and the gauges read from the snapshot now.
pub(crate) fn render(shared: &Arc<Shared>) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Scrape(shared.clone())));
    let mut out = String::with_capacity(8 * 1024);
    if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &registry) {
        tracing::error!(error = %e, "could not encode the metrics");
    }
    out
}

/// The Prometheus text format (0.0.4) of the exposition, for scrapers and tools that do not
/// ask for OpenMetrics (`promtool check metrics`, `curl`): the same samples, with a counter's
/// HELP and TYPE named as its samples are (`…_total`), and no `# UNIT` or `# EOF` lines.
pub(crate) fn render_text(shared: &Arc<Shared>) -> String {
    to_prometheus_text(&render(shared))
}

/// Turns an OpenMetrics exposition into the Prometheus text format.
pub(crate) fn to_prometheus_text(openmetrics: &str) -> String {
    let mut counters: Vec<&str> = Vec::new();
    for line in openmetrics.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            if let Some((name, "counter")) = rest.split_once(' ') {
                counters.push(name);
            }
        }
    }
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let meta = line
            .strip_prefix("# HELP ")
            .map(|r| ("# HELP ", r))
            .or_else(|| line.strip_prefix("# TYPE ").map(|r| ("# TYPE ", r)));
        match meta {
            Some((kind, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                out.push_str(kind);
                out.push_str(name);
                if counters.contains(&name) {
                    out.push_str("_total");
                }
                out.push(' ');
                out.push_str(tail);
            }
            None if line.contains("_created") && !line.starts_with('#') => continue,
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// The collector `prometheus-client` calls on every scrape.
struct Scrape(Arc<Shared>);

impl fmt::Debug for Scrape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Scrape")
    }
}

/// Writes one metric family: its descriptor, then one sample per label set.
pub(super) fn family<L, M>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    samples: impl IntoIterator<Item = (L, M)>,
) -> fmt::Result
where
    L: EncodeLabelSet,
    M: EncodeMetric,
{
    let mut samples = samples.into_iter().peekable();
    let Some((_, first)) = samples.peek() else {
        return Ok(());
    };
    let mut m = enc.encode_descriptor(name, help, unit, first.metric_type())?;
    for (labels, metric) in samples {
        metric.encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

/// A sample without labels (the label set type for `family`).
const NO_LABELS: [(&str, &str); 0] = [];

fn counter(v: u64) -> ConstCounter<u64> {
    ConstCounter::new(v)
}

fn gauge(v: i64) -> ConstGauge<i64> {
    ConstGauge::new(v)
}

impl Collector for Scrape {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        let shared = &self.0;
        let metrics = &shared.metrics;
        let snapshot = shared.snapshot.load_full();
        let services = || {
            snapshot
                .services
                .iter()
                .map(|s| (s.name.as_str(), &*s.counters))
        };
        let pools = || {
            snapshot.services.iter().flat_map(|s| {
                s.pools
                    .iter()
                    .map(move |p| (s.name.as_str(), p.name.as_str(), &*p.counters))
                    .chain(std::iter::once((
                        s.name.as_str(),
                        NO_POOL,
                        &s.counters.unpooled,
                    )))
            })
        };

        family(
            &mut enc,
            "switchyard_requests",
            "Requests answered, by service, pool (colour) and status class.",
            None,
            pools().flat_map(|(s, p, c)| {
                CLASSES.iter().zip(&c.requests).map(move |(class, n)| {
                    (
                        [("service", s), ("pool", p), ("class", *class)],
                        counter(load(n)),
                    )
                })
            }),
        )?;
        family(
            &mut enc,
            "switchyard_unrouted_requests",
            "Requests that matched no service or were malformed, by status class.",
            None,
            CLASSES
                .iter()
                .zip(&metrics.unrouted)
                .map(|(class, n)| ([("class", *class)], counter(load(n)))),
        )?;
        {
            let mut m = enc.encode_descriptor(
                "switchyard_response_head_duration",
                "Time from the request head to the response head (the body not included), by service and pool.",
                Some(&Unit::Seconds),
                MetricType::Histogram,
            )?;
            for (s, p, c) in pools() {
                let (sum, count, buckets) = c.latency.read();
                m.encode_family(&[("service", s), ("pool", p)])?
                    .encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?;
            }
        }
        family(
            &mut enc,
            "switchyard_request_bytes",
            "Request body bytes that arrived from clients, by service and pool.",
            None,
            pools().map(|(s, p, c)| ([("service", s), ("pool", p)], counter(load(&c.bytes_in)))),
        )?;
        family(
            &mut enc,
            "switchyard_response_bytes",
            "Response body bytes sent to clients (as their Content-Length announced), by service and pool.",
            None,
            pools().map(|(s, p, c)| ([("service", s), ("pool", p)], counter(load(&c.bytes_out)))),
        )?;
        family(
            &mut enc,
            "switchyard_preview_requests",
            "Requests sent to a pool because they named it by the preview header or cookie.",
            None,
            pools().map(|(s, p, c)| ([("service", s), ("pool", p)], counter(load(&c.previewed)))),
        )?;
        family(
            &mut enc,
            "switchyard_mirror_copies",
            "Copies of live requests a mirror sent to the pool, by the copy's answer (status class, or error).",
            None,
            pools().flat_map(|(s, p, c)| {
                MIRROR_RESULTS
                    .iter()
                    .zip(&c.mirror.results)
                    .map(move |(r, n)| {
                        (
                            [("service", s), ("pool", p), ("result", *r)],
                            counter(load(n)),
                        )
                    })
            }),
        )?;
        family(
            &mut enc,
            "switchyard_mirror_skips",
            "Copies a mirror did not send to the pool, by reason (max_in_flight reached, a body too large to buffer, no server).",
            None,
            pools().flat_map(|(s, p, c)| {
                MIRROR_SKIPS.iter().zip(&c.mirror.skips).map(move |(r, n)| {
                    (
                        [("service", s), ("pool", p), ("reason", *r)],
                        counter(load(n)),
                    )
                })
            }),
        )?;
        {
            let mut m = enc.encode_descriptor(
                "switchyard_mirror_duration",
                "Time from sending a mirror copy to its answer's head, by service and pool.",
                Some(&Unit::Seconds),
                MetricType::Histogram,
            )?;
            for (s, p, c) in pools() {
                let (sum, count, buckets) = c.mirror.latency.read();
                m.encode_family(&[("service", s), ("pool", p)])?
                    .encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?;
            }
        }
        family(
            &mut enc,
            "switchyard_pool_upstream_failures",
            "Failed upstream attempts on each pool (every reason).",
            None,
            pools().map(|(s, p, c)| ([("service", s), ("pool", p)], counter(load(&c.failures)))),
        )?;
        family(
            &mut enc,
            "switchyard_upstream_attempts",
            "Upstream attempts made (retries included), by service and pool.",
            None,
            pools().map(|(s, p, c)| ([("service", s), ("pool", p)], counter(load(&c.attempts)))),
        )?;
        let by_reason = |pick: fn(&ServiceCounters) -> &[AtomicU64; REASONS.len()]| {
            services().flat_map(move |(s, c)| {
                REASONS
                    .iter()
                    .zip(pick(c))
                    .map(move |(r, n)| ([("service", s), ("reason", *r)], counter(load(n))))
            })
        };
        family(
            &mut enc,
            "switchyard_upstream_failures",
            "Failed upstream attempts, by service and reason.",
            None,
            by_reason(|c| &c.failures),
        )?;
        family(
            &mut enc,
            "switchyard_upstream_retries",
            "Failed upstream attempts that were retried, by service and reason.",
            None,
            by_reason(|c| &c.retries),
        )?;
        family(
            &mut enc,
            "switchyard_ejections",
            "Servers ejected after consecutive failures, by service.",
            None,
            services().map(|(s, c)| ([("service", s)], counter(load(&c.ejections)))),
        )?;
        let switches = metrics
            .switches
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        family(
            &mut enc,
            "switchyard_switches",
            "Switches, rollbacks and splits that changed where a service routes, by service and kind.",
            None,
            switches
                .iter()
                .map(|((s, k), n)| ([("service", s.as_str()), ("kind", k.as_str())], counter(*n))),
        )?;
        family(
            &mut enc,
            "switchyard_config_reloads",
            "Config reloads, by result (ok, rejected: invalid config, failed: anything else).",
            None,
            ["ok", "rejected", "failed"]
                .iter()
                .zip(&metrics.reloads)
                .map(|(r, n)| ([("result", *r)], counter(load(n)))),
        )?;
        encode_gauges(&mut enc, shared, &snapshot)?;
        if let Some(fleet) = shared.metrics.fleet.get() {
            encode_fleet(&mut enc, fleet)?;
        }
        super::process::encode(&mut enc)
    }
}

/// Fleet mode: whether etcd answers, the revision applied here, and the nodes alive.
fn encode_fleet(enc: &mut DescriptorEncoder, fleet: &crate::fleet::Fleet) -> fmt::Result {
    let status = fleet.status();
    family(
        enc,
        "switchyard_fleet_connected",
        "1 while the fleet's store (etcd) answers this instance, 0 while it does not (decisions then stay as last applied, and flips are refused).",
        None,
        [(NO_LABELS, gauge(i64::from(status.connected)))],
    )?;
    family(
        enc,
        "switchyard_fleet_applied_revision",
        "The fleet store revision up to which this instance has applied the decisions.",
        None,
        [(NO_LABELS, gauge(status.revision))],
    )?;
    let alive = status.nodes.iter().filter(|n| n.alive).count();
    family(
        enc,
        "switchyard_fleet_nodes_alive",
        "Nodes of the fleet whose report is live, as this instance sees them.",
        None,
        [(NO_LABELS, gauge(i64::try_from(alive).unwrap_or(i64::MAX)))],
    )
}

/// The facts about now, read from the snapshot in force.
fn encode_gauges(enc: &mut DescriptorEncoder, shared: &Shared, snap: &Snapshot) -> fmt::Result {
    let now = Instant::now();
    family(
        enc,
        "switchyard_snapshot_generation",
        "Generation of the routing snapshot in force.",
        None,
        [(
            NO_LABELS,
            gauge(i64::try_from(snap.generation).unwrap_or(i64::MAX)),
        )],
    )?;
    family(
        enc,
        "switchyard_open_connections",
        "Client connections open now.",
        None,
        [(
            NO_LABELS,
            gauge(i64::try_from(shared.connections.count()).unwrap_or(i64::MAX)),
        )],
    )?;
    family(
        enc,
        "switchyard_parked_connections",
        "Idle HTTP/1 client connections parked now: open, waiting for a request, holding no buffers.",
        None,
        [(
            NO_LABELS,
            gauge(i64::try_from(shared.connections.parked_count()).unwrap_or(i64::MAX)),
        )],
    )?;
    let pools = || {
        snap.services
            .iter()
            .flat_map(|s| s.pools.iter().enumerate().map(move |(i, p)| (&**s, i, p)))
    };
    family(
        enc,
        "switchyard_active_pool",
        "1 for the active pool (colour) of each service, 0 for the others.",
        None,
        pools().map(|(s, i, p)| {
            (
                [("service", s.name.as_str()), ("pool", p.name.as_str())],
                gauge(i64::from(s.active == i)),
            )
        }),
    )?;
    family(
        enc,
        "switchyard_pool_live",
        "1 for each pool that takes new requests (the active one, or every pool with a split weight).",
        None,
        pools().map(|(s, i, p)| {
            (
                [("service", s.name.as_str()), ("pool", p.name.as_str())],
                gauge(i64::from(s.is_live(i))),
            )
        }),
    )?;
    family(
        enc,
        "switchyard_pool_in_flight",
        "Requests in flight on each pool.",
        None,
        pools().map(|(s, _, p)| {
            (
                [("service", s.name.as_str()), ("pool", p.name.as_str())],
                gauge(i64::from(p.state.in_flight())),
            )
        }),
    )?;
    let servers = || {
        pools().flat_map(|(s, _, p)| {
            p.servers.iter().map(move |srv| {
                let addr = srv.state.addr.to_string();
                (s.name.as_str(), p.name.as_str(), addr, &srv.state)
            })
        })
    };
    family(
        enc,
        "switchyard_server_healthy",
        "1 when a server passes its health checks and is not ejected, else 0.",
        None,
        servers().map(|(s, p, addr, st)| {
            let up = st.health() == Health::Up && !st.is_ejected(now);
            (
                ([("service", s), ("pool", p)], [("server", addr)]),
                gauge(i64::from(up)),
            )
        }),
    )?;
    family(
        enc,
        "switchyard_server_failures",
        "Failed attempts of real traffic counted against each server (the ones that lead to ejection).",
        None,
        servers().map(|(s, p, addr, st)| {
            (
                ([("service", s), ("pool", p)], [("server", addr)]),
                counter(st.failures_total()),
            )
        }),
    )?;
    family(
        enc,
        "switchyard_server_ejected",
        "1 while a server is ejected after failures of real traffic, else 0.",
        None,
        servers().map(|(s, p, addr, st)| {
            (
                ([("service", s), ("pool", p)], [("server", addr)]),
                gauge(i64::from(st.is_ejected(now))),
            )
        }),
    )?;
    family(
        enc,
        "switchyard_server_in_flight",
        "Requests in flight on each server.",
        None,
        servers().map(|(s, p, addr, st)| {
            (
                ([("service", s), ("pool", p)], [("server", addr)]),
                gauge(i64::from(st.in_flight())),
            )
        }),
    )
}
