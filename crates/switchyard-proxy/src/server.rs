//! Client listeners: accept loops and per-connection HTTP serving with graceful stop.
//!
//! Each accepted connection is served as its first bytes say (`conn.rs`): HTTP/1.1 with
//! keep-alive by Switchyard's own HTTP/1 server (`h1.rs`), HTTP/2 (cleartext with prior
//! knowledge, or over TLS as ALPN chose) by hyper's. Idle HTTP/1 connections are parked (their
//! buffers freed while they wait for their next request). The same serving code runs over a
//! TCP stream or a TLS stream. Nothing here ever closes a connection because of a switch or a
//! reload: connections only see the snapshot pointer through the request path, and a TLS
//! connection keeps the certificate it was opened with.
//!
//! `[limits]` are applied here: HTTP/1 connections run behind the framing guard, which keeps
//! their header and keep-alive clocks and the head limits (see `framing`); `max_connections`
//! is a semaphore whose permit is taken before `accept()`, so connections over the limit wait
//! in the kernel's accept queue. A connection is served with the limits in force when it was
//! accepted; the number of connection slots is fixed at start.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use hyper::server::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use switchyard_config::LimitsConfig;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::Instant;

use crate::forward::{self, ConnInfo, Served};
use crate::framing::{self, Guarded, ReadReady};
use crate::observe::{self, RequestLog};
use crate::shared::Shared;
use crate::tls::{self, Tls};

pub(crate) mod conn;
pub(crate) mod h1;

/// How long an HTTP/1 keep-alive connection stays idle before it is parked: long enough that
/// a busy connection never is (a parked connection makes its buffers again for its next
/// request), short enough that idle ones soon stop holding them.
const PARK_AFTER: Duration = Duration::from_secs(1);

/// What a plain http listener does with the requests it receives.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Plain {
    /// Route and forward them.
    Forward,
    /// Answer each with a 308 to https on this port (`listen.redirect_https`).
    Redirect {
        /// The port of the first https listener.
        https_port: u16,
    },
}

/// What every connection task of a listener needs.
#[derive(Clone)]
pub(crate) struct ConnCtx {
    /// The snapshot pointer and live state.
    pub(crate) shared: Arc<Shared>,
    /// How connections are served (HTTP/1 and HTTP/2 set-up, guard limits) and the connection
    /// slots,
    /// shared by every client listener.
    pub(crate) builder: Arc<ConnBuilder>,
    /// Turns true when the proxy stops.
    pub(crate) stop: watch::Receiver<bool>,
}

/// Everything `[limits]` sets up for client connections.
pub(crate) struct ConnBuilder {
    /// The serving set-up for the limits in force; made again when a reload changes `[limits]`,
    /// for the connections accepted after it.
    serving: ArcSwap<Serving>,
    /// One permit per client connection that may be open (`max_connections`), taken before
    /// `accept()`. Fixed at start: a reload does not change it.
    slots: Arc<Semaphore>,
}

/// The serving set-up for one version of `[limits]`.
struct Serving {
    /// The limits it was made from.
    limits: LimitsConfig,
    /// How connections are served.
    setup: conn::Setup,
    /// What the framing guard enforces (the same head limits as the HTTP/1 server's).
    guard: framing::Limits,
}

/// Sets up client connections for `limits`.
pub(crate) fn builder(limits: &LimitsConfig) -> ConnBuilder {
    let slots = limits.max_connections.clamp(1, Semaphore::MAX_PERMITS);
    ConnBuilder {
        serving: ArcSwap::from_pointee(Serving::new(limits)),
        slots: Arc::new(Semaphore::new(slots)),
    }
}

impl ConnBuilder {
    /// The serving set-up for the limits of the snapshot in force.
    fn serving(&self, shared: &Shared) -> Arc<Serving> {
        let current = self.serving.load_full();
        let snapshot = shared.snapshot.load();
        if current.limits == snapshot.limits {
            return current;
        }
        let next = Arc::new(Serving::new(&snapshot.limits));
        self.serving.store(next.clone());
        next
    }
}

