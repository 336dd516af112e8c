//! Setting and ending a mirror at runtime (`PUT`/`DELETE /services/{svc}/mirror`): the mirror is
//! part of the service's decision, so it is persisted, shared by a fleet, and recorded.

use switchyard_core::Mirror;

use super::audit::{Asked, Change};
use super::fleet::ORIGIN;
use super::{ControlError, Controller, SwitchOutcome, outcome, pool_index, resolve};
use crate::history::HistoryAction;

impl Controller {
    /// Sets (`Some`) or ends (`None`) the mirror of `service`, on behalf of `actor`.
    pub(crate) async fn set_mirror(
        &self,
        actor: &str,
        service: Option<&str>,
        mirror: Option<Mirror>,
    ) -> Result<SwitchOutcome, ControlError> {
        let detail = mirror.as_ref().map(|m| {
            format!(
                "{}% of {} to {}, at most {} in flight",
                m.percent,
                m.methods.join(", "),
                m.to,
                m.max_in_flight
            )
        });
        let to = mirror.as_ref().map(|m| m.to.clone());
        let origin = (actor.to_string(), HistoryAction::Mirror);
        let result = ORIGIN
            .scope(origin, self.mirror_inner(service, mirror))
            .await;
        self.record(
            Asked {
                actor,
                action: HistoryAction::Mirror,
                service,
                to: to.as_deref(),
                weights: None,
                forced: false,
                detail: detail.or_else(|| Some("mirror off".into())),
            },
            &result,
        );
        result.map(|c| c.outcome)
    }

    async fn mirror_inner(
        &self,
        service: Option<&str>,
        mirror: Option<Mirror>,
    ) -> Result<Change, ControlError> {
        let config = self.config.lock().await;
        let snapshot = self.snapshot();
        let svc = resolve(&snapshot, service)?;
        if let Some(m) = &mirror {
            pool_index(svc, &m.to)?;
            if m.percent > 100 {
                return Err(ControlError::BadRequest("`percent` is 0 to 100".into()));
            }
            if m.max_in_flight == 0 {
                return Err(ControlError::BadRequest(
                    "`max_in_flight` is at least 1".into(),
                ));
            }
            if let Some(bad) = m.methods.iter().find(|x| {
                x.is_empty() || !x.bytes().all(|b| b.is_ascii_uppercase()) || *x == "CONNECT"
            }) {
                return Err(ControlError::BadRequest(format!(
                    "`{bad}` is not a method that can be copied (upper-case names, not CONNECT)"
                )));
            }
        }
        let mut decision = svc.decision();
        let changed = decision.mirror != mirror;
        decision.mirror = mirror;
        let active = svc.pools[svc.active].name.clone();
        if !changed {
            return Ok(Change {
                outcome: outcome(svc, snapshot.generation),
                from: active,
                changed: false,
            });
        }
        let mut decisions = snapshot.decisions();
        decisions.insert(svc.name.clone(), decision);
        let next = self.commit(&config, decisions).await?;
        tracing::info!(service = %svc.name, generation = next.generation, "mirror set");
        Ok(self.committed(svc, active, next.generation))
    }
}
