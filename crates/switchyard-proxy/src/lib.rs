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

mod access_log;
mod admin;
mod alarm;
mod body;
mod compress;
mod control;
mod dashboard;
mod digits;
mod error;
pub mod fleet;
mod forward;
pub mod framing;
mod handle;
pub mod headers;
mod health;
pub mod history;
mod metrics;
mod mirror;
pub mod notify;
mod observe;
mod ratelimit;
mod reload;
pub mod resolve;
mod server;
mod shared;
pub mod signals;
pub mod state;
mod static_files;
pub mod status;
mod tls;
mod upgrade;
mod upstream;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub use access_log::AccessSink;
use arc_swap::ArcSwap;
pub use body::{BoxError, ProxyBody};
pub use control::guard::GuardStatus;
pub use control::{ControlError, SplitOptions, SwitchOutcome};
pub use error::ProxyError;
pub use history::{HistoryAction, HistoryEntry};
pub use shared::raise_fd_limit;
pub use state::{FileStateStore, StateStore};
pub use status::StatusReport;
use switchyard_config::Config;
pub use switchyard_core::{Decisions, Health};
use switchyard_core::{Registry, Snapshot};
pub use tls::TlsError;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::control::Controller;
use crate::history::{ACTOR_EMBEDDED, History};
use crate::shared::{ConnCounter, Shared};

