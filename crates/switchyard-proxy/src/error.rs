//! The proxy's own error answers: one type, one mapping to status codes and short bodies.

use http::{HeaderValue, Response, StatusCode, header};
use switchyard_core::retry::FailureKind;

use crate::body::ProxyBody;
use crate::headers::{HostError, X_REQUEST_ID};

/// Why the proxy answered a request itself instead of forwarding an upstream response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    /// The request's Host is missing, duplicated, malformed or contradicts its target.
    #[error("bad request: {0}")]
    BadHost(#[from] HostError),
    /// No service matches the request's host and path.
    #[error("no service for this host and path")]
    NoRoute,
    /// The request body is larger than `limits.max_body`.
    #[error("request body too large")]
    BodyTooLarge,
    /// The client's body could not be read.
    #[error("could not read the request body")]
    BadBody,
    /// The client sent nothing of its body for `limits.body_timeout`.
    #[error("the client sent nothing of its body for body_timeout")]
    BodyTimeout,
    /// The client broke off its request body while it was being sent upstream (it went away,
    /// or its framing broke mid-body). Never counted against the server, never retried;
    /// logged with nginx's 499.
    #[error("the client broke off the request body")]
    ClientAborted,
    /// A request form the proxy does not forward: `CONNECT` (405), an asterisk-form target
    /// with a method other than `OPTIONS` (400).
    #[error("{1}")]
    Refused(StatusCode, &'static str),
    /// Every server of the pool is down and the service is set to fail fast.
    #[error("no healthy upstream server in pool {pool}")]
    NoHealthyServer {
        /// The pool that had nobody.
        pool: String,
    },
    /// The last attempt failed and no retry was allowed.
    #[error("upstream failed: {}", .kind.reason())]
    Upstream {
        /// What the last attempt ran into.
        kind: FailureKind,
    },
}

impl ProxyError {
    /// The status code this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::BadHost(_) | ProxyError::BadBody | ProxyError::ClientAborted => {
                StatusCode::BAD_REQUEST
            }
            ProxyError::Refused(status, _) => *status,
            ProxyError::NoRoute => StatusCode::NOT_FOUND,
            ProxyError::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ProxyError::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            ProxyError::NoHealthyServer { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::Upstream {
                kind: FailureKind::ResponseTimeout | FailureKind::ConnectTimeout,
            } => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::Upstream { .. } => StatusCode::BAD_GATEWAY,
        }
    }

    /// True when the client connection should be closed after the answer (its framing is
    /// suspect).
    pub fn closes_connection(&self) -> bool {
        matches!(
            self,
            ProxyError::BadHost(_)
                | ProxyError::BadBody
                | ProxyError::BodyTooLarge
                | ProxyError::BodyTimeout
                | ProxyError::ClientAborted
        )
    }

    /// The status the access log records: the one sent, except 499 for a client that broke
    /// off its request (as nginx logs it).
    pub fn log_status(&self) -> u16 {
        match self {
            ProxyError::ClientAborted => 499,
            e => e.status().as_u16(),
        }
    }

    /// The plain-text answer.
    pub fn response(&self, request_id: Option<&HeaderValue>) -> Response<ProxyBody> {
        let status = self.status();
        let mut body = String::with_capacity(64);
        body.push_str(status.canonical_reason().unwrap_or("error"));
        body.push_str(": ");
        body.push_str(&self.to_string());
        body.push('\n');
        let mut resp = Response::new(ProxyBody::full(body));
        *resp.status_mut() = status;
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        if let Some(id) = request_id {
            h.insert(X_REQUEST_ID.clone(), id.clone());
        }
        if self.closes_connection() {
            h.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        assert_eq!(ProxyError::BadHost(HostError::Missing).status(), 400);
        assert_eq!(ProxyError::NoRoute.status(), 404);
        assert_eq!(ProxyError::BodyTooLarge.status(), 413);
        assert_eq!(
            ProxyError::NoHealthyServer { pool: "g".into() }.status(),
            503
        );
        let up = |kind| ProxyError::Upstream { kind }.status();
        assert_eq!(up(FailureKind::ConnectRefused), 502);
        assert_eq!(up(FailureKind::Reset), 502);
        assert_eq!(up(FailureKind::ResponseTimeout), 504);
        assert_eq!(up(FailureKind::ConnectTimeout), 504);
    }

    #[test]
    fn body_is_short_text_with_request_id() {
        let id = HeaderValue::from_static("abc");
        let r = ProxyError::NoRoute.response(Some(&id));
        assert_eq!(r.headers()["x-request-id"], "abc");
        assert_eq!(r.headers()["content-type"], "text/plain; charset=utf-8");
        assert!(r.headers().get("connection").is_none());
        let r = ProxyError::BadHost(HostError::Duplicate).response(None);
        assert_eq!(r.headers()["connection"], "close");
    }
}
