//! The access log's lines: text and JSON in the shape `tracing` gave access events, and the
//! NCSA combined format; every client-supplied string escaped, so no request can forge a line.

use std::io::Write as _;
use std::time::Duration;

use crate::digits::decimal as num;
use crate::observe::RequestLog;

/// `YYYY-MM-DDTHH:MM:SS` and `DD/Mon/YYYY:HH:MM:SS +0000` of a Unix time (UTC).
pub(super) fn stamps(since_epoch: Duration) -> ([u8; 19], [u8; 26]) {
    let t = i64::try_from(since_epoch.as_secs())
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok());
    (
        formatted(
            t,
            time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]"),
        ),
        formatted(
            t,
            time::macros::format_description!(
                "[day]/[month repr:short]/[year]:[hour]:[minute]:[second] +0000"
            ),
        ),
    )
}

/// `t` written as `format` says, in exactly `N` bytes (zeros when it cannot be).
fn formatted<const N: usize>(
    t: Option<time::OffsetDateTime>,
    format: &[time::format_description::BorrowedFormatItem<'_>],
) -> [u8; N] {
    let mut out = [b'0'; N];
    if let Some(b) = t
        .and_then(|t| t.format(format).ok())
        .as_deref()
        .and_then(|text| text.as_bytes().get(..N))
    {
        out.copy_from_slice(b);
    }
    out
}

/// Appends `v` zero-padded to `width` digits.
fn padded(buf: &mut Vec<u8>, v: u64, width: usize) {
    let start = buf.len();
    num(buf, v);
    let len = buf.len() - start;
    if len < width {
        let pad = width - len;
        buf.splice(start..start, std::iter::repeat_n(b'0', pad));
    }
}

/// Appends the time `stamp` + `.micros` + `Z`.
fn time(buf: &mut Vec<u8>, stamp: &[u8; 19], micros: u32) {
    buf.extend_from_slice(stamp);
    buf.push(b'.');
    padded(buf, u64::from(micros), 6);
    buf.push(b'Z');
}

/// Appends a duration in milliseconds with three decimals.
fn millis(buf: &mut Vec<u8>, d: Duration) {
    let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
    num(buf, micros / 1000);
    buf.push(b'.');
    padded(buf, micros % 1000, 3);
}

/// Appends `s` escaped for a JSON string or a quoted text value (`"`, `\` and control
/// characters escaped).
pub(super) fn escaped(buf: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    // Most strings need no escape: eight bytes are vetted at a time, and the part before the
    // first eight that may hold one is copied whole.
    let clean = plain_prefix(bytes);
    let Some(first) = bytes[clean..].iter().position(|&b| needs_escape(b)) else {
        buf.extend_from_slice(bytes);
        return;
    };
    buf.extend_from_slice(&bytes[..clean + first]);
    let mut rest = &bytes[clean + first..];
    // Runs of plain bytes are copied whole; only the bytes that need an escape are looked at
    // one by one.
    while let Some(at) = rest.iter().position(|&b| needs_escape(b)) {
        let (plain, tail) = rest.split_at(at);
        buf.extend_from_slice(plain);
        let Some((&b, tail)) = tail.split_first() else {
            return;
        };
        match b {
            b'"' => buf.extend_from_slice(b"\\\""),
            b'\\' => buf.extend_from_slice(b"\\\\"),
            b'\n' => buf.extend_from_slice(b"\\n"),
            b'\r' => buf.extend_from_slice(b"\\r"),
            b'\t' => buf.extend_from_slice(b"\\t"),
            _ => {
                buf.extend_from_slice(b"\\u00");
                buf.extend_from_slice(&crate::digits::hex_pair(b));
            }
        }
        rest = tail;
    }
    buf.extend_from_slice(rest);
}

/// The length of a prefix of `bytes`, a multiple of eight, in which no byte needs an escape.
/// Each eight bytes are tested as one word (a test that may flag a clean word, never miss a
/// byte that needs an escape; the exact test follows in [`escaped`]).
fn plain_prefix(bytes: &[u8]) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // A byte of `x` is flagged when it is zero (bit 7 of the byte set in the result).
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let mut clean = 0;
    for chunk in bytes.chunks_exact(8) {
        let Ok(word) = <[u8; 8]>::try_from(chunk) else {
            break;
        };
        let w = u64::from_le_bytes(word);
        // Below 0x20: control characters. Bytes of 0x80 and above never need an escape.
        let control = w.wrapping_sub(ONES * 0x20) & !w & HIGH;
        let flagged = control
            | zero(w ^ (ONES * u64::from(b'"')))
            | zero(w ^ (ONES * u64::from(b'\\')))
            | zero(w ^ (ONES * 0x7f));
        if flagged != 0 {
            break;
        }
        clean += 8;
    }
    clean
}

