//! `parse_response_head` against hyper's HTTP/1 client, on the bytes of one response to a GET.
//!
//! What must hold:
//! - a final head we accept (after skipping 1xx heads other than 101, as hyper does) is one
//!   hyper accepts, with the same status, version and header fields; our header map for the
//!   client builds without error and holds only fields hyper received; for a plain head, the
//!   fields passed on as bytes (`client_fields`) are the header map's;
//! - the body read by our framing (`Length`, `Chunked` with our decoder, `UntilClose`,
//!   `Empty`) has the same bytes as hyper's, and ends cleanly exactly when hyper's does;
//! - a connection we would reuse after the response is one hyper would reuse too (its rule
//!   on `Connection` and the version; we may close more often);
//! - a head we find incomplete is one hyper cannot answer with either;
//! - a complete head minus its last byte is incomplete to us.
//!
//! Deliberate differences (we refuse, hyper reads the response):
//! 1. A `Content-Length` that is not a plain decimal list, or lists different values, is
//!    refused on every response; hyper ignores `Content-Length` where it does not frame the
//!    body (a `Transfer-Encoding` is present, or the status is 1xx, 204 or 304).
//! 2. A `Transfer-Encoding` whose codings have `chunked` anywhere but once at the very end
//!    (`chunked, gzip`, `chunked, chunked`, a second field after `chunked`) is refused; hyper
//!    reads such a body until close, or as chunked.
//! 3. A `Transfer-Encoding` value with bytes other than visible ASCII is refused; hyper
//!    cannot read it as text and reads the body until close.
//! 4. Trailers: our decoder keeps the raw trailer section without judging its fields (the
//!    caller parses them); hyper fails a body whose trailer lines are not valid header
//!    fields, number more than its header limit or reach 16 KiB. See [`crate::chunked`].
//!
//! Not a difference: both refuse `Transfer-Encoding` in an HTTP/1.0 response that has a body
//! (on a 204 or 304, where it frames nothing, both accept it).

use bytes::Bytes;
use http::Version;
use switchyard_h1::{BodyFraming, HeadError, ParseOutcome, ResponseHead, parse_response_head};

use crate::decode::{Ending, decode};
use crate::peer::{self, Answer};

/// The head-size limit given to our parser: beyond any fuzz input, so only syntax decides.
const MAX_HEAD: usize = 1 << 20;
/// The most header fields hyper is allowed: the codec's own limit, so no limit differs.
pub(crate) const MAX_FIELDS: usize = 512;

/// Our reading of the response.
#[derive(Debug)]
enum Ours {
    /// The bytes end before a complete final head.
    Incomplete,
    /// The head starting at `at` was refused.
    Refused { at: usize, error: HeadError },
    /// The final head starts at `at`; its body as our framing reads it.
    Answer {
        at: usize,
        head: ResponseHead,
        body: OurBody,
    },
}

/// A body as we read it.
#[derive(Debug)]
pub(crate) struct OurBody {
    /// Its data.
    pub(crate) data: Vec<u8>,
    /// How it ended (`Done` also for a complete `Length`, `Empty` or `UntilClose` body).
    pub(crate) end: Ending,
}

/// Runs the check on one input.
pub fn check(input: &[u8]) {
    let ours = read(input);
    let theirs = peer::fetch(input, MAX_FIELDS);
    match (&ours, theirs) {
        (Ours::Answer { at, head, body }, Ok(answer)) => {
            same_answer(&input[*at..], head, body, &answer);
        }
        (Ours::Answer { .. }, Err(e)) => {
            panic!("we accept a response hyper refuses ({e}): {ours:?}")
        }
        (Ours::Refused { at, error }, Ok(answer)) => {
            if let Err(why) = deliberate(&input[*at..], *error) {
                panic!("we refuse ({error}) a response hyper reads ({why}): {answer:?}");
            }
        }
        (Ours::Incomplete, Ok(answer)) => {
            panic!("hyper reads a response whose head is incomplete to us: {answer:?}")
        }
        (_, Err(_)) => {}
    }
}

