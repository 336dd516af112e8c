//! The HTTP/1 head tokenizer: a response's status line or a request's request line, then the
//! field lines, as ranges of the read buffer, in one pass over the bytes with no copy and no
//! allocation beyond the field list.
//!
//! It accepts exactly what `httparse` accepts with its default configuration (hyper's), which
//! the tests check byte by byte against httparse and the `response_head` and `request_head`
//! fuzz targets check against hyper: empty lines before the first line are skipped; a request
//! line is a token method, one space, a target of bytes above space but DEL (valid UTF-8), one
//! space and the version; the version is `HTTP/1.0` or `HTTP/1.1`; a status line is the
//! version, one space and a three-digit status, then a reason phrase (after one space, or
//! absent) of tabs, spaces, visible ASCII and obs-text; a field name is one or more token
//! characters followed directly by `:`; a value holds tabs, spaces, visible ASCII and
//! obs-text, its leading spaces and tabs skipped and trailing ones trimmed; every line ends in
//! CRLF or a bare LF; obsolete line folding is refused. Where the bytes end before the head
//! does, the answer is partial unless a byte already seen is wrong.

use std::ops::Range;

/// A complete response head's tokens.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Tokenized {
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub(crate) version_minor: u8,
    /// The three-digit status code (0 to 999: the caller judges its range).
    pub(crate) status: u16,
    /// The head's length, blank line included.
    pub(crate) len: usize,
    /// (name, value) ranges of each field line, in order.
    pub(crate) fields: Vec<(Range<usize>, Range<usize>)>,
}

/// Why the bytes are not a head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Broken syntax; the text says where.
    Syntax(&'static str),
    /// More than the allowed number of fields.
    TooManyFields,
}

/// Byte classes, one table: bit 0 a token character (field names), bit 1 a value character
/// (tab, space, visible ASCII, obs-text).
static CLASS: [u8; 256] = classes();

const TOKEN: u8 = 1;
const VALUE: u8 = 2;

const fn classes() -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut b = 0usize;
    while b < 256 {
        let c = b as u8;
        let token = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'!' | b'#'
                    | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'-'
                    | b'.'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
            );
        let value = c == b'\t' || (c >= b' ' && c != 0x7f);
        t[b] = (if token { TOKEN } else { 0 }) | (if value { VALUE } else { 0 });
        b += 1;
    }
    t
}

fn is(b: u8, class: u8) -> bool {
    CLASS[usize::from(b)] & class != 0
}

/// The end of the token bytes (a field name's) from `i`: eight at a time (one table look-up
/// each, no branch) while all eight are tokens, then one by one.
fn skip_token(buf: &[u8], mut i: usize) -> usize {
    while let Some(chunk) = buf.get(i..i + 8) {
        let all = chunk
            .iter()
            .fold(TOKEN, |all, &b| all & CLASS[usize::from(b)]);
        if all & TOKEN == 0 {
            break;
        }
        i += 8;
    }
    while i < buf.len() && is(buf[i], TOKEN) {
        i += 1;
    }
    i
}

/// The end of the value bytes (tab, space, visible ASCII, obs-text) from `i`: eight at a time,
/// to the first control character or DEL among them (a tab is passed over), then one by one
/// for the last few bytes of the buffer.
fn skip_value(buf: &[u8], mut i: usize) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    while let Some(chunk) = buf.get(i..i + 8) {
        let Ok(bytes) = <[u8; 8]>::try_from(chunk) else {
            break;
        };
        let x = u64::from_le_bytes(bytes);
        // The high bit of each byte below 0x20 or equal to 0x7f. A borrow can mark a byte
        // above a marked one falsely, never below: the lowest mark is exact.
        let control = x.wrapping_sub(ONES * 0x20) & !x & HIGH;
        let y = x ^ (ONES * 0x7f);
        let del = y.wrapping_sub(ONES) & !y & HIGH;
        let marks = control | del;
        if marks == 0 {
            i += 8;
            continue;
        }
        i += (marks.trailing_zeros() / 8) as usize;
        if buf[i] != b'\t' {
            return i;
        }
        i += 1;
    }
    while i < buf.len() && is(buf[i], VALUE) {
        i += 1;
    }
    i
}

