//! Response heads: tokenized in one pass (`tokenize`, which reads as `httparse` does), framed by
//! RFC 9112 §6.3, header fields kept as
//! ranges of the read buffer.
//!
//! The framing rules are strict where a lenient reading could desynchronise a kept-alive
//! connection: several different `Content-Length` values, a `Content-Length` that is not a
//! plain decimal, `chunked` anywhere but last, a `Transfer-Encoding` with bytes other than
//! visible ASCII, and `Transfer-Encoding` in an HTTP/1.0 response are errors (the proxy
//! answers 502 and closes the connection). A response with both `Transfer-Encoding` and
//! `Content-Length` is read as chunked, its `Content-Length` dropped and its connection not
//! reused, as the RFC asks of an intermediary.

use std::ops::Range;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::case::is_lower;
use crate::tokenize::{Refusal, Tokenized, tokenize_response};

/// The largest `Content-Length` accepted: hyper's limit too (`u64::MAX - 2`; it reserves the
/// two top values as markers for chunked and close-delimited bodies).
pub const MAX_CONTENT_LENGTH: u64 = u64::MAX - 2;

/// The most header fields a response head may have.
const MAX_FIELDS: usize = 512;

/// How the body of a response is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body: a response to HEAD, a 1xx, 204 or 304, or `Content-Length: 0`.
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// A chunked body.
    Chunked,
    /// Everything until the upstream closes the connection.
    UntilClose,
}

/// A parsed response head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    /// The status code.
    pub status: u16,
    /// The minor HTTP version (0 or 1).
    pub version_minor: u8,
    /// The length of the head, blank line included: the body starts there.
    pub head_len: usize,
    /// Header fields as (name, value) ranges of the parsed buffer, in order.
    pub fields: Vec<(Range<usize>, Range<usize>)>,
    /// How the body is delimited.
    pub framing: BodyFraming,
    /// True when the connection may carry another request once this response is read.
    pub keep_alive: bool,
    /// The `Content-Length` the head declares (one value, however many times it is repeated).
    pub content_length: Option<u64>,
    /// True when the fields can go to the client as they are, less the hop-by-hop ones
    /// ([`ResponseHead::client_fields`]): the `Connection` field names nothing beyond
    /// `keep-alive` and `close`, and `Content-Length` comes once, with one value.
    pub plain: bool,
}

/// What one parse of the bytes read so far found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseOutcome {
    /// The head is not complete yet: read more.
    Partial,
    /// A complete head.
    Complete(ResponseHead),
}

/// Why a response head was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadError {
    /// Not HTTP/1.x, or broken syntax.
    Malformed(&'static str),
    /// The head is larger than the limit.
    TooLarge,
    /// More header fields than the codec accepts.
    TooManyFields,
}

impl std::fmt::Display for HeadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HeadError::Malformed(why) => write!(f, "malformed response head: {why}"),
            HeadError::TooLarge => f.write_str("response head too large"),
            HeadError::TooManyFields => f.write_str("too many response header fields"),
        }
    }
}

impl std::error::Error for HeadError {}

/// Parses the response head at the start of `buf`. `head_request` says the request was HEAD
/// (its response has no body whatever its headers say); a head longer than `max_head` bytes is
/// refused.
pub fn parse_response_head(
    buf: &[u8],
    head_request: bool,
    max_head: usize,
) -> Result<ParseOutcome, HeadError> {
    let tokens = match tokenize_response(buf, MAX_FIELDS) {
        Ok(Some(t)) => t,
        Ok(None) if buf.len() > max_head => return Err(HeadError::TooLarge),
        Ok(None) => return Ok(ParseOutcome::Partial),
        Err(Refusal::TooManyFields) => return Err(HeadError::TooManyFields),
        Err(Refusal::Syntax(why)) => return Err(HeadError::Malformed(why)),
    };
    if tokens.len > max_head {
        return Err(HeadError::TooLarge);
    }
    let Tokenized {
        version_minor,
        status,
        len,
        fields,
    } = tokens;
    if !(100..=999).contains(&status) {
        return Err(HeadError::Malformed("status out of range"));
    }
    let read = framing(buf, &fields, version_minor, status, head_request)?;
    Ok(ParseOutcome::Complete(ResponseHead {
        status,
        version_minor,
        head_len: len,
        fields,
        framing: read.framing,
        keep_alive: read.keep_alive,
        content_length: read.length,
        plain: read.plain,
    }))
}

/// What [`framing`] reads from a head's fields.
struct Read {
    framing: BodyFraming,
    keep_alive: bool,
    length: Option<u64>,
    plain: bool,
}

