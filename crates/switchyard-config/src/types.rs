//! The validated, typed configuration: what the engine sees. Nothing here knows TOML.
//!
//! Every value in these types has already been checked; the engine can rely on them
//! (pools are non-empty, `active` names a pool, addresses are resolved, durations parsed).
//! A `Config` may also be built in code by an embedding program (start from
//! `Config::default()`, `ServiceConfig::new`, `PoolConfig::new`); `Config::validate` then runs
//! the checks that do not depend on a file.
//!
//! The edge settings (TLS, log, response headers, compression, rate limits, static files) are
//! in the `edge` submodule and re-exported here.

mod edge;

pub use edge::*;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// A whole, validated Switchyard configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The file the config was read from, if any; reloads re-read it.
    pub source: Option<PathBuf>,
    /// Client-facing listeners.
    pub listen: ListenConfig,
    /// The admin API listener and its token.
    pub admin: AdminConfig,
    /// Certificates for the `listen.https` listeners.
    pub tls: TlsConfig,
    /// Request limits that protect the proxy from slow or oversized clients.
    pub limits: LimitsConfig,
    /// The process log format and the access log.
    pub log: LogConfig,
    /// Tokio runtime and lifecycle settings.
    pub runtime: RuntimeConfig,
    /// Where runtime decisions (active colours) are persisted.
    pub state: StateConfig,
    /// Fleet mode: the decisions live in etcd, shared by every instance with the same prefix.
    /// `None`: this instance keeps its decisions to itself (in `state`).
    pub fleet: Option<FleetConfig>,
    /// Services by name, in name order (the order `/status` lists them).
    pub services: BTreeMap<String, ServiceConfig>,
}

/// `[listen]`: the addresses clients connect to.
#[derive(Debug, Clone, PartialEq)]
pub struct ListenConfig {
    /// Plain HTTP listeners (HTTP/1.1 and cleartext HTTP/2 with prior knowledge).
    /// May be empty when `https` is not.
    pub http: Vec<SocketAddr>,
    /// TLS listeners (HTTP/1.1 and HTTP/2 by ALPN), served with the certificates of
    /// `Config::tls`, which is non-empty exactly when this is.
    pub https: Vec<SocketAddr>,
    /// Answer every request on the `http` listeners with a 308 redirect to the same URL on
    /// https instead of routing it. Only with at least one `https` listener.
    pub redirect_https: bool,
}

/// `[admin]`: the admin API.
#[derive(Debug, Clone, PartialEq)]
pub struct AdminConfig {
    /// Where the admin API listens; `None` disables it.
    pub listen: Option<SocketAddr>,
    /// The environment variable holding the bearer token, if auth is on.
    pub token_env: Option<String>,
    /// Entries kept in the switch history (`GET /history`, and the history file next to the
    /// state file): switches, rollbacks, splits and reloads, applied or refused (1..=100000);
    /// the oldest are dropped first.
    pub history: usize,
    /// Most admin connections open at once (1..=10000); further connections wait in the
    /// kernel's accept queue. The admin API's own cap, so that idle admin connections can never
    /// take the proxy's file descriptors.
    pub max_connections: usize,
}

/// `[limits]`: protections on the client side.
#[derive(Debug, Clone, PartialEq)]
pub struct LimitsConfig {
    /// Largest request body accepted; larger gets 413.
    pub max_body: u64,
    /// Largest request head (request line plus headers); larger gets 431.
    pub max_header_bytes: usize,
    /// Time allowed for a client to send a complete request head.
    pub header_timeout: Duration,
    /// How long an idle keep-alive client connection is kept open.
    pub keepalive_timeout: Duration,
    /// Longest wait between two reads of a request body (nginx `client_body_timeout`); a
    /// client that sends nothing for longer gets 408 and its connection is closed.
    pub body_timeout: Duration,
    /// Longest wait for a client to take more of a response (nginx `send_timeout`); a client
    /// that reads nothing for longer has its connection closed.
    pub send_timeout: Duration,
    /// Most header fields in one request (1..=1000); more gets 431.
    pub max_headers: usize,
    /// Most client connections open at once, over all listeners (at least 1); further
    /// connections wait in the kernel's accept queue until one closes.
    pub max_connections: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_body: 16 * 1024 * 1024,
            max_header_bytes: 32 * 1024,
            header_timeout: Duration::from_secs(10),
            keepalive_timeout: Duration::from_secs(75),
            body_timeout: Duration::from_secs(60),
            send_timeout: Duration::from_secs(60),
            max_headers: 100,
            max_connections: 10_000,
        }
    }
}

