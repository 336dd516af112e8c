//! What the request path reports: one access-log line per request, and the events behind the
//! metrics (attempt failures, retries, ejections).
//!
//! The request path calls these functions and nothing else for observability, so the cost of
//! watching the proxy is decided here, in one place: a few relaxed atomic adds on the counters
//! the request's service and pool carry (see `metrics`), and the log line — appended to the
//! buffered access log (`access_log`) when the proxy has one, else emitted as a `tracing`
//! event with target `switchyard::access` (an embedding program's default).

use std::net::SocketAddr;
use std::time::Duration;

use http::Method;
use switchyard_core::counters::PoolCounters;
use switchyard_core::retry::FailureKind;
use switchyard_core::{Pool, Service};

use crate::shared::Shared;

/// Everything known about a finished request when its response head goes out.
#[derive(Debug)]
pub(crate) struct RequestLog<'a> {
    /// The client's address, as text (formatted once per connection).
    pub(crate) client: &'a str,
    /// The request method.
    pub(crate) method: &'a Method,
    /// The request's protocol version.
    pub(crate) version: http::Version,
    /// The request path (without query).
    pub(crate) path: &'a str,
    /// The query string, without `?`.
    pub(crate) query: Option<&'a str>,
    /// The status sent to the client.
    pub(crate) status: u16,
    /// The service it was routed to.
    pub(crate) service: Option<&'a str>,
    /// The pool (colour) of the last attempt.
    pub(crate) pool: Option<&'a str>,
    /// The server of the last attempt.
    pub(crate) upstream: Option<SocketAddr>,
    /// Attempts made (0 when the proxy answered by itself).
    pub(crate) attempts: u32,
    /// Request body bytes that arrived from the client.
    pub(crate) bytes_in: Option<u64>,
    /// Response body bytes, when known from `Content-Length`.
    pub(crate) bytes_out: Option<u64>,
    /// Time from the request head to the response head.
    pub(crate) duration: Duration,
    /// When `duration` ended (the access log's time for the line).
    pub(crate) at: std::time::Instant,
    /// The request id.
    pub(crate) request_id: Option<&'a str>,
    /// Why the proxy answered by itself, if it did.
    pub(crate) error: Option<&'a str>,
    /// The request's `Referer` and `User-Agent`, read only when the access log writes them
    /// ([`crate::access_log::AccessLog::wants_client_fields`]).
    pub(crate) referer: Option<&'a [u8]>,
    pub(crate) user_agent: Option<&'a [u8]>,
}

/// Records a finished request that reached no service: the metrics (as unrouted), and the
/// access log line.
pub(crate) fn request_done(shared: &Shared, log: &RequestLog<'_>) {
    counted_request_done(shared, log, None);
}

/// Records a finished request: counted on `counters` (its pool's, or its service's own when
/// it was answered before a pool was chosen; `None`: unrouted), and the access log line.
pub(crate) fn counted_request_done(
    shared: &Shared,
    log: &RequestLog<'_>,
    counters: Option<&PoolCounters>,
) {
    match counters {
        Some(c) => c.record(
            log.status,
            log.duration,
            log.attempts,
            (log.bytes_in.unwrap_or(0), log.bytes_out.unwrap_or(0)),
        ),
        None => shared.metrics.unrouted(log.status),
    }
    match &shared.access {
        Some(access) => access.write(log),
        None => tracing::info!(
            target: "switchyard::access",
            client = %log.client,
            method = %log.method,
            path = log.path,
            query = log.query.unwrap_or(""),
            status = log.status,
            service = log.service.unwrap_or("-"),
            colour = log.pool.unwrap_or("-"),
            upstream = %log.upstream.map_or_else(|| "-".to_string(), |a| a.to_string()),
            attempts = log.attempts,
            bytes_in = log.bytes_in.unwrap_or(0),
            bytes_out = log.bytes_out.unwrap_or(0),
            duration_ms = (log.duration.as_micros() as f64) / 1000.0,
            request_id = log.request_id.unwrap_or("-"),
            error = log.error.unwrap_or("-"),
        ),
    }
}

/// Records one failed upstream attempt on `pool` of `service`, and whether it is retried.
pub(crate) fn attempt_failed(
    service: &Service,
    pool: &Pool,
    upstream: SocketAddr,
    kind: FailureKind,
    retried: bool,
) {
    service
        .counters
        .attempt_failed(&pool.counters, kind, retried);
    if retried {
        tracing::info!(service = %service.name, upstream = %upstream, reason = kind.reason(), "retrying upstream request");
    }
}

/// Records that a server of `service` was ejected after consecutive failures.
pub(crate) fn ejected(service: &Service, upstream: SocketAddr, period: Duration) {
    service.counters.ejected();
    tracing::warn!(service = %service.name, upstream = %upstream, period_ms = period.as_millis() as u64, "upstream ejected after consecutive failures");
}
