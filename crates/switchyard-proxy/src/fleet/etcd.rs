//! The fleet's store: etcd v3, through the `etcd-client` crate.
//!
//! Keys under the prefix: `services/{name}` (a [`FleetRecord`], JSON) and `nodes/{node}` (a
//! [`NodeReport`], JSON, on the node's lease). Every call is bounded by `REQUEST_TIMEOUT`; a call
//! that fails or times out is [`FleetError::Unavailable`].

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Mutex, PoisonError};

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, GetOptions, PutOptions, Txn, TxnOp, TxnOpResponse,
    WatchOptions, WatchStream, Watcher,
};
use switchyard_config::FleetConfig;

use super::{FleetError, FleetRecord, NodeReport, REQUEST_TIMEOUT};

/// What one read of the prefix found.
#[derive(Debug, Clone, Default)]
pub(crate) struct Loaded {
    /// The store revision of the read.
    pub(crate) revision: i64,
    /// Each service's record and its key's mod revision.
    pub(crate) services: BTreeMap<String, (FleetRecord, i64)>,
    /// Each live node's report.
    pub(crate) nodes: BTreeMap<String, NodeReport>,
}

/// One change seen by a watch.
#[derive(Debug)]
pub(crate) enum Change {
    /// A service's record was written (at the given mod revision), or is unreadable.
    Service(String, Result<Box<FleetRecord>, String>, i64),
    /// A node reported (`Some`) or its report went away (`None`).
    Node(String, Option<NodeReport>),
    /// A service key was deleted.
    ServiceDeleted(String, i64),
}

/// The etcd endpoints and a connected client, made on first use and again after a failure.
pub(crate) struct Store {
    endpoints: Vec<String>,
    prefix: String,
    options: ConnectOptions,
    client: Mutex<Option<Client>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("endpoints", &self.endpoints)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// Runs `call` within `REQUEST_TIMEOUT`; any failure is `Unavailable`.
async fn bounded<T, E: std::fmt::Display>(
    call: impl Future<Output = Result<T, E>>,
) -> Result<T, FleetError> {
    match tokio::time::timeout(REQUEST_TIMEOUT, call).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(FleetError::Unavailable(e.to_string())),
        Err(_) => Err(FleetError::Unavailable(format!(
            "no answer within {} ms",
            REQUEST_TIMEOUT.as_millis()
        ))),
    }
}

impl Store {
    /// A store for `config` (nothing is connected yet).
    pub(crate) fn new(config: &FleetConfig) -> Store {
        let mut options = ConnectOptions::new()
            .with_connect_timeout(REQUEST_TIMEOUT)
            .with_timeout(REQUEST_TIMEOUT)
            .with_keep_alive(REQUEST_TIMEOUT, REQUEST_TIMEOUT)
            .with_keep_alive_while_idle(true);
        if let (Some(user), Some(pass)) = (&config.username_env, &config.password_env) {
            match (std::env::var(user), std::env::var(pass)) {
                (Ok(u), Ok(p)) => options = options.with_user(u, p),
                _ => {
                    tracing::error!(username_env = %user, password_env = %pass, "fleet.username_env / password_env name unset variables; connecting without auth")
                }
            }
        }
        if let Some(tls) = tls_options(config) {
            options = options.with_tls(tls);
        }
        Store {
            endpoints: config.etcd.clone(),
            prefix: config.prefix.clone(),
            options,
            client: Mutex::new(None),
        }
    }

    fn key(&self, kind: &str, name: &str) -> String {
        format!("{}/{kind}/{name}", self.prefix)
    }

    /// The prefix every key of this fleet starts with (with its trailing `/`).
    fn root(&self) -> String {
        format!("{}/", self.prefix)
    }

    /// A connected client (connecting when there is none).
    async fn client(&self) -> Result<Client, FleetError> {
        if let Some(c) = self
            .client
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
        {
            return Ok(c);
        }
        let client = bounded(Client::connect(
            self.endpoints.clone(),
            Some(self.options.clone()),
        ))
        .await?;
        *self.client.lock().unwrap_or_else(PoisonError::into_inner) = Some(client.clone());
        Ok(client)
    }

    /// Forgets the client after a failure, so the next call connects afresh.
    pub(crate) fn reset(&self) {
        *self.client.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }

