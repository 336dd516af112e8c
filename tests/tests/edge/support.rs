//! The edge tests' helpers: decoders, raw requests from a chosen source address, and a tiny
//! upstream for the answers `TestApp` cannot give.

use std::convert::Infallible;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::{Body, Frame, Incoming};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::mpsc;

/// A whole gzip stream, decoded.
pub(crate) fn gunzip(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(data)
        .read_to_end(&mut out)
        .expect("valid gzip");
    out
}

/// A whole brotli stream, decoded.
pub(crate) fn unbrotli(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    brotli::Decompressor::new(data, 4096)
        .read_to_end(&mut out)
        .expect("valid brotli");
    out
}

/// The status code of a raw HTTP/1.1 answer.
pub(crate) fn raw_status(answer: &[u8]) -> u16 {
    let text = String::from_utf8_lossy(answer);
    text.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// A tiny upstream for answers `TestApp` cannot give: `/pre-encoded` (a gzip body with
/// `Content-Encoding: gzip`), `/stream` (a text body fed by the test through [`Custom::feed`]),
/// anything else 200 `ok`.
pub(crate) struct Custom {
    /// Where it listens.
    pub(crate) addr: SocketAddr,
    /// The body of the next `/stream` request, handed over by the test.
    next_stream: Arc<Mutex<Option<mpsc::Receiver<Bytes>>>>,
}

/// A streamed body: one data frame per message, ended when the sender is dropped.
struct Fed(mpsc::Receiver<Bytes>);

impl Body for Fed {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|m| m.map(|b| Ok(Frame::data(b))))
    }
}

/// What `/pre-encoded` holds (200 times), gzipped by the upstream.
pub(crate) const PRE_ENCODED_TEXT: &str = "<p>compressed by the upstream itself</p>";

impl Custom {
    /// Starts it on `127.0.0.1:0`.
    pub(crate) async fn start() -> Custom {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let next_stream = Arc::new(Mutex::new(None));
        let streams = next_stream.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let streams = streams.clone();
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let streams = streams.clone();
                    async move { Ok::<_, Infallible>(Custom::answer(&req, &streams)) }
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), svc),
                );
            }
        });
        Custom { addr, next_stream }
    }

    fn answer(
        req: &Request<Incoming>,
        streams: &Mutex<Option<mpsc::Receiver<Bytes>>>,
    ) -> Response<BoxBody<Bytes, Infallible>> {
        let builder = Response::builder();
        let built = match req.uri().path() {
            "/pre-encoded" => {
                let mut gz =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                gz.write_all(PRE_ENCODED_TEXT.repeat(200).as_bytes())
                    .expect("gzip");
                let body = gz.finish().expect("gzip");
                builder
                    .header("content-type", "text/html")
                    .header("content-encoding", "gzip")
                    .body(Full::new(Bytes::from(body)).boxed())
            }
            "/stream" => match streams.lock().expect("lock").take() {
                Some(rx) => builder
                    .header("content-type", "text/plain; charset=utf-8")
                    .body(Fed(rx).boxed()),
                None => builder
                    .status(500)
                    .body(Full::new(Bytes::from("no stream fed")).boxed()),
            },
            _ => builder.body(Full::new(Bytes::from("ok")).boxed()),
        };
        built.expect("response")
    }

    /// Hands the body of the next `/stream` request over; the test sends its chunks.
    pub(crate) fn feed(&self) -> mpsc::Sender<Bytes> {
        let (tx, rx) = mpsc::channel(8);
        *self.next_stream.lock().expect("lock") = Some(rx);
        tx
    }
}

/// Sends `GET path` on a fresh hyper connection and returns the response with its body unread,
/// so the test can read it frame by frame.
pub(crate) async fn open_stream(proxy: SocketAddr, path: &str, accept: &str) -> Response<Incoming> {
    let tcp = tokio::net::TcpStream::connect(proxy)
        .await
        .expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let req = Request::get(path)
        .header("host", "app.test")
        .header("accept-encoding", accept)
        .body(Full::new(Bytes::new()))
        .expect("request");
    sender.send_request(req).await.expect("response head")
}

/// What a streaming decoder makes of the beginning of a compressed stream.
pub(crate) fn decode_prefix(enc: &str, data: &[u8]) -> Vec<u8> {
    if enc == "gzip" {
        let mut dec = flate2::write::GzDecoder::new(Vec::new());
        let _ = dec.write_all(data);
        let _ = dec.flush();
        dec.get_ref().clone()
    } else {
        let mut dec = brotli::DecompressorWriter::new(Vec::new(), 4096);
        let _ = dec.write_all(data);
        let _ = dec.flush();
        dec.get_ref().clone()
    }
}

/// A request from the source address `from` (any 127/8 address is local), over a fresh
/// connection; returns the status and the `Retry-After` header.
pub(crate) async fn get_from(from: Ipv4Addr, proxy: SocketAddr, path: &str) -> (u16, Option<u64>) {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(SocketAddr::from((from, 0)))
        .expect("bind the source address");
    let mut tcp = socket.connect(proxy).await.expect("connect");
    let req = format!("GET {path} HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n");
    tcp.write_all(req.as_bytes()).await.expect("write");
    let mut answer = Vec::new();
    tcp.read_to_end(&mut answer).await.expect("read");
    let text = String::from_utf8_lossy(&answer).to_ascii_lowercase();
    let retry_after = text
        .lines()
        .find_map(|l| l.strip_prefix("retry-after:"))
        .and_then(|v| v.trim().parse().ok());
    (raw_status(&answer), retry_after)
}
