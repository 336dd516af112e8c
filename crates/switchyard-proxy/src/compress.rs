//! Response compression (nginx `gzip` / `brotli`): negotiation with the client, the decision
//! whether a response may be compressed, and a streaming encoder for the body.
//!
//! The request path calls [`apply`] last, after the response headers are set (it reads the
//! final `Content-Type` and `Cache-Control`). The body is compressed frame by frame as it
//! arrives and never collected: a burst of frames is compressed together, and whatever was
//! compressed is flushed (a sync flush, so the client can decode it) as soon as the upstream
//! makes the encoder wait. Streamed answers (server-sent events, long polls) thus reach the
//! client as promptly as uncompressed ones. The CPU work happens inside `poll_frame`, bounded by
//! one frame's size, at a level chosen for speed (gzip 5, brotli 4).

use std::io::Write;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use switchyard_config::CompressionConfig;

use crate::body::{BoxError, ProxyBody};

/// gzip level: 5 costs a third of level 9's CPU for nearly the same ratio on text.
const GZIP_LEVEL: u32 = 5;
/// brotli quality for on-the-fly work (11 is for precompressed files only).
const BROTLI_QUALITY: u32 = 4;
/// brotli window: 2^20 = 1 MiB, which bounds the encoder's memory per response.
const BROTLI_LGWIN: u32 = 20;
/// brotli's internal buffer size.
const BROTLI_BUFFER: usize = 16 * 1024;
/// Compressed output is sent once this much has collected, even while input keeps coming.
const EMIT_AT: usize = 32 * 1024;

/// A content coding the proxy can produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encoding {
    /// `gzip` (RFC 1952).
    Gzip,
    /// `br` (RFC 7932).
    Brotli,
}

impl Encoding {
    /// The token in `Content-Encoding` and `Accept-Encoding`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Encoding::Gzip => "gzip",
            Encoding::Brotli => "br",
        }
    }
}

/// Compresses `resp` when the config, the request and the response all allow it; otherwise
/// returns it unchanged, with `Vary: Accept-Encoding` added when only the client's
/// `Accept-Encoding` stood in the way (so a cache does not hand the plain answer to a client
/// that accepts a compressed one, or the reverse).
pub(crate) fn apply(
    cfg: &CompressionConfig,
    method: &Method,
    accept_encoding: Option<&HeaderValue>,
    resp: Response<ProxyBody>,
) -> Response<ProxyBody> {
    if !cfg.enabled || method == Method::HEAD {
        return resp;
    }
    // The answer's fields are read by name: the upstream's must be in the map.
    let mut resp = crate::upstream::passed::restore(resp);
    if !should_compress(cfg, method, resp.status(), resp.headers()) {
        return resp;
    }
    match negotiate(cfg, accept_encoding) {
        Some(enc) => compress(resp, enc),
        None => {
            add_vary(resp.headers_mut());
            resp
        }
    }
}

/// The encoding to use for a client sending `accept_encoding`, among those `cfg` enables:
/// the highest q-value wins, brotli on a tie; `q=0` refuses a coding, `*` stands for every
/// coding not named. No header (or nothing acceptable) means no compression. Only the first
/// `Accept-Encoding` field is read; clients send one.
pub(crate) fn negotiate(
    cfg: &CompressionConfig,
    accept_encoding: Option<&HeaderValue>,
) -> Option<Encoding> {
    if !cfg.enabled {
        return None;
    }
    let text = accept_encoding?.to_str().ok()?;
    let (mut gzip, mut br, mut star) = (None, None, None);
    for item in text.split(',') {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or("").trim();
        if coding.is_empty() {
            continue;
        }
        let q = quality(parts);
        let slot = if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
            &mut gzip
        } else if coding.eq_ignore_ascii_case("br") {
            &mut br
        } else if coding == "*" {
            &mut star
        } else {
            continue;
        };
        // A coding listed twice keeps its best weight.
        *slot = Some(slot.map_or(q, |old: u16| old.max(q)));
    }
    let gzip = if cfg.gzip {
        gzip.or(star).unwrap_or(0)
    } else {
        0
    };
    let br = if cfg.brotli {
        br.or(star).unwrap_or(0)
    } else {
        0
    };
    match (br, gzip) {
        (0, 0) => None,
        (b, g) if b >= g => Some(Encoding::Brotli),
        _ => Some(Encoding::Gzip),
    }
}

/// The q-value among an `Accept-Encoding` item's parameters, in thousandths (1000 when
/// absent). A malformed q-value counts as 0: a coding the client did not clearly accept is
/// not used.
fn quality<'a>(params: impl Iterator<Item = &'a str>) -> u16 {
    for param in params {
        let Some((name, value)) = param.split_once('=') else {
            continue;
        };
        if !name.trim().eq_ignore_ascii_case("q") {
            continue;
        }
        return parse_q(value.trim()).unwrap_or(0);
    }
    1000
}

