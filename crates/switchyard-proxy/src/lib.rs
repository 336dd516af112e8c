//! Switchyard's proxy engine: listeners, the forwarding service, the upstream pool, health
//! checks, the admin API, reloads and durable state.
//!
//! The engine is a library first. A program binds its own listeners, hands them over with a
//! validated [`Config`], and keeps a [`ProxyHandle`] to switch, roll back, reload and read status
//! in-process:
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let config = switchyard_config::default_config();
//! let listeners = switchyard_proxy::Listeners::bind(&config).await?;
//! let proxy = switchyard_proxy::start(config, listeners)?;
//! proxy.switch(Some("app"), "blue", true).await?;
//! println!("{}", proxy.status().generation);
//! proxy.shutdown().await;
//! # Ok(()) }
//! ```

mod admin;
mod body;
mod control;
mod error;
mod forward;
pub mod headers;
mod health;
mod observe;
mod reload;
mod server;
mod shared;
pub mod signals;
pub mod state;
pub mod status;
mod upstream;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
pub use body::{BoxError, ProxyBody};
pub use control::{ControlError, SwitchOutcome};
pub use error::ProxyError;
pub use state::{FileStateStore, StateStore};
pub use status::StatusReport;
use switchyard_config::Config;
use switchyard_core::{Registry, Snapshot};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::control::Controller;
use crate::shared::{ConnCounter, Shared};
use crate::upstream::Upstreams;

/// The sockets the proxy serves on, bound by the caller (so tests use port 0, and a future
/// binary upgrade can hand over inherited sockets).
#[derive(Debug)]
pub struct Listeners {
    /// Plain HTTP listeners.
    pub http: Vec<TcpListener>,
    /// The admin API listener; `None` runs without an admin API.
    pub admin: Option<TcpListener>,
}

impl Listeners {
    /// Binds every address the config names.
    pub async fn bind(config: &Config) -> std::io::Result<Listeners> {
        let mut http = Vec::with_capacity(config.listen.http.len());
        for addr in &config.listen.http {
            http.push(bind(*addr).await?);
        }
        let admin = match config.admin.listen {
            Some(addr) => Some(bind(addr).await?),
            None => None,
        };
        Ok(Listeners { http, admin })
    }

    /// One HTTP listener and one admin listener on 127.0.0.1 with ports chosen by the system.
    pub async fn loopback() -> std::io::Result<Listeners> {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        Ok(Listeners {
            http: vec![bind(any).await?],
            admin: Some(bind(any).await?),
        })
    }
}

async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))
}

/// Why the proxy refused to start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The config is invalid.
    #[error("invalid config:\n{0}")]
    Config(#[from] switchyard_config::ConfigErrors),
    /// The admin API would be reachable from other hosts without a token.
    #[error(
        "the admin API listens on {0}, which is not a loopback address, and no token is set; set [admin] token_env (and that variable) or listen on 127.0.0.1"
    )]
    AdminExposed(SocketAddr),
    /// The token variable is named but not set.
    #[error("[admin] token_env names {0}, but that environment variable is not set or empty")]
    TokenMissing(String),
    /// A socket operation failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// A running proxy: switch, roll back, reload and read status without going through HTTP.
#[derive(Clone)]
pub struct ProxyHandle {
    ctl: Arc<Controller>,
    stop: watch::Sender<bool>,
    tasks: Arc<std::sync::Mutex<Vec<JoinHandle<()>>>>,
    http_addrs: Vec<SocketAddr>,
    admin_addr: Option<SocketAddr>,
    shutdown_timeout: Duration,
}

impl std::fmt::Debug for ProxyHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyHandle")
            .field("http_addrs", &self.http_addrs)
            .field("admin_addr", &self.admin_addr)
            .finish()
    }
}

/// Starts the proxy on `listeners` with the state store the config names (if any).
///
/// Must be called within a Tokio runtime; the proxy runs on spawned tasks.
pub fn start(config: Config, listeners: Listeners) -> Result<ProxyHandle, StartError> {
    let store: Option<Arc<dyn StateStore>> = config
        .state
        .file
        .as_ref()
        .map(|p| Arc::new(FileStateStore::new(p.clone())) as Arc<dyn StateStore>);
    start_with_store(config, listeners, store)
}