impl Serving {
    fn new(limits: &LimitsConfig) -> Self {
        let guard = framing::Limits {
            max_head_bytes: limits.max_header_bytes,
            max_headers: limits.max_headers,
            header_timeout: limits.header_timeout,
            keepalive_timeout: limits.keepalive_timeout,
        };
        let h1 = h1::Options {
            max_buf: guard.read_buf_limit(),
            max_headers: limits.max_headers,
        };
        let mut h2 = http2::Builder::new(TokioExecutor::new());
        h2.timer(TokioTimer::new())
            // Twice the limit, so that a long :path reaches the service, which answers 414 (and
            // a header list over the limit 431) itself: `forward::prepare`.
            .max_header_list_size(
                u32::try_from(limits.max_header_bytes.saturating_mul(2)).unwrap_or(u32::MAX),
            )
            .keep_alive_interval(Some(Duration::from_secs(30)));
        Serving {
            limits: limits.clone(),
            setup: conn::Setup {
                h1,
                h2,
                park_after: Some(PARK_AFTER),
            },
            guard,
        }
    }
}

/// Accepts connections on `listener` until `stop` turns true, serving each on its own task.
pub(crate) async fn serve_http(listener: TcpListener, ctx: ConnCtx, mode: Plain) {
    let mut stop = ctx.stop.clone();
    while let Some((stream, peer, slot)) = accept(&listener, &ctx.builder.slots, &mut stop).await {
        let ctx = ctx.clone();
        let open = crate::shared::ConnCounter::open(&ctx.shared);
        let info = ConnInfo::new(peer, "http");
        tokio::spawn(serve_connection(stream, info, mode, ctx, (slot, open)));
    }
    tracing::debug!("listener closed");
}

/// Accepts TLS connections on `listener` until `stop` turns true. Each connection's handshake
/// runs on its own task, bounded by `limits.header_timeout` (a stalled handshake is dropped),
/// then its requests are served as on a plain listener, with `X-Forwarded-Proto: https`.
pub(crate) async fn serve_https(listener: TcpListener, ctx: ConnCtx, tls: Tls) {
    let mut stop = ctx.stop.clone();
    while let Some((stream, peer, slot)) = accept(&listener, &ctx.builder.slots, &mut stop).await {
        let ctx = ctx.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let open = crate::shared::ConnCounter::open(&ctx.shared);
            let timeout = ctx.shared.snapshot.load().limits.header_timeout;
            let mut stop = ctx.stop.clone();
            let handshake = tokio::select! {
                h = tls.accept(stream, timeout) => h,
                _ = crate::shared::stopped(&mut stop) => return,
            };
            let stream = match handshake {
                Ok(s) => s,
                Err(e) => {
                    tracing::debug!(client = %peer, error = %e, "TLS connection dropped");
                    return;
                }
            };
            let info = ConnInfo::new(peer, "https");
            serve_connection(stream, info, Plain::Forward, ctx, (slot, open)).await;
        });
    }
    tracing::debug!("TLS listener closed");
}

/// The next connection with the connection slot it holds, or `None` once `stop` turns true.
///
/// The slot is taken before `accept()`: while every slot is in use, new connections wait in
/// the kernel's accept queue. A listener waiting for its next connection holds a slot for it.
async fn accept(
    listener: &TcpListener,
    slots: &Arc<Semaphore>,
    stop: &mut watch::Receiver<bool>,
) -> Option<(TcpStream, SocketAddr, OwnedSemaphorePermit)> {
    let mut backoff = crate::shared::AcceptBackoff::default();
    loop {
        let slot = tokio::select! {
            biased;
            _ = crate::shared::stopped(stop) => return None,
            s = slots.clone().acquire_owned() => s.ok()?,
        };
        let accepted = tokio::select! {
            biased;
            _ = crate::shared::stopped(stop) => return None,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((stream, peer)) => {
                backoff.succeeded();
                let _ = stream.set_nodelay(true);
                return Some((stream, peer, slot));
            }
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                drop(slot);
                backoff.failed("client", &e).await;
            }
        }
    }
}