/// The bytes escaped in a JSON string or a quoted text value.
const ESCAPED: [bool; 256] = {
    let mut out = [false; 256];
    let mut b = 0;
    while b < 256 {
        out[b] = b < 0x20 || b == 0x7f || b == b'"' as usize || b == b'\\' as usize;
        b += 1;
    }
    out
};

/// Whether `b` is escaped in a JSON string or a quoted text value.
fn needs_escape(b: u8) -> bool {
    ESCAPED[usize::from(b)]
}

/// Appends a service or pool name (or `-`). Names are the config's, letters, digits, `-` and
/// `_` only (`switchyard_config` refuses others, in a file and in code alike), so nothing in
/// them needs an escape.
fn name(buf: &mut Vec<u8>, name: Option<&str>) {
    let name = name.unwrap_or("-");
    debug_assert!(!name.bytes().any(needs_escape), "{name:?}");
    buf.extend_from_slice(name.as_bytes());
}

/// Appends a socket address (or `-`); IPv4 without the formatting machinery.
fn addr(buf: &mut Vec<u8>, a: Option<std::net::SocketAddr>) {
    match a {
        Some(std::net::SocketAddr::V4(v4)) => crate::digits::ipv4(buf, v4),
        Some(a) => {
            let _ = write!(buf, "{a}");
        }
        None => buf.push(b'-'),
    }
}

/// What stands around the fields of a text or JSON line: the two carry the same fields in the
/// same order, escaped alike, and differ only in the text between them.
struct Shape {
    start: &'static [u8],
    client: &'static [u8],
    method: &'static [u8],
    path: &'static [u8],
    query: &'static [u8],
    status: &'static [u8],
    service: &'static [u8],
    colour: &'static [u8],
    upstream: &'static [u8],
    attempts: &'static [u8],
    bytes_in: &'static [u8],
    bytes_out: &'static [u8],
    duration_ms: &'static [u8],
    request_id: &'static [u8],
    error: &'static [u8],
    end: &'static [u8],
}

/// Text lines, in the shape `tracing`'s text formatter gave access events.
const TEXT: Shape = Shape {
    start: b"",
    client: b"  INFO switchyard::access: client=",
    method: b" method=",
    path: b" path=\"",
    query: b"\" query=\"",
    status: b"\" status=",
    service: b" service=\"",
    colour: b"\" colour=\"",
    upstream: b"\" upstream=",
    attempts: b" attempts=",
    bytes_in: b" bytes_in=",
    bytes_out: b" bytes_out=",
    duration_ms: b" duration_ms=",
    request_id: b" request_id=\"",
    error: b"\" error=\"",
    end: b"\"\n",
};

/// JSON lines, in the shape `tracing`'s JSON formatter gave access events.
const JSON: Shape = Shape {
    start: b"{\"timestamp\":\"",
    client: b"\",\"level\":\"INFO\",\"fields\":{\"client\":\"",
    method: b"\",\"method\":\"",
    path: b"\",\"path\":\"",
    query: b"\",\"query\":\"",
    status: b"\",\"status\":",
    service: b",\"service\":\"",
    colour: b"\",\"colour\":\"",
    upstream: b"\",\"upstream\":\"",
    attempts: b"\",\"attempts\":",
    bytes_in: b",\"bytes_in\":",
    bytes_out: b",\"bytes_out\":",
    duration_ms: b",\"duration_ms\":",
    request_id: b",\"request_id\":\"",
    error: b"\",\"error\":\"",
    end: b"\"},\"target\":\"switchyard::access\"}\n",
};

