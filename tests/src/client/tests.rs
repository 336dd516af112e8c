//! The clients' own tests, against the fake app and a small h2c server.

use std::time::Duration;

use bytes::Bytes;
use http::{Response, StatusCode, Version};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

use super::{ClientError, Http2Client, KeepAliveClient, raw_request_timeout};
use crate::app::TestApp;
use crate::wait::within;

/// Starts a one-route h2c server (prior knowledge) answering `h2:<path>:<authority>` on `127.0.0.1:0`.
async fn h2c_server() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("bound address");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = service_fn(|req: http::Request<hyper::body::Incoming>| async move {
                    let body = format!(
                        "h2:{}:{}",
                        req.uri().path(),
                        req.uri().authority().map_or("", |a| a.as_str())
                    );
                    Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(body))))
                });
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn http2_client_multiplexes_on_one_connection() {
    let addr = h2c_server().await;
    let client = Http2Client::connect(addr).await;
    let (a, b) = tokio::join!(client.get("/a", "app.test"), client.get("/b", "app.test"));
    let (a, b) = (a.expect("GET /a"), b.expect("GET /b"));
    assert_eq!((a.status, a.version), (StatusCode::OK, Version::HTTP_2));
    assert_eq!(a.text(), "h2:/a:app.test");
    assert_eq!(b.text(), "h2:/b:app.test");
    assert!(!client.is_closed());
}

#[tokio::test]
async fn http2_client_against_an_http1_only_server_fails() {
    let app = TestApp::start("blue").await;
    let failed = match Http2Client::try_connect(app.addr()).await {
        Err(_) => true,
        Ok(client) => client.get("/", "x").await.is_err(),
    };
    assert!(failed, "an HTTP/1.1-only app cannot speak h2c");
}

#[tokio::test]
async fn keep_alive_client_times_out_by_the_wall_clock() {
    let app = TestApp::start("blue").await;
    let mut client = KeepAliveClient::connect(app.addr()).await;
    client.set_timeout(Some(Duration::from_millis(50)));
    let err = client
        .get("/slow?ms=60000", "x")
        .await
        .expect_err("too slow");
    assert!(
        matches!(err, ClientError::Timeout(_)),
        "unexpected error: {err}"
    );
}

#[tokio::test]
async fn dropping_the_client_closes_its_connection() {
    let app = TestApp::start("blue").await;
    let mut client = KeepAliveClient::connect(app.addr()).await;
    client.get("/", "x").await.expect("GET /");
    assert_eq!(app.open_connections(), 1);
    drop(client);
    crate::wait::poll_until(Duration::from_secs(5), || async {
        app.open_connections() == 0
    })
    .await;
}

#[tokio::test]
async fn raw_request_gives_up_after_its_timeout_with_what_it_read() {
    let app = TestApp::start("blue").await;
    // Keep-alive: the server answers and waits for more, so only the timeout ends the read.
    let got = within(
        Duration::from_secs(5),
        raw_request_timeout(
            app.addr(),
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
            Duration::from_millis(100),
        ),
    )
    .await
    .expect("bounded by its own timeout");
    assert!(String::from_utf8_lossy(&got).ends_with("\r\n\r\nblue"));
}
