//! A config reload as the control plane applies it: the new config's decisions, with the
//! runtime decisions kept where they still apply (and, in fleet mode, the fleet's).

use switchyard_config::Config;
use switchyard_core::snapshot::decisions_from_config;

use super::{ControlError, Controller};

impl Controller {
    /// Applies a new config; runtime decisions survive unless the file's `active` changed.
    pub(crate) async fn reload(&self, new: Config) -> Result<u64, ControlError> {
        new.validate().map_err(ControlError::InvalidConfig)?;
        // Certificates first: a bad file rejects the whole reload.
        let certs = crate::reload::load_certs(self.tls.as_ref(), &new).await?;
        let mut config = self.config.lock().await;
        if new.listen != config.listen || new.admin.listen != config.admin.listen {
            tracing::warn!(
                "listener addresses changed in the config; they take effect on restart (listeners are never re-bound by a reload)"
            );
        }
        if new.fleet != config.fleet {
            tracing::warn!(
                "[fleet] changed in the config; it takes effect on restart (the running instance stays in its fleet)"
            );
        }
        let snapshot = self.snapshot();
        let current = snapshot.decisions();
        let mut decisions = decisions_from_config(&new);
        for (name, decision) in decisions.iter_mut() {
            let (Some(old_cfg), Some(cur)) = (config.services.get(name), current.get(name)) else {
                continue;
            };
            let Some(new_cfg) = new.services.get(name) else {
                continue;
            };
            if new_cfg.active == old_cfg.active && new_cfg.pools.contains_key(&cur.active) {
                decision.active = cur.active.clone();
            }
            decision.previous = cur
                .previous
                .clone()
                .filter(|p| new_cfg.pools.contains_key(p) && *p != decision.active);
            if decision.active != cur.active && new_cfg.pools.contains_key(&cur.active) {
                decision.previous = Some(cur.active.clone());
            }
            if decision.active == cur.active {
                decision.split = cur
                    .split
                    .clone()
                    .filter(|s| s.keys().all(|p| new_cfg.pools.contains_key(p)));
                decision.sticky = cur.sticky && decision.split.is_some();
                decision.ramp = cur.ramp.clone().filter(|r| {
                    decision.split.is_some()
                        && new_cfg.pools.contains_key(&r.to)
                        && new_cfg.pools.contains_key(&r.from)
                });
            }
            // A mirror set at runtime stays unless the file's own mirror table changed.
            if new_cfg.mirror == old_cfg.mirror {
                decision.mirror = cur
                    .mirror
                    .clone()
                    .filter(|m| new_cfg.pools.contains_key(&m.to));
            }
        }
        if self.fleet.is_some() {
            // Fleet mode: the fleet's decisions stay; the config's `active` only seeds an
            // empty prefix, so a reload never flips the fleet (nor this instance).
            for (name, decision) in decisions.iter_mut() {
                let Some(new_cfg) = new.services.get(name) else {
                    continue;
                };
                if let Some(cur) = current.get(name) {
                    let pools_exist = new_cfg.pools.contains_key(&cur.active)
                        && cur
                            .split
                            .as_ref()
                            .is_none_or(|s| s.keys().all(|p| new_cfg.pools.contains_key(p)));
                    if pools_exist {
                        *decision = cur.clone();
                        decision.previous = cur
                            .previous
                            .clone()
                            .filter(|p| new_cfg.pools.contains_key(p));
                    }
                }
            }
        }
        if self.frozen.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(ControlError::Upgrading);
        }
        // The new snapshot carries the new pools, counters and rate limiters; it is in force
        // once this returns, and a reload that fails to persist changed nothing.
        let next = self.apply_local(&new, decisions).await?;
        // Only once the new snapshot is in force: a reload that fails to persist leaves the
        // running snapshot with its health checkers as they were.
        self.health.sync(&self.shared, &next);
        crate::reload::apply_certs(self.tls.as_ref(), certs);
        *config = new;
        self.history.set_capacity(config.admin.history);
        self.forget_unused(&next);
        tracing::info!(generation = next.generation, "config reloaded");
        Ok(next.generation)
    }
}
