//! `listen.redirect_https`: every request on a plain http listener is answered with a 308 to
//! the same URL on https, and never forwarded.

use http::{HeaderValue, Request, Response, StatusCode, header};

use crate::body::ProxyBody;
use crate::error::ProxyError;
use crate::headers;

/// The 308 answer to `req`: `https://{host}{:port unless 443}{path?query}`. The Host is checked
/// as for a forwarded request; a bad one gets the same 400.
pub(crate) fn redirect<B>(req: &Request<B>, https_port: u16) -> Response<ProxyBody> {
    let host = match headers::request_host(req.version(), req.uri(), req.headers()) {
        Ok(h) => h,
        Err(e) => return ProxyError::BadHost(e).response(None),
    };
    let target = req
        .uri()
        .path_and_query()
        .map(http::uri::PathAndQuery::as_str)
        .filter(|pq| pq.starts_with('/'))
        .unwrap_or("/");
    let location = if https_port == 443 {
        format!("https://{}{target}", host.name().to_ascii_lowercase())
    } else {
        format!(
            "https://{}:{https_port}{target}",
            host.name().to_ascii_lowercase()
        )
    };
    let Ok(location) = HeaderValue::from_str(&location) else {
        return ProxyError::BadHost(headers::HostError::Malformed).response(None);
    };
    let mut resp = Response::new(ProxyBody::empty());
    *resp.status_mut() = StatusCode::PERMANENT_REDIRECT;
    resp.headers_mut().insert(header::LOCATION, location);
    resp.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn location(uri: &str, host: Option<&str>, port: u16) -> (u16, Option<String>) {
        let mut b = Request::get(uri);
        if let Some(h) = host {
            b = b.header("host", h);
        }
        let resp = redirect(&b.body(()).expect("request"), port);
        let loc = resp
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        (resp.status().as_u16(), loc)
    }

    #[test]
    fn keeps_path_and_query_and_drops_the_http_port() {
        assert_eq!(
            location("/a/b?x=1&y", Some("Shop.Example.com:8080"), 443),
            (308, Some("https://shop.example.com/a/b?x=1&y".into()))
        );
        assert_eq!(
            location("/", Some("example.com"), 8443),
            (308, Some("https://example.com:8443/".into()))
        );
        assert_eq!(
            location("/x", Some("[::1]:80"), 443),
            (308, Some("https://[::1]/x".into()))
        );
    }

    #[test]
    fn bad_host_is_refused() {
        assert_eq!(location("/", None, 443).0, 400);
        assert_eq!(location("/", Some("user@evil.com"), 443).0, 400);
    }
}
