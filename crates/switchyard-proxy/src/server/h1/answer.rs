//! Writing an answer on an HTTP/1 connection: its head (status line, fields and the framing its
//! body needs) into the write buffer, then its body, and the answers to refused heads.

use std::cell::RefCell;
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::Poll;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Buf;
use http::header::{self, HeaderMap};
use http::{Response, StatusCode, Version};
use tokio::io::AsyncWriteExt;

use super::head::{Refused, connection_tokens};
use super::{Conn, Exchange};
use crate::digits;
use crate::server::conn::{ServiceBody, Stream};
use crate::upstream::passed::PassedHead;

/// Data frames at least this large are written as they are instead of copied into the write
/// buffer.
const DIRECT_WRITE: usize = 8 * 1024;
/// The write buffer is written out once it holds this much.
const WRITE_HIGH: usize = 16 * 1024;

/// How an answer's body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Out {
    /// No body (HEAD, 1xx, 204, 304, a tunnel).
    None,
    /// This many bytes.
    Length(u64),
    /// Chunked.
    Chunked,
    /// Until the connection closes (HTTP/1.0 client, unknown length).
    Close,
}

/// How an answer's head is written.
#[derive(Debug, Clone, Copy)]
struct Plan {
    /// The body's framing.
    out: Out,
    /// The connection stays open after the answer.
    keep: bool,
    /// The answer opens a tunnel.
    tunnel: bool,
    /// The answer declares its own `Content-Length`.
    declared: bool,
    /// Its `Connection` field already says `close`.
    close_asked: bool,
    /// When the whole answer was at hand, if it was (see `ServiceBody::complete_at`).
    complete_at: Option<tokio::time::Instant>,
}

/// What an answer left the connection as.
pub(super) enum Answered {
    KeepAlive,
    Close,
    Tunnel,
}