/// `[runtime]`: process-level settings.
#[derive(Debug, Clone, PartialEq)]
pub struct RuntimeConfig {
    /// Tokio worker threads; `None` means one per core.
    pub worker_threads: Option<usize>,
    /// How long a graceful stop waits for in-flight requests before exiting anyway.
    pub shutdown_timeout: Duration,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            worker_threads: None,
            shutdown_timeout: Duration::from_secs(30),
        }
    }
}

/// `[state]`: durable runtime decisions.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StateConfig {
    /// The JSON file the active colour of each service is written to.
    pub file: Option<PathBuf>,
}

/// `[fleet]`: where a fleet of instances keeps its shared decisions.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetConfig {
    /// etcd v3 endpoints (`http://host:port` or `https://host:port`), at least one.
    pub etcd: Vec<String>,
    /// The key prefix: instances with the same prefix share their decisions. Starts with `/`,
    /// never ends with one.
    pub prefix: String,
    /// This instance's name in the fleet; `None`: the host name.
    pub node: Option<String>,
    /// The environment variable holding the etcd user name, when etcd has auth on.
    pub username_env: Option<String>,
    /// The environment variable holding the etcd password.
    pub password_env: Option<String>,
    /// TLS towards etcd: a CA to trust and a client certificate and key.
    pub tls: FleetTlsConfig,
}

/// `[fleet.tls]`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FleetTlsConfig {
    /// A PEM file of the CA that signed etcd's certificate.
    pub ca: Option<PathBuf>,
    /// A PEM client certificate (with `key`).
    pub cert: Option<PathBuf>,
    /// The PEM private key of `cert`.
    pub key: Option<PathBuf>,
}

impl FleetConfig {
    /// A fleet on these endpoints under `prefix`, named by the host name.
    pub fn new(etcd: Vec<String>, prefix: impl Into<String>) -> Self {
        FleetConfig {
            etcd,
            prefix: prefix.into(),
            node: None,
            username_env: None,
            password_env: None,
            tls: FleetTlsConfig::default(),
        }
    }
}

