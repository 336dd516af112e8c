//! The idle-connections memory check: open N keep-alive connections to a proxy (over TLS and
//! with HTTP/2 when the run's protocol is), send one request on each (so each has been through
//! a whole exchange), hold them idle for [`HOLD`] and read the proxy's resident memory. The
//! hold lets a proxy do what it does with idle connections (nginx frees their buffers at once;
//! Switchyard parks idle HTTP/1 connections after a second). Then all are closed, and after
//! another [`HOLD`] the RSS is read again: what the proxy kept of the memory they used.

use bytes::Bytes;
use http::{Request, Version, header};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;

use super::IdleResult;
use crate::load::{Dial, H2Sender, ReqBody};
use crate::procs::memory_kb;

/// Connections opened at once.
const BATCH: usize = 100;

/// How long the connections are held idle before the proxy's memory is read.
pub const HOLD: std::time::Duration = std::time::Duration::from_secs(3);

/// An open, idle connection (its sender, HTTP/1.1 or HTTP/2): dropping it closes it.
type Held = Box<dyn std::any::Any + Send>;

/// Opens `n` idle keep-alive connections as `dial` says (HTTP/2 when `h2`) and reads the RSS
/// of `pid`'s tree.
pub async fn measure(dial: &Dial, h2: bool, pid: u32, n: usize) -> anyhow::Result<IdleResult> {
    let rss_before_kb = memory_kb(pid, "VmRSS");
    let mut held = Vec::with_capacity(n);
    while held.len() < n {
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..BATCH.min(n - held.len()) {
            set.spawn(open_one(dial.clone(), h2));
        }
        while let Some(r) = set.join_next().await {
            held.push(r??);
        }
    }
    tokio::time::sleep(HOLD).await;
    let rss_idle_kb = memory_kb(pid, "VmRSS");
    drop(held);
    tokio::time::sleep(HOLD).await;
    let rss_closed_kb = Some(memory_kb(pid, "VmRSS"));
    Ok(IdleResult {
        connections: n,
        rss_before_kb,
        rss_idle_kb,
        rss_closed_kb,
    })
}

async fn open_one(dial: Dial, h2: bool) -> anyhow::Result<Held> {
    let authority = dial.addr.to_string();
    if h2 {
        let mut sender = dial.h2().await?;
        let req = Request::builder()
            .uri(format!("https://{authority}/"))
            .version(Version::HTTP_2)
            .body(Full::new(Bytes::new()))?;
        let resp = sender.send_request(req).await?;
        resp.into_body().collect().await?;
        let held: H2Sender = sender;
        Ok(Box::new(held))
    } else {
        let mut sender = dial.h1().await?;
        let req = Request::builder()
            .uri("/")
            .header(header::HOST, authority)
            .body(Full::new(Bytes::new()))?;
        let resp = sender.send_request(req).await?;
        resp.into_body().collect().await?;
        let held: http1::SendRequest<ReqBody> = sender;
        Ok(Box::new(held))
    }
}
