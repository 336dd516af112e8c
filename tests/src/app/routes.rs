//! The routes of the fake Flask app: what each path answers, counted and recorded.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;

use super::Recorder;

/// The response header that names the colour of the app that answered.
pub const X_COLOUR: HeaderName = HeaderName::from_static("x-colour");

/// State every connection of one app shares, kept across restarts.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The colour, as given by the test.
    pub(crate) colour: String,
    /// The colour as a header value, checked once at start.
    pub(crate) colour_header: HeaderValue,
    /// What `/health` answers: 200 when true, 503 when false.
    pub(crate) healthy: AtomicBool,
    /// Counts and bodies, surviving restarts.
    pub(crate) recorder: Arc<Recorder>,
}

/// The error a handler returns to make hyper drop the connection without answering: the app
/// "crashed" after reading the request.
#[derive(Debug)]
pub(crate) struct DropConnection;

impl fmt::Display for DropConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("test app dropped the connection on purpose")
    }
}

impl std::error::Error for DropConnection {}

/// Handles one request: counts it, routes it, and stamps `x-colour` on the answer.
pub(crate) async fn handle(
    req: Request<Incoming>,
    shared: Arc<Shared>,
) -> Result<Response<Full<Bytes>>, DropConnection> {
    let path = req.uri().path().to_owned();
    let is_get = matches!(*req.method(), Method::GET | Method::HEAD);
    let _in_flight = shared
        .recorder
        .on_request(&path, is_get && path == "/health");
    let mut resp = route(req, &path, is_get, &shared).await?;
    resp.headers_mut()
        .insert(X_COLOUR, shared.colour_header.clone());
    Ok(resp)
}

/// Picks the answer for one request.
async fn route(
    req: Request<Incoming>,
    path: &str,
    is_get: bool,
    shared: &Shared,
) -> Result<Response<Full<Bytes>>, DropConnection> {
    let colour = Bytes::from(shared.colour.clone());
    let post = *req.method() == Method::POST;
    Ok(match path {
        "/" if is_get => respond(StatusCode::OK, colour),
        "/slow" if is_get => match query_ms(req.uri()) {
            Some(ms) => {
                tokio::time::sleep(ms).await;
                respond(StatusCode::OK, colour)
            }
            None => respond(StatusCode::BAD_REQUEST, "/slow needs ?ms=N"),
        },
        "/echo" | "/order" if post => match read_body(req).await {
            Some(body) => {
                shared.recorder.record_post(path, body.clone());
                respond(StatusCode::OK, body)
            }
            None => respond(StatusCode::BAD_REQUEST, "unreadable body"),
        },
        "/slow-post" if post => {
            let Some(ms) = query_ms(req.uri()) else {
                return Ok(respond(StatusCode::BAD_REQUEST, "/slow-post needs ?ms=N"));
            };
            match read_body(req).await {
                Some(body) => {
                    // Recorded before the wait, so a test can see it arrived while it is slow.
                    shared.recorder.record_post(path, body.clone());
                    tokio::time::sleep(ms).await;
                    respond(StatusCode::OK, body)
                }
                None => respond(StatusCode::BAD_REQUEST, "unreadable body"),
            }
        }
        "/drop" => {
            let body = read_body(req).await.unwrap_or_default();
            if post {
                shared.recorder.record_post(path, body);
            }
            return Err(DropConnection);
        }
        "/health" if is_get => {
            if shared.healthy.load(Ordering::SeqCst) {
                respond(StatusCode::OK, "ok")
            } else {
                respond(StatusCode::SERVICE_UNAVAILABLE, "unhealthy")
            }
        }
        "/headers" if is_get => {
            let mut resp = respond(StatusCode::OK, headers_json(&req));
            resp.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            resp
        }
        _ => match path.strip_prefix("/status/").map(str::parse::<u16>) {
            Some(Ok(code @ 200..=599)) => {
                // Drain the body so the connection stays usable.
                let _ = read_body(req).await;
                let status = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST);
                let empty = matches!(code, 204 | 304);
                respond(status, if empty { Bytes::new() } else { colour })
            }
            Some(_) => respond(StatusCode::BAD_REQUEST, "status must be 200..=599"),
            None => respond(StatusCode::NOT_FOUND, "not found"),
        },
    })
}

/// A response with `status` and `body`.
fn respond(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() = status;
    resp
}

/// The `ms=N` query parameter as a duration.
fn query_ms(uri: &Uri) -> Option<Duration> {
    uri.query()?
        .split('&')
        .find_map(|kv| kv.strip_prefix("ms="))
        .and_then(|ms| ms.parse().ok())
        .map(Duration::from_millis)
}

/// The whole request body, or `None` when reading it failed.
async fn read_body(req: Request<Incoming>) -> Option<Bytes> {
    req.into_body().collect().await.ok().map(|c| c.to_bytes())
}

/// The request's headers as JSON (name → values in order), plus `_method`, `_uri`, `_version`.
fn headers_json<B>(req: &Request<B>) -> Bytes {
    let headers = req.headers();
    let mut map = serde_json::Map::new();
    for name in headers.keys() {
        let values = headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned().into())
            .collect();
        map.insert(name.as_str().to_owned(), serde_json::Value::Array(values));
    }
    map.insert("_method".into(), req.method().as_str().into());
    map.insert("_uri".into(), req.uri().to_string().into());
    map.insert("_version".into(), format!("{:?}", req.version()).into());
    Bytes::from(serde_json::Value::Object(map).to_string())
}
