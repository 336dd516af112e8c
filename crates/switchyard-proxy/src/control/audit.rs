//! The control plane's audit trail: every switch-like decision and reload becomes a history
//! entry (applied or refused) and moves the switch and reload counters.

use std::collections::BTreeMap;
use std::time::SystemTime;

use switchyard_config::Config;
use switchyard_core::Snapshot;

use super::{ControlError, Controller, SwitchOutcome, resolve};
use crate::history::{HistoryAction, HistoryEntry, rfc3339};
use crate::metrics::{ReloadResult, SwitchKind};

/// What a switch-like operation did, for the caller and the history.
#[derive(Debug)]
pub(super) struct Change {
    /// The answer for the caller.
    pub(super) outcome: SwitchOutcome,
    /// The pool active before.
    pub(super) from: String,
    /// False when nothing changed (a switch to the pool already active, with no split).
    pub(super) changed: bool,
}

/// What a history entry for a switch-like operation says besides its result.
pub(super) struct Asked<'a> {
    /// Who asked.
    pub(super) actor: &'a str,
    /// What was asked for.
    pub(super) action: HistoryAction,
    /// The service as named by the caller (`None`: the only one).
    pub(super) service: Option<&'a str>,
    /// The target pool, when known before the operation ran.
    pub(super) to: Option<&'a str>,
    /// The weights of a split.
    pub(super) weights: Option<BTreeMap<String, u32>>,
    /// Whether `force` was given.
    pub(super) forced: bool,
    /// What led to it, when the proxy itself acted (a guard's figures).
    pub(super) detail: Option<String>,
}

impl Controller {
    /// Applies a new config on behalf of `actor`, and records the reload.
    pub(crate) async fn reload_as(&self, actor: &str, new: Config) -> Result<u64, ControlError> {
        let before = self.snapshot();
        let result = self.reload(new).await;
        self.record_reload(actor, &before, &result);
        result
    }

    /// Re-reads the config file on behalf of `actor`, and records the reload.
    pub(crate) async fn reload_source_as(&self, actor: &str) -> Result<u64, ControlError> {
        let before = self.snapshot();
        let result = crate::reload::reload_from_source(self).await;
        self.record_reload(actor, &before, &result);
        result
    }

    /// Records a switch-like operation: applied ones that changed something, and refused ones
    /// whose service exists (a request naming no real service or pool changed nothing and is
    /// not worth keeping).
    pub(super) fn record(&self, asked: Asked<'_>, result: &Result<Change, ControlError>) {
        let entry =
            |service: &str, from: &str, to: Option<&str>, generation, error: Option<String>| {
                HistoryEntry {
                    time: rfc3339(SystemTime::now()),
                    action: asked.action,
                    service: Some(service.to_string()),
                    from: Some(from.to_string()),
                    to: to.map(str::to_string),
                    weights: asked.weights.clone(),
                    forced: asked.forced,
                    generation,
                    actor: asked.actor.to_string(),
                    ok: error.is_none(),
                    error,
                    node: self.fleet.as_ref().map(|f| f.node().to_string()),
                    detail: asked.detail.clone(),
                }
            };
        let entry = match result {
            Ok(c) if !c.changed => return,
            Ok(c) => {
                let kind = match asked.action {
                    HistoryAction::Rollback => SwitchKind::Rollback,
                    HistoryAction::Split | HistoryAction::EndSplit | HistoryAction::Mirror => {
                        SwitchKind::Split
                    }
                    HistoryAction::Switch
                    | HistoryAction::Reload
                    | HistoryAction::Upgrade
                    | HistoryAction::Ramp => SwitchKind::Switch,
                };
                self.shared.metrics.switched(&c.outcome.service, kind);
                entry(
                    &c.outcome.service,
                    &c.from,
                    // A mirror's entry names its target, a ramp's the colour it moves to; every
                    // other, the colour now active.
                    if matches!(asked.action, HistoryAction::Mirror | HistoryAction::Ramp) {
                        asked.to
                    } else {
                        Some(&c.outcome.active)
                    },
                    c.outcome.generation,
                    None,
                )
            }
            Err(
                ControlError::UnknownService(_)
                | ControlError::UnknownPool { .. }
                | ControlError::AmbiguousService(_),
            ) => return,
            Err(e) => {
                let snapshot = self.snapshot();
                let Ok(svc) = resolve(&snapshot, asked.service) else {
                    return;
                };
                let to = match asked.action {
                    HistoryAction::Split => None,
                    _ => asked.to,
                };
                entry(
                    &svc.name,
                    &svc.pools[svc.active].name,
                    to,
                    snapshot.generation,
                    Some(e.to_string()),
                )
            }
        };
        if !entry.ok {
            tracing::info!(service = entry.service.as_deref().unwrap_or("-"), actor = %entry.actor, error = entry.error.as_deref().unwrap_or("-"), "control request refused");
        }
        self.history.record(entry);
    }

