//! Fleet mode: several instances share their decisions through etcd (SPEC §6).
//!
//! Each service's decision is one key, `{prefix}/services/{name}`, holding a [`FleetRecord`].
//! A switch, rollback or split through any instance is a compare-and-swap on that key's
//! revision ([`etcd::Store::publish`]); every instance watches the prefix and applies what it
//! sees in one snapshot store ([`sync::run`]). Each reports what it applied under
//! `{prefix}/nodes/{node}` on a lease, so every instance knows the fleet.
//!
//! The handle here keeps this instance's view: whether etcd answers, the revision of each
//! service key applied, and the nodes' reports. It is read by `/status`, `/metrics` and the
//! control plane; only the sync task and the control plane write it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use switchyard_config::{Config, FleetConfig};
use switchyard_core::snapshot::decisions_from_config;
use switchyard_core::{Decisions, ServiceDecision};

use crate::history::HistoryAction;

pub(crate) mod etcd;
pub(crate) mod sync;

/// How long one etcd request may take before the instance counts etcd as unreachable.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// The time to live of a node's report: a node silent this long is no longer alive.
pub(crate) const NODE_TTL_SECS: i64 = 10;
/// How often the whole prefix is read again, to catch a watch that died without a word.
pub(crate) const FULL_READ_EVERY: Duration = Duration::from_secs(30);

/// One service's decision as the fleet stores it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FleetRecord {
    /// The decision itself.
    #[serde(flatten)]
    pub decision: ServiceDecision,
    /// The instance that made it.
    pub node: String,
    /// Who asked that instance (`X-Switchyard-Actor`, `admin-api`, …), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// What was asked, when known (`None`: the key was seeded from a config).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<HistoryAction>,
    /// When, in RFC 3339 UTC.
    pub at: String,
}

/// What a node reports under `{prefix}/nodes/{node}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeReport {
    /// The store revision up to which this node has applied the decisions.
    pub applied_revision: i64,
    /// When it last applied something, RFC 3339 UTC.
    pub at: String,
    /// Why the last decision it saw could not be applied, if it could not.
    #[serde(default)]
    pub error: Option<String>,
}

/// The fleet as `/status` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FleetStatus {
    /// The store: `etcd`.
    pub store: String,
    /// The key prefix the fleet shares.
    pub prefix: String,
    /// This instance's node name.
    pub node: String,
    /// Whether etcd answers this instance now.
    pub connected: bool,
    /// Since when `connected` has had its value, RFC 3339 UTC.
    pub since: String,
    /// The store revision up to which this instance has applied the decisions.
    pub revision: i64,
    /// Why this instance could not apply the last decision it saw, if so.
    #[serde(default)]
    pub error: Option<String>,
    /// Every node this instance has seen report, by name order.
    pub nodes: Vec<NodeStatus>,
}

/// One node of the fleet, from its report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    /// Its name.
    pub node: String,
    /// The revision it has applied.
    pub applied_revision: i64,
    /// Whether its report is live (its lease has not expired).
    pub alive: bool,
    /// When it last applied something.
    pub at: String,
    /// Why it could not apply the last decision, if so.
    #[serde(default)]
    pub error: Option<String>,
}

/// Why a fleet operation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FleetError {
    /// etcd did not answer (or answered with an error) in time.
    #[error("etcd is unreachable: {0}")]
    Unavailable(String),
    /// Another instance changed the service first.
    #[error("another instance changed service `{service}` first")]
    Conflict {
        /// The service.
        service: String,
        /// Its decision now, when it has one.
        current: Option<Box<FleetRecord>>,
        /// The mod revision of its key now.
        revision: i64,
    },
}

/// This instance's view of the fleet, shared by the sync task, the control plane and `/status`.
#[derive(Debug)]
pub struct Fleet {
    pub(crate) config: FleetConfig,
    pub(crate) node: String,
    pub(crate) store: etcd::Store,
    view: Mutex<View>,
    /// The first read made before the proxy started, if etcd answered it.
    initial: Mutex<Option<etcd::Loaded>>,
}

#[derive(Debug)]
struct View {
    connected: bool,
    since: SystemTime,
    /// The highest revision applied: of a service key, or of a full read.
    revision: i64,
    /// The mod revision of each service key this instance applied or wrote.
    keys: BTreeMap<String, i64>,
    nodes: BTreeMap<String, (NodeReport, bool)>,
    error: Option<String>,
}

impl Fleet {
    /// Connects to etcd and reads the prefix, each for at most `REQUEST_TIMEOUT`; when etcd
    /// does not answer, the fleet starts disconnected (the proxy then starts from its state
    /// file) and the sync task keeps trying.
    pub async fn connect(config: &FleetConfig) -> Arc<Fleet> {
        let fleet = Fleet::disconnected(config);
        match fleet.store.load().await {
            Ok(loaded) => {
                fleet.set_connected(true, None);
                *fleet.initial.lock().unwrap_or_else(PoisonError::into_inner) = Some(loaded);
            }
            Err(e) => {
                tracing::warn!(etcd = %config.etcd.join(","), error = %e, "etcd does not answer; serving the last decisions saved here until it does");
            }
        }
        fleet
    }