/// Decides the body framing and connection reuse of a response, and reads its declared
/// length and whether it is plain.
fn framing(
    buf: &[u8],
    fields: &[(Range<usize>, Range<usize>)],
    version_minor: u8,
    status: u16,
    head_request: bool,
) -> Result<Read, HeadError> {
    let mut plain = true;
    let mut lengths = 0;
    let mut close = false;
    let mut keep_alive_token = false;
    let mut te_seen = false;
    let mut chunked_last = false;
    let mut length: Option<u64> = None;
    for (name, value) in fields {
        let (name, value) = (&buf[name.clone()], &buf[value.clone()]);
        if is_lower(name, b"connection") {
            // hyper takes no keep-alive from a value it cannot read as text (it would close
            // after the response); a `close` counts wherever it is.
            let readable = visible_ascii(value);
            for token in tokens(value) {
                let is_close = is_lower(token, b"close");
                let is_keep_alive = is_lower(token, b"keep-alive");
                close |= is_close;
                keep_alive_token |= readable && is_keep_alive;
                // Any other token names a field that must not reach the client.
                plain &= is_close || is_keep_alive;
            }
        } else if is_lower(name, b"transfer-encoding") {
            if !visible_ascii(value) {
                // hyper cannot read such a value and takes the body as close-delimited; a
                // reader that skips the odd coding would take it as chunked.
                return Err(HeadError::Malformed("Transfer-Encoding is not ASCII"));
            }
            // Every element counts, an empty one too (hyper's reading): a field with no
            // coding is still a Transfer-Encoding, and `chunked, ` does not end in chunked.
            for token in value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                if chunked_last {
                    // `chunked` must be the last coding, applied once.
                    return Err(HeadError::Malformed(
                        "chunked is not the last transfer coding",
                    ));
                }
                chunked_last = is_lower(token, b"chunked");
                te_seen = true;
            }
        } else if is_lower(name, b"content-length") {
            lengths += 1;
            plain &= lengths == 1 && !value.contains(&b',');
            for token in value.split(|&b| b == b',') {
                let n = decimal(token).ok_or(HeadError::Malformed("bad Content-Length"))?;
                if length.is_some_and(|l| l != n) {
                    return Err(HeadError::Malformed("conflicting Content-Length values"));
                }
                length = Some(n);
            }
        }
    }
    let read = |framing, keep_alive| Read {
        framing,
        keep_alive,
        length,
        plain,
    };
    let mut keep_alive = if version_minor == 0 {
        keep_alive_token && !close
    } else {
        !close
    };
    if status == 101 {
        return Ok(read(BodyFraming::Empty, false));
    }
    if head_request || (100..200).contains(&status) || status == 204 || status == 304 {
        return Ok(read(BodyFraming::Empty, keep_alive));
    }
    if te_seen {
        if version_minor == 0 {
            return Err(HeadError::Malformed(
                "Transfer-Encoding in an HTTP/1.0 response",
            ));
        }
        if length.is_some() {
            keep_alive = false;
        }
        return Ok(if chunked_last {
            read(BodyFraming::Chunked, keep_alive)
        } else {
            read(BodyFraming::UntilClose, false)
        });
    }
    Ok(match length {
        Some(0) => read(BodyFraming::Empty, keep_alive),
        Some(n) => read(BodyFraming::Length(n), keep_alive),
        None => read(BodyFraming::UntilClose, false),
    })
}

/// Whether a header value is visible ASCII, spaces and tabs only (`HeaderValue::to_str`).
fn visible_ascii(value: &[u8]) -> bool {
    value
        .iter()
        .all(|&b| b == b'\t' || (b' '..=b'~').contains(&b))
}

/// The comma-separated tokens of a header value, trimmed, empty ones skipped.
fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty())
}

/// A `Content-Length` value: digits only, no sign, at most [`MAX_CONTENT_LENGTH`].
fn decimal(value: &[u8]) -> Option<u64> {
    let digits = value.trim_ascii();
    if digits.is_empty() {
        return None;
    }
    let mut n: u64 = 0;
    for &b in digits {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    (n <= MAX_CONTENT_LENGTH).then_some(n)
}

/// Fields the proxy may add to a response's header map (its own headers, a request id, a
/// sticky cookie, compression's): room is made for them up front.
const ADDED_FIELDS: usize = 4;

/// Whether a field name is one of those that describe one hop and never go on to the client
/// (`Connection` included). Compared by length first: most names are rejected there.
fn hop_by_hop(name: &[u8]) -> bool {
    let is = |hop: &[u8]| is_lower(name, hop);
    match name.len() {
        2 => is(b"te"),
        7 => is(b"trailer") || is(b"upgrade"),
        10 => is(b"connection") || is(b"keep-alive"),
        16 => is(b"proxy-connection"),
        17 => is(b"transfer-encoding"),
        18 => is(b"proxy-authenticate"),
        _ => false,
    }
}

fn is_content_length(name: &[u8]) -> bool {
    is_lower(name, b"content-length")
}

/// A field of a plain head that goes on to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientField<'b> {
    /// The name, in the upstream's case.
    pub name: &'b [u8],
    /// The value.
    pub value: &'b [u8],
    /// The field line as received, from its name to the end of its value, with its CRLF when
    /// the line ended in exactly that (`name:` OWS `value`, a valid field line to send on).
    pub line: &'b [u8],
}

