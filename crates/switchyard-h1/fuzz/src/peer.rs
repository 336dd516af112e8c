//! hyper at the other end of an in-memory duplex: as the client reading one response to a
//! GET, and as the server reading pipelined requests. Both run on one current-thread runtime
//! per fuzzing thread, with no timers: every exchange ends because the input ends.

use std::cell::RefCell;
use std::convert::Infallible;
use std::rc::Rc;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Room in each direction of the duplex: more than any fuzz input, so writes never wait.
const DUPLEX: usize = 1 << 20;

thread_local! {
    static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime");
}

fn block_on<F: Future>(f: F) -> F::Output {
    RUNTIME.with(|rt| rt.block_on(f))
}

/// A message body as hyper read it.
#[derive(Debug)]
pub struct Body {
    /// The data frames, joined.
    pub data: Vec<u8>,
    /// `Ok` with the trailers (if any) when the body ended cleanly, `Err` when hyper failed it.
    pub end: Result<Option<HeaderMap>, String>,
}

async fn read_body(mut body: Incoming) -> Body {
    let mut data = Vec::new();
    let mut trailers: Option<HeaderMap> = None;
    loop {
        match body.frame().await {
            None => {
                return Body {
                    data,
                    end: Ok(trailers),
                };
            }
            Some(Err(e)) => {
                return Body {
                    data,
                    end: Err(format!("{e:?}")),
                };
            }
            Some(Ok(frame)) => match frame.into_data() {
                Ok(bytes) => data.extend_from_slice(&bytes),
                Err(frame) => {
                    if let Ok(t) = frame.into_trailers() {
                        trailers.get_or_insert_with(HeaderMap::new).extend(t);
                    }
                }
            },
        }
    }
}

/// A response as hyper's client handed it over.
#[derive(Debug)]
pub struct Answer {
    /// The final status (hyper skips 1xx heads but 101).
    pub status: StatusCode,
    /// HTTP/1.0 or HTTP/1.1.
    pub version: Version,
    /// Every header field, as received.
    pub headers: HeaderMap,
    /// The body.
    pub body: Body,
}

/// Sends `GET /` through hyper's HTTP/1 client (at most `max_headers` fields a head) to an
/// upstream that answers `response` once the request head is in, then closes its write side.
pub fn fetch(response: &[u8], max_headers: usize) -> Result<Answer, String> {
    block_on(async {
        let (near, mut far) = tokio::io::duplex(DUPLEX);
        let (mut sender, conn) = hyper::client::conn::http1::Builder::new()
            .max_headers(max_headers)
            .handshake::<_, Empty<Bytes>>(TokioIo::new(near))
            .await
            .map_err(|e| format!("handshake: {e:?}"))?;
        let upstream = async {
            let mut seen = Vec::new();
            let mut buf = [0u8; 1024];
            while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                match far.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => seen.extend_from_slice(&buf[..n]),
                }
            }
            let _ = far.write_all(response).await;
            let _ = far.shutdown().await;
        };
        let conn = async {
            let _ = conn.await;
        };
        let client = async move {
            let req = Request::get("/")
                .header(http::header::HOST, "upstream")
                .body(Empty::new())
                .expect("a static request");
            let answer = match sender.send_request(req).await {
                Err(e) => Err(format!("{e:?}")),
                Ok(resp) => {
                    let (parts, body) = resp.into_parts();
                    Ok(Answer {
                        status: parts.status,
                        version: parts.version,
                        headers: parts.headers,
                        body: read_body(body).await,
                    })
                }
            };
            drop(sender);
            answer
        };
        let ((), (), answer) = tokio::join!(upstream, conn, client);
        answer
    })
}

/// A request as hyper's server handed it to the service.
#[derive(Debug)]
pub struct Seen {
    /// The method.
    pub method: Method,
    /// The request target.
    pub uri: Uri,
    /// HTTP/1.0 or HTTP/1.1.
    pub version: Version,
    /// Every header field, as received.
    pub headers: HeaderMap,
    /// The body, read to its end by the service.
    pub body: Body,
}

