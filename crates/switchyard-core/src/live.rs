//! Live per-server and per-pool state that outlives routing snapshots.
//!
//! Snapshots are immutable and replaced on every switch or reload; the facts that change with
//! traffic (requests in flight, health, ejections) live here instead, in objects keyed by
//! server address (and by service and pool name for pools). A new snapshot is built from the
//! same objects, so a switch or a reload never resets health or in-flight counts.

use std::any::Any;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// What active health checks last concluded about a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// Not checked yet: routed to, but a switch to it is not health-gated through.
    Unknown,
    /// Passing its health checks.
    Up,
    /// Failing its health checks.
    Down,
}

/// Live state of one upstream server, shared by every snapshot and pool that names it.
#[derive(Debug)]
pub struct ServerState {
    /// The server's address: the key of this object.
    pub addr: SocketAddr,
    /// Requests (and upgraded connections) currently being served by this server.
    in_flight: AtomicU32,
    /// `Health` as a byte, written only by the health checker.
    health: AtomicU8,
    /// Consecutive failed attempts of real traffic, reset by a success.
    consecutive_failures: AtomicU32,
    /// Milliseconds since the registry's epoch until which the server is ejected (0: not ejected).
    ejected_until_ms: AtomicU64,
    /// How many times the server was ejected since it last passed a health check; grows the period.
    ejections: AtomicU32,
    /// Total ejections ever, for metrics.
    ejections_total: AtomicU64,
    /// Failed attempts of real traffic ever (the ones that count against a server), for
    /// metrics.
    failures_total: AtomicU64,
    /// The registry's time origin, so ejection deadlines fit in an atomic.
    epoch: Instant,
    /// What the proxy keeps per server beside this state (its idle upstream connections),
    /// attached once when a snapshot naming the server is built: a request reaches it from
    /// the server it picked, with no look-up.
    attached: OnceLock<Arc<dyn Any + Send + Sync>>,
}

impl ServerState {
    /// Attaches the proxy's per-server object unless one is attached already; returns the
    /// one attached, if it is a `T`.
    pub fn attach_with<T: Any + Send + Sync>(&self, make: impl FnOnce() -> Arc<T>) -> Option<&T> {
        self.attached
            .get_or_init(|| make() as Arc<dyn Any + Send + Sync>)
            .downcast_ref::<T>()
    }

    /// The attached object, if one of type `T` is attached.
    pub fn attached<T: Any + Send + Sync>(&self) -> Option<&T> {
        self.attached.get().and_then(|a| a.downcast_ref::<T>())
    }

    fn new(addr: SocketAddr, epoch: Instant) -> Self {
        ServerState {
            addr,
            in_flight: AtomicU32::new(0),
            health: AtomicU8::new(0),
            consecutive_failures: AtomicU32::new(0),
            ejected_until_ms: AtomicU64::new(0),
            ejections: AtomicU32::new(0),
            ejections_total: AtomicU64::new(0),
            failures_total: AtomicU64::new(0),
            epoch,
            attached: OnceLock::new(),
        }
    }

    /// Requests in flight on this server.
    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// The last health verdict.
    pub fn health(&self) -> Health {
        match self.health.load(Ordering::Relaxed) {
            1 => Health::Up,
            2 => Health::Down,
            _ => Health::Unknown,
        }
    }

    /// Records a health verdict (health checker only).
    pub fn set_health(&self, health: Health) {
        let byte = match health {
            Health::Unknown => 0,
            Health::Up => 1,
            Health::Down => 2,
        };
        self.health.store(byte, Ordering::Relaxed);
    }

    /// A health check passed: an ejection ends early and the growth of ejection periods resets.
    pub fn end_ejection(&self) {
        if self.ejected_until_ms.load(Ordering::Relaxed) != 0 {
            self.ejected_until_ms.store(0, Ordering::Relaxed);
            self.ejections.store(0, Ordering::Relaxed);
            self.consecutive_failures.store(0, Ordering::Relaxed);
        }
    }

