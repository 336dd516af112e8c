//! What one request went through, for its access-log line and its counters: written once,
//! when the response head is ready or when the client goes away first.

use std::net::SocketAddr;
use std::sync::Arc;

use http::Uri;
use switchyard_core::Service;
use tokio::time::Instant;

use super::ConnInfo;
use crate::observe::{self, RequestLog};
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
    pub(super) uri: Uri,
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
