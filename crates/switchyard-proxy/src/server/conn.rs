//! Serving one guarded client connection with hyper: HTTP/2 or HTTP/1 as its first bytes say,
//! and an HTTP/1 connection parked while it is idle.
//!
//! Parking (see `framing::park`): after [`Hyper::park_after`] of idleness the guard raises its
//! signal; the driver asks hyper to finish (an idle hyper connection finishes at once and
//! writes nothing), takes the stream back and drops hyper's connection with its buffers, then
//! waits for the socket to become readable. Then it serves the stream with a new hyper
//! connection. A client sees one keep-alive connection throughout: nothing is written or
//! closed by parking, and the guard's keep-alive clock counts on across it.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use http_body::Body;
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper::service::HttpService;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;

use crate::body::BoxError;
use crate::framing::{Guarded, ParkSignal, Protocol, ReadReady};
use crate::shared::{ConnCounter, stopped};

/// How connections are served by hyper.
pub(crate) struct Hyper {
    /// HTTP/1 connections.
    pub(crate) h1: http1::Builder,
    /// HTTP/2 connections.
    pub(crate) h2: http2::Builder<TokioExecutor>,
    /// How long an idle HTTP/1 connection keeps hyper's buffers before it is parked; `None`
    /// never parks.
    pub(crate) park_after: Option<Duration>,
}

/// What serving a connection needs from its owner.
pub(crate) trait Host: Send + 'static {
    /// The hyper set-up.
    fn hyper(&self) -> &Hyper;
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
pub(crate) trait Service<B>:
    HttpService<Incoming, ResBody = B, Future: Send + 'static, Error: Into<BoxError>>
    + Unpin
    + Send
    + 'static
{
}

impl<S, B> Service<B> for S where
    S: HttpService<Incoming, ResBody = B, Future: Send + 'static, Error: Into<BoxError>>
        + Unpin
        + Send
        + 'static
{
}

/// A response body such a service answers with.
pub(crate) trait ServiceBody:
    Body<Data: Send, Error: Into<BoxError>> + Send + 'static
{
}

impl<B: Body<Data: Send, Error: Into<BoxError>> + Send + 'static> ServiceBody for B {}

/// How one HTTP/1 hyper connection ended.
enum Ended {
    /// The connection is over (the client left, a clock ran out, the proxy stops).
    Closed(Result<(), hyper::Error>),
    /// hyper finished because the connection was parked: the stream is still open.
    Parked,
}

/// Serves `io` until the connection ends, or gracefully once `stop` turns true, with what
/// `host` provides (parked connections are counted in its counter); `keep` is held until the
/// connection ends. Set up the guard's answer signal before: the service must report every
/// answer on it.
///
/// What a parked connection holds is this future and the guard, so everything else is boxed
/// and dropped while parked: the guard and the service are the only values kept across the
/// park (async fn arguments and locals in scope stay in the task for its whole life).
pub(crate) async fn serve<I, S, B, H>(
    mut io: Guarded<I>,
    mut svc: S,
    host: H,
    mut stop: watch::Receiver<bool>,
    keep: impl Send,
) -> Result<(), hyper::Error>
where
    H: Host,
    I: Stream,
    S: Service<B>,
    B: ServiceBody,
{
    let _keep = keep;
    let (hyper, counter, stop) = (host.hyper(), host.connections(), &mut stop);
    let protocol = tokio::select! {
        biased;
        _ = stopped(stop) => return Ok(()),
        p = poll_fn(|cx| io.poll_protocol(cx)) => p,
    };
    match protocol {
        Ok(Protocol::Http2) => {
            // Boxed: an HTTP/2 connection's state is large, and the task of every connection
            // would otherwise keep room for it.
            let conn = hyper.h2.serve_connection(TokioIo::new(io), svc);
            return Box::pin(crate::shared::serve_until_stopped(conn, stop)).await;
        }
        Ok(Protocol::Http1) => {}
        Err(e) => {
            tracing::debug!(error = %e, "client connection failed before its first request");
            return Ok(());
        }
    }
    let park = match hyper.park_after {
        Some(after) => io.park_after(after),
        None => ParkSignal::default(),
    };
    loop {
        match Box::pin(serve_until_parked(io, svc, &hyper.h1, &park, stop)).await {
            Ok(Some((back, service))) => {
                io = back;
                svc = service;
            }
            Ok(None) => return Ok(()),
            Err(e) => return Err(e),
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

/// Serves `io` with one hyper HTTP/1 connection until the connection ends (`None`), or until
/// hyper has finished because the guard asked for it to be parked: then the stream (with any
/// bytes hyper had read put back) and the service.
async fn serve_until_parked<I, S, B>(
    io: Guarded<I>,
    svc: S,
    h1: &http1::Builder,
    park: &ParkSignal,
    stop: &mut watch::Receiver<bool>,
) -> Result<Option<(Guarded<I>, S)>, hyper::Error>
where
    I: Stream,
    S: Service<B>,
    B: ServiceBody,
{
    let mut conn = h1.serve_connection(TokioIo::new(io), svc).with_upgrades();
    match drive(&mut conn, park, stop).await {
        Ended::Closed(r) => return r.map(|()| None),
        Ended::Parked => {}
    }
    // `None`: upgraded meanwhile (not possible while idle), and the tunnel has the stream.
    Ok(conn.into_parts().map(|parts| {
        let mut io = parts.io.into_inner();
        io.unread(&parts.read_buf);
        (io, parts.service)
    }))
}

/// Drives one hyper HTTP/1 connection until it ends, or until it has finished because the
/// guard asked for it to be parked. Once `stop` turns true it is asked to finish gracefully.
async fn drive<C>(conn: &mut C, park: &ParkSignal, stop: &mut watch::Receiver<bool>) -> Ended
where
    C: Future<Output = Result<(), hyper::Error>> + Unpin + Finish,
{
    let stopping = stopped(stop);
    tokio::pin!(stopping);
    let mut stop_seen = false;
    let mut parking = false;
    poll_fn(|cx| {
        loop {
            if !stop_seen && stopping.as_mut().poll(cx).is_ready() {
                stop_seen = true;
                conn.finish();
            }
            match Pin::new(&mut *conn).poll(cx) {
                Poll::Ready(_) if parking && !stop_seen => return Poll::Ready(Ended::Parked),
                Poll::Ready(r) => return Poll::Ready(Ended::Closed(r)),
                Poll::Pending if !parking && !stop_seen && park.wanted() => {
                    parking = true;
                    conn.finish();
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    })
    .await
}

/// A connection that can be asked to finish gracefully.
trait Finish {
    /// Asks it to finish: at once when idle, else after the exchange in flight.
    fn finish(&mut self);
}

impl<I, S, B> Finish for http1::UpgradeableConnection<I, S>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    S: HttpService<Incoming, ResBody = B>,
    S::Error: Into<BoxError>,
    B: Body + 'static,
    B::Error: Into<BoxError>,
{
    fn finish(&mut self) {
        Pin::new(self).graceful_shutdown();
    }
}