/// One routed service: a set of named pools, one of which is active.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceConfig {
    /// The service's name (the key under `[services]`).
    pub name: String,
    /// Host patterns this service answers; empty means any host.
    pub hosts: Vec<HostPattern>,
    /// Path prefix this service answers (always starts with `/`); `None` means any path.
    /// Never `/` and never ends in `/`: the file's `/api/` is normalised to `/api` and `/` to `None`.
    pub path_prefix: Option<String>,
    /// The pool that receives traffic at start.
    pub active: String,
    /// Pools by name (`green`, `blue`, or any other name).
    pub pools: BTreeMap<String, PoolConfig>,
    /// Active health checking of every server of every pool.
    pub health: HealthConfig,
    /// Upstream connection and timeout settings.
    pub upstream: UpstreamConfig,
    /// Retry policy.
    pub retry: RetryConfig,
    /// Passive ejection of servers that fail real traffic.
    pub ejection: EjectionConfig,
    /// After a switch, how long upgraded connections (websockets) to the old pool are left
    /// open before they are closed; `None` leaves them on their pool until they close.
    pub upgraded_drain_timeout: Option<Duration>,
    /// Whether the proxy makes an `X-Request-Id` for a request that has none (sent upstream,
    /// returned on the answer, and logged); with `false` only a client's own is passed on.
    pub generate_request_id: bool,
    /// Headers set on every response of the service, replacing any the upstream sent under
    /// the same name (nginx: `add_header … always`), in file order. Each name is a valid header
    /// name, listed once (names compare case-insensitively), and not a hop-by-hop or framing
    /// header; each value is visible ASCII, spaces and tabs.
    pub response_headers: Vec<(String, String)>,
    /// Response compression.
    pub compression: CompressionConfig,
    /// Per-client request rate limits, at most one per `path_prefix`.
    pub rate_limits: Vec<RateLimitConfig>,
    /// Paths served from directories on disk instead of the pools, at most one per
    /// `path_prefix`.
    pub static_files: Vec<StaticConfig>,
    /// Preview of any pool through the proxy, by header or cookie.
    pub preview: PreviewConfig,
    /// Automatic rollback when the new colour fails after a switch or during a ramp.
    pub guard: Option<GuardConfig>,
    /// Copies of live requests sent to another pool, their answers thrown away.
    pub mirror: Option<MirrorConfig>,
}

/// A Host header pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    /// Matches this host exactly (lower-case, no port).
    Exact(String),
    /// `*.example.com`: matches any host ending in `.example.com` (stored as `.example.com`).
    Wildcard(String),
}

/// How a pool picks a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Balance {
    /// Weighted round robin.
    #[default]
    RoundRobin,
    /// The server with the fewest requests in flight (relative to its weight).
    LeastConn,
}

/// One pool of upstream servers.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolConfig {
    /// The servers; never empty.
    pub servers: Vec<ServerConfig>,
    /// Selection algorithm.
    pub balance: Balance,
}

/// One upstream server.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    /// Resolved socket address (the first address of a host name, when the config was loaded).
    pub addr: SocketAddr,
    /// Relative weight (1..=1000).
    pub weight: u32,
    /// The host name when the server was written `NAME:PORT`: the proxy resolves it again every
    /// `upstream.resolve_interval`, and the server stands for every address it resolves to.
    /// `None` for an IP address.
    pub host: Option<String>,
}

/// `[services.X.health]`: active health checks.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthConfig {
    /// Path requested with GET.
    pub path: String,
    /// Time between checks of one server.
    pub interval: Duration,
    /// Time allowed for one check.
    pub timeout: Duration,
    /// Lowest status that counts as healthy.
    pub expect_min: u16,
    /// Highest status that counts as healthy.
    pub expect_max: u16,
    /// Consecutive passes that make an unhealthy server healthy.
    pub rise: u32,
    /// Consecutive failures that make a healthy server unhealthy.
    pub fall: u32,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            path: "/health".to_string(),
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            expect_min: 200,
            expect_max: 399,
            rise: 2,
            fall: 3,
        }
    }
}

/// `[services.X.upstream]`: connections to the app servers.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamConfig {
    /// Time allowed to establish a TCP connection (then the attempt fails as a connect failure).
    pub connect_timeout: Duration,
    /// Time allowed from sending the request to receiving the response head (then 504).
    pub response_timeout: Duration,
    /// How long an idle pooled connection is kept; keep it below the app's keep-alive timeout.
    pub idle_timeout: Duration,
    /// Most idle connections kept per server.
    pub max_idle_per_server: usize,
    /// How often servers written as host names are resolved again.
    pub resolve_interval: Duration,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        UpstreamConfig {
            connect_timeout: Duration::from_secs(2),
            response_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(20),
            max_idle_per_server: 128,
            resolve_interval: Duration::from_secs(5),
        }
    }
}

