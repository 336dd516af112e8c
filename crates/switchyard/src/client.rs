//! A small HTTP/1.1 client for the admin API: one hyper connection per call over a plain
//! `TcpStream`, a bearer token when one is set, and errors that say what to do about them.

use std::fmt;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use switchyard_proxy::status::StatusReport;
use tokio::net::TcpStream;

use crate::cli::{AdminArgs, DEFAULT_ADMIN};

/// The environment variable the admin token is read from.
pub const TOKEN_ENV: &str = "SWITCHYARD_ADMIN_TOKEN";

/// How long one admin call may take, connect included.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// An error answer from the admin API: `{"error": "...", "errors": [...]}` with its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The `error` message (or the body, when the answer was not the usual JSON).
    pub message: String,
    /// Further problems, one per line (config errors of a rejected reload).
    pub errors: Vec<String>,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ApiError {}

/// The JSON shape of an admin error answer.
#[derive(Deserialize)]
struct ErrorBody {
    error: String,
    #[serde(default)]
    errors: Vec<String>,
}

/// Where the admin API is and how to authenticate to it.
#[derive(Debug, Clone)]
pub struct AdminClient {
    /// The URL as the user gave it, for messages.
    url: String,
    /// `host:port` to connect to (also the `Host` header).
    authority: String,
    /// A path prefix to put before every endpoint (empty for the usual root URL).
    prefix: String,
    /// The bearer token, when `SWITCHYARD_ADMIN_TOKEN` is set.
    token: Option<String>,
}

impl AdminClient {
    /// A client for `--admin`, with the token from the environment when set.
    pub fn from_args(args: &AdminArgs) -> anyhow::Result<AdminClient> {
        let token = std::env::var(TOKEN_ENV)
            .ok()
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty());
        AdminClient::new(&args.admin, token)
    }

    /// A client for the admin API at `url` (`http://host:port`, the scheme may be left out).
    pub fn new(url: &str, token: Option<String>) -> anyhow::Result<AdminClient> {
        let full = if url.contains("://") {
            url.to_string()
        } else {
            format!("http://{url}")
        };
        let uri: Uri = full
            .parse()
            .with_context(|| format!("`{url}` is not a valid admin URL"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some(other) => bail!("`{url}`: the admin client speaks http only, not {other}"),
            None => bail!("`{url}` is not a valid admin URL"),
        }
        let authority = uri
            .authority()
            .ok_or_else(|| anyhow!("`{url}` names no host"))?;
        if authority.as_str().contains('@') {
            bail!("`{url}`: credentials in the URL are not supported; use {TOKEN_ENV}");
        }
        let port = authority.port_u16().unwrap_or(80);
        let authority = format!("{}:{port}", authority.host());
        Ok(AdminClient {
            url: url.to_string(),
            authority,
            prefix: uri.path().trim_end_matches('/').to_string(),
            token,
        })
    }

    /// `GET /status`, parsed.
    pub async fn status(&self) -> anyhow::Result<StatusReport> {
        self.json(Method::GET, "/status", None).await
    }

    /// A call whose success answer is JSON of type `T`.
    pub async fn json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> anyhow::Result<T> {
        let answer = self.call(method, path, body).await?;
        match serde_json::from_slice(&answer) {
            Ok(value) => Ok(value),
            // Valid JSON of another shape: an admin API of another version.
            Err(e) if serde_json::from_slice::<serde_json::Value>(&answer).is_ok() => {
                Err(anyhow!(e).context(format!(
                    "the admin API at {} answered {path} with JSON of an unexpected shape",
                    self.url
                )))
            }
            Err(_) => bail!(
                "{} answered {path} with something that is not JSON ({}): is --admin {} \
                 Switchyard's admin listener (`[admin] listen`, default {DEFAULT_ADMIN}), not \
                 its client port?",
                self.url,
                preview(&answer),
                self.url
            ),
        }
    }

    /// One call: the body of a 2xx answer, an [`ApiError`] for any other status, or an error
    /// saying the admin API could not be reached.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> anyhow::Result<Bytes> {
        let uri = format!("{}{path}", self.prefix);
        let payload = match body {
            Some(v) => Bytes::from(serde_json::to_vec(v)?),
            None => Bytes::new(),
        };
        let mut req = Request::builder()
            .method(method)
            .uri(&uri)
            .header(HOST, &self.authority)
            .header(ACCEPT, "application/json")
            // Who acted, for the switch history.
            .header("x-switchyard-actor", "cli");
        if body.is_some() {
            req = req.header(CONTENT_TYPE, "application/json");
        }
        if let Some(token) = &self.token {
            req = req.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        let req = req
            .body(Full::new(payload))
            .with_context(|| format!("cannot build a request for {uri}"))?;
        let (status, answer) = tokio::time::timeout(CALL_TIMEOUT, self.exchange(req))
            .await
            .map_err(|_| {
                anyhow!(
                    "the admin API at {} did not answer within {}s",
                    self.url,
                    CALL_TIMEOUT.as_secs()
                )
            })??;
        if status.is_success() {
            Ok(answer)
        } else {
            let mut e = api_error(status, &answer);
            if serde_json::from_slice::<ErrorBody>(&answer).is_err() {
                // Not the admin API's `{"error": ...}`: probably not the admin API at all.
                e.message = format!(
                    "{} answered {path} with {status} and {}: is --admin {} Switchyard's admin \
                     listener (`[admin] listen`, default {DEFAULT_ADMIN}), not its client port?",
                    self.url,
                    preview(&answer),
                    self.url
                );
            }
            Err(e.into())
        }
    }

    /// Connects, sends `req` and collects the answer.
    async fn exchange(&self, req: Request<Full<Bytes>>) -> anyhow::Result<(StatusCode, Bytes)> {
        let stream = TcpStream::connect(&self.authority).await.map_err(|e| {
            anyhow!(
                "cannot reach the admin API at {}: {e}: is switchyard running?",
                self.url
            )
        })?;
        let _ = stream.set_nodelay(true);
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .with_context(|| format!("cannot talk HTTP to the admin API at {}", self.url))?;
        let conn = tokio::spawn(conn);
        let result = async {
            let resp = sender.send_request(req).await?;
            let status = resp.status();
            let body = resp.into_body().collect().await?.to_bytes();
            Ok::<_, hyper::Error>((status, body))
        }
        .await
        .with_context(|| format!("the admin API at {} broke off the exchange", self.url));
        drop(sender);
        conn.abort();
        result
    }
}

