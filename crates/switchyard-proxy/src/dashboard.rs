//! The dashboard: one page, its script and its stylesheet, embedded in the binary.
//!
//! No build step and nothing fetched from elsewhere: the files under `assets/` are served as
//! they are, with a content security policy that allows only this origin. The page needs no
//! token to load; it asks for one when an API call answers 401.

use http::{HeaderValue, Response, header};

use crate::body::ProxyBody;

/// The page.
pub(crate) const HTML: &str = include_str!("../assets/dashboard.html");
/// Its script.
pub(crate) const JS: &str = include_str!("../assets/dashboard.js");
/// Its stylesheet.
pub(crate) const CSS: &str = include_str!("../assets/dashboard.css");

/// Same origin only: the page's own script and style, API calls to the same admin listener.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The embedded file served at `path`, with its content type.
pub(crate) fn asset(path: &str) -> Option<(&'static str, &'static str)> {
    match path {
        "/" | "/index.html" | "/dashboard" => Some(("text/html; charset=utf-8", HTML)),
        "/assets/dashboard.js" => Some(("text/javascript; charset=utf-8", JS)),
        "/assets/dashboard.css" => Some(("text/css; charset=utf-8", CSS)),
        _ => None,
    }
}

/// The response for an embedded file.
pub(crate) fn response(content_type: &'static str, body: &'static str) -> Response<ProxyBody> {
    let mut resp = Response::new(ProxyBody::full(body));
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_loaded_from_elsewhere() {
        for (name, text) in [("html", HTML), ("js", JS), ("css", CSS)] {
            let lower = text.to_ascii_lowercase();
            for needle in ["http://", "https://", "//cdn", "@import", "url("] {
                assert!(!lower.contains(needle), "{name} contains {needle}");
            }
        }
    }

    #[test]
    fn the_page_references_only_embedded_assets() {
        for reference in ["/assets/dashboard.js", "/assets/dashboard.css"] {
            assert!(HTML.contains(reference), "{reference}");
            assert!(asset(reference).is_some(), "{reference}");
        }
        assert!(HTML.contains("name=\"viewport\""));
        assert_eq!(asset("/").map(|a| a.0), Some("text/html; charset=utf-8"));
        assert!(asset("/assets/other.js").is_none());
    }

    #[test]
    fn the_page_sends_the_actor_and_never_uses_window_confirm() {
        assert!(JS.contains("X-Switchyard-Actor"));
        assert!(JS.contains("sessionStorage"));
        assert!(!JS.contains("window.confirm") && !JS.contains("confirm("));
        assert!(!JS.contains("innerHTML"), "render with textContent only");
    }
}
