//! `Http2Client`: h2c (HTTP/2 over cleartext TCP with prior knowledge) on one connection,
//! cloneable so several requests can be in flight at once on it.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::Full;
use hyper::client::conn::http2::{self, SendRequest};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::sync::watch;

use super::{ClientError, DEFAULT_TIMEOUT, Resp, collect, connect_tcp};
use crate::wait::within;

/// One HTTP/2 connection with prior knowledge; clones share it (each clone is a new stream
/// sender), so concurrent requests multiplex on the same TCP connection.
#[derive(Debug, Clone)]
pub struct Http2Client {
    /// Opens streams on the one connection.
    sender: SendRequest<Full<Bytes>>,
    /// Turns true when the connection task has ended.
    closed: watch::Receiver<bool>,
    /// Bound on each whole request (wall clock); `None` waits for ever.
    timeout: Option<Duration>,
}

impl Http2Client {
    /// Connects to `addr` and does the h2 handshake; panics if either fails.
    pub async fn connect(addr: SocketAddr) -> Http2Client {
        match Self::try_connect(addr).await {
            Ok(client) => client,
            Err(e) => panic!("h2c client: {e}"),
        }
    }

    /// Connects to `addr` and does the h2 handshake, or says why it could not.
    pub async fn try_connect(addr: SocketAddr) -> Result<Http2Client, ClientError> {
        let stream = connect_tcp(addr).await?;
        let (sender, conn) = http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await?;
        let (closed_tx, closed) = watch::channel(false);
        tokio::spawn(async move {
            let _ = conn.await;
            let _ = closed_tx.send(true);
        });
        Ok(Http2Client {
            sender,
            closed,
            timeout: Some(DEFAULT_TIMEOUT),
        })
    }

    /// `GET http://{authority}{path}` (the authority becomes `:authority`).
    pub async fn get(&self, path: &str, authority: &str) -> Result<Resp, ClientError> {
        let req =
            Request::get(format!("http://{authority}{path}")).body(Full::new(Bytes::new()))?;
        self.request(req).await
    }

    /// `POST http://{authority}{path}` with `body`.
    pub async fn post(
        &self,
        path: &str,
        authority: &str,
        body: impl Into<Bytes>,
    ) -> Result<Resp, ClientError> {
        let req = Request::builder()
            .method(Method::POST)
            .uri(format!("http://{authority}{path}"))
            .body(Full::new(body.into()))?;
        self.request(req).await
    }

    /// Sends `req` (its URI must be absolute: h2 takes `:scheme` and `:authority` from it).
    pub async fn request(&self, req: Request<Full<Bytes>>) -> Result<Resp, ClientError> {
        let mut sender = self.sender.clone();
        let exchange = async move {
            sender.ready().await?;
            let resp = sender.send_request(req).await?;
            collect(resp).await
        };
        match self.timeout {
            Some(timeout) => within(timeout, exchange)
                .await
                .unwrap_or(Err(ClientError::Timeout(timeout))),
            None => exchange.await,
        }
    }

    /// Whether the connection has ended.
    pub fn is_closed(&self) -> bool {
        *self.closed.borrow()
    }

    /// Sets the wall-clock bound on each request made through this handle.
    pub fn set_timeout(&mut self, timeout: Option<Duration>) {
        self.timeout = timeout;
    }
}