    async fn checked<T>(&self, result: Result<T, FleetError>) -> Result<T, FleetError> {
        if matches!(result, Err(FleetError::Unavailable(_))) {
            self.reset();
        }
        result
    }

    /// Reads every key under the prefix.
    pub(crate) async fn load(&self) -> Result<Loaded, FleetError> {
        let result = self.load_inner().await;
        self.checked(result).await
    }

    async fn load_inner(&self) -> Result<Loaded, FleetError> {
        let mut client = self.client().await?;
        let resp = bounded(client.get(self.root(), Some(GetOptions::new().with_prefix()))).await?;
        let mut loaded = Loaded {
            revision: resp.header().map_or(0, |h| h.revision()),
            ..Loaded::default()
        };
        for kv in resp.kvs() {
            match self.parse(kv.key(), Some(kv.value()), kv.mod_revision()) {
                Some(Change::Service(name, Ok(record), rev)) => {
                    loaded.services.insert(name, (*record, rev));
                }
                Some(Change::Service(name, Err(why), _)) => {
                    tracing::warn!(service = %name, error = %why, "the fleet's record of a service is unreadable; ignored");
                }
                Some(Change::Node(name, Some(report))) => {
                    loaded.nodes.insert(name, report);
                }
                _ => {}
            }
        }
        Ok(loaded)
    }

    /// What a key and its value (`None`: deleted) mean, when the key is one of ours.
    pub(crate) fn parse(&self, key: &[u8], value: Option<&[u8]>, revision: i64) -> Option<Change> {
        let key = std::str::from_utf8(key).ok()?;
        let rest = key.strip_prefix(&self.root())?;
        if let Some(name) = rest.strip_prefix("services/") {
            let name = name.to_string();
            return Some(match value {
                None => Change::ServiceDeleted(name, revision),
                Some(v) => Change::Service(
                    name,
                    serde_json::from_slice(v)
                        .map(Box::new)
                        .map_err(|e| e.to_string()),
                    revision,
                ),
            });
        }
        let node = rest.strip_prefix("nodes/")?.to_string();
        Some(Change::Node(
            node,
            value.and_then(|v| serde_json::from_slice(v).ok()),
        ))
    }

    /// Writes `changes` (service, record, the mod revision it must still have) in one
    /// transaction; the new revision, or `Conflict` with the first service's current record.
    pub(crate) async fn publish(
        &self,
        changes: &[(String, FleetRecord, i64)],
    ) -> Result<i64, FleetError> {
        let result = self.publish_inner(changes).await;
        self.checked(result).await
    }

    async fn publish_inner(
        &self,
        changes: &[(String, FleetRecord, i64)],
    ) -> Result<i64, FleetError> {
        let mut client = self.client().await?;
        let mut compares = Vec::new();
        let mut puts = Vec::new();
        let mut gets = Vec::new();
        for (service, record, expected) in changes {
            let key = self.key("services", service);
            let value = serde_json::to_vec(record)
                .map_err(|e| FleetError::Unavailable(format!("cannot encode the record: {e}")))?;
            compares.push(Compare::mod_revision(
                key.clone(),
                CompareOp::Equal,
                *expected,
            ));
            puts.push(TxnOp::put(key.clone(), value, None));
            gets.push(TxnOp::get(key, None));
        }
        let txn = Txn::new().when(compares).and_then(puts).or_else(gets);
        let resp = bounded(client.txn(txn)).await?;
        let revision = resp.header().map_or(0, |h| h.revision());
        if resp.succeeded() {
            return Ok(revision);
        }
        // Report the first service whose key moved.
        for ((service, _, expected), op) in changes.iter().zip(resp.op_responses()) {
            let TxnOpResponse::Get(get) = op else {
                continue;
            };
            let kv = get.kvs().first();
            if kv.map_or(0, |kv| kv.mod_revision()) == *expected {
                continue;
            }
            let current = kv.and_then(|kv| serde_json::from_slice(kv.value()).ok());
            return Err(FleetError::Conflict {
                service: service.clone(),
                current: current.map(Box::new),
                revision: kv.map_or(0, |kv| kv.mod_revision()),
            });
        }
        Err(FleetError::Conflict {
            service: changes.first().map(|c| c.0.clone()).unwrap_or_default(),
            current: None,
            revision: 0,
        })
    }

