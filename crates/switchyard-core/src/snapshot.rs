//! The immutable routing snapshot: generation, services, pools and the active colour of each.
//!
//! One `Snapshot` lives behind one `ArcSwap` in the proxy. A request loads it once and keeps the
//! `Arc` for its whole life; a switch builds a new snapshot and stores it. Nothing in a snapshot
//! ever changes after it is built: the live facts (health, in-flight) are reached through the
//! `Arc`s of the `live` module, which are shared by consecutive snapshots.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use switchyard_config::{Balance, Config, LimitsConfig, ServiceConfig};

use crate::live::{PoolState, Registry, ServerState};
use crate::retry::RetryBudget;
use crate::router::Router;
use tokio::time::Instant;

/// The runtime decisions for one service: what an operator changed since the config was loaded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceDecision {
    /// The pool that receives traffic.
    pub active: String,
    /// The pool that was active before the last switch, the target of a rollback.
    pub previous: Option<String>,
    /// A weighted split of new requests between pools, when one is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<BTreeMap<String, u32>>,
}

/// The runtime decisions of every service, by service name.
pub type Decisions = BTreeMap<String, ServiceDecision>;

/// The decisions a config implies on its own: each service's `active` pool, no split.
pub fn decisions_from_config(config: &Config) -> Decisions {
    config
        .services
        .iter()
        .map(|(name, svc)| {
            (
                name.clone(),
                ServiceDecision {
                    active: svc.active.clone(),
                    previous: None,
                    split: None,
                },
            )
        })
        .collect()
}

/// One server of a pool, as the snapshot sees it.
#[derive(Debug, Clone)]
pub struct PoolServer {
    /// Live state shared with every other snapshot.
    pub state: Arc<ServerState>,
    /// Relative weight.
    pub weight: u32,
}

/// One pool of a service.
#[derive(Debug)]
pub struct Pool {
    /// The pool's name (its colour).
    pub name: String,
    /// Its servers, in config order.
    pub servers: Vec<PoolServer>,
    /// How it picks a server.
    pub balance: Balance,
    /// Live pool state (in-flight count, round-robin cursor).
    pub state: Arc<PoolState>,
    /// Sum of the servers' weights.
    pub(crate) total_weight: u64,
}

/// One service in a snapshot.
#[derive(Debug)]
pub struct Service {
    /// The service's name.
    pub name: String,
    /// Its validated config (retry policy, timeouts, health settings).
    pub config: Arc<ServiceConfig>,
    /// Its pools, in name order.
    pub pools: Vec<Pool>,
    /// Index of the active pool.
    pub active: usize,
    /// Index of the previously active pool.
    pub previous: Option<usize>,
    /// Per-pool weights of a split, indexed like `pools`; `None` sends everything to `active`.
    pub split: Option<Vec<u32>>,
    /// The service's retry budget (live, shared across snapshots).
    pub budget: Arc<RetryBudget>,
}

/// A weighted draw among the indexes that `eligible` accepts; `None` when their weights sum
/// to 0.
fn draw(weights: &[u32], eligible: impl Fn(usize) -> bool) -> Option<usize> {
    let weight = |i: usize, w: u32| if eligible(i) { u64::from(w) } else { 0 };
    let total: u64 = weights.iter().enumerate().map(|(i, w)| weight(i, *w)).sum();
    if total == 0 {
        return None;
    }
    let mut point = fastrand::u64(0..total);
    for (i, w) in weights.iter().enumerate() {
        let w = weight(i, *w);
        if point < w {
            return Some(i);
        }
        point -= w;
    }
    None
}

/// Whether a pool takes new traffic, finishes old traffic, or has none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PoolRole {
    /// Receives new requests.
    Active,
    /// Receives no new requests but still has some in flight.
    Draining,
    /// Receives nothing and has nothing in flight.
    Idle,
}

impl Service {
    /// The pool named `name`.
    pub fn pool_index(&self, name: &str) -> Option<usize> {
        self.pools.iter().position(|p| p.name == name)
    }

    /// The active pool.
    pub fn active_pool(&self) -> &Pool {
        &self.pools[self.active]
    }

    /// The index of the pool a new request goes to: the active one, or a weighted draw when a
    /// split is set (see [`Service::pick_pool`]).
    pub fn choose_pool(&self) -> usize {
        self.pick_pool(Instant::now(), &[])
    }

    /// The pool for an attempt of a request that has tried the servers `tried`: the active
    /// pool, or with a split a weighted draw among the split's pools that have a server this
    /// request has not tried and that is available (healthy, not ejected). A pool of the split
    /// with no available server gets no new requests while another one has; when none has,
    /// the draw is among those with untried servers, then among all of the split.
    pub fn pick_pool(&self, now: Instant, tried: &[SocketAddr]) -> usize {
        let Some(weights) = &self.split else {
            return self.active;
        };
        let untried = |i: usize| {
            self.pools[i]
                .servers
                .iter()
                .any(|s| !tried.contains(&s.state.addr))
        };
        let available = |i: usize| untried(i) && self.pools[i].has_available(now);
        draw(weights, available)
            .or_else(|| draw(weights, untried))
            .or_else(|| draw(weights, |_| true))
            .unwrap_or(self.active)
    }

