//! Durable decisions: what the control plane writes to the state store on every commit, and
//! what it restores from it at start.

use switchyard_config::Config;
use switchyard_core::snapshot::decisions_from_config;
use switchyard_core::{Decisions, Snapshot};

use crate::state::{PersistedService, PersistedState, STATE_VERSION, StateStore};

pub(super) fn persisted(config: &Config, snapshot: &Snapshot) -> PersistedState {
    PersistedState {
        version: STATE_VERSION,
        generation: snapshot.generation,
        services: snapshot
            .services
            .iter()
            .filter_map(|s| {
                let cfg = config.services.get(&s.name)?;
                Some((
                    s.name.clone(),
                    PersistedService {
                        decision: s.decision(),
                        config_active: cfg.active.clone(),
                    },
                ))
            })
            .collect(),
    }
}

/// The decisions to start with: the config's, overridden by the store's where they still apply.
pub(super) fn restore(config: &Config, store: Option<&dyn StateStore>) -> Decisions {
    let mut decisions = decisions_from_config(config);
    let Some(store) = store else { return decisions };
    let state = match store.load() {
        Ok(Some(s)) => s,
        Ok(None) => {
            tracing::info!(state = %store.describe(), "no saved state yet; starting from the config");
            return decisions;
        }
        Err(e) => {
            tracing::error!(error = %e, "ignoring the saved state; starting from the config");
            return decisions;
        }
    };
    for (name, saved) in state.services {
        let Some(svc) = config.services.get(&name) else {
            tracing::warn!(service = %name, "saved state names a service the config no longer has; ignored");
            continue;
        };
        if saved.config_active != svc.active {
            tracing::info!(service = %name, config_active = %svc.active, "config's active colour changed since the state was saved; the config wins");
            continue;
        }
        let d = saved.decision;
        let pools_exist = svc.pools.contains_key(&d.active)
            && d.previous
                .as_ref()
                .is_none_or(|p| svc.pools.contains_key(p))
            && d.split
                .as_ref()
                .is_none_or(|s| s.keys().all(|p| svc.pools.contains_key(p)));
        if !pools_exist {
            tracing::warn!(service = %name, active = %d.active, "saved state names pools the config no longer has; ignored");
            continue;
        }
        tracing::info!(service = %name, active = %d.active, previous = d.previous.as_deref().unwrap_or("none"), generation = state.generation, state = %store.describe(), "restored saved decision");
        decisions.insert(name, d);
    }
    decisions
}
