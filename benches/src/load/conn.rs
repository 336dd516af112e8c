//! One load connection: HTTP/1.1 (one per worker, one request at a time) or HTTP/2 (shared by
//! `--streams` workers), each over plain TCP or TLS (HTTP/2 over TCP is prior knowledge, over
//! TLS it is chosen by ALPN). A connection is opened once and kept alive: over TLS that is one
//! handshake per connection, not per request. A connection found closed is reopened and
//! counted; a request the server never saw (a stale kept-alive connection) is sent again on
//! the new connection, as any HTTP client would, and is not a failure.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::record::{Outcome, Recorder};
use crate::tls::TlsClient;

/// The request body type of the load generator.
pub type ReqBody = Full<Bytes>;

/// The sending half of an HTTP/2 connection.
pub type H2Sender = http2::SendRequest<ReqBody>;

/// The HTTP/2 connection several workers share, with a generation so that only the first
/// worker to see it broken replaces it.
#[derive(Debug, Default)]
pub struct H2Shared {
    slot: tokio::sync::Mutex<Option<(u64, H2Sender)>>,
    next_gen: AtomicU64,
}

/// Where and how to open a connection: the address, and TLS or not.
#[derive(Debug, Clone)]
pub struct Dial {
    /// Where to connect.
    pub addr: SocketAddr,
    /// TLS on top of TCP (its ALPN must match the protocol spoken inside), or plain TCP.
    pub tls: Option<TlsClient>,
}

impl Dial {
    /// Plain TCP to `addr`.
    pub fn plain(addr: SocketAddr) -> Dial {
        Dial { addr, tls: None }
    }

    /// Opens an HTTP/1.1 connection (TCP, then TLS if any); its driver runs on its own task.
    pub async fn h1(&self) -> anyhow::Result<http1::SendRequest<ReqBody>> {
        let tcp = tcp(self.addr).await?;
        match &self.tls {
            Some(tls) => h1_over(handshake(tls, tcp).await?).await,
            None => h1_over(tcp).await,
        }
    }

    /// Opens an HTTP/2 connection (TCP, then TLS if any); its driver runs on its own task.
    pub async fn h2(&self) -> anyhow::Result<H2Sender> {
        let tcp = tcp(self.addr).await?;
        match &self.tls {
            Some(tls) => h2_over(handshake(tls, tcp).await?).await,
            None => h2_over(tcp).await,
        }
    }
}

/// A worker's view of its connection.
#[derive(Debug)]
pub enum Conn {
    /// HTTP/1.1: the worker owns the connection.
    H1 {
        /// Where to connect.
        dial: Dial,
        /// The open connection, if any.
        sender: Option<http1::SendRequest<ReqBody>>,
    },
    /// HTTP/2: the worker uses a clone of the shared connection's sender.
    H2 {
        /// Where to connect.
        dial: Dial,
        /// The connection shared with the other streams.
        shared: Arc<H2Shared>,
        /// This worker's clone, with the generation it came from.
        cached: Option<(u64, H2Sender)>,
    },
}

/// How long opening a connection may take before it counts as a connect failure.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Attempts for one request whose earlier attempts were never sent (stale connections).
const UNSENT_ATTEMPTS: usize = 3;

impl Conn {
    /// An HTTP/1.1 connection, opened on first use.
    pub fn h1(dial: Dial) -> Conn {
        Conn::H1 { dial, sender: None }
    }

    /// A worker's handle on the shared HTTP/2 connection.
    pub fn h2(dial: Dial, shared: Arc<H2Shared>) -> Conn {
        Conn::H2 {
            dial,
            shared,
            cached: None,
        }
    }

