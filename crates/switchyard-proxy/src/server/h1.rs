//! Switchyard's own HTTP/1.1 server side: one client connection, one request at a time.
//!
//! hyper's HTTP/1 server turned each request head into an `http::Request` through its
//! dispatcher, with a channel for every body and a second encoding pass for every answer; a
//! large part of what the proxy cost per request was spent there. This driver does the same
//! work directly, in the connection's own task:
//!
//! - the head is tokenized (`switchyard_h1::tokenize_request`) straight from the read
//!   buffer; the method, target and header values of the `http::Request` share that buffer
//!   (no copies) (`head.rs`);
//! - a request without a body gets an empty body; a body is fed to the service piece by piece
//!   as it asks for it (`body.rs`), with `100 Continue` sent when it first asks;
//! - the answer's head is written into one buffer with its body's framing (the declared
//!   `Content-Length`, the body's exact size, chunked, or until close for an HTTP/1.0 client),
//!   and small bodies go out in the same write (`answer.rs`);
//! - an answer of `101` hands the stream, and any bytes read after the request, to the
//!   service's [`OnUpgrade`] (`upgrade.rs`).
//!
//! It reads from the framing guard (`crate::framing`), which has already refused every head
//! with ambiguous framing or over the limits (replacing it with one this driver answers with
//! `400` or `431`) and keeps the header and keep-alive clocks (an expired clock reads as EOF).
//! The driver reports each answer to the guard (its status when the service returns it, and
//! its end when the driver drops its body, before it flushes the answer's last bytes), and when
//! the guard asks for the connection to be parked while it waits for a head with nothing read,
//! it returns the stream; its buffers go with it.
//!
//! hyper's behaviour is kept where clients can see it: a client that closes its side while its
//! request is served has the request dropped (no half-close), an HTTP/1.0 client gets HTTP/1.0
//! answers and keep-alive only when it asked for it, and a `Date` is added to answers that have
//! none.

mod answer;
mod body;
mod head;
mod upgrade;

use std::future::{Future, poll_fn};
use std::io;
use std::pin::pin;
use std::task::{Context, Poll};

use bytes::{Buf, BytesMut};
use http::{Method, Request, Version};
use switchyard_h1::{ChunkedDecoder, Step};
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

use self::answer::Answered;
pub(crate) use self::body::RequestBody;
use self::body::{BodyError, Feeder, Want};
pub(crate) use self::head::RawHead;
use self::head::{Head, Refused};
pub(crate) use self::upgrade::OnUpgrade;
use crate::body::ClientBody;
use crate::framing::{Guarded, ParkSignal};
use crate::server::conn::{Service, ServiceBody, Stream};
use crate::shared::stopped;

/// Room made in the read buffer before a read.
const READ_CHUNK: usize = 8 * 1024;
/// What an HTTP/1.1 client that sent `Expect: 100-continue` is told when its body is wanted.
const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// What the driver enforces besides the guard.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Options {
    /// The longest head it reads before answering 431 (the guard's `read_buf_limit`).
    pub(crate) max_buf: usize,
    /// The most header fields in one head.
    pub(crate) max_headers: usize,
}

/// How serving a connection ended.
#[allow(clippy::large_enum_variant)] // returned once per park, never stored
pub(crate) enum Ended<I> {
    /// The connection is over (closed, or handed to a tunnel).
    Closed,
    /// The guard asked for the connection to be parked: the stream, idle.
    Parked(Guarded<I>),
}

/// One connection being served.
struct Conn<I> {
    /// The guarded client stream.
    io: Guarded<I>,
    /// Bytes read and not yet used.
    rbuf: BytesMut,
    /// Bytes to write.
    wbuf: Vec<u8>,
    /// Where the last head's fields are in it (name start and length, value start and length),
    /// kept between requests.
    fields: Vec<[usize; 4]>,
    /// The client closed its side.
    eof: bool,
}

/// Where the driver is in a request body.
enum Reading {
    /// This many bytes are still to come.
    Length(u64),
    /// Chunked.
    Chunked(Box<ChunkedDecoder>),
}

/// What the driver must know of a request to answer it.
struct Exchange {
    method_head: bool,
    method_connect: bool,
    version: Version,
    /// The client allows keeping the connection open.
    keep_alive: bool,
    /// `Expect: 100-continue` from an HTTP/1.1 client, not yet answered.
    expect_continue: bool,
    /// The request's body, while the driver still feeds it.
    feeding: Option<Feeding>,
    /// The body was not read to its end: the connection cannot be reused.
    body_abandoned: bool,
    /// Where the stream goes if the answer opens a tunnel.
    upgrade: Option<upgrade::Pending>,
}

