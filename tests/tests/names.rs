//! Servers written as host names follow their names without a reload: a recreated container
//! (a new address for the same name) joins the pool, the old address leaves it, addresses that
//! stay keep their health, and a name that stops resolving keeps its last addresses and says
//! so in `/status`. The resolver is injected, so the test decides what each name resolves to.

mod common;

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use switchyard_config::ServerConfig;
use switchyard_proxy::resolve::{Resolve, Resolving};
use switchyard_proxy::{Builder, Listeners, ProxyHandle};
use switchyard_tests::{KeepAliveClient, TestApp, poll_until};

/// A resolver whose answers the test sets.
#[derive(Default)]
struct Names(Mutex<HashMap<String, io::Result<Vec<SocketAddr>>>>);

impl Names {
    fn set(&self, host: &str, answer: io::Result<Vec<SocketAddr>>) {
        self.0
            .lock()
            .expect("names")
            .insert(host.to_string(), answer);
    }
}

impl Resolve for Names {
    fn resolve<'a>(&'a self, host: &'a str, _port: u16) -> Resolving<'a> {
        let answer = match self.0.lock().expect("names").get(host) {
            Some(Ok(addrs)) => Ok(addrs.clone()),
            Some(Err(e)) => Err(io::Error::new(e.kind(), e.to_string())),
            None => Err(io::Error::new(io::ErrorKind::NotFound, "unknown name")),
        };
        Box::pin(async move { answer })
    }
}

fn green_addrs(proxy: &ProxyHandle) -> Vec<(String, bool)> {
    proxy.status().services["app"].pools["green"]
        .servers
        .iter()
        .map(|s| (s.addr.clone(), s.healthy))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pools_follow_their_names_without_a_reload() {
    let green1 = TestApp::start("green").await;
    let port = green1.addr().port();
    // The "recreated container": the same port on another loopback address.
    let green2 = TestApp::start_on("green", SocketAddr::from(([127, 0, 0, 2], port))).await;
    let blue = TestApp::start("blue").await;
    let names = Arc::new(Names::default());
    names.set("app-green", Ok(vec![green1.addr()]));

    let mut config = common::two_colours(&[green1.addr()], &[blue.addr()]);
    if let Some(svc) = config.services.get_mut("app") {
        svc.upstream.resolve_interval = Duration::from_millis(100);
        if let Some(pool) = svc.pools.get_mut("green") {
            pool.servers = vec![ServerConfig {
                host: Some("app-green".into()),
                ..ServerConfig::new(green1.addr())
            }];
        }
    }
    let listeners = Listeners::loopback().await.expect("listeners");
    let proxy = Builder::new(config, listeners)
        .resolver(names.clone())
        .start()
        .expect("starts");
    common::wait_healthy(&proxy, "green").await;
    let mut client = KeepAliveClient::connect(common::http(&proxy)).await;
    for _ in 0..20 {
        assert_eq!(client.get("/", "x").await.expect("answer").status, 200);
    }
    assert!(green1.requests() >= 20);

    // The name now has both addresses: green1 keeps its health (it is the same server).
    names.set("app-green", Ok(vec![green1.addr(), green2.addr()]));
    poll_until(Duration::from_secs(5), || async {
        green_addrs(&proxy).len() == 2
    })
    .await;
    let both = green_addrs(&proxy);
    assert!(
        both.contains(&(green1.addr().to_string(), true)),
        "an address that stays keeps its health: {both:?}"
    );

    // Then only the new container: the old one leaves the pool, and traffic follows.
    names.set("app-green", Ok(vec![green2.addr()]));
    poll_until(Duration::from_secs(5), || async {
        green_addrs(&proxy) == vec![(green2.addr().to_string(), true)]
    })
    .await;
    green1.kill().await;
    let before = green2.requests();
    for _ in 0..20 {
        assert_eq!(client.get("/", "x").await.expect("answer").status, 200);
    }
    assert_eq!(green2.requests() - before, 20, "traffic follows the name");

    // A name that stops resolving keeps its last addresses and says why.
    names.set("app-green", Err(io::Error::other("no such host")));
    let label = format!("app-green:{port}");
    poll_until(Duration::from_secs(5), || async {
        proxy
            .status()
            .names
            .get(&label)
            .is_some_and(|n| n.error.is_some())
    })
    .await;
    let status = proxy.status();
    let name = &status.names[&label];
    assert_eq!(name.addresses, vec![green2.addr().to_string()]);
    assert!(
        name.error
            .as_deref()
            .is_some_and(|e| e.contains("no such host"))
    );
    assert_eq!(green_addrs(&proxy), vec![(green2.addr().to_string(), true)]);
    for _ in 0..20 {
        assert_eq!(client.get("/", "x").await.expect("answer").status, 200);
    }
    proxy.shutdown().await;
}

#[tokio::test]
async fn the_system_resolver_reads_etc_hosts() {
    // `localhost` is in /etc/hosts on every system this runs on.
    let addrs = switchyard_proxy::resolve::SystemResolver
        .resolve("localhost", 5000)
        .await
        .expect("localhost resolves");
    assert!(
        addrs
            .iter()
            .any(|a| a.ip().is_loopback() && a.port() == 5000),
        "{addrs:?}"
    );
}
