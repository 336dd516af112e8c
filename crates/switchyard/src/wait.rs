//! Waiting on the proxy's status: for a pool to have a healthy server (before a switch) or
//! for a pool to drain (after one). Both poll `GET /status` and give up after a deadline.

use std::time::Duration;

use anyhow::bail;
use switchyard_proxy::status::{PoolStatus, StatusReport};
use tokio::time::Instant;

use crate::client::AdminClient;

/// Time between two looks at `/status`.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// What a look at one pool concluded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The condition holds.
    Done,
    /// The condition cannot hold any more, or no longer matters; the text says why.
    Moot(String),
    /// Not yet; the text says what is still missing.
    Pending(String),
}

/// The pool `pool` of service `service` in a report, if both exist.
fn find<'a>(report: &'a StatusReport, service: &str, pool: &str) -> Option<&'a PoolStatus> {
    report.services.get(service)?.pools.get(pool)
}

/// Whether `pool` has a server that passes its health checks and is not ejected.
pub fn healthy(report: &StatusReport, service: &str, pool: &str) -> Verdict {
    match find(report, service, pool) {
        None => Verdict::Moot(format!("service `{service}` has no pool `{pool}`")),
        Some(p) if p.servers.iter().any(|s| s.healthy) => Verdict::Done,
        Some(p) => {
            let states = p
                .servers
                .iter()
                .map(|s| {
                    format!(
                        "{} {}",
                        s.addr,
                        if s.ejected { "ejected" } else { &s.health }
                    )
                })
                .collect::<Vec<_>>()
                .join(", ");
            Verdict::Pending(format!(
                "pool `{pool}` of service `{service}` has no healthy server ({states})"
            ))
        }
    }
}

/// Whether `pool` has finished its requests in flight.
pub fn drained(report: &StatusReport, service: &str, pool: &str) -> Verdict {
    match find(report, service, pool) {
        None => Verdict::Moot(format!("service `{service}` no longer has a pool `{pool}`")),
        Some(p) if p.state == "active" => Verdict::Moot(format!("`{pool}` is live again")),
        Some(p) if p.in_flight == 0 && p.state != "draining" => Verdict::Done,
        Some(p) => Verdict::Pending(format!(
            "pool `{pool}` of service `{service}` still has {} request{} in flight",
            p.in_flight,
            if p.in_flight == 1 { "" } else { "s" }
        )),
    }
}

/// Whether every live node of the fleet has applied revision `revision`.
pub fn converged(report: &StatusReport, revision: i64) -> Verdict {
    let Some(fleet) = &report.fleet else {
        return Verdict::Moot("the proxy is not in fleet mode".into());
    };
    let behind = fleet
        .nodes
        .iter()
        .filter(|n| n.alive && n.applied_revision < revision)
        .map(|n| format!("{} at {}", n.node, n.applied_revision))
        .collect::<Vec<_>>();
    if behind.is_empty() {
        Verdict::Done
    } else {
        Verdict::Pending(format!(
            "nodes still before revision {revision}: {}",
            behind.join(", ")
        ))
    }
}

/// Whether the guard has given its verdict on the newest switch of `service`: `Done` when its
/// window passed, `Moot` (with why) when it rolled back or there is no guard.
pub fn guarded(report: &StatusReport, service: &str) -> Verdict {
    let Some(svc) = report.services.get(service) else {
        return Verdict::Moot(format!("no service `{service}`"));
    };
    let Some(guard) = &svc.guard else {
        return Verdict::Moot(format!(
            "service `{service}` has no [services.{service}.guard]"
        ));
    };
    match guard.verdict.as_str() {
        "watching" => Verdict::Pending(format!(
            "the guard is still watching {} ({} answers, error rate {:.3}, until {})",
            guard.pool, guard.requests, guard.error_rate, guard.until
        )),
        "passed" => Verdict::Done,
        other => Verdict::Moot(format!(
            "the guard {}: {}",
            other.replace('_', " "),
            guard.reason.clone().unwrap_or_default()
        )),
    }
}

