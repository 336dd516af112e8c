//! The body of a request on one of Switchyard's own HTTP/1 connections.
//!
//! The connection's driver owns the stream; the service owns the body. The body asks for data
//! by polling; the driver, which polls the service in the same task, sees the want, reads and
//! decodes the next piece from the stream, and hands it over. Nothing is read before the body
//! asks for it (that is also when `100 Continue` is sent), and never more than one piece ahead.

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::task::AtomicWaker;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};

use crate::body::BoxError;

/// Why a request body failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BodyError {
    /// The client closed the connection before the body was complete.
    #[error("the client closed the connection before the request body was complete")]
    Incomplete,
    /// The chunked framing was invalid.
    #[error("invalid request body: {0}")]
    Chunked(#[from] switchyard_h1::ChunkError),
    /// Reading from the client failed.
    #[error("reading the request body failed: {0}")]
    Io(#[from] std::io::Error),
}

/// What the body and the driver share.
#[derive(Debug, Default)]
struct Feed {
    state: Mutex<State>,
    /// The task polling the body.
    body: AtomicWaker,
    /// The driver's task.
    driver: AtomicWaker,
}

#[derive(Debug, Default)]
struct State {
    /// The next piece, handed over and not yet taken.
    data: Option<Bytes>,
    /// The trailer fields, once the body has ended with them.
    trailers: Option<HeaderMap>,
    /// The body is complete.
    end: bool,
    /// The body failed.
    error: Option<BodyError>,
    /// The body was polled with nothing to take: the driver should read.
    wants: bool,
    /// The service dropped the body.
    dropped: bool,
}

/// A request body, as the service reads it.
#[derive(Debug)]
pub(crate) struct RequestBody {
    feed: Arc<Feed>,
    /// Bytes still to come when the length is known.
    left: Option<u64>,
    /// Set once the end (or an error) was returned.
    finished: bool,
}

/// The driver's side of a [`RequestBody`].
#[derive(Debug)]
pub(super) struct Feeder {
    feed: Arc<Feed>,
}

/// A linked body (`length` bytes long, when known) and its feeder.
pub(super) fn channel(length: Option<u64>) -> (RequestBody, Feeder) {
    let feed = Arc::new(Feed::default());
    (
        RequestBody {
            feed: feed.clone(),
            left: length,
            finished: false,
        },
        Feeder { feed },
    )
}

impl Feed {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if this.finished {
            return Poll::Ready(None);
        }
        let mut state = this.feed.lock();
        if let Some(data) = state.data.take() {
            if let Some(left) = &mut this.left {
                *left = left.saturating_sub(data.len() as u64);
            }
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        if let Some(e) = state.error.take() {
            this.finished = true;
            return Poll::Ready(Some(Err(Box::new(e))));
        }
        if let Some(trailers) = state.trailers.take() {
            return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
        }
        if state.end {
            this.finished = true;
            return Poll::Ready(None);
        }
        this.feed.body.register(cx.waker());
        let woke = !state.wants;
        state.wants = true;
        drop(state);
        if woke {
            this.feed.driver.wake();
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.finished || self.left == Some(0)
    }

    fn size_hint(&self) -> SizeHint {
        match self.left {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}

impl Drop for RequestBody {
    fn drop(&mut self) {
        self.feed.lock().dropped = true;
        self.feed.driver.wake();
    }
}

/// What the body wants from the driver now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Want {
    /// Nothing yet: it has not asked, or has not taken the last piece.
    Nothing,
    /// The next piece.
    Data,
    /// The service dropped it: nothing more is wanted, ever.
    Dropped,
}

impl Feeder {
    /// What the body wants; the driver's task is woken when that changes.
    pub(super) fn want(&self, cx: &mut Context<'_>) -> Want {
        self.feed.driver.register(cx.waker());
        let state = self.feed.lock();
        if state.dropped {
            Want::Dropped
        } else if state.wants && state.data.is_none() {
            Want::Data
        } else {
            Want::Nothing
        }
    }

    /// Hands over the next piece (the last one when `end`).
    pub(super) fn data(&self, data: Bytes, end: bool) {
        self.settle(|s| {
            s.data = Some(data);
            s.end = end;
        });
    }

    /// Ends the body (with its trailer fields, if any).
    pub(super) fn end(&self, trailers: Option<HeaderMap>) {
        self.settle(|s| {
            s.trailers = trailers;
            s.end = true;
        });
    }

    /// Fails the body.
    pub(super) fn fail(&self, e: BodyError) {
        self.settle(|s| s.error = Some(e));
    }

    fn settle(&self, f: impl FnOnce(&mut State)) {
        {
            let mut state = self.feed.lock();
            f(&mut state);
            state.wants = false;
        }
        self.feed.body.wake();
    }
}