impl Exchange {
    /// Fails the request body: the service learns it at its next poll, and the connection
    /// cannot be reused (the rest of the body is unread).
    fn fail_body(&mut self, e: BodyError) -> Poll<bool> {
        if let Some(feeding) = self.feeding.take() {
            feeding.feeder.fail(e);
        }
        self.body_abandoned = true;
        Poll::Ready(true)
    }
}

/// A request body the driver feeds.
struct Feeding {
    feeder: Feeder,
    reading: Reading,
}

/// What the wait for the next head ended with.
enum Next {
    Head(Head),
    Refused(Refused),
    /// EOF (the client left, or a clock ran out) or a stop between requests.
    Closed,
    /// The guard asks for the idle connection to be parked.
    Parked,
}

/// Serves HTTP/1 on `io` with `svc` until the connection ends, or until the guard asks for
/// it to be parked (then the stream comes back). Once `stop` turns true the request in
/// flight is answered with `connection: close`, and an idle connection closes.
pub(crate) async fn serve<I, S, B>(
    io: Guarded<I>,
    svc: &S,
    opts: Options,
    park: &ParkSignal,
    stop: &mut watch::Receiver<bool>,
) -> io::Result<Ended<I>>
where
    I: Stream,
    S: Service<B>,
    B: ServiceBody,
{
    let mut conn = Conn {
        io,
        rbuf: BytesMut::new(),
        wbuf: Vec::new(),
        fields: Vec::new(),
        eof: false,
    };
    // The stop signal: its future is polled once to register this task's waker, then again
    // only once the watch has changed (an atomic load per look instead of a poll of the
    // watch's future, which locks its waiter list).
    let changes = stop.clone();
    let mut stopping = pin!(stopped(stop));
    let mut armed = false;
    let mut stop_now = |cx: &mut Context<'_>| {
        if armed && !changes.has_changed().unwrap_or(false) {
            return false;
        }
        armed = true;
        stopping.as_mut().poll(cx).is_ready()
    };
    let mut stop_seen = false;
    loop {
        let next = poll_fn(|cx| {
            if !stop_seen && stop_now(cx) {
                stop_seen = true;
            }
            conn.poll_head(cx, opts, park, stop_seen)
        })
        .await?;
        let head = match next {
            Next::Head(head) => head,
            Next::Refused(why) => {
                conn.refuse(why).await;
                return Ok(Ended::Closed);
            }
            Next::Closed => {
                let _ = conn.io.shutdown().await;
                return Ok(Ended::Closed);
            }
            Next::Parked => {
                conn.io.release_tokens();
                return Ok(Ended::Parked(conn.io));
            }
        };
        let Some((req, raw, mut exchange)) = conn.request(head) else {
            conn.refuse(Refused::Bad).await;
            return Ok(Ended::Closed);
        };
        let answer = {
            // Boxed: an inline service future makes the driver's state several kB larger,
            // which measured slower (more so over TLS) than one allocation per request.
            // The box is allocated before the call, so that the future is built in it rather
            // than built beside it and copied in.
            let mut call = Box::into_pin(Box::write(Box::new_uninit(), svc.call(req, raw)));
            poll_fn(|cx| {
                loop {
                    if let Poll::Ready(r) = call.as_mut().poll(cx) {
                        return Poll::Ready(Some(r));
                    }
                    match conn.poll_client(cx, &mut exchange) {
                        Poll::Ready(true) => {}
                        Poll::Ready(false) => return Poll::Ready(None),
                        Poll::Pending => return Poll::Pending,
                    }
                }
            })
            .await
        };
        let resp = match answer {
            Some(Ok(resp)) => resp,
            Some(Err(e)) => {
                let e: crate::body::BoxError = e.into();
                return Err(io::Error::other(e));
            }
            None => {
                // The client left while its request was served: the request is dropped.
                return Ok(Ended::Closed);
            }
        };
        conn.io.answered(resp.status());
        if exchange.feeding.is_some() {
            exchange.body_abandoned = true;
        }
        // A stop while the request was served: it is answered with `connection: close`. (Looked
        // at once here rather than at every poll of the service.)
        if !stop_seen {
            stop_seen = poll_fn(|cx| Poll::Ready(stop_now(cx))).await;
        }
        let keep = exchange.keep_alive && !stop_seen && !exchange.body_abandoned;
        match conn.answer(resp, &mut exchange, keep).await? {
            Answered::KeepAlive => {}
            Answered::Close => {
                let _ = conn.io.shutdown().await;
                return Ok(Ended::Closed);
            }
            Answered::Tunnel => {
                let early = conn.rbuf.split().freeze();
                if let Some(pending) = exchange.upgrade.take() {
                    conn.io.release_tokens();
                    pending.fulfil(conn.io, early);
                }
                return Ok(Ended::Closed);
            }
        }
    }
}

