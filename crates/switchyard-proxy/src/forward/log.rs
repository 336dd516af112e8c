//! What one request went through, for its access-log line and its counters: written once,
//! when the response head is ready or when the client goes away first.

use std::net::SocketAddr;
use std::sync::Arc;

use http::{HeaderMap, Uri};
use switchyard_core::Service;
use tokio::time::Instant;

use super::ConnInfo;
use crate::observe::{self, RequestLog};
use crate::server::h1::RawHead;
use crate::shared::Shared;

/// The access-log line of one request: written once the response head is ready, or, when the
/// client goes away first (the request's future is dropped), with nginx's 499.
pub(super) struct LogOnce<'a> {
    pub(super) shared: &'a Shared,
    pub(super) conn: &'a ConnInfo,
    /// The service the request was routed to (borrowed from the request's snapshot), once it
    /// was; [`Trace::retried`] names a later one.
    pub(super) service: Option<&'a Service>,
    pub(super) method: http::Method,
    pub(super) version: http::Version,
    pub(super) uri: Uri,
    /// The request's `Referer` and `User-Agent`, when the access log writes them.
    pub(super) client_fields: Option<Box<ClientFields>>,
    pub(super) started: Instant,
    pub(super) trace: Trace,
    pub(super) done: bool,
}

impl LogOnce<'_> {
    /// Writes the line and counts the request (once; the drop then does nothing).
    pub(super) fn finish(
        &mut self,
        status: u16,
        bytes_out: Option<u64>,
        request_id: Option<&str>,
        error: Option<&str>,
    ) {
        self.done = true;
        let trace = &self.trace;
        let service = trace.retried.as_deref().or(self.service);
        let pool = service.and_then(|s| trace.pool.and_then(|i| s.pools.get(i)));
        // Counted on the pool of the last attempt, or on the service's own counters when the
        // proxy answered before choosing a pool; a request of no service is unrouted.
        let counters = service.map(|s| pool.map_or(&s.counters.unpooled, |p| &*p.counters));
        let pool = pool.map(|p| p.name.as_str());
        let ended = trace.answered.unwrap_or_else(Instant::now);
        observe::counted_request_done(
            self.shared,
            &RequestLog {
                client: &self.conn.peer_text,
                method: &self.method,
                version: self.version,
                path: self.uri.path(),
                query: self.uri.query(),
                status,
                service: service.map(|s| s.name.as_str()),
                pool,
                upstream: trace.upstream,
                attempts: trace.attempts,
                bytes_in: Some(trace.bytes_in),
                bytes_out,
                duration: ended.saturating_duration_since(self.started),
                at: ended.into_std(),
                request_id,
                error,
                referer: self
                    .client_fields
                    .as_ref()
                    .and_then(|f| f.referer.as_deref()),
                user_agent: self
                    .client_fields
                    .as_ref()
                    .and_then(|f| f.user_agent.as_deref()),
            },
            counters,
        );
    }
}

impl Drop for LogOnce<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.finish(
                499,
                None,
                None,
                Some("the client went away before the response"),
            );
        }
    }
}

/// The request fields only the combined access-log format writes, copied when the request
/// arrives (the head's fields go upstream, or into a header map, before the line is written).
#[derive(Debug, Default)]
pub(super) struct ClientFields {
    referer: Option<Box<[u8]>>,
    user_agent: Option<Box<[u8]>>,
}

impl ClientFields {
    /// The first `Referer` and `User-Agent` of a request: from its kept head when it has one,
    /// else from its header map.
    pub(super) fn of(headers: &HeaderMap, raw: Option<&RawHead>) -> Box<ClientFields> {
        let mut out = Box::<ClientFields>::default();
        match raw {
            Some(raw) => {
                for (name, value) in raw.fields() {
                    // A kept head's names are tokens: `is_lower` compares them exactly.
                    let slot = if switchyard_h1::is_lower(name, b"referer") {
                        &mut out.referer
                    } else if switchyard_h1::is_lower(name, b"user-agent") {
                        &mut out.user_agent
                    } else {
                        continue;
                    };
                    if slot.is_none() {
                        *slot = Some(value.into());
                    }
                }
            }
            None => {
                let get = |name| {
                    headers
                        .get(name)
                        .map(|v: &http::HeaderValue| v.as_bytes().into())
                };
                out.referer = get(http::header::REFERER);
                out.user_agent = get(http::header::USER_AGENT);
            }
        }
        out
    }
}

/// What the attempts of one request went through, for the access log.
#[derive(Debug, Default)]
pub(super) struct Trace {
    /// The service of the last attempt when a retry moved on to a newer snapshot's (else it
    /// is the routed one, [`LogOnce::service`]).
    pub(super) retried: Option<Arc<Service>>,
    /// The pool index of the last attempt.
    pub(super) pool: Option<usize>,
    /// The server of the last attempt.
    pub(super) upstream: Option<SocketAddr>,
    /// Attempts made.
    pub(super) attempts: u32,
    /// Request body bytes that arrived from the client.
    pub(super) bytes_in: u64,
    /// When the upstream's answer arrived: the request's end for the log (read once there,
    /// else when the line is written).
    pub(super) answered: Option<Instant>,
}
