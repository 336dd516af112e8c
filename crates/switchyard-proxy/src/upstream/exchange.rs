//! One request/response exchange on an upstream connection, driven by the request's own task.
//!
//! The request head is encoded into one buffer (a buffered body rides in the same write); a
//! streamed body follows while the response head is awaited, so an upstream that answers
//! early (a 413, say) is heard at once. Every write is counted: a failure with zero bytes
//! written means nothing of the request reached the upstream ([`FailureKind::Unsent`]), the
//! fact that lets even a POST be retried. A failure of the client's own body is reported as
//! the client's, never as the upstream's.

use std::io;

use bytes::{Buf, Bytes, BytesMut};
use http_body_util::BodyExt;
use switchyard_core::retry::FailureKind;
use switchyard_h1::{LAST_CHUNK, ParseOutcome, ResponseHead, encode_chunk, parse_response_head};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::Conn;
use crate::body::UpstreamBody;

/// The largest response head accepted from an upstream.
pub(crate) const MAX_RESPONSE_HEAD: usize = 64 * 1024;

/// Why an exchange produced no response head.
#[derive(Debug)]
pub(crate) enum ExchangeError {
    /// The upstream side failed; the kind says whether anything was written.
    Upstream(FailureKind),
    /// The client's body broke off (it went away, or its framing broke).
    Client,
    /// The client's streamed body went past `max_body`.
    TooLarge,
    /// The client sent nothing of its streamed body for `body_timeout`.
    TimedOut,
}

/// Where the encoded head of a request is.
pub(crate) enum OutHead<'a> {
    /// In these bytes.
    Bytes(&'a [u8]),
    /// In the connection's read buffer (encoded there to use its room): written from it, then
    /// the buffer is emptied for the response.
    InBuf,
}

/// The request as the exchange writes it.
pub(crate) struct Outgoing<'a> {
    /// The encoded head, with a buffered body appended when there is one.
    pub(crate) head: OutHead<'a>,
    /// A streamed body (and whether to chunk it), taken once the head is written.
    pub(crate) streamed: Option<(&'a mut UpstreamBody, bool)>,
    /// The request is HEAD (its response has no body).
    pub(crate) head_request: bool,
}

/// A response head and what the exchange learnt about the connection.
pub(crate) struct Answer {
    /// The parsed head; its field ranges point into `bytes`.
    pub(crate) head: ResponseHead,
    /// The head's bytes.
    pub(crate) bytes: Bytes,
    /// True when the whole request body was written (a response that came early leaves the
    /// connection unusable for another request).
    pub(crate) request_complete: bool,
}

/// Writes the request on `conn` and reads the response head (interim 1xx answers other than
/// 101 are skipped).
pub(crate) async fn exchange(conn: &mut Conn, out: Outgoing<'_>) -> Result<Answer, ExchangeError> {
    let Conn { stream, buf, .. } = conn;
    let mut written = 0u64;
    let head = match out.head {
        OutHead::Bytes(bytes) => bytes,
        OutHead::InBuf => &buf[..],
    };
    let wrote = write_counted(stream, head, &mut written).await;
    if matches!(out.head, OutHead::InBuf) {
        buf.clear();
    }
    if let Err(e) = wrote {
        tracing::debug!(error = %e, written, "writing the request upstream failed");
        return Err(ExchangeError::Upstream(if written == 0 {
            FailureKind::Unsent
        } else {
            FailureKind::Reset
        }));
    }
    let Some((body, chunked)) = out.streamed else {
        return read_head(stream, buf, out.head_request)
            .await
            .map(|(head, bytes)| Answer {
                head,
                bytes,
                request_complete: true,
            });
    };
    let (mut rd, mut wr) = stream.split();
    let send = send_body(&mut wr, body, chunked);
    let recv = read_head(&mut rd, buf, out.head_request);
    tokio::pin!(send);
    tokio::pin!(recv);
    let mut sent = false;
    loop {
        tokio::select! {
            r = &mut send, if !sent => match r {
                Ok(()) => sent = true,
                Err(e) => return Err(e),
            },
            r = &mut recv => {
                return r.map(|(head, bytes)| Answer { head, bytes, request_complete: sent });
            }
        }
    }
}

/// Writes all of `bytes`, counting what was written.
async fn write_counted<W: AsyncWrite + Unpin>(
    w: &mut W,
    bytes: &[u8],
    written: &mut u64,
) -> io::Result<()> {
    let mut rest = bytes;
    while !rest.is_empty() {
        let n = w.write(rest).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        *written += n as u64;
        rest = &rest[n..];
    }
    Ok(())
}

/// Streams the client's body upstream (chunk-encoded when its size is unknown).
async fn send_body<W: AsyncWrite + Unpin>(
    w: &mut W,
    body: &mut UpstreamBody,
    chunked: bool,
) -> Result<(), ExchangeError> {
    let reset = |e: io::Error| {
        tracing::debug!(error = %e, "writing the request body upstream failed");
        ExchangeError::Upstream(FailureKind::Reset)
    };
    let mut line = BytesMut::with_capacity(16);
    loop {
        let data: Bytes = match body.frame().await {
            None => break,
            Some(Err(e)) => {
                return Err(if e.is::<crate::body::BodyTooLarge>() {
                    ExchangeError::TooLarge
                } else if e.is::<crate::body::BodyTimedOut>() {
                    ExchangeError::TimedOut
                } else {
                    ExchangeError::Client
                });
            }
            Some(Ok(frame)) => match frame.into_data() {
                Ok(d) if !d.is_empty() => d,
                _ => continue,
            },
        };
        if chunked {
            line.clear();
            encode_chunk(&mut line, data.len());
            w.write_all(&line).await.map_err(reset)?;
            w.write_all(&data).await.map_err(reset)?;
            w.write_all(b"\r\n").await.map_err(reset)?;
        } else {
            w.write_all(&data).await.map_err(reset)?;
        }
    }
    if chunked {
        w.write_all(LAST_CHUNK).await.map_err(reset)?;
    }
    Ok(())
}

/// Reads until a complete final response head is in `buf`; returns it split off the buffer
/// (what follows it stays in `buf`).
async fn read_head<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut BytesMut,
    head_request: bool,
) -> Result<(ResponseHead, Bytes), ExchangeError> {
    loop {
        if !buf.is_empty() {
            match parse_response_head(buf, head_request, MAX_RESPONSE_HEAD) {
                Ok(ParseOutcome::Complete(head)) => {
                    if (100..200).contains(&head.status) && head.status != 101 {
                        buf.advance(head.head_len);
                        continue;
                    }
                    let bytes = buf.split_to(head.head_len).freeze();
                    return Ok((head, bytes));
                }
                Ok(ParseOutcome::Partial) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "bad response head from upstream");
                    return Err(ExchangeError::Upstream(FailureKind::Reset));
                }
            }
        }
        if buf.capacity() - buf.len() < 1024 {
            buf.reserve(8 * 1024);
        }
        match r.read_buf(buf).await {
            Ok(0) => return Err(ExchangeError::Upstream(FailureKind::Reset)),
            Ok(_) => {}
            Err(e) => {
                tracing::debug!(error = %e, "reading the response head failed");
                return Err(ExchangeError::Upstream(FailureKind::Reset));
            }
        }
    }
}
