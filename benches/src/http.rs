//! A one-shot HTTP/1.1 client for the control calls of a run: admin API flips, readiness
//! polls (over TLS too) and status reads. Not on the measured path.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use http::{HeaderValue, Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::tls::TlsClient;

/// An answer: its status and whole body.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The status code.
    pub status: StatusCode,
    /// The body, read to the end.
    pub body: Bytes,
}

/// Sends one request on a fresh connection and reads the whole answer, within `timeout`.
pub async fn request(
    addr: SocketAddr,
    method: Method,
    path: &str,
    bearer: Option<&str>,
    body: Option<String>,
    timeout: Duration,
) -> anyhow::Result<Answer> {
    let exchange = async {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("cannot connect to {addr}"))?;
        request_on(stream, addr, method, path, bearer, body).await
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .with_context(|| format!("no answer from {addr}{path} within {timeout:?}"))?
}

/// `GET path` over TLS on a fresh connection, within `timeout`.
pub async fn get_tls(
    addr: SocketAddr,
    tls: &TlsClient,
    path: &str,
    timeout: Duration,
) -> anyhow::Result<Answer> {
    let exchange = async {
        let stream = tls.connect(addr).await?;
        request_on(stream, addr, Method::GET, path, None, None).await
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .with_context(|| format!("no answer from https://{addr}{path} within {timeout:?}"))?
}

async fn request_on<T>(
    stream: T,
    addr: SocketAddr,
    method: Method,
    path: &str,
    bearer: Option<&str>,
    body: Option<String>,
) -> anyhow::Result<Answer>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    let driver = tokio::spawn(conn);
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, addr.to_string());
    if let Some(token) = bearer {
        req = req.header(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {token}"))?,
        );
    }
    if body.is_some() {
        req = req.header(header::CONTENT_TYPE, "application/json");
    }
    let req = req.body(Full::new(Bytes::from(body.unwrap_or_default())))?;
    let resp = sender.send_request(req).await?;
    let status = resp.status();
    let body = resp.into_body().collect().await?.to_bytes();
    driver.abort();
    Ok(Answer { status, body })
}

/// Polls `GET path` on `addr` until it answers 2xx, at most `limit`; `alive` is asked before
/// every try so a child that died is reported at once instead of after the limit.
pub async fn wait_ready(
    addr: SocketAddr,
    path: &str,
    limit: Duration,
    alive: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    wait_ready_over(addr, None, path, limit, alive).await
}

/// [`wait_ready`] over TLS when `tls` is given.
pub async fn wait_ready_over(
    addr: SocketAddr,
    tls: Option<&TlsClient>,
    path: &str,
    limit: Duration,
    mut alive: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut last = String::new();
    let once = Duration::from_secs(1);
    while started.elapsed() < limit {
        alive()?;
        let answer = match tls {
            Some(tls) => get_tls(addr, tls, path, once).await,
            None => request(addr, Method::GET, path, None, None, once).await,
        };
        match answer {
            Ok(a) if a.status.is_success() => return Ok(()),
            Ok(a) => last = format!("status {}", a.status),
            Err(e) => last = format!("{e:#}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bail!("{addr}{path} not ready after {limit:?} (last: {last})")
}
