//! Driving `switchyard_h1::ChunkedDecoder` over a body fed in pieces, the way the proxy feeds
//! it from a read buffer, checking its contract at every call.

use switchyard_h1::{ChunkError, ChunkedDecoder, Step};

/// How a decoded body ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// The final empty line was read; the raw trailer section, if any.
    Done(Option<Vec<u8>>),
    /// The input ended inside the body.
    NeedMore,
    /// The decoder refused the body.
    Failed(ChunkError),
}

/// What the decoder made of a body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// The chunk data, joined.
    pub data: Vec<u8>,
    /// Bytes consumed by successful calls (with `Done`: the length of the body).
    pub used: usize,
    /// How it ended.
    pub end: Ending,
}

/// Feeds `pieces` one after the other: each call sees what earlier calls left unconsumed
/// followed by the next piece.
pub fn decode<'a>(pieces: impl IntoIterator<Item = &'a [u8]>) -> Decoded {
    let mut decoder = ChunkedDecoder::new();
    let mut pending: Vec<u8> = Vec::new();
    let mut data = Vec::new();
    let mut used = 0;
    for piece in pieces {
        pending.extend_from_slice(piece);
        while !pending.is_empty() {
            let (n, step) = match decoder.decode(&pending) {
                Ok(progress) => progress,
                Err(e) => {
                    return Decoded {
                        data,
                        used,
                        end: Ending::Failed(e),
                    };
                }
            };
            assert!(
                n <= pending.len(),
                "consumed {n} of {} bytes",
                pending.len()
            );
            match &step {
                Step::Data(range) => {
                    assert!(
                        range.start < range.end && range.end == n,
                        "data {range:?} with {n} consumed"
                    );
                    data.extend_from_slice(&pending[range.clone()]);
                }
                Step::NeedMore => assert_eq!(n, pending.len(), "NeedMore left bytes"),
                Step::Done => assert!(decoder.is_done(), "Done but not is_done"),
            }
            pending.drain(..n);
            used += n;
            if step == Step::Done {
                // A finished decoder consumes nothing more.
                assert_eq!(decoder.decode(b"0\r\n\r\n"), Ok((0, Step::Done)));
                return Decoded {
                    data,
                    used,
                    end: Ending::Done(decoder.take_trailers()),
                };
            }
        }
    }
    Decoded {
        data,
        used,
        end: Ending::NeedMore,
    }
}
