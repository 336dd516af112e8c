//! The proxy's request-head judge and chunked tracker (the guard in front of hyper's server,
//! `switchyard-proxy/src/framing/{head,chunked}.rs`) against hyper's HTTP/1 server, on the
//! bytes of one client connection (pipelined requests).
//!
//! The guard's reading: judge a head; if it is accepted, its body follows (`Content-Length`
//! bytes, or a chunked body whose end the tracker finds and whose data our decoder reads),
//! then the next head. It stops at a head it does not accept, after a body that does not end
//! cleanly, after `CONNECT` (hyper tunnels on the service's 200), and after a request whose
//! connection does not persist (HTTP/1.0 without `keep-alive`, or `Connection: close`).
//!
//! What must hold: every request the guard accepts, hyper's server hands to the service in the
//! same order with the same method, target, version, header fields and body (data, and
//! whether it ends cleanly); hyper serves no request the guard did not accept, but after a
//! head the guard rejects as ambiguous or as having too many fields (the guard never lets
//! those reach the server).
//!
//! And the proxy's own HTTP/1 server side, which reads the heads the guard lets through
//! (`server/h1/head.rs`): it finds each head the same length; it makes a request of exactly
//! the heads hyper serves, with the same method, target, version and header fields; the body
//! framing it reads is the judge's; and it keeps the connection open after a request exactly
//! when hyper's rule does.
//!
//! Deliberate differences:
//! 1. A head the judge accepts may still be refused by hyper for what is not framing: a
//!    method `http::Method` refuses, a target `http::Uri` refuses, a field name
//!    `http::HeaderName` refuses. hyper then answers 400 and reads nothing further.
//! 2. The tracker ends a chunked body at the same byte as hyper but does not judge trailer
//!    fields; hyper fails such a body and closes the connection (see [`crate::chunked`]).

use http::{Method, Uri, Version};

use crate::chunked::same_as_tracker;
use crate::decode::{Ending, decode};
use crate::judge::{Body, Head, Tokens, Tunnel, judge};
use crate::server_head::{self, Framing, Parsed};
use bytes::Bytes;
use crate::peer;
use crate::response::{OurBody, same_body};

/// Switchyard's default `[limits] max_headers`, given to both the judge and hyper.
const MAX_HEADERS: usize = 100;

/// One request the guard lets through.
#[derive(Debug)]
struct Expected {
    /// Where its head starts in the input.
    start: usize,
    /// The length of its head.
    head_len: usize,
    method: String,
    target: String,
    version: Version,
    /// Its header fields, as [`peer::fields_of`] lists them.
    fields: Vec<(String, Vec<u8>)>,
    body: OurBody,
    /// The body's framing as the judge read it.
    framing: Body,
    /// Whether hyper's rule keeps the connection after it.
    persists: bool,
}

