//! `GET /openapi.json` documents the admin API as it is: every documented path and method is
//! served by a real proxy (never 404 or 405), and the shorthand endpoints take the service in
//! the body when the config has several.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::Full;
use switchyard_config::{PoolConfig, ServerConfig, ServiceConfig};
use switchyard_tests::{KeepAliveClient, Resp, TestApp};

async fn call(addr: SocketAddr, method: Method, path: &str, body: &str) -> Resp {
    let mut client = KeepAliveClient::connect(addr).await;
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::HOST, "admin")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("request");
    client.request(req).await.expect("admin answers")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_route_is_served() {
    let green = TestApp::start("green").await;
    let blue = TestApp::start("blue").await;
    let proxy = common::start(common::two_colours(&[green.addr()], &[blue.addr()])).await;
    common::wait_healthy(&proxy, "blue").await;
    let admin = proxy.admin_addr().expect("admin");
    let doc = call(admin, Method::GET, "/openapi.json", "").await;
    assert_eq!(doc.status, 200);
    let doc = doc.json();
    let paths = doc["paths"].as_object().expect("paths");
    assert!(paths.len() >= 10, "{doc}");
    for (path, ops) in paths {
        for method in ops.as_object().expect("operations").keys() {
            let concrete = path.replace("{svc}", "app");
            let body = match (method.as_str(), path.as_str()) {
                (_, p) if p.ends_with("switch") => r#"{"to":"blue","force":true}"#,
                ("put", _) => r#"{"blue":10,"force":true}"#,
                ("post", p) if p.ends_with("rollback") => "{}",
                _ => "",
            };
            let m = Method::from_bytes(method.to_ascii_uppercase().as_bytes()).expect("method");
            let r = call(admin, m, &concrete, body).await;
            assert!(
                r.status != 404 && r.status != 405,
                "{method} {concrete} answered {}: {}",
                r.status,
                r.text()
            );
        }
    }
    proxy.shutdown().await;
}

#[tokio::test]
async fn the_shorthands_take_the_service_in_the_body() {
    let green = TestApp::start("green").await;
    let blue = TestApp::start("blue").await;
    let mut config = common::two_colours(&[green.addr()], &[blue.addr()]);
    let pools = BTreeMap::from([
        (
            "a".to_string(),
            PoolConfig::new(vec![ServerConfig::new(green.addr())]),
        ),
        (
            "b".to_string(),
            PoolConfig::new(vec![ServerConfig::new(blue.addr())]),
        ),
    ]);
    let mut other = ServiceConfig::new("other", "a", pools);
    other.hosts = vec![switchyard_config::HostPattern::Exact("other.test".into())];
    config.services.insert("other".into(), other);
    let proxy = common::start(config).await;
    let admin = proxy.admin_addr().expect("admin");

    let r = call(admin, Method::POST, "/switch", r#"{"to":"b","force":true}"#).await;
    assert_eq!(r.status, 400);
    let why = r.json()["error"].as_str().unwrap_or_default().to_string();
    assert!(
        why.contains("\"service\"") && why.contains("/services/NAME/") && why.contains("--service"),
        "the error says how to name one: {why}"
    );
    let r = call(
        admin,
        Method::POST,
        "/switch",
        r#"{"to":"b","force":true,"service":"other"}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(proxy.status().services["other"].active, "b");
    let r = call(admin, Method::POST, "/rollback", r#"{"service":"other"}"#).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(proxy.status().services["other"].active, "a");
    let r = call(
        admin,
        Method::POST,
        "/services/app/switch",
        r#"{"to":"blue","force":true,"service":"other"}"#,
    )
    .await;
    assert_eq!(r.status, 400, "path and body disagree: {}", r.text());
    proxy.shutdown().await;
}
