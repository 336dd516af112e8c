//! An upstream's response head passed on as the bytes it arrived in.
//!
//! Most answers go back to an HTTP/1 client with the upstream's fields unchanged, less the
//! hop-by-hop ones, plus the proxy's own (a request id, a sticky cookie). For those, building
//! an `http::HeaderMap` from the upstream's head only to write it out again is wasted work:
//! the response's body carries the head instead ([`PassedHead`], with the proxy's request id),
//! its header map holds only what else the proxy added (a sticky cookie), and the HTTP/1
//! server copies the upstream's field lines straight into the answer (`server::h1::answer`).
//!
//! Whatever reads or changes the upstream's fields by name (compression, a service's
//! configured response headers, hyper's HTTP/2 server) first puts them back into the header
//! map with [`restore`], which gives the map [`ResponseHead::header_map`] would have built,
//! with the proxy's additions after it. Only plain heads are passed on (`ResponseHead::plain`:
//! the `Connection` field names no other field, one `Content-Length`); the rest, and 101
//! answers, get their header map at once.

use bytes::Bytes;
use http::{HeaderMap, Response, header};
use switchyard_h1::{BodyFraming, ClientField, ResponseHead};

use crate::body::ProxyBody;
use crate::headers::{RequestId, X_REQUEST_ID};
use crate::server::conn::ServiceBody;

/// A plain upstream response head, kept as bytes.
#[derive(Debug)]
pub struct PassedHead {
    head: ResponseHead,
    bytes: Bytes,
    /// The proxy's request id for the answer: it replaces an upstream's `X-Request-Id`.
    /// Carried here rather than in the response's header map, which then stays empty for
    /// most answers.
    request_id: Option<RequestId>,
}

impl PassedHead {
    /// The head, if it can be passed on as bytes (it is plain).
    pub(crate) fn new(head: ResponseHead, bytes: Bytes) -> Result<Self, (ResponseHead, Bytes)> {
        if head.plain {
            Ok(PassedHead {
                head,
                bytes,
                request_id: None,
            })
        } else {
            Err((head, bytes))
        }
    }

    /// The fields for the client, in the upstream's order and case: the ones the header map
    /// would hold.
    pub(crate) fn fields(&self) -> impl Iterator<Item = ClientField<'_>> {
        self.head.client_fields(&self.bytes).into_iter().flatten()
    }

    /// The `Content-Length` passed on, if any: the upstream's, where it frames the body.
    pub(crate) fn declared_length(&self) -> Option<u64> {
        match self.head.framing {
            BodyFraming::Length(_) | BodyFraming::Empty => self.head.content_length,
            BodyFraming::Chunked | BodyFraming::UntilClose => None,
        }
    }

    /// The proxy's request id for the answer, if set.
    pub(crate) fn request_id(&self) -> Option<&RequestId> {
        self.request_id.as_ref()
    }

    /// Whether a passed field is one the proxy replaces: the request id, which the proxy sets
    /// on every answer (here, or in the header map `added`).
    pub(crate) fn replaced(&self, name: &[u8], added: &HeaderMap) -> bool {
        name.len() == 12
            && name.eq_ignore_ascii_case(b"x-request-id")
            && (self.request_id.is_some() || added.contains_key(&X_REQUEST_ID))
    }
}

/// Sets the proxy's request id on an answer: in its passed head when it has one, else in its
/// header map (replacing any other).
pub(crate) fn set_request_id(resp: &mut Response<ProxyBody>, id: RequestId) {
    if let ProxyBody::Upstream(up) = resp.body_mut() {
        if let Some(passed) = up.passed_head_mut() {
            passed.request_id = Some(id);
            return;
        }
    }
    resp.headers_mut()
        .insert(X_REQUEST_ID.clone(), id.to_header_value());
}

/// Puts the upstream's fields back into `headers`: the header map the upstream's head gives,
/// then the fields the proxy added so far (a request id among them replaces the upstream's).
pub(crate) fn restore_fields(headers: &mut HeaderMap, passed: PassedHead) {
    let mut map = match passed.head.header_map(&passed.bytes) {
        Ok(map) => map,
        Err(e) => {
            // Not expected: the head was parsed by the same rules (the `response_head` fuzz
            // target checks that every head the parser accepts builds a map).
            tracing::warn!(error = %e, "an upstream head passed on as bytes builds no header map; its fields are dropped");
            HeaderMap::new()
        }
    };
    if let Some(id) = passed.request_id {
        map.insert(X_REQUEST_ID.clone(), id.to_header_value());
    } else if headers.contains_key(&X_REQUEST_ID) {
        map.remove(&X_REQUEST_ID);
    }
    let mut name = None;
    for (next, value) in headers.drain() {
        if next.is_some() {
            name = next;
        }
        if let Some(name) = &name {
            map.append(name.clone(), value);
        }
    }
    *headers = map;
}

/// A response whose upstream fields are all in its header map again (see [`restore_fields`]).
pub(crate) fn restore<B: ServiceBody>(mut resp: Response<B>) -> Response<B> {
    if let Some(passed) = resp.body_mut().passed_head() {
        restore_fields(resp.headers_mut(), passed);
    }
    resp
}

/// The `Content-Length` a response declares, in its header map or its passed head.
pub(crate) fn declared_length<B: ServiceBody>(resp: &Response<B>) -> Option<u64> {
    match resp.headers().get(header::CONTENT_LENGTH) {
        Some(v) => v.to_str().ok().and_then(|v| v.parse().ok()),
        None => resp
            .body()
            .peek_passed_head()
            .and_then(PassedHead::declared_length),
    }
}
