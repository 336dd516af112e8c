//! Ramped switches: the split moves from the active colour to the target in even steps over a
//! duration, then ends as a normal switch (SPEC §5). The ramp is part of the service's
//! decision (wall-clock times), so it is persisted, shared by a fleet and continued after a
//! restart; one task applies the steps as they fall due.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use switchyard_core::{Ramp, ServiceDecision};
use tokio::sync::watch;

use super::audit::{Asked, Change};
use super::fleet::ORIGIN;
use super::{ControlError, Controller, SwitchOutcome, pool_index, pool_is_healthy, resolve};
use crate::history::{HistoryAction, HistoryEntry, rfc3339};

/// How many even steps a ramp takes: the first at once, the last (the switch) at its end.
pub const RAMP_STEPS: u32 = 10;

/// The longest ramp accepted.
const MAX_RAMP: Duration = Duration::from_secs(24 * 3600);

/// The actor of ramp steps in the history.
pub const ACTOR_RAMP: &str = "ramp";

/// Milliseconds since the Unix epoch, now.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Controller {
    /// Starts a ramp of `service` to `to` over `duration`, on behalf of `actor`.
    pub(crate) async fn switch_ramped(
        &self,
        actor: &str,
        service: Option<&str>,
        to: &str,
        force: bool,
        duration: Duration,
    ) -> Result<SwitchOutcome, ControlError> {
        let origin = (actor.to_string(), HistoryAction::Ramp);
        let result = ORIGIN
            .scope(origin, self.ramp_inner(service, to, force, duration))
            .await;
        self.record(
            Asked {
                actor,
                action: HistoryAction::Ramp,
                service,
                to: Some(to),
                weights: None,
                forced: force,
                detail: Some(format!(
                    "over {}, in {RAMP_STEPS} steps",
                    switchyard_config::units::format_duration(duration)
                )),
            },
            &result,
        );
        if let Ok(c) = &result {
            self.arm_guard(&c.outcome.service, to, &c.from, duration);
        }
        result.map(|c| c.outcome)
    }

    async fn ramp_inner(
        &self,
        service: Option<&str>,
        to: &str,
        force: bool,
        duration: Duration,
    ) -> Result<Change, ControlError> {
        if duration.is_zero() || duration > MAX_RAMP {
            return Err(ControlError::BadRequest(
                "a ramp lasts more than 0s and at most 24h".into(),
            ));
        }
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
        let from = svc.pools[svc.active].name.clone();
        if target == svc.active {
            return Err(ControlError::BadRequest(format!(
                "`{to}` is already the active colour of `{}`: nothing to ramp",
                svc.name
            )));
        }
        let ramp = Ramp {
            from: from.clone(),
            to: to.to_string(),
            started_ms: now_ms(),
            duration_ms: u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
            steps: RAMP_STEPS,
        };
        let mut decisions = snapshot.decisions();
        decisions.insert(
            svc.name.clone(),
            ServiceDecision {
                split: Some(ramp.weights(1)),
                ramp: Some(ramp),
                ..svc.decision()
            },
        );
        let next = self.commit(&config, decisions).await?;
        tracing::info!(service = %svc.name, from = %from, to = %to, ?duration, "ramp started");
        Ok(self.committed(svc, from, next.generation))
    }

    /// Applies every ramp step that has fallen due; returns when the next one is due (ms since
    /// the epoch), if a ramp is under way.
    pub(crate) async fn advance_ramps(&self) -> Option<u64> {
        let config = self.config.lock().await;
        let snapshot = self.snapshot();
        let now = now_ms();
        let mut next: Option<u64> = None;
        for svc in &snapshot.services {
            let Some(ramp) = svc.ramp.clone() else {
                continue;
            };
            let step = ramp.step_at(now);
            let weights = ramp.weights(step);
            let current = svc.decision();
            let mut decision = current.clone();
            let detail = format!("step {step} of {}", ramp.steps);
            let action = if step >= ramp.steps {
                decision = ServiceDecision {
                    active: ramp.to.clone(),
                    previous: Some(ramp.from.clone()),
                    ..ServiceDecision::default()
                };
                HistoryAction::Switch
            } else {
                next = Some(next.map_or(ramp.due_ms(step + 1), |n| n.min(ramp.due_ms(step + 1))));
                if current.split.as_ref() == Some(&weights) {
                    continue;
                }
                decision.split = Some(weights.clone());
                HistoryAction::Split
            };
            let mut decisions = snapshot.decisions();
            decisions.insert(svc.name.clone(), decision);
            let origin = (ACTOR_RAMP.to_string(), action);
            match ORIGIN.scope(origin, self.commit(&config, decisions)).await {
                Ok(applied) => {
                    let switched = action == HistoryAction::Switch;
                    tracing::info!(service = %svc.name, step, steps = ramp.steps, to = %ramp.to, "ramp step");
                    self.history.record(HistoryEntry {
                        time: rfc3339(SystemTime::now()),
                        action,
                        service: Some(svc.name.clone()),
                        from: Some(ramp.from.clone()),
                        to: Some(ramp.to.clone()),
                        weights: (!switched).then_some(weights),
                        forced: false,
                        generation: applied.generation,
                        actor: ACTOR_RAMP.to_string(),
                        ok: true,
                        error: None,
                        node: self.fleet.as_ref().map(|f| f.node().to_string()),
                        detail: Some(detail),
                    });
                    if switched {
                        self.shared
                            .metrics
                            .switched(&svc.name, crate::metrics::SwitchKind::Switch);
                        self.watch_drain(&svc.name, &ramp.from);
                    }
                }
                Err(e) => {
                    // Another instance of a fleet applied the step first, or etcd is away:
                    // look again shortly.
                    tracing::debug!(service = %svc.name, error = %e, "ramp step not applied here");
                    next = Some(now + 200);
                }
            }
        }
        next
    }
}

/// Applies ramp steps as they fall due, until `stop` turns true. Woken early by every change
/// of the decisions (a ramp started, ended or taken over from the state file or the fleet).
pub(crate) async fn run(ctl: Arc<Controller>, mut stop: watch::Receiver<bool>) {
    loop {
        let next = ctl.advance_ramps().await;
        let wait = match next {
            Some(due) => Duration::from_millis(due.saturating_sub(now_ms()).max(1)),
            None => Duration::from_secs(3600),
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = ctl.ramp_wake.notified() => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
    }
}
