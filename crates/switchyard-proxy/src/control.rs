//! The control plane: the only writer of the routing snapshot.
//!
//! Switch, rollback, split and reload all go through `Controller::commit`, which builds a new
//! snapshot from the running config and the new decisions, persists the decisions (before the
//! snapshot becomes visible, so nothing a caller was told about can be lost by a crash), and
//! stores the snapshot. Writers are serialised by an async mutex; readers never take it.
//!
//! Everything a request reads (pools, counters, rate limiters, connection queues) is resolved
//! while the snapshot is built, without changing anything the snapshot in force uses; the
//! `store` is the one step that makes a change visible. A change that cannot be persisted is
//! therefore dropped whole, and the running snapshot goes on exactly as it was.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use switchyard_config::Config;
use switchyard_core::{Decisions, Health, Service, ServiceDecision, Snapshot};
use tokio::sync::Mutex;
use tokio::time::Instant;

mod audit;
mod drain;
mod error;
mod fleet;
pub(crate) mod guard;
mod mirror;
mod names;
mod persist;
pub(crate) mod ramp;
mod reload_config;

use crate::fleet::Fleet;
use crate::health::HealthSupervisor;
use crate::history::{History, HistoryAction, HistoryEntry};
use crate::shared::Shared;
use crate::state::StateStore;
use audit::{Asked, Change};
pub use error::ControlError;
use fleet::ORIGIN;
use persist::{persisted, restore};

/// How a split is set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SplitOptions {
    /// Split even when no pool named has a healthy server.
    pub force: bool,
    /// Keep each client on the pool it first got, by a cookie, while the split lasts.
    pub sticky: bool,
}

/// The answer to a switch or rollback.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SwitchOutcome {
    /// The service.
    pub service: String,
    /// The pool now active.
    pub active: String,
    /// The pool active before.
    pub previous: Option<String>,
    /// The snapshot generation now in force.
    pub generation: u64,
    /// Fleet mode: the store revision of the service's decision (what `--wait-converged`
    /// waits for every node to have applied).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<i64>,
}

/// The control plane of one running proxy.
pub(crate) struct Controller {
    pub(crate) shared: Arc<Shared>,
    config: Mutex<Config>,
    store: Option<Arc<dyn StateStore>>,
    health: HealthSupervisor,
    /// Every decision made, for `GET /history` and the dashboard.
    history: History,
    /// Swaps the https listeners' certificates on reload; `None` when TLS is off.
    tls: Option<crate::tls::CertReloader>,
    /// What each host name of the config resolved to last, for `/status`.
    names: std::sync::Mutex<BTreeMap<String, crate::status::NameStatus>>,
    /// Set while a binary upgrade hands over: every change is refused.
    frozen: std::sync::atomic::AtomicBool,
    /// Fleet mode: the shared store and this instance's view of it.
    pub(crate) fleet: Option<std::sync::Arc<Fleet>>,
    /// Wakes the ramp task whenever the decisions change.
    pub(crate) ramp_wake: tokio::sync::Notify,
    /// The guard's watch of each service's newest switch, and its verdict.
    guards: std::sync::Mutex<BTreeMap<String, guard::Watch>>,
    /// Wakes the guard task when a watch starts.
    pub(crate) guard_wake: tokio::sync::Notify,
}

impl Controller {
    /// Takes over a proxy whose first snapshot ([`first_snapshot`]) is in `shared`: gives its
    /// servers their connection queues and starts the health checkers.
    pub(crate) fn new(
        shared: Arc<Shared>,
        config: Config,
        store: Option<Arc<dyn StateStore>>,
        history: History,
    ) -> Controller {
        crate::upstream::attach(&shared.snapshot.load());
        let health = HealthSupervisor::default();
        health.sync(&shared, &shared.snapshot.load());
        Controller {
            shared,
            config: Mutex::new(config),
            store,
            health,
            history,
            tls: None,
            names: std::sync::Mutex::new(BTreeMap::new()),
            frozen: std::sync::atomic::AtomicBool::new(false),
            fleet: None,
            ramp_wake: tokio::sync::Notify::new(),
            guards: std::sync::Mutex::new(BTreeMap::new()),
            guard_wake: tokio::sync::Notify::new(),
        }
    }

    /// Publishes every change to this fleet first (fleet mode).
    pub(crate) fn with_fleet(mut self, fleet: Option<std::sync::Arc<Fleet>>) -> Self {
        self.fleet = fleet;
        self
    }

