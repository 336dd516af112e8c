//! Reading a request head on Switchyard's HTTP/1 server side: pure functions over the read
//! buffer, with no dependency but `switchyard_h1`, `http` and `bytes`, so that the fuzz targets can
//! compile this file as it is and check it against hyper's server
//! (`crates/switchyard-h1/fuzz`, target `server_head`).
//!
//! [`parse`] tokenizes a head (`switchyard_h1::tokenize_request`, which reads as `httparse`
//! does) and notes where its fields are; [`build`] makes
//! the request's parts from those places, sharing the head's bytes, and reads what the
//! connection needs from the fields: the body's framing, keep-alive, `Expect: 100-continue` and
//! whether the request may open a tunnel. The framing guard (`crate::framing`) has already
//! refused every head whose framing is ambiguous, so the rules here are the plain ones.

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Uri, Version};

/// Fields the request path may add to a request's header map: room is made for them up front.
/// Only a WebSocket handshake's `Connection` and `Upgrade`, put back after hop-by-hop fields
/// were stripped; the forwarding fields and the request id are kept beside the map
/// (`headers::Added`).
const ADDED_FIELDS: usize = 2;

/// A tokenized head, before its request is made.
#[derive(Debug, PartialEq)]
pub(crate) struct Head {
    /// Its length at the start of the buffer.
    pub(crate) len: usize,
    pub(crate) method: Method,
    /// Where the target is: start and length.
    pub(crate) target: (usize, usize),
    pub(crate) version: Version,
}

/// Why a head is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// `400 Bad Request`.
    Bad,
    /// `431 Request Header Fields Too Large`.
    TooLarge,
}

/// How a request body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// No body.
    None,
    /// This many bytes (more than zero).
    Length(u64),
    /// Chunked.
    Chunked,
}

/// A request as read from its head.
#[derive(Debug)]
pub(crate) struct Parsed {
    pub(crate) method: Method,
    pub(crate) uri: Uri,
    pub(crate) version: Version,
    pub(crate) headers: HeaderMap,
    pub(crate) framing: Framing,
    /// The client allows the connection to stay open after this request.
    pub(crate) keep_alive: bool,
    /// An HTTP/1.1 `Expect: 100-continue` with a body to come.
    pub(crate) expect_continue: bool,
    /// An HTTP/1.1 `Upgrade`, or `CONNECT`: the answer may open a tunnel.
    pub(crate) may_tunnel: bool,
}

/// Tokenizes the head at the start of `buf` with room for `max_headers` fields: `None` while
/// it is incomplete. `fields` gets, for each field, where its name and value are (start and
/// length of each).
pub(crate) fn parse(
    buf: &[u8],
    max_headers: usize,
    fields: &mut Vec<[usize; 4]>,
) -> Result<Option<Head>, Refused> {
    fields.clear();
    let tokens = switchyard_h1::tokenize_request(buf, max_headers, |name, value| {
        fields.push([name.start, name.len(), value.start, value.len()]);
    });
    let (line, len) = match tokens {
        Ok(Some(t)) => t,
        Ok(None) => return Ok(None),
        Err(switchyard_h1::Refusal::TooManyFields) => return Err(Refused::TooLarge),
        Err(switchyard_h1::Refusal::Syntax(_)) => return Err(Refused::Bad),
    };
    head_of(buf, line, len).map(Some)
}