/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )` as thousandths.
fn parse_q(v: &str) -> Option<u16> {
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut thousandths: u16 = 0;
    for (i, b) in frac
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(3)
        .enumerate()
    {
        thousandths += u16::from(b - b'0') * [100, 10, 1][i];
    }
    match int {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// Whether this response may be compressed, whatever the client accepts: compression is on,
/// the request is not `HEAD`, the status has a body and is not a partial answer, the upstream
/// has not encoded it already, `Cache-Control: no-transform` is absent, the content type is
/// listed in `cfg.types`, and a known length is at least `cfg.min_size`.
pub(crate) fn should_compress(
    cfg: &CompressionConfig,
    method: &Method,
    status: StatusCode,
    headers: &HeaderMap,
) -> bool {
    if !cfg.enabled || method == Method::HEAD {
        return false;
    }
    if status.is_informational()
        || matches!(
            status,
            StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED | StatusCode::PARTIAL_CONTENT
        )
    {
        return false;
    }
    if headers.contains_key(header::CONTENT_ENCODING) || headers.contains_key(header::CONTENT_RANGE)
    {
        return false;
    }
    if has_token(headers, &header::CACHE_CONTROL, "no-transform") {
        return false;
    }
    if !type_listed(cfg, headers.get(header::CONTENT_TYPE)) {
        return false;
    }
    match headers.get(header::CONTENT_LENGTH).map(parse_length) {
        // No length: a streamed body, worth compressing.
        None => true,
        Some(Some(len)) => len >= cfg.min_size,
        // An unreadable length: leave the framing alone.
        Some(None) => false,
    }
}

fn parse_length(v: &HeaderValue) -> Option<u64> {
    v.to_str().ok()?.trim().parse().ok()
}

/// Whether the essence of `content_type` (`type/subtype`, lower-cased, parameters dropped)
/// is in `cfg.types`, directly or by a `type/*` entry.
fn type_listed(cfg: &CompressionConfig, content_type: Option<&HeaderValue>) -> bool {
    let Some(ct) = content_type.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let Some((kind, _)) = essence.split_once('/') else {
        return false;
    };
    cfg.types.iter().any(|t| {
        t == &essence
            || t.strip_suffix("/*")
                .is_some_and(|wild_kind| wild_kind == kind)
    })
}

/// Whether a comma-separated header (any of its fields) lists `token` (case-insensitive,
/// parameters such as `=value` ignored).
fn has_token(headers: &HeaderMap, name: &header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            item.split('=')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case(token)
        })
}

/// Appends `Vary: Accept-Encoding` unless `Vary` already names it (or is `*`).
pub(crate) fn add_vary(headers: &mut HeaderMap) {
    if has_token(headers, &header::VARY, "accept-encoding")
        || has_token(headers, &header::VARY, "*")
    {
        return;
    }
    headers.append(header::VARY, HeaderValue::from_static("Accept-Encoding"));
}

/// Compresses `resp` with `enc`: sets `Content-Encoding`, drops `Content-Length` and
/// `Accept-Ranges` (the length is not known in advance, and ranges of the encoded form are not
/// served), weakens a strong `ETag` (the bytes differ from the identity form's), adds
/// `Vary: Accept-Encoding`, and wraps the body in a streaming encoder. Call it only when
/// [`should_compress`] said yes.
pub(crate) fn compress(resp: Response<ProxyBody>, enc: Encoding) -> Response<ProxyBody> {
    let (mut parts, body) = resp.into_parts();
    let h = &mut parts.headers;
    h.insert(
        header::CONTENT_ENCODING,
        HeaderValue::from_static(enc.as_str()),
    );
    h.remove(header::CONTENT_LENGTH);
    h.remove(header::ACCEPT_RANGES);
    if let Some(etag) = h.get(header::ETAG) {
        let bytes = etag.as_bytes();
        if bytes.first() == Some(&b'"') {
            let mut weak = Vec::with_capacity(bytes.len() + 2);
            weak.extend_from_slice(b"W/");
            weak.extend_from_slice(bytes);
            match HeaderValue::from_bytes(&weak) {
                Ok(v) => {
                    h.insert(header::ETAG, v);
                }
                Err(_) => {
                    h.remove(header::ETAG);
                }
            }
        }
    }
    add_vary(h);
    Response::from_parts(
        parts,
        ProxyBody::Compressed(Box::new(Encoded::new(body, enc))),
    )
}

/// A compressor writing into a buffer the body drains.
enum Encoder {
    Gzip(flate2::write::GzEncoder<Vec<u8>>),
    Brotli(Box<brotli::CompressorWriter<Vec<u8>>>),
}

impl Encoder {
    fn new(enc: Encoding) -> Self {
        match enc {
            Encoding::Gzip => Encoder::Gzip(flate2::write::GzEncoder::new(
                Vec::new(),
                flate2::Compression::new(GZIP_LEVEL),
            )),
            Encoding::Brotli => Encoder::Brotli(Box::new(brotli::CompressorWriter::new(
                Vec::new(),
                BROTLI_BUFFER,
                BROTLI_QUALITY,
                BROTLI_LGWIN,
            ))),
        }
    }

    fn write(&mut self, data: &[u8]) -> std::io::Result<()> {
        match self {
            Encoder::Gzip(e) => e.write_all(data),
            Encoder::Brotli(e) => e.write_all(data),
        }
    }

    /// Makes everything written so far decodable by the client.
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Encoder::Gzip(e) => e.flush(),
            Encoder::Brotli(e) => e.flush(),
        }
    }

    /// The compressed bytes produced so far.
    fn output(&mut self) -> &mut Vec<u8> {
        match self {
            Encoder::Gzip(e) => e.get_mut(),
            Encoder::Brotli(e) => e.get_mut(),
        }
    }

    /// Ends the stream and returns the last bytes.
    fn finish(self) -> std::io::Result<Vec<u8>> {
        match self {
            Encoder::Gzip(e) => e.finish(),
            Encoder::Brotli(e) => Ok(e.into_inner()),
        }
    }
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Encoder::Gzip(_) => "Encoder::Gzip",
            Encoder::Brotli(_) => "Encoder::Brotli",
        })
    }
}

/// A response body compressed as it streams: the body of [`ProxyBody::Compressed`]. Generic
/// only so that tests can feed it a body that pauses.
#[derive(Debug)]
pub struct Encoded<B = ProxyBody> {
    /// The body being compressed.
    inner: B,
    /// `None` once the stream is finished.
    encoder: Option<Encoder>,
    /// Bytes written to the encoder since its last flush.
    unflushed: bool,
    /// Trailers that arrived with the end of the body, sent after the last data.
    trailers: Option<HeaderMap>,
}

impl<B> Encoded<B> {
    fn new(inner: B, enc: Encoding) -> Self {
        Encoded {
            inner,
            encoder: Some(Encoder::new(enc)),
            unflushed: false,
            trailers: None,
        }
    }

    /// Takes the compressed output collected so far.
    fn take_output(&mut self) -> Option<Bytes> {
        let out = self.encoder.as_mut()?.output();
        (!out.is_empty()).then(|| Bytes::from(std::mem::take(out)))
    }

    /// Ends the compressed stream; its last bytes, if any.
    fn finish(&mut self) -> Result<Option<Bytes>, BoxError> {
        match self.encoder.take() {
            Some(enc) => Ok(Some(Bytes::from(enc.finish()?)).filter(|b| !b.is_empty())),
            None => Ok(None),
        }
    }

    /// What follows the end of the input: the last compressed bytes, then any trailers.
    fn end(&mut self) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.finish() {
            Ok(Some(data)) => Poll::Ready(Some(Ok(Frame::data(data)))),
            Ok(None) => Poll::Ready(self.trailers.take().map(|t| Ok(Frame::trailers(t)))),
            Err(e) => Poll::Ready(Some(Err(e))),
        }
    }
}

impl<B> Body for Encoded<B>
where
    B: Body<Data = Bytes, Error = BoxError> + Unpin,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        loop {
            let Some(encoder) = this.encoder.as_mut() else {
                // Finished: only trailers may be left.
                return Poll::Ready(this.trailers.take().map(|t| Ok(Frame::trailers(t))));
            };
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => {
                        if data.is_empty() {
                            continue;
                        }
                        if let Err(e) = encoder.write(&data) {
                            this.encoder = None;
                            return Poll::Ready(Some(Err(e.into())));
                        }
                        this.unflushed = true;
                        if encoder.output().len() >= EMIT_AT {
                            if let Some(out) = this.take_output() {
                                return Poll::Ready(Some(Ok(Frame::data(out))));
                            }
                        }
                    }
                    Err(frame) => {
                        if let Ok(trailers) = frame.into_trailers() {
                            this.trailers = Some(trailers);
                        }
                        return this.end();
                    }
                },
                Poll::Ready(Some(Err(e))) => {
                    this.encoder = None;
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(None) => return this.end(),
                Poll::Pending => {
                    // The input paused: make what was compressed so far decodable and send it.
                    if this.unflushed {
                        this.unflushed = false;
                        if let Err(e) = encoder.flush() {
                            this.encoder = None;
                            return Poll::Ready(Some(Err(e.into())));
                        }
                    }
                    return match this.take_output() {
                        Some(out) => Poll::Ready(Some(Ok(Frame::data(out)))),
                        None => Poll::Pending,
                    };
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.encoder.is_none() && self.trailers.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::new()
    }
}

#[cfg(test)]
mod tests;