/// Our parser over `input`, skipping 1xx heads but 101 as the proxy must.
fn read(input: &[u8]) -> Ours {
    let mut at = 0;
    loop {
        let head = match parse_response_head(&input[at..], false, MAX_HEAD) {
            Err(error) => return Ours::Refused { at, error },
            Ok(ParseOutcome::Partial) => return Ours::Incomplete,
            Ok(ParseOutcome::Complete(head)) => head,
        };
        let end = at + head.head_len;
        assert!(head.head_len > 0 && end <= input.len(), "{head:?}");
        assert_eq!(
            parse_response_head(&input[at..end - 1], false, MAX_HEAD),
            Ok(ParseOutcome::Partial),
            "the head minus its last byte"
        );
        if head.framing == BodyFraming::UntilClose {
            assert!(!head.keep_alive, "a close-delimited body with keep-alive");
        }
        if (100..200).contains(&head.status) && head.status != 101 {
            assert_eq!(head.framing, BodyFraming::Empty);
            at = end;
            continue;
        }
        let body = body(&input[end..], head.framing);
        return Ours::Answer { at, head, body };
    }
}

/// The body after the head, as `framing` delimits it.
pub(crate) fn body(rest: &[u8], framing: BodyFraming) -> OurBody {
    match framing {
        BodyFraming::Empty => OurBody {
            data: Vec::new(),
            end: Ending::Done(None),
        },
        BodyFraming::UntilClose => OurBody {
            data: rest.to_vec(),
            end: Ending::Done(None),
        },
        BodyFraming::Length(n) => {
            let take = usize::try_from(n).map_or(rest.len(), |n| n.min(rest.len()));
            OurBody {
                data: rest[..take].to_vec(),
                end: if (take as u64) == n {
                    Ending::Done(None)
                } else {
                    Ending::NeedMore
                },
            }
        }
        BodyFraming::Chunked => {
            let decoded = decode([rest]);
            OurBody {
                data: decoded.data,
                end: decoded.end,
            }
        }
    }
}

/// Checks that hyper's `answer` is the response we read from `head_bytes` (the final head and
/// what follows it).
fn same_answer(head_bytes: &[u8], head: &ResponseHead, body: &OurBody, answer: &Answer) {
    assert_eq!(head.status, answer.status.as_u16(), "status");
    let version = if head.version_minor == 1 {
        Version::HTTP_11
    } else {
        Version::HTTP_10
    };
    assert_eq!(version, answer.version, "version");
    let mut ours: Vec<(String, Vec<u8>)> = head
        .fields
        .iter()
        .map(|(n, v)| {
            (
                String::from_utf8_lossy(&head_bytes[n.clone()]).to_ascii_lowercase(),
                head_bytes[v.clone()].to_vec(),
            )
        })
        .collect();
    ours.sort_by(|a, b| a.0.cmp(&b.0));
    let theirs = peer::fields_of(&answer.headers);
    assert_eq!(ours, theirs, "header fields");
    let map = head
        .header_map(&Bytes::copy_from_slice(head_bytes))
        .unwrap_or_else(|e| panic!("header_map fails ({e}) on a head hyper reads"));
    for (name, value) in &map {
        if name == http::header::CONTENT_LENGTH {
            if let BodyFraming::Length(n) = head.framing {
                let sent = value.to_str().ok().and_then(|v| v.parse::<u64>().ok());
                assert_eq!(sent, Some(n), "the Content-Length passed on: {value:?}");
            }
            continue;
        }
        assert!(
            answer.headers.get_all(name).iter().any(|v| v == value),
            "header_map has {name}: {value:?}, which hyper did not receive"
        );
    }
    if let Some(passed) = head.client_fields(head_bytes) {
        // A plain head passed on as bytes gives the client what the header map holds.
        let mut as_bytes: Vec<(String, Vec<u8>)> = Vec::new();
        for f in passed {
            // The line sent on is `name:` OWS `value` [CRLF], and parses back to the field.
            let line = f.line.strip_suffix(b"\r\n").unwrap_or(f.line);
            let rest = line.strip_prefix(f.name).and_then(|r| r.strip_prefix(b":"));
            let rest = rest.unwrap_or_else(|| panic!("a field line without its name: {line:?}"));
            assert_eq!(rest.trim_ascii(), f.value, "the line's value");
            as_bytes.push((String::from_utf8_lossy(f.name).to_ascii_lowercase(), f.value.to_vec()));
        }
        let mut as_map: Vec<(String, Vec<u8>)> = map
            .iter()
            .map(|(n, v)| (n.as_str().to_string(), v.as_bytes().to_vec()))
            .collect();
        // Stable: fields of one name keep their order.
        as_bytes.sort_by(|a, b| a.0.cmp(&b.0));
        as_map.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(as_bytes, as_map, "fields passed as bytes and the header map");
    }
    if head.keep_alive {
        assert!(
            crate::request::persists(answer.version, &answer.headers),
            "we would reuse a connection hyper would not"
        );
    }
    same_body(body, &answer.body, MAX_FIELDS);
}

