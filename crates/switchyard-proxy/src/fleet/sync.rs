//! The fleet's sync task: reads the prefix, watches it, applies what changes, reports.
//!
//! One session: a full read (applied at once; services the store lacks are seeded with this
//! instance's decision), a lease and a report, then a watch from the revision after the read.
//! The session ends on a broken or compacted watch (a fresh session re-reads everything) and
//! on any failed call (etcd counts as unreachable until a session starts again, retried with
//! a growing pause). A full read every `FULL_READ_EVERY` catches a watch that died silently.

use std::sync::Arc;
use std::time::Duration;

use etcd_client::EventType;
use tokio::sync::watch;

use super::etcd::{Change, Loaded};
use super::{FULL_READ_EVERY, Fleet, FleetError, NODE_TTL_SECS};
use crate::control::Controller;

/// How a session ended, when it did not fail.
enum End {
    /// The proxy is stopping.
    Stopped,
    /// The watch was compacted or cancelled: read everything again at once.
    Reread,
}

/// Keeps this instance in step with the fleet until `stop` turns true.
pub(crate) async fn run(fleet: Arc<Fleet>, ctl: Arc<Controller>, mut stop: watch::Receiver<bool>) {
    let mut lease = None;
    let mut pause = Duration::from_millis(100);
    loop {
        if *stop.borrow() {
            return;
        }
        let started = tokio::time::Instant::now();
        match session(&fleet, &ctl, &mut lease, &mut stop).await {
            Ok(End::Stopped) => {
                // Leave the fleet at once rather than when the lease runs out.
                if let Some(id) = lease {
                    if let Err(e) = fleet.store.revoke(id).await {
                        tracing::debug!(error = %e, "could not end this node's lease on stop");
                    }
                }
                return;
            }
            Ok(End::Reread) => {
                tracing::info!(node = %fleet.node, "the fleet watch was compacted or cancelled; reading the prefix again");
                continue;
            }
            Err(e) => {
                fleet.set_connected(false, Some(&e.to_string()));
                fleet.store.reset();
            }
        }
        if started.elapsed() > Duration::from_secs(10) {
            pause = Duration::from_millis(100);
        }
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stop.changed() => return,
        }
        pause = (pause * 2).min(Duration::from_secs(2));
    }
}

async fn session(
    fleet: &Fleet,
    ctl: &Controller,
    lease: &mut Option<i64>,
    stop: &mut watch::Receiver<bool>,
) -> Result<End, FleetError> {
    let loaded = fleet.store.load().await?;
    fleet.set_connected(true, None);
    let revision = loaded.revision;
    full_apply(fleet, ctl, loaded).await?;
    let id = ensure_lease(fleet, *lease).await?;
    *lease = Some(id);
    fleet.store.report(&fleet.node, &fleet.report(), id).await?;
    let (_watcher, mut stream) = fleet.store.watch(revision + 1).await?;
    let mut renew = tokio::time::interval(Duration::from_secs((NODE_TTL_SECS / 3).max(1) as u64));
    let mut reread = tokio::time::interval(FULL_READ_EVERY);
    renew.tick().await;
    reread.tick().await;
    loop {
        tokio::select! {
            message = stream.message() => {
                let response = match message {
                    Ok(Some(r)) => r,
                    Ok(None) => return Err(FleetError::Unavailable("the watch stream ended".into())),
                    Err(e) => return Err(FleetError::Unavailable(e.to_string())),
                };
                if response.compact_revision() > 0 || response.canceled() {
                    return Ok(End::Reread);
                }
                let mut changes = Vec::new();
                for event in response.events() {
                    let Some(kv) = event.kv() else { continue };
                    let value = (event.event_type() == EventType::Put).then(|| kv.value());
                    match fleet.store.parse(kv.key(), value, kv.mod_revision()) {
                        Some(Change::Service(name, record, rev)) => changes.push((name, record.map(|r| *r), rev)),
                        Some(Change::Node(node, report)) => fleet.note_node(&node, report),
                        Some(Change::ServiceDeleted(name, revision)) => {
                            tracing::warn!(service = %name, revision, "the fleet's record of a service was deleted; keeping its last decision");
                        }
                        None => {}
                    }
                }
                if !changes.is_empty() {
                    let top = changes.iter().map(|c| c.2).max().unwrap_or(0);
                    let error = ctl.apply_fleet(changes).await;
                    if fleet.note_applied(top, error) {
                        fleet.store.report(&fleet.node, &fleet.report(), id).await?;
                    }
                }
            }
            _ = renew.tick() => {
                if !fleet.store.renew(id).await? {
                    // The lease expired (etcd was away longer than its TTL): a new one.
                    let id = fleet.store.grant(NODE_TTL_SECS).await?;
                    *lease = Some(id);
                    fleet.store.report(&fleet.node, &fleet.report(), id).await?;
                    return Ok(End::Reread);
                }
            }
            _ = reread.tick() => {
                let loaded = fleet.store.load().await?;
                if full_apply(fleet, ctl, loaded).await? {
                    fleet.store.report(&fleet.node, &fleet.report(), id).await?;
                }
            }
            _ = stop.changed() => return Ok(End::Stopped),
        }
    }
}

/// A lease that is still alive, or a new one.
async fn ensure_lease(fleet: &Fleet, lease: Option<i64>) -> Result<i64, FleetError> {
    if let Some(id) = lease {
        if fleet.store.renew(id).await? {
            return Ok(id);
        }
    }
    fleet.store.grant(NODE_TTL_SECS).await
}

/// Applies a full read: every service record, seeds for the services the store lacks, and the
/// nodes' reports. True when the applied revision moved (a report is due).
async fn full_apply(fleet: &Fleet, ctl: &Controller, loaded: Loaded) -> Result<bool, FleetError> {
    let changes = loaded
        .services
        .iter()
        .map(|(name, (record, rev))| (name.clone(), Ok(record.clone()), *rev))
        .collect::<Vec<_>>();
    let error = ctl.apply_fleet(changes).await;
    for (service, record) in ctl.fleet_seeds(&loaded).await {
        if let Some(rev) = fleet.store.seed(&service, &record).await? {
            fleet.note_key(&service, rev);
            tracing::info!(service = %service, active = %record.decision.active, "seeded the fleet with this instance's decision");
        }
    }
    fleet.set_nodes(loaded.nodes);
    Ok(fleet.note_applied(loaded.revision, error))
}
