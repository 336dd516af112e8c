//! An upstream response body, read from its connection by whoever polls it (the client
//! connection's task), and the connection's return to its pool when the body is complete.
//!
//! The body holds the connection and the request's in-flight count. When the last byte has been
//! read, the connection goes back to its server's queue (if the upstream keeps it alive and sent
//! nothing beyond the body) and the in-flight count ends — before the last data frame is
//! handed on, so a pool drains exactly when its last response is complete. A body dropped
//! early (the client went away) closes its connection.

use std::io;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes};
use http::HeaderMap;
use http_body::{Frame, SizeHint};
use switchyard_core::InFlight;
use switchyard_h1::{BodyFraming, ChunkedDecoder, Step};
use tokio::time::Instant;

use super::Conn;
use super::passed::PassedHead;
use crate::body::BoxError;

/// How many bytes a read asks the kernel for at most.
const READ_CHUNK: usize = 16 * 1024;
/// Below this much free room the read buffer grows before a read.
const MIN_ROOM: usize = 1024;

/// Where the body is.
#[derive(Debug)]
enum Reading {
    /// This many bytes are left.
    Length(u64),
    /// A chunked body.
    Chunked(Box<ChunkedDecoder>),
    /// Everything until the upstream closes.
    UntilClose,
    /// Complete (or failed).
    Done,
}

/// What a complete body gives back: the connection to its server's queue, and the in-flight
/// count (which also names the server).
#[derive(Debug)]
struct Lease {
    in_flight: InFlight,
}

/// An upstream response body holding its connection until the end.
#[derive(Debug)]
pub struct UpstreamResponse {
    conn: Option<Conn>,
    reading: Reading,
    /// The connection may carry another request once the body is complete.
    reusable: bool,
    lease: Option<Lease>,
    /// The response's head, when it is passed on as bytes (`passed`).
    passed: Option<PassedHead>,
    /// When the connection's idle time starts if it goes back to its pool: the reading taken
    /// when the head arrived, if the whole body had arrived with it (the upstream had sent
    /// everything by then); else the clock is read when the body ends.
    idle_from: Option<Instant>,
}