/// Serves one client connection (TCP or TLS) until it ends, or gracefully once `stop` turns
/// true; `keep` (its connection slot and place in the open count) is held until then. Every
/// HTTP/1 request head is checked by the framing guard before the HTTP/1 server parses it;
/// the HTTP/1 server reports each answer to the guard, so that a 101 lets the connection
/// become a tunnel and the keep-alive clock starts when an answer is complete.
///
/// Not an `async fn`: the returned future is `conn::serve`'s own, so that a connection's task
/// holds the guard and the service once (an idle connection is mostly this task).
fn serve_connection<I>(
    io: I,
    info: ConnInfo,
    mode: Plain,
    ctx: ConnCtx,
    keep: impl Send + 'static,
) -> impl std::future::Future<Output = ()> + Send + 'static
where
    I: AsyncRead + AsyncWrite + ReadReady + Unpin + Send + 'static,
{
    use futures_util::FutureExt as _;
    let ConnCtx {
        shared,
        builder,
        stop,
    } = ctx;
    let serving = builder.serving(&shared);
    let peer = info.peer;
    let host = Host {
        serving: serving.clone(),
        shared: shared.clone(),
    };
    let mut io = Guarded::new(io, serving.guard).with_send_timeout(serving.limits.send_timeout);
    io.track_answers();
    let served = Arc::new(Served {
        shared,
        info,
        redirect_to: match mode {
            Plain::Forward => None,
            Plain::Redirect { https_port } => Some(https_port),
        },
    });
    // The service future is `forward::handle`'s own (not boxed here: the HTTP/1 driver and
    // the HTTP/2 side, `conn::ForH2`, each box it once per request).
    let svc = conn::RawFn(move |req, raw| forward::handle(served.clone(), req, raw));
    conn::serve(io, svc, host, stop, keep).map(move |r| {
        if let Err(e) = r {
            tracing::debug!(client = %peer, error = %e, "client connection ended with an error");
        }
    })
}

/// What `conn::serve` needs from the proxy.
struct Host {
    /// The serving set-up the connection was accepted with.
    serving: Arc<Serving>,
    /// For the parked-connections count.
    shared: Arc<Shared>,
}

impl conn::Host for Host {
    fn setup(&self) -> &conn::Setup {
        &self.serving.setup
    }

    fn connections(&self) -> &crate::shared::ConnCounter {
        &self.shared.connections
    }
}

/// Answers a request on a redirecting http listener, and logs it like any other.
pub(crate) fn redirect<B>(
    shared: &Shared,
    info: &ConnInfo,
    req: &http::Request<B>,
    https_port: u16,
) -> http::Response<crate::body::ProxyBody> {
    let started = Instant::now();
    let resp = tls::redirect(req, https_port);
    let status = resp.status().as_u16();
    observe::request_done(
        shared,
        &RequestLog {
            client: &info.peer_text,
            method: req.method(),
            version: req.version(),
            path: req.uri().path(),
            query: req.uri().query(),
            status,
            service: None,
            pool: None,
            upstream: None,
            attempts: 0,
            bytes_in: None,
            bytes_out: Some(0),
            duration: started.elapsed(),
            at: std::time::Instant::now(),
            request_id: req
                .headers()
                .get(&crate::headers::X_REQUEST_ID)
                .and_then(|v| v.to_str().ok()),
            error: (status != 308).then_some("bad Host on a redirecting listener"),
            referer: req
                .headers()
                .get(http::header::REFERER)
                .map(|v| v.as_bytes()),
            user_agent: req
                .headers()
                .get(http::header::USER_AGENT)
                .map(|v| v.as_bytes()),
        },
    );
    resp
}
