//! The admin API: JSON over HTTP/1.1 on the admin listener, plus the dashboard and `/metrics`.
//!
//! Every error is `{"error": "..."}` with a fitting status. When a token is configured, every
//! endpoint but `/healthz` and the dashboard's files requires `Authorization: Bearer <token>`
//! (the dashboard asks for it when an API call answers 401). A control request names who sent
//! it in `X-Switchyard-Actor`; the switch history records it.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::body::ProxyBody;
use crate::control::{ControlError, Controller};

mod bodies;
mod routes;
use crate::history::{ACTOR_ADMIN_API, DEFAULT_LIMIT, sanitize_actor};
use crate::{dashboard, metrics};
use bodies::{MirrorBody, MirrorOff, RollbackBody, SwitchBody, split_body};
use routes::{Route, route};

/// Largest admin request body accepted.
const MAX_ADMIN_BODY: usize = 64 * 1024;

/// The header a client names itself in, for the switch history.
const X_SWITCHYARD_ACTOR: &str = "x-switchyard-actor";

/// How admin connections are limited: a cap of their own (`admin.max_connections`, so idle
/// admin connections can never take the proxy's file descriptors) and the header clock of
/// `limits.header_timeout`, which also closes an idle keep-alive admin connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AdminLimits {
    /// Admin connections open at once; more wait in the kernel's accept queue.
    pub(crate) max_connections: usize,
    /// Time for a request head, and the most an idle connection is kept.
    pub(crate) header_timeout: std::time::Duration,
}