    /// True when the server is ejected at `now`.
    pub fn is_ejected(&self, now: Instant) -> bool {
        let until = self.ejected_until_ms.load(Ordering::Relaxed);
        until != 0 && self.millis(now) < until
    }

    /// True when the server may be picked: not known to be down and not ejected.
    pub fn is_available(&self, now: Instant) -> bool {
        self.health() != Health::Down && !self.is_ejected(now)
    }

    /// Total number of ejections of this server.
    pub fn ejections_total(&self) -> u64 {
        self.ejections_total.load(Ordering::Relaxed)
    }

    /// Failed attempts of real traffic counted against this server, ever.
    pub fn failures_total(&self) -> u64 {
        self.failures_total.load(Ordering::Relaxed)
    }

    /// Records a successful attempt: the failure streak ends.
    pub fn record_success(&self) {
        if self.consecutive_failures.load(Ordering::Relaxed) != 0 {
            self.consecutive_failures.store(0, Ordering::Relaxed);
        }
    }

    /// Records a failed attempt. Returns the ejection period when this failure ejected the server.
    ///
    /// `threshold` consecutive failures eject it for `base`, doubled for each ejection since the
    /// server last passed a health check, at most `max`. A threshold of 0 disables ejection.
    pub fn record_failure(
        &self,
        now: Instant,
        threshold: u32,
        base: Duration,
        max: Duration,
    ) -> Option<Duration> {
        self.failures_total.fetch_add(1, Ordering::Relaxed);
        let failures = self.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
        if threshold == 0 || failures < threshold || self.is_ejected(now) {
            return None;
        }
        self.consecutive_failures.store(0, Ordering::Relaxed);
        let n = self.ejections.fetch_add(1, Ordering::Relaxed);
        let period = ejection_period(n, base, max);
        let until = self.millis(now + period).max(1);
        self.ejected_until_ms.store(until, Ordering::Relaxed);
        self.ejections_total.fetch_add(1, Ordering::Relaxed);
        Some(period)
    }

    fn millis(&self, t: Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(self.epoch).as_millis()).unwrap_or(u64::MAX)
    }
}

/// The period of the `n`-th (0-based) consecutive ejection: `base * 2^n`, capped at `max`.
pub fn ejection_period(n: u32, base: Duration, max: Duration) -> Duration {
    let factor = 1u32.checked_shl(n.min(31)).unwrap_or(u32::MAX);
    base.checked_mul(factor).unwrap_or(max).min(max)
}

/// Live state of one pool (keyed by service and pool name).
#[derive(Debug, Default)]
pub struct PoolState {
    /// Requests in flight on this pool's servers on behalf of this pool.
    in_flight: AtomicU32,
    /// Round-robin cursor.
    pub(crate) cursor: AtomicU64,
}

impl PoolState {
    /// Requests in flight on this pool.
    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }
}

/// A server as a member of one pool: what a request in flight on it is counted on. Built with
/// each snapshot's pool (`PoolServer::member`), so that counting a request takes one
/// reference, not one for the server and one for the pool.
#[derive(Debug)]
pub struct Member {
    server: Arc<ServerState>,
    pool: Arc<PoolState>,
}

impl Member {
    /// `server` in `pool`.
    pub fn new(server: Arc<ServerState>, pool: Arc<PoolState>) -> Self {
        Member { server, pool }
    }
}

/// Counts a request in flight on a server and its pool until dropped.
#[derive(Debug)]
pub struct InFlight {
    member: Arc<Member>,
}

impl InFlight {
    /// Starts counting a request on `server` in `pool` (for tests without a snapshot; the
    /// request path counts through its pool server's [`Member`], [`InFlight::on`]).
    #[cfg(test)]
    pub(crate) fn start(server: Arc<ServerState>, pool: Arc<PoolState>) -> Self {
        Self::on(&Arc::new(Member::new(server, pool)))
    }