impl<I: Stream> Conn<I> {
    /// Writes an answer, head and body. The body is dropped, and the guard told, before the
    /// answer's last bytes are flushed (the guard starts the keep-alive clock at that flush).
    ///
    /// The head is written before the returned future is made, so that future holds only the
    /// body and the plan (not the response, its header map and the upstream's head): it is
    /// made, and moved, once per request.
    pub(super) fn answer<B: ServiceBody>(
        &mut self,
        resp: Response<B>,
        ex: &mut Exchange,
        keep: bool,
    ) -> impl Future<Output = io::Result<Answered>> + '_ {
        let (body, plan) = self.begin(resp, ex, keep);
        self.send(body, plan)
    }

    /// Plans the answer's framing and writes its head into the write buffer; returns the body
    /// and the plan.
    fn begin<B: ServiceBody>(
        &mut self,
        resp: Response<B>,
        ex: &mut Exchange,
        keep: bool,
    ) -> (B, Plan) {
        let (parts, mut body) = resp.into_parts();
        // The upstream's fields, when they come as bytes: `parts.headers` holds the rest.
        let passed = body.passed_head();
        let status = parts.status;
        let tunnel = ex.upgrade.is_some()
            && (status == StatusCode::SWITCHING_PROTOCOLS
                || (ex.method_connect && status.is_success()));
        let close_asked = has_token(&parts.headers, b"close");
        let mut keep = keep && !close_asked;
        let declared = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| std::str::from_utf8(v.as_bytes()).ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .or_else(|| passed.as_ref().and_then(PassedHead::declared_length));
        let out = if tunnel
            || ex.method_head
            || status.is_informational()
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED
        {
            Out::None
        } else if let Some(n) = declared.or_else(|| body.size_hint().exact()) {
            Out::Length(n)
        } else if ex.version == Version::HTTP_11 {
            Out::Chunked
        } else {
            keep = false;
            Out::Close
        };
        let plan = Plan {
            out,
            keep,
            tunnel,
            declared: declared.is_some(),
            close_asked,
            complete_at: body.complete_at(),
        };
        self.head(&parts, passed, ex, &plan);
        (body, plan)
    }

    /// Sends the body as `plan` frames it, then flushes.
    /// (Not an `async fn`: its block works on the body where it was captured, not on a copy.)
    #[allow(clippy::manual_async_fn)]
    fn send<B: ServiceBody>(
        &mut self,
        mut body: B,
        plan: Plan,
    ) -> impl Future<Output = io::Result<Answered>> + '_ {
        async move {
            let Plan {
                out,
                keep,
                tunnel,
                complete_at,
                ..
            } = plan;
            {
                let mut body = Pin::new(&mut body);
                let mut sent: u64 = 0;
                if out != Out::None {
                    loop {
                        let frame = poll_fn(|cx| match body.as_mut().poll_frame(cx) {
                            Poll::Pending if !self.wbuf.is_empty() => {
                                // Nothing more for now: what is buffered goes out meanwhile.
                                match self.poll_write_buf(cx) {
                                    Poll::Ready(Ok(())) => Poll::Pending,
                                    Poll::Ready(Err(e)) => Poll::Ready(Some(Err(Writing::Io(e)))),
                                    Poll::Pending => Poll::Pending,
                                }
                            }
                            Poll::Pending => Poll::Pending,
                            Poll::Ready(None) => Poll::Ready(None),
                            Poll::Ready(Some(Ok(frame))) => Poll::Ready(Some(Ok(frame))),
                            Poll::Ready(Some(Err(e))) => {
                                Poll::Ready(Some(Err(Writing::Body(e.into()))))
                            }
                        })
                        .await;
                        let frame = match frame {
                            None => break,
                            Some(Ok(frame)) => frame,
                            Some(Err(Writing::Io(e))) => return Err(e),
                            Some(Err(Writing::Body(e))) => {
                                // hyper's answer to a failed body: the connection ends, unfinished.
                                return Err(io::Error::other(e));
                            }
                        };
                        match frame.into_data() {
                            Ok(mut data) => {
                                let len = data.remaining();
                                if len == 0 {
                                    continue;
                                }
                                sent += len as u64;
                                if let Out::Length(n) = out {
                                    if sent > n {
                                        return Err(io::Error::other(
                                            "answer body longer than its length",
                                        ));
                                    }
                                }
                                if out == Out::Chunked {
                                    chunk_size(&mut self.wbuf, len);
                                }
                                if len >= DIRECT_WRITE {
                                    self.io.write_all(&self.wbuf).await?;
                                    self.wbuf.clear();
                                    while data.has_remaining() {
                                        let n = self.io.write(data.chunk()).await?;
                                        if n == 0 {
                                            return Err(io::ErrorKind::WriteZero.into());
                                        }
                                        data.advance(n);
                                    }
                                } else {
                                    while data.has_remaining() {
                                        let chunk = data.chunk();
                                        self.wbuf.extend_from_slice(chunk);
                                        let n = chunk.len();
                                        data.advance(n);
                                    }
                                }
                                if out == Out::Chunked {
                                    self.wbuf.extend_from_slice(b"\r\n");
                                }
                                if self.wbuf.len() >= WRITE_HIGH {
                                    self.io.write_all(&self.wbuf).await?;
                                    self.wbuf.clear();
                                }
                            }
                            Err(frame) => {
                                if let (Ok(trailers), Out::Chunked) = (frame.into_trailers(), out) {
                                    self.wbuf.extend_from_slice(b"0\r\n");
                                    for (name, value) in &trailers {
                                        field(
                                            &mut self.wbuf,
                                            name.as_str().as_bytes(),
                                            value.as_bytes(),
                                        );
                                    }
                                    self.wbuf.extend_from_slice(b"\r\n");
                                    sent = u64::MAX;
                                    break;
                                }
                            }
                        }
                    }
                    match out {
                        Out::Length(n) if sent != n => {
                            return Err(io::Error::other("answer body shorter than its length"));
                        }
                        Out::Chunked if sent != u64::MAX => {
                            self.wbuf.extend_from_slice(b"0\r\n\r\n")
                        }
                        _ => {}
                    }
                }
            }
            // The body is dropped, and the guard told, before the answer is flushed.
            drop(body);
            self.io.answer_finished(complete_at);
            if !self.wbuf.is_empty() {
                self.io.write_all(&self.wbuf).await?;
                self.wbuf.clear();
            }
            self.io.flush().await?;
            Ok(if tunnel {
                Answered::Tunnel
            } else if keep && out != Out::Close {
                Answered::KeepAlive
            } else {
                Answered::Close
            })
        }
    }

    /// Writes an answer's head into the write buffer: the upstream's fields passed as bytes
    /// first (if any), then those of the header map.
    fn head(
        &mut self,
        parts: &http::response::Parts,
        passed: Option<PassedHead>,
        ex: &Exchange,
        plan: &Plan,
    ) {
        let Plan {
            out,
            keep,
            tunnel,
            declared,
            close_asked,
            ..
        } = *plan;
        let w = &mut self.wbuf;
        let status = parts.status;
        if ex.version == Version::HTTP_10 {
            w.extend_from_slice(b"HTTP/1.0 ");
        } else {
            w.extend_from_slice(b"HTTP/1.1 ");
        }
        w.extend_from_slice(status.as_str().as_bytes());
        w.push(b' ');
        w.extend_from_slice(status.canonical_reason().unwrap_or("<none>").as_bytes());
        w.extend_from_slice(b"\r\n");
        let mut date = false;
        let no_length = status == StatusCode::NO_CONTENT || status.is_informational();
        if let Some(passed) = &passed {
            for f in passed.fields() {
                match f.name.len() {
                    14 if no_length && switchyard_h1::is_lower(f.name, b"content-length") => {
                        continue;
                    }
                    12 if passed.replaced(f.name, &parts.headers) => continue,
                    4 if switchyard_h1::is_lower(f.name, b"date") => date = true,
                    _ => {}
                }
                // The line as received: one copy, with its CRLF when it had one.
                w.extend_from_slice(f.line);
                if !f.line.ends_with(b"\n") {
                    w.extend_from_slice(b"\r\n");
                }
            }
            if let Some(id) = passed.request_id() {
                field(w, b"x-request-id", id.as_bytes());
            }
        }
        for (name, value) in &parts.headers {
            match *name {
                header::TRANSFER_ENCODING => continue,
                header::CONTENT_LENGTH if no_length => continue,
                header::DATE => date = true,
                _ => {}
            }
            field(w, name.as_str().as_bytes(), value.as_bytes());
        }
        match out {
            Out::Length(n) if !declared => {
                w.extend_from_slice(b"content-length: ");
                digits::decimal(w, n);
                w.extend_from_slice(b"\r\n");
            }
            Out::Chunked => w.extend_from_slice(b"transfer-encoding: chunked\r\n"),
            _ => {}
        }
        if !tunnel {
            if ex.version == Version::HTTP_10 {
                if keep && out != Out::Close && !has_token(&parts.headers, b"keep-alive") {
                    w.extend_from_slice(b"connection: keep-alive\r\n");
                }
            } else if (!keep || out == Out::Close) && !close_asked {
                w.extend_from_slice(b"connection: close\r\n");
            }
        }
        if !date {
            w.extend_from_slice(b"date: ");
            cached_date(w);
            w.extend_from_slice(b"\r\n");
        }
        w.extend_from_slice(b"\r\n");
    }

    /// Answers a refused head and closes.
    pub(super) async fn refuse(&mut self, why: Refused) {
        let status = match why {
            Refused::Bad => "400 Bad Request",
            Refused::TooLarge => "431 Request Header Fields Too Large",
        };
        self.wbuf.clear();
        self.wbuf.extend_from_slice(b"HTTP/1.1 ");
        self.wbuf.extend_from_slice(status.as_bytes());
        self.wbuf
            .extend_from_slice(b"\r\nconnection: close\r\ncontent-length: 0\r\ndate: ");
        cached_date(&mut self.wbuf);
        self.wbuf.extend_from_slice(b"\r\n\r\n");
        if self.io.write_all(&self.wbuf).await.is_ok() {
            let _ = self.io.flush().await;
            let _ = self.io.shutdown().await;
        }
    }
}

