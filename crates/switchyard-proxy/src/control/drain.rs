//! After a switch: waiting for the old pool to drain, then closing its idle upstream
//! connections (unless a live pool still uses the same servers).

use std::time::Duration;

use tokio::time::Instant;

use super::Controller;
use crate::shared::Shared;

impl Controller {
    /// After a switch, waits for the old pool to drain, then closes its idle upstream connections.
    pub(super) fn watch_drain(&self, service: &str, pool: &str) {
        let shared = self.shared.clone();
        let (service, pool) = (service.to_string(), pool.to_string());
        tokio::spawn(async move {
            let started = Instant::now();
            loop {
                let snap = shared.snapshot.load_full();
                let Some(svc) = snap.service(&service) else {
                    return;
                };
                let Some(i) = svc.pool_index(&pool) else {
                    return;
                };
                if svc.is_live(i) {
                    return;
                }
                if svc.pools[i].state.in_flight() == 0 {
                    tracing::info!(service = %service, pool = %pool, drained_after_ms = started.elapsed().as_millis() as u64, "pool drained");
                    // Keep its idle upstream connections a moment: an operator flipping back
                    // (or a rollback) then finds them warm instead of reconnecting every one.
                    tokio::time::sleep(DRAIN_LINGER).await;
                    let closed = close_idle_if_still_drained(&shared, &service, &pool);
                    if closed > 0 {
                        tracing::info!(service = %service, pool = %pool, idle_connections_closed = closed, "closed the drained pool's idle upstream connections");
                    }
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
    }
}

/// How long a drained pool keeps its idle upstream connections before they are closed.
const DRAIN_LINGER: Duration = Duration::from_secs(5);

/// Closes the idle upstream connections of `pool` if it is still not live and has nothing in
/// flight (servers a live pool also uses keep theirs). Returns how many were closed.
fn close_idle_if_still_drained(shared: &Shared, service: &str, pool: &str) -> usize {
    let snap = shared.snapshot.load_full();
    let Some(svc) = snap.service(service) else {
        return 0;
    };
    let Some(i) = svc.pool_index(pool) else {
        return 0;
    };
    if svc.is_live(i) || svc.pools[i].state.in_flight() != 0 {
        return 0;
    }
    let live: Vec<_> = snap
        .services
        .iter()
        .flat_map(|s| {
            (0..s.pools.len())
                .filter(|j| s.is_live(*j))
                .map(move |j| &s.pools[j])
        })
        .flat_map(|p| p.servers.iter().map(|s| s.state.addr))
        .collect();
    svc.pools[i]
        .servers
        .iter()
        .filter(|s| !live.contains(&s.state.addr))
        .filter_map(|s| crate::upstream::conns(&s.state))
        .map(crate::upstream::ServerConns::close_idle)
        .sum()
}
