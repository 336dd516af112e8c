//! One attempt of the request path on one server, and the bookkeeping between attempts
//! (which servers were tried, what an attempt hands back when the request did not reach the
//! upstream).

use std::future::{Future, poll_fn};
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;

use crate::server::h1::{OnUpgrade, RawHead};
use bytes::{Bytes, BytesMut};
use http::Response;
use http::request::Parts;
use http_body::Body;
use switchyard_core::retry::FailureKind;
use switchyard_core::{InFlight, Service};
use switchyard_h1::{
    BodyLength, encode_request_head, encode_request_head_from, encode_request_head_lines,
};
use tokio::time::Instant;

use super::Failed;
use crate::body::{ProxyBody, StreamProgress, UpstreamBody, UpstreamResponse};
use crate::error::ProxyError;
use crate::headers::Added;
use crate::shared::Shared;
use crate::upgrade;
use crate::upstream::Conn;
use crate::upstream::exchange::{Answer, ExchangeError, OutHead, Outgoing, exchange};
use crate::upstream::passed::PassedHead;

/// The servers a request has tried. Most requests make one attempt: that one is kept inline,
/// and a list is allocated only for a second (the request's future stays small).
#[derive(Default)]
pub(super) enum Tried {
    #[default]
    None,
    One(SocketAddr),
    Many(Vec<SocketAddr>),
}

impl Tried {
    pub(super) fn push(&mut self, addr: SocketAddr) {
        *self = match std::mem::take(self) {
            Tried::None => Tried::One(addr),
            Tried::One(first) => Tried::Many(vec![first, addr]),
            Tried::Many(mut all) => {
                all.push(addr);
                Tried::Many(all)
            }
        };
    }

    pub(super) fn as_slice(&self) -> &[SocketAddr] {
        match self {
            Tried::None => &[],
            Tried::One(addr) => std::slice::from_ref(addr),
            Tried::Many(all) => all,
        }
    }
}

/// The exchange of one request on `conn`, ended with a response timeout at `deadline`. The
/// deadline is watched by the connection's own alarm (not a timer per request).
async fn within(
    conn: &mut Conn,
    deadline: Instant,
    outgoing: Outgoing<'_>,
) -> Result<Answer, ExchangeError> {
    let mut alarm = std::mem::take(&mut conn.alarm);
    let answer = {
        let mut exchanging = pin!(exchange(conn, outgoing));
        poll_fn(|cx| match exchanging.as_mut().poll(cx) {
            Poll::Ready(r) => Poll::Ready(r),
            Poll::Pending if alarm.passed(cx, deadline) => {
                Poll::Ready(Err(ExchangeError::Upstream(FailureKind::ResponseTimeout)))
            }
            Poll::Pending => Poll::Pending,
        })
        .await
    };
    conn.alarm = alarm;
    answer
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
    pub(super) parts: &'a Parts,
    /// The head's fields as its bytes, when they go upstream as they came (the header map
    /// is empty then).
    pub(super) raw: Option<&'a RawHead>,
    /// Set when the head was sent and may not be sent again; an attempt then refuses to start.
    pub(super) spent: &'a mut bool,
    pub(super) added: &'a Added<'a>,
    pub(super) replay: &'a Option<Option<Bytes>>,
    pub(super) streamed: &'a mut Option<(UpstreamBody, Arc<StreamProgress>)>,
    pub(super) upgrade: &'a mut Option<OnUpgrade>,
    /// When the upstream's response head was read, once it was.
    pub(super) answered: Option<Instant>,
}