    /// Reloads the https listeners' certificates with every config reload.
    pub(crate) fn with_tls(mut self, tls: Option<crate::tls::CertReloader>) -> Self {
        self.tls = tls;
        self
    }

    /// The newest `limit` history entries, newest first.
    pub(crate) fn history(&self, limit: usize) -> Vec<HistoryEntry> {
        self.history.newest(limit)
    }

    /// The snapshot in force.
    pub(crate) fn snapshot(&self) -> Arc<Snapshot> {
        self.shared.snapshot.load_full()
    }

    /// The running config's source file.
    pub(crate) async fn config_source(&self) -> Option<std::path::PathBuf> {
        self.config.lock().await.source.clone()
    }

    /// Makes `to` the active pool of a service, on behalf of `actor`.
    pub(crate) async fn switch(
        &self,
        actor: &str,
        service: Option<&str>,
        to: &str,
        force: bool,
    ) -> Result<SwitchOutcome, ControlError> {
        let origin = (actor.to_string(), HistoryAction::Switch);
        let result = ORIGIN
            .scope(origin, self.switch_inner(service, to, force))
            .await;
        if let Ok(c) = &result {
            if c.changed && c.from != c.outcome.active {
                self.arm_guard(
                    &c.outcome.service,
                    &c.outcome.active,
                    &c.from,
                    Duration::ZERO,
                );
            } else if c.changed {
                self.disarm_guard(&c.outcome.service);
            }
        }
        self.record(
            Asked {
                actor,
                action: HistoryAction::Switch,
                service,
                to: Some(to),
                weights: None,
                forced: force,
                detail: None,
            },
            &result,
        );
        result.map(|c| c.outcome)
    }

    /// Ends a weighted split: every new request goes to the active pool again. Not health-gated
    /// (the active pool already takes traffic).
    pub(crate) async fn end_split(
        &self,
        actor: &str,
        service: Option<&str>,
    ) -> Result<SwitchOutcome, ControlError> {
        let active = {
            let snapshot = self.snapshot();
            resolve(&snapshot, service).map(|s| (s.name.clone(), s.pools[s.active].name.clone()))
        };
        let origin = (actor.to_string(), HistoryAction::EndSplit);
        let result = match &active {
            Ok((name, pool)) => {
                ORIGIN
                    .scope(origin, self.switch_inner(Some(name), pool, true))
                    .await
            }
            Err(e) => Err(e.clone()),
        };
        self.record(
            Asked {
                actor,
                action: HistoryAction::EndSplit,
                service,
                to: active.as_ref().ok().map(|a| a.1.as_str()),
                weights: None,
                forced: false,
                detail: None,
            },
            &result,
        );
        result.map(|c| c.outcome)
    }

    async fn switch_inner(
        &self,
        service: Option<&str>,
        to: &str,
        force: bool,
    ) -> Result<Change, ControlError> {
        let config = self.config.lock().await;
        let snapshot = self.snapshot();
        let svc = resolve(&snapshot, service)?;
        let target = pool_index(svc, to)?;
        if !force && !pool_is_healthy(svc, target) {
            return Err(ControlError::Unhealthy {
                service: svc.name.clone(),
                pool: to.to_string(),
            });
        }
        if target == svc.active && svc.split.is_none() {
            return Ok(Change {
                outcome: outcome(svc, snapshot.generation),
                from: to.to_string(),
                changed: false,
            });
        }
        let mut decisions = snapshot.decisions();
        let from = svc.pools[svc.active].name.clone();
        decisions.insert(
            svc.name.clone(),
            ServiceDecision {
                active: to.to_string(),
                previous: if target == svc.active {
                    svc.previous.map(|i| svc.pools[i].name.clone())
                } else {
                    Some(from.clone())
                },
                ..ServiceDecision::default()
            },
        );
        let next = self.commit(&config, decisions).await?;
        let name = svc.name.clone();
        let mut out = next
            .service(&name)
            .map(|s| outcome(s, next.generation))
            .ok_or_else(|| ControlError::UnknownService(name.clone()))?;
        out.revision = self.fleet_revision(&name);
        tracing::info!(service = %name, from = %from, to = %to, force, generation = next.generation, "switched");
        if from != to {
            self.watch_drain(&name, &from);
        }
        Ok(Change {
            outcome: out,
            from,
            changed: true,
        })
    }