/// Serves the admin API on `listener` until `stop` turns true.
pub(crate) async fn serve(
    listener: TcpListener,
    ctl: Arc<Controller>,
    token: Option<Arc<str>>,
    limits: AdminLimits,
    mut stop: watch::Receiver<bool>,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(
        limits
            .max_connections
            .clamp(1, tokio::sync::Semaphore::MAX_PERMITS),
    ));
    let mut backoff = crate::shared::AcceptBackoff::default();
    loop {
        let slot = tokio::select! {
            biased;
            _ = crate::shared::stopped(&mut stop) => break,
            s = slots.clone().acquire_owned() => match s {
                Ok(s) => s,
                Err(_) => break,
            },
        };
        let accepted = tokio::select! {
            biased;
            _ = crate::shared::stopped(&mut stop) => break,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => {
                backoff.succeeded();
                a
            }
            Err(e) => {
                drop(slot);
                backoff.failed("admin", &e).await;
                continue;
            }
        };
        let ctl = ctl.clone();
        let token = token.clone();
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let svc = service_fn(move |req| {
                let ctl = ctl.clone();
                let token = token.clone();
                async move { Ok::<_, Infallible>(handle(&ctl, token.as_deref(), req).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .serve_connection(TokioIo::new(stream), svc);
            if let Err(e) = crate::shared::serve_until_stopped(conn, &mut stop).await {
                tracing::debug!(client = %peer, error = %e, "admin connection error");
            }
        });
    }
}

fn json_response(status: StatusCode, value: &serde_json::Value) -> Response<ProxyBody> {
    let mut body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    body.push(b'\n');
    let mut resp = Response::new(ProxyBody::full(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

fn error(status: StatusCode, message: impl std::fmt::Display) -> Response<ProxyBody> {
    json_response(status, &json!({ "error": message.to_string() }))
}

fn control_error(e: &ControlError) -> Response<ProxyBody> {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    match e {
        ControlError::InvalidConfig(errors) => json_response(
            status,
            &json!({
                "error": "invalid config; the running config stays in force",
                "errors": errors.0.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
            }),
        ),
        ControlError::Conflict { service, current } => json_response(
            status,
            &json!({
                "error": e.to_string(),
                "service": service,
                "current": current,
            }),
        ),
        other => error(status, other),
    }
}

fn ok<T: serde::Serialize>(value: &T) -> Response<ProxyBody> {
    match serde_json::to_value(value) {
        Ok(v) => json_response(StatusCode::OK, &v),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

/// Constant-time comparison of the presented bearer token with the configured one.
fn authorized(req: &Request<Incoming>, token: &str) -> bool {
    let Some(presented) = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    let (a, b) = (presented.trim().as_bytes(), token.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The service a control call is for: the path's, else the body's `service` field; both must
/// agree when both are given.
fn which_service<'a>(
    path: Option<&'a str>,
    body: Option<&'a str>,
) -> Result<Option<&'a str>, ControlError> {
    match (path, body) {
        (Some(p), Some(b)) if p != b => Err(ControlError::BadRequest(format!(
            "the path names service `{p}` and the body `{b}`"
        ))),
        (Some(p), _) => Ok(Some(p)),
        (None, b) => Ok(b),
    }
}

/// The OpenAPI 3 document of the admin API.
pub(crate) const OPENAPI: &str = include_str!("../assets/openapi.json");

async fn read_json<T: for<'de> Deserialize<'de>>(
    body: Incoming,
    empty_ok: Option<T>,
) -> Result<T, Response<ProxyBody>> {
    let bytes: Bytes = match Limited::new(body, MAX_ADMIN_BODY).collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) => {
            return Err(error(
                StatusCode::BAD_REQUEST,
                format!("could not read the body: {e}"),
            ));
        }
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        if let Some(v) = empty_ok {
            return Ok(v);
        }
        return Err(error(StatusCode::BAD_REQUEST, "a JSON body is required"));
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| error(StatusCode::BAD_REQUEST, format!("invalid JSON body: {e}")))
}

async fn handle(
    ctl: &Controller,
    token: Option<&str>,
    req: Request<Incoming>,
) -> Response<ProxyBody> {
    let path = req.uri().path().to_string();
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let Some((route, methods)) = route(&path) else {
        return error(StatusCode::NOT_FOUND, format!("no such endpoint: {path}"));
    };
    if !methods.contains(req.method()) {
        let allow = methods
            .iter()
            .map(Method::as_str)
            .collect::<Vec<_>>()
            .join(", ");
        let mut resp = error(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{} is not allowed on {path}; use {allow}", req.method()),
        );
        if let Ok(v) = HeaderValue::from_str(&allow) {
            resp.headers_mut().insert(header::ALLOW, v);
        }
        return resp;
    }
    match route {
        Route::Healthz => {
            let mut resp = Response::new(ProxyBody::full("ok\n"));
            resp.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            return resp;
        }
        // Without a token anyone may read the state, so the page comes with it and draws it
        // before its first poll.
        Route::Asset(content_type, _)
            if token.is_none() && content_type.starts_with("text/html") =>
        {
            return dashboard::page_with_state(&initial_state(ctl));
        }
        Route::Asset(content_type, body) => return dashboard::response(content_type, body),
        Route::OpenApi => {
            let mut resp = Response::new(ProxyBody::full(OPENAPI));
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            return resp;
        }
        Route::Favicon => {
            let mut resp = Response::new(ProxyBody::full(""));
            *resp.status_mut() = StatusCode::NO_CONTENT;
            return resp;
        }
        _ => {}
    }
    if let Some(token) = token {
        if !authorized(&req, token) {
            let mut resp = error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return resp;
        }
    }
    let method = req.method().clone();
    let actor = actor(&req);
    let query = req.uri().query().map(str::to_string);
    let body = req.into_body();
    let result = match route {
        Route::Healthz | Route::OpenApi | Route::Asset(..) | Route::Favicon => {
            return error(StatusCode::INTERNAL_SERVER_ERROR, "unreachable");
        }
        Route::Status => return ok(&ctl.status_report()),
        Route::Stats => {
            let series = query
                .as_deref()
                .is_some_and(|q| q.split('&').any(|p| p == "series=1"));
            return json_response(StatusCode::OK, &metrics::stats(&ctl.shared, series));
        }
        Route::Metrics => {
            // OpenMetrics for a scraper that asks for it (Prometheus does), else the
            // Prometheus text format.
            let openmetrics = accept
                .as_deref()
                .is_some_and(|a| a.contains("application/openmetrics-text"));
            let (text, content_type) = if openmetrics {
                (metrics::render(&ctl.shared), metrics::CONTENT_TYPE)
            } else {
                (
                    metrics::render_text(&ctl.shared),
                    metrics::TEXT_CONTENT_TYPE,
                )
            };
            let mut resp = Response::new(ProxyBody::full(text));
            resp.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            return resp;
        }
        Route::History => {
            return match history_limit(query.as_deref()) {
                Ok(limit) => ok(&json!({ "entries": ctl.history(limit) })),
                Err(message) => error(StatusCode::BAD_REQUEST, message),
            };
        }
        Route::Upgrade => {
            let (answer, outcome) = tokio::sync::oneshot::channel();
            let nobody_upgrades = ctl
                .shared
                .upgrades
                .rx
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .is_some();
            if nobody_upgrades || ctl.shared.upgrades.tx.try_send(answer).is_err() {
                return error(
                    StatusCode::CONFLICT,
                    "an upgrade is already under way, or this program does not upgrade (SIGUSR2 and POST /upgrade are for switchyard serve)",
                );
            }
            return match outcome.await {
                Ok(Ok(pid)) => ok(&json!({ "upgraded": true, "pid": pid })),
                Ok(Err(why)) => error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("upgrade failed: {why}"),
                ),
                Err(_) => error(
                    StatusCode::CONFLICT,
                    "this program does not upgrade (SIGUSR2 and POST /upgrade are for switchyard serve)",
                ),
            };
        }
        Route::Reload => match ctl.reload_source_as(&actor).await {
            Ok(generation) => return ok(&json!({ "generation": generation })),
            Err(e) => Err(e),
        },
        Route::Switch(svc) => {
            let b: SwitchBody = match read_json(body, None).await {
                Ok(b) => b,
                Err(resp) => return resp,
            };
            let ramp = match b
                .ramp
                .as_deref()
                .map(switchyard_config::units::parse_duration)
            {
                None => None,
                Some(Ok(d)) => Some(d),
                Some(Err(why)) => return error(StatusCode::BAD_REQUEST, format!("ramp: {why}")),
            };
            match (which_service(svc, b.service.as_deref()), ramp) {
                (Ok(svc), Some(d)) => ctl.switch_ramped(&actor, svc, &b.to, b.force, d).await,
                (Ok(svc), None) => ctl.switch(&actor, svc, &b.to, b.force).await,
                (Err(e), _) => Err(e),
            }
        }
        Route::Rollback(svc) => {
            let b: RollbackBody = match read_json(body, Some(RollbackBody::default())).await {
                Ok(b) => b,
                Err(resp) => return resp,
            };
            match which_service(svc, b.service.as_deref()) {
                Ok(svc) => ctl.rollback(&actor, svc, b.force).await,
                Err(e) => Err(e),
            }
        }
        Route::Mirror(svc) if method == Method::DELETE => {
            let b: MirrorOff = match read_json(body, Some(MirrorOff::default())).await {
                Ok(b) => b,
                Err(resp) => return resp,
            };
            match which_service(svc, b.service.as_deref()) {
                Ok(svc) => ctl.set_mirror(&actor, svc, None).await,
                Err(e) => Err(e),
            }
        }
        Route::Mirror(svc) => {
            let b: MirrorBody = match read_json(body, None).await {
                Ok(b) => b,
                Err(resp) => return resp,
            };
            let defaults = switchyard_config::MirrorConfig::new(b.to.clone());
            let mirror = switchyard_core::Mirror {
                to: b.to,
                percent: b.percent.unwrap_or(defaults.percent),
                methods: b
                    .methods
                    .map(|m| m.iter().map(|x| x.to_ascii_uppercase()).collect())
                    .unwrap_or(defaults.methods),
                max_in_flight: b.max_in_flight.unwrap_or(defaults.max_in_flight),
            };
            match which_service(svc, b.service.as_deref()) {
                Ok(svc) => ctl.set_mirror(&actor, svc, Some(mirror)).await,
                Err(e) => Err(e),
            }
        }
        Route::Split(svc) if method == Method::DELETE => ctl.end_split(&actor, svc).await,
        Route::Split(svc) => {
            let fields: BTreeMap<String, serde_json::Value> = match read_json(body, None).await {
                Ok(b) => b,
                Err(resp) => return resp,
            };
            match split_body(fields) {
                Ok((weights, options, named)) => match which_service(svc, named.as_deref()) {
                    Ok(svc) => ctl.split(&actor, svc, weights, options).await,
                    Err(e) => Err(e),
                },
                Err(e) => Err(ControlError::BadRequest(e)),
            }
        }
    };
    match result {
        Ok(outcome) => ok(&outcome),
        Err(e) => control_error(&e),
    }
}

/// Who sent a control request: the sanitised `X-Switchyard-Actor` header, else `admin-api`.
/// What the dashboard's first poll would fetch: `/status`, `/stats?series=1` and `/history`.
fn initial_state(ctl: &Controller) -> serde_json::Value {
    json!({
        "status": ctl.status_report(),
        "stats": metrics::stats(&ctl.shared, true),
        "history": ctl.history(DEFAULT_LIMIT),
    })
}

fn actor<B>(req: &Request<B>) -> String {
    req.headers()
        .get(X_SWITCHYARD_ACTOR)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .and_then(|v| sanitize_actor(&v))
        .unwrap_or_else(|| ACTOR_ADMIN_API.to_string())
}

/// The `limit` query parameter of `/history` (default 50).
fn history_limit(query: Option<&str>) -> Result<usize, String> {
    let Some(value) = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|pair| pair.strip_prefix("limit="))
    else {
        return Ok(DEFAULT_LIMIT);
    };
    value
        .parse::<usize>()
        .map_err(|_| format!("limit must be a whole number, not `{value}`"))
}

#[cfg(test)]
mod tests {
    use super::routes::ROUTES;
    use super::*;

    #[test]
    fn history_limits() {
        assert_eq!(history_limit(None), Ok(DEFAULT_LIMIT));
        assert_eq!(history_limit(Some("x=1")), Ok(DEFAULT_LIMIT));
        assert_eq!(history_limit(Some("x=1&limit=7")), Ok(7));
        assert!(history_limit(Some("limit=-1")).is_err());
        assert!(history_limit(Some("limit=")).is_err());
    }

    #[test]
    fn actors_come_from_the_header() {
        let req = |v: Option<&str>| {
            let mut b = Request::builder();
            if let Some(v) = v {
                b = b.header(X_SWITCHYARD_ACTOR, v);
            }
            b.body(()).expect("request")
        };
        assert_eq!(actor(&req(None)), "admin-api");
        assert_eq!(actor(&req(Some("cli"))), "cli");
        assert_eq!(actor(&req(Some(""))), "admin-api");
        assert_eq!(actor(&req(Some(&"y".repeat(100)))).len(), 64);
    }

    #[test]
    fn the_route_table_matches_the_router_and_the_openapi_document() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).expect("valid JSON");
        let paths = doc["paths"].as_object().expect("paths");
        let mut documented: Vec<(String, String)> = paths
            .iter()
            .flat_map(|(p, ops)| {
                ops.as_object()
                    .into_iter()
                    .flat_map(|o| o.keys())
                    .map(move |m| (p.clone(), m.to_ascii_uppercase()))
            })
            .collect();
        let mut table: Vec<(String, String)> = ROUTES
            .iter()
            .flat_map(|(p, ms)| ms.iter().map(move |m| (p.to_string(), m.to_string())))
            .collect();
        documented.sort();
        table.sort();
        assert_eq!(
            documented, table,
            "the OpenAPI document lists every route, no more"
        );
        for (path, methods) in ROUTES {
            let concrete = path.replace("{svc}", "app");
            let (_, allowed) = route(&concrete).unwrap_or_else(|| panic!("{path} is routed"));
            let allowed: Vec<&str> = allowed.iter().map(Method::as_str).collect();
            assert_eq!(&allowed, methods, "{path}");
        }
    }

    #[test]
    fn routes() {
        assert!(matches!(route("/status"), Some((Route::Status, _))));
        assert!(matches!(route("/status/"), Some((Route::Status, _))));
        assert!(matches!(
            route("/services/app/switch"),
            Some((Route::Switch(Some("app")), _))
        ));
        assert!(matches!(
            route("/services/app/split"),
            Some((Route::Split(Some("app")), _))
        ));
        assert!(matches!(route("/"), Some((Route::Asset(..), _))));
        assert!(matches!(route("/metrics"), Some((Route::Metrics, _))));
        assert!(matches!(route("/history"), Some((Route::History, _))));
        assert!(route("/services//switch").is_none());
        assert!(route("/services/app/explode").is_none());
        assert!(route("/nope").is_none());
    }
}