    /// Starts counting a request on `member`'s server and pool.
    pub fn on(member: &Arc<Member>) -> Self {
        member.server.in_flight.fetch_add(1, Ordering::Relaxed);
        member.pool.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight {
            member: member.clone(),
        }
    }

    /// The server this request is counted on.
    pub fn server(&self) -> &Arc<ServerState> {
        &self.member.server
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.member.server.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.member.pool.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The keyed store of live state. Only control loops (snapshot building) touch its maps.
#[derive(Debug)]
pub struct Registry {
    servers: Mutex<HashMap<SocketAddr, Arc<ServerState>>>,
    /// The addresses host names resolved to last (`NAME:PORT` → addresses), kept by the
    /// resolver; a name not in here stands for the address it had when the config was loaded.
    names: Mutex<HashMap<(String, u16), Vec<SocketAddr>>>,
    pools: Mutex<HashMap<(String, String), Arc<PoolState>>>,
    budgets: Mutex<HashMap<String, Arc<crate::retry::RetryBudget>>>,
    epoch: Instant,
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

impl Registry {
    /// An empty registry whose time origin is now.
    pub fn new() -> Self {
        Registry {
            servers: Mutex::new(HashMap::new()),
            names: Mutex::new(HashMap::new()),
            pools: Mutex::new(HashMap::new()),
            budgets: Mutex::new(HashMap::new()),
            epoch: Instant::now(),
        }
    }

    /// The live state of the server at `addr`, created on first use.
    pub fn server(&self, addr: SocketAddr) -> Arc<ServerState> {
        let mut map = self.servers.lock().unwrap_or_else(PoisonError::into_inner);
        map.entry(addr)
            .or_insert_with(|| Arc::new(ServerState::new(addr, self.epoch)))
            .clone()
    }

    /// The addresses `host:port` last resolved to, if the resolver has resolved it.
    pub fn resolved(&self, host: &str, port: u16) -> Option<Vec<SocketAddr>> {
        let map = self.names.lock().unwrap_or_else(PoisonError::into_inner);
        map.get(&(host.to_string(), port)).cloned()
    }

    /// Records what `host:port` resolves to now; true when that changed the addresses
    /// (their order ignored).
    pub fn set_resolved(&self, host: &str, port: u16, mut addrs: Vec<SocketAddr>) -> bool {
        addrs.sort();
        addrs.dedup();
        let mut map = self.names.lock().unwrap_or_else(PoisonError::into_inner);
        let key = (host.to_string(), port);
        if map.get(&key) == Some(&addrs) {
            return false;
        }
        map.insert(key, addrs);
        true
    }

    /// The live state of pool `pool` of service `service`, created on first use.
    pub fn pool(&self, service: &str, pool: &str) -> Arc<PoolState> {
        let mut map = self.pools.lock().unwrap_or_else(PoisonError::into_inner);
        map.entry((service.to_string(), pool.to_string()))
            .or_default()
            .clone()
    }

    /// The retry budget of service `service`, created on first use.
    pub fn budget(&self, service: &str) -> Arc<crate::retry::RetryBudget> {
        let mut map = self.budgets.lock().unwrap_or_else(PoisonError::into_inner);
        map.entry(service.to_string()).or_default().clone()
    }

    /// Every server address known, for health checking and metrics.
    pub fn servers(&self) -> Vec<Arc<ServerState>> {
        let map = self.servers.lock().unwrap_or_else(PoisonError::into_inner);
        map.values().cloned().collect()
    }

    /// Forgets servers and pools no longer named by `keep_servers` / `keep_pools`.
    ///
    /// Objects still referenced (by in-flight requests) live on until those finish.
    pub fn retain(&self, keep_servers: &[SocketAddr], keep_pools: &[(String, String)]) {
        let mut servers = self.servers.lock().unwrap_or_else(PoisonError::into_inner);
        servers.retain(|addr, _| keep_servers.contains(addr));
        drop(servers);
        let mut pools = self.pools.lock().unwrap_or_else(PoisonError::into_inner);
        pools.retain(|key, _| keep_pools.contains(key));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn registry_returns_the_same_object_for_an_address() {
        let reg = Registry::new();
        let a = reg.server(addr(1));
        let b = reg.server(addr(1));
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &reg.server(addr(2))));
        assert!(Arc::ptr_eq(
            &reg.pool("s", "green"),
            &reg.pool("s", "green")
        ));
    }

    #[test]
    fn in_flight_guard_counts_server_and_pool() {
        let reg = Registry::new();
        let s = reg.server(addr(1));
        let p = reg.pool("s", "green");
        let g1 = InFlight::start(s.clone(), p.clone());
        let g2 = InFlight::start(s.clone(), p.clone());
        assert_eq!((s.in_flight(), p.in_flight()), (2, 2));
        drop(g1);
        assert_eq!((s.in_flight(), p.in_flight()), (1, 1));
        drop(g2);
        assert_eq!((s.in_flight(), p.in_flight()), (0, 0));
    }

    #[test]
    fn ejection_period_doubles_and_caps() {
        let base = Duration::from_secs(10);
        let max = Duration::from_secs(300);
        let got: Vec<u64> = (0..8)
            .map(|n| ejection_period(n, base, max).as_secs())
            .collect();
        assert_eq!(got, vec![10, 20, 40, 80, 160, 300, 300, 300]);
        assert_eq!(ejection_period(200, base, max), max);
    }

    #[tokio::test(start_paused = true)]
    async fn consecutive_failures_eject_for_a_growing_period() {
        let reg = Registry::new();
        let s = reg.server(addr(1));
        let (base, max) = (Duration::from_secs(10), Duration::from_secs(300));
        let now = Instant::now();
        assert_eq!(s.record_failure(now, 3, base, max), None);
        s.record_success();
        assert_eq!(s.record_failure(now, 3, base, max), None);
        assert_eq!(s.record_failure(now, 3, base, max), None);
        assert_eq!(s.record_failure(now, 3, base, max), Some(base));
        assert!(s.is_ejected(Instant::now()));
        assert!(!s.is_available(Instant::now()));

        tokio::time::advance(Duration::from_millis(9_999)).await;
        assert!(s.is_ejected(Instant::now()));
        tokio::time::advance(Duration::from_millis(2)).await;
        assert!(!s.is_ejected(Instant::now()));

        let now = Instant::now();
        for _ in 0..2 {
            assert_eq!(s.record_failure(now, 3, base, max), None);
        }
        assert_eq!(s.record_failure(now, 3, base, max), Some(base * 2));
        tokio::time::advance(Duration::from_secs(19)).await;
        assert!(s.is_ejected(Instant::now()));
        assert_eq!(s.ejections_total(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_passing_health_check_ends_an_ejection_and_resets_its_growth() {
        let reg = Registry::new();
        let s = reg.server(addr(1));
        let (base, max) = (Duration::from_secs(10), Duration::from_secs(300));
        let now = Instant::now();
        assert_eq!(s.record_failure(now, 1, base, max), Some(base));
        assert!(s.is_ejected(now));
        s.set_health(Health::Up);
        assert!(
            s.is_ejected(now),
            "a verdict alone does not end an ejection"
        );
        s.end_ejection();
        assert!(!s.is_ejected(now));
        assert_eq!(s.record_failure(now, 1, base, max), Some(base));
    }

    #[test]
    fn zero_threshold_never_ejects() {
        let reg = Registry::new();
        let s = reg.server(addr(1));
        let now = Instant::now();
        for _ in 0..100 {
            assert_eq!(
                s.record_failure(now, 0, Duration::from_secs(1), Duration::from_secs(2)),
                None
            );
        }
        assert!(s.is_available(now));
    }

    #[test]
    fn down_servers_are_unavailable() {
        let reg = Registry::new();
        let s = reg.server(addr(1));
        assert_eq!(s.health(), Health::Unknown);
        assert!(s.is_available(Instant::now()));
        s.set_health(Health::Down);
        assert!(!s.is_available(Instant::now()));
    }
}
