//! Active health checks: one task per server address, for every pool, live or idle.
//!
//! A staged colour's readiness is known before anyone flips to it. Checks run on fresh
//! connections (`Connection: close`) so they test what a new connection would meet. The verdict
//! is written to the server's live state, which survives snapshot swaps and reloads; a passing
//! check also ends a passive ejection early, so an app restarted on the same port is back as soon
//! as it answers.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use http::{Request, header};
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use switchyard_config::HealthConfig;
use switchyard_core::health::HealthTracker;
use switchyard_core::{ServerState, Snapshot};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::shared::Shared;

/// One running checker: its task and the channel that retunes it.
type Checker = (JoinHandle<()>, watch::Sender<HealthConfig>);

/// Runs and updates the health-check tasks.
#[derive(Debug, Default)]
pub(crate) struct HealthSupervisor {
    tasks: Mutex<HashMap<SocketAddr, Checker>>,
}

impl HealthSupervisor {
    /// Makes the running checkers match the servers of `snapshot` (host names expanded to
    /// the addresses they resolve to): starts new ones, retunes changed ones, stops the ones
    /// whose server is gone. A server named by several services is checked with the settings
    /// of the first service (in name order) that names it.
    pub(crate) fn sync(&self, shared: &Shared, snapshot: &Snapshot) {
        let mut wanted: HashMap<SocketAddr, HealthConfig> = HashMap::new();
        for svc in &snapshot.services {
            for pool in &svc.pools {
                for s in &pool.servers {
                    wanted
                        .entry(s.state.addr)
                        .or_insert_with(|| svc.config.health.clone());
                }
            }
        }
        let mut tasks = self.tasks.lock().unwrap_or_else(PoisonError::into_inner);
        tasks.retain(|addr, (task, _)| {
            let keep = wanted.contains_key(addr);
            if !keep {
                task.abort();
            }
            keep
        });
        for (addr, cfg) in wanted {
            match tasks.get(&addr) {
                Some((_, tx)) => {
                    tx.send_if_modified(|old| {
                        let changed = *old != cfg;
                        *old = cfg.clone();
                        changed
                    });
                }
                None => {
                    let (tx, rx) = watch::channel(cfg);
                    let server = shared.registry.server(addr);
                    tasks.insert(addr, (tokio::spawn(run(server, rx)), tx));
                }
            }
        }
    }

    /// Stops every checker.
    pub(crate) fn stop_all(&self) {
        let mut tasks = self.tasks.lock().unwrap_or_else(PoisonError::into_inner);
        for (_, (task, _)) in tasks.drain() {
            task.abort();
        }
    }
}

impl Drop for HealthSupervisor {
    fn drop(&mut self) {
        self.stop_all();
    }
}

async fn run(server: Arc<ServerState>, mut settings: watch::Receiver<HealthConfig>) {
    let first = settings.borrow().clone();
    let mut tracker = HealthTracker::new(first.rise, first.fall);
    loop {
        let cfg = settings.borrow_and_update().clone();
        tracker.set_thresholds(cfg.rise, cfg.fall);
        let result = check(server.addr, &cfg).await;
        let passed = result.is_ok();
        if let Some(state) = tracker.record(passed) {
            match &result {
                Ok(status) => {
                    tracing::info!(upstream = %server.addr, status, health = ?state, "health changed")
                }
                Err(why) => {
                    tracing::warn!(upstream = %server.addr, reason = %why, health = ?state, "health changed")
                }
            }
        }
        server.set_health(tracker.state());
        if passed {
            // An app restarted on the same address is back as soon as it answers.
            server.end_ejection();
        }
        tokio::select! {
            _ = tokio::time::sleep(cfg.interval) => {}
            changed = settings.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
    }
}

/// One check: `GET path` on a fresh connection; passes on a status within the expected range.
pub(crate) async fn check(addr: SocketAddr, cfg: &HealthConfig) -> Result<u16, String> {
    let attempt = async {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let _ = stream.set_nodelay(true);
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        let conn = tokio::spawn(conn);
        let req = Request::get(cfg.path.as_str())
            .header(header::HOST, addr.to_string())
            .header(header::USER_AGENT, "switchyard-health-check")
            .header(header::CONNECTION, "close")
            .body(Empty::<Bytes>::new())
            .map_err(|e| format!("request: {e}"))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| format!("request: {e}"));
        conn.abort();
        let status = resp?.status().as_u16();
        if (cfg.expect_min..=cfg.expect_max).contains(&status) {
            Ok(status)
        } else {
            Err(format!("status {status}"))
        }
    };
    match tokio::time::timeout(cfg.timeout, attempt).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer within {:?}", cfg.timeout)),
    }
}