impl<I: Stream> Conn<I> {
    /// Reads until a head is complete (or refused), the connection ends, or it may be parked.
    fn poll_head(
        &mut self,
        cx: &mut Context<'_>,
        opts: Options,
        park: &ParkSignal,
        stop_seen: bool,
    ) -> Poll<io::Result<Next>> {
        loop {
            if self.rbuf.is_empty() {
                if stop_seen || self.eof {
                    return Poll::Ready(Ok(Next::Closed));
                }
            } else {
                match self.parse(opts) {
                    Ok(Some(head)) => return Poll::Ready(Ok(Next::Head(head))),
                    Ok(None) if self.rbuf.len() >= opts.max_buf => {
                        return Poll::Ready(Ok(Next::Refused(Refused::TooLarge)));
                    }
                    Ok(None) if self.eof => return Poll::Ready(Ok(Next::Closed)),
                    Ok(None) => {}
                    Err(why) => return Poll::Ready(Ok(Next::Refused(why))),
                }
            }
            match self.poll_read(cx) {
                Poll::Ready(Ok(0)) => self.eof = true,
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending if self.rbuf.is_empty() && !stop_seen && park.wanted() => {
                    return Poll::Ready(Ok(Next::Parked));
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    /// Reads what the client has sent into the read buffer; 0 at EOF.
    fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.rbuf.capacity() - self.rbuf.len() < 1024 {
            self.rbuf.reserve(READ_CHUNK);
        }
        let read = self.io.read_buf(&mut self.rbuf);
        pin!(read).poll(cx)
    }

    /// The head at the start of the read buffer: `None` while it is incomplete. The guard
    /// keeps the tokens of the head it let through last, which is this one unless several came
    /// at once: then the head is tokenized here.
    fn parse(&mut self, opts: Options) -> Result<Option<Head>, Refused> {
        if let Some((line, len)) = self.io.take_tokens(self.rbuf.len(), &mut self.fields) {
            if self.fields.len() <= opts.max_headers {
                let head = head::head_of(&self.rbuf, line, len);
                #[cfg(debug_assertions)]
                self.check_tokens(opts, &head);
                return head.map(Some);
            }
        }
        head::parse(&self.rbuf, opts.max_headers, &mut self.fields)
    }

    /// Checks (in debug builds, so in every test) that the guard's tokens are what tokenizing
    /// the read buffer gives.
    #[cfg(debug_assertions)]
    fn check_tokens(&self, opts: Options, taken: &Result<Head, Refused>) {
        assert!(
            head::same_as_parsed(&self.rbuf, opts.max_headers, taken, &self.fields),
            "the guard's tokens {taken:?} {:?} differ from those of the head {:?}",
            self.fields,
            String::from_utf8_lossy(&self.rbuf)
        );
    }

    /// The request for a parsed head, and what the driver keeps of it; `None` when the target
    /// or a field is invalid.
    fn request(
        &mut self,
        head: Head,
    ) -> Option<(Request<ClientBody>, Option<Box<RawHead>>, Exchange)> {
        let bytes = self.rbuf.split_to(head.len).freeze();
        let parsed = head::build(head, &bytes, &self.fields)?;
        let framing = match parsed.framing {
            head::Framing::None => None,
            head::Framing::Length(n) => Some(Reading::Length(n)),
            head::Framing::Chunked => Some(Reading::Chunked(Box::default())),
        };
        let (body, feeding) = match framing {
            None => (ClientBody::Empty, None),
            Some(reading) => {
                let length = match reading {
                    Reading::Length(n) => Some(n),
                    Reading::Chunked(_) => None,
                };
                let (body, feeder) = body::channel(length);
                (ClientBody::Http1(body), Some(Feeding { feeder, reading }))
            }
        };
        let mut exchange = Exchange {
            method_head: parsed.method == Method::HEAD,
            method_connect: parsed.method == Method::CONNECT,
            version: parsed.version,
            keep_alive: parsed.keep_alive,
            expect_continue: parsed.expect_continue,
            feeding,
            body_abandoned: false,
            upgrade: None,
        };
        let mut req = Request::new(body);
        *req.method_mut() = parsed.method;
        *req.uri_mut() = parsed.uri;
        *req.version_mut() = parsed.version;
        *req.headers_mut() = parsed.headers;
        if parsed.may_tunnel {
            let (pending, on_upgrade) = upgrade::pair();
            exchange.upgrade = Some(pending);
            req.extensions_mut().insert(on_upgrade);
        }
        Some((req, parsed.raw, exchange))
    }

    /// While the service works on a request: feeds its body as it asks, and watches for the
    /// client leaving. `Ready(true)` when something changed for the service, `Ready(false)`
    /// when the client has gone.
    fn poll_client(&mut self, cx: &mut Context<'_>, ex: &mut Exchange) -> Poll<bool> {
        if let Some(feeding) = &mut ex.feeding {
            match feeding.feeder.want(cx) {
                Want::Nothing => return Poll::Pending,
                Want::Dropped => {
                    ex.feeding = None;
                    ex.body_abandoned = true;
                    // The rest of the body is still on its way: no EOF watch.
                    return Poll::Pending;
                }
                Want::Data => {}
            }
            if ex.expect_continue {
                if self.wbuf.is_empty() {
                    self.wbuf.extend_from_slice(CONTINUE);
                }
                match self.poll_write_buf(cx) {
                    Poll::Ready(Ok(())) => ex.expect_continue = false,
                    Poll::Ready(Err(e)) => return ex.fail_body(BodyError::Io(e)),
                    Poll::Pending => return Poll::Pending,
                }
            }
            loop {
                match self.feed(feeding) {
                    Ok(Fed::Piece) => return Poll::Ready(true),
                    Ok(Fed::End) => {
                        ex.feeding = None;
                        return Poll::Ready(true);
                    }
                    Ok(Fed::NeedMore) => {}
                    Err(e) => return ex.fail_body(e),
                }
                if self.eof {
                    return ex.fail_body(BodyError::Incomplete);
                }
                match self.poll_read(cx) {
                    Poll::Ready(Ok(0)) => self.eof = true,
                    Poll::Ready(Ok(_)) => {}
                    Poll::Ready(Err(e)) => return ex.fail_body(BodyError::Io(e)),
                    Poll::Pending => return Poll::Pending,
                }
            }
        }
        if ex.body_abandoned || self.eof || !self.rbuf.is_empty() {
            return Poll::Pending;
        }
        // The request is all read: an EOF now means the client has gone (hyper does not
        // allow half-closed connections either). Bytes of a next request wait in the buffer.
        match self.poll_read(cx) {
            Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => Poll::Ready(false),
            Poll::Ready(Ok(_)) | Poll::Pending => Poll::Pending,
        }
    }

    /// Hands the body the next piece the read buffer holds.
    fn feed(&mut self, feeding: &mut Feeding) -> Result<Fed, BodyError> {
        match &mut feeding.reading {
            Reading::Length(left) => {
                if self.rbuf.is_empty() {
                    return Ok(Fed::NeedMore);
                }
                let n = usize::try_from(*left)
                    .unwrap_or(usize::MAX)
                    .min(self.rbuf.len());
                let data = self.rbuf.split_to(n).freeze();
                *left -= n as u64;
                let end = *left == 0;
                feeding.feeder.data(data, end);
                Ok(if end { Fed::End } else { Fed::Piece })
            }
            Reading::Chunked(decoder) => {
                if self.rbuf.is_empty() {
                    return Ok(Fed::NeedMore);
                }
                match decoder.decode(&self.rbuf)? {
                    (_, Step::Data(range)) => {
                        self.rbuf.advance(range.start);
                        let data = self.rbuf.split_to(range.len()).freeze();
                        feeding.feeder.data(data, false);
                        Ok(Fed::Piece)
                    }
                    (used, Step::NeedMore) => {
                        self.rbuf.advance(used);
                        Ok(Fed::NeedMore)
                    }
                    (used, Step::Done) => {
                        self.rbuf.advance(used);
                        let trailers = decoder
                            .take_trailers()
                            .and_then(|t| crate::upstream::response::trailer_map(&t));
                        feeding.feeder.end(trailers);
                        Ok(Fed::End)
                    }
                }
            }
        }
    }

    /// Writes the write buffer out.
    fn poll_write_buf(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.wbuf.is_empty() {
            let n = std::task::ready!(std::pin::Pin::new(&mut self.io).poll_write(cx, &self.wbuf))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.wbuf.drain(..n);
        }
        Poll::Ready(Ok(()))
    }
}

/// What feeding a body did.
enum Fed {
    /// Handed over a piece.
    Piece,
    /// The body is complete (its last piece, trailers or nothing handed over).
    End,
    /// The read buffer holds nothing more of it.
    NeedMore,
}
