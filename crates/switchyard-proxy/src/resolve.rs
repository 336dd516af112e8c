//! Resolving upstream host names: the seam ([`Resolve`]), the system resolver, and the task
//! that resolves the config's names again every `upstream.resolve_interval`.
//!
//! The system resolver is the C library's (`getaddrinfo`, through `tokio::net::lookup_host`,
//! which runs it on the blocking pool, never on a runtime worker): it honours `/etc/hosts` and
//! `nsswitch.conf` exactly as every other program on the host does, which is what Docker
//! Compose and Kubernetes name resolution relies on.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::control::Controller;

/// A boxed future of a resolution.
pub type Resolving<'a> = Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send + 'a>>;

/// Resolves a host name and port to socket addresses.
pub trait Resolve: Send + Sync {
    /// Every address `host:port` resolves to now.
    fn resolve<'a>(&'a self, host: &'a str, port: u16) -> Resolving<'a>;
}

/// The system resolver (`/etc/hosts`, then DNS as `nsswitch.conf` says).
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemResolver;

impl Resolve for SystemResolver {
    fn resolve<'a>(&'a self, host: &'a str, port: u16) -> Resolving<'a> {
        Box::pin(async move { Ok(tokio::net::lookup_host((host, port)).await?.collect()) })
    }
}

/// How often to look when no service uses a host name (a reload may add one).
const IDLE_LOOK: Duration = Duration::from_secs(5);

/// Resolves the config's host names at once, then every `resolve_interval`, until `stop`.
pub(crate) async fn run(
    ctl: Arc<Controller>,
    resolver: Arc<dyn Resolve>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let (names, interval) = ctl.host_names().await;
        if !names.is_empty() {
            ctl.resolve_names(resolver.as_ref()).await;
        }
        let wait = interval.unwrap_or(IDLE_LOOK);
        tokio::select! {
            _ = crate::shared::stopped(&mut stop) => return,
            () = tokio::time::sleep(wait) => {}
        }
    }
}