    /// Sends `req` and returns the response head; a failure is `Connect` or `Closed`.
    pub async fn send(
        &mut self,
        mut req: Request<ReqBody>,
        rec: &mut Recorder,
    ) -> Result<Response<Incoming>, Outcome> {
        for _ in 0..UNSENT_ATTEMPTS {
            let sent = match self {
                Conn::H1 { dial, sender } => {
                    if let Some(s) = sender {
                        if s.is_closed() || s.ready().await.is_err() {
                            *sender = None;
                            rec.conns_closed_by_server += 1;
                        }
                    }
                    let s = match sender {
                        Some(s) => s,
                        None => {
                            let s = dial.h1().await.map_err(|_| Outcome::Connect)?;
                            rec.conns_opened += 1;
                            sender.insert(s)
                        }
                    };
                    let sent = s.try_send_request(req).await;
                    if sent.is_err() {
                        *sender = None;
                    }
                    sent
                }
                Conn::H2 {
                    dial,
                    shared,
                    cached,
                } => {
                    let mut broken = None;
                    if let Some((g, s)) = cached {
                        if s.is_closed() || s.ready().await.is_err() {
                            broken = Some(*g);
                        }
                    }
                    if broken.is_some() || cached.is_none() {
                        *cached = None;
                        let fresh = h2_sender(dial, shared, broken, rec).await?;
                        *cached = Some(fresh);
                    }
                    let Some((_, s)) = cached.as_mut() else {
                        return Err(Outcome::Connect);
                    };
                    s.try_send_request(req).await
                }
            };
            match sent {
                Ok(resp) => return Ok(resp),
                Err(mut e) => match e.take_message() {
                    Some(back) => {
                        // Never written: the server had closed the kept-alive connection.
                        if let Conn::H1 { .. } = self {
                            rec.conns_closed_by_server += 1;
                        }
                        req = back;
                    }
                    None => {
                        if let Conn::H1 { .. } = self {
                            rec.conns_closed_by_server += 1;
                        }
                        return Err(Outcome::Closed);
                    }
                },
            }
        }
        Err(Outcome::Closed)
    }

    /// Forgets the connection after a request timed out on it (our decision, not counted as
    /// closed by the server). An HTTP/2 connection is kept: only the stream was abandoned.
    pub fn abandon(&mut self) {
        if let Conn::H1 { sender, .. } = self {
            *sender = None;
        }
    }

    /// Marks the connection broken after its response body failed.
    pub fn broken(&mut self, rec: &mut Recorder) {
        if let Conn::H1 { sender, .. } = self {
            if sender.take().is_some() {
                rec.conns_closed_by_server += 1;
            }
        }
    }
}

/// The shared HTTP/2 sender, opening a new connection when there is none or the one there is
/// the generation `broken` this worker saw fail.
async fn h2_sender(
    dial: &Dial,
    shared: &H2Shared,
    broken: Option<u64>,
    rec: &mut Recorder,
) -> Result<(u64, H2Sender), Outcome> {
    let mut slot = shared.slot.lock().await;
    if let Some((g, s)) = slot.as_ref() {
        if Some(*g) != broken && !s.is_closed() {
            return Ok((*g, s.clone()));
        }
        rec.conns_closed_by_server += 1;
    }
    let s = dial.h2().await.map_err(|_| Outcome::Connect)?;
    rec.conns_opened += 1;
    let g = shared.next_gen.fetch_add(1, Ordering::Relaxed);
    *slot = Some((g, s.clone()));
    Ok((g, s))
}

async fn tcp(addr: SocketAddr) -> anyhow::Result<TcpStream> {
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await??;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// The TLS handshake on `tcp`, within the connect timeout.
async fn handshake(
    tls: &TlsClient,
    tcp: TcpStream,
) -> anyhow::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    tokio::time::timeout(CONNECT_TIMEOUT, tls.handshake(tcp)).await?
}

/// An HTTP/1.1 connection over `io`; its driver runs on its own task.
async fn h1_over<T>(io: T) -> anyhow::Result<http1::SendRequest<ReqBody>>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = http1::handshake(TokioIo::new(io)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// An HTTP/2 connection over `io`; its driver runs on its own task.
async fn h2_over<T>(io: T) -> anyhow::Result<H2Sender>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = http2::Builder::new(TokioExecutor::new())
        .handshake(TokioIo::new(io))
        .await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}
