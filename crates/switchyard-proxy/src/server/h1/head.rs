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
    /// The fields, unless they are kept as the head's bytes (`raw`): empty then.
    pub(crate) headers: HeaderMap,
    /// The fields as the head's bytes, when the head is one the proxy forwards as it came
    /// (see [`RawHead`]).
    pub(crate) raw: Option<Box<RawHead>>,
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
    if let Some(raw) = RawHead::of(bytes, fields) {
        let http11 = head.version == Version::HTTP_11;
        return Some(Parsed {
            may_tunnel: head.method == Method::CONNECT,
            method: head.method,
            uri,
            version: head.version,
            headers: HeaderMap::new(),
            // No `Connection` field: HTTP/1.1 keeps the connection, HTTP/1.0 does not.
            keep_alive: http11,
            expect_continue: false,
            framing: match raw.content_length {
                Some(0) | None => Framing::None,
                Some(n) => Framing::Length(n),
            },
            raw: Some(raw),
        });
    }
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
        raw: None,
        keep_alive: if http11 {
            !close
        } else {
            keep_alive_asked && !close
        },
        expect_continue: http11 && expect_continue && framing != Framing::None,
        framing,
    })
}

/// The most fields a head kept as its bytes may have ([`RawHead`]).
pub(crate) const RAW_FIELDS: usize = 16;

/// A request head kept as the client sent it: its bytes and where each field is, for a head
/// that nothing on the request path rewrites. Such a head goes upstream as its own field lines
/// (names as the client wrote them) with the proxy's fields after them, and no header map is
/// built for it; a feature that reads fields by name has the map made from it first
/// ([`RawHead::to_map`]), and the request takes the map's path from there.
///
/// A head is kept so when it has at most [`RAW_FIELDS`] fields, is shorter than 64 KiB, has
/// at most one `Host` and a readable `Content-Length`, and has none of the fields the proxy
/// acts on as it forwards: hop-by-hop fields (`Connection` and those it may name,
/// `Keep-Alive`, `Proxy-Connection`, `Proxy-Authenticate`, `Proxy-Authorization`, `TE`,
/// `Trailer`, `Transfer-Encoding`, `Upgrade`), `Expect`, and the fields the proxy sets itself
/// (`X-Forwarded-For`, `-Proto`, `-Host`, `X-Request-Id`).
#[derive(Debug, Clone)]
pub(crate) struct RawHead {
    /// The head's bytes (at least).
    bytes: Bytes,
    /// Name start, name length, value start, value length of each field.
    fields: [[u16; 4]; RAW_FIELDS],
    /// How many of `fields` are the head's.
    len: u8,
    /// Which field is `Host`.
    host: Option<u8>,
    /// Where the field lines are, start and end, when they can go upstream as one block of
    /// bytes: each is `name: value` and CRLF, and none is `Content-Length`.
    block: Option<(u16, u16)>,
    /// The `Content-Length`, when the head has one.
    pub(crate) content_length: Option<u64>,
}

impl RawHead {
    /// The head in `bytes` with `fields` (as [`parse`] noted them), when it can be kept as its
    /// bytes.
    fn of(bytes: &Bytes, fields: &[[usize; 4]]) -> Option<Box<RawHead>> {
        if fields.len() > RAW_FIELDS {
            return None;
        }
        // Boxed: the request's future keeps it across its awaits, and it is moved on its way
        // there (a pointer is cheaper to move, and keeps the future small).
        let mut raw = Box::new(RawHead {
            bytes: bytes.clone(),
            fields: [[0; 4]; RAW_FIELDS],
            len: 0,
            host: None,
            block: None,
            content_length: None,
        });
        // Whether the lines so far are written as they would be written anew.
        let mut plain_lines = true;
        for (i, &[n, nl, v, vl]) in fields.iter().enumerate() {
            let name = bytes.get(n..n + nl)?;
            match kept_name(name)? {
                Kept::Plain => {}
                Kept::Host => {
                    if raw.host.is_some() {
                        return None;
                    }
                    raw.host = Some(i as u8);
                }
                Kept::ContentLength => {
                    let text = std::str::from_utf8(bytes.get(v..v + vl)?).ok()?;
                    let n = text.trim().parse::<u64>().ok()?;
                    if raw.content_length.is_some_and(|l| l != n) {
                        return None;
                    }
                    raw.content_length = Some(n);
                }
            }
            let at = n + nl;
            plain_lines &= bytes.get(at..at + 2) == Some(b": ")
                && v == at + 2
                && bytes.get(v + vl..v + vl + 2) == Some(b"\r\n")
                && fields.get(i + 1).is_none_or(|next| next[0] == v + vl + 2);
            raw.fields[i] = [
                u16::try_from(n).ok()?,
                u16::try_from(nl).ok()?,
                u16::try_from(v).ok()?,
                u16::try_from(vl).ok()?,
            ];
        }
        raw.len = fields.len() as u8;
        if let (true, None, Some(first), Some(&[.., v, vl])) = (
            plain_lines,
            raw.content_length,
            fields.first(),
            fields.last(),
        ) {
            raw.block = Some((
                u16::try_from(first[0]).ok()?,
                u16::try_from(v + vl + 2).ok()?,
            ));
        }
        Some(raw)
    }

