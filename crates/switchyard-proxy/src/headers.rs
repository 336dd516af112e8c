//! Header hygiene: Host checks, hop-by-hop stripping, and the headers the proxy adds.
//!
//! Order matters: headers named in `Connection` are removed *before* the proxy adds its own
//! `X-Forwarded-*`, so a client cannot use `Connection: X-Forwarded-For` to delete them.

use std::borrow::Cow;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Uri, Version};
use switchyard_h1::ExtraField;

/// `X-Forwarded-For`.
pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `X-Forwarded-Proto`.
pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// `X-Forwarded-Host`.
pub static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
/// `X-Request-Id`.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// `Keep-Alive` (hop-by-hop, not in the `http` crate's constants).
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
/// `Proxy-Connection` (a non-standard hop-by-hop header some clients send).
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Why a request's Host is unacceptable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    /// No Host header and no authority in the URI.
    #[error("missing Host header")]
    Missing,
    /// More than one Host header.
    #[error("more than one Host header")]
    Duplicate,
    /// The Host value is not a valid authority.
    #[error("malformed Host header")]
    Malformed,
    /// An absolute-form URI or an HTTP/2 authority that disagrees with the Host header.
    #[error("Host header does not match the request target")]
    Mismatch,
}

/// The request's host: the full authority (for `Host` upstream) and where the host name
/// without port lies in it (for routing, which compares names case-insensitively).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHost {
    /// The authority as the client gave it (`example.com:8080`).
    pub authority: HeaderValue,
    /// The length of the host part of `authority` (the authority without `:port`).
    host_len: usize,
    /// Whether `authority` is the request's `Host` field (else it came from an HTTP/2
    /// request's `:authority`, and the upstream's `Host` must be added).
    pub in_headers: bool,
}

impl RequestHost {
    /// The host without port, as the client wrote it (`Shop.Example.com`), or an IPv6 literal
    /// with brackets. Validated: ASCII, no userinfo, no spaces.
    pub fn name(&self) -> &str {
        self.authority
            .to_str()
            .ok()
            .and_then(|s| s.get(..self.host_len))
            .unwrap_or_default()
    }
}

/// Checks the request's Host (HTTP/1) or authority (HTTP/2) and returns it.
pub fn request_host(
    version: Version,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<RequestHost, HostError> {
    let mut hosts = headers.get_all(header::HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err(HostError::Duplicate);
    }
    request_host_of(version, uri, host.cloned())
}

/// [`request_host`] for a request whose only `Host` field, if any, is `host`.
pub fn request_host_of(
    version: Version,
    uri: &Uri,
    host: Option<HeaderValue>,
) -> Result<RequestHost, HostError> {
    let uri_authority = uri.authority();
    let in_headers = host.is_some();
    let authority = match (host, uri_authority) {
        (Some(h), Some(a)) => {
            if !h.as_bytes().eq_ignore_ascii_case(a.as_str().as_bytes()) {
                return Err(HostError::Mismatch);
            }
            h
        }
        (Some(h), None) => h,
        (None, Some(a)) if version == Version::HTTP_2 => {
            HeaderValue::from_str(a.as_str()).map_err(|_| HostError::Malformed)?
        }
        // An HTTP/1.1 absolute-form request must still carry Host (RFC 9112 §3.2).
        (None, _) => return Err(HostError::Missing),
    };
    let host_len = host_len(authority.as_bytes()).ok_or(HostError::Malformed)?;
    Ok(RequestHost {
        authority,
        host_len,
        in_headers,
    })
}

/// The bytes of a host name (RFC 3986's reg-name: unreserved, sub-delims and `%`), by value.
static REG_NAME: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
                    | b'%'
            );
        b += 1;
    }
    table
};

/// Validates an authority (`host[:port]`, `[v6]:port`) without allocating; returns the length
/// of its host part. Refuses userinfo, spaces and anything outside RFC 3986's host characters.
fn host_len(authority: &[u8]) -> Option<usize> {
    let (host_len, rest) = if authority.first() == Some(&b'[') {
        let close = authority.iter().position(|b| *b == b']')?;
        let inner = &authority[1..close];
        if inner.is_empty()
            || !inner
                .iter()
                .all(|b| b.is_ascii_hexdigit() || matches!(b, b':' | b'.'))
        {
            return None;
        }
        (close + 1, &authority[close + 1..])
    } else {
        let end = authority
            .iter()
            .rposition(|b| *b == b':')
            .unwrap_or(authority.len());
        let host = &authority[..end];
        let reg_name = |b: &u8| REG_NAME[usize::from(*b)];
        if host.is_empty() || !host.iter().all(reg_name) {
            return None;
        }
        (end, &authority[end..])
    };
    match rest {
        [] => Some(host_len),
        [b':', port @ ..] if port.len() <= 5 && port.iter().all(u8::is_ascii_digit) => {
            Some(host_len)
        }
        _ => None,
    }
}

