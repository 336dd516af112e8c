//! Smoke tests of `switchyard-bench load` against upstreams started here on 127.0.0.1:0: the
//! binary with `--json`, and the library in-process (open loop, HTTP/2, flips, errors).

use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, Response};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use switchyard_bench::flip::{FlipPlan, Flipper};
use switchyard_bench::load::{self, LoadSpec};
use switchyard_bench::target::Target;
use switchyard_bench::upstream::{self, Upstream};
use tokio::net::TcpListener;

async fn start_upstream(colour: &str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let up = Upstream::new(colour, 13).expect("upstream");
    tokio::spawn(upstream::serve(listener, up));
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_json_report_counts_every_request() {
    let addr = start_upstream("green").await;
    let exe = env!("CARGO_BIN_EXE_switchyard-bench");
    let url = format!("http://{addr}/hello?x=1");
    let out = tokio::task::spawn_blocking(move || {
        Command::new(exe)
            .args([
                "load",
                &url,
                "-n",
                "300",
                "-c",
                "4",
                "--by-header",
                "x-colour",
            ])
            .args(["--json", "--quiet"])
            .output()
    })
    .await
    .expect("join")
    .expect("run the binary");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(v["requests"], 300);
    assert_eq!(v["ok"], 300);
    assert_eq!(v["errors"]["total"], 0);
    assert_eq!(v["connections_opened"], 4);
    assert_eq!(v["connections_closed_by_server"], 0);
    assert_eq!(v["by_header"]["name"], "x-colour");
    assert_eq!(v["by_header"]["counts"]["green"], 300);
    for field in ["p50", "p90", "p99", "p999", "max"] {
        let us = v["latency_us"][field].as_u64().expect(field);
        assert!(us > 0, "{field} is {us}");
    }
    assert!(v["latency_us"]["p50"].as_u64() <= v["latency_us"]["max"].as_u64());
    assert!(v["rps"].as_f64().expect("rps") > 0.0);
    assert_eq!(v["mode"], "closed");
}

#[tokio::test]
async fn open_loop_and_http2_in_process() {
    let addr = start_upstream("blue").await;
    let mut spec = LoadSpec::new(Target::local(addr, "/"));
    spec.connections = 2;
    spec.rate = Some(2000.0);
    spec.requests = Some(200);
    spec.by_header = Some(HeaderName::from_static("x-colour"));
    let r = load::run(spec).await.expect("open loop run");
    assert_eq!((r.requests, r.ok), (200, 200));
    assert_eq!(r.mode, "open");
    assert_eq!(r.by_header.expect("by header").counts["blue"], 200);

    let mut spec = LoadSpec::new(Target::local(addr, "/"));
    spec.connections = 2;
    spec.h2 = true;
    spec.streams = 4;
    spec.requests = Some(200);
    spec.method = http::Method::POST;
    spec.body_size = 512;
    let r = load::run(spec).await.expect("h2 run");
    assert_eq!((r.requests, r.ok, r.errors.total), (200, 200, 0));
    assert_eq!(r.protocol, "HTTP/2");
    assert_eq!(r.connections_opened, 2);
}

#[tokio::test]
async fn errors_are_counted_by_kind() {
    // Nothing listens on a port that was just free.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let mut spec = LoadSpec::new(Target::local(dead, "/"));
    spec.connections = 1;
    spec.requests = Some(5);
    let r = load::run(spec).await.expect("run");
    assert_eq!((r.requests, r.errors.connect, r.ok), (5, 5, 0));

    // A server that closes every connection after one answer, and answers 503.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let svc = service_fn(|_req| async {
                    let mut resp = Response::new(Full::new(Bytes::from_static(b"busy")));
                    *resp.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
                    Ok::<_, std::convert::Infallible>(resp)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .keep_alive(false)
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    let mut spec = LoadSpec::new(Target::local(addr, "/"));
    spec.connections = 1;
    spec.requests = Some(20);
    let r = load::run(spec).await.expect("run");
    assert_eq!(
        (r.requests, r.errors.status_5xx, r.errors.total),
        (20, 20, 20)
    );
    assert_eq!(r.connections_opened, 20);
    assert_eq!(r.connections_closed_by_server, 19);
}

#[tokio::test]
async fn flips_go_through_the_admin_api() {
    let addr = start_upstream("green").await;
    // A fake admin API that accepts every switch.
    let admin = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let admin_addr = admin.local_addr().expect("addr");
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = admin.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let ok = req.uri().path() == "/services/app/switch";
                    seen.fetch_add(usize::from(ok), Ordering::SeqCst);
                    async move {
                        let mut resp = Response::new(Full::new(Bytes::from_static(b"{}")));
                        if !ok {
                            *resp.status_mut() = http::StatusCode::NOT_FOUND;
                        }
                        Ok::<_, std::convert::Infallible>(resp)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    let mut spec = LoadSpec::new(Target::local(addr, "/"));
    spec.connections = 2;
    spec.duration = Some(Duration::from_millis(1200));
    spec.by_header = Some(HeaderName::from_static("x-colour"));
    spec.flip = Some(FlipPlan {
        every: Duration::from_millis(200),
        start: Duration::from_millis(200),
        window: Duration::from_millis(100),
        colours: vec!["green".into(), "blue".into()],
        flipper: Flipper::Admin {
            addr: admin_addr,
            service: Some("app".into()),
            token: None,
        },
    });
    let r = load::run(spec).await.expect("run");
    let flips = r.flips.expect("flip report");
    assert!(!flips.flips.is_empty());
    assert_eq!(flips.flips.len(), calls.load(Ordering::SeqCst));
    assert!(flips.flips.iter().all(|f| f.error.is_none()));
    assert_eq!(flips.flips[0].to, "blue");
    // The fake admin API flips nothing: the answers stay green and nothing fails.
    assert_eq!(flips.failed_after_flips, 0);
    let json = serde_json::to_value(&flips).expect("serialize");
    assert!(json["steady_p99_us"].is_u64());
}

#[tokio::test]
async fn a_duration_ends_the_run_even_with_answers_outstanding() {
    // A server that reads requests and never answers.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let mut spec = LoadSpec::new(Target::local(addr, "/"));
    spec.connections = 3;
    spec.duration = Some(Duration::from_millis(300));
    spec.timeout = Duration::from_secs(600);
    // Bounded far below the request timeout: the run must end at its deadline, not when the
    // outstanding requests time out.
    let r = tokio::time::timeout(Duration::from_secs(60), load::run(spec))
        .await
        .expect("the run ends at its deadline, not after the request timeout")
        .expect("run");
    assert_eq!(r.unfinished, 3, "{r:?}");
    assert_eq!((r.requests, r.errors.timeout), (0, 0), "{r:?}");
    assert!(
        r.human().contains("3 unfinished at the end"),
        "{}",
        r.human()
    );
}
