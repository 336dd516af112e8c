//! Judging one HTTP/1 request head: where it ends, how its body is framed, and whether that
//! framing is unambiguous enough to forward.
//!
//! The head is tokenized by `switchyard_h1::tokenize_request` (which reads as httparse does
//! with its default configuration), exactly as the HTTP/1 server tokenizes it
//! (`server::h1::head::parse`), so "complete", "partial" and "malformed" mean the same here as
//! there.

/// The largest Content-Length accepted: hyper's limit (`u64::MAX - 2`; hyper uses the two top
/// values as markers), kept from when hyper's HTTP/1 server read from the guard. The HTTP/1
/// server accepts any `u64`, so it reads every accepted length the same way.
const MAX_CONTENT_LENGTH: u64 = u64::MAX - 2;

/// What the bytes of a pending head amount to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Head {
    /// The head is not complete yet.
    Partial,
    /// The bytes are not a request head; the HTTP/1 server refuses them the same way and
    /// answers 400.
    Malformed,
    /// A complete head of `len` bytes (leading empty lines included) that may be forwarded.
    Accepted {
        /// Bytes of the head, up to and including the empty line.
        len: usize,
        /// How the body after it is framed.
        body: Body,
        /// Whether the request could turn the connection into a tunnel.
        tunnel: Tunnel,
    },
    /// A complete head whose framing is ambiguous: it must never reach the HTTP/1 server.
    Rejected(&'static str),
    /// More header fields than allowed (complete or not): it gets 431.
    TooManyHeaders,
}

/// Whether a request could turn its connection into a tunnel (the HTTP/1 server's rule).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Tunnel {
    /// No: the connection stays HTTP/1 whatever the answer.
    No,
    /// An `Upgrade` header in HTTP/1.1: a 101 answer makes it a tunnel.
    Upgrade,
    /// `CONNECT`: a 2xx answer makes it a tunnel.
    Connect,
}

/// How a request body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Body {
    /// No body.
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// Judges the bytes of a pending head that may have at most `max_headers` header fields
/// (the HTTP/1 server's `max_headers`: a head the server would refuse is never parsed further).
pub(super) fn judge(buf: &[u8], max_headers: usize) -> Head {
    let mut seen = Seen::default();
    let tokens = switchyard_h1::tokenize_request(buf, max_headers, |name, value| {
        seen.field(&buf[name], &buf[value]);
    });
    match tokens {
        Ok(None) => Head::Partial,
        Ok(Some((line, len))) => {
            let connect = &buf[line.method] == b"CONNECT";
            match framing(&seen, line.version_minor == 1, connect) {
                Ok((body, tunnel)) => Head::Accepted { len, body, tunnel },
                Err(reason) => Head::Rejected(reason),
            }
        }
        Err(switchyard_h1::Refusal::TooManyFields) => Head::TooManyHeaders,
        Err(switchyard_h1::Refusal::Syntax(_)) => Head::Malformed,
    }
}

/// What the fields of a head say about its framing, noted field by field.
#[derive(Debug)]
struct Seen {
    /// `Transfer-Encoding` fields.
    te: usize,
    /// Whether every `Transfer-Encoding` value is exactly `chunked`.
    te_chunked: bool,
    /// `Content-Length` fields.
    cl: usize,
    /// The last `Content-Length` value, when it is a plain decimal (0 when there is none).
    length: Option<u64>,
    /// An `Upgrade` field.
    upgrade: bool,
    /// A framing field spelled with an underscore.
    underscore: bool,
}

impl Default for Seen {
    fn default() -> Self {
        Seen {
            te: 0,
            te_chunked: true,
            cl: 0,
            length: Some(0),
            upgrade: false,
            underscore: false,
        }
    }
}

impl Seen {
    fn field(&mut self, name: &[u8], value: &[u8]) {
        if name.eq_ignore_ascii_case(b"transfer-encoding") {
            self.te += 1;
            self.te_chunked &= value.trim_ascii().eq_ignore_ascii_case(b"chunked");
        } else if name.eq_ignore_ascii_case(b"content-length") {
            self.cl += 1;
            self.length = decimal(value);
        } else if name.eq_ignore_ascii_case(b"upgrade") {
            self.upgrade = true;
        } else if spells(name, b"transfer-encoding") || spells(name, b"content-length") {
            self.underscore = true;
        }
    }
}

/// The body framing of a parsed head and whether it may upgrade, or why it is ambiguous.
fn framing(seen: &Seen, http11: bool, connect: bool) -> Result<(Body, Tunnel), &'static str> {
    let &Seen {
        te,
        te_chunked,
        cl,
        length,
        upgrade,
        underscore,
    } = seen;
    if underscore {
        // Some servers (CGI, WSGI) read `Content_Length` as `Content-Length`: the upstream
        // could frame the body differently from us.
        return Err("framing header spelled with an underscore");
    }
    if te > 0 && cl > 0 {
        return Err("both Content-Length and Transfer-Encoding");
    }
    if te > 1 {
        return Err("several Transfer-Encoding headers");
    }
    if te == 1 && !te_chunked {
        return Err("Transfer-Encoding other than a single chunked");
    }
    if te == 1 && !http11 {
        return Err("Transfer-Encoding in an HTTP/1.0 request");
    }
    if cl > 1 {
        return Err("several Content-Length headers");
    }
    let body = match (te, length) {
        (1, _) => Body::Chunked,
        (_, None) => return Err("Content-Length is not a plain decimal number"),
        (_, Some(0)) => Body::Empty,
        (_, Some(n)) => Body::Length(n),
    };
    let tunnel = if connect {
        Tunnel::Connect
    } else if upgrade && http11 {
        Tunnel::Upgrade
    } else {
        Tunnel::No
    };
    Ok((body, tunnel))
}