/// `[services.X.retry]`: when a failed attempt is tried again.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryConfig {
    /// Total attempts, the first included (1 disables retries).
    pub attempts: u32,
    /// Upstream statuses that are retried for idempotent requests.
    pub on_status: Vec<u16>,
    /// First backoff step; later steps double, with full jitter.
    pub backoff_base: Duration,
    /// Longest backoff step.
    pub backoff_max: Duration,
    /// Over a sliding window of about one second, retries may be at most this share of the
    /// service's requests…
    pub budget_ratio: f64,
    /// …but at least this many retries per window are always allowed.
    pub budget_min: u32,
    /// Request bodies up to this size are buffered so they can be replayed.
    pub replay_buffer: usize,
    /// Treat requests carrying an `Idempotency-Key` header as idempotent.
    pub idempotency_key: bool,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            attempts: 3,
            on_status: vec![502, 503, 504],
            backoff_base: Duration::from_millis(25),
            backoff_max: Duration::from_millis(250),
            budget_ratio: 0.2,
            budget_min: 3,
            replay_buffer: 64 * 1024,
            idempotency_key: false,
        }
    }
}

/// What to do when every server of the live pool is down or ejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AllDown {
    /// Keep sending to them anyway (a request may still succeed); failures answer 502.
    #[default]
    TryAll,
    /// Answer 503 at once without contacting any server.
    Fail,
}

/// `[services.X.ejection]`: passive outlier ejection.
#[derive(Debug, Clone, PartialEq)]
pub struct EjectionConfig {
    /// Consecutive failed attempts that eject a server (0 disables ejection).
    pub consecutive_failures: u32,
    /// First ejection period; it doubles with each repeated ejection.
    pub base: Duration,
    /// Longest ejection period.
    pub max: Duration,
    /// Behaviour when every server of the live pool is down.
    pub all_down: AllDown,
}

impl Default for EjectionConfig {
    fn default() -> Self {
        EjectionConfig {
            consecutive_failures: 3,
            base: Duration::from_secs(10),
            max: Duration::from_secs(300),
            all_down: AllDown::TryAll,
        }
    }
}

/// The admin API's default listener, `127.0.0.1:9901`.
pub const DEFAULT_ADMIN_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9901);

/// The default client listener, `0.0.0.0:8080`.
pub const DEFAULT_HTTP_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 8080);

impl Default for Config {
    /// Default settings with no services: a base for configs built in code
    /// (`Config { services, ..Config::default() }`); on its own it does not validate.
    fn default() -> Self {
        Config {
            source: None,
            listen: ListenConfig::default(),
            admin: AdminConfig::default(),
            tls: TlsConfig::default(),
            limits: LimitsConfig::default(),
            log: LogConfig::default(),
            runtime: RuntimeConfig::default(),
            state: StateConfig::default(),
            fleet: None,
            services: BTreeMap::new(),
        }
    }
}

impl Default for ListenConfig {
    /// One plain HTTP listener on `0.0.0.0:8080`, no TLS listener, no redirect.
    fn default() -> Self {
        ListenConfig {
            http: vec![DEFAULT_HTTP_LISTEN],
            https: Vec::new(),
            redirect_https: false,
        }
    }
}

impl Default for AdminConfig {
    /// The admin API on `127.0.0.1:9901`, without a token, keeping 200 history entries.
    fn default() -> Self {
        AdminConfig {
            listen: Some(DEFAULT_ADMIN_LISTEN),
            token_env: None,
            history: 200,
            max_connections: 64,
        }
    }
}