/// Checks that hyper read the same body as we did.
pub(crate) fn same_body(ours: &OurBody, theirs: &peer::Body, max_trailers: usize) {
    assert_eq!(
        ours.data, theirs.data,
        "body data (ours ended {:?}, hyper's {:?})",
        ours.end, theirs.end
    );
    match (&ours.end, &theirs.end) {
        (Ending::Done(raw), Ok(trailers)) => {
            assert_eq!(
                peer::hyper_trailers(raw.as_deref(), max_trailers).as_ref(),
                Ok(trailers),
                "trailers"
            );
        }
        // Difference 4: hyper refuses a trailer section we pass on raw.
        (Ending::Done(raw), Err(e)) => {
            assert!(
                peer::hyper_trailers(raw.as_deref(), max_trailers).is_err(),
                "our body ends cleanly, hyper's fails: {e}"
            );
        }
        (Ending::NeedMore | Ending::Failed(_), Err(_)) => {}
        (end, Ok(_)) => panic!("hyper's body ends cleanly, ours does not: {end:?}"),
    }
}

/// Whether refusing the head at the start of `bytes` with `error`, where hyper reads the
/// response, is one of the deliberate differences; `Err` says why not.
fn deliberate(bytes: &[u8], error: HeadError) -> Result<(), String> {
    let HeadError::Malformed(why) = error else {
        return Err(format!("{error:?} is no framing decision"));
    };
    let mut slots = vec![httparse::EMPTY_HEADER; MAX_FIELDS];
    let mut resp = httparse::Response::new(&mut slots);
    if !matches!(resp.parse(bytes), Ok(httparse::Status::Complete(_))) {
        return Err("httparse does not parse the head we refused".into());
    }
    let status = resp.code.unwrap_or(0);
    let has = |name: &str| {
        resp.headers
            .iter()
            .any(|h| h.name.eq_ignore_ascii_case(name))
    };
    match why {
        // Difference 1.
        "bad Content-Length" | "conflicting Content-Length values"
            if has("transfer-encoding")
                || (100..200).contains(&status)
                || status == 204
                || status == 304 =>
        {
            Ok(())
        }
        // Difference 2.
        "chunked is not the last transfer coding" => Ok(()),
        // Difference 3.
        "Transfer-Encoding is not ASCII" => Ok(()),
        _ => Err(format!("{why} (status {status})")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_pass() {
        for entry in std::fs::read_dir("corpus/response_head").expect("the seed corpus") {
            let path = entry.expect("a seed").path();
            check(&std::fs::read(&path).expect("a seed"));
        }
    }
}
