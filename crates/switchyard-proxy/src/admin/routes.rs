//! The admin API's paths: which route a path is, and the methods it takes.

use hyper::Method;

use crate::dashboard;

/// Every route of the admin API: its path (`{svc}` for a service name) and methods. The
/// OpenAPI document (`/openapi.json`) is checked against this table by the tests, and the
/// table against the router.
#[cfg(test)]
pub(crate) const ROUTES: &[(&str, &[&str])] = &[
    ("/", &["GET"]),
    ("/healthz", &["GET"]),
    ("/status", &["GET"]),
    ("/stats", &["GET"]),
    ("/metrics", &["GET"]),
    ("/history", &["GET"]),
    ("/openapi.json", &["GET"]),
    ("/reload", &["POST"]),
    ("/upgrade", &["POST"]),
    ("/switch", &["POST"]),
    ("/rollback", &["POST"]),
    ("/split", &["PUT", "DELETE"]),
    ("/mirror", &["PUT", "DELETE"]),
    ("/services/{svc}/switch", &["POST"]),
    ("/services/{svc}/rollback", &["POST"]),
    ("/services/{svc}/split", &["PUT", "DELETE"]),
    ("/services/{svc}/mirror", &["PUT", "DELETE"]),
];

/// The endpoints, by path shape.
pub(super) enum Route<'a> {
    Healthz,
    /// The OpenAPI document of this API.
    OpenApi,
    /// An embedded dashboard file: content type and body.
    Asset(&'static str, &'static str),
    Favicon,
    Status,
    Stats,
    Metrics,
    History,
    Reload,
    Upgrade,
    Switch(Option<&'a str>),
    Rollback(Option<&'a str>),
    Split(Option<&'a str>),
    Mirror(Option<&'a str>),
}

pub(super) fn route(path: &str) -> Option<(Route<'_>, &'static [Method])> {
    const GET: &[Method] = &[Method::GET];
    const POST: &[Method] = &[Method::POST];
    const SPLIT: &[Method] = &[Method::PUT, Method::DELETE];
    let path = path
        .strip_suffix('/')
        .filter(|p| !p.is_empty())
        .unwrap_or(path);
    if let Some((content_type, body)) = dashboard::asset(path) {
        return Some((Route::Asset(content_type, body), GET));
    }
    match path {
        "/healthz" => return Some((Route::Healthz, GET)),
        "/openapi.json" => return Some((Route::OpenApi, GET)),
        "/favicon.ico" => return Some((Route::Favicon, GET)),
        "/status" => return Some((Route::Status, GET)),
        "/stats" => return Some((Route::Stats, GET)),
        "/metrics" => return Some((Route::Metrics, GET)),
        "/history" => return Some((Route::History, GET)),
        "/reload" => return Some((Route::Reload, POST)),
        "/upgrade" => return Some((Route::Upgrade, POST)),
        "/switch" => return Some((Route::Switch(None), POST)),
        "/rollback" => return Some((Route::Rollback(None), POST)),
        "/split" => return Some((Route::Split(None), SPLIT)),
        "/mirror" => return Some((Route::Mirror(None), SPLIT)),
        _ => {}
    }
    let rest = path.strip_prefix("/services/")?;
    let (svc, action) = rest.split_once('/')?;
    if svc.is_empty() {
        return None;
    }
    match action {
        "switch" => Some((Route::Switch(Some(svc)), POST)),
        "rollback" => Some((Route::Rollback(Some(svc)), POST)),
        "split" => Some((Route::Split(Some(svc)), SPLIT)),
        "mirror" => Some((Route::Mirror(Some(svc)), SPLIT)),
        _ => None,
    }
}