impl ServiceConfig {
    /// A catch-all service (no hosts, no path prefix) with default health, upstream, retry and
    /// ejection settings, and no edge options (no response headers, compression off, no rate
    /// limits, no static files, upgraded connections left on their pool).
    pub fn new(
        name: impl Into<String>,
        active: impl Into<String>,
        pools: BTreeMap<String, PoolConfig>,
    ) -> Self {
        ServiceConfig {
            name: name.into(),
            hosts: Vec::new(),
            path_prefix: None,
            active: active.into(),
            pools,
            health: HealthConfig::default(),
            upstream: UpstreamConfig::default(),
            retry: RetryConfig::default(),
            ejection: EjectionConfig::default(),
            upgraded_drain_timeout: None,
            generate_request_id: true,
            response_headers: Vec::new(),
            compression: CompressionConfig::default(),
            rate_limits: Vec::new(),
            static_files: Vec::new(),
            preview: PreviewConfig::default(),
            guard: None,
            mirror: None,
        }
    }
}

/// `[services.X.mirror]`: copy live traffic to a pool (usually the staged colour) to compare
/// the colours before a flip; the copies' answers are thrown away.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MirrorConfig {
    /// The pool the copies go to.
    pub to: String,
    /// The share of requests copied, 0 to 100.
    pub percent: u32,
    /// Only requests with these methods are copied (upper case).
    pub methods: Vec<String>,
    /// Copies in flight at most; beyond it a copy is skipped (and counted), never queued.
    pub max_in_flight: u32,
}

impl MirrorConfig {
    /// Every GET and HEAD to `to`, at most 64 copies in flight.
    pub fn new(to: impl Into<String>) -> Self {
        MirrorConfig {
            to: to.into(),
            percent: 100,
            methods: vec!["GET".into(), "HEAD".into()],
            max_in_flight: 64,
        }
    }
}

/// `[services.X.guard]`: after a switch (or during a ramp), the new colour is watched for
/// `window`; breaking a rule rolls the switch back by itself.
#[derive(Debug, Clone, PartialEq)]
pub struct GuardConfig {
    /// How long the new colour is watched after a switch (after a ramp's end, for a ramp).
    pub window: Duration,
    /// The largest share of its answers that may be 5xx or upstream failures (0 to 1).
    pub max_error_rate: f64,
    /// No verdict on fewer answers than this.
    pub min_requests: u64,
    /// Its p99 may be at most this multiple of the old colour's p99 before the switch;
    /// 0 turns the rule off.
    pub max_p99_factor: f64,
}

impl Default for GuardConfig {
    /// Two minutes, 5% errors, 50 answers, p99 at most 3× the old colour's.
    fn default() -> Self {
        GuardConfig {
            window: Duration::from_secs(120),
            max_error_rate: 0.05,
            min_requests: 50,
            max_p99_factor: 3.0,
        }
    }
}

/// `[services.X.preview]`: requests that name a pool go to it, whatever the active colour.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PreviewConfig {
    /// A request header (lower case) naming the pool, removed before the request goes
    /// upstream.
    pub header: Option<String>,
    /// A cookie naming the pool.
    pub cookie: Option<String>,
}

impl PoolConfig {
    /// A round-robin pool of these servers.
    pub fn new(servers: Vec<ServerConfig>) -> Self {
        PoolConfig {
            servers,
            balance: Balance::RoundRobin,
        }
    }
}

impl ServerConfig {
    /// A server with weight 1.
    pub fn new(addr: SocketAddr) -> Self {
        ServerConfig {
            addr,
            weight: 1,
            host: None,
        }
    }
}

impl Balance {
    /// The spelling used in the config file: `round_robin` or `least_conn`.
    pub fn as_str(self) -> &'static str {
        match self {
            Balance::RoundRobin => "round_robin",
            Balance::LeastConn => "least_conn",
        }
    }
}

impl AllDown {
    /// The spelling used in the config file: `try_all` or `fail`.
    pub fn as_str(self) -> &'static str {
        match self {
            AllDown::TryAll => "try_all",
            AllDown::Fail => "fail",
        }
    }
}

impl std::fmt::Display for HostPattern {
    /// The file form: `example.com` or `*.example.com`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HostPattern::Exact(host) => f.write_str(host),
            HostPattern::Wildcard(suffix) => write!(f, "*{suffix}"),
        }
    }
}
