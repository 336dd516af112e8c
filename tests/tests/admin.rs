//! The admin API over real HTTP: health, status, switch, rollback, split, shorthands, auth and
//! the JSON errors with their status codes.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use serde_json::{Value, json};
use switchyard_config::{PoolConfig, ServerConfig, ServiceConfig};
use switchyard_tests::{KeepAliveClient, Resp, TestApp, poll_until};

/// One admin call on a fresh connection.
async fn call(
    admin: SocketAddr,
    method: &str,
    path: &str,
    body: Option<Value>,
    token: Option<&str>,
) -> Resp {
    let mut client = KeepAliveClient::connect(admin).await;
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "admin");
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let body = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
    client
        .request(req.body(Full::new(body)).expect("request"))
        .await
        .expect("admin answers")
}

fn error_of(r: &Resp) -> String {
    assert_eq!(
        r.header("content-type"),
        Some("application/json"),
        "errors are JSON"
    );
    r.json()["error"]
        .as_str()
        .expect("an error message")
        .to_string()
}

#[tokio::test]
async fn status_switch_rollback_and_errors() {
    let green = TestApp::start("green").await;
    let blue = TestApp::start("blue").await;
    let proxy = common::start(common::two_colours(&[green.addr()], &[blue.addr()])).await;
    let admin = proxy.admin_addr().expect("admin listener");
    common::wait_healthy(&proxy, "blue").await;

    let r = call(admin, "GET", "/healthz", None, None).await;
    assert_eq!((r.status.as_u16(), r.text().trim()), (200, "ok"));

    let s = call(admin, "GET", "/status", None, None).await.json();
    assert_eq!(s["services"]["app"]["active"], "green");
    assert_eq!(s["services"]["app"]["previous"], Value::Null);
    assert_eq!(s["services"]["app"]["pools"]["green"]["state"], "active");
    assert_eq!(s["services"]["app"]["pools"]["blue"]["state"], "idle");
    assert_eq!(
        s["services"]["app"]["pools"]["blue"]["servers"][0]["addr"],
        blue.addr().to_string()
    );
    assert_eq!(
        s["services"]["app"]["pools"]["blue"]["servers"][0]["healthy"],
        true
    );
    let g0 = s["generation"].as_u64().expect("generation");

    // Per-service switch.
    let r = call(
        admin,
        "POST",
        "/services/app/switch",
        Some(json!({"to": "blue"})),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let out = r.json();
    assert_eq!(
        out,
        json!({"service": "app", "active": "blue", "previous": "green", "generation": g0 + 1})
    );
    let mut client = KeepAliveClient::connect(common::http(&proxy)).await;
    assert_eq!(
        client.get("/", "app.test").await.expect("answer").colour(),
        Some("blue")
    );

    // Rollback, then the single-service shorthands.
    let out = call(admin, "POST", "/services/app/rollback", None, None)
        .await
        .json();
    assert_eq!(
        (out["active"].clone(), out["previous"].clone()),
        (json!("green"), json!("blue"))
    );
    let out = call(admin, "POST", "/switch", Some(json!({"to": "blue"})), None)
        .await
        .json();
    assert_eq!(out["active"], "blue");
    let out = call(admin, "POST", "/rollback", None, None).await.json();
    assert_eq!(out["active"], "green");
    assert_eq!(
        client.get("/", "app.test").await.expect("answer").colour(),
        Some("green")
    );

    // 404: unknown service, unknown colour, unknown endpoint.
    let r = call(
        admin,
        "POST",
        "/services/nope/switch",
        Some(json!({"to": "blue"})),
        None,
    )
    .await;
    assert_eq!(r.status, 404);
    assert!(error_of(&r).contains("nope"));
    let r = call(
        admin,
        "POST",
        "/switch",
        Some(json!({"to": "purple"})),
        None,
    )
    .await;
    assert_eq!(r.status, 404);
    assert!(error_of(&r).contains("purple"));
    assert_eq!(call(admin, "GET", "/nothing", None, None).await.status, 404);
    // 400: bad JSON, missing field, unknown field.
    for body in [
        json!("blue"),
        json!({}),
        json!({"to": "blue", "colour": "x"}),
    ] {
        let r = call(admin, "POST", "/switch", Some(body.clone()), None).await;
        assert_eq!(r.status, 400, "{body}");
        error_of(&r);
    }
    // 405 with Allow.
    let r = call(admin, "GET", "/switch", None, None).await;
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("POST"));
    error_of(&r);
    // 409: switching to a colour with no healthy server, unless forced.
    blue.kill().await;
    poll_until(Duration::from_secs(10), || {
        let healthy = proxy.status().services["app"].pools["blue"].servers[0].healthy;
        async move { !healthy }
    })
    .await;
    let r = call(admin, "POST", "/switch", Some(json!({"to": "blue"})), None).await;
    assert_eq!(r.status, 409);
    assert!(error_of(&r).contains("no healthy server"));
    let r = call(
        admin,
        "POST",
        "/switch",
        Some(json!({"to": "blue", "force": true})),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "force overrides the health gate");
    // 409: nothing to roll back to is not the case now; a fresh proxy has no previous colour.
    let fresh = common::start(common::two_colours(&[green.addr()], &[green.addr()])).await;
    let r = call(
        fresh.admin_addr().expect("admin"),
        "POST",
        "/rollback",
        None,
        None,
    )
    .await;
    assert_eq!(r.status, 409);
    assert!(error_of(&r).contains("no previous colour"));
    fresh.shutdown().await;
    proxy.shutdown().await;
}

