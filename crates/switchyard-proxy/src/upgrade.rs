//! WebSocket pass-through: the `Upgrade: websocket` handshake is forwarded on a dedicated
//! upstream connection, and after `101 Switching Protocols` both upgraded streams are spliced.
//!
//! The tunnel counts as one request in flight on its server and pool for as long as it is
//! open, so a pool with open websockets stays `draining` after a flip. By default a websocket
//! stays on its colour until either side closes it; with `upgraded_drain_timeout` set, it is
//! closed that long after its pool stops being live. Other upgrades (notably `h2c`) are never
//! forwarded: their `Upgrade` header is stripped like any hop-by-hop header.

use std::sync::Arc;
use std::time::Duration;

use http::header::{self, HeaderMap, HeaderValue};
use switchyard_core::InFlight;
use tokio::io::AsyncWriteExt;

use crate::server::h1::OnUpgrade;
use crate::shared::Shared;
use crate::upstream::Conn;

/// How often an open tunnel checks whether its pool is still live (only with a drain timeout).
const LIVENESS_CHECK: Duration = Duration::from_secs(1);

/// True when the request asks for a WebSocket upgrade (`Connection: upgrade` and
/// `Upgrade: websocket`, case-insensitively).
pub(crate) fn websocket_requested(headers: &HeaderMap) -> bool {
    let connection_upgrade = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    connection_upgrade
        && headers
            .get(header::UPGRADE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("websocket"))
}

/// Puts back the two hop-by-hop headers a WebSocket handshake needs upstream.
pub(crate) fn restore_upgrade_headers(headers: &mut HeaderMap) {
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
}

/// Where a tunnel lives, for the drain timeout.
pub(crate) struct TunnelSite {
    /// The service.
    pub(crate) service: String,
    /// The pool (colour) the tunnel was opened on.
    pub(crate) pool: String,
    /// `upgraded_drain_timeout` of the service.
    pub(crate) drain_timeout: Option<Duration>,
}

/// Splices the client's and the upstream's upgraded streams until either side closes (or the
/// drain timeout ends it). Runs on its own task.
///
/// `upstream` is the connection the 101 came on; bytes the upstream sent after the 101 head
/// (already in its buffer) go to the client first.
pub(crate) fn spawn_tunnel(
    shared: Arc<Shared>,
    client: OnUpgrade,
    upstream: Conn,
    in_flight: InFlight,
    site: TunnelSite,
) {
    tokio::spawn(async move {
        let _in_flight = in_flight;
        let client = match client.await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(error = %e, "upgrade did not complete");
                return;
            }
        };
        let mut client = client;
        let Conn {
            stream: mut upstream,
            buf: early,
            ..
        } = upstream;
        if !early.is_empty() {
            if let Err(e) = client.write_all(&early).await {
                tracing::debug!(error = %e, "websocket closed before it started");
                return;
            }
        }
        let splice = tokio::io::copy_bidirectional(&mut client, &mut upstream);
        tokio::select! {
            r = splice => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, service = %site.service, "websocket closed with an error");
                }
            }
            () = drained(&shared, &site) => {
                tracing::info!(service = %site.service, pool = %site.pool, "closing a websocket: its pool stopped being live (upgraded_drain_timeout)");
            }
        }
    });
}

/// Resolves `drain_timeout` after the tunnel's pool stops being live; never without a timeout.
async fn drained(shared: &Shared, site: &TunnelSite) {
    let Some(timeout) = site.drain_timeout else {
        return std::future::pending().await;
    };
    loop {
        tokio::time::sleep(LIVENESS_CHECK).await;
        let snapshot = shared.snapshot.load();
        let live = snapshot
            .service(&site.service)
            .is_some_and(|s| s.pool_index(&site.pool).is_some_and(|i| s.is_live(i)));
        if !live {
            break;
        }
    }
    tokio::time::sleep(timeout).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(*k, HeaderValue::from_static(v));
        }
        m
    }

    #[test]
    fn only_websocket_upgrades_are_recognised() {
        assert!(websocket_requested(&map(&[
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "WebSocket")
        ])));
        assert!(!websocket_requested(&map(&[
            ("connection", "Upgrade, HTTP2-Settings"),
            ("upgrade", "h2c")
        ])));
        assert!(!websocket_requested(&map(&[("upgrade", "websocket")])));
        assert!(!websocket_requested(&map(&[("connection", "upgrade")])));
    }
}