/// One attempt on one server. On failure the head (and a streamed body) are still in
/// `pending` whenever nothing of the request was written upstream.
/// `now` is the attempt's start (read once per attempt, for the pool's choice, the pooled
/// connection's age and the response deadline).
#[allow(clippy::too_many_arguments)]
pub(super) async fn attempt_once(
    shared: &Arc<Shared>,
    now: Instant,
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
        client: None,
    };
    let conns =
        crate::upstream::conns(in_flight.server()).ok_or(fail(FailureKind::ConnectError))?;
    let websocket = pending.upgrade.is_some();
    let mut conn = if websocket {
        conns
            .connect(&service.config.upstream)
            .await
            .map_err(fail)?
    } else {
        conns
            .checkout(&service.config.upstream, now)
            .await
            .map_err(fail)?
    };
    if *pending.spent {
        return Err(fail(FailureKind::Unsent));
    }
    let head = pending.parts;
    let head_request = head.method == http::Method::HEAD;
    let has_length = match pending.raw {
        Some(raw) => raw.content_length.is_some(),
        None => head.headers.contains_key(http::header::CONTENT_LENGTH),
    };
    let (length, mut streamed) = match (pending.replay, pending.streamed.as_mut()) {
        (Some(Some(b)), _) => (BodyLength::Known(b.len() as u64), None),
        (Some(None), _) => (empty_length(&head.method, has_length), None),
        (None, Some((body, _))) => {
            let hint = body.size_hint();
            match hint.exact() {
                Some(n) => (BodyLength::Known(n), Some((body, false))),
                None => (BodyLength::Chunked, Some((body, true))),
            }
        }
        (None, None) => (empty_length(&head.method, has_length), None),
    };
    // Encoded in the connection's (empty) read buffer, whose room it keeps between requests.
    encode_request_into(
        &mut conn.buf,
        head,
        pending.raw,
        pending.added,
        length,
        pending.replay.as_ref().and_then(|r| r.as_deref()),
    );
    let outgoing = Outgoing {
        head: OutHead::InBuf,
        streamed: streamed.take(),
        head_request,
    };
    let timeout = service.config.upstream.response_timeout;
    // A pooled connection was taken without waiting: the attempt's start is now. A new one
    // may have taken a while to connect, and its wait is not the response's.
    let sent_at = if conn.reused { now } else { Instant::now() };
    let answer = within(&mut conn, sent_at + timeout, outgoing).await;
    let answer = match answer {
        Ok(a) => a,
        Err(ExchangeError::Upstream(FailureKind::Unsent)) => {
            // Nothing was written: the head and any streamed body are untouched.
            return Err(fail(FailureKind::Unsent));
        }
        Err(e) => {
            consume_head(pending, keep_head);
            return Err(match e {
                ExchangeError::Upstream(kind) => fail(kind),
                ExchangeError::Client => Failed {
                    kind: FailureKind::Reset,
                    response: None,
                    client: Some(ProxyError::ClientAborted),
                },
                ExchangeError::TooLarge => Failed {
                    kind: FailureKind::Reset,
                    response: None,
                    client: Some(ProxyError::BodyTooLarge),
                },
                ExchangeError::TimedOut => Failed {
                    kind: FailureKind::Reset,
                    response: None,
                    client: Some(ProxyError::BodyTimeout),
                },
            });
        }
    };
    consume_head(pending, keep_head);
    // One clock reading for the answer: the access log's end of the request, and the start
    // of the connection's idle time when it goes back to its pool now.
    let answered = Instant::now();
    pending.answered = Some(answered);
    let Ok(status) = http::StatusCode::from_u16(answer.head.status) else {
        tracing::debug!(upstream = %addr, "unusable response status from upstream");
        return Err(fail(FailureKind::Reset));
    };
    let (framing, request_complete) = (answer.head.framing, answer.request_complete);
    let keep_alive = answer.head.keep_alive;
    let agreed = status == http::StatusCode::SWITCHING_PROTOCOLS
        && answer
            .head
            .field(&answer.bytes, "upgrade")
            .is_some_and(|v| v.trim_ascii().eq_ignore_ascii_case(b"websocket"));
    // A plain head goes to the client as bytes (`upstream::passed`); the others, and a 101
    // (whose upgrade fields are put back), get their header map now.
    let passed = if status == http::StatusCode::SWITCHING_PROTOCOLS {
        Err((answer.head, answer.bytes))
    } else {
        PassedHead::new(answer.head, answer.bytes)
    };
    let (mut headers, passed) = match passed {
        Ok(passed) => (http::HeaderMap::new(), Some(passed)),
        Err((head, bytes)) => match head.header_map(&bytes) {
            Ok(map) => (map, None),
            Err(e) => {
                tracing::debug!(upstream = %addr, error = %e, "unusable response head from upstream");
                return Err(fail(FailureKind::Reset));
            }
        },
    };
    if status == http::StatusCode::SWITCHING_PROTOCOLS {
        let client_io = pending.upgrade.take();
        return match (client_io, agreed) {
            (Some(client_io), true) => {
                let site = upgrade::TunnelSite {
                    service: service.name.clone(),
                    pool: pool.to_string(),
                    drain_timeout: service.config.upgraded_drain_timeout,
                };
                upgrade::spawn_tunnel(shared.clone(), client_io, conn, in_flight, site);
                upgrade::restore_upgrade_headers(&mut headers);
                let mut resp = Response::new(ProxyBody::empty());
                *resp.status_mut() = status;
                *resp.headers_mut() = headers;
                Ok(resp)
            }
            _ => {
                tracing::warn!(upstream = %addr, websocket_asked = websocket, "upstream answered 101 without agreeing to the WebSocket upgrade the client asked for; answered 502, no tunnel opened");
                let kind = FailureKind::Reset;
                Err(Failed {
                    kind,
                    response: Some(Box::new(ProxyError::Upstream { kind }.response(None))),
                    client: None,
                })
            }
        };
    }
    let reusable = keep_alive && request_complete && !websocket;
    let body = UpstreamResponse::new(conn, framing, reusable, in_flight, passed, answered);
    let mut resp = Response::new(ProxyBody::Upstream(body));
    *resp.status_mut() = status;
    *resp.headers_mut() = headers;
    if policy.on_status.contains(&status.as_u16()) {
        return Err(Failed {
            kind: FailureKind::Status(status.as_u16()),
            response: Some(Box::new(resp)),
            client: None,
        });
    }
    Ok(resp)
}