/// One JSON line (`JSON_LINE`) or text line. The shape is chosen by a constant so that each
/// format's copy of this function writes its texts as constants (a length known when compiling
/// is copied inline; one read from a table at run time is a call to `memcpy`).
pub(super) fn keyed_line<const JSON_LINE: bool>(
    buf: &mut Vec<u8>,
    stamp: &[u8; 19],
    micros: u32,
    log: &RequestLog<'_>,
) {
    let shape = if JSON_LINE { &JSON } else { &TEXT };
    buf.extend_from_slice(shape.start);
    time(buf, stamp, micros);
    buf.extend_from_slice(shape.client);
    buf.extend_from_slice(log.client.as_bytes());
    buf.extend_from_slice(shape.method);
    // A method is a token (`http` checks it): nothing in it needs an escape.
    buf.extend_from_slice(log.method.as_str().as_bytes());
    buf.extend_from_slice(shape.path);
    escaped(buf, log.path);
    buf.extend_from_slice(shape.query);
    if let Some(query) = log.query {
        escaped(buf, query);
    }
    buf.extend_from_slice(shape.status);
    num(buf, u64::from(log.status));
    buf.extend_from_slice(shape.service);
    name(buf, log.service);
    buf.extend_from_slice(shape.colour);
    name(buf, log.pool);
    buf.extend_from_slice(shape.upstream);
    addr(buf, log.upstream);
    buf.extend_from_slice(shape.attempts);
    num(buf, u64::from(log.attempts));
    buf.extend_from_slice(shape.bytes_in);
    num(buf, log.bytes_in.unwrap_or(0));
    buf.extend_from_slice(shape.bytes_out);
    num(buf, log.bytes_out.unwrap_or(0));
    buf.extend_from_slice(shape.duration_ms);
    millis(buf, log.duration);
    buf.extend_from_slice(shape.request_id);
    escaped(buf, log.request_id.unwrap_or("-"));
    buf.extend_from_slice(shape.error);
    match log.error {
        Some(error) => escaped(buf, error),
        None => buf.push(b'-'),
    }
    buf.extend_from_slice(shape.end);
}

/// One line in the NCSA combined format, as nginx's `combined` writes it:
/// `ADDRESS - - [TIME] "METHOD TARGET VERSION" STATUS BYTES "REFERER" "USER-AGENT"`. The
/// client's address without its port; the body bytes as `bytes_out` counts them (0 when not
/// known); a missing `Referer` or `User-Agent` is `-`. Client strings are escaped as nginx
/// escapes them: `"`, `\` and bytes below 0x20 or above 0x7e as `\xHH`.
pub(super) fn combined_line(buf: &mut Vec<u8>, local: &[u8; 26], log: &RequestLog<'_>) {
    buf.extend_from_slice(without_port(log.client).as_bytes());
    buf.extend_from_slice(b" - - [");
    buf.extend_from_slice(local);
    buf.extend_from_slice(b"] \"");
    buf.extend_from_slice(log.method.as_str().as_bytes());
    buf.push(b' ');
    hex_escaped(buf, log.path.as_bytes());
    if let Some(query) = log.query {
        buf.push(b'?');
        hex_escaped(buf, query.as_bytes());
    }
    buf.push(b' ');
    buf.extend_from_slice(version(log.version));
    buf.extend_from_slice(b"\" ");
    num(buf, u64::from(log.status));
    buf.push(b' ');
    num(buf, log.bytes_out.unwrap_or(0));
    for field in [log.referer, log.user_agent] {
        buf.extend_from_slice(b" \"");
        match field {
            Some(value) if !value.is_empty() => hex_escaped(buf, value),
            _ => buf.push(b'-'),
        }
        buf.push(b'"');
    }
    buf.push(b'\n');
}

/// A client address's text without its port: `a.b.c.d` of `a.b.c.d:port`, `::1` of
/// `[::1]:port`.
fn without_port(client: &str) -> &str {
    match client.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host),
        _ => client,
    }
}

/// The request line's protocol text of `v`.
fn version(v: http::Version) -> &'static [u8] {
    match v {
        http::Version::HTTP_09 => b"HTTP/0.9",
        http::Version::HTTP_10 => b"HTTP/1.0",
        http::Version::HTTP_2 => b"HTTP/2.0",
        http::Version::HTTP_3 => b"HTTP/3.0",
        _ => b"HTTP/1.1",
    }
}

/// Appends `bytes` escaped as nginx escapes its log's variables: `"`, `\` and bytes below
/// 0x20 or above 0x7e as `\xHH` (upper-case hex), runs of other bytes copied whole.
pub(super) fn hex_escaped(buf: &mut Vec<u8>, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let plain = |b: u8| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\';
    let mut rest = bytes;
    while let Some(at) = rest.iter().position(|&b| !plain(b)) {
        let (run, tail) = rest.split_at(at);
        buf.extend_from_slice(run);
        let Some((&b, tail)) = tail.split_first() else {
            return;
        };
        buf.extend_from_slice(&[
            b'\\',
            b'x',
            HEX[usize::from(b >> 4)],
            HEX[usize::from(b & 0xf)],
        ]);
        rest = tail;
    }
    buf.extend_from_slice(rest);
}
