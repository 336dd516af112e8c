//! The dashboard: one page, its script and its stylesheet, embedded in the binary.
//!
//! No build step and nothing fetched from elsewhere: the files under `assets/` are served as
//! they are, with a content security policy that allows only this origin. The page needs no
//! token to load; it asks for one when an API call answers 401. When no token is configured,
//! the page carries the proxy's state in a JSON data block (not a script: the CSP allows no
//! inline script), so it is drawn at once rather than after the first poll.

use http::{HeaderValue, Response, header};

use crate::body::ProxyBody;

/// The page.
pub(crate) const HTML: &str = include_str!("../assets/dashboard.html");
/// Its script.
pub(crate) const JS: &str = include_str!("../assets/dashboard.js");
/// Its chart and latency maths.
pub(crate) const CHART_JS: &str = include_str!("../assets/dashboard-chart.js");
/// The fleet card, the history, the split dialog and the rollout panels.
pub(crate) const PANELS_JS: &str = include_str!("../assets/dashboard-panels.js");
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
        "/assets/dashboard-chart.js" => Some(("text/javascript; charset=utf-8", CHART_JS)),
        "/assets/dashboard-panels.js" => Some(("text/javascript; charset=utf-8", PANELS_JS)),
        "/assets/dashboard.css" => Some(("text/css; charset=utf-8", CSS)),
        _ => None,
    }
}

/// The page with `state` in `<script type="application/json" id="initial-state">`, where the
/// script reads it. `<` is escaped, so no value can end the block.
pub(crate) fn page_with_state(state: &serde_json::Value) -> Response<ProxyBody> {
    let json = serde_json::to_string(state)
        .unwrap_or_else(|_| "null".into())
        .replace('<', "\\u003c");
    let block = format!("<script type=\"application/json\" id=\"initial-state\">{json}</script>\n");
    let page = HTML.replacen("</head>", &format!("{block}</head>"), 1);
    let mut resp = response("text/html; charset=utf-8", "");
    *resp.body_mut() = ProxyBody::full(page);
    resp
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
        for (name, text) in [
            ("html", HTML),
            ("js", JS),
            ("chart", CHART_JS),
            ("panels", PANELS_JS),
            ("css", CSS),
        ] {
            let lower = text.to_ascii_lowercase();
            for needle in ["http://", "https://", "//cdn", "@import", "url("] {
                assert!(!lower.contains(needle), "{name} contains {needle}");
            }
        }
    }

    #[test]
    fn the_page_references_only_embedded_assets() {
        for reference in [
            "/assets/dashboard.js",
            "/assets/dashboard-chart.js",
            "/assets/dashboard-panels.js",
            "/assets/dashboard.css",
        ] {
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
        for script in [CHART_JS, PANELS_JS] {
            assert!(
                !script.contains("innerHTML"),
                "render with textContent only"
            );
            assert!(!script.contains("window.confirm"));
        }
    }

    #[test]
    fn the_state_block_cannot_end_early() {
        let state = serde_json::json!({ "actor": "</script><script>alert(1)</script>" });
        let resp = page_with_state(&state);
        let ProxyBody::Full(Some(body)) = resp.into_body() else {
            panic!("a full body");
        };
        let page = String::from_utf8_lossy(&body).into_owned();
        assert_eq!(
            page.matches("</script>").count(),
            HTML.matches("</script>").count() + 1
        );
        assert!(page.contains("id=\"initial-state\">{\"actor\":\"\\u003c/script>"));
    }
}
