//! Shared set-up for the integration tests: configs built in code and a proxy on port 0.

#![allow(dead_code)] // Each test binary uses a different part of this module.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use switchyard_config::{Config, HealthConfig, PoolConfig, ServerConfig, ServiceConfig};
use switchyard_proxy::{Listeners, ProxyHandle};
use switchyard_tests::poll_until;

/// A config with one service `app` whose pools are `green` and `blue`, green active, with fast
/// health checks so tests see health changes quickly.
pub fn two_colours(green: &[SocketAddr], blue: &[SocketAddr]) -> Config {
    let pool = |addrs: &[SocketAddr]| {
        PoolConfig::new(addrs.iter().copied().map(ServerConfig::new).collect())
    };
    let pools = BTreeMap::from([
        ("green".to_string(), pool(green)),
        ("blue".to_string(), pool(blue)),
    ]);
    let mut svc = ServiceConfig::new("app", "green", pools);
    svc.health = HealthConfig {
        interval: Duration::from_millis(50),
        timeout: Duration::from_millis(500),
        rise: 1,
        fall: 2,
        ..HealthConfig::default()
    };
    let mut config = Config::default();
    config.services.insert("app".into(), svc);
    config
}

/// Starts the proxy on fresh loopback listeners.
pub async fn start(config: Config) -> ProxyHandle {
    let listeners = Listeners::loopback()
        .await
        .expect("bind loopback listeners");
    switchyard_proxy::start(config, listeners).expect("the proxy starts")
}

/// The proxy's first HTTP address.
pub fn http(proxy: &ProxyHandle) -> SocketAddr {
    proxy.http_addrs()[0]
}

/// Waits until every server of `pool` of service `app` passes its health checks.
pub async fn wait_healthy(proxy: &ProxyHandle, pool: &str) {
    poll_until(Duration::from_secs(10), || async {
        proxy.status().services["app"].pools[pool]
            .servers
            .iter()
            .all(|s| s.healthy)
    })
    .await;
}