    /// Makes the previous pool active again, on behalf of `actor`.
    pub(crate) async fn rollback(
        &self,
        actor: &str,
        service: Option<&str>,
        force: bool,
    ) -> Result<SwitchOutcome, ControlError> {
        self.rollback_with(actor, service, force, None).await
    }

    /// A rollback whose history entry says what led to it (`detail`: the guard's figures).
    pub(crate) async fn rollback_with(
        &self,
        actor: &str,
        service: Option<&str>,
        force: bool,
        detail: Option<String>,
    ) -> Result<SwitchOutcome, ControlError> {
        let target = {
            let snapshot = self.snapshot();
            resolve(&snapshot, service).map(|svc| {
                // During a ramp, everything goes back to the colour it started from.
                let back = match &svc.ramp {
                    Some(ramp) => Some(ramp.from.clone()),
                    None => svc.previous.map(|i| svc.pools[i].name.clone()),
                };
                (svc.name.clone(), back)
            })
        };
        let result = match &target {
            Err(e) => Err(e.clone()),
            Ok((name, None)) => Err(ControlError::NoPrevious(name.clone())),
            Ok((name, Some(prev))) => {
                let origin = (actor.to_string(), HistoryAction::Rollback);
                ORIGIN
                    .scope(origin, self.switch_inner(Some(name), prev, force))
                    .await
            }
        };
        self.record(
            Asked {
                actor,
                action: HistoryAction::Rollback,
                service,
                to: target.as_ref().ok().and_then(|t| t.1.as_deref()),
                weights: None,
                forced: force,
                detail,
            },
            &result,
        );
        if let Ok(c) = &result {
            if actor != guard::ACTOR_GUARD {
                self.disarm_guard(&c.outcome.service);
            }
        }
        result.map(|c| c.outcome)
    }

    /// Splits new requests between pools by weight, on behalf of `actor`.
    pub(crate) async fn split(
        &self,
        actor: &str,
        service: Option<&str>,
        weights: BTreeMap<String, u32>,
        options: SplitOptions,
    ) -> Result<SwitchOutcome, ControlError> {
        let force = options.force;
        let origin = (actor.to_string(), HistoryAction::Split);
        let result = ORIGIN
            .scope(origin, self.split_inner(service, weights.clone(), options))
            .await;
        self.record(
            Asked {
                actor,
                action: HistoryAction::Split,
                service,
                to: None,
                weights: Some(weights),
                forced: force,
                detail: None,
            },
            &result,
        );
        result.map(|c| c.outcome)
    }

    async fn split_inner(
        &self,
        service: Option<&str>,
        weights: BTreeMap<String, u32>,
        SplitOptions { force, sticky }: SplitOptions,
    ) -> Result<Change, ControlError> {
        let config = self.config.lock().await;
        let snapshot = self.snapshot();
        let svc = resolve(&snapshot, service)?;
        let mut named_healthy = false;
        for (pool, weight) in &weights {
            let index = pool_index(svc, pool)?;
            named_healthy |= *weight > 0 && pool_is_healthy(svc, index);
        }
        if !force && !named_healthy && weights.values().any(|w| *w > 0) {
            let pools = weights
                .iter()
                .filter(|(_, w)| **w > 0)
                .map(|(p, _)| p.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            return Err(ControlError::Unhealthy {
                service: svc.name.clone(),
                pool: pools,
            });
        }
        // Weights that leave out the active pool give it the rest of 100:
        // `blue=10` means blue 10, the active pool 90.
        let mut weights = weights;
        let active = svc.pools[svc.active].name.clone();
        if !weights.contains_key(&active) {
            let named: u64 = weights.values().map(|w| u64::from(*w)).sum();
            let rest = 100u64.saturating_sub(named);
            weights.insert(active, u32::try_from(rest).unwrap_or(0));
        }
        if weights.values().all(|w| *w == 0) {
            return Err(ControlError::BadRequest(
                "a split needs at least one pool with a weight above 0".into(),
            ));
        }
        if weights.values().any(|w| *w > 1_000_000) {
            return Err(ControlError::BadRequest(
                "split weights are at most 1000000".into(),
            ));
        }
        let mut decisions = snapshot.decisions();
        let mut decision = svc.decision();
        decision.split = Some(weights.clone());
        decision.sticky = sticky;
        // A split set by hand ends a ramp under way.
        decision.ramp = None;
        decisions.insert(svc.name.clone(), decision);
        let next = self.commit(&config, decisions).await?;
        tracing::info!(service = %svc.name, ?weights, generation = next.generation, "split set");
        let active = svc.pools[svc.active].name.clone();
        Ok(self.committed(svc, active, next.generation))
    }

    /// The change made by committing a new decision for `svc` (which had `from` active) as
    /// generation `generation`: `svc` as the caller saw it, with the service's fleet revision.
    fn committed(&self, svc: &Service, from: String, generation: u64) -> Change {
        let mut outcome = outcome(svc, generation);
        outcome.revision = self.fleet_revision(&svc.name);
        Change {
            outcome,
            from,
            changed: true,
        }
    }

    /// Stops the health checkers.
    pub(crate) fn stop(&self) {
        self.health.stop_all();
    }

    /// Refuses (or again allows) every change while a binary upgrade hands over.
    pub(crate) fn freeze(&self, frozen: bool) {
        self.frozen
            .store(frozen, std::sync::atomic::Ordering::SeqCst);
    }

    /// Publishes the change to the fleet (fleet mode: a compare-and-swap in etcd, refused when
    /// another instance changed the service first or etcd does not answer), then builds,
    /// persists and stores the next snapshot here.
    async fn commit(
        &self,
        config: &Config,
        decisions: Decisions,
    ) -> Result<Arc<Snapshot>, ControlError> {
        if self.frozen.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(ControlError::Upgrading);
        }
        self.publish(&decisions).await?;
        self.apply_local(config, decisions).await
    }