/// The line end at `i` (CRLF or LF): the index after it, `Ok(None)` when the bytes end first.
fn line_end(buf: &[u8], i: usize, why: &'static str) -> Result<Option<usize>, Refusal> {
    match buf.get(i) {
        None => Ok(None),
        Some(b'\n') => Ok(Some(i + 1)),
        Some(b'\r') => match buf.get(i + 1) {
            None => Ok(None),
            Some(b'\n') => Ok(Some(i + 2)),
            Some(_) => Err(Refusal::Syntax(why)),
        },
        Some(_) => Err(Refusal::Syntax(why)),
    }
}

/// Reads a step that may find the bytes ended: returns `Ok(None)` (a partial head) then.
macro_rules! more {
    ($e:expr) => {
        match $e {
            Some(v) => v,
            None => return Ok(None),
        }
    };
}

/// Skips the empty lines a head may start with; the index of its first line.
fn skip_empty_lines(buf: &[u8]) -> Result<Option<usize>, Refusal> {
    let mut i = 0;
    while matches!(buf.get(i), Some(b'\r' | b'\n')) {
        i = more!(line_end(buf, i, "a CR without LF before the first line")?);
    }
    Ok(Some(i))
}

/// The version at `i` (`HTTP/1.0` or `HTTP/1.1`): its minor digit.
fn version(buf: &[u8], i: usize) -> Result<Option<u8>, Refusal> {
    match buf.get(i..i + 8) {
        Some(b"HTTP/1.0") => Ok(Some(0)),
        Some(b"HTTP/1.1") => Ok(Some(1)),
        Some(_) => Err(Refusal::Syntax("not HTTP/1.0 or HTTP/1.1")),
        None => {
            // Fewer than 8 bytes: partial while they are a prefix of `HTTP/1.`.
            let rest = &buf[i..];
            let prefix = b"HTTP/1.";
            let n = rest.len().min(prefix.len());
            if rest[..n] == prefix[..n] {
                Ok(None)
            } else {
                Err(Refusal::Syntax("not HTTP/1.0 or HTTP/1.1"))
            }
        }
    }
}

/// The field lines from `i` to the blank line that ends the head, each given to `field` as
/// (name, value) ranges; the head's length. More than `max_fields` fields is an error once
/// the first field beyond them is complete.
fn field_lines(
    buf: &[u8],
    mut i: usize,
    max_fields: usize,
    mut field: impl FnMut(Range<usize>, Range<usize>),
) -> Result<Option<usize>, Refusal> {
    let mut count = 0;
    loop {
        // A field line, or the blank line that ends the head.
        let first = *more!(buf.get(i));
        if first == b'\r' || first == b'\n' {
            return Ok(Some(more!(line_end(
                buf,
                i,
                "a CR without LF at the end of the head"
            )?)));
        }
        if !is(first, TOKEN) {
            return Err(Refusal::Syntax("a field name starts with a non-token byte"));
        }
        let name = i..skip_token(buf, i + 1);
        i = name.end;
        if *more!(buf.get(i)) != b':' {
            return Err(Refusal::Syntax("a field name is not followed by a colon"));
        }
        i += 1;
        // Leading spaces and tabs are not part of the value.
        while matches!(buf.get(i), Some(b' ' | b'\t')) {
            i += 1;
        }
        let value_start = i;
        let mut value_end = skip_value(buf, i);
        i = more!(line_end(
            buf,
            value_end,
            "a control character in a field value"
        )?);
        while value_end > value_start && matches!(buf[value_end - 1], b' ' | b'\t') {
            value_end -= 1;
        }
        if count == max_fields {
            return Err(Refusal::TooManyFields);
        }
        count += 1;
        field(name, value_start..value_end);
    }
}

