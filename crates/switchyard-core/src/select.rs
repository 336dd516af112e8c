//! Picking a server in a pool: weighted round robin or least in-flight requests.
//!
//! A pick skips servers the request has already tried, servers whose health checks fail and
//! ejected servers. When that leaves nobody, the service's `all_down` choice decides: try the
//! remaining (unhealthy) servers anyway, or give up so the request gets 503 at once.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use switchyard_config::{AllDown, Balance};
use tokio::time::Instant;

use crate::snapshot::{Pool, PoolServer};

/// Why a pool yielded no server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoServer {
    /// Every server has been tried by this request already.
    AllTried,
    /// Every untried server is down or ejected and the service says to fail fast.
    AllDown,
}

/// The outcome of a pick.
#[derive(Debug, Clone, Copy)]
pub struct Picked<'a> {
    /// The chosen server.
    pub server: &'a PoolServer,
    /// True when the server was chosen although it is down or ejected (`all_down = "try_all"`).
    pub degraded: bool,
}

impl Pool {
    /// Picks a server for a request that has already tried `tried`.
    pub fn pick(
        &self,
        tried: &[SocketAddr],
        now: Instant,
        all_down: AllDown,
    ) -> Result<Picked<'_>, NoServer> {
        let untried = |s: &PoolServer| !tried.contains(&s.state.addr);
        if let Some(server) = self.pick_where(|s| untried(s) && s.state.is_available(now)) {
            return Ok(Picked {
                server,
                degraded: false,
            });
        }
        if !self.servers.iter().any(untried) {
            return Err(NoServer::AllTried);
        }
        match all_down {
            AllDown::Fail => Err(NoServer::AllDown),
            AllDown::TryAll => self
                .pick_where(untried)
                .map(|server| Picked {
                    server,
                    degraded: true,
                })
                .ok_or(NoServer::AllTried),
        }
    }

    /// True when at least one server is available (not down, not ejected).
    pub fn has_available(&self, now: Instant) -> bool {
        self.servers.iter().any(|s| s.state.is_available(now))
    }

    fn pick_where(&self, eligible: impl Fn(&PoolServer) -> bool) -> Option<&PoolServer> {
        let n = self.servers.len();
        if n == 0 {
            return None;
        }
        let tick = self.state.cursor.fetch_add(1, Ordering::Relaxed);
        match self.balance {
            Balance::RoundRobin => {
                let start = self.weighted_start(tick);
                (0..n)
                    .map(|k| &self.servers[(start + k) % n])
                    .find(|s| eligible(s))
            }
            Balance::LeastConn => {
                // Rotate the scan's start so ties spread over the servers.
                let start = (tick % n as u64) as usize;
                let mut best: Option<&PoolServer> = None;
                for k in 0..n {
                    let s = &self.servers[(start + k) % n];
                    if !eligible(s) {
                        continue;
                    }
                    best = match best {
                        // Compare (in_flight + 1) / weight without division.
                        Some(b)
                            if u64::from(b.state.in_flight() + 1) * u64::from(s.weight)
                                <= u64::from(s.state.in_flight() + 1) * u64::from(b.weight) =>
                        {
                            Some(b)
                        }
                        _ => Some(s),
                    };
                }
                best
            }
        }
    }

    /// The server owning position `tick mod total_weight` of the weight line.
    fn weighted_start(&self, tick: u64) -> usize {
        if self.total_weight == self.servers.len() as u64 {
            return (tick % self.servers.len() as u64) as usize;
        }
        let mut point = tick % self.total_weight.max(1);
        for (i, s) in self.servers.iter().enumerate() {
            let w = u64::from(s.weight);
            if point < w {
                return i;
            }
            point -= w;
        }
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::{Health, InFlight, Registry};
    use crate::snapshot::{Snapshot, decisions_from_config};
    use std::collections::HashMap;
    use switchyard_config::{PoolConfig, ServerConfig};

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn snapshot(reg: &Registry, servers: &[(u16, u32)], balance: Balance) -> Snapshot {
        let mut config = switchyard_config::default_config();
        let svc = config.services.get_mut("app").expect("default has app");
        svc.pools.insert(
            "green".into(),
            PoolConfig {
                servers: servers
                    .iter()
                    .map(|(p, w)| ServerConfig {
                        addr: addr(*p),
                        weight: *w,
                        host: None,
                    })
                    .collect(),
                balance,
            },
        );
        Snapshot::build(&config, &decisions_from_config(&config), reg, 1)
    }

    fn counts(pool: &Pool, n: usize) -> HashMap<u16, usize> {
        let mut m = HashMap::new();
        for _ in 0..n {
            let p = pool
                .pick(&[], Instant::now(), AllDown::TryAll)
                .expect("a server");
            *m.entry(p.server.state.addr.port()).or_default() += 1;
        }
        m
    }

    #[test]
    fn round_robin_respects_weights() {
        let reg = Registry::new();
        let snap = snapshot(&reg, &[(1, 1), (2, 3)], Balance::RoundRobin);
        let pool = snap.services[0].active_pool();
        let c = counts(pool, 400);
        assert_eq!(c[&1], 100);
        assert_eq!(c[&2], 300);
    }

    #[test]
    fn round_robin_skips_tried_down_and_ejected() {
        let reg = Registry::new();
        let snap = snapshot(&reg, &[(1, 1), (2, 1), (3, 1)], Balance::RoundRobin);
        let pool = snap.services[0].active_pool();
        reg.server(addr(2)).set_health(Health::Down);
        let now = Instant::now();
        reg.server(addr(3)).record_failure(
            now,
            1,
            std::time::Duration::from_secs(10),
            std::time::Duration::from_secs(10),
        );
        for _ in 0..10 {
            let p = pool.pick(&[], now, AllDown::TryAll).expect("server 1");
            assert_eq!(p.server.state.addr, addr(1));
            assert!(!p.degraded);
        }
        // Server 1 tried: only unhealthy ones remain.
        let p = pool
            .pick(&[addr(1)], now, AllDown::TryAll)
            .expect("degraded");
        assert!(p.degraded);
        assert_ne!(p.server.state.addr, addr(1));
        assert_eq!(
            pool.pick(&[addr(1)], now, AllDown::Fail).err(),
            Some(NoServer::AllDown)
        );
        assert_eq!(
            pool.pick(&[addr(1), addr(2), addr(3)], now, AllDown::TryAll)
                .err(),
            Some(NoServer::AllTried)
        );
    }

    #[test]
    fn least_conn_prefers_the_idlest_server() {
        let reg = Registry::new();
        let snap = snapshot(&reg, &[(1, 1), (2, 1), (3, 1)], Balance::LeastConn);
        let pool = snap.services[0].active_pool();
        let busy = |port| InFlight::start(reg.server(addr(port)), pool.state.clone());
        let _g = [busy(1), busy(1), busy(3)];
        for _ in 0..5 {
            let p = pool
                .pick(&[], Instant::now(), AllDown::TryAll)
                .expect("a server");
            assert_eq!(p.server.state.addr, addr(2));
        }
        let _g2 = busy(2);
        let c = counts(pool, 6);
        // Servers 2 and 3 each have one in flight; both are picked, server 1 never.
        assert!(!c.contains_key(&1));
        assert_eq!(c.values().sum::<usize>(), 6);
        assert!(c.contains_key(&2) && c.contains_key(&3));
    }

    #[test]
    fn least_conn_accounts_for_weight() {
        let reg = Registry::new();
        let snap = snapshot(&reg, &[(1, 4), (2, 1)], Balance::LeastConn);
        let pool = snap.services[0].active_pool();
        let _g: Vec<_> = (0..2)
            .map(|_| InFlight::start(reg.server(addr(1)), pool.state.clone()))
            .collect();
        // (2+1)/4 < (0+1)/1: the heavy server is still preferred.
        let p = pool
            .pick(&[], Instant::now(), AllDown::TryAll)
            .expect("a server");
        assert_eq!(p.server.state.addr, addr(1));
    }
}
