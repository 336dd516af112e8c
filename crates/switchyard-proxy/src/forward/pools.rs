//! Which pool a request asks for: a preview (by header or cookie) or the pool a sticky split
//! gave it before (by cookie), and the cookie that keeps it there; and the headers a service
//! sets on every answer.

use http::{HeaderValue, Response, header};
use switchyard_core::Service;

use crate::body::ProxyBody;

/// The pool a preview request names (`[services.X.preview]` header or cookie), if it names
/// one of the service's pools; the preview header is removed either way, so it never reaches
/// the app. A name that is not a pool is ignored: the request goes where any other would.
pub(super) fn preview_pool(service: &Service, headers: &mut http::HeaderMap) -> Option<String> {
    let cfg = &service.config.preview;
    let mut named = None;
    if let Some(name) = &cfg.header {
        if let Some(v) = headers.remove(name.as_str()) {
            named = v.to_str().ok().map(|v| v.trim().to_string());
        }
    }
    if let (None, Some(cookie)) = (&named, &cfg.cookie) {
        named = cookie_value(headers, cookie);
    }
    named.filter(|p| service.pool_index(p).is_some())
}

/// For a sticky split: `Some` with the pool the client's cookie names (when it is one of the
/// service's pools); `None` when the split is not sticky.
pub(super) fn sticky_named(service: &Service, headers: &http::HeaderMap) -> Option<Option<String>> {
    service
        .sticky
        .then(|| cookie_value(headers, &sticky_cookie_name(&service.name)))
        .map(|named| named.filter(|p| service.pool_index(p).is_some()))
}

/// The cookie that keeps a client on its pool during a sticky split of `service`.
pub(crate) fn sticky_cookie_name(service: &str) -> String {
    format!("switchyard_pool_{service}")
}

/// The value of the cookie `name` in the request's `Cookie` headers.
pub(super) fn cookie_value(headers: &http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| k.trim() == name)
        .map(|(_, v)| v.trim().trim_matches('"').to_string())
}

/// Tells the client which pool it got, so a sticky split keeps it there (a session cookie,
/// for the whole site).
pub(super) fn set_sticky_cookie(resp: &mut Response<ProxyBody>, service: &str, pool: &str) {
    let cookie = format!(
        "{}={pool}; Path=/; HttpOnly; SameSite=Lax",
        sticky_cookie_name(service)
    );
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().append(header::SET_COOKIE, value);
    }
}

/// Sets the service's configured response headers (`add_header … always`), replacing the
/// upstream's. They were parsed when the snapshot was built (`Service::response_headers`):
/// each costs a reference-count increment here, not a parse.
pub(super) fn set_response_headers(
    headers: &mut http::HeaderMap,
    wanted: &[(http::HeaderName, HeaderValue)],
) {
    for (name, value) in wanted {
        headers.insert(name.clone(), value.clone());
    }
}