/// The sockets the proxy serves on, bound by the caller (so tests use port 0, and a future
/// binary upgrade can hand over inherited sockets).
#[derive(Debug)]
pub struct Listeners {
    /// Plain HTTP listeners.
    pub http: Vec<TcpListener>,
    /// TLS listeners, served with the certificates of `[[tls.certs]]` (which must not be empty
    /// when this is not).
    pub https: Vec<TcpListener>,
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
        let mut https = Vec::with_capacity(config.listen.https.len());
        for addr in &config.listen.https {
            https.push(bind(*addr).await?);
        }
        let admin = match config.admin.listen {
            Some(addr) => Some(bind(addr).await?),
            None => None,
        };
        Ok(Listeners { http, https, admin })
    }

    /// The listeners the config names, taken from `inherited` sockets where one matches (by
    /// its name, `http`, `https` or `admin`, in order, else by its address) and bound afresh
    /// otherwise — what systemd socket activation and a binary upgrade hand over
    /// (`LISTEN_FDS`/`LISTEN_FDNAMES`). Inherited sockets that match nothing are closed.
    pub async fn from_inherited(
        config: &Config,
        inherited: Vec<(Option<String>, std::net::TcpListener)>,
    ) -> std::io::Result<Listeners> {
        let mut pool: Vec<(Option<String>, Option<SocketAddr>, std::net::TcpListener)> = inherited
            .into_iter()
            .map(|(name, l)| {
                let addr = l.local_addr().ok();
                (name, addr, l)
            })
            .collect();
        let mut take = |kind: &str, addr: SocketAddr| -> std::io::Result<Option<TcpListener>> {
            let by_name = pool.iter().position(|(n, _, _)| n.as_deref() == Some(kind));
            let by_addr = || pool.iter().position(|(_, a, _)| *a == Some(addr));
            match by_name.or_else(by_addr) {
                Some(i) => {
                    let (_, _, l) = pool.remove(i);
                    l.set_nonblocking(true)?;
                    Ok(Some(TcpListener::from_std(l)?))
                }
                None => Ok(None),
            }
        };
        let mut http = Vec::with_capacity(config.listen.http.len());
        for addr in &config.listen.http {
            match take("http", *addr)? {
                Some(l) => http.push(l),
                None => http.push(bind(*addr).await?),
            }
        }
        let mut https = Vec::with_capacity(config.listen.https.len());
        for addr in &config.listen.https {
            match take("https", *addr)? {
                Some(l) => https.push(l),
                None => https.push(bind(*addr).await?),
            }
        }
        let admin = match config.admin.listen {
            Some(addr) => match take("admin", addr)? {
                Some(l) => Some(l),
                None => Some(bind(addr).await?),
            },
            None => None,
        };
        for (name, addr, _) in &pool {
            tracing::warn!(name = ?name, addr = ?addr, "an inherited socket matches no configured listener; closing it");
        }
        Ok(Listeners { http, https, admin })
    }

    /// Copies of the listening sockets, named `http`, `https` or `admin`, to hand to another
    /// process (a binary upgrade): the kernel socket stays open while either side holds it.
    pub fn handover_fds(&self) -> std::io::Result<Vec<(&'static str, std::os::fd::OwnedFd)>> {
        use std::os::fd::AsFd;
        let mut out = Vec::new();
        for l in &self.http {
            out.push(("http", l.as_fd().try_clone_to_owned()?));
        }
        for l in &self.https {
            out.push(("https", l.as_fd().try_clone_to_owned()?));
        }
        if let Some(l) = &self.admin {
            out.push(("admin", l.as_fd().try_clone_to_owned()?));
        }
        Ok(out)
    }

    /// One HTTP listener and one admin listener on 127.0.0.1 with ports chosen by the system
    /// (no TLS listener).
    pub async fn loopback() -> std::io::Result<Listeners> {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        Ok(Listeners {
            http: vec![bind(any).await?],
            https: vec![],
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
    /// The TLS certificates could not be loaded (the message names the file).
    #[error("TLS: {0}")]
    Tls(#[from] TlsError),
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
    https_addrs: Vec<SocketAddr>,
    admin_addr: Option<SocketAddr>,
    shutdown_timeout: Duration,
    /// Copies of the listening sockets, by name, for a handover to another process.
    listener_fds: Arc<Vec<(&'static str, std::os::fd::OwnedFd)>>,
}

impl std::fmt::Debug for ProxyHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyHandle")
            .field("http_addrs", &self.http_addrs)
            .field("https_addrs", &self.https_addrs)
            .field("admin_addr", &self.admin_addr)
            .finish()
    }
}

/// Starts the proxy on `listeners` with the state store the config names (if any) and the
/// admin token from the variable `[admin] token_env` names.
///
/// Must be called within a Tokio runtime; the proxy runs on spawned tasks.
pub fn start(config: Config, listeners: Listeners) -> Result<ProxyHandle, StartError> {
    Builder::new(config, listeners).start()
}

/// Starts a proxy with options an embedding program may set in code.
pub struct Builder {
    config: Config,
    listeners: Listeners,
    store: Option<Option<Arc<dyn StateStore>>>,
    token: Option<String>,
    access: Option<AccessSink>,
    resolver: Option<Arc<dyn resolve::Resolve>>,
    decisions: Option<switchyard_core::Decisions>,
    fleet: Option<Arc<fleet::Fleet>>,
}

impl Builder {
    /// A proxy for `config` on `listeners`, with the defaults `start` uses.
    pub fn new(config: Config, listeners: Listeners) -> Self {
        Builder {
            config,
            listeners,
            store: None,
            token: None,
            access: None,
            resolver: None,
            decisions: None,
            fleet: None,
        }
    }

    /// Fleet mode with this fleet (from [`fleet::Fleet::connect`], which reads etcd before the
    /// proxy starts). Without it, a config with `[fleet]` starts from the state file and
    /// applies etcd's decisions once it answers.
    pub fn fleet(mut self, fleet: Arc<fleet::Fleet>) -> Self {
        self.fleet = Some(fleet);
        self
    }

    /// Starts with these runtime decisions (active, previous, split per service) instead of
    /// the ones the state store holds: what a binary upgrade hands from the old process to the
    /// new one. Decisions naming services or pools the config does not have are ignored.
    pub fn decisions(mut self, decisions: switchyard_core::Decisions) -> Self {
        self.decisions = Some(decisions);
        self
    }

    /// Resolves upstream host names with `resolver` instead of the system resolver.
    pub fn resolver(mut self, resolver: Arc<dyn resolve::Resolve>) -> Self {
        self.resolver = Some(resolver);
        self
    }

    /// Writes the access log (when `[log] access` is on) through the buffered writer to this
    /// sink. Without it, access lines are `tracing` events with target `switchyard::access`
    /// (the binary always sets one: `[log] access_file` or standard output).
    pub fn access_log(mut self, sink: AccessSink) -> Self {
        self.access = Some(sink);
        self
    }

    /// Uses this state store instead of the file `[state] file` names (`None`: no persistence).
    pub fn state_store(mut self, store: Option<Arc<dyn StateStore>>) -> Self {
        self.store = Some(store);
        self
    }

    /// Requires this bearer token on the admin API (instead of reading `[admin] token_env`).
    pub fn admin_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Starts the proxy. Must be called within a Tokio runtime.
    pub fn start(self) -> Result<ProxyHandle, StartError> {
        let store = self.store.unwrap_or_else(|| {
            self.config
                .state
                .file
                .as_ref()
                .map(|p| Arc::new(FileStateStore::new(p.clone())) as Arc<dyn StateStore>)
        });
        let resolver = self
            .resolver
            .unwrap_or_else(|| Arc::new(resolve::SystemResolver));
        let fleet = self
            .fleet
            .or_else(|| self.config.fleet.as_ref().map(fleet::Fleet::disconnected));
        start_inner(
            self.config,
            self.listeners,
            store,
            self.token,
            self.access,
            resolver,
            (self.decisions, fleet),
        )
    }
}

fn start_inner(
    config: Config,
    listeners: Listeners,
    store: Option<Arc<dyn StateStore>>,
    token: Option<String>,
    access: Option<AccessSink>,
    resolver: Arc<dyn resolve::Resolve>,
    (decisions, fleet): (
        Option<switchyard_core::Decisions>,
        Option<Arc<fleet::Fleet>>,
    ),
) -> Result<ProxyHandle, StartError> {
    config.validate()?;
    let access_format =
        config
            .log
            .access_format
            .unwrap_or(switchyard_config::AccessFormat::following(
                config.log.format,
            ));
    let access = match access {
        Some(sink) if config.log.access => {
            let reopens = matches!(sink, AccessSink::File(_));
            Some((access_log::AccessLog::start(access_format, sink)?, reopens))
        }
        _ => None,
    };
    let (access, reopens) = match access {
        Some((log, reopens)) => (Some(log), reopens),
        None => (None, false),
    };
    let admin_addr = match &listeners.admin {
        Some(l) => Some(l.local_addr()?),
        None => None,
    };
    let listener_fds = Arc::new(listeners.handover_fds()?);
    let token = admin_token(&config, admin_addr, token)?;
    let http_addrs = listeners
        .http
        .iter()
        .map(TcpListener::local_addr)
        .collect::<Result<Vec<_>, _>>()?;
    let https_addrs = listeners
        .https
        .iter()
        .map(TcpListener::local_addr)
        .collect::<Result<Vec<_>, _>>()?;
    // Certificates are loaded (and checked) whenever they are configured or needed.
    let tls = if listeners.https.is_empty() && config.tls.certs.is_empty() {
        None
    } else {
        Some(tls::Tls::new(&config.tls.certs)?)
    };
    let plain = if config.listen.redirect_https {
        let https_port = https_addrs
            .first()
            .or(config.listen.https.first())
            .map_or(443, SocketAddr::port);
        server::Plain::Redirect { https_port }
    } else {
        server::Plain::Forward
    };
    let shutdown_timeout = config.runtime.shutdown_timeout;
    let admin_limits = admin::AdminLimits {
        max_connections: config.admin.max_connections,
        header_timeout: config.limits.header_timeout,
    };
    let builder = Arc::new(server::builder(&config.limits));
    let registry = Registry::new();
    let fleet_first = fleet
        .as_ref()
        .and_then(|f| fleet::first_decisions(f, &config));
    let first = match decisions.or(fleet_first) {
        Some(d) => Snapshot::build(&config, &d, &registry, 1),
        None => control::first_snapshot(&config, store.as_deref(), &registry),
    };
    let shared = Arc::new(Shared {
        snapshot: ArcSwap::from_pointee(first),
        registry,
        connections: ConnCounter::default(),
        metrics: metrics::Metrics::default(),
        upgrades: shared::UpgradeRequests::default(),
        access,
    });
    let history = match &config.state.file {
        Some(state) => History::open(history::path_for_state(state), history_capacity(&config)),
        None => History::in_memory(history_capacity(&config)),
    };
    let ctl = Arc::new(
        Controller::new(shared.clone(), config, store, history)
            .with_tls(tls.as_ref().map(tls::Tls::reloader))
            .with_fleet(fleet.clone()),
    );
    let (stop, stop_rx) = watch::channel(false);
    let mut tasks = Vec::new();
    tasks.push(tokio::spawn(control::ramp::run(
        ctl.clone(),
        stop_rx.clone(),
    )));
    tasks.push(tokio::spawn(control::guard::run(
        ctl.clone(),
        stop_rx.clone(),
    )));
    if let Some(fleet) = fleet {
        let _ = shared.metrics.fleet.set(fleet.clone());
        tasks.push(tokio::spawn(fleet::sync::run(
            fleet,
            ctl.clone(),
            stop_rx.clone(),
        )));
    }
    tasks.push(tokio::spawn(resolve::run(
        ctl.clone(),
        resolver,
        stop_rx.clone(),
    )));
    if reopens {
        tasks.push(tokio::spawn(signals::reopen_access_log_on_usr1(
            shared.clone(),
            stop_rx.clone(),
        )));
    }
    let ctx = server::ConnCtx {
        shared: shared.clone(),
        builder,
        stop: stop_rx.clone(),
    };
    for listener in listeners.http {
        tasks.push(tokio::spawn(server::serve_http(
            listener,
            ctx.clone(),
            plain,
        )));
    }
    if let Some(tls) = &tls {
        for listener in listeners.https {
            tasks.push(tokio::spawn(server::serve_https(
                listener,
                ctx.clone(),
                tls.clone(),
            )));
        }
    }
    if let Some(listener) = listeners.admin {
        // The dashboard's chart of the last minutes, sampled once a second.
        tasks.push(tokio::spawn(metrics::sample_traffic(
            shared.clone(),
            stop_rx.clone(),
        )));
        tasks.push(tokio::spawn(admin::serve(
            listener,
            ctl.clone(),
            token,
            admin_limits,
            stop_rx,
        )));
    }
    let snap = ctl.snapshot();
    for svc in &snap.services {
        tracing::info!(service = %svc.name, active = %svc.pools[svc.active].name, "service ready");
    }
    let list = |addrs: &[SocketAddr]| {
        addrs
            .iter()
            .map(SocketAddr::to_string)
            .collect::<Vec<_>>()
            .join(",")
    };
    let (http_list, https_list) = (list(&http_addrs), list(&https_addrs));
    let admin_str = admin_addr.map_or_else(|| "off".to_string(), |a| a.to_string());
    tracing::info!(http = %http_list, https = %https_list, admin = %admin_str, generation = snap.generation, "switchyard started");
    Ok(ProxyHandle {
        ctl,
        stop,
        tasks: Arc::new(std::sync::Mutex::new(tasks)),
        http_addrs,
        https_addrs,
        admin_addr,
        shutdown_timeout,
        listener_fds,
    })
}

/// How many history entries to keep: `[admin] history`.
fn history_capacity(config: &Config) -> usize {
    config.admin.history
}

/// An actor name as the history keeps it (sanitised; `embedded` when nothing usable is left).
fn actor_name(actor: &str) -> String {
    history::sanitize_actor(actor).unwrap_or_else(|| ACTOR_EMBEDDED.to_string())
}

fn admin_token(
    config: &Config,
    admin: Option<SocketAddr>,
    given: Option<String>,
) -> Result<Option<Arc<str>>, StartError> {
    let token = match (given, &config.admin.token_env) {
        (Some(t), _) if !t.trim().is_empty() => Some(Arc::from(t.trim())),
        (_, Some(var)) => match std::env::var(var) {
            Ok(v) if !v.trim().is_empty() => Some(Arc::from(v.trim())),
            _ => return Err(StartError::TokenMissing(var.clone())),
        },
        _ => None,
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
