//! How a guarded connection learns what its requests were answered with, so that it stops
//! checking bytes exactly when the connection has become a tunnel (101 Switching Protocols, or
//! a 2xx answer to `CONNECT`) and not a moment earlier.
//!
//! hyper keeps serving a connection as HTTP/1 when an `Upgrade` or `CONNECT` request gets any
//! other answer, so a guard that stopped checking at the request would let a client smuggle the
//! next requests past it by adding `Upgrade: x` to the first one.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use futures_util::task::AtomicWaker;
use http::StatusCode;

/// Bits of the packed answer word that hold the status code; the rest count answers.
const STATUS_BITS: u32 = 16;

/// What the guard and the service share.
#[derive(Debug, Default)]
struct Shared {
    /// `(answers << 16) | last status`: one word, so the count and status are read together.
    answers: AtomicU64,
    /// The guard's task, woken when an answer is recorded.
    waker: AtomicWaker,
}

/// The service side of a guarded connection: record every answer here, in request order.
///
/// Taken from [`Guarded::tunnel_signal`](super::Guarded::tunnel_signal). hyper's HTTP/1 server
/// calls the service for one request at a time, so the n-th call answers the n-th request.
#[derive(Debug, Clone)]
pub struct TunnelSignal {
    /// Shared with the guard.
    shared: Arc<Shared>,
}

/// The guard's side of a [`TunnelSignal`].
#[derive(Debug)]
pub(super) struct TunnelWatch {
    /// Shared with the service.
    shared: Arc<Shared>,
}

/// A linked signal (for the service) and watch (for the guard).
pub(super) fn pair() -> (TunnelSignal, TunnelWatch) {
    let shared = Arc::new(Shared::default());
    (
        TunnelSignal {
            shared: shared.clone(),
        },
        TunnelWatch { shared },
    )
}

impl TunnelSignal {
    /// Records that the connection's next unanswered request was answered with `status`.
    pub fn answered(&self, status: StatusCode) {
        let status = u64::from(status.as_u16());
        let _ = self
            .shared
            .answers
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |word| {
                Some((((word >> STATUS_BITS) + 1) << STATUS_BITS) | status)
            });
        self.shared.waker.wake();
    }
}

impl TunnelWatch {
    /// The status request number `request` (counting from 1) was answered with, once it has
    /// been. The caller must not let a later request through before this is known.
    pub(super) fn poll_answer(&self, cx: &mut Context<'_>, request: u64) -> Poll<StatusCode> {
        if let Some(status) = self.answer(request) {
            return Poll::Ready(status);
        }
        self.shared.waker.register(cx.waker());
        // Checked again after registering, so an answer recorded in between is not missed.
        match self.answer(request) {
            Some(status) => Poll::Ready(status),
            None => Poll::Pending,
        }
    }

    /// The status of request `request`, if the answer count has reached it.
    fn answer(&self, request: u64) -> Option<StatusCode> {
        let word = self.shared.answers.load(Ordering::Acquire);
        if word >> STATUS_BITS < request {
            return None;
        }
        // A status outside 100..=999 cannot have been recorded; fall back to "not a tunnel".
        let status = u16::try_from(word & 0xffff).unwrap_or(0);
        Some(StatusCode::from_u16(status).unwrap_or(StatusCode::OK))
    }
}

/// Whether answering a request with `status` turns the connection into a tunnel.
pub(super) fn opens_tunnel(status: StatusCode, connect: bool) -> bool {
    status == StatusCode::SWITCHING_PROTOCOLS || (connect && status.is_success())
}
