//! `ChunkedDecoder` against hyper's HTTP/1 client, against itself fed in other pieces, and
//! against the proxy's chunked tracker (`switchyard-proxy/src/framing/chunked.rs`, a copy of
//! hyper's state machine that only finds where a request body ends).
//!
//! The input is two bytes choosing a split point (little-endian, modulo the body length + 1),
//! then a chunked body; hyper reads it after `HTTP/1.1 200 OK` and
//! `Transfer-Encoding: chunked`. What must hold:
//! - fed whole, split in two at the chosen point, or byte by byte, the decoder gives the same
//!   data, the same end and (when done) the same body length;
//! - the tracker ends the body at the same byte, or finds the same invalid byte;
//! - hyper reads the same data, and ends cleanly exactly when we do.
//!
//! Deliberate differences:
//! 1. Trailers are kept raw, to be parsed by the caller: hyper fails a body whose trailer
//!    lines are not valid header fields, are more than its header limit (512 here) or reach
//!    16 KiB with the final CRLF, where our decoder ends the body cleanly at the same byte.
//! 2. Limits: our decoder refuses more than 16 KiB of extensions or of trailers in one body;
//!    the tracker has no such limits (the body is read by hyper, which has its own).

use crate::decode::{Ending, decode};
use crate::peer;
use crate::response::{MAX_FIELDS, OurBody, same_body};

use crate::tracker::{Chunked, Progress};

/// The head hyper reads before the body.
const HEAD: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";

/// Runs the check on one input.
pub fn check(input: &[u8]) {
    let [a, b, body @ ..] = input else {
        return;
    };
    let split = usize::from(u16::from_le_bytes([*a, *b])) % (body.len() + 1);
    let whole = decode([body]);
    let halves = decode([&body[..split], &body[split..]]);
    let bytes = decode(body.chunks(1));
    for (name, other) in [("split in two", &halves), ("byte by byte", &bytes)] {
        assert_eq!(
            (&whole.data, &whole.end),
            (&other.data, &other.end),
            "whole and {name} at {split}"
        );
        if matches!(whole.end, Ending::Done(_)) {
            assert_eq!(whole.used, other.used, "body length, whole and {name}");
        }
    }
    // Fed byte by byte, a failing call sees exactly the offending byte.
    same_as_tracker(body, &whole.end, whole.used, bytes.used, split);

    let mut response = HEAD.to_vec();
    response.extend_from_slice(body);
    let answer = peer::fetch(&response, MAX_FIELDS)
        .unwrap_or_else(|e| panic!("hyper refuses the fixed head: {e}"));
    let ours = OurBody {
        data: whole.data,
        end: whole.end,
    };
    same_body(&ours, &answer.body, MAX_FIELDS);
}

/// Runs the tracker over `body` whole and split at `split`; checks it against our decoder's
/// `end` (with the body length `used`, or the offending byte at `bad`).
pub(crate) fn same_as_tracker(body: &[u8], end: &Ending, used: usize, bad: usize, split: usize) {
    let whole = track([body]);
    let halves = track([&body[..split], &body[split..]]);
    assert_eq!(whole, halves, "the tracker, whole and split at {split}");
    match (end, whole) {
        (Ending::Done(_), (n, Progress::Done)) => assert_eq!(n, used, "body length"),
        (Ending::NeedMore, (_, Progress::More)) => {}
        (Ending::Failed(switchyard_h1::ChunkError::TooLarge), _) => {}
        (Ending::Failed(_), (n, Progress::Invalid)) => {
            assert_eq!(n, bad + 1, "the offending byte")
        }
        (end, tracked) => panic!("decoder {end:?}, tracker {tracked:?}"),
    }
}

/// The tracker over `pieces`: bytes of the body and how it ended.
pub(crate) fn track<'a>(pieces: impl IntoIterator<Item = &'a [u8]>) -> (usize, Progress) {
    let mut t = Chunked::new();
    let mut done = 0;
    for piece in pieces {
        let (n, progress) = t.feed(piece);
        done += n;
        if progress != Progress::More {
            return (done, progress);
        }
        assert_eq!(n, piece.len(), "More without taking every byte");
    }
    (done, Progress::More)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_pass() {
        for entry in std::fs::read_dir("corpus/chunked").expect("the seed corpus") {
            let path = entry.expect("a seed").path();
            check(&std::fs::read(&path).expect("a seed"));
        }
    }
}