    /// The field lines as the client wrote them (CRLF included), when they go upstream as one
    /// block: each is `name: value` and CRLF, and none is `Content-Length`.
    pub(crate) fn block(&self) -> Option<&[u8]> {
        let (start, end) = self.block?;
        self.bytes.get(usize::from(start)..usize::from(end))
    }

    /// The fields, as (name, value) in the order they came.
    pub(crate) fn fields(&self) -> impl Iterator<Item = (&[u8], &[u8])> + Clone {
        self.fields[..usize::from(self.len)]
            .iter()
            .map(|&[n, nl, v, vl]| (self.range(n, nl), self.range(v, vl)))
    }

    /// The bytes at `start` of length `len` in the head.
    fn range(&self, start: u16, len: u16) -> &[u8] {
        let start = usize::from(start);
        self.bytes
            .get(start..start + usize::from(len))
            .unwrap_or_default()
    }

    /// The `Host` value, shared with the head's bytes.
    pub(crate) fn host(&self) -> Option<HeaderValue> {
        let [_, _, v, vl] = self.fields[usize::from(self.host?)];
        let (v, vl) = (usize::from(v), usize::from(vl));
        HeaderValue::from_maybe_shared(self.bytes.slice(v..v + vl)).ok()
    }

    /// The header map [`build`] makes of these fields otherwise (the same names, values and
    /// order).
    pub(crate) fn to_map(&self) -> HeaderMap {
        let mut headers = HeaderMap::with_capacity(usize::from(self.len) + ADDED_FIELDS);
        for &[n, nl, v, vl] in &self.fields[..usize::from(self.len)] {
            let (n, nl, v, vl) = (
                usize::from(n),
                usize::from(nl),
                usize::from(v),
                usize::from(vl),
            );
            // Checked when the head was tokenized: a token name, a value of visible ASCII,
            // spaces, tabs and obs-text.
            let name = self.bytes.get(n..n + nl).map(HeaderName::from_bytes);
            let value = HeaderValue::from_maybe_shared(self.bytes.slice(v..v + vl));
            if let (Some(Ok(name)), Ok(value)) = (name, value) {
                headers.append(name, value);
            }
        }
        headers
    }
}

/// How a field name bears on keeping a head as its bytes.
enum Kept {
    /// A field the proxy passes on as it is.
    Plain,
    /// `Host`.
    Host,
    /// `Content-Length`.
    ContentLength,
}

