//! The control plane in fleet mode: a change is published to etcd (compare-and-swap on each
//! changed service's key) before it applies here, and changes other instances published are
//! applied as they are seen.

use std::time::SystemTime;

use switchyard_core::{Decisions, ServiceDecision};

use super::{ControlError, Controller};
use crate::fleet::etcd::Loaded;
use crate::fleet::{FleetError, FleetRecord};
use crate::history::{HistoryAction, HistoryEntry, rfc3339};

tokio::task_local! {
    /// Who asked for the change being committed, and what they asked (for the fleet's record).
    pub(super) static ORIGIN: (String, HistoryAction);
}

impl Controller {
    /// Publishes the services whose decision `decisions` changes, when in fleet mode: one
    /// transaction, each key compared with the revision this instance last saw. Nothing is
    /// published (and `Ok`) outside fleet mode or when nothing changes.
    pub(super) async fn publish(&self, decisions: &Decisions) -> Result<(), ControlError> {
        let Some(fleet) = &self.fleet else {
            return Ok(());
        };
        let current = self.snapshot().decisions();
        let (actor, action) = ORIGIN
            .try_with(|o| (Some(o.0.clone()), Some(o.1)))
            .unwrap_or((None, None));
        // A conflict whose current decision is the one this change was made from is no lost
        // race, only a revision not seen yet (a seed, or a write just before the watch
        // delivered it): take that revision and try once more.
        let mut attempts = 0;
        loop {
            attempts += 1;
            let changes = decisions
                .iter()
                .filter(|(name, d)| current.get(*name) != Some(*d))
                .map(|(name, d)| {
                    let record = FleetRecord {
                        decision: d.clone(),
                        node: fleet.node.clone(),
                        actor: actor.clone(),
                        action,
                        at: rfc3339(SystemTime::now()),
                    };
                    (name.clone(), record, fleet.key_revision(name))
                })
                .collect::<Vec<_>>();
            if changes.is_empty() {
                return Ok(());
            }
            match fleet.store.publish(&changes).await {
                Ok(revision) => {
                    fleet.set_connected(true, None);
                    for (name, _, _) in &changes {
                        fleet.note_key(name, revision);
                    }
                    return Ok(());
                }
                Err(FleetError::Unavailable(why)) => {
                    fleet.set_connected(false, Some(&why));
                    return Err(ControlError::FleetUnavailable(why));
                }
                Err(FleetError::Conflict {
                    service,
                    current: now,
                    revision,
                }) => {
                    let unchanged = now.as_ref().map(|r| &r.decision) == current.get(&service);
                    if unchanged && attempts < 3 {
                        fleet.note_key(&service, revision);
                        continue;
                    }
                    return Err(ControlError::Conflict {
                        service,
                        current: now.map(|r| Box::new(r.decision)),
                    });
                }
            }
        }
    }

    /// The fleet revision of a service's key as this instance knows it (fleet mode only).
    pub(super) fn fleet_revision(&self, service: &str) -> Option<i64> {
        self.fleet.as_ref().map(|f| f.key_revision(service))
    }

    /// Applies records read from the fleet's store (service, record or why it is unreadable,
    /// mod revision). Records not newer than what was applied are skipped; a record naming
    /// pools this instance's config does not have is not applied. Returns why something could
    /// not be applied, if anything could not.
    pub(crate) async fn apply_fleet(
        &self,
        records: Vec<(String, Result<FleetRecord, String>, i64)>,
    ) -> Option<String> {
        let fleet = self.fleet.as_ref()?;
        let config = self.config.lock().await;
        let snapshot = self.snapshot();
        let mut decisions = snapshot.decisions();
        let mut applied = Vec::new();
        let mut errors = Vec::new();
        for (name, record, revision) in records {
            if !fleet.note_key(&name, revision) {
                continue;
            }
            let Some(cfg) = config.services.get(&name) else {
                tracing::debug!(service = %name, "the fleet has a service this instance does not route; ignored");
                continue;
            };
            let record = match record {
                Ok(r) => r,
                Err(why) => {
                    errors.push(format!("service `{name}`: unreadable record: {why}"));
                    continue;
                }
            };
            let d = &record.decision;
            let unknown = std::iter::once(&d.active)
                .chain(d.previous.iter())
                .chain(d.split.iter().flat_map(|s| s.keys()))
                .find(|p| !cfg.pools.contains_key(*p));
            if let Some(pool) = unknown {
                errors.push(format!(
                    "service `{name}`: the fleet names pool `{pool}`, which this instance's config does not have"
                ));
                continue;
            }
            let before = decisions.get(&name).cloned();
            if before.as_ref() == Some(d) {
                continue;
            }
            decisions.insert(name.clone(), d.clone());
            applied.push((name, before, record));
        }
        if !applied.is_empty() {
            match self.apply_local(&config, decisions).await {
                Ok(next) => {
                    for (name, before, record) in &applied {
                        self.record_fleet_apply(name, before.as_ref(), record, next.generation);
                        if let Some(from) = before.as_ref().map(|b| b.active.clone()) {
                            if from != record.decision.active {
                                tracing::info!(service = %name, from = %from, to = %record.decision.active, node = %record.node, "applied a fleet switch");
                                self.watch_drain(name, &from);
                            }
                        }
                    }
                }
                Err(e) => errors.push(e.to_string()),
            }
        }
        for e in &errors {
            tracing::warn!(error = %e, "a fleet decision could not be applied here");
        }
        (!errors.is_empty()).then(|| errors.join("; "))
    }

    /// The services this instance routes that the fleet's store has no record of, with this
    /// instance's decision for each: what seeds an empty prefix.
    pub(crate) async fn fleet_seeds(&self, loaded: &Loaded) -> Vec<(String, FleetRecord)> {
        let Some(fleet) = &self.fleet else {
            return Vec::new();
        };
        let _config = self.config.lock().await;
        let snapshot = self.snapshot();
        snapshot
            .services
            .iter()
            .filter(|s| !loaded.services.contains_key(&s.name))
            .map(|s| {
                (
                    s.name.clone(),
                    FleetRecord {
                        decision: s.decision(),
                        node: fleet.node.clone(),
                        actor: None,
                        action: None,
                        at: rfc3339(SystemTime::now()),
                    },
                )
            })
            .collect()
    }

    /// A history entry for a decision another instance made, applied here.
    fn record_fleet_apply(
        &self,
        service: &str,
        before: Option<&ServiceDecision>,
        record: &FleetRecord,
        generation: u64,
    ) {
        let Some(fleet) = &self.fleet else { return };
        if record.node == fleet.node {
            return;
        }
        let action = record.action.unwrap_or(if record.decision.split.is_some() {
            HistoryAction::Split
        } else {
            HistoryAction::Switch
        });
        self.history.record(HistoryEntry {
            time: rfc3339(SystemTime::now()),
            action,
            service: Some(service.to_string()),
            from: before.map(|b| b.active.clone()),
            to: Some(record.decision.active.clone()),
            weights: record.decision.split.clone(),
            forced: false,
            generation,
            actor: record.actor.clone().unwrap_or_else(|| "fleet".to_string()),
            ok: true,
            error: None,
            node: Some(record.node.clone()),
            detail: None,
        });
    }
}
