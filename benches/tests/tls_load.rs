//! The load generator over TLS, against a rustls + hyper server started here on 127.0.0.1:0
//! that counts its handshakes: kept-alive connections make one handshake each (HTTP/1.1 and
//! HTTP/2 by ALPN), a server that will not speak h2 or a certificate the client does not trust
//! fails the connections, and the binary loads an https:// URL with `--cacert`.

use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use http::{Response, Version};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rustls::ServerConfig;
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject as _;
use switchyard_bench::load::{self, LoadSpec};
use switchyard_bench::target::Target;
use switchyard_bench::tls::{Alpn, SelfSigned, TlsClient};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// What the server saw.
#[derive(Default)]
struct Seen {
    handshakes: AtomicUsize,
    h2_requests: AtomicUsize,
}

/// A TLS server answering 200 to everything, offering `alpn`.
async fn tls_server(cert: &SelfSigned, alpn: &[&[u8]]) -> (SocketAddr, Arc<Seen>) {
    let key = PrivateKeyDer::from_pem_slice(cert.key_pem.as_bytes()).expect("key");
    let mut config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(vec![cert.der.clone()], key)
            .expect("server config");
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen = Arc::new(Seen::default());
    let counts = seen.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let counts = counts.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                counts.handshakes.fetch_add(1, Ordering::SeqCst);
                let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let h2 = req.version() == Version::HTTP_2;
                    counts
                        .h2_requests
                        .fetch_add(usize::from(h2), Ordering::SeqCst);
                    async {
                        Ok::<_, std::convert::Infallible>(Response::new(Full::new(
                            Bytes::from_static(b"hello"),
                        )))
                    }
                });
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    (addr, seen)
}

/// A client trusting `cert` (only), asking for `localhost`.
fn client(cert: &SelfSigned, alpn: Alpn) -> TlsClient {
    TlsClient::new(std::slice::from_ref(&cert.der), "localhost", alpn).expect("client")
}

fn spec(addr: SocketAddr, tls: TlsClient, h2: bool) -> LoadSpec {
    let mut spec = LoadSpec::new(Target::local(addr, "/"));
    spec.tls = Some(tls);
    spec.h2 = h2;
    spec
}

#[tokio::test]
async fn https_keeps_connections_alive_one_handshake_each() {
    let cert = SelfSigned::generate().expect("certificate");
    let (addr, seen) = tls_server(&cert, &[b"h2", b"http/1.1"]).await;
    let client = client(&cert, Alpn::Http1);
    let mut s = spec(addr, client, false);
    s.connections = 3;
    s.requests = Some(300);
    let r = load::run(s).await.expect("run");
    assert_eq!((r.requests, r.ok, r.errors.total), (300, 300, 0), "{r:?}");
    assert_eq!(r.protocol, "HTTP/1.1 over TLS");
    assert_eq!(r.connections_opened, 3);
    assert_eq!(seen.handshakes.load(Ordering::SeqCst), 3);
    assert_eq!(seen.h2_requests.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn h2_over_tls_multiplexes_streams_on_few_connections() {
    let cert = SelfSigned::generate().expect("certificate");
    let (addr, seen) = tls_server(&cert, &[b"h2", b"http/1.1"]).await;
    let client = client(&cert, Alpn::H2);
    let mut s = spec(addr, client, true);
    s.connections = 2;
    s.streams = 4;
    s.requests = Some(200);
    let r = load::run(s).await.expect("run");
    assert_eq!((r.requests, r.ok, r.errors.total), (200, 200, 0), "{r:?}");
    assert_eq!(r.protocol, "HTTP/2 over TLS");
    assert_eq!((r.connections_opened, r.streams), (2, 4));
    assert_eq!(seen.handshakes.load(Ordering::SeqCst), 2);
    assert_eq!(seen.h2_requests.load(Ordering::SeqCst), 200);
}

#[tokio::test]
async fn h2_fails_when_the_server_will_not_choose_it() {
    let cert = SelfSigned::generate().expect("certificate");
    let (addr, seen) = tls_server(&cert, &[b"http/1.1"]).await;
    let client = client(&cert, Alpn::H2);
    let mut s = spec(addr, client, true);
    s.connections = 1;
    s.requests = Some(3);
    let r = load::run(s).await.expect("run");
    assert_eq!((r.requests, r.ok, r.errors.connect), (3, 0, 3), "{r:?}");
    assert_eq!(seen.h2_requests.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_certificate_the_client_does_not_trust_fails_the_connection() {
    let cert = SelfSigned::generate().expect("certificate");
    let other = SelfSigned::generate().expect("another certificate");
    let (addr, seen) = tls_server(&cert, &[b"http/1.1"]).await;
    let client = client(&other, Alpn::Http1);
    let mut s = spec(addr, client, false);
    s.connections = 1;
    s.requests = Some(3);
    let r = load::run(s).await.expect("run");
    assert_eq!((r.requests, r.ok, r.errors.connect), (3, 0, 3), "{r:?}");
    assert_eq!(seen.handshakes.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn an_alpn_that_does_not_match_the_protocol_is_refused() {
    let cert = SelfSigned::generate().expect("certificate");
    let client = client(&cert, Alpn::H2);
    let s = spec(SocketAddr::from(([127, 0, 0, 1], 9)), client, false);
    let e = load::run(s).await.expect_err("h2 ALPN for an HTTP/1.1 run");
    assert!(e.to_string().contains("ALPN"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_loads_an_https_url_with_cacert() {
    let cert = SelfSigned::generate().expect("certificate");
    let (addr, seen) = tls_server(&cert, &[b"h2", b"http/1.1"]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let files = cert.write(dir.path()).expect("write certificate");
    let exe = env!("CARGO_BIN_EXE_switchyard-bench");
    // By IP address: the certificate names 127.0.0.1 too, and the client checks it.
    let url = format!("https://{addr}/");
    let cacert = files.cert.clone();
    let out = tokio::task::spawn_blocking(move || {
        let with = Command::new(exe)
            .args([
                "load",
                &url,
                "-n",
                "100",
                "-c",
                "2",
                "--h2",
                "--streams",
                "2",
            ])
            .arg("--cacert")
            .arg(&cacert)
            .args(["--json", "--quiet"])
            .output();
        let without = Command::new(exe)
            .args(["load", &url, "-n", "1", "--quiet"])
            .output();
        (with, without)
    })
    .await
    .expect("join");
    let with = out.0.expect("run the binary");
    assert!(
        with.status.success(),
        "{}",
        String::from_utf8_lossy(&with.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&with.stdout).expect("JSON on stdout");
    assert_eq!(
        (v["requests"].as_u64(), v["ok"].as_u64()),
        (Some(100), Some(100))
    );
    assert_eq!(v["protocol"], "HTTP/2 over TLS");
    assert_eq!(seen.handshakes.load(Ordering::SeqCst), 2);
    let without = out.1.expect("run the binary");
    assert!(!without.status.success());
    assert!(
        String::from_utf8_lossy(&without.stderr).contains("--cacert"),
        "{}",
        String::from_utf8_lossy(&without.stderr)
    );
}
