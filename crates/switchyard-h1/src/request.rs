//! Request heads and chunked request bodies, written into a buffer.

use std::fmt::Write as _;

use bytes::{BufMut, BytesMut};
use http::Method;
use http::header::HeaderMap;

use crate::case::is_lower;

/// How the request body is framed on the upstream connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyLength {
    /// No body and no framing header (a GET, say).
    None,
    /// `Content-Length: n` (a known size, 0 included).
    Known(u64),
    /// `Transfer-Encoding: chunked` (a streamed body of unknown size).
    Chunked,
}

/// The end of a chunked body with no trailers.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// A field the caller adds after a header map's, as its name and value: the caller vouches
/// that both are valid (a token, and the bytes of an `http::HeaderValue`).
pub type ExtraField<'a> = (&'a str, &'a [u8]);

/// Appends a request head to `out`: the request line (always HTTP/1.1), every field of
/// `headers` but the framing ones, the `extra` fields, then the framing field `body` calls
/// for, then the blank line. Field names and values were validated by `http` (and `extra`'s
/// by the caller), so nothing here can break the message's framing.
pub fn encode_request_head(
    out: &mut BytesMut,
    method: &Method,
    target: &str,
    headers: &HeaderMap,
    extra: &[ExtraField<'_>],
    body: BodyLength,
) {
    let fields = || {
        headers
            .iter()
            .map(|(name, value)| (name.as_str().as_bytes(), value.as_bytes()))
    };
    encode(out, method, target, fields, extra, body);
}

/// [`encode_request_head`] for fields given as (name, value) bytes, in the order they are to
/// be written (names as they are given). The caller vouches that
/// each name is a token and each value the bytes of an `http::HeaderValue` (as a request head
/// tokenized by [`tokenize_request`](crate::tokenize_request) has them).
pub fn encode_request_head_from<'a>(
    out: &mut BytesMut,
    method: &Method,
    target: &str,
    fields: impl Iterator<Item = (&'a [u8], &'a [u8])> + Clone,
    extra: &[ExtraField<'_>],
    body: BodyLength,
) {
    encode(out, method, target, || fields.clone(), extra, body);
}

/// [`encode_request_head`] for fields given as whole lines: `lines` is field lines, each
/// `name: value` and CRLF, none of them a framing field (the caller vouches for it, as for
/// [`encode_request_head_from`]'s fields). They are copied as they are.
pub fn encode_request_head_lines(
    out: &mut BytesMut,
    method: &Method,
    target: &str,
    lines: &[u8],
    extra: &[ExtraField<'_>],
    body: BodyLength,
) {
    let mut size = method.as_str().len() + target.len() + lines.len() + 16 + 32;
    for (name, value) in extra {
        size += name.len() + value.len() + 4;
    }
    out.reserve(size);
    request_line(out, method, target);
    out.put_slice(lines);
    end(out, extra, body);
}

/// Writes the head with the fields `fields()` goes through (called twice: to size, to write).
fn encode<'a, I: Iterator<Item = (&'a [u8], &'a [u8])>>(
    out: &mut BytesMut,
    method: &Method,
    target: &str,
    fields: impl Fn() -> I,
    extra: &[ExtraField<'_>],
    body: BodyLength,
) {
    let mut size = method.as_str().len() + target.len() + 16 + 32;
    for (name, value) in fields() {
        size += name.len() + value.len() + 4;
    }
    for (name, value) in extra {
        size += name.len() + value.len() + 4;
    }
    out.reserve(size);
    request_line(out, method, target);
    for (name, value) in fields() {
        if is_framing(name) {
            continue;
        }
        out.put_slice(name);
        out.put_slice(b": ");
        out.put_slice(value);
        out.put_slice(b"\r\n");
    }
    end(out, extra, body);
}

/// The request line, always HTTP/1.1.
fn request_line(out: &mut BytesMut, method: &Method, target: &str) {
    out.put_slice(method.as_str().as_bytes());
    out.put_u8(b' ');
    out.put_slice(target.as_bytes());
    out.put_slice(b" HTTP/1.1\r\n");
}

/// The `extra` fields, the framing field `body` calls for and the blank line.
fn end(out: &mut BytesMut, extra: &[ExtraField<'_>], body: BodyLength) {
    for (name, value) in extra {
        out.put_slice(name.as_bytes());
        out.put_slice(b": ");
        out.put_slice(value);
        out.put_slice(b"\r\n");
    }
    match body {
        BodyLength::None => {}
        BodyLength::Known(n) => {
            // Writing into a BytesMut cannot fail.
            let _ = write!(out, "content-length: {n}\r\n");
        }
        BodyLength::Chunked => out.put_slice(b"transfer-encoding: chunked\r\n"),
    }
    out.put_slice(b"\r\n");
}

/// Whether `name` (a token) is `Content-Length` or `Transfer-Encoding`, in any case.
fn is_framing(name: &[u8]) -> bool {
    is_lower(name, b"content-length") || is_lower(name, b"transfer-encoding")
}

/// Appends the size line of a chunk of `len` bytes (the caller appends the data and `\r\n`).
pub fn encode_chunk(out: &mut BytesMut, len: usize) {
    let _ = write!(out, "{len:x}\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderValue, header};

    #[test]
    fn fields_given_as_bytes_or_lines_are_written_as_given() {
        let extra: [ExtraField<'_>; 1] = [("X-Added", b"yes")];
        let mut from = BytesMut::new();
        let fields = [
            (&b"Host"[..], &b"app"[..]),
            (b"Content-Length", b"5"),
            (b"X-A", b"1  2"),
            (b"transfer-encoding", b"chunked"),
        ];
        encode_request_head_from(
            &mut from,
            &Method::GET,
            "/p",
            fields.iter().copied(),
            &extra,
            BodyLength::None,
        );
        assert_eq!(
            &from[..],
            b"GET /p HTTP/1.1\r\nHost: app\r\nX-A: 1  2\r\nX-Added: yes\r\n\r\n"
        );
        let mut lines = BytesMut::new();
        encode_request_head_lines(
            &mut lines,
            &Method::POST,
            "/",
            b"Host: app\r\nX-A: 1\r\n",
            &extra,
            BodyLength::Known(3),
        );
        assert_eq!(
            &lines[..],
            b"POST / HTTP/1.1\r\nHost: app\r\nX-A: 1\r\nX-Added: yes\r\ncontent-length: 3\r\n\r\n"
        );
    }

    #[test]
    fn heads_carry_one_framing_field() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("app"));
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("99"));
        headers.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        headers.append("x-a", HeaderValue::from_static("1"));
        headers.append("x-a", HeaderValue::from_static("2"));
        let mut out = BytesMut::new();
        encode_request_head(
            &mut out,
            &Method::POST,
            "/p?q=1",
            &headers,
            &[("X-Added", b"yes")],
            BodyLength::Known(5),
        );
        assert_eq!(
            &out[..],
            b"POST /p?q=1 HTTP/1.1\r\nhost: app\r\nx-a: 1\r\nx-a: 2\r\nX-Added: yes\r\ncontent-length: 5\r\n\r\n"
        );
        out.clear();
        encode_request_head(
            &mut out,
            &Method::GET,
            "/",
            &HeaderMap::new(),
            &[],
            BodyLength::None,
        );
        assert_eq!(&out[..], b"GET / HTTP/1.1\r\n\r\n");
        out.clear();
        encode_request_head(
            &mut out,
            &Method::PUT,
            "/",
            &HeaderMap::new(),
            &[],
            BodyLength::Chunked,
        );
        assert_eq!(
            &out[..],
            b"PUT / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n"
        );
        out.clear();
        encode_chunk(&mut out, 255);
        assert_eq!(&out[..], b"ff\r\n");
    }

    #[test]
    fn an_encoded_head_parses_back_with_httparse() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("example.com"));
        headers.insert("x-forwarded-for", HeaderValue::from_static("127.0.0.1"));
        let mut out = BytesMut::new();
        encode_request_head(
            &mut out,
            &Method::DELETE,
            "/a/b",
            &headers,
            &[("X-Request-Id", b"abc")],
            BodyLength::Known(0),
        );
        let mut slots = [httparse::EMPTY_HEADER; 8];
        let mut req = httparse::Request::new(&mut slots);
        assert_eq!(req.parse(&out), Ok(httparse::Status::Complete(out.len())));
        assert_eq!((req.method, req.path), (Some("DELETE"), Some("/a/b")));
        assert_eq!(req.headers.len(), 4);
        assert_eq!(
            (req.headers[2].name, req.headers[2].value),
            ("X-Request-Id", &b"abc"[..])
        );
    }
}
