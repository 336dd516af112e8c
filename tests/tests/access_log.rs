//! The access log: one structured line per request with the fields an operator needs, for
//! proxied requests, retried ones and requests the proxy answered by itself — written by the
//! proxy's buffered writer (as the binary runs it), and every line flushed by a graceful stop.

mod common;

use serde_json::Value;
use switchyard_proxy::{AccessSink, Builder, Listeners};
use switchyard_tests::{CapturedLog, KeepAliveClient, TestApp};

/// The access-log lines captured so far.
fn access_lines(log: &CapturedLog) -> Vec<Value> {
    log.json_lines()
        .into_iter()
        .filter(|v| v["target"] == "switchyard::access")
        .collect()
}

/// A proxy on `config` writing its access log to `captured`, green healthy, and a client of it.
async fn logging_to(
    config: switchyard_config::Config,
    captured: &CapturedLog,
) -> (switchyard_proxy::ProxyHandle, KeepAliveClient) {
    let listeners = Listeners::loopback().await.expect("loopback listeners");
    let proxy = Builder::new(config, listeners)
        .access_log(AccessSink::Writer(Box::new(captured.clone())))
        .start()
        .expect("the proxy starts");
    common::wait_healthy(&proxy, "green").await;
    let client = KeepAliveClient::connect(common::http(&proxy)).await;
    (proxy, client)
}

#[tokio::test]
async fn every_request_gets_one_line_with_its_fields() {
    let captured = CapturedLog::default();
    let green = TestApp::start("green").await;
    let blue = TestApp::start("blue").await;
    let spare = TestApp::start("green").await;
    // Two green servers: the first will be dead, so one request shows a retry.
    let mut config = common::two_colours(&[green.addr(), spare.addr()], &[blue.addr()]);
    config.log.format = switchyard_config::LogFormat::Json;
    let (proxy, mut client) = logging_to(config, &captured).await;

    let r = client
        .post("/echo?x=1", "shop.test", "hello")
        .await
        .expect("answer");
    assert_eq!(r.status, 200);
    let id = r.header("x-request-id").expect("a request id").to_string();
    let r = client
        .get("/nothing-here", "shop.test")
        .await
        .expect("answer");
    assert_eq!(r.status, 404);
    green.kill().await;
    for _ in 0..2 {
        assert_eq!(
            client.get("/", "shop.test").await.expect("answer").status,
            200
        );
    }

    // A graceful stop writes every line before it returns.
    proxy.shutdown().await;
    let lines = access_lines(&captured);
    assert_eq!(lines.len(), 4, "one line per request: {lines:#?}");
    let f = &lines[0]["fields"];
    assert_eq!(f["method"], "POST");
    assert_eq!(f["path"], "/echo");
    assert_eq!(f["query"], "x=1");
    assert_eq!(f["status"], 200);
    assert_eq!(f["service"], "app");
    assert_eq!(f["colour"], "green");
    assert!(
        f["client"]
            .as_str()
            .is_some_and(|c| c.starts_with("127.0.0.1:")),
        "{f}"
    );
    let upstream = f["upstream"].as_str().expect("upstream");
    assert!(upstream == green.addr().to_string() || upstream == spare.addr().to_string());
    assert_eq!(f["attempts"], 1);
    assert_eq!(f["bytes_in"], 5);
    assert_eq!(f["bytes_out"], 5);
    assert!(f["duration_ms"].as_f64().is_some_and(|d| d >= 0.0));
    assert_eq!(f["request_id"], id.as_str());
    assert!(lines[0]["timestamp"].is_string(), "lines carry the time");

    // A 404 from the upstream app (the route exists, the path does not).
    assert_eq!(lines[1]["fields"]["status"], 404);
    // After the kill, a request that first hit the dead server shows two attempts.
    let retried: Vec<&Value> = lines[2..]
        .iter()
        .filter(|l| l["fields"]["attempts"] == 2)
        .collect();
    assert!(
        !retried.is_empty(),
        "a retried request logs its attempts: {lines:#?}"
    );
    assert_eq!(
        retried[0]["fields"]["upstream"],
        spare.addr().to_string().as_str()
    );
}

#[tokio::test]
async fn combined_lines_carry_referer_and_user_agent_from_kept_heads_and_header_maps() {
    let captured = CapturedLog::default();
    let green = TestApp::start("green").await;
    let blue = TestApp::start("blue").await;
    let mut config = common::two_colours(&[green.addr()], &[blue.addr()]);
    config.log.access_format = Some(switchyard_config::AccessFormat::Combined);
    let (proxy, mut client) = logging_to(config, &captured).await;
    // The first head is kept as its bytes; the second, with a hop-by-hop field, becomes a
    // header map: both give the line their `Referer` and `User-Agent`.
    for (path, hop_by_hop) in [("/?kept", false), ("/?mapped", true)] {
        let mut req = http::Request::get(path)
            .header(http::header::HOST, "shop.test")
            .header(http::header::USER_AGENT, format!("agent{path}"))
            .header(http::header::REFERER, "https://shop.test/a b");
        if hop_by_hop {
            req = req.header(http::header::CONNECTION, "keep-alive");
        }
        let req = req
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .expect("a request");
        assert_eq!(client.request(req).await.expect("answer").status, 200);
    }
    // The proxy's own answer (`OPTIONS *`), without either field: `-` for each.
    let req = http::Request::options("*")
        .header(http::header::HOST, "shop.test")
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .expect("a request");
    assert_eq!(client.request(req).await.expect("answer").status, 200);
    proxy.shutdown().await;
    let lines = captured.lines();
    assert_eq!(lines.len(), 3, "{lines:#?}");
    for (line, path) in lines.iter().zip(["/?kept", "/?mapped"]) {
        assert!(line.starts_with("127.0.0.1 - - ["), "{line}");
        assert!(
            line.ends_with(&format!(
                "\"GET {path} HTTP/1.1\" 200 5 \"https://shop.test/a b\" \"agent{path}\""
            )),
            "{line}"
        );
    }
    assert!(
        lines[2].ends_with("\"OPTIONS * HTTP/1.1\" 200 0 \"-\" \"-\""),
        "{}",
        lines[2]
    );
}