/// Writes `input` to hyper's HTTP/1 server (at most `max_headers` fields a head, half-close
/// allowed so pipelined requests are all served after the client's EOF) and returns every
/// request it handed to the service, in order. The service reads each body to its end and
/// answers 200 with no body.
pub fn serve(input: &[u8], max_headers: usize) -> Vec<Seen> {
    block_on(async {
        let (near, mut far) = tokio::io::duplex(DUPLEX);
        let seen: Rc<RefCell<Vec<Seen>>> = Rc::default();
        let log = Rc::clone(&seen);
        let service = service_fn(move |req: Request<Incoming>| {
            let log = Rc::clone(&log);
            async move {
                let (parts, body) = req.into_parts();
                let body = read_body(body).await;
                log.borrow_mut().push(Seen {
                    method: parts.method,
                    uri: parts.uri,
                    version: parts.version,
                    headers: parts.headers,
                    body,
                });
                Ok::<_, Infallible>(Response::new(Empty::<Bytes>::new()))
            }
        });
        let server = async {
            let _ = hyper::server::conn::http1::Builder::new()
                .max_headers(max_headers)
                .half_close(true)
                .serve_connection(TokioIo::new(near), service)
                .await;
        };
        let client = async {
            let _ = far.write_all(input).await;
            let _ = far.shutdown().await;
            let mut answers = Vec::new();
            let _ = far.read_to_end(&mut answers).await;
        };
        tokio::join!(server, client);
        seen.take()
    })
}

/// The header fields of `map` as (name, value) pairs, grouped by name in a stable order.
pub fn fields_of(map: &HeaderMap) -> Vec<(String, Vec<u8>)> {
    let mut list: Vec<(String, Vec<u8>)> = map
        .iter()
        .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
        .collect();
    list.sort_by(|a, b| a.0.cmp(&b.0));
    list
}

/// Header fields parsed by httparse, in the same shape as [`fields_of`].
pub fn fields_of_raw(headers: &[httparse::Header<'_>]) -> Vec<(String, Vec<u8>)> {
    let mut list: Vec<(String, Vec<u8>)> = headers
        .iter()
        .map(|h| (h.name.to_ascii_lowercase(), h.value.to_vec()))
        .collect();
    list.sort_by(|a, b| a.0.cmp(&b.0));
    list
}

/// The trailers hyper makes of a raw trailer section (`name: value\r\n` lines, without the
/// final empty line), or why it refuses them: more than `max_fields` lines, 16 KiB or more
/// with the final CRLF, more fields than lines (a bare LF), or a line that is not a valid
/// header field (hyper 1.12, `proto/h1/decode.rs`). `Ok(None)`: no trailer section.
pub fn hyper_trailers(raw: Option<&[u8]>, max_fields: usize) -> Result<Option<HeaderMap>, String> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    // hyper counts a line at each CRLF (a bare LF stays inside a line) and gives httparse
    // that many slots; httparse itself also ends a field at a bare LF.
    let lines = raw.iter().filter(|&&b| b == b'\r').count();
    if lines > max_fields {
        return Err(format!("{lines} trailer lines"));
    }
    if raw.len() + 2 >= 16 * 1024 {
        return Err("trailers over 16 KiB".into());
    }
    let mut section = raw.to_vec();
    section.extend_from_slice(b"\r\n");
    let mut slots = vec![httparse::EMPTY_HEADER; lines];
    let headers = match httparse::parse_headers(&section, &mut slots) {
        Ok(httparse::Status::Complete((_, headers))) => headers,
        other => return Err(format!("trailer section: {other:?}")),
    };
    let mut map = HeaderMap::new();
    for h in headers {
        let name = http::HeaderName::from_bytes(h.name.as_bytes()).map_err(|e| e.to_string())?;
        let value = http::HeaderValue::from_bytes(h.value).map_err(|e| e.to_string())?;
        map.append(name, value);
    }
    Ok(Some(map))
}