/// Why writing an answer's body stopped.
enum Writing {
    Io(io::Error),
    Body(crate::body::BoxError),
}

/// Appends `name: value\r\n`.
fn field(w: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    w.extend_from_slice(name);
    w.extend_from_slice(b": ");
    w.extend_from_slice(value);
    w.extend_from_slice(b"\r\n");
}

/// Appends a chunk-size line.
fn chunk_size(w: &mut Vec<u8>, len: usize) {
    digits::hex(w, len as u64);
    w.extend_from_slice(b"\r\n");
}

/// Whether a `Connection` field of `headers` lists `token`.
fn has_token(headers: &HeaderMap, token: &[u8]) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .any(|v| connection_tokens(v.as_bytes()).any(|t| t.eq_ignore_ascii_case(token)))
}

thread_local! {
    /// The `Date` value of the current second, per thread.
    static DATE: RefCell<(u64, [u8; 29])> = const { RefCell::new((u64::MAX, [b' '; 29])) };
}

/// Appends the current time as an HTTP date (cached per second).
fn cached_date(w: &mut Vec<u8>) {
    let now = SystemTime::now();
    let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    DATE.with(|cell| {
        let mut cell = cell.borrow_mut();
        if cell.0 != second {
            let text = httpdate::fmt_http_date(now);
            if let Some(b) = text.as_bytes().get(..29) {
                cell.1.copy_from_slice(b);
                cell.0 = second;
            }
        }
        w.extend_from_slice(&cell.1);
    });
}