/// The hop-by-hop fields removed besides `Connection` and the fields it names.
static HOP_BY_HOP: [&HeaderName; 8] = [
    &KEEP_ALIVE,
    &PROXY_CONNECTION,
    &header::PROXY_AUTHENTICATE,
    &header::PROXY_AUTHORIZATION,
    &header::TE,
    &header::TRAILER,
    &header::TRANSFER_ENCODING,
    &header::UPGRADE,
];

/// Removes hop-by-hop headers, including every header named in `Connection`.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Most requests carry none: one pass over the names instead of a lookup for each.
    if !headers
        .keys()
        .any(|name| name == header::CONNECTION || HOP_BY_HOP.contains(&name))
    {
        return;
    }
    if headers.contains_key(header::CONNECTION) {
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
            .collect();
        for name in named {
            headers.remove(&name);
        }
        headers.remove(header::CONNECTION);
    }
    for name in HOP_BY_HOP {
        if headers.contains_key(name) {
            headers.remove(name);
        }
    }
}

/// The fields the proxy adds to every forwarded request: `X-Forwarded-For`, `-Proto`, `-Host`
/// and a generated `X-Request-Id`. They are kept beside the request's header map, not in it, and
/// written after the client's fields when the head is encoded, so adding them costs no hashing
/// of their names; the client's own copies are folded in or removed by [`forwarding`]. The
/// client's IP is borrowed from its connection (`'c`).
#[derive(Debug, Clone)]
pub struct Added<'c> {
    forwarded_for: Cow<'c, HeaderValue>,
    proto: &'static str,
    forwarded_host: HeaderValue,
    /// A generated id; `None` when the client's own goes on in the header map.
    request_id: Option<[u8; 32]>,
}

impl Added<'_> {
    /// The fields as names and values, in the order they are written; the first `n` of the
    /// array are the fields.
    pub fn fields(&self) -> ([ExtraField<'_>; 4], usize) {
        let id = self.request_id.as_ref();
        let fields = [
            ("X-Forwarded-For", self.forwarded_for.as_bytes()),
            ("X-Forwarded-Proto", self.proto.as_bytes()),
            ("X-Forwarded-Host", self.forwarded_host.as_bytes()),
            ("X-Request-Id", id.map_or(&b""[..], |id| &id[..])),
        ];
        (fields, if id.is_some() { 4 } else { 3 })
    }
}

/// A request's id: one the proxy generated (32 hex digits, held inline: no allocation and no
/// reference count to share it), or the client's own `X-Request-Id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestId {
    /// Generated by the proxy.
    Generated([u8; 32]),
    /// The client's.
    Client(HeaderValue),
}

impl RequestId {
    /// The id's bytes, as sent in `X-Request-Id`.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            RequestId::Generated(hex) => hex,
            RequestId::Client(v) => v.as_bytes(),
        }
    }

    /// The id as text, unless the client's has bytes that are not visible ASCII.
    pub fn to_str(&self) -> Option<&str> {
        match self {
            RequestId::Generated(hex) => std::str::from_utf8(hex).ok(),
            RequestId::Client(v) => v.to_str().ok(),
        }
    }

    /// The id as a header value (a generated one is copied into one).
    pub fn to_header_value(&self) -> HeaderValue {
        match self {
            // Hex digits are always a valid header value.
            RequestId::Generated(hex) => {
                HeaderValue::from_bytes(hex).unwrap_or(HeaderValue::from_static("0"))
            }
            RequestId::Client(v) => v.clone(),
        }
    }
}

