//! `KeepAliveClient`: HTTP/1.1 requests over exactly one TCP connection, so a test knows
//! whether *that* connection survived (a switch must close none).

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::header::HOST;
use http::{Method, Request};
use http_body_util::Full;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{ClientError, DEFAULT_TIMEOUT, Resp, collect, connect_tcp};
use crate::wait::within;

/// One keep-alive HTTP/1.1 connection; requests on it go one after another.
///
/// Dropping the client closes its connection at once.
#[derive(Debug)]
pub struct KeepAliveClient {
    /// Sends requests on the one connection.
    sender: SendRequest<Full<Bytes>>,
    /// Turns true when the connection task has ended (closed by either side, or broken).
    closed: watch::Receiver<bool>,
    /// The task driving the connection; aborted on drop.
    driver: JoinHandle<()>,
    /// Our end of the connection, to tell it apart in server-side logs.
    local_addr: SocketAddr,
    /// Requests sent on this connection so far.
    sent: u64,
    /// Bound on each whole request (wall clock); `None` waits for ever.
    timeout: Option<Duration>,
}

impl KeepAliveClient {
    /// Connects to `addr`; panics if the connect or handshake fails.
    pub async fn connect(addr: SocketAddr) -> KeepAliveClient {
        match Self::try_connect(addr).await {
            Ok(client) => client,
            Err(e) => panic!("keep-alive client: {e}"),
        }
    }

    /// Connects to `addr`, or says why it could not.
    pub async fn try_connect(addr: SocketAddr) -> Result<KeepAliveClient, ClientError> {
        let stream = connect_tcp(addr).await?;
        let local_addr = stream
            .local_addr()
            .map_err(|source| ClientError::Connect { addr, source })?;
        let (sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
        let (closed_tx, closed) = watch::channel(false);
        let driver = tokio::spawn(async move {
            let _ = conn.await;
            let _ = closed_tx.send(true);
        });
        Ok(KeepAliveClient {
            sender,
            closed,
            driver,
            local_addr,
            sent: 0,
            timeout: Some(DEFAULT_TIMEOUT),
        })
    }

    /// `GET path` with `Host: host`.
    pub async fn get(&mut self, path: &str, host: &str) -> Result<Resp, ClientError> {
        let req = Request::get(path)
            .header(HOST, host)
            .body(Full::new(Bytes::new()))?;
        self.request(req).await
    }

    /// `POST path` with `Host: host` and `body`.
    pub async fn post(
        &mut self,
        path: &str,
        host: &str,
        body: impl Into<Bytes>,
    ) -> Result<Resp, ClientError> {
        let req = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(HOST, host)
            .body(Full::new(body.into()))?;
        self.request(req).await
    }

    /// Sends `req` as it is (add the `Host` header yourself) and collects the response.
    pub async fn request(&mut self, req: Request<Full<Bytes>>) -> Result<Resp, ClientError> {
        self.sent += 1;
        let exchange = async {
            self.sender.ready().await?;
            let resp = self.sender.send_request(req).await?;
            collect(resp).await
        };
        match self.timeout {
            Some(timeout) => within(timeout, exchange)
                .await
                .unwrap_or(Err(ClientError::Timeout(timeout))),
            None => exchange.await,
        }
    }

    /// Whether the connection has ended (closed by the server, reset, or broken).
    pub fn is_closed(&self) -> bool {
        *self.closed.borrow()
    }

    /// Resolves once the connection has ended; bound it with [`crate::wait::within`].
    pub async fn closed(&self) {
        let mut closed = self.closed.clone();
        let _ = closed.wait_for(|closed| *closed).await;
    }

    /// Requests sent on this connection so far (failed ones included).
    pub fn requests_sent(&self) -> u64 {
        self.sent
    }

    /// The client's end of the connection.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Sets the wall-clock bound on each request; `None` waits for ever.
    pub fn set_timeout(&mut self, timeout: Option<Duration>) {
        self.timeout = timeout;
    }
}

impl Drop for KeepAliveClient {
    fn drop(&mut self) {
        self.driver.abort();
    }
}
