//! Reading a request head on Switchyard's HTTP/1 server side: pure functions over the read
//! buffer, with no dependency but `httparse`, `http` and `bytes`, so that the fuzz targets can
//! compile this file as it is and check it against hyper's server
//! (`crates/switchyard-h1/fuzz`, target `server_head`).
//!
//! [`parse`] tokenizes a head with `httparse` and notes where its fields are; [`build`] makes
//! the request's parts from those places, sharing the head's bytes, and reads what the
//! connection needs from the fields: the body's framing, keep-alive, `Expect: 100-continue` and
//! whether the request may open a tunnel. The framing guard (`crate::framing`) has already
//! refused every head whose framing is ambiguous, so the rules here are the plain ones.

use std::mem::MaybeUninit;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Uri, Version};

/// Header slots kept on the stack for a parse; a larger `max_headers` allocates them.
const STACK_HEADERS: usize = 100;
/// Fields the request path may add to a request's header map: room is made for them up front.
/// Only a WebSocket handshake's `Connection` and `Upgrade`, put back after hop-by-hop fields
/// were stripped; the forwarding fields and the request id are kept beside the map
/// (`headers::Added`).
const ADDED_FIELDS: usize = 2;

/// A tokenized head, before its request is made.
#[derive(Debug)]
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
    let mut stack = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; STACK_HEADERS];
    let mut heap = Vec::new();
    let slots: &mut [MaybeUninit<httparse::Header<'_>>] = if max_headers <= STACK_HEADERS {
        &mut stack[..max_headers]
    } else {
        heap.resize_with(max_headers, MaybeUninit::uninit);
        &mut heap
    };
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(buf, slots) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(Refused::TooLarge),
        Err(_) => return Err(Refused::Bad),
    };
    let base = buf.as_ptr() as usize;
    let at = |s: &[u8]| s.as_ptr() as usize - base;
    let method = req.method.ok_or(Refused::Bad)?;
    let method = Method::from_bytes(method.as_bytes()).map_err(|_| Refused::Bad)?;
    let path = req.path.ok_or(Refused::Bad)?;
    let target = (at(path.as_bytes()), path.len());
    let version = match req.version {
        Some(0) => Version::HTTP_10,
        Some(1) => Version::HTTP_11,
        _ => return Err(Refused::Bad),
    };
    fields.clear();
    for h in req.headers.iter() {
        fields.push([
            at(h.name.as_bytes()),
            h.name.len(),
            at(h.value),
            h.value.len(),
        ]);
    }
    Ok(Some(Head {
        len,
        method,
        target,
        version,
    }))
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
            header::CONNECTION => {
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
