//! Serving one guarded client connection: HTTP/2 (hyper's server) or HTTP/1 (Switchyard's
//! own, `h1.rs`) as its first bytes say, and an HTTP/1 connection parked while it is idle.
//!
//! Parking (see `framing::park`): after [`Setup::park_after`] of idleness the guard raises its
//! signal; the HTTP/1 driver, waiting for a head with nothing read, returns the stream and its
//! buffers go; the connection then waits for the socket to become readable with nothing but
//! the stream, the guard and the service in memory, and serves it again. A client sees one
//! keep-alive connection throughout: nothing is written or closed by parking, and the guard's
//! keep-alive clock counts on across it.

use std::future::{Future, poll_fn};
use std::io;
use std::pin::Pin;
use std::time::Duration;

use http::{Request, Response};
use http_body::Body;
use hyper::body::Incoming;
use hyper::server::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;

use crate::body::{BoxError, ClientBody};
use crate::framing::{Guarded, ParkSignal, Protocol, ReadReady};
use crate::server::h1;
use crate::shared::{ConnCounter, stopped};
use crate::upstream::passed::PassedHead;

/// How connections are served.
pub(crate) struct Setup {
    /// HTTP/1 connections (Switchyard's own server side, `h1.rs`).
    pub(crate) h1: h1::Options,
    /// HTTP/2 connections (hyper's).
    pub(crate) h2: http2::Builder<TokioExecutor>,
    /// How long an idle HTTP/1 connection keeps its buffers before it is parked; `None`
    /// never parks.
    pub(crate) park_after: Option<Duration>,
}

/// What serving a connection needs from its owner.
pub(crate) trait Host: Send + 'static {
    /// The serving set-up.
    fn setup(&self) -> &Setup;
    /// Where parked connections are counted.
    fn connections(&self) -> &ConnCounter;
}

/// A client stream a connection can be served on (and parked).
pub(crate) trait Stream:
    AsyncRead + AsyncWrite + ReadReady + Unpin + Send + 'static
{
}

impl<I: AsyncRead + AsyncWrite + ReadReady + Unpin + Send + 'static> Stream for I {}

/// A service connections can be served with, over HTTP/1 and HTTP/2, answering with `B`.
pub(crate) trait Service<B>: Send + 'static {
    /// What a failed call gives.
    type Error: Into<BoxError>;
    /// The answer to come.
    type Future: Future<Output = Result<Response<B>, Self::Error>> + Send + 'static;

    /// Serves `req`. An HTTP/1 request whose head is forwarded as it came (see
    /// [`h1::RawHead`]) has its fields in `raw` and an empty header map.
    fn call(&self, req: Request<ClientBody>, raw: Option<Box<h1::RawHead>>) -> Self::Future;
}

/// A service made of a function of the request and its head's bytes.
pub(crate) struct RawFn<F>(pub(crate) F);