    /// A fleet that has not reached etcd yet: the sync task connects.
    pub fn disconnected(config: &FleetConfig) -> Arc<Fleet> {
        Arc::new(Fleet {
            config: config.clone(),
            node: config.node.clone().unwrap_or_else(host_name),
            store: etcd::Store::new(config),
            view: Mutex::new(View {
                connected: false,
                since: SystemTime::now(),
                revision: 0,
                keys: BTreeMap::new(),
                nodes: BTreeMap::new(),
                error: None,
            }),
            initial: Mutex::new(None),
        })
    }

    /// This instance's node name.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The first read, once (the proxy's first snapshot is built from it).
    pub(crate) fn take_initial(&self) -> Option<etcd::Loaded> {
        self.initial
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    fn view(&self) -> std::sync::MutexGuard<'_, View> {
        self.view.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether etcd answers now.
    pub fn connected(&self) -> bool {
        self.view().connected
    }

    /// Records whether etcd answered the last call; logs a change.
    pub(crate) fn set_connected(&self, connected: bool, why: Option<&str>) {
        let mut view = self.view();
        if view.connected != connected {
            view.connected = connected;
            view.since = SystemTime::now();
            if connected {
                tracing::info!(node = %self.node, "etcd answers again; the fleet's decisions apply");
            } else {
                tracing::warn!(node = %self.node, error = why.unwrap_or("unknown"), "lost etcd; serving the last applied decisions, refusing flips until it is back");
            }
        }
    }

    /// The mod revision of a service's key as this instance knows it (0: no key).
    pub(crate) fn key_revision(&self, service: &str) -> i64 {
        self.view().keys.get(service).copied().unwrap_or(0)
    }

    /// Notes that the key of `service` is at `revision`; false when that is not newer than
    /// what was known (nothing to apply).
    pub(crate) fn note_key(&self, service: &str, revision: i64) -> bool {
        let mut view = self.view();
        let known = view.keys.get(service).copied().unwrap_or(0);
        if revision <= known {
            return false;
        }
        view.keys.insert(service.to_string(), revision);
        true
    }

    /// Raises the applied revision to `revision`; true when it moved.
    pub(crate) fn note_applied(&self, revision: i64, error: Option<String>) -> bool {
        let mut view = self.view();
        let moved = revision > view.revision || view.error != error;
        view.revision = view.revision.max(revision);
        view.error = error;
        moved
    }

    /// This instance's report, as it is written to etcd.
    pub(crate) fn report(&self) -> NodeReport {
        let view = self.view();
        NodeReport {
            applied_revision: view.revision,
            at: crate::history::rfc3339(SystemTime::now()),
            error: view.error.clone(),
        }
    }

    /// A node's report seen (`None`: its key went away, it is no longer alive).
    pub(crate) fn note_node(&self, node: &str, report: Option<NodeReport>) {
        let mut view = self.view();
        match report {
            Some(r) => {
                view.nodes.insert(node.to_string(), (r, true));
            }
            None => {
                if let Some(entry) = view.nodes.get_mut(node) {
                    entry.1 = false;
                }
            }
        }
    }

    /// Replaces the nodes seen with a full read's (nodes missing from it are not alive).
    pub(crate) fn set_nodes(&self, nodes: BTreeMap<String, NodeReport>) {
        let mut view = self.view();
        for entry in view.nodes.values_mut() {
            entry.1 = false;
        }
        for (name, report) in nodes {
            view.nodes.insert(name, (report, true));
        }
    }

    /// The fleet as `/status` shows it.
    pub fn status(&self) -> FleetStatus {
        let view = self.view();
        FleetStatus {
            store: "etcd".into(),
            prefix: self.config.prefix.clone(),
            node: self.node.clone(),
            connected: view.connected,
            since: crate::history::rfc3339(view.since),
            revision: view.revision,
            error: view.error.clone(),
            nodes: view
                .nodes
                .iter()
                .map(|(name, (r, alive))| NodeStatus {
                    node: name.clone(),
                    applied_revision: r.applied_revision,
                    alive: *alive,
                    at: r.at.clone(),
                    error: r.error.clone(),
                })
                .collect(),
        }
    }
}

/// The host name, for a node that does not name itself.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| switchyard_config::check_node_name(h).is_ok())
        .unwrap_or_else(|| "switchyard".to_string())
}

/// The first snapshot's decisions from the read made before the start: the config's,
/// overridden by the fleet's records whose pools this config has. `None` when etcd did not
/// answer before the start (the state file's decisions apply then).
pub(crate) fn first_decisions(fleet: &Fleet, config: &Config) -> Option<Decisions> {
    let loaded = fleet.take_initial()?;
    let mut decisions = decisions_from_config(config);
    for (name, (record, revision)) in &loaded.services {
        let Some(cfg) = config.services.get(name) else {
            continue;
        };
        let d = &record.decision;
        let known = cfg.pools.contains_key(&d.active)
            && d.previous
                .as_ref()
                .is_none_or(|p| cfg.pools.contains_key(p))
            && d.split
                .as_ref()
                .is_none_or(|s| s.keys().all(|p| cfg.pools.contains_key(p)));
        if known {
            fleet.note_key(name, *revision);
            decisions.insert(name.clone(), d.clone());
        }
    }
    fleet.set_nodes(loaded.nodes.clone());
    fleet.note_applied(loaded.revision, None);
    // The sync task's first read applies (and seeds) the rest.
    Some(decisions)
}