/// The head of `len` bytes at the start of `buf` whose request line `switchyard_h1` tokenized
/// as `line` (by [`parse`], or by the framing guard, which keeps the tokens of the heads it
/// lets through).
pub(crate) fn head_of(
    buf: &[u8],
    line: switchyard_h1::RequestLine,
    len: usize,
) -> Result<Head, Refused> {
    let method = Method::from_bytes(&buf[line.method]).map_err(|_| Refused::Bad)?;
    let target = (line.target.start, line.target.len());
    let version = match line.version_minor {
        0 => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    Ok(Head {
        len,
        method,
        target,
        version,
    })
}

/// Whether `taken` and `fields`, made from the tokens the framing guard kept for the head at
/// the start of `buf`, are what [`parse`] makes of those bytes itself: the check of the HTTP/1
/// server's debug builds and of the `request_head` fuzz target.
#[cfg_attr(not(debug_assertions), allow(dead_code))]
pub(crate) fn same_as_parsed(
    buf: &[u8],
    max_headers: usize,
    taken: &Result<Head, Refused>,
    fields: &[[usize; 4]],
) -> bool {
    let mut own = Vec::new();
    let same_head = match (taken, parse(buf, max_headers, &mut own)) {
        (Ok(a), Ok(Some(b))) => *a == b,
        (Err(a), Err(b)) => *a == b,
        _ => false,
    };
    same_head && own == fields
}

/// The request of a parsed head; `bytes` is the head (its first `head.len` bytes, at least),
/// `fields` what [`parse`] noted. `None` when the target, a field name or a `Content-Length`
/// is invalid.
pub(crate) fn build(head: Head, bytes: &Bytes, fields: &[[usize; 4]]) -> Option<Parsed> {
    let (start, len) = head.target;
    let uri = Uri::from_maybe_shared(bytes.slice(start..start + len)).ok()?;
    let mut headers = HeaderMap::with_capacity(fields.len() + ADDED_FIELDS);
    let http11 = head.version == Version::HTTP_11;
    let mut length = None;
    let mut chunked = false;
    let mut close = false;
    let mut keep_alive_asked = false;
    let mut expect_continue = false;
    let mut upgrade = false;
    for &[n, nl, v, vl] in fields {
        let name = HeaderName::from_bytes(bytes.get(n..n + nl)?).ok()?;
        let value = HeaderValue::from_maybe_shared(bytes.slice(v..v + vl)).ok()?;
        match name {
            header::CONTENT_LENGTH => {
                let text = std::str::from_utf8(value.as_bytes()).ok()?;
                length = Some(text.trim().parse::<u64>().ok()?);
            }
            header::TRANSFER_ENCODING => chunked = last_token_is(value.as_bytes(), b"chunked"),
            // A value that is not visible ASCII is not read (hyper's rule: it cannot read
            // it as text), so it neither closes the connection nor keeps an HTTP/1.0 one.
            header::CONNECTION if value.to_str().is_ok() => {
                for token in connection_tokens(value.as_bytes()) {
                    close |= token.eq_ignore_ascii_case(b"close");
                    keep_alive_asked |= token.eq_ignore_ascii_case(b"keep-alive");
                }
            }
            header::EXPECT => {
                expect_continue = value.as_bytes().eq_ignore_ascii_case(b"100-continue");
            }
            header::UPGRADE => upgrade = true,
            _ => {}
        }
        headers.append(name, value);
    }
    let framing = match (chunked, length) {
        (true, _) => Framing::Chunked,
        (false, Some(0) | None) => Framing::None,
        (false, Some(n)) => Framing::Length(n),
    };
    let method_connect = head.method == Method::CONNECT;
    Some(Parsed {
        may_tunnel: (upgrade && http11) || method_connect,
        method: head.method,
        uri,
        version: head.version,
        headers,
        keep_alive: if http11 {
            !close
        } else {
            keep_alive_asked && !close
        },
        expect_continue: http11 && expect_continue && framing != Framing::None,
        framing,
    })
}

/// The tokens of a `Connection` value (comma-separated, spaces trimmed).
pub(crate) fn connection_tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|&b| b == b',').map(<[u8]>::trim_ascii)
}

/// Whether the last token of a comma-separated list is `token` (case-insensitively).
fn last_token_is(value: &[u8], token: &[u8]) -> bool {
    value
        .rsplit(|&b| b == b',')
        .next()
        .is_some_and(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(head: &'static [u8]) -> Parsed {
        let mut fields = Vec::new();
        let Ok(Some(parsed)) = parse(head, 100, &mut fields) else {
            panic!("a complete head");
        };
        let bytes = Bytes::from_static(head);
        build(parsed, &bytes, &fields).expect("a valid request")
    }

    #[test]
    fn a_connection_value_that_is_not_visible_ascii_is_not_read() {
        // The request_head fuzz target's finding: hyper cannot read such a value as text and
        // keeps the connection; a `close` hidden in it must not close it here either.
        let kept = read(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: x\xff, close\r\n\r\n");
        assert!(kept.keep_alive);
        let closed = read(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: x, close\r\n\r\n");
        assert!(!closed.keep_alive);
        // Nor does such a value keep an HTTP/1.0 connection.
        let old = read(b"GET / HTTP/1.0\r\nConnection: keep-alive\xff\r\n\r\n");
        assert!(!old.keep_alive);
        let old = read(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        assert!(old.keep_alive);
    }
}