/// Starts the proxy with an explicit state store (`None`: decisions are not persisted).
pub fn start_with_store(
    config: Config,
    listeners: Listeners,
    store: Option<Arc<dyn StateStore>>,
) -> Result<ProxyHandle, StartError> {
    config.validate()?;
    let admin_addr = match &listeners.admin {
        Some(l) => Some(l.local_addr()?),
        None => None,
    };
    let token = admin_token(&config, admin_addr)?;
    let http_addrs = listeners
        .http
        .iter()
        .map(TcpListener::local_addr)
        .collect::<Result<Vec<_>, _>>()?;
    let shutdown_timeout = config.runtime.shutdown_timeout;
    let builder = Arc::new(server::builder(&config.limits));
    let shared = Arc::new(Shared {
        snapshot: ArcSwap::from_pointee(Snapshot::build(
            &config,
            &BTreeMap::new(),
            &Registry::new(),
            0,
        )),
        upstreams: Upstreams::default(),
        registry: Registry::new(),
        connections: ConnCounter::default(),
    });
    let ctl = Arc::new(Controller::new(shared.clone(), config, store));
    let (stop, stop_rx) = watch::channel(false);
    let mut tasks = Vec::new();
    for listener in listeners.http {
        tasks.push(tokio::spawn(server::serve_http(
            listener,
            shared.clone(),
            builder.clone(),
            stop_rx.clone(),
        )));
    }
    if let Some(listener) = listeners.admin {
        tasks.push(tokio::spawn(admin::serve(
            listener,
            ctl.clone(),
            token,
            stop_rx,
        )));
    }
    let snap = ctl.snapshot();
    for svc in &snap.services {
        tracing::info!(service = %svc.name, active = %svc.pools[svc.active].name, "service ready");
    }
    let http_list = http_addrs
        .iter()
        .map(SocketAddr::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let admin_str = admin_addr.map_or_else(|| "off".to_string(), |a| a.to_string());
    tracing::info!(http = %http_list, admin = %admin_str, generation = snap.generation, "switchyard started");
    Ok(ProxyHandle {
        ctl,
        stop,
        tasks: Arc::new(std::sync::Mutex::new(tasks)),
        http_addrs,
        admin_addr,
        shutdown_timeout,
    })
}

fn admin_token(config: &Config, admin: Option<SocketAddr>) -> Result<Option<Arc<str>>, StartError> {
    let token = match &config.admin.token_env {
        Some(var) => match std::env::var(var) {
            Ok(v) if !v.trim().is_empty() => Some(Arc::from(v.trim())),
            _ => return Err(StartError::TokenMissing(var.clone())),
        },
        None => None,
    };
    if let Some(addr) = admin {
        if token.is_none() && !addr.ip().is_loopback() {
            return Err(StartError::AdminExposed(addr));
        }
    }
    Ok(token)
}

/// Runs the proxy until `shutdown` completes, then stops gracefully.
pub async fn run(
    config: Config,
    listeners: Listeners,
    shutdown: impl Future<Output = ()>,
) -> Result<(), StartError> {
    let handle = start(config, listeners)?;
    shutdown.await;
    handle.shutdown().await;
    Ok(())
}

impl ProxyHandle {
    /// The addresses the HTTP listeners are bound to.
    pub fn http_addrs(&self) -> &[SocketAddr] {
        &self.http_addrs
    }

    /// The address of the admin API, when it runs.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    /// The status report (the same document as `GET /status`).
    pub fn status(&self) -> StatusReport {
        StatusReport::from_snapshot(&self.ctl.snapshot())
    }

    /// The routing snapshot in force.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.ctl.snapshot()
    }

    /// Makes `to` the active pool (`service` may be `None` when there is exactly one).
    pub async fn switch(
        &self,
        service: Option<&str>,
        to: &str,
        force: bool,
    ) -> Result<SwitchOutcome, ControlError> {
        self.ctl.switch(service, to, force).await
    }

    /// Makes the previous pool active again.
    pub async fn rollback(
        &self,
        service: Option<&str>,
        force: bool,
    ) -> Result<SwitchOutcome, ControlError> {
        self.ctl.rollback(service, force).await
    }

    /// Splits new requests between pools by weight (a switch or rollback ends the split).
    pub async fn split(
        &self,
        service: Option<&str>,
        weights: BTreeMap<String, u32>,
    ) -> Result<SwitchOutcome, ControlError> {
        self.ctl.split(service, weights).await
    }

    /// Applies a new config (listeners stay as they are). Returns the new generation.
    pub async fn reload(&self, config: Config) -> Result<u64, ControlError> {
        self.ctl.reload(config).await
    }

    /// Re-reads the config file the proxy was started from, like SIGHUP.
    pub async fn reload_from_source(&self) -> Result<u64, ControlError> {
        reload::reload_from_source(&self.ctl).await
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
        let drained = tokio::time::timeout(
            self.shutdown_timeout,
            self.ctl.shared.connections.wait_idle(),
        )
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
        drained
    }
}
