//! The immutable routing snapshot: generation, services, pools and the active colour of each.
//!
//! One `Snapshot` lives behind one `ArcSwap` in the proxy. A request loads it once and keeps the
//! `Arc` for its whole life; a switch builds a new snapshot and stores it. Nothing in a snapshot
//! ever changes after it is built: the live facts (health, in-flight) are reached through the
//! `Arc`s of the `live` module, which are shared by consecutive snapshots.
//!
//! Everything else a request reads is resolved when the snapshot is built and reached from it:
//! each service's traffic counters, rate limiters and parsed response headers, each pool's
//! counters, each server's connection queue. [`Snapshot::build_next`] takes the counters and
//! limiters over from the snapshot in force for the names (and limit settings) that stay, so a
//! switch or a reload is one `store`, and a build that is never stored changes nothing.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use switchyard_config::{Balance, Config, LimitsConfig, ServiceConfig};

use crate::counters::{PoolCounters, ServiceCounters};
use crate::live::{PoolState, Registry, ServerState};
use crate::ratelimit::ServiceLimits;
use crate::retry::RetryBudget;
use crate::router::Router;
use tokio::time::Instant;

/// The runtime decisions for one service: what an operator changed since the config was loaded.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ServiceDecision {
    /// The pool that receives traffic.
    pub active: String,
    /// The pool that was active before the last switch, the target of a rollback.
    pub previous: Option<String>,
    /// A weighted split of new requests between pools, when one is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<BTreeMap<String, u32>>,
    /// With a split: a cookie keeps each client on the pool it first got, while the split lasts.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sticky: bool,
    /// A ramp under way: the split moves from `from` to `to` in even steps, then a switch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ramp: Option<Ramp>,
    /// Copies of live requests to another pool (`[services.X.mirror]`, or set at runtime).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<Mirror>,
}

/// Where copies of live requests go, and how many (SPEC §5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mirror {
    /// The pool the copies go to.
    pub to: String,
    /// The share of requests copied, 0 to 100.
    pub percent: u32,
    /// Only requests with these methods are copied.
    pub methods: Vec<String>,
    /// Copies in flight at most; beyond it a copy is skipped.
    pub max_in_flight: u32,
}

impl From<&switchyard_config::MirrorConfig> for Mirror {
    fn from(c: &switchyard_config::MirrorConfig) -> Self {
        Mirror {
            to: c.to.clone(),
            percent: c.percent,
            methods: c.methods.clone(),
            max_in_flight: c.max_in_flight,
        }
    }
}

/// A mirror as a snapshot holds it: the target pool by index.
#[derive(Debug, Clone)]
pub struct MirrorTarget {
    /// Index of the pool the copies go to.
    pub pool: usize,
    /// The decision it comes from.
    pub mirror: Mirror,
}

/// A ramped switch under way (wall-clock times, so a restart continues it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ramp {
    /// The colour the ramp moves away from (active when it started).
    pub from: String,
    /// The colour it moves to.
    pub to: String,
    /// When it started, in milliseconds since the Unix epoch.
    pub started_ms: u64,
    /// How long it lasts, in milliseconds.
    pub duration_ms: u64,
    /// How many even steps: the first at the start, the last (the switch) at the end.
    pub steps: u32,
}

impl Ramp {
    /// The step in force at `now_ms`: 1 from the start, `steps` (the switch) once the whole
    /// duration has passed, evenly in between.
    pub fn step_at(&self, now_ms: u64) -> u32 {
        let elapsed = now_ms.saturating_sub(self.started_ms);
        let steps = self.steps.max(1);
        if self.duration_ms == 0 || elapsed >= self.duration_ms || steps == 1 {
            return steps;
        }
        let step = 1 + u128::from(elapsed) * u128::from(steps - 1) / u128::from(self.duration_ms);
        u32::try_from(step).unwrap_or(steps).min(steps)
    }

    /// When step `step` (1-based) is due, in milliseconds since the Unix epoch.
    pub fn due_ms(&self, step: u32) -> u64 {
        let steps = self.steps.max(2);
        let offset = u128::from(self.duration_ms) * u128::from(step.saturating_sub(1))
            / u128::from(steps - 1);
        self.started_ms
            .saturating_add(u64::try_from(offset).unwrap_or(u64::MAX))
    }

    /// The split weights of step `step` (out of 100): `to` gets `100 * step / steps`.
    pub fn weights(&self, step: u32) -> BTreeMap<String, u32> {
        let steps = self.steps.max(1);
        let to = 100 * step.min(steps) / steps;
        BTreeMap::from([(self.to.clone(), to), (self.from.clone(), 100 - to)])
    }
}

#[cfg(test)]
mod ramp_tests {
    use super::Ramp;

