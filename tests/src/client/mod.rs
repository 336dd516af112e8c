//! Clients for tests: a keep-alive HTTP/1.1 client on exactly one TCP connection, an h2c
//! client with prior knowledge, and raw bytes over a fresh socket for malformed requests.
//!
//! Each request is bounded by a wall-clock timeout (see [`crate::wait`]), so a test that
//! expects an answer fails instead of hanging when none comes.

mod h2;
mod keepalive;
mod raw;

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, StatusCode, Version};

pub use h2::Http2Client;
pub use keepalive::KeepAliveClient;
pub use raw::{RAW_TIMEOUT, raw_request, raw_request_timeout, raw_status};

/// How long a client waits for a whole response unless told otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a test client's request did not produce a response.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The TCP connect failed (refused, for example, after the server was killed).
    #[error("connect to {addr}: {source}")]
    Connect {
        /// Where the client tried to connect.
        addr: SocketAddr,
        /// What the OS said.
        source: io::Error,
    },
    /// The HTTP exchange failed: the connection closed mid-request, a protocol error...
    #[error("http: {0}")]
    Http(#[from] hyper::Error),
    /// The request could not be built (a bad path or host).
    #[error("bad request: {0}")]
    Build(#[from] http::Error),
    /// No complete response within the client's timeout.
    #[error("no complete response within {0:?}")]
    Timeout(Duration),
}

impl ClientError {
    /// Whether the connect was refused (nothing listens on the port).
    pub fn is_refused(&self) -> bool {
        matches!(self, Self::Connect { source, .. } if source.kind() == io::ErrorKind::ConnectionRefused)
    }

    /// Whether the connection closed or was reset before a complete response arrived.
    pub fn is_connection_closed(&self) -> bool {
        match self {
            Self::Http(e) => {
                e.is_incomplete_message()
                    || e.is_closed()
                    || e.is_canceled()
                    || std::error::Error::source(e)
                        .and_then(|s| s.downcast_ref::<io::Error>())
                        .is_some()
            }
            _ => false,
        }
    }
}

/// A complete response: status, headers and the collected body.
#[derive(Debug, Clone)]
pub struct Resp {
    /// The status code.
    pub status: StatusCode,
    /// The HTTP version the response came with.
    pub version: Version,
    /// The response headers.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
}

impl Resp {
    /// The body as text (lossy UTF-8).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The first value of header `name`, if present and valid UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The `x-colour` header: which test app answered.
    pub fn colour(&self) -> Option<&str> {
        self.header("x-colour")
    }

    /// The body parsed as JSON; panics if it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("response body is not JSON ({e}): {}", self.text()))
    }
}

/// Collects a hyper response into a [`Resp`].
async fn collect(resp: http::Response<hyper::body::Incoming>) -> Result<Resp, ClientError> {
    use http_body_util::BodyExt;
    let (parts, body) = resp.into_parts();
    let body = body.collect().await?.to_bytes();
    Ok(Resp {
        status: parts.status,
        version: parts.version,
        headers: parts.headers,
        body,
    })
}

/// Connects a TCP stream with `TCP_NODELAY`.
async fn connect_tcp(addr: SocketAddr) -> Result<tokio::net::TcpStream, ClientError> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|source| ClientError::Connect { addr, source })?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

#[cfg(test)]
mod tests;