    /// Builds, persists (to the state file: in fleet mode, the mirror a restart falls back
    /// on while etcd is away) and stores the next snapshot, on this instance only.
    ///
    /// The build takes the counters and rate limiters over from the snapshot in force and
    /// gives new servers their connection queues, changing nothing the running snapshot uses:
    /// when persisting fails, the new snapshot is dropped and the running one goes on as it was.
    async fn apply_local(
        &self,
        config: &Config,
        decisions: Decisions,
    ) -> Result<Arc<Snapshot>, ControlError> {
        let next = Arc::new(
            self.snapshot()
                .build_next(config, &decisions, &self.shared.registry),
        );
        crate::upstream::attach(&next);
        if let Some(store) = &self.store {
            let state = persisted(config, &next);
            let store = store.clone();
            tokio::task::spawn_blocking(move || store.save(&state))
                .await
                .map_err(|e| ControlError::Persist(e.to_string()))?
                .map_err(|e| ControlError::Persist(e.to_string()))?;
        }
        self.shared.snapshot.store(next.clone());
        if next.services.iter().any(|s| s.ramp.is_some()) {
            self.ramp_wake.notify_one();
        }
        Ok(next)
    }
}

/// The first snapshot (generation 1): the config with the decisions restored from the store.
pub(crate) fn first_snapshot(
    config: &Config,
    store: Option<&dyn StateStore>,
    registry: &switchyard_core::Registry,
) -> Snapshot {
    Snapshot::build(config, &restore(config, store), registry, 1)
}

fn resolve<'a>(
    snapshot: &'a Snapshot,
    service: Option<&str>,
) -> Result<&'a Arc<Service>, ControlError> {
    match service {
        Some(name) => snapshot
            .service(name)
            .ok_or_else(|| ControlError::UnknownService(name.to_string())),
        None if snapshot.services.len() == 1 => Ok(&snapshot.services[0]),
        None => Err(ControlError::AmbiguousService(
            snapshot
                .services
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        )),
    }
}

fn pool_index(svc: &Service, pool: &str) -> Result<usize, ControlError> {
    svc.pool_index(pool)
        .ok_or_else(|| ControlError::UnknownPool {
            service: svc.name.clone(),
            pool: pool.to_string(),
            known: svc
                .pools
                .iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// A pool is healthy when at least one server passes its health checks and is not ejected.
pub(crate) fn pool_is_healthy(svc: &Service, index: usize) -> bool {
    let now = Instant::now();
    svc.pools[index]
        .servers
        .iter()
        .any(|s| s.state.health() == Health::Up && !s.state.is_ejected(now))
}

fn outcome(svc: &Service, generation: u64) -> SwitchOutcome {
    SwitchOutcome {
        service: svc.name.clone(),
        active: svc.pools[svc.active].name.clone(),
        previous: svc.previous.map(|i| svc.pools[i].name.clone()),
        generation,
        revision: None,
    }
}