    #[test]
    fn a_ramp_moves_in_even_steps_and_ends_at_its_duration() {
        let ramp = Ramp {
            from: "green".into(),
            to: "blue".into(),
            started_ms: 1_000,
            duration_ms: 9_000,
            steps: 10,
        };
        assert_eq!(ramp.step_at(0), 1, "before the start: the first step");
        assert_eq!(ramp.step_at(1_000), 1);
        assert_eq!(ramp.step_at(1_999), 1);
        assert_eq!(ramp.step_at(2_000), 2);
        assert_eq!(ramp.step_at(9_999), 9);
        assert_eq!(ramp.step_at(10_000), 10, "the switch at the end");
        assert_eq!(ramp.step_at(u64::MAX), 10);
        for step in 1..=10 {
            assert_eq!(ramp.step_at(ramp.due_ms(step)), step, "step {step}");
            let w = ramp.weights(step);
            assert_eq!(w["blue"], 10 * step);
            assert_eq!(w["blue"] + w["green"], 100);
        }
        assert_eq!(ramp.due_ms(10), 10_000);
        let instant = Ramp {
            duration_ms: 0,
            ..ramp
        };
        assert_eq!(instant.step_at(0), 10);
    }
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
                    mirror: svc.mirror.as_ref().map(Mirror::from),
                    ..ServiceDecision::default()
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
    /// The server as a member of this pool, for counting requests in flight.
    pub member: Arc<crate::live::Member>,
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
    /// Its traffic counters, taken over by the next snapshot while the pool keeps its name.
    pub counters: Arc<PoolCounters>,
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
    /// With a split: keep each client on the pool it first got, by a cookie.
    pub sticky: bool,
    /// A ramp under way, as decided.
    pub ramp: Option<Ramp>,
    /// Where copies of live requests go, if anywhere.
    pub mirror: Option<MirrorTarget>,
    /// The service's retry budget (live, shared across snapshots).
    pub budget: Arc<RetryBudget>,
    /// Its counters that are not per pool, taken over by the next snapshot while the service
    /// keeps its name.
    pub counters: Arc<ServiceCounters>,
    /// Its per-client rate limits (empty without `rate_limits`), each limiter taken over by the
    /// next snapshot while its entry is unchanged.
    pub rate_limits: ServiceLimits,
    /// Its `response_headers`, parsed once here rather than on every answer (the config
    /// validated them; one that would not parse is left out).
    pub response_headers: Vec<(http::HeaderName, http::HeaderValue)>,
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
            sticky: self.sticky && self.split.is_some(),
            ramp: self.ramp.clone(),
            mirror: self.mirror.as_ref().map(|m| m.mirror.clone()),
        }
    }

    /// The pool a sticky cookie names, when it may still be used: a pool of the split with a
    /// weight above 0 and an available server.
    pub fn sticky_pool(&self, name: &str, now: Instant) -> Option<usize> {
        let weights = self.split.as_ref()?;
        let i = self.pool_index(name)?;
        (weights.get(i).is_some_and(|w| *w > 0) && self.pools[i].has_available(now)).then_some(i)
    }
}

/// Header names and values as `http` types; a pair that does not parse is left out.
fn parsed_headers(headers: &[(String, String)]) -> Vec<(http::HeaderName, http::HeaderValue)> {
    headers
        .iter()
        .filter_map(|(name, value)| {
            Some((
                http::HeaderName::from_bytes(name.as_bytes()).ok()?,
                http::HeaderValue::from_str(value).ok()?,
            ))
        })
        .collect()
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
    /// `active` applies). Live state comes from `registry`, so it carries over from older
    /// snapshots; counters and rate limiters start afresh (see [`Snapshot::build_next`]).
    pub fn build(
        config: &Config,
        decisions: &Decisions,
        registry: &Registry,
        generation: u64,
    ) -> Snapshot {
        Self::build_after(None, config, decisions, registry, generation)
    }

    /// Builds the snapshot that follows this one (its generation is one more). As
    /// [`Snapshot::build`], and besides: a service or pool that keeps its name keeps its
    /// counters, and a rate-limit entry whose settings are unchanged keeps its limiter and its
    /// buckets. Names that are gone take their counters with them (a name that comes back later
    /// starts at zero). Nothing is changed in `self`, so building a snapshot that is then not
    /// stored (its decisions could not be saved) leaves the one in force exactly as it was.
    pub fn build_next(&self, config: &Config, decisions: &Decisions, registry: &Registry) -> Self {
        Self::build_after(Some(self), config, decisions, registry, self.generation + 1)
    }

    fn build_after(
        previous: Option<&Snapshot>,
        config: &Config,
        decisions: &Decisions,
        registry: &Registry,
        generation: u64,
    ) -> Snapshot {
        let mut services = Vec::with_capacity(config.services.len());
        for (name, svc) in &config.services {
            let before = previous.and_then(|p| p.service(name));
            let pools: Vec<Pool> = svc
                .pools
                .iter()
                .map(|(pool_name, pool)| {
                    let pool_state = registry.pool(name, pool_name);
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
                            addrs.into_iter().map(|addr| {
                                let state = registry.server(addr);
                                PoolServer {
                                    member: Arc::new(crate::live::Member::new(
                                        state.clone(),
                                        pool_state.clone(),
                                    )),
                                    state,
                                    weight: s.weight.max(1),
                                }
                            })
                        })
                        .collect();
                    let counters = before
                        .and_then(|b| b.pools.iter().find(|p| p.name == *pool_name))
                        .map(|p| p.counters.clone())
                        .unwrap_or_default();
                    Pool {
                        name: pool_name.clone(),
                        total_weight: servers.iter().map(|s| u64::from(s.weight)).sum(),
                        servers,
                        balance: pool.balance,
                        state: pool_state,
                        counters,
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
            let sticky = split.is_some() && decision.is_some_and(|d| d.sticky);
            let ramp = decision
                .and_then(|d| d.ramp.clone())
                .filter(|r| index(&r.to).is_some() && index(&r.from).is_some());
            let mirror = decision.and_then(|d| d.mirror.clone()).and_then(|m| {
                Some(MirrorTarget {
                    pool: index(&m.to)?,
                    mirror: m,
                })
            });
            services.push(Arc::new(Service {
                name: name.clone(),
                config: Arc::new(svc.clone()),
                pools,
                active,
                previous,
                split,
                sticky,
                ramp,
                mirror,
                budget: registry.budget(name),
                counters: before.map(|b| b.counters.clone()).unwrap_or_default(),
                rate_limits: ServiceLimits::carried_over(
                    &svc.rate_limits,
                    before.map(|b| &b.rate_limits),
                ),
                response_headers: parsed_headers(&svc.response_headers),
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
