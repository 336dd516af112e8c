//! Host names in the config: resolved again every `upstream.resolve_interval`, and the pools
//! rebuilt when a name gains or loses addresses, without a reload.
//!
//! The addresses a name resolves to are kept in the registry; building a snapshot expands a
//! server written `NAME:PORT` into one server per address. Addresses that stay keep their live
//! state (health, in-flight counts, ejection, idle connections): they are the same registry
//! objects. A resolution that fails keeps the last addresses, is logged, and shows in
//! `/status` under `names`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::PoisonError;
use std::time::Duration;

use switchyard_core::Snapshot;

use super::{ControlError, Controller};
use crate::resolve::Resolve;
use crate::status::{NameStatus, StatusReport};

impl Controller {
    /// The status report with what each host name resolves to.
    pub(crate) fn status_report(&self) -> StatusReport {
        let mut report = StatusReport::from_snapshot(&self.snapshot());
        report.names = self
            .names
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        report.fleet = self.fleet.as_ref().map(|f| f.status());
        for (service, guard) in self.guard_statuses() {
            if let Some(s) = report.services.get_mut(&service) {
                s.guard = Some(guard);
            }
        }
        report
    }

    /// The host names of the running config (`(name, port)`), and the shortest
    /// `resolve_interval` of the services that use them.
    pub(crate) async fn host_names(&self) -> (Vec<(String, u16)>, Option<Duration>) {
        let config = self.config.lock().await;
        let mut names = Vec::new();
        let mut interval: Option<Duration> = None;
        for svc in config.services.values() {
            for server in svc.pools.values().flat_map(|p| p.servers.iter()) {
                if let Some(host) = &server.host {
                    let key = (host.clone(), server.addr.port());
                    if !names.contains(&key) {
                        names.push(key);
                    }
                    let every = svc.upstream.resolve_interval;
                    interval = Some(interval.map_or(every, |i| i.min(every)));
                }
            }
        }
        (names, interval)
    }

    /// Resolves every host name once; rebuilds the snapshot when any gained or lost addresses.
    /// Returns true when the pools changed.
    pub(crate) async fn resolve_names(&self, resolver: &dyn Resolve) -> bool {
        let (names, _) = self.host_names().await;
        let mut changed = false;
        let mut seen = BTreeMap::new();
        for (host, port) in names {
            let label = format!("{host}:{port}");
            let previous = self
                .names
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(&label)
                .cloned();
            let status = match resolver.resolve(&host, port).await {
                Ok(addrs) if !addrs.is_empty() => {
                    if self
                        .shared
                        .registry
                        .set_resolved(&host, port, addrs.clone())
                    {
                        changed = true;
                        tracing::info!(name = %label, addresses = %list(&addrs), "upstream name resolves to new addresses");
                    } else if previous.as_ref().is_some_and(|p| p.error.is_some()) {
                        tracing::info!(name = %label, "upstream name resolves again");
                    }
                    let mut addrs = addrs;
                    addrs.sort();
                    addrs.dedup();
                    NameStatus {
                        addresses: addrs.iter().map(SocketAddr::to_string).collect(),
                        error: None,
                        failures: 0,
                    }
                }
                outcome => {
                    let why = match outcome {
                        Err(e) => e.to_string(),
                        Ok(_) => "resolves to no address".to_string(),
                    };
                    let failures = previous.as_ref().map_or(0, |p| p.failures) + 1;
                    if failures == 1 {
                        tracing::warn!(name = %label, error = %why, "cannot resolve an upstream name; keeping its last addresses");
                    }
                    let addresses = previous.map(|p| p.addresses).unwrap_or_default();
                    NameStatus {
                        addresses,
                        error: Some(why),
                        failures,
                    }
                }
            };
            seen.insert(label, status);
        }
        *self.names.lock().unwrap_or_else(PoisonError::into_inner) = seen;
        if changed {
            if let Err(e) = self.refresh().await {
                tracing::error!(error = %e, "could not apply the new upstream addresses; the running pools stay");
                return false;
            }
        }
        changed
    }

    /// Builds the next snapshot from the running config and the decisions in force (the
    /// addresses of host names as last resolved), and applies it.
    async fn refresh(&self) -> Result<u64, ControlError> {
        let config = self.config.lock().await;
        let decisions = self.snapshot().decisions();
        let next = self.commit(&config, decisions).await?;
        self.health.sync(&self.shared, &next);
        self.forget_unused(&next);
        tracing::info!(
            generation = next.generation,
            "pools follow their upstream names"
        );
        Ok(next.generation)
    }

    /// Forgets the live state of servers and pools `snapshot` no longer names.
    pub(super) fn forget_unused(&self, snapshot: &Snapshot) {
        let servers: Vec<SocketAddr> = snapshot
            .services
            .iter()
            .flat_map(|s| s.pools.iter())
            .flat_map(|p| p.servers.iter().map(|s| s.state.addr))
            .collect();
        let pools: Vec<(String, String)> = snapshot
            .services
            .iter()
            .flat_map(|s| {
                s.pools
                    .iter()
                    .map(move |p| (s.name.clone(), p.name.clone()))
            })
            .collect();
        self.shared.registry.retain(&servers, &pools);
    }
}

fn list(addrs: &[SocketAddr]) -> String {
    addrs
        .iter()
        .map(SocketAddr::to_string)
        .collect::<Vec<_>>()
        .join(",")
}