/// The fields of a plain head that go on to the client (see [`ResponseHead::client_fields`]).
pub struct ClientFields<'b> {
    buf: &'b [u8],
    fields: std::slice::Iter<'b, (Range<usize>, Range<usize>)>,
    keep_length: bool,
}

impl<'b> Iterator for ClientFields<'b> {
    type Item = ClientField<'b>;

    fn next(&mut self) -> Option<Self::Item> {
        for (n, v) in self.fields.by_ref() {
            let (Some(name), Some(value)) = (self.buf.get(n.clone()), self.buf.get(v.clone()))
            else {
                continue;
            };
            if hop_by_hop(name) || (!self.keep_length && is_content_length(name)) {
                continue;
            }
            let with_crlf = self.buf.get(v.end..v.end + 2) == Some(b"\r\n");
            let end = if with_crlf { v.end + 2 } else { v.end };
            let Some(line) = self.buf.get(n.start..end) else {
                continue;
            };
            return Some(ClientField { name, value, line });
        }
        None
    }
}

impl ResponseHead {
    /// The value of the first field called `name` (case-insensitive), as bytes of `buf`.
    pub fn field<'b>(&self, buf: &'b [u8], name: &str) -> Option<&'b [u8]> {
        self.fields.iter().find_map(|(n, v)| {
            buf.get(n.clone())
                .filter(|n| n.eq_ignore_ascii_case(name.as_bytes()))
                .and_then(|_| buf.get(v.clone()))
        })
    }

    /// The header fields for the client, as (name, value) bytes of `buf` in the head's order,
    /// when the head is [`plain`](Self::plain) (else `None`: build a [`header_map`]). They are
    /// the fields [`header_map`](Self::header_map) holds, names in the upstream's case.
    ///
    /// [`header_map`]: Self::header_map
    pub fn client_fields<'b>(&'b self, buf: &'b [u8]) -> Option<ClientFields<'b>> {
        self.plain.then(|| ClientFields {
            buf,
            fields: self.fields.iter(),
            keep_length: self.keeps_length(),
        })
    }

    /// Whether `Content-Length` goes on to the client: only where it frames the body (a
    /// chunked or close-delimited body is framed again by the client side).
    fn keeps_length(&self) -> bool {
        matches!(self.framing, BodyFraming::Length(_) | BodyFraming::Empty)
    }

    /// The header fields for the client: hop-by-hop fields (and those the `Connection` field
    /// names) left out, and `Content-Length` left out unless it frames the body (a chunked or
    /// close-delimited body is framed again by the client side). `head` holds the head's bytes
    /// (at least `head_len` of them); values share its memory.
    pub fn header_map(&self, head: &Bytes) -> Result<HeaderMap, HeadError> {
        let mut map = HeaderMap::with_capacity(self.fields.len() + ADDED_FIELDS);
        let mut named: Vec<HeaderName> = Vec::new();
        let keep_length = self.keeps_length();
        // Several Content-Length fields (or a list in one) are made one at the end.
        let mut lengths = 0;
        let mut length_list = false;
        for (n, v) in &self.fields {
            let name_bytes = head
                .get(n.clone())
                .ok_or(HeadError::Malformed("field out of range"))?;
            let name = HeaderName::from_bytes(name_bytes)
                .map_err(|_| HeadError::Malformed("bad field name"))?;
            if name == header::CONNECTION && !self.plain {
                if let Some(value) = head.get(v.clone()) {
                    for token in tokens(value) {
                        // The common tokens name nothing that is forwarded.
                        if is_lower(token, b"keep-alive") || is_lower(token, b"close") {
                            continue;
                        }
                        if let Ok(listed) = HeaderName::from_bytes(token) {
                            named.push(listed);
                        }
                    }
                }
                continue;
            }
            if hop_by_hop(name_bytes) || (name == header::CONTENT_LENGTH && !keep_length) {
                continue;
            }
            if v.end > head.len() || v.start > v.end {
                return Err(HeadError::Malformed("field out of range"));
            }
            if name == header::CONTENT_LENGTH {
                lengths += 1;
                length_list |= head[v.clone()].contains(&b',');
            }
            let value = HeaderValue::from_maybe_shared(head.slice(v.clone()))
                .map_err(|_| HeadError::Malformed("bad field value"))?;
            map.append(name, value);
        }
        for name in named {
            if name != header::CONTENT_LENGTH {
                map.remove(&name);
            }
        }
        if let BodyFraming::Length(n) = self.framing {
            if lengths > 1 || length_list {
                map.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
            }
        }
        Ok(map)
    }
}

#[cfg(test)]
mod tests;
