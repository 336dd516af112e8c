//! Running Switchyard inside your own program.
//!
//! Builds a config in code, starts two tiny "apps" (green and blue) on loopback, starts the proxy
//! on listeners this program bound itself, then flips and rolls back through the in-process
//! handle — no HTTP admin call involved. `cargo run -p switchyard-proxy --example embedded`.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use switchyard_config::{Config, PoolConfig, ServerConfig, ServiceConfig};
use tokio::net::{TcpListener, TcpStream};

/// What the demo observed: the colour that answered before the switch, after it, and after the
/// rollback.
#[derive(Debug, PartialEq, Eq)]
pub struct Observed {
    /// The answer before any switch.
    pub before: String,
    /// The answer after switching to blue.
    pub after_switch: String,
    /// The answer after rolling back.
    pub after_rollback: String,
}

/// Starts a one-line HTTP app answering every request with `colour`.
async fn tiny_app(colour: &'static str) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    move |_req: Request<hyper::body::Incoming>| async move {
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(colour))))
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Ok(addr)
}

/// One GET through the proxy; returns the body.
async fn get(proxy: SocketAddr) -> Result<String, Box<dyn std::error::Error>> {
    let stream = TcpStream::connect(proxy).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let req = Request::get("/")
        .header("host", "demo.local")
        .body(Empty::<Bytes>::new())?;
    let body = sender
        .send_request(req)
        .await?
        .into_body()
        .collect()
        .await?
        .to_bytes();
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// The whole demo: config in code, proxy on our own listeners, switch and rollback in-process.
pub async fn demo() -> Result<Observed, Box<dyn std::error::Error>> {
    let green = tiny_app("green").await?;
    let blue = tiny_app("blue").await?;

    let pools = BTreeMap::from([
        (
            "green".to_string(),
            PoolConfig::new(vec![ServerConfig::new(green)]),
        ),
        (
            "blue".to_string(),
            PoolConfig::new(vec![ServerConfig::new(blue)]),
        ),
    ]);
    let mut config = Config::default();
    config
        .services
        .insert("app".into(), ServiceConfig::new("app", "green", pools));
    config.validate()?;

    // We bind the sockets; the proxy only serves them.
    let listeners = switchyard_proxy::Listeners {
        http: vec![TcpListener::bind("127.0.0.1:0").await?],
        https: vec![],
        admin: None,
    };
    let proxy = switchyard_proxy::start(config, listeners)?;
    let addr = proxy.http_addrs()[0];

    let before = get(addr).await?;
    // `force`: the health checker may not have seen blue yet in this instant demo.
    let out = proxy.switch(Some("app"), "blue", true).await?;
    println!(
        "switched {} to {} (generation {})",
        out.service, out.active, out.generation
    );
    let after_switch = get(addr).await?;
    proxy.rollback(None, true).await?;
    let after_rollback = get(addr).await?;
    println!("{}", serde_json::to_string_pretty(&proxy.status())?);
    proxy.shutdown().await;
    Ok(Observed {
        before,
        after_switch,
        after_rollback,
    })
}

#[allow(dead_code)] // The test includes this file for `demo` only.
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let seen = demo().await?;
    println!("{seen:?}");
    Ok(())
}
