//! Client listeners: accept loops and per-connection HTTP serving with graceful stop.
//!
//! Each accepted connection is served by hyper-util's auto builder (HTTP/1.1 with keep-alive,
//! or cleartext HTTP/2 with prior knowledge; over TLS, HTTP/2 or HTTP/1.1 as ALPN chose). The
//! same serving code runs over a TCP stream or a TLS stream. Nothing here ever closes a
//! connection because of a switch or a reload: connections only see the snapshot pointer
//! through the request path, and a TLS connection keeps the certificate it was opened with.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use switchyard_config::LimitsConfig;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::forward::{self, ConnInfo};
use crate::framing::Guarded;
use crate::observe::{self, RequestLog};
use crate::shared::Shared;
use crate::tls::{self, Tls};

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
    /// The hyper connection builder (limits, timers).
    pub(crate) builder: Arc<auto::Builder<TokioExecutor>>,
    /// Turns true when the proxy stops.
    pub(crate) stop: watch::Receiver<bool>,
}

/// Builds the connection builder for the client side from the limits.
pub(crate) fn builder(limits: &LimitsConfig) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .keep_alive(true)
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(head_limit(limits));
    b.http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .keep_alive_interval(Some(Duration::from_secs(30)));
    b
}

/// The largest request head hyper buffers (`max_buf_size`): the framing guard checks heads up to
/// the same size.
fn head_limit(limits: &LimitsConfig) -> usize {
    limits.max_header_bytes.max(8192)
}

/// Accepts connections on `listener` until `stop` turns true, serving each on its own task.
pub(crate) async fn serve_http(listener: TcpListener, ctx: ConnCtx, mode: Plain) {
    let mut stop = ctx.stop.clone();
    while let Some((stream, peer)) = accept(&listener, &mut stop).await {
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let shared = ctx.shared.clone();
            let _open = shared.connections.open();
            let info = ConnInfo::new(peer, "http");
            serve_connection(stream, info, mode, ctx).await;
        });
    }
    tracing::debug!("listener closed");
}

/// Accepts TLS connections on `listener` until `stop` turns true. Each connection's handshake
/// runs on its own task, bounded by `limits.header_timeout` (a stalled handshake is dropped),
/// then its requests are served as on a plain listener, with `X-Forwarded-Proto: https`.
pub(crate) async fn serve_https(listener: TcpListener, ctx: ConnCtx, tls: Tls) {
    let mut stop = ctx.stop.clone();
    while let Some((stream, peer)) = accept(&listener, &mut stop).await {
        let ctx = ctx.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let shared = ctx.shared.clone();
            let _open = shared.connections.open();
            let timeout = shared.snapshot.load().limits.header_timeout;
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
            serve_connection(stream, info, Plain::Forward, ctx).await;
        });
    }
    tracing::debug!("TLS listener closed");
}

/// The next connection, or `None` once `stop` turns true.
async fn accept(
    listener: &TcpListener,
    stop: &mut watch::Receiver<bool>,
) -> Option<(TcpStream, SocketAddr)> {
    loop {
        let accepted = tokio::select! {
            biased;
            _ = crate::shared::stopped(stop) => return None,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                return Some((stream, peer));
            }
            Err(e) => {
                // Out of file descriptors and the like: back off briefly instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Serves one client connection (TCP or TLS) until it ends, or gracefully once `stop` turns
/// true. Every HTTP/1 request head is checked by the framing guard before hyper parses it; each
/// answer is reported to the guard, so that a 101 lets the connection become a tunnel.
async fn serve_connection<I>(io: I, info: ConnInfo, mode: Plain, ctx: ConnCtx)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let ConnCtx {
        shared,
        builder,
        mut stop,
    } = ctx;
    let mut io = Guarded::new(io, head_limit(&shared.snapshot.load().limits));
    let answers = io.tunnel_signal();
    let peer = info.peer;
    let info = Arc::new(info);
    let svc = service_fn(move |req| {
        let shared = shared.clone();
        let answers = answers.clone();
        let info = info.clone();
        async move {
            let resp = match mode {
                Plain::Forward => forward::handle(shared, info, req).await,
                Plain::Redirect { https_port } => redirect(&shared, &info, &req, https_port),
            };
            answers.answered(resp.status());
            Ok::<_, Infallible>(resp)
        }
    });
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), svc);
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        _ = crate::shared::stopped(&mut stop) => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(client = %peer, error = %e, "client connection ended with an error");
    }
}

/// Answers a request on a redirecting http listener, and logs it like any other.
fn redirect<B>(
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
            client: info.peer,
            method: req.method(),
            path: req.uri().path(),
            status,
            service: None,
            pool: None,
            upstream: None,
            attempts: 0,
            bytes_in: None,
            bytes_out: Some(0),
            duration: started.elapsed(),
            request_id: req.headers().get(&crate::headers::X_REQUEST_ID),
            error: (status != 308).then_some("bad Host on a redirecting listener"),
        },
    );
    resp
}
