//! The request path, top to bottom: check → route → pick server → forward → retry decision →
//! respond.
//!
//! A request loads the routing snapshot once and keeps that `Arc` for its whole life; only a
//! retry loads it again, so a request that was in flight on the old colour when its server went
//! away lands on the colour that is live now. Every decision to try again is made by
//! `switchyard_core::retry::decide` from a `FailureKind` that knows whether the request could
//! have reached the upstream.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use http::request::Parts;
use http::{HeaderValue, Request, Response, Uri, Version, header};
use switchyard_core::retry::{self, FailureKind, RequestTraits, Verdict};
use switchyard_core::select::NoServer;
use switchyard_core::{InFlight, Service, Snapshot};
use tokio::time::Instant;

use crate::body::{ClientBody, ProxyBody, StreamProgress, UpstreamBody};
use crate::error::ProxyError;
use crate::headers::{self, RequestId, X_REQUEST_ID};
use crate::observe;
use crate::server::h1::{OnUpgrade, RawHead};
use crate::shared::Shared;
use crate::upgrade;
use crate::upstream::passed;

mod attempt;
mod h2_limits;
mod log;
mod pools;
mod replay;
mod served;

use attempt::{Pending, Tried, attempt_once, has_untried};
pub(crate) use attempt::{empty_body_length, encode_request};
use h2_limits::head_within;
use log::{ClientFields, LogOnce, Trace};
use pools::{preview_pool, set_response_headers, set_sticky_cookie, sticky_named};
use replay::{Prepared, prepare_body};
pub(crate) use served::{ConnInfo, Served};

static IDEMPOTENCY_KEY: http::HeaderName = http::HeaderName::from_static("idempotency-key");

/// Serves one client request of a connection. The whole service future is this function's:
/// the HTTP/1 driver builds it once per request, and a wrapper around it would be built, and
/// its kilobytes copied, too. (Never fails: `Result` for the service interface.) An HTTP/1
/// request's fields may come as its head's bytes (`raw`, its header map empty): they go
/// upstream as they came unless the routed service reads fields by name.
pub(crate) async fn handle(
    served: Arc<Served>,
    mut req: Request<ClientBody>,
    mut raw: Option<Box<RawHead>>,
) -> Result<Response<ProxyBody>, std::convert::Infallible> {
    let (shared, conn) = (&served.shared, &served.info);
    if let Some(https_port) = served.redirect_to {
        if let Some(raw) = raw.take() {
            *req.headers_mut() = raw.to_map();
        }
        return Ok(crate::server::redirect(shared, conn, &req, https_port));
    }
    let snapshot = shared.snapshot.load_full();
    let (mut parts, body) = req.into_parts();
    let mut log = LogOnce {
        shared,
        conn,
        service: None,
        method: parts.method.clone(),
        version: parts.version,
        uri: parts.uri.clone(),
        client_fields: shared
            .access
            .as_ref()
            .filter(|a| a.wants_client_fields())
            .map(|_| ClientFields::of(&parts.headers, raw.as_deref())),
        started: Instant::now(),
        trace: Trace::default(),
        done: false,
    };
    if parts.method == http::Method::OPTIONS && parts.uri.path() == "*" {
        // `OPTIONS *` asks about the server itself: the proxy answers it.
        let mut resp = Response::new(ProxyBody::empty());
        resp.headers_mut().insert(
            header::ALLOW,
            HeaderValue::from_static("GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH"),
        );
        resp.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
        log.finish(200, Some(0), None, None);
        return Ok(resp);
    }
    let declared = match &raw {
        Some(raw) => raw.content_length,
        None => content_length(&parts.headers),
    };
    let routed = match prepare(&snapshot, conn, declared, &mut parts, &mut raw) {
        Ok(routed) => routed,
        Err(e) => {
            let id = parts.headers.get(&X_REQUEST_ID).cloned();
            let resp = e.response(id.as_ref());
            let status = resp.status().as_u16();
            let error = e.to_string();
            log.finish(
                status,
                passed::declared_length(&resp),
                id.as_ref().and_then(|v| v.to_str().ok()),
                Some(&error),
            );
            return Ok(resp);
        }
    };
    // Taken apart here, not matched across the awaits below: the future keeps only the parts.
    let Routed {
        service,
        added,
        request_id,
        websocket,
    } = routed;
    let mut error = None;
    let mut log_status = None;
    log.service = Some(service);
    let upgrade = if websocket {
        parts.extensions.remove::<OnUpgrade>()
    } else {
        None
    };
    // The routed service: its config and response headers apply to the answer, even when a
    // retry moved the request on to a newer snapshot's service.
    let cfg = &service.config;
    // Read before the request is forwarded, when compression may use it.
    let accept = if cfg.compression.enabled {
        parts.headers.get(header::ACCEPT_ENCODING).cloned()
    } else {
        None
    };
    let limited = if service.rate_limits.is_empty() {
        None
    } else {
        service
            .rate_limits
            .check(log.uri.path(), conn.peer.ip(), log.started)
            .err()
    };
    let resp = if let Some(wait) = limited {
        error = Some("rate limited".to_string());
        crate::ratelimit::too_many_requests(wait)
    } else if let Some(files) = crate::static_files::matching(&cfg.static_files, log.uri.path()) {
        crate::static_files::serve(files, &log.method, &log.uri, &parts.headers).await
    } else {
        let forwarded = forward(
            shared,
            &snapshot,
            service,
            &mut parts,
            raw.as_deref(),
            &added,
            body,
            upgrade,
            &mut log.trace,
            log.started,
        );
        match forwarded.await {
            Ok(resp) => resp,
            Err(e) => {
                error = Some(e.to_string());
                log_status = Some(e.log_status());
                e.response(None)
            }
        }
    };
    let mut resp = if cfg.compression.enabled {
        crate::compress::apply(&cfg.compression, &log.method, accept.as_ref(), resp)
    } else {
        resp
    };
    if !service.response_headers.is_empty() {
        // Configured headers replace the upstream's by name: they must be in the map.
        resp = passed::restore(resp);
        set_response_headers(resp.headers_mut(), &service.response_headers);
    }
    log.finish(
        log_status.unwrap_or(resp.status().as_u16()),
        passed::declared_length(&resp),
        request_id.as_ref().and_then(RequestId::to_str),
        error.as_deref(),
    );
    if let Some(id) = request_id {
        passed::set_request_id(&mut resp, id);
    }
    Ok(resp)
}