/// A Content-Length value: digits only (no sign, list or spaces inside), at most
/// [`MAX_CONTENT_LENGTH`].
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

/// Whether `name` is `canonical` with some `-` written as `_` (case-insensitive).
fn spells(name: &[u8], canonical: &[u8]) -> bool {
    name.len() == canonical.len()
        && name.contains(&b'_')
        && name
            .iter()
            .zip(canonical)
            .all(|(&a, &c)| a.to_ascii_lowercase() == c || (a == b'_' && c == b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(lines: &str) -> Head {
        judge(format!("{lines}\r\n\r\n").as_bytes(), 100)
    }

    fn accepted(lines: &str) -> (Body, Tunnel) {
        match head(lines) {
            Head::Accepted { body, tunnel, .. } => (body, tunnel),
            other => panic!("{lines:?} was not accepted: {other:?}"),
        }
    }

    #[test]
    fn plain_heads_are_accepted_with_their_framing() {
        assert_eq!(
            accepted("GET / HTTP/1.1\r\nHost: a"),
            (Body::Empty, Tunnel::No)
        );
        assert_eq!(
            accepted("POST / HTTP/1.1\r\nHost: a\r\nContent-Length:  12 "),
            (Body::Length(12), Tunnel::No)
        );
        assert_eq!(
            accepted("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0"),
            (Body::Empty, Tunnel::No)
        );
        assert_eq!(
            accepted("POST / HTTP/1.1\r\nHost: a\r\ntransfer-encoding: Chunked"),
            (Body::Chunked, Tunnel::No)
        );
        assert_eq!(
            accepted("GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade"),
            (Body::Empty, Tunnel::Upgrade)
        );
        assert_eq!(
            accepted("CONNECT a:443 HTTP/1.1\r\nHost: a:443"),
            (Body::Empty, Tunnel::Connect)
        );
        assert_eq!(
            accepted("GET / HTTP/1.0\r\nUpgrade: websocket"),
            (Body::Empty, Tunnel::No)
        );
    }

    #[test]
    fn leading_empty_lines_count_in_the_length() {
        let buf = b"\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\nGET";
        assert!(matches!(judge(buf, 100), Head::Accepted { len: 31, .. }));
    }

    #[test]
    fn partial_and_malformed() {
        assert_eq!(judge(b"GET / HTTP/1.1\r\nHost: a\r\n", 100), Head::Partial);
        assert_eq!(
            judge(b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", 100),
            Head::Malformed
        );
        assert_eq!(judge(b"\x00\r\n\r\n", 100), Head::Malformed);
    }

    #[test]
    fn ambiguous_framing_is_rejected() {
        for lines in [
            "POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, chunked",
            "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked",
            "POST / HTTP/1.1\r\nTransfer-Encoding: xchunked",
            "POST / HTTP/1.1\r\nTransfer-Encoding:",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked",
            "POST / HTTP/1.0\r\nTransfer-Encoding: chunked",
            "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5",
            "POST / HTTP/1.1\r\nContent-Length: 5, 5",
            "POST / HTTP/1.1\r\nContent-Length: +5",
            "POST / HTTP/1.1\r\nContent-Length: -5",
            "POST / HTTP/1.1\r\nContent-Length: 5 5",
            "POST / HTTP/1.1\r\nContent-Length: 0x5",
            "POST / HTTP/1.1\r\nContent-Length:",
            "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999",
            "POST / HTTP/1.1\r\nContent-Length: 18446744073709551614",
            "POST / HTTP/1.1\r\nContent_Length: 5",
            "POST / HTTP/1.1\r\nTRANSFER_ENCODING: chunked",
        ] {
            assert!(
                matches!(head(lines), Head::Rejected(_)),
                "{lines:?} was not rejected"
            );
        }
    }

    #[test]
    fn header_fields_are_counted_against_the_limit() {
        let head = |n: usize| {
            format!(
                "GET / HTTP/1.1\r\n{}Content-Length: 1\r\n\r\nx",
                "X-A: 1\r\n".repeat(n - 1)
            )
        };
        assert!(matches!(
            judge(head(100).as_bytes(), 100),
            Head::Accepted { .. }
        ));
        assert_eq!(judge(head(101).as_bytes(), 100), Head::TooManyHeaders);
        assert_eq!(judge(head(3).as_bytes(), 2), Head::TooManyHeaders);
        // Counted as soon as one field too many has arrived, the head complete or not.
        assert_eq!(
            judge(b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n", 2),
            Head::TooManyHeaders
        );
        // Past the stack slots, the slots come from the heap and framing is still checked.
        assert!(matches!(
            judge(head(300).as_bytes(), 1000),
            Head::Accepted {
                body: Body::Length(1),
                ..
            }
        ));
        let bad = format!(
            "GET / HTTP/1.1\r\n{}Content-Length: 1\r\nContent-Length: 1\r\n\r\n",
            "X-A: 1\r\n".repeat(300)
        );
        assert!(matches!(judge(bad.as_bytes(), 1000), Head::Rejected(_)));
    }
}
