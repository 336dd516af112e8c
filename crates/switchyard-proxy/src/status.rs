//! The status report: what `GET /status` answers and `switchyard status` prints.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use switchyard_config::AllDown;
use switchyard_core::{Health, PoolRole, Snapshot};
use tokio::time::Instant;

/// The whole proxy's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    /// The snapshot generation.
    pub generation: u64,
    /// Services by name.
    pub services: BTreeMap<String, ServiceStatus>,
    /// Servers written as host names (`NAME:PORT`), by name: what each resolves to now, and
    /// the last resolution error, if the last resolution failed (the last addresses stay).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub names: BTreeMap<String, NameStatus>,
    /// Fleet mode: the store, whether it answers, and every node's applied revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fleet: Option<crate::fleet::FleetStatus>,
}

/// One host name of the config and what it resolves to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameStatus {
    /// The addresses in use (the last ones resolved).
    pub addresses: Vec<String>,
    /// Why the last resolution failed, when it did.
    #[serde(default)]
    pub error: Option<String>,
    /// Consecutive failed resolutions.
    #[serde(default)]
    pub failures: u32,
}

/// One service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceStatus {
    /// The active pool.
    pub active: String,
    /// The previously active pool.
    pub previous: Option<String>,
    /// The weighted split, when one is set.
    #[serde(default)]
    pub split: Option<BTreeMap<String, u32>>,
    /// With a split: clients are kept on the pool they first got, by a cookie.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sticky: bool,
    /// A ramp under way: from, to, started (ms since the epoch), duration and steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ramp: Option<switchyard_core::Ramp>,
    /// How a request names a pool to preview it (`[services.NAME.preview]`), when it can.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview: Option<PreviewStatus>,
    /// Where copies of live requests go (`[services.NAME.mirror]` or `PUT /mirror`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<switchyard_core::Mirror>,
    /// The guard's watch of the newest switch (`[services.NAME.guard]`), and its verdict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guard: Option<crate::control::guard::GuardStatus>,
    /// False when every server of the live pool is down or ejected.
    #[serde(default)]
    pub live_pool_available: bool,
    /// What requests meet when the live pool is down: `try_all` or `fail`.
    #[serde(default)]
    pub all_down: String,
    /// Pools by name.
    pub pools: BTreeMap<String, PoolStatus>,
}

/// The preview header and cookie of a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviewStatus {
    /// The request header naming a pool.
    pub header: Option<String>,
    /// The cookie naming a pool.
    pub cookie: Option<String>,
}

/// One pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoolStatus {
    /// `active`, `draining` or `idle`.
    pub state: String,
    /// Requests in flight on this pool.
    pub in_flight: u32,
    /// The share of new requests it gets now (0 to 1): 1 for the active pool without a split;
    /// with a split, its weight's share among the split's pools that have a healthy server.
    #[serde(default)]
    pub share: f64,
    /// Its servers.
    pub servers: Vec<ServerStatus>,
}

/// One server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerStatus {
    /// `host:port`.
    pub addr: String,
    /// Passing health checks (and not ejected).
    pub healthy: bool,
    /// `up`, `down` or `unknown` (not checked yet).
    #[serde(default)]
    pub health: String,
    /// Currently ejected after failures of real traffic.
    #[serde(default)]
    pub ejected: bool,
    /// Requests in flight on this server.
    pub in_flight: u32,
}

fn role_name(role: PoolRole) -> &'static str {
    match role {
        PoolRole::Active => "active",
        PoolRole::Draining => "draining",
        PoolRole::Idle => "idle",
    }
}

fn health_name(h: Health) -> &'static str {
    match h {
        Health::Up => "up",
        Health::Down => "down",
        Health::Unknown => "unknown",
    }
}

impl StatusReport {
    /// The report for a snapshot, with live counts read now.
    pub fn from_snapshot(snapshot: &Snapshot) -> StatusReport {
        let now = Instant::now();
        let services = snapshot
            .services
            .iter()
            .map(|svc| {
                let shares = svc.effective_shares(now);
                let pools = svc
                    .pools
                    .iter()
                    .enumerate()
                    .map(|(i, pool)| {
                        let servers = pool
                            .servers
                            .iter()
                            .map(|s| {
                                let ejected = s.state.is_ejected(now);
                                ServerStatus {
                                    addr: s.state.addr.to_string(),
                                    healthy: s.state.health() == Health::Up && !ejected,
                                    health: health_name(s.state.health()).to_string(),
                                    ejected,
                                    in_flight: s.state.in_flight(),
                                }
                            })
                            .collect();
                        (
                            pool.name.clone(),
                            PoolStatus {
                                state: role_name(svc.role(i)).to_string(),
                                in_flight: pool.state.in_flight(),
                                share: shares.get(i).copied().unwrap_or(0.0),
                                servers,
                            },
                        )
                    })
                    .collect();
                let live_pool_available = (0..svc.pools.len())
                    .filter(|i| svc.is_live(*i))
                    .any(|i| svc.pools[i].has_available(now));
                let decision = svc.decision();
                (
                    svc.name.clone(),
                    ServiceStatus {
                        active: decision.active,
                        previous: decision.previous,
                        split: decision.split,
                        sticky: decision.sticky,
                        ramp: decision.ramp,
                        guard: None,
                        mirror: decision.mirror,
                        preview: {
                            let p = &svc.config.preview;
                            (p.header.is_some() || p.cookie.is_some()).then(|| PreviewStatus {
                                header: p.header.clone(),
                                cookie: p.cookie.clone(),
                            })
                        },
                        live_pool_available,
                        all_down: match svc.config.ejection.all_down {
                            AllDown::TryAll => "try_all",
                            AllDown::Fail => "fail",
                        }
                        .to_string(),
                        pools,
                    },
                )
            })
            .collect();
        StatusReport {
            generation: snapshot.generation,
            services,
            names: BTreeMap::new(),
            fleet: None,
        }
    }
}