    /// Creates a service's key when there is none; its mod revision when created.
    pub(crate) async fn seed(
        &self,
        service: &str,
        record: &FleetRecord,
    ) -> Result<Option<i64>, FleetError> {
        let result = async {
            let mut client = self.client().await?;
            let key = self.key("services", service);
            let value = serde_json::to_vec(record)
                .map_err(|e| FleetError::Unavailable(format!("cannot encode the record: {e}")))?;
            let txn = Txn::new()
                .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
                .and_then([TxnOp::put(key, value, None)]);
            let resp = bounded(client.txn(txn)).await?;
            Ok(resp
                .succeeded()
                .then(|| resp.header().map_or(0, |h| h.revision())))
        }
        .await;
        self.checked(result).await
    }

    /// A lease of `ttl` seconds for this node's report.
    pub(crate) async fn grant(&self, ttl: i64) -> Result<i64, FleetError> {
        let result = async {
            let mut client = self.client().await?;
            Ok(bounded(client.lease_grant(ttl, None)).await?.id())
        }
        .await;
        self.checked(result).await
    }

    /// Renews a lease once; false when it has expired.
    pub(crate) async fn renew(&self, lease: i64) -> Result<bool, FleetError> {
        let result = async {
            let mut client = self.client().await?;
            let (mut keeper, mut stream) = bounded(client.lease_keep_alive(lease)).await?;
            bounded(keeper.keep_alive()).await?;
            match bounded(stream.message()).await? {
                Some(resp) => Ok(resp.ttl() > 0),
                None => Err(FleetError::Unavailable("the lease stream closed".into())),
            }
        }
        .await;
        self.checked(result).await
    }

    /// Ends a lease (and with it this node's report), on a graceful stop.
    pub(crate) async fn revoke(&self, lease: i64) -> Result<(), FleetError> {
        let result = async {
            let mut client = self.client().await?;
            bounded(client.lease_revoke(lease)).await?;
            Ok(())
        }
        .await;
        self.checked(result).await
    }

    /// Writes this node's report on its lease.
    pub(crate) async fn report(
        &self,
        node: &str,
        report: &NodeReport,
        lease: i64,
    ) -> Result<(), FleetError> {
        let result = async {
            let mut client = self.client().await?;
            let value = serde_json::to_vec(report)
                .map_err(|e| FleetError::Unavailable(format!("cannot encode the report: {e}")))?;
            let options = PutOptions::new().with_lease(lease);
            bounded(client.put(self.key("nodes", node), value, Some(options))).await?;
            Ok(())
        }
        .await;
        self.checked(result).await
    }

    /// Watches every key under the prefix from revision `from` (inclusive).
    pub(crate) async fn watch(&self, from: i64) -> Result<(Watcher, WatchStream), FleetError> {
        let result = async {
            let mut client = self.client().await?;
            let options = WatchOptions::new()
                .with_prefix()
                .with_start_revision(from)
                .with_progress_notify();
            bounded(client.watch(self.root(), Some(options))).await
        }
        .await;
        self.checked(result).await
    }
}

/// TLS towards etcd from `[fleet.tls]`; a file that cannot be read is logged and left out.
fn tls_options(config: &FleetConfig) -> Option<etcd_client::TlsOptions> {
    let tls = &config.tls;
    let https = config.etcd.iter().any(|e| e.starts_with("https://"));
    if !https && tls.ca.is_none() && tls.cert.is_none() {
        return None;
    }
    let mut options = etcd_client::TlsOptions::new();
    let read = |path: &std::path::Path| match std::fs::read(path) {
        Ok(bytes) => Some(bytes),
        Err(e) => {
            tracing::error!(file = %path.display(), error = %e, "cannot read a [fleet.tls] file");
            None
        }
    };
    if let Some(ca) = tls.ca.as_deref().and_then(read) {
        options = options.ca_certificate(etcd_client::Certificate::from_pem(ca));
    }
    if let (Some(cert), Some(key)) = (
        tls.cert.as_deref().and_then(read),
        tls.key.as_deref().and_then(read),
    ) {
        options = options.identity(etcd_client::Identity::from_pem(cert, key));
    }
    Some(options)
}
