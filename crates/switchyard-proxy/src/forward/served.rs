//! What the requests of one client connection share.

use std::net::SocketAddr;
use std::sync::Arc;

use http::HeaderValue;

use crate::shared::Shared;

/// Facts about the client connection a request arrived on.
#[derive(Debug, Clone)]
pub(crate) struct ConnInfo {
    /// The client's address.
    pub(crate) peer: SocketAddr,
    /// `http` or `https`, for `X-Forwarded-Proto`.
    pub(crate) proto: &'static str,
    /// The client's IP as a header value, formatted once per connection for `X-Forwarded-For`.
    pub(crate) client_ip: HeaderValue,
    /// The client's address as text, formatted once per connection for the access log.
    pub(crate) peer_text: Box<str>,
}

impl ConnInfo {
    /// The facts about a connection from `peer` on a listener speaking `proto`.
    pub(crate) fn new(peer: SocketAddr, proto: &'static str) -> Self {
        let client_ip = HeaderValue::try_from(peer.ip().to_string())
            .unwrap_or(HeaderValue::from_static("unknown"));
        ConnInfo {
            peer,
            proto,
            client_ip,
            peer_text: peer.to_string().into_boxed_str(),
        }
    }
}

/// What every request of a connection reads, behind one reference count: a request takes one
/// reference, not one for each part.
pub(crate) struct Served {
    /// The proxy's state.
    pub(crate) shared: Arc<Shared>,
    /// The connection's facts.
    pub(crate) info: ConnInfo,
    /// A redirecting http listener's https port: its requests are answered with a redirect
    /// there (`listen.redirect_https`).
    pub(crate) redirect_to: Option<u16>,
}
