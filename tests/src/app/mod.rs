//! `TestApp`: a real HTTP/1.1 keep-alive server on loopback standing in for one colour's Flask
//! app, with counters, a health switch, and a kill that behaves like SIGKILL.
//!
//! Routes (every answer carries `x-colour: <colour>`; every request is counted):
//!
//! | request | answer |
//! |---|---|
//! | `GET /` | 200, body = colour |
//! | `GET /slow?ms=N` | waits N ms, then 200 with the colour |
//! | `POST /echo` | 200 echoing the body (recorded) |
//! | `POST /slow-post?ms=N` | reads and records the body, *then* waits N ms, 200 echoing it |
//! | `POST /order` | records the body, 200 echoing it at once |
//! | `GET /health` | 200 `ok`, or 503 after `set_healthy(false)` |
//! | `GET /headers` | 200, JSON: header name → list of values, plus `_method`, `_uri`, `_version` |
//! | `ANY /status/{code}` | that status (200..=599), body = colour |
//! | `ANY /drop` | reads (and for POST records) the body, then closes the connection unanswered |
//! | anything else | 404 |
//!
//! `HEAD` is accepted wherever `GET` is.

mod recorder;
mod routes;

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use http::HeaderValue;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

pub use recorder::Recorder;
use routes::Shared;
pub use routes::X_COLOUR;

/// One colour's fake upstream app, serving until killed or dropped.
///
/// Counters and recorded bodies live in a [`Recorder`] that survives [`TestApp::kill`] and
/// [`TestApp::restart`], and so does the health switch: a restart is a new process of the same
/// app, but what the test has seen and set is kept. Call [`Recorder::reset`] to start counting
/// afresh. Every method takes `&self`, so an app can be shared in an `Arc` between tasks.
#[derive(Debug)]
pub struct TestApp {
    /// The bound address, kept so a restart comes back on the same port.
    addr: SocketAddr,
    /// Colour, health switch and recorder, shared with every connection task.
    shared: Arc<Shared>,
    /// The tasks of the running incarnation; `None` once killed.
    running: Mutex<Option<Running>>,
}

/// The tasks of one incarnation of the app.
#[derive(Debug)]
struct Running {
    /// The accept loop; owns the listener, so aborting it closes the port.
    accept: JoinHandle<()>,
    /// One task per connection, so a kill can abort them all at once.
    conns: Arc<Mutex<JoinSet<()>>>,
}

