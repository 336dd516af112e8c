//! One attempt of the request path on one server, and the bookkeeping between attempts
//! (which servers were tried, what an attempt hands back when the request did not reach the
//! upstream).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use bytes::Bytes;
use http::request::Parts;
use http::{Request, Response};
use hyper::upgrade::OnUpgrade;
use switchyard_core::retry::FailureKind;
use switchyard_core::{InFlight, Service};

use super::Failed;
use crate::body::{Lease, ProxyBody, UpstreamBody, UpstreamResponse};
use crate::headers;
use crate::shared::Shared;
use crate::upgrade;

/// The servers a request has tried, kept inline: attempts are few (at most 10 by config).
pub(super) struct Tried {
    addrs: [SocketAddr; 10],
    len: usize,
}

impl Default for Tried {
    fn default() -> Self {
        Tried {
            addrs: [SocketAddr::from(([0, 0, 0, 0], 0)); 10],
            len: 0,
        }
    }
}

impl Tried {
    pub(super) fn push(&mut self, addr: SocketAddr) {
        if let Some(slot) = self.addrs.get_mut(self.len) {
            *slot = addr;
            self.len += 1;
        }
    }

    pub(super) fn as_slice(&self) -> &[SocketAddr] {
        &self.addrs[..self.len]
    }
}

/// True when a live pool of `svc` has a server this request has not tried yet.
pub(super) fn has_untried(svc: &Service, tried: &[SocketAddr]) -> bool {
    svc.pools
        .iter()
        .enumerate()
        .filter(|(i, _)| svc.is_live(*i))
        .flat_map(|(_, p)| p.servers.iter())
        .any(|s| !tried.contains(&s.state.addr))
}

/// What an attempt takes from the request and gives back when the request did not reach the
/// upstream: the head, the body (buffered or streamed) and the client's upgrade handle.
pub(super) struct Pending<'a> {
    pub(super) parts: &'a mut Option<Parts>,
    pub(super) replay: &'a Option<Option<Bytes>>,
    pub(super) streamed: &'a mut Option<(UpstreamBody, Arc<AtomicBool>)>,
    pub(super) upgrade: &'a mut Option<OnUpgrade>,
}

/// One attempt on one server. On failure the head (and a streamed body) are back in `pending`
/// whenever the request did not reach the upstream.
pub(super) async fn attempt_once(
    shared: &Arc<Shared>,
    addr: SocketAddr,
    pending: &mut Pending<'_>,
    keep_head: bool,
    in_flight: InFlight,
    service: &Service,
    pool: &str,
) -> Result<Response<ProxyBody>, Failed> {
    let policy = &service.config.retry;
    let fail = |kind| Failed {
        kind,
        response: None,
    };
    let conns = shared
        .upstreams
        .get(addr)
        .ok_or(fail(FailureKind::ConnectError))?;
    let websocket = pending.upgrade.is_some();
    let mut sender = if websocket {
        conns.connect_upgradable().await.map_err(fail)?
    } else {
        conns.checkout().await.map_err(fail)?.0
    };
    let head = if keep_head {
        pending.parts.clone()
    } else {
        pending.parts.take()
    };
    let Some(head) = head else {
        return Err(fail(FailureKind::Unsent));
    };
    let body = match pending.replay {
        Some(b) => UpstreamBody::Full(b.clone()),
        None => match pending.streamed.take() {
            Some((b, exceeded)) => {
                *pending.streamed = Some((UpstreamBody::Full(None), exceeded));
                b
            }
            None => UpstreamBody::Full(None),
        },
    };
    let req = Request::from_parts(head, body);
    let timeout = service.config.upstream.response_timeout;
    let resp = match tokio::time::timeout(timeout, sender.try_send_request(req)).await {
        Err(_) => return Err(fail(FailureKind::ResponseTimeout)),
        Ok(Err(mut e)) => {
            return match e.take_message() {
                Some(req) => {
                    let (head, body) = req.into_parts();
                    *pending.parts = Some(head);
                    if let Some((slot, _)) = pending.streamed.as_mut() {
                        *slot = body;
                    }
                    Err(fail(FailureKind::Unsent))
                }
                None => {
                    tracing::debug!(upstream = %addr, error = %e.error(), "upstream request failed");
                    Err(fail(FailureKind::Reset))
                }
            };
        }
        Ok(Ok(resp)) => resp,
    };
    let mut resp = resp;
    if websocket && resp.status() == http::StatusCode::SWITCHING_PROTOCOLS {
        let upstream_io = hyper::upgrade::on(&mut resp);
        if let Some(client_io) = pending.upgrade.take() {
            let site = upgrade::TunnelSite {
                service: service.name.clone(),
                pool: pool.to_string(),
                drain_timeout: service.config.upgraded_drain_timeout,
            };
            upgrade::spawn_tunnel(shared.clone(), client_io, upstream_io, in_flight, site);
        }
        let (mut rparts, _) = resp.into_parts();
        headers::strip_hop_by_hop(&mut rparts.headers);
        upgrade::restore_upgrade_headers(&mut rparts.headers);
        return Ok(Response::from_parts(rparts, ProxyBody::empty()));
    }
    let (mut rparts, rbody) = resp.into_parts();
    headers::strip_hop_by_hop(&mut rparts.headers);
    let lease = Lease {
        sender,
        conns,
        in_flight,
    };
    let resp = Response::from_parts(
        rparts,
        ProxyBody::Upstream(UpstreamResponse::new(rbody, lease)),
    );
    let status = resp.status().as_u16();
    if policy.on_status.contains(&status) {
        return Err(Failed {
            kind: FailureKind::Status(status),
            response: Some(resp),
        });
    }
    Ok(resp)
}
