//! How a guarded connection learns what its requests were answered with and when each answer
//! was complete, so that it stops checking bytes exactly when the connection has become a
//! tunnel (101 Switching Protocols, or a 2xx answer to `CONNECT`) and not a moment earlier, and
//! so that its keep-alive timer only runs while the connection is really idle.
//!
//! The HTTP/1 server keeps serving a connection as HTTP/1 when an `Upgrade` or `CONNECT`
//! request gets any other answer, so a guard that stopped checking at the request would let a
//! client smuggle the next requests past it by adding `Upgrade: x` to the first one.
//!
//! The HTTP/1 server owns the guard and reads from it in the task that answers, so it reports
//! each answer to the guard directly ([`Guarded::answered`](super::Guarded::answered) and
//! [`Guarded::answer_finished`](super::Guarded::answer_finished)): plain counts, no shared
//! state, no wake-up. A read that must wait for an answer returns `Pending` without a waker;
//! the reader reads again once it has reported the answer.

use http::StatusCode;

/// The answers reported so far on a connection.
#[derive(Debug, Default)]
pub(super) struct Answers {
    /// Answers reported (to the first `answered` requests, in request order).
    answered: u64,
    /// The status of the last one.
    status: u16,
    /// Answers whose body the HTTP/1 server has finished with (sent whole, or given up on).
    finished: u64,
}

impl Answers {
    /// Records that the connection's next unanswered request was answered with `status`.
    pub(super) fn answered(&mut self, status: StatusCode) {
        self.answered += 1;
        self.status = status.as_u16();
    }

    /// Records that the oldest answer not yet finished is complete.
    pub(super) fn finished_one(&mut self) {
        self.finished += 1;
    }

    /// The status request number `request` (counting from 1) was answered with, once it has
    /// been. The caller must not let a later request through before this is known.
    pub(super) fn answer(&self, request: u64) -> Option<StatusCode> {
        if self.answered < request {
            return None;
        }
        // Only the last status is kept; the guard holds the bytes after a request that could
        // open a tunnel until its answer, so that is the one it asks about.
        Some(StatusCode::from_u16(self.status).unwrap_or(StatusCode::OK))
    }

    /// Whether the answers to the first `requests` requests are all complete.
    pub(super) fn finished(&self, requests: u64) -> bool {
        self.finished >= requests
    }
}

/// Whether answering a request with `status` turns the connection into a tunnel.
pub(super) fn opens_tunnel(status: StatusCode, connect: bool) -> bool {
    status == StatusCode::SWITCHING_PROTOCOLS || (connect && status.is_success())
}
