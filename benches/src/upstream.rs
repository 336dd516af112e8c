//! The built-in upstream: a hyper server that answers every request with 200 and a small body,
//! keeps connections alive, and names its colour in `x-colour` (so a load run can count which
//! colour answered). HTTP/1.1 and cleartext HTTP/2 (prior knowledge).
//!
//! `compare` runs it as a child process of the bench binary (`switchyard-bench upstream`), so
//! it has its own thread and its CPU is not the load generator's; tests run it in-process.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, Response, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

/// The response header naming the upstream's colour.
pub static X_COLOUR: HeaderName = HeaderName::from_static("x-colour");

/// The line the child process prints once it listens: `listening on ADDR`.
pub const READY_PREFIX: &str = "listening on ";

/// What the upstream answers with.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// Sent as `x-colour`.
    pub colour: HeaderValue,
    /// The response body.
    pub body: Bytes,
}

impl Upstream {
    /// An upstream of `colour` answering `body_size` bytes (at least `ok\n`-sized).
    pub fn new(colour: &str, body_size: usize) -> anyhow::Result<Upstream> {
        let mut body = vec![b'x'; body_size.max(3)];
        let n = body.len();
        body[n - 3..].copy_from_slice(b"ok\n");
        Ok(Upstream {
            colour: HeaderValue::from_str(colour)?,
            body: Bytes::from(body),
        })
    }

    fn answer(&self) -> Response<Full<Bytes>> {
        let mut resp = Response::new(Full::new(self.body.clone()));
        let h = resp.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        h.insert(X_COLOUR.clone(), self.colour.clone());
        resp
    }
}

/// Serves `listener` forever (until the task is dropped or aborted).
pub async fn serve(listener: TcpListener, upstream: Upstream) {
    let builder = auto::Builder::new(TokioExecutor::new());
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let up = upstream.clone();
        let builder = builder.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req: Request<Incoming>| {
                let up = up.clone();
                async move {
                    // Read the request body so POSTs are answered after they arrived whole.
                    let _ = req.into_body().collect().await;
                    Ok::<_, Infallible>(up.answer())
                }
            });
            let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
        });
    }
}

/// Binds `addr`, prints the ready line with the bound address on stdout, and serves on a
/// single-threaded runtime until killed: the `upstream` subcommand.
pub fn run_child(addr: SocketAddr, colour: &str, body_size: usize) -> anyhow::Result<()> {
    let upstream = Upstream::new(colour, body_size)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = TcpListener::bind(addr).await?;
        println!("{READY_PREFIX}{}", listener.local_addr()?);
        serve(listener, upstream).await;
        Ok(())
    })
}
