//! How a guarded connection learns what its requests were answered with and when each answer
//! was complete, so that it stops checking bytes exactly when the connection has become a
//! tunnel (101 Switching Protocols, or a 2xx answer to `CONNECT`) and not a moment earlier, and
//! so that its keep-alive timer only runs while the connection is really idle.
//!
//! The HTTP/1 server keeps serving a connection as HTTP/1 when an `Upgrade` or `CONNECT`
//! request gets any other answer, so a guard that stopped checking at the request would let a
//! client smuggle the next requests past it by adding `Upgrade: x` to the first one.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use futures_util::task::AtomicWaker;
use http::StatusCode;
use http_body::{Body, Frame, SizeHint};

/// Bits of the packed answer word that hold the status code; the rest count answers.
const STATUS_BITS: u32 = 16;

/// What the guard and the service share.
#[derive(Debug, Default)]
struct Shared {
    /// `(answers << 16) | last status`: one word, so the count and status are read together.
    answers: AtomicU64,
    /// Answers whose body the HTTP/1 server has finished with (sent whole, or given up on).
    finished: AtomicU64,
    /// The guard's task, woken when an answer is recorded.
    waker: AtomicWaker,
}

/// The service side of a guarded connection: record every answer here, in request order.
///
/// Taken from [`Guarded::answer_signal`](super::Guarded::answer_signal). The HTTP/1 server
/// calls the service for one request at a time, so the n-th call answers the n-th request.
#[derive(Debug, Clone)]
pub struct AnswerSignal {
    /// Shared with the guard.
    shared: Arc<Shared>,
}

/// The guard's side of an [`AnswerSignal`].
#[derive(Debug)]
pub(super) struct AnswerWatch {
    /// Shared with the service.
    shared: Arc<Shared>,
}

/// A linked signal (for the service) and watch (for the guard).
pub(super) fn pair() -> (AnswerSignal, AnswerWatch) {
    let shared = Arc::new(Shared::default());
    (
        AnswerSignal {
            shared: shared.clone(),
        },
        AnswerWatch { shared },
    )
}

impl AnswerSignal {
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

    /// Records `resp` as the answer to the next unanswered request ([`answered`]), and that
    /// it is complete once the HTTP/1 server drops its body (sent whole, or abandoned with the
    /// connection). Only answers tracked this way let the guard's keep-alive timer start.
    ///
    /// [`answered`]: AnswerSignal::answered
    pub fn track<B>(&self, resp: http::Response<B>) -> http::Response<Answered<B>> {
        self.answered(resp.status());
        resp.map(|body| Answered {
            body,
            _done: Done(self.shared.clone()),
        })
    }
}

/// A response body that tells the guard when the HTTP/1 server is done with it (see
/// [`AnswerSignal::track`]).
#[derive(Debug)]
pub struct Answered<B> {
    /// The answer's body, passed through untouched.
    body: B,
    /// Counts the answer as finished when the body is dropped.
    _done: Done,
}

impl<B> Answered<B> {
    /// The answer's body.
    pub(crate) fn body(&self) -> &B {
        &self.body
    }

    /// The answer's body, to change.
    pub(crate) fn body_mut(&mut self) -> &mut B {
        &mut self.body
    }
}

/// Counts one answer as finished when dropped.
#[derive(Debug)]
struct Done(Arc<Shared>);

impl Drop for Done {
    fn drop(&mut self) {
        // No wake-up: the guard looks at the count when the HTTP/1 server flushes the
        // answer's last bytes, which it does after dropping the body (`server::h1`, `answer`).
        self.0.finished.fetch_add(1, Ordering::Release);
    }
}

impl<B: Body + Unpin> Body for Answered<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl AnswerWatch {
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

    /// Whether the answers to the first `requests` requests are all complete.
    pub(super) fn finished(&self, requests: u64) -> bool {
        self.shared.finished.load(Ordering::Acquire) >= requests
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
