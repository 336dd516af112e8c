//! Preview: a request naming a pool by header or cookie goes to that pool whatever the active
//! colour; the header never reaches the app; unknown pool names are ignored; other requests
//! are not affected.

mod common;

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::Full;
use switchyard_config::PreviewConfig;
use switchyard_tests::{KeepAliveClient, TestApp};

fn get(path: &str, extra: &[(&str, &str)]) -> Request<Full<Bytes>> {
    let mut req = Request::builder()
        .method(Method::GET)
        .uri(path)
        .header(http::header::HOST, "x");
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    req.body(Full::new(Bytes::new())).expect("request")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_preview_header_or_cookie_reaches_the_pool_it_names() {
    let green = TestApp::start("green").await;
    let blue = TestApp::start("blue").await;
    let mut config = common::two_colours(&[green.addr()], &[blue.addr()]);
    if let Some(svc) = config.services.get_mut("app") {
        svc.preview = PreviewConfig {
            header: Some("x-switchyard-preview".into()),
            cookie: Some("switchyard_preview".into()),
        };
    }
    let proxy = common::start(config).await;
    common::wait_healthy(&proxy, "blue").await;
    let mut client = KeepAliveClient::connect(common::http(&proxy)).await;

    let r = client
        .request(get("/headers", &[("X-Switchyard-Preview", "blue")]))
        .await
        .expect("answer");
    assert_eq!(r.colour(), Some("blue"));
    let seen = r.json();
    assert!(
        seen.get("x-switchyard-preview").is_none(),
        "the preview header is removed before the request goes upstream: {seen}"
    );

    let r = client
        .request(get("/", &[("cookie", "a=1; switchyard_preview=blue; b=2")]))
        .await
        .expect("answer");
    assert_eq!(r.colour(), Some("blue"), "by cookie");

    for unknown in [&[("x-switchyard-preview", "purple")][..], &[][..]] {
        let r = client.request(get("/", unknown)).await.expect("answer");
        assert_eq!(r.colour(), Some("green"), "others go to the live pool");
    }
    // Previewed requests are counted per pool.
    let metrics = proxy.metrics_text();
    assert!(
        metrics.contains(r#"switchyard_preview_requests_total{service="app",pool="blue"} 2"#),
        "{metrics}"
    );
    // Previewing the staged colour did not make it live.
    assert_eq!(proxy.status().services["app"].active, "green");
    proxy.shutdown().await;
}
