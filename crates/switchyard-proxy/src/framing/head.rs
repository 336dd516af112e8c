//! Judging one HTTP/1 request head: where it ends, how its body is framed, and whether that
//! framing is unambiguous enough to forward.
//!
//! The head is tokenized by `switchyard_h1::tokenize_request` (which reads as httparse does
//! with its default configuration), exactly as the HTTP/1 server tokenizes it
//! (`server::h1::head::parse`), so "complete", "partial" and "malformed" mean the same here as
//! there. The tokens of an accepted head are kept ([`Tokens`]) for the HTTP/1 server, which
//! reads the same bytes next and takes them instead of tokenizing the head again.

use switchyard_h1::RequestLine;

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

/// The tokens of the last head the guard accepted, kept until the HTTP/1 server takes them.
///
/// Tokenizing is a function of the bytes alone, and the guard hands out the bytes of an
/// accepted head unchanged, so a head the server finds at the same place in the bytes handed
/// out (the same offset from the connection's first byte) has exactly these tokens. Only the
/// last accepted head is kept: the server tokenizes any other itself (a pipelined one, say).
#[derive(Debug, Default)]
pub(crate) struct Tokens {
    /// The head let through: where it starts in the bytes handed out, its request line
    /// (ranges from its start) and its length.
    head: Option<(u64, RequestLine, usize)>,
    /// The request line and length of the head judged last, until the guard lets it through.
    judged: Option<(RequestLine, usize)>,
    /// Its fields: name start and length, value start and length, from its start.
    fields: Vec<[usize; 4]>,
}

impl Tokens {
    /// The request line and length of the head that starts `at` in the bytes handed out, if
    /// these are its tokens and all of its `available` bytes are there; its fields are swapped
    /// into `fields` (whose old storage is kept for the next head).
    pub(crate) fn take(
        &mut self,
        at: u64,
        available: usize,
        fields: &mut Vec<[usize; 4]>,
    ) -> Option<(RequestLine, usize)> {
        match &self.head {
            Some((start, _, len)) if *start == at && *len <= available => {}
            _ => return None,
        }
        let (_, line, len) = self.head.take()?;
        std::mem::swap(&mut self.fields, fields);
        Some((line, len))
    }

    /// Keeps the tokens of the head judged last, which the guard lets through: it starts `at`
    /// in the bytes handed out. (A head judged and then refused, over the limits say, is
    /// replaced by other bytes at that place: its tokens are never kept.)
    pub(super) fn keep(&mut self, at: u64) {
        self.head = self.judged.take().map(|(line, len)| (at, line, len));
    }

    /// Lets go of the kept tokens and their storage (an idle connection holds none).
    pub(crate) fn release(&mut self) {
        *self = Tokens::default();
    }
}

/// Judges the bytes of a pending head that may have at most `max_headers` header fields
/// (the HTTP/1 server's `max_headers`: a head the server would refuse is never parsed further).
/// An accepted head's tokens go to `kept`, to be kept ([`Tokens::keep`]) if it is let through.
pub(super) fn judge(buf: &[u8], max_headers: usize, kept: &mut Tokens) -> Head {
    let mut seen = Seen::default();
    kept.head = None;
    kept.judged = None;
    kept.fields.clear();
    let fields = &mut kept.fields;
    let tokens = switchyard_h1::tokenize_request(buf, max_headers, |name, value| {
        seen.field(&buf[name.clone()], &buf[value.clone()]);
        fields.push([name.start, name.len(), value.start, value.len()]);
    });
    match tokens {
        Ok(None) => Head::Partial,
        Ok(Some((line, len))) => {
            let connect = &buf[line.method.clone()] == b"CONNECT";
            match framing(&seen, line.version_minor == 1, connect) {
                Ok((body, tunnel)) => {
                    kept.judged = Some((line, len));
                    Head::Accepted { len, body, tunnel }
                }
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
        if switchyard_h1::is_lower(name, b"transfer-encoding") {
            self.te += 1;
            self.te_chunked &= value.trim_ascii().eq_ignore_ascii_case(b"chunked");
        } else if switchyard_h1::is_lower(name, b"content-length") {
            self.cl += 1;
            self.length = decimal(value);
        } else if switchyard_h1::is_lower(name, b"upgrade") {
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

    /// Judges a head, keeping its tokens nowhere.
    fn judge(buf: &[u8], max_headers: usize) -> Head {
        super::judge(buf, max_headers, &mut Tokens::default())
    }

    #[test]
    fn an_accepted_heads_tokens_go_only_to_a_reader_at_its_place_with_all_of_it() {
        let buf = b"\r\nPOST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi";
        let mut kept = Tokens::default();
        let verdict = judge_kept(buf, 7, &mut kept);
        let len = buf.len() - 2;
        assert_eq!(
            verdict,
            Head::Accepted {
                len,
                body: Body::Length(2),
                tunnel: Tunnel::No
            }
        );
        let mut fields = vec![[9; 4]];
        assert_eq!(kept.take(6, buf.len(), &mut fields), None, "another place");
        assert_eq!(kept.take(7, len - 1, &mut fields), None, "not all there");
        let (line, n) = kept.take(7, len, &mut fields).expect("its place");
        assert_eq!(
            (line.method, line.target, line.version_minor, n),
            (2..6, 7..10, 1, len)
        );
        assert_eq!(fields, [[21, 4, 27, 1], [30, 14, 46, 1]]);
        assert_eq!(kept.take(7, len, &mut fields), None, "taken once");
        // A head accepted by the judge but not let through (over the size limit, say).
        assert!(matches!(
            super::judge(buf, 100, &mut kept),
            Head::Accepted { .. }
        ));
        assert_eq!(kept.take(7, len, &mut fields), None, "not let through");
        // A head judged and not accepted leaves nothing to take.
        assert_eq!(
            judge_kept(b"GET / HTTP/1.1\r\nHost: a\r\n", 9, &mut kept),
            Head::Partial
        );
        assert_eq!(kept.take(9, 100, &mut fields), None);
        let smuggled = b"GET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert!(matches!(
            judge_kept(smuggled, 9, &mut kept),
            Head::Rejected(_)
        ));
        assert_eq!(kept.take(9, smuggled.len(), &mut fields), None);
    }

    /// Judges a head and keeps its tokens, as if it were let through, at `at`.
    fn judge_kept(buf: &[u8], at: u64, kept: &mut Tokens) -> Head {
        let verdict = super::judge(buf, 100, kept);
        kept.keep(at);
        verdict
    }

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