/// The error a body fails with when the upstream breaks it off.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The connection closed before the body was complete.
    #[error("upstream closed the connection before the body was complete")]
    Truncated,
    /// A chunked body broke its syntax.
    #[error("upstream sent a bad chunked body: {0}")]
    Chunked(#[from] switchyard_h1::ChunkError),
    /// Reading the connection failed.
    #[error("reading the upstream failed: {0}")]
    Io(#[from] io::Error),
}

impl UpstreamResponse {
    /// The body of a response whose head was read from `conn`, framed as `framing`.
    /// `reusable` says whether the connection may be pooled once the body is complete; `passed`
    /// is the head when it goes to the client as bytes. Boxed (`ProxyBody` holds it so): the
    /// box is allocated first and the body built in it.
    pub(crate) fn new(
        conn: Conn,
        framing: BodyFraming,
        reusable: bool,
        in_flight: InFlight,
        passed: Option<PassedHead>,
        now: Instant,
    ) -> Box<Self> {
        let whole = match framing {
            BodyFraming::Empty => true,
            BodyFraming::Length(n) => conn.buf.len() as u64 >= n,
            BodyFraming::Chunked | BodyFraming::UntilClose => false,
        };
        let reading = match framing {
            BodyFraming::Empty => Reading::Done,
            BodyFraming::Length(n) => Reading::Length(n),
            BodyFraming::Chunked => Reading::Chunked(Box::new(ChunkedDecoder::new())),
            BodyFraming::UntilClose => Reading::UntilClose,
        };
        let mut body = Box::write(
            Box::new_uninit(),
            UpstreamResponse {
                conn: Some(conn),
                reading,
                reusable,
                lease: Some(Lease { in_flight }),
                passed,
                idle_from: whole.then_some(now),
            },
        );
        if matches!(body.reading, Reading::Done) {
            body.finish(true);
        }
        body
    }

    /// The body is complete: the connection goes back to its pool when it can carry another
    /// request, and the in-flight count ends.
    fn finish(&mut self, clean: bool) {
        self.reading = Reading::Done;
        let conn = self.conn.take();
        if let Some(lease) = self.lease.take() {
            if let (true, true, Some(conn)) = (clean, self.reusable, conn) {
                if let Some(conns) = super::conns(lease.in_flight.server()) {
                    conns.checkin(conn, self.idle_from.unwrap_or_else(Instant::now));
                }
            }
            drop(lease.in_flight);
        }
    }

    /// The body broke: the connection is closed.
    fn fail(&mut self, e: BodyError) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.reusable = false;
        self.finish(false);
        Poll::Ready(Some(Err(Box::new(e))))
    }

    /// Takes the head passed on as bytes, if the response carries it.
    pub(crate) fn passed_head(&mut self) -> Option<PassedHead> {
        self.passed.take()
    }

    /// The head passed on as bytes, if the response carries it.
    pub(crate) fn peek_passed_head(&self) -> Option<&PassedHead> {
        self.passed.as_ref()
    }

    /// When the whole response had arrived (its head and all of its body at once), if it did:
    /// the clock reading taken then.
    pub(crate) fn arrived_whole_at(&self) -> Option<Instant> {
        self.idle_from
    }

    /// The head passed on as bytes, to change, if the response carries it.
    pub(crate) fn passed_head_mut(&mut self) -> Option<&mut PassedHead> {
        self.passed.as_mut()
    }

    /// True once the body is complete.
    pub(crate) fn is_end_stream(&self) -> bool {
        matches!(self.reading, Reading::Done)
    }

    /// What is known of the size left.
    pub(crate) fn size_hint(&self) -> SizeHint {
        match &self.reading {
            Reading::Length(n) => SizeHint::with_exact(*n),
            Reading::Done => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }

    /// The next frame of the body.
    pub(crate) fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        loop {
            let Some(conn) = self.conn.as_mut() else {
                return Poll::Ready(None);
            };
            if !conn.buf.is_empty() {
                match &mut self.reading {
                    Reading::Done => return Poll::Ready(None),
                    Reading::Length(left) => {
                        let n = usize::try_from(*left)
                            .map_or(conn.buf.len(), |l| l.min(conn.buf.len()));
                        let data = conn.buf.split_to(n).freeze();
                        *left -= n as u64;
                        if *left == 0 {
                            self.finish(true);
                        }
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                    Reading::UntilClose => {
                        let data = conn.buf.split().freeze();
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                    Reading::Chunked(decoder) => match decoder.decode(&conn.buf) {
                        Err(e) => return self.fail(e.into()),
                        Ok((_, Step::Data(range))) => {
                            conn.buf.advance(range.start);
                            let data = conn.buf.split_to(range.len()).freeze();
                            return Poll::Ready(Some(Ok(Frame::data(data))));
                        }
                        Ok((used, Step::NeedMore)) => conn.buf.advance(used),
                        Ok((used, Step::Done)) => {
                            conn.buf.advance(used);
                            let trailers = decoder.take_trailers();
                            self.finish(true);
                            return Poll::Ready(
                                trailers
                                    .and_then(|t| trailer_map(&t))
                                    .map(|m| Ok(Frame::trailers(m))),
                            );
                        }
                    },
                }
            } else if matches!(self.reading, Reading::Done) {
                return Poll::Ready(None);
            }
            match ready!(poll_fill(conn, cx)) {
                Err(e) => return self.fail(e.into()),
                Ok(0) if matches!(self.reading, Reading::UntilClose) => {
                    self.reusable = false;
                    self.finish(true);
                    return Poll::Ready(None);
                }
                Ok(0) => return self.fail(BodyError::Truncated),
                Ok(_) => {}
            }
        }
    }
}

/// Reads what the connection has into its buffer; 0 when the upstream closed it.
fn poll_fill(conn: &mut Conn, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
    if conn.buf.capacity() - conn.buf.len() < MIN_ROOM {
        conn.buf.reserve(READ_CHUNK);
    }
    loop {
        match conn.stream.try_read_buf(&mut conn.buf) {
            Ok(n) => return Poll::Ready(Ok(n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                ready!(conn.stream.poll_read_ready(cx))?;
            }
            Err(e) => return Poll::Ready(Err(e)),
        }
    }
}

/// The trailer fields of a chunked body, as the client side forwards them (fields that
/// could reframe a message, and pseudo-fields, left out).
pub(crate) fn trailer_map(raw: &[u8]) -> Option<HeaderMap> {
    let mut slots = [httparse::EMPTY_HEADER; 32];
    let mut with_end = Vec::with_capacity(raw.len() + 2);
    with_end.extend_from_slice(raw);
    with_end.extend_from_slice(b"\r\n");
    let fields = match httparse::parse_headers(&with_end, &mut slots) {
        Ok(httparse::Status::Complete((_, fields))) => fields,
        _ => return None,
    };
    let mut map = HeaderMap::new();
    for f in fields {
        let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(f.name.as_bytes()),
            http::HeaderValue::from_bytes(f.value),
        ) else {
            continue;
        };
        if name == http::header::CONTENT_LENGTH
            || name == http::header::TRANSFER_ENCODING
            || name == http::header::HOST
            || name == http::header::TRAILER
        {
            continue;
        }
        map.append(name, value);
    }
    (!map.is_empty()).then_some(map)
}
