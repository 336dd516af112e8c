//! Body types of the request path: what goes to the upstream and what goes back to the client.
//!
//! Request bodies are either buffered whole (small enough to replay on a retry) or streamed
//! with a size limit. Response bodies are streamed from the upstream connection itself
//! (`upstream::response`), which goes back to its pool, and ends the in-flight count, when the
//! last byte has passed, so a pool drains exactly when its last response is complete.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

/// The error type of the proxy's bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A request body as the service receives it from the client.
#[derive(Debug)]
pub(crate) enum ClientBody {
    /// No body at all.
    Empty,
    /// From an HTTP/1 connection (Switchyard's own server side).
    Http1(crate::server::h1::RequestBody),
    /// From an HTTP/2 connection (hyper's).
    Http2(Incoming),
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            ClientBody::Empty => Poll::Ready(None),
            ClientBody::Http1(b) => Pin::new(b).poll_frame(cx),
            ClientBody::Http2(b) => Pin::new(b).poll_frame(cx).map_err(Into::into),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ClientBody::Empty => true,
            ClientBody::Http1(b) => b.is_end_stream(),
            ClientBody::Http2(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ClientBody::Empty => SizeHint::with_exact(0),
            ClientBody::Http1(b) => b.size_hint(),
            ClientBody::Http2(b) => b.size_hint(),
        }
    }
}

/// A request body as sent upstream.
#[derive(Debug)]
pub enum UpstreamBody {
    /// A body read completely (or none at all): cheap to clone for a replay.
    Full(Option<Bytes>),
    /// A body too large to buffer, streamed from the client with a size limit.
    Stream(Box<LimitedStream>),
}

/// A streamed request body: the part already read, then the rest from the client.
#[derive(Debug)]
pub struct LimitedStream {
    /// Bytes read while deciding whether the body could be buffered.
    pub(crate) prefix: Option<Bytes>,
    /// The rest of the client's body.
    pub(crate) inner: ClientBody,
    /// Bytes passed on so far (prefix included).
    pub(crate) seen: u64,
    /// The limit; beyond it the stream fails and `exceeded` is set.
    pub(crate) max: u64,
    /// What the request path learns of the stream after handing it over.
    pub(crate) progress: Arc<StreamProgress>,
    /// The longest wait for the client's next bytes (`limits.body_timeout`).
    pub(crate) timeout: std::time::Duration,
    /// When the current wait for the client must end; `None` while bytes are flowing.
    pub(crate) wait_until: Option<tokio::time::Instant>,
    /// Fires at `wait_until`; allocated when a read first waits, then only moved.
    pub(crate) idle: Option<Pin<Box<tokio::time::Sleep>>>,
}

/// The error a streamed body fails with when the client sends nothing for `body_timeout`.
#[derive(Debug, thiserror::Error)]
#[error("the client sent nothing of its body for {0:?}")]
pub struct BodyTimedOut(pub std::time::Duration);

/// What a streamed request body reports back to the request path.
#[derive(Debug, Default)]
pub struct StreamProgress {
    /// Set when the limit was crossed, so the request path answers 413.
    pub(crate) exceeded: AtomicBool,
    /// Body bytes that arrived from the client (for the access log).
    pub(crate) arrived: AtomicU64,
}

/// The error a streamed body fails with past its limit.
#[derive(Debug, thiserror::Error)]
#[error("request body larger than {0} bytes")]
pub struct BodyTooLarge(pub u64);

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            UpstreamBody::Full(data) => Poll::Ready(data.take().map(|b| Ok(Frame::data(b)))),
            UpstreamBody::Stream(s) => {
                if let Some(prefix) = s.prefix.take() {
                    return Poll::Ready(Some(Ok(Frame::data(prefix))));
                }
                match Pin::new(&mut s.inner).poll_frame(cx) {
                    Poll::Ready(Some(Ok(frame))) => {
                        s.wait_until = None;
                        if let Some(data) = frame.data_ref() {
                            s.seen += data.len() as u64;
                            s.progress.arrived.store(s.seen, Ordering::Relaxed);
                            if s.seen > s.max {
                                s.progress.exceeded.store(true, Ordering::Relaxed);
                                return Poll::Ready(Some(Err(Box::new(BodyTooLarge(s.max)))));
                            }
                        }
                        Poll::Ready(Some(Ok(frame)))
                    }
                    Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
                    Poll::Ready(None) => Poll::Ready(None),
                    Poll::Pending => {
                        let timeout = s.timeout;
                        let deadline = *s
                            .wait_until
                            .get_or_insert_with(|| tokio::time::Instant::now() + timeout);
                        let idle = s
                            .idle
                            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                        if idle.deadline() != deadline {
                            idle.as_mut().reset(deadline);
                        }
                        if std::future::Future::poll(idle.as_mut(), cx).is_ready() {
                            return Poll::Ready(Some(Err(Box::new(BodyTimedOut(s.timeout)))));
                        }
                        Poll::Pending
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpstreamBody::Full(data) => data.is_none(),
            UpstreamBody::Stream(s) => s.prefix.is_none() && s.inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UpstreamBody::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            UpstreamBody::Full(None) => SizeHint::with_exact(0),
            UpstreamBody::Stream(s) => {
                let inner = s.inner.size_hint();
                let prefix = s.prefix.as_ref().map_or(0, |p| p.len() as u64);
                let mut hint = SizeHint::new();
                hint.set_lower(inner.lower() + prefix);
                if let Some(upper) = inner.upper() {
                    hint.set_upper(upper + prefix);
                }
                hint
            }
        }
    }
}

pub use crate::upstream::response::UpstreamResponse;

/// A response body as sent to the client.
// Every variant is one pointer: one allocation per response costs less than moving a larger
// body with every move of the response between the attempt and the answer (the upstream's
// boxed: ~1,000 instructions a request fewer, most of them `memcpy`; the proxy's own bytes
// boxed too, so that a response is 128 bytes, which moves inline rather than by `memcpy`).
#[derive(Debug)]
pub enum ProxyBody {
    /// A body made by the proxy itself (errors, admin answers).
    Full(Option<Box<Bytes>>),
    /// An upstream's body, streamed from its connection (boxed: see above).
    Upstream(Box<UpstreamResponse>),
    /// Another body compressed as it streams (`compress`).
    Compressed(Box<crate::compress::Encoded>),
    /// A file read from disk in chunks (`static_files`).
    File(Box<crate::static_files::FileStream>),
}

impl ProxyBody {
    /// A body with the given bytes.
    pub fn full(data: impl Into<Bytes>) -> Self {
        let data = data.into();
        ProxyBody::Full(if data.is_empty() {
            None
        } else {
            Some(Box::new(data))
        })
    }

    /// An empty body.
    pub fn empty() -> Self {
        ProxyBody::Full(None)
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            ProxyBody::Full(data) => Poll::Ready(data.take().map(|b| Ok(Frame::data(*b)))),
            ProxyBody::Upstream(up) => up.poll_frame(cx),
            ProxyBody::Compressed(c) => Pin::new(c.as_mut()).poll_frame(cx),
            ProxyBody::File(f) => Pin::new(f.as_mut()).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Full(data) => data.is_none(),
            ProxyBody::Upstream(up) => up.is_end_stream(),
            ProxyBody::Compressed(c) => c.is_end_stream(),
            ProxyBody::File(f) => f.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            ProxyBody::Full(None) => SizeHint::with_exact(0),
            ProxyBody::Upstream(up) => up.size_hint(),
            ProxyBody::Compressed(c) => c.size_hint(),
            ProxyBody::File(f) => f.size_hint(),
        }
    }
}
