//! What an embedding program (and the binary) does with a running proxy: its addresses and
//! status, switches, rollbacks, splits, ramps and reloads on behalf of an actor, the history,
//! the metrics, a graceful stop, and the steps of a binary upgrade.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use switchyard_config::Config;
use switchyard_core::Snapshot;

use crate::history::{ACTOR_EMBEDDED, HistoryEntry};
use crate::status::StatusReport;
use crate::{ControlError, ProxyHandle, SplitOptions, SwitchOutcome, actor_name, metrics, shared};

impl ProxyHandle {
    /// The addresses the HTTP listeners are bound to.
    pub fn http_addrs(&self) -> &[SocketAddr] {
        &self.http_addrs
    }

    /// The addresses the TLS listeners are bound to.
    pub fn https_addrs(&self) -> &[SocketAddr] {
        &self.https_addrs
    }

    /// The address of the admin API, when it runs.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    /// The status report (the same document as `GET /status`).
    pub fn status(&self) -> StatusReport {
        self.ctl.status_report()
    }

    /// The routing snapshot in force.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.ctl.snapshot()
    }

    /// Makes `to` the active pool (`service` may be `None` when there is exactly one).
    /// Recorded in the history as done by `embedded`.
    pub async fn switch(
        &self,
        service: Option<&str>,
        to: &str,
        force: bool,
    ) -> Result<SwitchOutcome, ControlError> {
        self.switch_as(ACTOR_EMBEDDED, service, to, force).await
    }

    /// [`switch`](Self::switch) on behalf of `actor` (as the history will name it).
    pub async fn switch_as(
        &self,
        actor: &str,
        service: Option<&str>,
        to: &str,
        force: bool,
    ) -> Result<SwitchOutcome, ControlError> {
        self.ctl
            .switch(&actor_name(actor), service, to, force)
            .await
    }

    /// Makes the previous pool active again.
    pub async fn rollback(
        &self,
        service: Option<&str>,
        force: bool,
    ) -> Result<SwitchOutcome, ControlError> {
        self.rollback_as(ACTOR_EMBEDDED, service, force).await
    }

    /// [`rollback`](Self::rollback) on behalf of `actor`.
    pub async fn rollback_as(
        &self,
        actor: &str,
        service: Option<&str>,
        force: bool,
    ) -> Result<SwitchOutcome, ControlError> {
        self.ctl.rollback(&actor_name(actor), service, force).await
    }

    /// Splits new requests between pools by weight (a switch or rollback ends the split).
    pub async fn split(
        &self,
        service: Option<&str>,
        weights: BTreeMap<String, u32>,
    ) -> Result<SwitchOutcome, ControlError> {
        self.split_as(ACTOR_EMBEDDED, service, weights).await
    }

    /// [`split`](Self::split) on behalf of `actor`.
    pub async fn split_as(
        &self,
        actor: &str,
        service: Option<&str>,
        weights: BTreeMap<String, u32>,
    ) -> Result<SwitchOutcome, ControlError> {
        self.split_with(actor, service, weights, SplitOptions::default())
            .await
    }

    /// [`split_as`](Self::split_as), health-gated unless `force`: a split whose named pools
    /// have no healthy server is refused.
    pub async fn split_forced_as(
        &self,
        actor: &str,
        service: Option<&str>,
        weights: BTreeMap<String, u32>,
        force: bool,
    ) -> Result<SwitchOutcome, ControlError> {
        let options = SplitOptions {
            force,
            sticky: false,
        };
        self.split_with(actor, service, weights, options).await
    }

    /// A split with every option (`force`, `sticky`), on behalf of `actor`.
    pub async fn split_with(
        &self,
        actor: &str,
        service: Option<&str>,
        weights: BTreeMap<String, u32>,
        options: SplitOptions,
    ) -> Result<SwitchOutcome, ControlError> {
        self.ctl
            .split(&actor_name(actor), service, weights, options)
            .await
    }

    /// Moves `service` to `to` in even steps over `duration` (a ramp), ending as a switch; a
    /// rollback or another switch meanwhile ends it at once.
    pub async fn switch_ramped_as(
        &self,
        actor: &str,
        service: Option<&str>,
        to: &str,
        force: bool,
        duration: std::time::Duration,
    ) -> Result<SwitchOutcome, ControlError> {
        self.ctl
            .switch_ramped(&actor_name(actor), service, to, force, duration)
            .await
    }

    /// Ends a split on behalf of `actor`: every new request goes to the active pool again.
    pub async fn end_split_as(
        &self,
        actor: &str,
        service: Option<&str>,
    ) -> Result<SwitchOutcome, ControlError> {
        self.ctl.end_split(&actor_name(actor), service).await
    }

    /// Applies a new config (listeners stay as they are). Returns the new generation.
    pub async fn reload(&self, config: Config) -> Result<u64, ControlError> {
        self.reload_as(ACTOR_EMBEDDED, config).await
    }

    /// [`reload`](Self::reload) on behalf of `actor`.
    pub async fn reload_as(&self, actor: &str, config: Config) -> Result<u64, ControlError> {
        self.ctl.reload_as(&actor_name(actor), config).await
    }

    /// Re-reads the config file the proxy was started from, like SIGHUP.
    pub async fn reload_from_source(&self) -> Result<u64, ControlError> {
        self.reload_from_source_as(ACTOR_EMBEDDED).await
    }

    /// [`reload_from_source`](Self::reload_from_source) on behalf of `actor` (the signal
    /// handler passes [`history::ACTOR_SIGHUP`]).
    pub async fn reload_from_source_as(&self, actor: &str) -> Result<u64, ControlError> {
        self.ctl.reload_source_as(&actor_name(actor)).await
    }

    /// The newest `limit` entries of the switch history, newest first (`GET /history`).
    pub fn history(&self, limit: usize) -> Vec<HistoryEntry> {
        self.ctl.history(limit)
    }

    /// The Prometheus exposition (OpenMetrics text), as `GET /metrics` answers it.
    pub fn metrics_text(&self) -> String {
        metrics::render(&self.ctl.shared)
    }

    /// Client connections open now.
    pub fn open_connections(&self) -> usize {
        self.ctl.shared.connections.count()
    }

    /// Stops accepting, lets in-flight requests finish (at most the shutdown timeout), then
    /// stops everything. Returns true when every connection finished in time.
    pub async fn shutdown(&self) -> bool {
        let _ = self.stop.send(true);
        let tasks: Vec<_> = {
            let mut t = self
                .tasks
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            t.drain(..).collect()
        };
        for t in tasks {
            let _ = t.await;
        }
        // Connections first, then what outlives them: upgraded connections (WebSockets) count
        // in flight on their pools until they close.
        let shared = self.ctl.shared.clone();
        let drained = tokio::time::timeout(self.shutdown_timeout, async move {
            shared.connections.wait_idle().await;
            loop {
                let busy = shared
                    .snapshot
                    .load()
                    .services
                    .iter()
                    .flat_map(|s| s.pools.iter())
                    .any(|p| p.state.in_flight() > 0);
                if !busy {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await
        .is_ok();
        if drained {
            tracing::info!("all connections finished; stopped");
        } else {
            tracing::warn!(
                open = self.open_connections(),
                "shutdown timeout reached with connections still open; stopping anyway"
            );
        }
        self.ctl.stop();
        if let Some(access) = &self.ctl.shared.access {
            // Every line of the requests served is written before the proxy returns.
            access.close();
        }
        drained
    }

    /// Takes the queue of upgrade requests the admin API receives (`POST /upgrade`); only the
    /// first call gets it. Without a taker, `POST /upgrade` answers that upgrades are off.
    pub(crate) fn take_upgrade_requests(
        &self,
    ) -> Option<tokio::sync::mpsc::Receiver<shared::UpgradeAnswer>> {
        self.ctl
            .shared
            .upgrades
            .rx
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }

    /// Copies of the listening sockets the proxy serves on (`http`, `https`, `admin`): an
    /// embedding program hands them to a new process (with `Listeners::from_inherited` there),
    /// then calls [`shutdown`](Self::shutdown) here, which stops accepting and lets everything
    /// in flight finish — its own handover, as `switchyard serve` does on SIGUSR2.
    pub fn listener_fds(&self) -> std::io::Result<Vec<(&'static str, std::os::fd::OwnedFd)>> {
        self.listener_fds
            .iter()
            .map(|(name, fd)| Ok((*name, fd.try_clone()?)))
            .collect()
    }

    /// Refuses every change (switch, rollback, split, reload) while `frozen`: a binary upgrade
    /// freezes the old process while the new one starts from the decisions it was handed.
    pub fn freeze_for_upgrade(&self, frozen: bool) {
        self.ctl.freeze(frozen);
    }

    /// Records a binary upgrade in the history: the new process's pid, or why it failed.
    pub fn record_upgrade(&self, actor: &str, result: &Result<u32, String>) {
        self.ctl.record_upgrade(&actor_name(actor), result);
    }

    /// Takes over history entries another process recorded (oldest first): what a binary
    /// upgrade hands over when there is no history file.
    pub fn adopt_history(&self, entries: Vec<HistoryEntry>) {
        self.ctl.adopt_history(entries);
    }

    /// Reopens the access-log file (as SIGUSR1 does), after logrotate moved it.
    pub fn reopen_access_log(&self) {
        if let Some(access) = &self.ctl.shared.access {
            access.reopen();
        }
    }
}
