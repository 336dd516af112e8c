//! The request-head limits the service checks: HTTP/2 heads (HTTP/1 heads are checked by the
//! framing guard before hyper sees them), and the guard's stand-in for an HTTP/1 request line
//! over the limit.

use http::Version;
use http::request::Parts;

use crate::error::ProxyError;

/// A request head within `max_header_bytes`: the guard's stand-in for an HTTP/1 request line
/// over it gets 414, and an HTTP/2 head is measured here.
pub(super) fn head_within(max: usize, parts: &Parts) -> Result<(), ProxyError> {
    if parts.method.as_str() == crate::framing::URI_TOO_LONG_METHOD {
        return Err(ProxyError::Refused(
            http::StatusCode::URI_TOO_LONG,
            "the request line is longer than limits.max_header_bytes",
        ));
    }
    if parts.version == Version::HTTP_2 {
        return h2_head_within(max, parts);
    }
    Ok(())
}

/// An HTTP/2 request head within `max_header_bytes` (hyper's h2 server lets through twice that):
/// a longer target gets 414, a longer header list 431, counted as HTTP/2 counts it (name and
/// value plus 32 a field, the pseudo-headers included).
fn h2_head_within(max: usize, parts: &Parts) -> Result<(), ProxyError> {
    let target = parts.uri.path_and_query().map_or(1, |p| p.as_str().len());
    if target > max {
        return Err(ProxyError::Refused(
            http::StatusCode::URI_TOO_LONG,
            "the request target is longer than limits.max_header_bytes",
        ));
    }
    let pseudo = [
        (":method", parts.method.as_str().len()),
        (":path", target),
        (":scheme", parts.uri.scheme_str().map_or(0, str::len)),
        (
            ":authority",
            parts.uri.authority().map_or(0, |a| a.as_str().len()),
        ),
    ];
    let size = pseudo.iter().map(|(n, v)| n.len() + v + 32).sum::<usize>()
        + parts
            .headers
            .iter()
            .map(|(n, v)| n.as_str().len() + v.len() + 32)
            .sum::<usize>();
    if size > max {
        return Err(ProxyError::Refused(
            http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "the header list is larger than limits.max_header_bytes",
        ));
    }
    Ok(())
}