/// A request checked and routed by [`prepare`], borrowing from its snapshot and connection.
struct Routed<'a> {
    /// Borrowed from the request's snapshot.
    service: &'a Arc<Service>,
    /// The fields the proxy adds upstream.
    added: headers::Added<'a>,
    /// The request's id: the client's, or the one generated in `added`; none when the client
    /// sent none and the service generates none.
    request_id: Option<RequestId>,
    /// Whether this is a WebSocket handshake.
    websocket: bool,
}

/// Checks the request head, routes it and rewrites its headers for the upstream.
/// `content_length` is the request's, read once by the caller. A head kept as its bytes
/// (`raw`) has none of the fields rewritten here; it is put into the header map when the
/// routed service reads fields by name ([`reads_fields`]).
fn prepare<'a>(
    snapshot: &'a Snapshot,
    conn: &'a ConnInfo,
    content_length: Option<u64>,
    parts: &mut Parts,
    raw: &mut Option<Box<RawHead>>,
) -> Result<Routed<'a>, ProxyError> {
    if parts.method == http::Method::CONNECT {
        return Err(ProxyError::Refused(
            http::StatusCode::METHOD_NOT_ALLOWED,
            "CONNECT is not proxied",
        ));
    }
    head_within(snapshot.limits.max_header_bytes, parts)?;
    if parts.uri.path() == "*" {
        return Err(ProxyError::Refused(
            http::StatusCode::BAD_REQUEST,
            "an asterisk-form target is for OPTIONS only",
        ));
    }
    let host = match raw {
        Some(raw) => headers::request_host_of(parts.version, &parts.uri, raw.host())?,
        None => headers::request_host(parts.version, &parts.uri, &parts.headers)?,
    };
    let service = snapshot
        .route(host.name(), parts.uri.path())
        .ok_or(ProxyError::NoRoute)?;
    if reads_fields(service) {
        if let Some(raw) = raw.take() {
            parts.headers = raw.to_map();
        }
    }
    if let Some(len) = content_length {
        if len > snapshot.limits.max_body {
            return Err(ProxyError::BodyTooLarge);
        }
    }
    // A head kept as its bytes has no hop-by-hop fields (its map is empty).
    let websocket = raw.is_none()
        && parts.version == Version::HTTP_11
        && upgrade::websocket_requested(&parts.headers);
    headers::strip_hop_by_hop(&mut parts.headers);
    if websocket {
        upgrade::restore_upgrade_headers(&mut parts.headers);
    }
    if parts.uri.authority().is_some() {
        let origin = parts
            .uri
            .path_and_query()
            .map_or("/", http::uri::PathAndQuery::as_str);
        parts.uri = Uri::try_from(origin)
            .map_err(|_| ProxyError::BadHost(headers::HostError::Malformed))?;
    }
    if !host.in_headers {
        // An HTTP/2 request's `:authority` becomes the upstream's `Host`; an HTTP/1 request's
        // `Host` is already in the map, unchanged.
        parts.headers.insert(header::HOST, host.authority.clone());
    }
    let (added, request_id) = headers::forwarding(
        &mut parts.headers,
        &conn.client_ip,
        conn.proto,
        host.authority,
        service.config.generate_request_id,
    );
    parts.version = Version::HTTP_11;
    Ok(Routed {
        service,
        added,
        request_id,
        websocket,
    })
}