/// Whether a head with the field `name` can be kept as its bytes: `None` for a field the
/// proxy acts on ([`RawHead`]).
fn kept_name(name: &[u8]) -> Option<Kept> {
    let is = |n: &[u8]| switchyard_h1::is_lower(name, n);
    let acted_on = match name.len() {
        2 => is(b"te"),
        4 => return Some(if is(b"host") { Kept::Host } else { Kept::Plain }),
        6 => is(b"expect"),
        7 => is(b"upgrade") || is(b"trailer"),
        10 => is(b"connection") || is(b"keep-alive"),
        12 => is(b"x-request-id"),
        14 => {
            return Some(if is(b"content-length") {
                Kept::ContentLength
            } else {
                Kept::Plain
            });
        }
        15 => is(b"x-forwarded-for"),
        16 => is(b"proxy-connection") || is(b"x-forwarded-host"),
        17 => is(b"transfer-encoding") || is(b"x-forwarded-proto"),
        18 => is(b"proxy-authenticate"),
        19 => is(b"proxy-authorization"),
        _ => false,
    };
    (!acted_on).then_some(Kept::Plain)
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
    fn heads_the_proxy_does_not_rewrite_are_kept_as_their_bytes() {
        let plain = read(b"GET /a HTTP/1.1\r\nHost: a\r\nUser-Agent: T/1\r\nX-Two: a  b\r\n\r\n");
        let raw = plain.raw.as_ref().expect("kept as its bytes");
        assert!(plain.headers.is_empty());
        assert_eq!(
            raw.fields().collect::<Vec<_>>(),
            [
                (&b"Host"[..], &b"a"[..]),
                (b"User-Agent", b"T/1"),
                (b"X-Two", b"a  b")
            ]
        );
        assert_eq!(
            raw.block(),
            Some(&b"Host: a\r\nUser-Agent: T/1\r\nX-Two: a  b\r\n"[..])
        );
        assert_eq!(raw.host().as_ref().map(|h| h.as_bytes()), Some(&b"a"[..]));
        let map = raw.to_map();
        assert_eq!(map.len(), 3);
        assert_eq!(map["user-agent"], "T/1");
        assert!(plain.keep_alive);
        // Lines written otherwise, or a Content-Length (which the proxy writes itself): kept,
        // but field by field.
        for head in [
            &b"GET / HTTP/1.1\r\nHost:a\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nHost: a \r\n\r\n",
            b"GET / HTTP/1.1\nHost: a\n\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n",
        ] {
            let parsed = read(head);
            let raw = parsed.raw.as_ref().expect("kept as its bytes");
            assert_eq!(raw.block(), None, "{}", String::from_utf8_lossy(head));
            assert_eq!(raw.host().as_ref().map(|h| h.as_bytes()), Some(&b"a"[..]));
        }
        let post = read(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n");
        assert_eq!(post.framing, Framing::Length(5));
        assert_eq!(post.raw.as_ref().and_then(|r| r.content_length), Some(5));
        // HTTP/1.0 without keep-alive closes.
        assert!(!read(b"GET / HTTP/1.0\r\nHost: a\r\n\r\n").keep_alive);
    }

    #[test]
    fn heads_with_fields_the_proxy_acts_on_get_a_header_map() {
        for field in [
            "Connection: close",
            "Keep-Alive: 5",
            "Proxy-Connection: x",
            "Proxy-Authenticate: x",
            "Proxy-Authorization: x",
            "TE: trailers",
            "Trailer: x",
            "Transfer-Encoding: chunked",
            "Upgrade: websocket",
            "Expect: 100-continue",
            "x-forwarded-for: 1.2.3.4",
            "X-Forwarded-Proto: https",
            "X-Forwarded-Host: b",
            "X-Request-ID: 1",
            "Host: b",
        ] {
            let head =
                format!("POST / HTTP/1.1\r\nHost: a\r\n{field}\r\nContent-Length: 1\r\n\r\n");
            let head: &'static [u8] = Box::leak(head.into_bytes().into_boxed_slice());
            let parsed = read(head);
            assert!(parsed.raw.is_none(), "{field}");
            assert!(parsed.headers.len() >= 2, "{field}");
        }
        // More fields than a kept head holds.
        let mut many = String::from("GET / HTTP/1.1\r\nHost: a\r\n");
        for i in 0..RAW_FIELDS {
            many.push_str(&format!("X-{i}: v\r\n"));
        }
        many.push_str("\r\n");
        let many: &'static [u8] = Box::leak(many.into_bytes().into_boxed_slice());
        let parsed = read(many);
        assert!(parsed.raw.is_none());
        assert_eq!(parsed.headers.len(), RAW_FIELDS + 1);
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
