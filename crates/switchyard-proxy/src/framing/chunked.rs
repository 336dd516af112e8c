//! Following a chunked request body byte by byte, so the guard knows where the next request
//! head starts without buffering or decoding the body.
//!
//! The state machine is a copy of hyper 1.12's chunked decoder (`proto/h1/decode.rs`), whose
//! syntax the HTTP/1 server's decoder (`switchyard_h1::ChunkedDecoder`) follows too, so both
//! agree on where a body ends. Where they could still disagree the tracker must not be the more
//! lenient one on *framing*: whatever it accepts, the HTTP/1 server accepts the same way. It is
//! more lenient only on limits (extension and trailer bytes), where the server fails the body
//! and stops reading the connection, which is safe.

/// Where the tracker is in the chunked body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Expecting the first hex digit of a chunk size.
    Start,
    /// Inside the hex digits of a chunk size.
    Size,
    /// Spaces or tabs after the size.
    SizeLws,
    /// A chunk extension: anything up to CR, but no bare LF.
    Extension,
    /// The LF ending the chunk-size line.
    SizeLf,
    /// Chunk data; `size` bytes are left.
    Data,
    /// The CR after the chunk data.
    DataCr,
    /// The LF after the chunk data.
    DataLf,
    /// Inside a trailer field line.
    Trailer,
    /// The LF ending a trailer field line.
    TrailerLf,
    /// After the last chunk or a trailer line: CR of the final empty line, or a trailer.
    EndCr,
    /// The LF of the final empty line.
    EndLf,
}

/// What feeding bytes to the tracker led to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Progress {
    /// Every byte fed belongs to the body, which goes on.
    More,
    /// The body ended; bytes after the count consumed belong to the next request.
    Done,
    /// The last byte consumed breaks the chunked syntax (the HTTP/1 server's decoder fails on
    /// it too).
    Invalid,
}

/// A chunked-body tracker: feed it the body's bytes as they arrive.
#[derive(Debug, Clone)]
pub(super) struct Chunked {
    /// Where in the body we are.
    state: State,
    /// The chunk size being read, then the data bytes left in the chunk.
    size: u64,
}

impl Chunked {
    /// A tracker at the start of a chunked body.
    pub(super) fn new() -> Self {
        Chunked {
            state: State::Start,
            size: 0,
        }
    }

    /// Chunk-data bytes that may pass without being looked at (0 outside chunk data).
    #[cfg(test)]
    pub(super) fn data_left(&self) -> u64 {
        if self.state == State::Data {
            self.size
        } else {
            0
        }
    }

    /// Accounts for `n` chunk-data bytes passed without being fed (`n <= data_left()`).
    pub(super) fn skip_data(&mut self, n: u64) {
        self.size = self.size.saturating_sub(n);
        if self.state == State::Data && self.size == 0 {
            self.state = State::DataCr;
        }
    }

    /// Feeds `bytes`; returns how many belong to the body (all of them with `More`) and what
    /// comes next.
    pub(super) fn feed(&mut self, bytes: &[u8]) -> (usize, Progress) {
        let mut i = 0;
        while i < bytes.len() {
            if self.state == State::Data {
                let left = bytes.len() - i;
                let take = usize::try_from(self.size).map_or(left, |s| s.min(left));
                i += take;
                self.skip_data(take as u64);
                continue;
            }
            let b = bytes[i];
            i += 1;
            match self.step(b) {
                Some(true) => return (i, Progress::Done),
                Some(false) => {}
                None => return (i, Progress::Invalid),
            }
        }
        (i, Progress::More)
    }

    /// One framing byte: `Some(true)` when the body is complete, `None` when it is invalid.
    fn step(&mut self, b: u8) -> Option<bool> {
        use State::*;
        self.state = match (self.state, b) {
            (Start, _) => {
                self.size = u64::from(hex(b)?);
                Size
            }
            (Size, b'\t' | b' ') | (SizeLws, b'\t' | b' ') => SizeLws,
            (Size | SizeLws, b';') => Extension,
            (Size | SizeLws | Extension, b'\r') => SizeLf,
            (Size, _) => {
                self.size = self.size.checked_mul(16)?.checked_add(u64::from(hex(b)?))?;
                Size
            }
            (SizeLws, _) | (Extension, b'\n') => return None,
            (Extension, _) => Extension,
            (SizeLf, b'\n') if self.size == 0 => EndCr,
            (SizeLf, b'\n') => Data,
            (DataCr, b'\r') => DataLf,
            (DataLf, b'\n') => Start,
            (Trailer, b'\r') => TrailerLf,
            (Trailer, _) => Trailer,
            (TrailerLf, b'\n') => EndCr,
            (EndCr, b'\r') => EndLf,
            (EndCr, _) => Trailer,
            (EndLf, b'\n') => return Some(true),
            (SizeLf | DataCr | DataLf | TrailerLf | EndLf, _) => return None,
            // Data is consumed in spans by `feed`, never byte by byte.
            (Data, _) => return None,
        };
        Some(false)
    }
}

/// The value of a hex digit.
fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `body` in pieces of `split` bytes; returns the bytes consumed and the outcome.
    fn run(body: &[u8], split: usize) -> (usize, Progress) {
        let mut t = Chunked::new();
        let mut done = 0;
        for piece in body.chunks(split) {
            let (n, p) = t.feed(piece);
            done += n;
            if p != Progress::More {
                return (done, p);
            }
        }
        (done, Progress::More)
    }

    #[test]
    fn finds_the_end_of_the_body_in_any_split() {
        let body = b"5;name=v\r\nhello\r\nA \r\n0123456789\r\n000;x\r\nX-Trailer: t\r\n\r\nGET /";
        let end = body.len() - b"GET /".len();
        for split in 1..=body.len() {
            assert_eq!(run(body, split), (end, Progress::Done), "split {split}");
        }
    }

    #[test]
    fn a_body_without_trailers_ends_at_the_empty_line() {
        assert_eq!(run(b"0\r\n\r\nnext", 64), (5, Progress::Done));
        assert_eq!(run(b"3\r\nabc\r\n0\r\n", 64), (11, Progress::More));
    }

    #[test]
    fn broken_syntax_is_invalid_at_the_offending_byte() {
        for (body, at) in [
            (&b"zz\r\n"[..], 1),
            (b"ffffffffffffffffff\r\n", 17),
            (b"5\nhello", 2),
            (b"5 5\r\n", 3),
            (b"5;a\nb\r\n", 4),
            (b"3\r\nabcX", 7),
            (b"3\r\nabc\rX", 8),
            (b"0\r\nX: y\rZ", 9),
            (b"0\r\n\rX", 5),
            (b"\r\n", 1),
        ] {
            assert_eq!(run(body, 64), (at, Progress::Invalid), "{body:?}");
            assert_eq!(
                run(body, 1),
                (at, Progress::Invalid),
                "{body:?} byte by byte"
            );
        }
    }

    #[test]
    fn data_can_be_skipped_unseen() {
        let mut t = Chunked::new();
        assert_eq!(t.feed(b"10\r\n"), (4, Progress::More));
        assert_eq!(t.data_left(), 16);
        t.skip_data(10);
        assert_eq!(t.data_left(), 6);
        t.skip_data(6);
        assert_eq!(t.data_left(), 0);
        assert_eq!(t.feed(b"\r\n0\r\n\r\n"), (7, Progress::Done));
    }
}