impl<F, Fut, B, E> Service<B> for RawFn<F>
where
    F: Fn(Request<ClientBody>, Option<Box<h1::RawHead>>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Response<B>, E>> + Send + 'static,
    E: Into<BoxError>,
{
    type Error = E;
    type Future = Fut;

    fn call(&self, req: Request<ClientBody>, raw: Option<Box<h1::RawHead>>) -> Fut {
        (self.0)(req, raw)
    }
}

/// A hyper service, which reads every request's fields from its header map: a head kept as its
/// bytes has them put into the map first.
#[cfg(test)]
pub(crate) struct WithMap<S>(pub(crate) S);

#[cfg(test)]
impl<S, B> Service<B> for WithMap<S>
where
    S: hyper::service::Service<
            Request<ClientBody>,
            Response = Response<B>,
            Future: Send + 'static,
            Error: Into<BoxError>,
        > + Send
        + 'static,
{
    type Error = S::Error;
    type Future = S::Future;

    fn call(&self, mut req: Request<ClientBody>, raw: Option<Box<h1::RawHead>>) -> S::Future {
        if let Some(raw) = raw {
            *req.headers_mut() = raw.to_map();
        }
        self.0.call(req)
    }
}

/// A response body such a service answers with. It may carry the upstream's head as bytes
/// (`upstream::passed`): the HTTP/1 server copies its fields into the answer, and the HTTP/2
/// server has them put back into the header map first.
pub(crate) trait ServiceBody:
    Body<Data: Send, Error: Into<BoxError>> + Send + Unpin + 'static
{
    /// Takes the upstream head the body carries, if any.
    fn passed_head(&mut self) -> Option<PassedHead> {
        None
    }

    /// The upstream head the body carries, if any.
    fn peek_passed_head(&self) -> Option<&PassedHead> {
        None
    }

    /// A clock reading taken when the whole answer was at hand (head and body), if it was:
    /// the HTTP/1 server starts the connection's idle time from it instead of reading the
    /// clock again.
    fn complete_at(&self) -> Option<tokio::time::Instant> {
        None
    }
}

impl ServiceBody for crate::body::ProxyBody {
    fn passed_head(&mut self) -> Option<PassedHead> {
        match self {
            crate::body::ProxyBody::Upstream(up) => up.passed_head(),
            _ => None,
        }
    }

    fn peek_passed_head(&self) -> Option<&PassedHead> {
        match self {
            crate::body::ProxyBody::Upstream(up) => up.peek_passed_head(),
            _ => None,
        }
    }

    fn complete_at(&self) -> Option<tokio::time::Instant> {
        match self {
            crate::body::ProxyBody::Upstream(up) => up.arrived_whole_at(),
            _ => None,
        }
    }
}

#[cfg(test)]
impl ServiceBody for http_body_util::Full<bytes::Bytes> {}

/// A service as hyper's HTTP/2 server calls it: with hyper's request bodies.
struct ForH2<S, B>(S, std::marker::PhantomData<fn() -> B>);

impl<S: Service<B>, B: ServiceBody> hyper::service::Service<Request<Incoming>> for ForH2<S, B> {
    type Response = Response<B>;
    type Error = S::Error;
    /// Boxed: hyper spawns each stream's future as a task, wrapped in its own stream state, and
    /// the service future (kilobytes) would be copied with every move on the way into the task.
    type Future = Pin<Box<futures_util::future::MapOk<S::Future, fn(Response<B>) -> Response<B>>>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        use futures_util::TryFutureExt as _;
        // hyper's HTTP/2 server writes the header map: the upstream's fields go back into it.
        // The box is allocated first, so that the future is built in it.
        Box::into_pin(Box::write(
            Box::new_uninit(),
            self.0
                .call(req.map(ClientBody::Http2), None)
                .map_ok(crate::upstream::passed::restore::<B> as fn(_) -> _),
        ))
    }
}

/// Serves `io` until the connection ends, or gracefully once `stop` turns true, with what
/// `host` provides (parked connections are counted in its counter); `keep` is held until the
/// connection ends. Have the guard track answers before ([`Guarded::track_answers`]): the
/// HTTP/1 server reports every answer to it.
///
/// What a parked connection holds is this future and the guard, so everything else is boxed
/// and dropped while parked: the guard and the service are the only values kept across the
/// park (async fn arguments and locals in scope stay in the task for its whole life).
pub(crate) async fn serve<I, S, B, H>(
    mut io: Guarded<I>,
    svc: S,
    host: H,
    mut stop: watch::Receiver<bool>,
    keep: impl Send,
) -> io::Result<()>
where
    H: Host,
    I: Stream,
    S: Service<B>,
    B: ServiceBody,
{
    let _keep = keep;
    let (setup, counter, stop) = (host.setup(), host.connections(), &mut stop);
    let protocol = tokio::select! {
        biased;
        _ = stopped(stop) => return Ok(()),
        p = poll_fn(|cx| io.poll_protocol(cx)) => p,
    };
    match protocol {
        Ok(Protocol::Http2) => {
            // Boxed: an HTTP/2 connection's state is large, and the task of every connection
            // would otherwise keep room for it.
            let conn = setup
                .h2
                .serve_connection(TokioIo::new(io), ForH2(svc, std::marker::PhantomData));
            return Box::pin(crate::shared::serve_until_stopped(conn, stop))
                .await
                .map_err(io::Error::other);
        }
        Ok(Protocol::Http1) => {}
        Err(e) => {
            tracing::debug!(error = %e, "client connection failed before its first request");
            return Ok(());
        }
    }
    let park = match setup.park_after {
        Some(after) => io.park_after(after),
        None => ParkSignal::default(),
    };
    loop {
        // Boxed: the driver's buffers and the request in flight live on the heap, and go
        // while the connection is parked.
        match Box::pin(h1::serve(io, &svc, setup.h1, &park, stop)).await? {
            h1::Ended::Closed => return Ok(()),
            h1::Ended::Parked(back) => io = back,
        }
        park.clear();
        let _parked = counter.parked();
        let woken = tokio::select! {
            biased;
            _ = stopped(stop) => false,
            () = poll_fn(|cx| io.poll_wake(cx)) => true,
        };
        if !woken {
            // Stopping: a parked connection is idle, so it just closes.
            return Ok(());
        }
    }
}