/// Polls `/status` until `check` is no longer pending; fails after `limit` with the last reason.
/// Returns the verdict and how long it took.
pub async fn poll(
    client: &AdminClient,
    limit: Duration,
    check: impl Fn(&StatusReport) -> Verdict,
) -> anyhow::Result<(Verdict, Duration)> {
    let started = Instant::now();
    loop {
        let report = client.status().await?;
        match check(&report) {
            Verdict::Pending(why) => {
                if started.elapsed() >= limit {
                    bail!(
                        "{why} after {}",
                        switchyard_config::units::format_duration(limit)
                    );
                }
            }
            done => return Ok((done, started.elapsed())),
        }
        let left = limit.saturating_sub(started.elapsed());
        tokio::time::sleep(POLL_INTERVAL.min(left.max(Duration::from_millis(1)))).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use switchyard_proxy::status::{ServerStatus, ServiceStatus};

    fn report(state: &str, in_flight: u32, health: &str) -> StatusReport {
        let server = ServerStatus {
            addr: "127.0.0.1:5000".into(),
            healthy: health == "up",
            health: health.into(),
            ejected: false,
            in_flight,
        };
        let pool = PoolStatus {
            state: state.into(),
            in_flight,
            share: 0.0,
            servers: vec![server],
        };
        StatusReport {
            generation: 1,
            names: BTreeMap::new(),
            fleet: None,
            services: BTreeMap::from([(
                "app".to_string(),
                ServiceStatus {
                    active: "blue".into(),
                    previous: Some("green".into()),
                    split: None,
                    sticky: false,
                    ramp: None,
                    guard: None,
                    mirror: None,
                    preview: None,
                    live_pool_available: true,
                    all_down: "try_all".into(),
                    pools: BTreeMap::from([("green".to_string(), pool)]),
                },
            )]),
        }
    }

    #[test]
    fn health_verdicts() {
        assert_eq!(
            healthy(&report("idle", 0, "up"), "app", "green"),
            Verdict::Done
        );
        assert!(matches!(
            healthy(&report("idle", 0, "down"), "app", "green"),
            Verdict::Pending(why) if why.contains("127.0.0.1:5000 down")
        ));
        assert!(matches!(
            healthy(&report("idle", 0, "up"), "app", "purple"),
            Verdict::Moot(_)
        ));
        assert!(matches!(
            healthy(&report("idle", 0, "up"), "web", "green"),
            Verdict::Moot(_)
        ));
    }

    #[test]
    fn convergence_verdicts() {
        use switchyard_proxy::fleet::{FleetStatus, NodeStatus};
        let node = |name: &str, rev, alive| NodeStatus {
            node: name.into(),
            applied_revision: rev,
            alive,
            at: String::new(),
            error: None,
        };
        let mut r = report("active", 0, "up");
        assert!(matches!(converged(&r, 5), Verdict::Moot(_)));
        r.fleet = Some(FleetStatus {
            store: "etcd".into(),
            prefix: "/p".into(),
            node: "a".into(),
            connected: true,
            since: String::new(),
            revision: 5,
            error: None,
            nodes: vec![node("a", 5, true), node("b", 4, true), node("c", 1, false)],
        });
        assert!(
            matches!(converged(&r, 5), Verdict::Pending(why) if why.contains("b at 4") && !why.contains("c at"))
        );
        if let Some(f) = r.fleet.as_mut() {
            f.nodes[1].applied_revision = 6;
        }
        assert_eq!(converged(&r, 5), Verdict::Done);
    }

    #[test]
    fn drain_verdicts() {
        assert_eq!(
            drained(&report("idle", 0, "up"), "app", "green"),
            Verdict::Done
        );
        assert!(matches!(
            drained(&report("draining", 1, "up"), "app", "green"),
            Verdict::Pending(why) if why.contains("1 request in flight")
        ));
        assert!(matches!(
            drained(&report("active", 3, "up"), "app", "green"),
            Verdict::Moot(_)
        ));
        assert!(matches!(
            drained(&report("idle", 0, "up"), "app", "purple"),
            Verdict::Moot(_)
        ));
    }
}
