//! The idle-connections memory check: open N keep-alive connections to a proxy, send one
//! request on each (so each has been through a whole exchange), hold them idle for [`HOLD`]
//! and read the proxy's resident memory. The hold lets a proxy do what it does with idle
//! connections (nginx frees their buffers at once; Switchyard parks them after a second).

use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, header};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;

use super::IdleResult;
use crate::load::connect_h1;
use crate::procs::memory_kb;

/// Connections opened at once.
const BATCH: usize = 100;

/// How long the connections are held idle before the proxy's memory is read.
pub const HOLD: std::time::Duration = std::time::Duration::from_secs(3);

/// Opens `n` idle keep-alive connections to `addr` and reads the RSS of `pid`'s tree.
pub async fn measure(addr: SocketAddr, pid: u32, n: usize) -> anyhow::Result<IdleResult> {
    let rss_before_kb = memory_kb(pid, "VmRSS");
    let mut held = Vec::with_capacity(n);
    while held.len() < n {
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..BATCH.min(n - held.len()) {
            set.spawn(open_one(addr));
        }
        while let Some(r) = set.join_next().await {
            held.push(r??);
        }
    }
    tokio::time::sleep(HOLD).await;
    let rss_idle_kb = memory_kb(pid, "VmRSS");
    drop(held);
    Ok(IdleResult {
        connections: n,
        rss_before_kb,
        rss_idle_kb,
    })
}

async fn open_one(addr: SocketAddr) -> anyhow::Result<SendRequest<Full<Bytes>>> {
    let mut sender = connect_h1(addr).await?;
    let req = Request::builder()
        .uri("/")
        .header(header::HOST, addr.to_string())
        .body(Full::new(Bytes::new()))?;
    let resp = sender.send_request(req).await?;
    resp.into_body().collect().await?;
    Ok(sender)
}