/// Whether the request path reads fields of requests to `service` by name, past routing:
/// compression (`Accept-Encoding`), static files (conditional requests), preview (its header
/// or cookie), a sticky split (its cookie), a mirror (the copy's head) and retries by
/// `Idempotency-Key`.
fn reads_fields(service: &Service) -> bool {
    let cfg = &service.config;
    cfg.compression.enabled
        || !cfg.static_files.is_empty()
        || cfg.preview.header.is_some()
        || cfg.preview.cookie.is_some()
        || service.sticky
        || service.mirror.is_some()
        || cfg.retry.idempotency_key
}

fn content_length(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// The outcome of one attempt that did not produce a response to forward.
struct Failed {
    kind: FailureKind,
    /// An upstream response with a retryable status, kept in case it must be forwarded after all
    /// (boxed: it is rare, and every request's future would otherwise hold room for it).
    response: Option<Box<Response<ProxyBody>>>,
    /// Set when the client, not the upstream, broke the attempt: the answer, at once.
    client: Option<ProxyError>,
}

impl Failed {
    /// What the client gets when no attempt follows: the retained answer, else a proxy error
    /// for the failure.
    fn answer(self) -> Result<Response<ProxyBody>, ProxyError> {
        self.response
            .map(|r| *r)
            .ok_or(ProxyError::Upstream { kind: self.kind })
    }
}

/// Forwards the request, retrying as the policy allows.
#[allow(clippy::too_many_arguments)]
async fn forward(
    shared: &Arc<Shared>,
    snapshot: &Snapshot,
    routed: &Arc<Service>,
    parts: &mut Parts,
    raw: Option<&RawHead>,
    added: &headers::Added<'_>,
    body: ClientBody,
    mut upgrade: Option<OnUpgrade>,
    trace: &mut Trace,
    started: Instant,
) -> Result<Response<ProxyBody>, ProxyError> {
    // A retry may move on to a newer snapshot's service; the routed one's policy holds.
    let policy = &routed.config.retry;
    let max_body = snapshot.limits.max_body;
    let idempotent = retry::method_is_idempotent(parts.method.as_str())
        || (policy.idempotency_key && parts.headers.contains_key(&IDEMPOTENCY_KEY));
    let (replay, mut streamed) =
        match prepare_body(body, policy, max_body, snapshot.limits.body_timeout).await? {
            Prepared::Buffered(b) => {
                trace.bytes_in = b.as_ref().map_or(0, |b| b.len() as u64);
                (Some(b), None)
            }
            Prepared::Streamed(b, progress) => (None, Some((b, progress))),
        };
    let arrived = |streamed: &Option<(UpstreamBody, Arc<StreamProgress>)>, trace: &mut Trace| {
        if let Some((_, p)) = streamed {
            trace.bytes_in = p.arrived.load(Ordering::Relaxed);
        }
    };
    let budget = &routed.budget;
    // The request's start (read once, when its head arrived) serves the budget's window and
    // the first attempt, unless a body was buffered first (that took time); later attempts
    // read the clock anew, after their backoff.
    let first_start = if matches!(replay, Some(Some(_))) {
        Instant::now()
    } else {
        started
    };
    budget.record_request(first_start);
    let preview = preview_pool(routed, &mut parts.headers);
    if let Some(i) = preview.as_deref().and_then(|p| routed.pool_index(p)) {
        routed.pools[i].counters.previewed();
    }
    let sticky = sticky_named(routed, &parts.headers);
    let mut copy = match preview {
        None => crate::mirror::prepare(routed, parts, added, replay.as_ref()),
        Some(_) => None,
    };
    // Set once bytes of the request were written and a retry may not send the head again.
    let mut head_spent = false;
    let mut tried = Tried::default();
    let mut attempt = 0u32;
    let mut last_failed: Option<Failed> = None;
    // The newer snapshot's service a retry moved on to.
    let mut newer: Option<Arc<Service>> = None;
    loop {
        let service = newer.as_ref().unwrap_or(routed);
        attempt += 1;
        trace.attempts = attempt;
        let now = if attempt == 1 {
            first_start
        } else {
            Instant::now()
        };
        let kept = match &sticky {
            Some(Some(named)) if attempt == 1 => service.sticky_pool(named, now),
            _ => None,
        };
        let pool_index = match preview.as_deref().and_then(|p| service.pool_index(p)) {
            Some(i) => i,
            None => kept.unwrap_or_else(|| service.pick_pool(now, tried.as_slice())),
        };
        trace.pool = Some(pool_index);
        let pool = &service.pools[pool_index];
        let picked = match pool.pick(tried.as_slice(), now, service.config.ejection.all_down) {
            Ok(p) => p,
            Err(NoServer::AllDown) => {
                tracing::warn!(service = %service.name, pool = %pool.name, "every server of the pool is down; failing fast (all_down = \"fail\")");
                return Err(ProxyError::NoHealthyServer {
                    pool: pool.name.clone(),
                });
            }
            Err(NoServer::AllTried) => {
                // Every server of the live pool has been tried: the last failure is the answer.
                return match last_failed.take() {
                    Some(f) => f.answer(),
                    None => Err(ProxyError::NoHealthyServer {
                        pool: pool.name.clone(),
                    }),
                };
            }
        };
        if picked.degraded {
            tracing::warn!(service = %service.name, pool = %pool.name, upstream = %picked.server.state.addr, "every server of the pool is down or ejected; trying one anyway (all_down = \"try_all\")");
        }
        let server = &picked.server.state;
        let addr = server.addr;
        trace.upstream = Some(addr);
        tried.push(addr);
        // A retained retryable answer is released once another server takes over.
        drop(last_failed.take());
        let in_flight = InFlight::on(&picked.server.member);

        // Only an idempotent request with a buffered body can need its head again after it
        // was sent; everything else moves the head into the attempt.
        let keep_head = idempotent && replay.is_some() && attempt < policy.attempts;
        let mut pending = Pending {
            parts,
            raw,
            spent: &mut head_spent,
            added,
            replay: &replay,
            streamed: &mut streamed,
            upgrade: &mut upgrade,
            answered: None,
        };
        let failed = match attempt_once(
            shared,
            now,
            addr,
            &mut pending,
            keep_head,
            in_flight,
            service,
            &pool.name,
        )
        .await
        {
            Ok(mut resp) => {
                trace.answered = pending.answered;
                server.record_success();
                arrived(&streamed, trace);
                if let Some(copy) = copy.take() {
                    crate::mirror::send(copy);
                }
                if let Some(named) = &sticky {
                    if preview.is_none() && named.as_deref() != Some(pool.name.as_str()) {
                        set_sticky_cookie(&mut resp, &service.name, &pool.name);
                    }
                }
                return Ok(resp);
            }
            Err(failed) => failed,
        };
        arrived(&streamed, trace);
        if let Some(e) = failed.client {
            // The client's fault: not the server's, and nothing to retry.
            tracing::debug!(service = %service.name, upstream = %addr, error = %e, "request body broke off on the client side");
            return Err(e);
        }
        if let Some((_, progress)) = &streamed {
            if progress.exceeded.load(Ordering::Relaxed) {
                return Err(ProxyError::BodyTooLarge);
            }
        }
        let kind = failed.kind;
        if kind.counts_against_server() {
            let ej = &service.config.ejection;
            if let Some(period) =
                server.record_failure(Instant::now(), ej.consecutive_failures, ej.base, ej.max)
            {
                observe::ejected(service, addr, period);
            }
        }
        let body_replayable = !kind.reached_upstream() || replay.is_some();
        let traits = RequestTraits {
            idempotent,
            body_replayable,
        };
        let verdict = match retry::decide(policy, traits, kind, attempt) {
            Verdict::Retry if head_spent => Verdict::Stop(retry::StopReason::BodyNotReplayable),
            v => v,
        };
        let stop = |reason: &str| {
            observe::attempt_failed(service, pool, addr, kind, false);
            tracing::warn!(service = %service.name, upstream = %addr, reason = kind.reason(), attempts = attempt, stop = reason, "upstream attempt failed, not retried");
        };
        match verdict {
            Verdict::Stop(reason) => {
                stop(&format!("{reason:?}"));
                return failed.answer();
            }
            Verdict::Retry => {
                let current = shared.snapshot.load_full();
                let untried = current
                    .service(&service.name)
                    .is_some_and(|s| has_untried(s, tried.as_slice()));
                if !untried {
                    stop("NoUntriedServer");
                    return failed.answer();
                }
                if !budget.try_retry(policy.budget_ratio, policy.budget_min) {
                    stop("RetryBudgetExhausted");
                    return failed.answer();
                }
                observe::attempt_failed(service, pool, addr, kind, true);
            }
        }
        last_failed = Some(failed);
        tokio::time::sleep(retry::backoff(
            attempt,
            policy.backoff_base,
            policy.backoff_max,
        ))
        .await;
        let next = shared.snapshot.load_full().service(&service.name).cloned();
        match next {
            Some(s) => {
                trace.retried = Some(s.clone());
                newer = Some(s);
            }
            None => return Err(ProxyError::NoRoute),
        }
    }
}