/// The start of an answer body for a message, on one line: up to 40 characters in quotes.
fn preview(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.is_empty() {
        return "an empty body".to_string();
    }
    let mut short: String = text.chars().take(40).collect();
    if short.len() < text.len() {
        short.push('…');
    }
    format!("a body that starts with {short:?}")
}

/// Turns an error answer into an [`ApiError`], whatever its shape.
fn api_error(status: StatusCode, body: &[u8]) -> ApiError {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(e) => ApiError {
            status,
            message: e.error,
            errors: e.errors,
        },
        Err(_) => {
            let text = String::from_utf8_lossy(body).trim().to_string();
            ApiError {
                status,
                message: if text.is_empty() {
                    format!("the admin API answered {status}")
                } else {
                    format!("the admin API answered {status}: {text}")
                },
                errors: Vec::new(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() -> anyhow::Result<()> {
        let c = AdminClient::new("http://127.0.0.1:9901", None)?;
        assert_eq!(
            (c.authority.as_str(), c.prefix.as_str()),
            ("127.0.0.1:9901", "")
        );
        let c = AdminClient::new("localhost:9901/", None)?;
        assert_eq!(
            (c.authority.as_str(), c.prefix.as_str()),
            ("localhost:9901", "")
        );
        let c = AdminClient::new("http://proxy.internal/switchyard/", None)?;
        assert_eq!(
            (c.authority.as_str(), c.prefix.as_str()),
            ("proxy.internal:80", "/switchyard")
        );
        let c = AdminClient::new("http://[::1]:9901", None)?;
        assert_eq!(c.authority, "[::1]:9901");
        assert!(AdminClient::new("https://127.0.0.1:9901", None).is_err());
        assert!(AdminClient::new("http://user:pw@127.0.0.1:9901", None).is_err());
        assert!(AdminClient::new("http://", None).is_err());
        Ok(())
    }

    #[test]
    fn error_answers() {
        let e = api_error(
            StatusCode::BAD_REQUEST,
            br#"{"error":"invalid config","errors":["a.toml:1:2: bad"]}"#,
        );
        assert_eq!(e.message, "invalid config");
        assert_eq!(e.errors, ["a.toml:1:2: bad"]);
        let e = api_error(StatusCode::BAD_GATEWAY, b"upstream down\n");
        assert_eq!(
            e.to_string(),
            "the admin API answered 502 Bad Gateway: upstream down"
        );
    }
}