/// Locks a mutex, ignoring poisoning (a panicking test must not wedge the harness).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl TestApp {
    /// Starts an app of `colour` on `127.0.0.1:0`.
    pub async fn start(colour: &str) -> TestApp {
        Self::start_on(colour, SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await
    }

    /// Starts an app of `colour` on `addr`; panics if it cannot be bound.
    pub async fn start_on(colour: &str, addr: SocketAddr) -> TestApp {
        match Self::try_start_on(colour, addr).await {
            Ok(app) => app,
            Err(e) => panic!("test app {colour}: cannot bind {addr}: {e}"),
        }
    }

    /// Starts an app of `colour` on `addr` (with `SO_REUSEADDR`, so a just-killed port can be
    /// bound again at once), or returns why it could not bind.
    pub async fn try_start_on(colour: &str, addr: SocketAddr) -> io::Result<TestApp> {
        let colour_header =
            HeaderValue::from_str(colour).expect("the test's colour must be a valid header value");
        let shared = Arc::new(Shared {
            colour: colour.to_owned(),
            colour_header,
            healthy: AtomicBool::new(true),
            recorder: Recorder::new(),
        });
        let listener = bind(addr)?;
        let addr = listener.local_addr()?;
        let running = spawn(listener, Arc::clone(&shared));
        Ok(TestApp {
            addr,
            shared,
            running: Mutex::new(Some(running)),
        })
    }

    /// The address the app listens on (the same across restarts).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The app's colour.
    pub fn colour(&self) -> &str {
        &self.shared.colour
    }

    /// Makes `/health` answer 200 (`true`) or 503 (`false`); kept across restarts.
    pub fn set_healthy(&self, healthy: bool) {
        self.shared.healthy.store(healthy, Ordering::SeqCst);
    }

    /// Whether `/health` currently answers 200.
    pub fn is_healthy(&self) -> bool {
        self.shared.healthy.load(Ordering::SeqCst)
    }

    /// Whether the app is serving (started or restarted, and not killed since).
    pub fn is_running(&self) -> bool {
        lock(&self.running).is_some()
    }

    /// The recorder shared by every incarnation of this app; it outlives the app if kept.
    pub fn recorder(&self) -> Arc<Recorder> {
        Arc::clone(&self.shared.recorder)
    }

    /// Requests received, health checks excepted, over every incarnation.
    pub fn requests(&self) -> u64 {
        self.shared.recorder.requests()
    }

    /// TCP connections accepted, over every incarnation.
    pub fn connections(&self) -> u64 {
        self.shared.recorder.connections()
    }

    /// TCP connections open right now.
    pub fn open_connections(&self) -> u64 {
        self.shared.recorder.open_connections()
    }

    /// Requests being handled right now: wait on this for a slow request to have arrived.
    pub fn in_flight(&self) -> u64 {
        self.shared.recorder.in_flight()
    }

    /// Every recorded POST body, in arrival order.
    pub fn posts(&self) -> Vec<bytes::Bytes> {
        self.shared.recorder.posts()
    }

    /// Requests received for `path` (query left out), health checks included.
    pub fn count_path(&self, path: &str) -> u64 {
        self.shared.recorder.count_path(path)
    }

    /// Health checks (`GET`/`HEAD /health`) received.
    pub fn health_checks(&self) -> u64 {
        self.shared.recorder.health_checks()
    }

    /// Kills the app like SIGKILL: the listener closes (new connects are refused) and every
    /// live connection is aborted mid-request. When this returns, all its sockets are closed.
    /// Killing a killed app does nothing.
    pub async fn kill(&self) {
        let Some(running) = lock(&self.running).take() else {
            return;
        };
        running.accept.abort();
        // Waiting for the aborted task guarantees the listener has been dropped, and that no
        // connection can be added to the set after it is taken below.
        let _ = running.accept.await;
        let mut conns = std::mem::take(&mut *lock(&running.conns));
        conns.shutdown().await;
    }

    /// Starts the app again on the same address and colour, killing it first if it still runs.
    /// The recorder and the health switch are kept. Panics if the port cannot be bound again.
    pub async fn restart(&self) {
        self.kill().await;
        let listener = match bind(self.addr) {
            Ok(listener) => listener,
            Err(e) => panic!(
                "test app {}: cannot rebind {}: {e}",
                self.colour(),
                self.addr
            ),
        };
        let running = spawn(listener, Arc::clone(&self.shared));
        *lock(&self.running) = Some(running);
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(running) = lock(&self.running).take() {
            running.accept.abort();
            // Dropping the set aborts every connection task.
            drop(std::mem::take(&mut *lock(&running.conns)));
        }
    }
}

/// Binds a listener on `addr` with `SO_REUSEADDR`.
fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// Spawns the accept loop of one incarnation.
fn spawn(listener: TcpListener, shared: Arc<Shared>) -> Running {
    let conns = Arc::new(Mutex::new(JoinSet::new()));
    let accept = tokio::spawn(accept_loop(listener, shared, Arc::clone(&conns)));
    Running { accept, conns }
}

/// Accepts connections forever, one task each in `conns`.
async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, conns: Arc<Mutex<JoinSet<()>>>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            // Out of file descriptors and the like: back off a little, as a real server would.
            Err(_) => {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                continue;
            }
        };
        let mut set = lock(&conns);
        // Reap finished connections so the set does not grow over a long test.
        while set.try_join_next().is_some() {}
        set.spawn(serve_connection(stream, Arc::clone(&shared)));
    }
}

/// Serves one keep-alive HTTP/1.1 connection until the client closes it or the app is killed.
async fn serve_connection(stream: TcpStream, shared: Arc<Shared>) {
    let _open = shared.recorder.on_connection();
    let _ = stream.set_nodelay(true);
    let service = service_fn(move |req| routes::handle(req, Arc::clone(&shared)));
    let _ = http1::Builder::new()
        .keep_alive(true)
        // No timer: an idle keep-alive connection stays open as long as the client wants,
        // also on paused tokio time.
        .header_read_timeout(None)
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

#[cfg(test)]
mod tests;