#[tokio::test]
async fn shorthands_need_exactly_one_service() {
    let app = TestApp::start("green").await;
    let mut config = common::two_colours(&[app.addr()], &[app.addr()]);
    let pools = BTreeMap::from([(
        "green".to_string(),
        PoolConfig::new(vec![ServerConfig::new(app.addr())]),
    )]);
    let mut other = ServiceConfig::new("other", "green", pools);
    other.path_prefix = Some("/other".into());
    config.services.insert("other".into(), other);
    let proxy = common::start(config).await;
    let admin = proxy.admin_addr().expect("admin");
    for (path, body) in [
        ("/switch", Some(json!({"to": "green"}))),
        ("/rollback", None),
    ] {
        let r = call(admin, "POST", path, body, None).await;
        assert_eq!(r.status, 400, "{path}");
        let e = error_of(&r);
        assert!(
            e.contains("app") && e.contains("other"),
            "names the services: {e}"
        );
    }
    let r = call(admin, "DELETE", "/split", None, None).await;
    assert_eq!(r.status, 400);
    proxy.shutdown().await;
}

#[tokio::test]
async fn the_token_guards_everything_but_healthz() {
    let app = TestApp::start("green").await;
    let config = common::two_colours(&[app.addr()], &[app.addr()]);
    let listeners = switchyard_proxy::Listeners::loopback().await.expect("bind");
    let value = "s3cret-token";
    let proxy = switchyard_proxy::Builder::new(config, listeners)
        .admin_token(value)
        .start()
        .expect("starts");
    let admin = proxy.admin_addr().expect("admin");

    assert_eq!(call(admin, "GET", "/healthz", None, None).await.status, 200);
    let r = call(admin, "GET", "/status", None, None).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    error_of(&r);
    let r = call(admin, "GET", "/status", None, Some("wrong-token")).await;
    assert_eq!(r.status, 401);
    let r = call(
        admin,
        "POST",
        "/switch",
        Some(json!({"to": "blue", "force": true})),
        Some("wrong"),
    )
    .await;
    assert_eq!(r.status, 401);
    assert_eq!(
        proxy.status().services["app"].active,
        "green",
        "an unauthorised switch changed nothing"
    );
    let r = call(admin, "GET", "/status", None, Some(value)).await;
    assert_eq!(r.status, 200);
    let r = call(
        admin,
        "POST",
        "/switch",
        Some(json!({"to": "blue", "force": true})),
        Some(value),
    )
    .await;
    assert_eq!(r.status, 200);
    proxy.shutdown().await;
}

#[tokio::test]
async fn the_proxy_refuses_an_exposed_admin_without_a_token() {
    let app = TestApp::start("green").await;
    let config = common::two_colours(&[app.addr()], &[app.addr()]);
    let http = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    // 0.0.0.0 is not loopback: without a token the proxy must refuse to start.
    let admin = tokio::net::TcpListener::bind("0.0.0.0:0")
        .await
        .expect("bind");
    let err = switchyard_proxy::start(
        config.clone(),
        switchyard_proxy::Listeners {
            http: vec![http],
            https: vec![],
            admin: Some(admin),
        },
    )
    .expect_err("refused");
    assert!(err.to_string().contains("not a loopback address"), "{err}");
    // A token variable that is not set is refused too.
    let mut config = config;
    config.admin.token_env = Some("SWITCHYARD_TEST_SURELY_UNSET_VARIABLE".into());
    let listeners = switchyard_proxy::Listeners::loopback().await.expect("bind");
    let err = switchyard_proxy::start(config, listeners).expect_err("refused");
    assert!(
        err.to_string()
            .contains("SWITCHYARD_TEST_SURELY_UNSET_VARIABLE"),
        "{err}"
    );
}