/// Decides the forwarding fields and the request id for `headers` (already stripped of
/// hop-by-hop fields): the client's `X-Forwarded-For` values come first in the one the proxy
/// sends, its `X-Forwarded-Proto` and `-Host` are dropped, and its `X-Request-Id` is kept when
/// usable (not empty, at most 200 bytes), else one is generated when `generate` (the service's
/// `generate_request_id`). Returns the added fields and the request's id, if it has one.
/// `client_ip` is the client's IP as a header value (formatted once per connection), `host`
/// the request's authority (for `X-Forwarded-Host`).
pub fn forwarding<'c>(
    headers: &mut HeaderMap,
    client_ip: &'c HeaderValue,
    proto: &'static str,
    host: HeaderValue,
    generate: bool,
) -> (Added<'c>, Option<RequestId>) {
    // Most requests carry none of these: one pass over the names instead of a lookup for each.
    let (mut forwarded, mut overridden, mut has_id) = (false, false, false);
    for name in headers.keys() {
        if *name == X_FORWARDED_FOR {
            forwarded = true;
        } else if *name == X_FORWARDED_PROTO || *name == X_FORWARDED_HOST {
            overridden = true;
        } else if *name == X_REQUEST_ID {
            has_id = true;
        }
    }
    let forwarded_for = if forwarded {
        let chain: Vec<&[u8]> = headers
            .get_all(&X_FORWARDED_FOR)
            .iter()
            .map(HeaderValue::as_bytes)
            .filter(|v| !v.is_empty())
            .chain(std::iter::once(client_ip.as_bytes()))
            .collect();
        let joined = HeaderValue::from_bytes(&chain.join(&b", "[..]));
        headers.remove(&X_FORWARDED_FOR);
        joined.map_or(Cow::Borrowed(client_ip), Cow::Owned)
    } else {
        Cow::Borrowed(client_ip)
    };
    if overridden {
        headers.remove(&X_FORWARDED_PROTO);
        headers.remove(&X_FORWARDED_HOST);
    }
    let kept = if has_id {
        match headers.get(&X_REQUEST_ID) {
            Some(v) if !v.is_empty() && v.len() <= 200 => Some(v.clone()),
            _ => {
                headers.remove(&X_REQUEST_ID);
                None
            }
        }
    } else {
        None
    };
    let (id, generated) = match kept {
        Some(id) => (Some(RequestId::Client(id)), None),
        None if generate => {
            let hex = new_request_id();
            (Some(RequestId::Generated(hex)), Some(hex))
        }
        None => (None, None),
    };
    let added = Added {
        forwarded_for,
        proto,
        forwarded_host: host,
        request_id: generated,
    };
    (added, id)
}