/// Tokenizes the response head at the start of `buf`, with at most `max_fields` fields:
/// `Ok(None)` while it is incomplete.
pub(crate) fn tokenize_response(
    buf: &[u8],
    max_fields: usize,
) -> Result<Option<Tokenized>, Refusal> {
    let mut i = more!(skip_empty_lines(buf)?);
    let version_minor = more!(version(buf, i)?);
    i += 8;
    if *more!(buf.get(i)) != b' ' {
        return Err(Refusal::Syntax("no space after the version"));
    }
    i += 1;
    let mut status = 0u16;
    for _ in 0..3 {
        let d = *more!(buf.get(i));
        if !d.is_ascii_digit() {
            return Err(Refusal::Syntax("the status is not three digits"));
        }
        status = status * 10 + u16::from(d - b'0');
        i += 1;
    }
    const STATUS_LINE: &str = "a control character in the status line";
    i = match *more!(buf.get(i)) {
        // The reason phrase: tab, space, visible ASCII, obs-text.
        b' ' => more!(line_end(buf, skip_value(buf, i + 1), STATUS_LINE)?),
        b'\r' | b'\n' => more!(line_end(buf, i, STATUS_LINE)?),
        _ => return Err(Refusal::Syntax("no space after the status")),
    };
    let mut fields = Vec::with_capacity(8);
    let len = more!(field_lines(buf, i, max_fields, |n, v| fields.push((n, v)))?);
    Ok(Some(Tokenized {
        version_minor,
        status,
        len,
        fields,
    }))
}

/// A request line's parts, as ranges of the parsed buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestLine {
    /// The method (a token).
    pub method: Range<usize>,
    /// The request target (visible ASCII or valid UTF-8, no space).
    pub target: Range<usize>,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub version_minor: u8,
}