/// The bytes that start sending `head` upstream: its request line, its headers and the fields
/// the proxy `added`, framed by `length`, then `body` when the body is buffered whole.
pub(crate) fn encode_request(
    head: &Parts,
    added: &Added<'_>,
    length: BodyLength,
    body: Option<&[u8]>,
) -> BytesMut {
    let mut out = BytesMut::new();
    encode_request_into(&mut out, head, None, added, length, body);
    out
}

/// [`encode_request`] into `out` (emptied first), using its room; the fields are `raw`'s when
/// the head's are kept as its bytes.
fn encode_request_into(
    out: &mut BytesMut,
    head: &Parts,
    raw: Option<&RawHead>,
    added: &Added<'_>,
    length: BodyLength,
    body: Option<&[u8]>,
) {
    let target = head
        .uri
        .path_and_query()
        .map_or("/", http::uri::PathAndQuery::as_str);
    out.clear();
    let (fields, n) = added.fields();
    match raw {
        Some(raw) => match raw.block() {
            Some(lines) => {
                encode_request_head_lines(out, &head.method, target, lines, &fields[..n], length);
            }
            None => encode_request_head_from(
                out,
                &head.method,
                target,
                raw.fields(),
                &fields[..n],
                length,
            ),
        },
        None => encode_request_head(
            out,
            &head.method,
            target,
            &head.headers,
            &fields[..n],
            length,
        ),
    }
    if let Some(b) = body {
        out.extend_from_slice(b);
    }
}

/// The framing of an empty request body: `Content-Length: 0` when the client sent one (or the
/// method is one that normally carries a body), else none.
pub(crate) fn empty_body_length(head: &Parts) -> BodyLength {
    empty_length(
        &head.method,
        head.headers.contains_key(http::header::CONTENT_LENGTH),
    )
}

/// [`empty_body_length`] of a request with `method`, which has a `Content-Length` or not.
fn empty_length(method: &http::Method, has_length: bool) -> BodyLength {
    let carries_body = matches!(
        *method,
        http::Method::POST | http::Method::PUT | http::Method::PATCH
    );
    if carries_body || has_length {
        BodyLength::Known(0)
    } else {
        BodyLength::None
    }
}

/// Once bytes of the request were written, the head is used up unless a retry may need it.
fn consume_head(pending: &mut Pending<'_>, keep_head: bool) {
    if !keep_head {
        *pending.spent = true;
    }
    if let Some((body, _)) = pending.streamed.as_mut() {
        // A streamed body is read once: a retry cannot send it again.
        *body = UpstreamBody::Full(None);
    }
}