/// Why the guard's reading of the connection stopped.
#[derive(Debug, PartialEq, Eq)]
enum Stop {
    /// The input ended between requests.
    End,
    /// The input ended inside a head.
    Partial,
    /// A head httparse refuses.
    Malformed,
    /// A head rejected as ambiguous.
    Rejected(&'static str),
    /// A head with too many fields.
    TooManyHeaders,
    /// The last request ends the connection.
    Closed(&'static str),
}

/// Runs the check on one input.
pub fn check(input: &[u8]) {
    let (expected, stop) = read(input);
    let seen = peer::serve(input, MAX_HEADERS);
    for (i, exp) in expected.iter().enumerate() {
        let ours = server_side(input, exp);
        let Some(got) = seen.get(i) else {
            assert!(
                ours.is_none(),
                "request {i}: hyper refuses it, the server side made {ours:?}"
            );
            let head = &input[exp.start..exp.start + exp.head_len];
            if let Err(why) = beyond_framing(head) {
                panic!("request {i} ({exp:?}) was accepted but never reached the service: {why}");
            }
            return;
        };
        assert_eq!(got.method.as_str(), exp.method, "method of request {i}");
        assert_eq!(
            Uri::try_from(exp.target.as_str()).ok().as_ref(),
            Some(&got.uri),
            "target of request {i}"
        );
        assert_eq!(got.version, exp.version, "version of request {i}");
        assert_eq!(
            peer::fields_of(&got.headers),
            exp.fields,
            "fields of request {i}"
        );
        same_body(&exp.body, &got.body, MAX_HEADERS);
        let Some(ours) = ours else {
            panic!("request {i}: hyper serves it, the server side refuses it");
        };
        assert_eq!(ours.method, got.method, "server side: method of request {i}");
        assert_eq!(ours.uri, got.uri, "server side: target of request {i}");
        assert_eq!(ours.version, got.version, "server side: version of request {i}");
        let ours_fields = match &ours.raw {
            Some(raw) => {
                assert!(ours.headers.is_empty(), "a head kept as its bytes has no map");
                same_raw_fields(raw, i);
                raw.to_map()
            }
            None => ours.headers.clone(),
        };
        assert_eq!(
            peer::fields_of(&ours_fields),
            peer::fields_of(&got.headers),
            "server side: fields of request {i}"
        );
        let framing = match exp.framing {
            Body::Empty => Framing::None,
            Body::Length(n) => Framing::Length(n),
            Body::Chunked => Framing::Chunked,
        };
        assert_eq!(ours.framing, framing, "server side: framing of request {i}");
        assert_eq!(ours.keep_alive, exp.persists, "server side: keep-alive after request {i}");
    }
    if seen.len() > expected.len() {
        assert!(
            matches!(stop, Stop::Rejected(_) | Stop::TooManyHeaders),
            "hyper served {} requests, the guard {} and then {stop:?}: {:?}",
            seen.len(),
            expected.len(),
            seen.get(expected.len())
        );
    }
}

/// A head kept as its bytes lists the fields its map is made of, and its block of lines, when
/// it has one, is those fields written anew.
fn same_raw_fields(raw: &server_head::RawHead, i: usize) {
    let listed: Vec<(String, Vec<u8>)> = raw
        .fields()
        .map(|(n, v)| (String::from_utf8_lossy(n).to_ascii_lowercase(), v.to_vec()))
        .collect();
    let mut sorted = listed.clone();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(sorted, peer::fields_of(&raw.to_map()), "raw fields of request {i}");
    if let Some(block) = raw.block() {
        let mut written = Vec::new();
        for (n, v) in raw.fields() {
            written.extend_from_slice(n);
            written.extend_from_slice(b": ");
            written.extend_from_slice(v);
            written.extend_from_slice(b"\r\n");
        }
        assert_eq!(block, &written[..], "the block of lines of request {i}");
        assert!(raw.content_length.is_none(), "a block without Content-Length");
    }
}

/// The server side's reading of the head of `exp`, which the guard accepted: `None` when it
/// refuses it (400).
fn server_side(input: &[u8], exp: &Expected) -> Option<Parsed> {
    let rest = Bytes::copy_from_slice(&input[exp.start..]);
    let mut fields = Vec::new();
    let head = match server_head::parse(&rest, MAX_HEADERS, &mut fields) {
        Ok(Some(head)) => head,
        other => panic!("the server side does not read an accepted head: {other:?}"),
    };
    assert_eq!(head.len, exp.head_len, "the server side's head length");
    server_head::build(head, &rest, &fields)
}

/// The tokens the guard keeps for an accepted head at `at` (which the HTTP/1 server takes
/// instead of tokenizing the head) are the ones the server side finds in the same bytes.
fn same_tokens(rest: &[u8], at: u64, kept: &mut Tokens) {
    kept.keep(at);
    let mut fields = Vec::new();
    let (line, len) = kept
        .take(at, rest.len(), &mut fields)
        .expect("an accepted head's tokens are kept");
    let taken = server_head::head_of(rest, line, len);
    assert!(
        server_head::same_as_parsed(rest, MAX_HEADERS, &taken, &fields),
        "the kept tokens {taken:?} {fields:?} differ from the server side's"
    );
}

/// The guard's reading of `input`.
fn read(input: &[u8]) -> (Vec<Expected>, Stop) {
    let mut out = Vec::new();
    let mut pos = 0;
    let mut kept = Tokens::default();
    loop {
        let rest = &input[pos..];
        if rest.is_empty() {
            return (out, Stop::End);
        }
        let (len, body, tunnel) = match judge(rest, MAX_HEADERS, &mut kept) {
            Head::Partial => return (out, Stop::Partial),
            Head::Malformed => return (out, Stop::Malformed),
            Head::Rejected(why) => return (out, Stop::Rejected(why)),
            Head::TooManyHeaders => return (out, Stop::TooManyHeaders),
            Head::Accepted { len, body, tunnel } => (len, body, tunnel),
        };
        same_tokens(rest, pos as u64, &mut kept);
        let mut slots = vec![httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut slots);
        assert_eq!(
            req.parse(rest),
            Ok(httparse::Status::Complete(len)),
            "httparse and the judge"
        );
        let version = if req.version == Some(1) {
            Version::HTTP_11
        } else {
            Version::HTTP_10
        };
        let mut map = http::HeaderMap::new();
        for h in req.headers.iter() {
            if let (Ok(n), Ok(v)) = (
                http::HeaderName::from_bytes(h.name.as_bytes()),
                http::HeaderValue::from_bytes(h.value),
            ) {
                map.append(n, v);
            }
        }
        let persists = persists(version, &map);
        let after = &rest[len..];
        let body_framing = body;
        let (body, body_len, clean) = match body {
            Body::Empty => (
                OurBody {
                    data: Vec::new(),
                    end: Ending::Done(None),
                },
                0,
                true,
            ),
            Body::Length(n) => {
                let body = crate::response::body(after, switchyard_h1::BodyFraming::Length(n));
                let clean = body.end == Ending::Done(None);
                let body_len = body.data.len();
                (body, body_len, clean)
            }
            Body::Chunked => {
                let whole = decode([after]);
                let bytes = decode(after.chunks(1));
                same_as_tracker(after, &whole.end, whole.used, bytes.used, after.len() / 2);
                let clean = match &whole.end {
                    Ending::Done(raw) => peer::hyper_trailers(raw.as_deref(), MAX_HEADERS).is_ok(),
                    _ => false,
                };
                let used = whole.used;
                let body = OurBody {
                    data: whole.data,
                    end: whole.end,
                };
                (body, used, clean)
            }
        };
        out.push(Expected {
            start: pos,
            head_len: len,
            method: req.method.unwrap_or_default().to_owned(),
            target: req.path.unwrap_or_default().to_owned(),
            version,
            fields: peer::fields_of_raw(req.headers),
            body,
            framing: body_framing,
            persists,
        });
        if !clean {
            return (out, Stop::Closed("the body does not end cleanly"));
        }
        if tunnel == Tunnel::Connect {
            return (out, Stop::Closed("CONNECT"));
        }
        if !persists {
            return (out, Stop::Closed("the connection does not persist"));
        }
        pos += len + body_len;
    }
}

/// Whether hyper keeps a connection after a message with these fields (hyper 1.12's rule, the
/// same for requests and responses: HTTP/1.1 unless a `Connection` field says `close`;
/// HTTP/1.0 only with `keep-alive` and no `close` before it; a value that is not visible ASCII
/// says nothing).
pub(crate) fn persists(version: Version, headers: &http::HeaderMap) -> bool {
    let has = |value: &http::HeaderValue, token: &str| {
        value
            .to_str()
            .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    };
    let mut keep_alive = version == Version::HTTP_11;
    let mut closed = false;
    for value in headers.get_all(http::header::CONNECTION) {
        if closed || has(value, "close") {
            closed = true;
            keep_alive = false;
        } else if !keep_alive {
            keep_alive = has(value, "keep-alive");
        }
    }
    keep_alive
}

/// Why hyper may refuse a head the judge accepted (difference 1), or `Err` when it has no
/// reason beyond framing.
fn beyond_framing(head: &[u8]) -> Result<&'static str, String> {
    let mut slots = vec![httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut slots);
    if !matches!(req.parse(head), Ok(httparse::Status::Complete(_))) {
        return Err("httparse does not parse the head".into());
    }
    let method = req.method.unwrap_or_default();
    let target = req.path.unwrap_or_default();
    if Method::from_bytes(method.as_bytes()).is_err() {
        return Ok("method");
    }
    if Uri::try_from(target).is_err() {
        return Ok("target");
    }
    if req
        .headers
        .iter()
        .any(|h| http::HeaderName::from_bytes(h.name.as_bytes()).is_err())
    {
        return Ok("field name");
    }
    Err(format!("{method} {target} is a request hyper should read"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_pass() {
        for entry in std::fs::read_dir("corpus/request_head").expect("the seed corpus") {
            let path = entry.expect("a seed").path();
            check(&std::fs::read(&path).expect("a seed"));
        }
    }
}