/// Tokenizes the request head at the start of `buf`, as `httparse` does with its default
/// configuration: each of at most `max_fields` fields is given to `field` as (name, value)
/// ranges. `Ok(None)` while the head is incomplete (fields given so far are then to be
/// discarded); else the request line and the head's length, blank line included.
pub fn tokenize_request(
    buf: &[u8],
    max_fields: usize,
    field: impl FnMut(Range<usize>, Range<usize>),
) -> Result<Option<(RequestLine, usize)>, Refusal> {
    let mut i = more!(skip_empty_lines(buf)?);
    // The method: a token, then one space.
    if !is(*more!(buf.get(i)), TOKEN) {
        return Err(Refusal::Syntax("the method is not a token"));
    }
    let method = i..skip_token(buf, i + 1);
    i = method.end;
    if *more!(buf.get(i)) != b' ' {
        return Err(Refusal::Syntax("the method is not a token"));
    }
    i += 1;
    // The target: bytes above space but DEL, at least one, then one space; valid UTF-8.
    let start = i;
    while i < buf.len() && buf[i] > b' ' && buf[i] != 0x7f {
        i += 1;
    }
    if *more!(buf.get(i)) != b' ' || i == start {
        return Err(Refusal::Syntax("a bad request target"));
    }
    let target = start..i;
    if !buf[target.clone()].is_ascii() && std::str::from_utf8(&buf[target.clone()]).is_err() {
        return Err(Refusal::Syntax("a request target that is not UTF-8"));
    }
    i += 1;
    let version_minor = more!(version(buf, i)?);
    i = more!(line_end(buf, i + 8, "no line end after the version")?);
    let len = more!(field_lines(buf, i, max_fields, field)?);
    Ok(Some((
        RequestLine {
            method,
            target,
            version_minor,
        },
        len,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_end_at_their_first_non_token_byte_wherever_it_falls() {
        for len in 0..40 {
            for stop in [b':', b' ', b'"', b'(', b'@', 0x7f, 0x80, 0u8] {
                let mut buf = vec![b'n'; len];
                buf.push(stop);
                buf.extend_from_slice(b"tail-and-more-of-it");
                assert_eq!(skip_token(&buf, 0), len, "stop {stop:#x} after {len}");
            }
        }
    }

    #[test]
    fn values_are_skipped_to_their_first_control_byte_wherever_it_falls() {
        for len in 0..40 {
            for stop in [b'\r', b'\n', 0u8, 0x1f, 0x7f] {
                let mut buf = vec![b'v'; len];
                buf.push(stop);
                buf.extend_from_slice(b"tail");
                assert_eq!(skip_value(&buf, 0), len, "stop {stop:#x} after {len}");
            }
            let mut buf = vec![b'\t'; len];
            buf.extend_from_slice(b"\xff ~");
            assert_eq!(
                skip_value(&buf, 0),
                buf.len(),
                "tabs, obs-text, space and tilde"
            );
            // Tabs among other bytes, then a stop with bytes after it (the eight-byte path).
            let mut buf: Vec<u8> = (0..len)
                .map(|k| if k % 3 == 0 { b'\t' } else { b'x' })
                .collect();
            buf.extend_from_slice(b"\r\nNext: field\r\n\r\n");
            assert_eq!(
                skip_value(&buf, 0),
                len,
                "tabs passed over, CR found after {len}"
            );
        }
    }

    /// httparse's reading of the same bytes, in the same shape (the reference parser).
    fn reference(buf: &[u8], max_fields: usize) -> Result<Option<Tokenized>, Refusal> {
        let mut slots = vec![httparse::EMPTY_HEADER; max_fields];
        let mut resp = httparse::Response::new(&mut slots);
        match resp.parse(buf) {
            Ok(httparse::Status::Partial) => Ok(None),
            Ok(httparse::Status::Complete(len)) => {
                let base = buf.as_ptr() as usize;
                let at = |s: &[u8]| s.as_ptr() as usize - base;
                let fields = resp
                    .headers
                    .iter()
                    .map(|h| {
                        let (n, v) = (at(h.name.as_bytes()), at(h.value));
                        (n..n + h.name.len(), v..v + h.value.len())
                    })
                    .collect();
                Ok(Some(Tokenized {
                    version_minor: resp.version.unwrap_or(9),
                    status: resp.code.unwrap_or(0),
                    len,
                    fields,
                }))
            }
            Err(httparse::Error::TooManyHeaders) => Err(Refusal::TooManyFields),
            Err(_) => Err(Refusal::Syntax("")),
        }
    }

    fn same_as_httparse(buf: &[u8], max_fields: usize) {
        let ours = tokenize_response(buf, max_fields).map_err(|e| match e {
            Refusal::Syntax(_) => Refusal::Syntax(""),
            other => other,
        });
        let theirs = reference(buf, max_fields);
        // An empty value's range may sit anywhere on its line: compare values as bytes.
        match (&ours, &theirs) {
            (Ok(Some(a)), Ok(Some(b))) => {
                assert_eq!(
                    (a.version_minor, a.status, a.len),
                    (b.version_minor, b.status, b.len),
                    "{:?}",
                    String::from_utf8_lossy(buf)
                );
                let text = |t: &Tokenized| -> Vec<(Vec<u8>, Vec<u8>)> {
                    t.fields
                        .iter()
                        .map(|(n, v)| (buf[n.clone()].to_vec(), buf[v.clone()].to_vec()))
                        .collect()
                };
                assert_eq!(text(a), text(b), "{:?}", String::from_utf8_lossy(buf));
            }
            _ => assert_eq!(ours, theirs, "{:?}", String::from_utf8_lossy(buf)),
        }
    }

    #[test]
    fn agrees_with_httparse_on_every_prefix_of_varied_heads() {
        let heads: &[&[u8]] = &[
            b"HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Length: 3\r\n\r\nok\n",
            b"\r\n\nHTTP/1.0 404 Not Found\nA:b\n\n",
            b"HTTP/1.1 204\r\n\r\n",
            b"HTTP/1.1 200 \r\nX:  \t \r\nY: a b \t\r\n\r\n",
            b"HTTP/1.1 200 caf\xc3\xa9 \xff\r\nX: \x80v\xfe\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nX : a\r\n\r\n",
            b"HTTP/1.1 200 OK\r\n X: a\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nX: a\r\n folded\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nX: a\x7f\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nX: a\x00\r\n\r\n",
            b"HTTP/1.1 200 OK\r\n:a\r\n\r\n",
            b"HTTP/1.1 200 O\x01K\r\n\r\n",
            b"HTTP/1.1  200 OK\r\n\r\n",
            b"HTTP/1.2 200 OK\r\n\r\n",
            b"HTTP/2.0 200 OK\r\n\r\n",
            b"http/1.1 200 OK\r\n\r\n",
            b"HTTP/1.1 2x0 OK\r\n\r\n",
            b"HTTP/1.1 200OK\r\n\r\n",
            b"HTTP/1.1 099 Low\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nX:\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nX:\n\r\n",
            b"HTTP/1.1 200 OK\r\nX;y: z\r\n\r\n",
            b"HTTP/1.1 200 OK\r\n\rx",
            b"\rHTTP/1.1 200 OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n",
        ];
        every_prefix(heads, &[2, 64], same_as_httparse);
    }

    #[test]
    fn agrees_with_httparse_on_every_single_byte_in_each_place() {
        every_byte_in_each_place(b"HTTP/1.1 200 OK\r\nName: va lue\r\n\r\n", |h| {
            same_as_httparse(h, 64)
        });
    }

    /// Request heads: ours and httparse's reading, compared as text.
    fn same_request_as_httparse(buf: &[u8], max_fields: usize) {
        type Fields = Vec<(Vec<u8>, Vec<u8>)>;
        let mut ours_fields: Fields = Vec::new();
        let ours = tokenize_request(buf, max_fields, |n, v| {
            ours_fields.push((buf[n].to_vec(), buf[v].to_vec()))
        });
        let mut slots = vec![httparse::EMPTY_HEADER; max_fields];
        let mut req = httparse::Request::new(&mut slots);
        let theirs = req.parse(buf);
        let show = String::from_utf8_lossy(buf);
        match (ours, theirs) {
            (Ok(Some((line, len))), Ok(httparse::Status::Complete(their_len))) => {
                assert_eq!(len, their_len, "{show:?}");
                assert_eq!(
                    Some(&buf[line.method]),
                    req.method.map(str::as_bytes),
                    "{show:?}"
                );
                assert_eq!(
                    Some(&buf[line.target]),
                    req.path.map(str::as_bytes),
                    "{show:?}"
                );
                assert_eq!(Some(line.version_minor), req.version, "{show:?}");
                let theirs: Fields = req
                    .headers
                    .iter()
                    .map(|h| (h.name.as_bytes().to_vec(), h.value.to_vec()))
                    .collect();
                assert_eq!(ours_fields, theirs, "{show:?}");
            }
            (Ok(None), Ok(httparse::Status::Partial)) => {}
            (Err(Refusal::TooManyFields), Err(httparse::Error::TooManyHeaders)) => {}
            (Err(Refusal::Syntax(_)), Err(e)) if e != httparse::Error::TooManyHeaders => {}
            (ours, theirs) => panic!("{show:?}: ours {ours:?}, httparse {theirs:?}"),
        }
    }

    #[test]
    fn requests_agree_with_httparse_on_every_prefix_of_varied_heads() {
        let heads: &[&[u8]] = &[
            b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
            b"\r\n\nPOST /a?b=c HTTP/1.0\nContent-Length: 3\n\nabc",
            b"OPTIONS * HTTP/1.1\r\n\r\n",
            b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
            b"GET /caf\xc3\xa9 HTTP/1.1\r\n\r\n",
            b"GET /\xff HTTP/1.1\r\n\r\n",
            b"GET  / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1 \r\n\r\n",
            b"GET / HTTP/1.2\r\n\r\n",
            b"GET / http/1.1\r\n\r\n",
            b"G(T / HTTP/1.1\r\n\r\n",
            b" GET / HTTP/1.1\r\n\r\n",
            b"GET /a\x7fb HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\rX\r\n\r\n",
            b"GET / HTTP/1.1\r\nX : a\r\n\r\n",
            b"GET / HTTP/1.1\r\nX: a\r\n folded\r\n\r\n",
            b"GET / HTTP/1.1\r\nA: 1\r\nB:\t2 \r\nC:\r\n\r\n",
        ];
        every_prefix(heads, &[1, 100], same_request_as_httparse);
    }

    #[test]
    fn requests_agree_with_httparse_on_every_single_byte_in_each_place() {
        every_byte_in_each_place(b"GET /p?q HTTP/1.1\r\nName: va lue\r\n\r\n", |h| {
            same_request_as_httparse(h, 100)
        });
    }

    /// Every prefix of each head, with each field limit.
    fn every_prefix(heads: &[&[u8]], limits: &[usize], check: fn(&[u8], usize)) {
        for head in heads {
            for end in 0..=head.len() {
                for &max in limits {
                    check(&head[..end], max);
                }
            }
        }
    }

    /// The template with each of its bytes replaced by each of the 256 values in turn.
    fn every_byte_in_each_place(template: &[u8], check: impl Fn(&[u8])) {
        for at in 0..template.len() {
            for b in 0..=255u8 {
                let mut head = template.to_vec();
                head[at] = b;
                check(&head);
            }
        }
    }
}