    /// The share of new requests each pool gets now (indexed like `pools`), health taken into
    /// account as [`Service::pick_pool`] does it.
    pub fn effective_shares(&self, now: Instant) -> Vec<f64> {
        let Some(weights) = &self.split else {
            return (0..self.pools.len())
                .map(|i| if i == self.active { 1.0 } else { 0.0 })
                .collect();
        };
        let available = |i: usize| self.pools[i].has_available(now);
        let counted: Vec<u64> = if weights
            .iter()
            .enumerate()
            .any(|(i, w)| *w > 0 && available(i))
        {
            weights
                .iter()
                .enumerate()
                .map(|(i, w)| if available(i) { u64::from(*w) } else { 0 })
                .collect()
        } else {
            weights.iter().map(|w| u64::from(*w)).collect()
        };
        let total: u64 = counted.iter().sum();
        counted
            .iter()
            .map(|w| {
                if total == 0 {
                    0.0
                } else {
                    *w as f64 / total as f64
                }
            })
            .collect()
    }

    /// Whether the pool at `index` takes new traffic.
    pub fn is_live(&self, index: usize) -> bool {
        match &self.split {
            Some(weights) => weights.get(index).is_some_and(|w| *w > 0),
            None => index == self.active,
        }
    }

    /// The role of the pool at `index` right now.
    pub fn role(&self, index: usize) -> PoolRole {
        if self.is_live(index) {
            PoolRole::Active
        } else if self.pools[index].state.in_flight() > 0 {
            PoolRole::Draining
        } else {
            PoolRole::Idle
        }
    }

    /// This service's decision as it stands in this snapshot.
    pub fn decision(&self) -> ServiceDecision {
        ServiceDecision {
            active: self.pools[self.active].name.clone(),
            previous: self.previous.map(|i| self.pools[i].name.clone()),
            split: self.split.as_ref().map(|w| {
                self.pools
                    .iter()
                    .zip(w)
                    .map(|(p, w)| (p.name.clone(), *w))
                    .collect()
            }),
        }
    }
}

/// An immutable routing table: what every request is routed by.
#[derive(Debug)]
pub struct Snapshot {
    /// Increases by one with every switch, rollback, split or reload.
    pub generation: u64,
    /// Services in name order.
    pub services: Vec<Arc<Service>>,
    /// Client-side limits in force with this snapshot.
    pub limits: LimitsConfig,
    router: Router,
}

impl Snapshot {
    /// Builds a snapshot from a validated config and the runtime decisions to apply on top.
    ///
    /// A decision naming a service or pool the config does not have is ignored (the config's
    /// `active` applies). Live state comes from `registry`, so it carries over from older snapshots.
    pub fn build(
        config: &Config,
        decisions: &Decisions,
        registry: &Registry,
        generation: u64,
    ) -> Snapshot {
        let mut services = Vec::with_capacity(config.services.len());
        for (name, svc) in &config.services {
            let pools: Vec<Pool> = svc
                .pools
                .iter()
                .map(|(pool_name, pool)| {
                    // A server written as a host name stands for every address it resolves
                    // to now (each with the server's weight).
                    let servers: Vec<PoolServer> = pool
                        .servers
                        .iter()
                        .flat_map(|s| {
                            let addrs = s
                                .host
                                .as_deref()
                                .and_then(|h| registry.resolved(h, s.addr.port()))
                                .filter(|a| !a.is_empty())
                                .unwrap_or_else(|| vec![s.addr]);
                            addrs.into_iter().map(|addr| PoolServer {
                                state: registry.server(addr),
                                weight: s.weight.max(1),
                            })
                        })
                        .collect();
                    Pool {
                        name: pool_name.clone(),
                        total_weight: servers.iter().map(|s| u64::from(s.weight)).sum(),
                        servers,
                        balance: pool.balance,
                        state: registry.pool(name, pool_name),
                    }
                })
                .collect();
            let index = |n: &str| pools.iter().position(|p| p.name == n);
            let config_active = index(&svc.active).unwrap_or(0);
            let decision = decisions.get(name);
            let active = decision
                .and_then(|d| index(&d.active))
                .unwrap_or(config_active);
            let previous = decision.and_then(|d| d.previous.as_deref()).and_then(index);
            let split = decision.and_then(|d| d.split.as_ref()).map(|weights| {
                pools
                    .iter()
                    .map(|p| weights.get(&p.name).copied().unwrap_or(0))
                    .collect::<Vec<u32>>()
            });
            let split = split.filter(|w| w.iter().any(|w| *w > 0));
            services.push(Arc::new(Service {
                name: name.clone(),
                config: Arc::new(svc.clone()),
                pools,
                active,
                previous,
                split,
                budget: registry.budget(name),
            }));
        }
        let router = Router::new(&services);
        Snapshot {
            generation,
            services,
            limits: config.limits.clone(),
            router,
        }
    }

    /// The service a request for `host` (no port, any case) and `path` goes to.
    pub fn route(&self, host: &str, path: &str) -> Option<&Arc<Service>> {
        self.router
            .route(host, path)
            .and_then(|i| self.services.get(i))
    }

    /// The service named `name`.
    pub fn service(&self, name: &str) -> Option<&Arc<Service>> {
        self.services
            .binary_search_by(|s| s.name.as_str().cmp(name))
            .ok()
            .and_then(|i| self.services.get(i))
    }

    /// Every service's decision as it stands in this snapshot.
    pub fn decisions(&self) -> Decisions {
        self.services
            .iter()
            .map(|s| (s.name.clone(), s.decision()))
            .collect()
    }
}