/// A random 128-bit request id in hex.
pub fn new_request_id() -> [u8; 32] {
    let mut out = [0u8; 32];
    let random = fastrand::u128(..).to_le_bytes();
    for (pair, byte) in out.chunks_exact_mut(2).zip(random) {
        pair.copy_from_slice(&crate::digits::hex_pair(byte));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(
                HeaderName::from_bytes(k.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        m
    }

    #[test]
    fn host_rules() {
        let uri: Uri = "/x".parse().expect("uri");
        let v11 = Version::HTTP_11;
        assert_eq!(request_host(v11, &uri, &map(&[])), Err(HostError::Missing));
        assert_eq!(
            request_host(v11, &uri, &map(&[("host", "a"), ("host", "b")])),
            Err(HostError::Duplicate)
        );
        let h = request_host(v11, &uri, &map(&[("host", "Shop.Example.com:8080")])).expect("ok");
        assert_eq!(h.name(), "Shop.Example.com");
        assert_eq!(h.authority, "Shop.Example.com:8080");
        let abs: Uri = "http://other.com/x".parse().expect("uri");
        assert_eq!(
            request_host(v11, &abs, &map(&[("host", "a.com")])),
            Err(HostError::Mismatch)
        );
        assert!(request_host(v11, &abs, &map(&[("host", "other.com")])).is_ok());
        let h2 = request_host(Version::HTTP_2, &abs, &map(&[])).expect("h2 authority");
        assert_eq!(h2.name(), "other.com");
        let v6 = request_host(v11, &uri, &map(&[("host", "[::1]:8080")])).expect("v6");
        assert_eq!(v6.name(), "[::1]");
        for bad in ["a.com:80:80", "a.com:x", ":80", "[::1", "a,b.com:123456"] {
            assert_eq!(
                request_host(v11, &uri, &map(&[("host", bad)])),
                Err(HostError::Malformed),
                "{bad}"
            );
        }
        assert_eq!(
            request_host(v11, &uri, &map(&[("host", "a b")])),
            Err(HostError::Malformed)
        );
        assert_eq!(
            request_host(v11, &uri, &map(&[("host", "user@evil.com")])),
            Err(HostError::Malformed)
        );
    }

    #[test]
    fn strips_hop_by_hop_and_connection_named_headers() {
        let mut m = map(&[
            ("connection", "keep-alive, X-Secret, x-forwarded-for"),
            ("connection", "close"),
            ("keep-alive", "timeout=5"),
            ("x-secret", "1"),
            ("x-forwarded-for", "6.6.6.6"),
            ("te", "trailers"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "h2c"),
            ("proxy-authorization", "Basic x"),
            ("accept", "*/*"),
        ]);
        strip_hop_by_hop(&mut m);
        let left: Vec<&str> = m.keys().map(HeaderName::as_str).collect();
        assert_eq!(left, vec!["accept"]);
    }

    /// The head the fields of `m` and `added` make, as (name, value) pairs in order.
    fn sent(m: &HeaderMap, added: &Added) -> Vec<(String, String)> {
        let (fields, n) = added.fields();
        m.iter()
            .map(|(k, v)| (k.as_str(), v.as_bytes()))
            .chain(fields[..n].iter().copied())
            .map(|(k, v)| {
                (
                    k.to_ascii_lowercase(),
                    String::from_utf8_lossy(v).into_owned(),
                )
            })
            .collect()
    }

    #[test]
    fn forwarded_headers_append_and_set() {
        let ip = HeaderValue::from_static("10.0.0.1");
        let host = HeaderValue::from_static("a.com");
        let mut m = map(&[
            ("x-forwarded-for", "1.1.1.1"),
            ("x-forwarded-proto", "gopher"),
            ("x-forwarded-host", "evil.com"),
            ("accept", "*/*"),
        ]);
        let (added, id) = forwarding(&mut m, &ip, "http", host.clone(), true);
        let fields = sent(&m, &added);
        let pairs: Vec<(&str, &str)> = fields
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            pairs,
            vec![
                ("accept", "*/*"),
                ("x-forwarded-for", "1.1.1.1, 10.0.0.1"),
                ("x-forwarded-proto", "http"),
                ("x-forwarded-host", "a.com"),
                (
                    "x-request-id",
                    id.as_ref().and_then(RequestId::to_str).expect("hex")
                ),
            ]
        );
        let mut m = map(&[
            ("x-forwarded-for", "1.1.1.1"),
            ("x-forwarded-for", ""),
            ("x-forwarded-for", "2.2.2.2"),
        ]);
        let v6 = HeaderValue::from_static("::1");
        let (added, _) = forwarding(&mut m, &v6, "https", host.clone(), true);
        let fields = sent(&m, &added);
        let chains: Vec<&str> = fields
            .iter()
            .filter(|(k, _)| k == "x-forwarded-for")
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(chains, vec!["1.1.1.1, 2.2.2.2, ::1"]);
        let mut m = HeaderMap::new();
        let (added, _) = forwarding(&mut m, &ip, "http", host.clone(), true);
        assert_eq!(
            sent(&m, &added)[0],
            ("x-forwarded-for".into(), "10.0.0.1".into())
        );
    }

    #[test]
    fn request_id_kept_or_generated() {
        let ip = HeaderValue::from_static("10.0.0.1");
        let host = HeaderValue::from_static("a.com");
        let mut m = map(&[("x-request-id", "abc")]);
        let (added, id) = forwarding(&mut m, &ip, "http", host.clone(), true);
        assert_eq!(id.as_ref().map(RequestId::as_bytes), Some(&b"abc"[..]));
        assert_eq!(added.fields().1, 3, "the client's id goes on in the map");
        assert_eq!(m["x-request-id"], "abc");
        let long = "x".repeat(201);
        for unusable in ["", long.as_str()] {
            let mut m = map(&[("x-request-id", unusable)]);
            let (added, id) = forwarding(&mut m, &ip, "http", host.clone(), true);
            let id = id.expect("a generated id");
            assert_eq!(id.as_bytes().len(), 32);
            assert!(!m.contains_key("x-request-id"));
            let (fields, n) = added.fields();
            assert_eq!((n, fields[3].1), (4, id.as_bytes()));
        }
        // A service that generates none: the client's is still passed on; without one the
        // request has none, and nothing is added.
        let mut m = map(&[("x-request-id", "abc")]);
        let (added, id) = forwarding(&mut m, &ip, "http", host.clone(), false);
        assert_eq!(id.as_ref().map(RequestId::as_bytes), Some(&b"abc"[..]));
        assert_eq!(added.fields().1, 3);
        assert_eq!(m["x-request-id"], "abc");
        let mut m = HeaderMap::new();
        let (added, id) = forwarding(&mut m, &ip, "http", host.clone(), false);
        assert_eq!((id, added.fields().1), (None, 3));
        assert!(!m.contains_key("x-request-id"));
        assert_ne!(new_request_id(), new_request_id());
        let id = new_request_id();
        assert!(id.iter().all(|b| b"0123456789abcdef".contains(b)), "{id:?}");
    }
}