    /// Records a reload, and the colour changes it brought (when no other decision interleaved).
    /// Records a binary upgrade: `Ok(pid)` of the new process, or why it failed.
    pub(crate) fn record_upgrade(&self, actor: &str, result: &Result<u32, String>) {
        let entry = HistoryEntry {
            time: rfc3339(SystemTime::now()),
            action: HistoryAction::Upgrade,
            service: None,
            from: Some(format!("pid {}", std::process::id())),
            to: result.as_ref().ok().map(|pid| format!("pid {pid}")),
            weights: None,
            forced: false,
            generation: self.snapshot().generation,
            actor: actor.to_string(),
            ok: result.is_ok(),
            error: result.as_ref().err().cloned(),
            node: None,
            detail: None,
        };
        self.history.record(entry);
    }

    /// Takes over entries another process recorded (a binary upgrade without a history file).
    pub(crate) fn adopt_history(&self, entries: Vec<HistoryEntry>) {
        for e in entries {
            self.history.record(e);
        }
    }

    fn record_reload(&self, actor: &str, before: &Snapshot, result: &Result<u64, ControlError>) {
        self.shared.metrics.reloaded(match result {
            Ok(_) => ReloadResult::Ok,
            Err(ControlError::InvalidConfig(_) | ControlError::Tls(_)) => ReloadResult::Rejected,
            Err(_) => ReloadResult::Failed,
        });
        let after = self.snapshot();
        let time = rfc3339(SystemTime::now());
        let entry = |service: Option<&str>,
                     from: Option<&str>,
                     to: Option<&str>,
                     generation,
                     error: Option<String>| {
            HistoryEntry {
                time: time.clone(),
                action: HistoryAction::Reload,
                service: service.map(str::to_string),
                from: from.map(str::to_string),
                to: to.map(str::to_string),
                weights: None,
                forced: false,
                generation,
                actor: actor.to_string(),
                ok: error.is_none(),
                error,
                node: None,
                detail: None,
            }
        };
        let generation = match result {
            Ok(g) => *g,
            Err(e) => {
                let why = match e {
                    ControlError::InvalidConfig(errors) => {
                        let first = errors.iter().next().map(ToString::to_string);
                        format!(
                            "invalid config ({} problem{}){}",
                            errors.len(),
                            if errors.len() == 1 { "" } else { "s" },
                            first.map(|f| format!(": {f}")).unwrap_or_default()
                        )
                    }
                    other => other.to_string(),
                };
                self.history
                    .record(entry(None, None, None, after.generation, Some(why)));
                return;
            }
        };
        self.history
            .record(entry(None, None, None, generation, None));
        if after.generation != generation || before.generation + 1 != generation {
            return;
        }
        for svc in &after.services {
            let to = &svc.pools[svc.active].name;
            // A service the old config did not have was not switched: it was added.
            let Some(from) = before
                .service(&svc.name)
                .map(|s| s.pools[s.active].name.as_str())
            else {
                continue;
            };
            if from != to {
                self.shared.metrics.switched(&svc.name, SwitchKind::Switch);
                self.history.record(entry(
                    Some(&svc.name),
                    Some(from),
                    Some(to),
                    generation,
                    None,
                ));
            }
        }
    }
}
