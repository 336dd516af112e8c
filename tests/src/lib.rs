//! Switchyard's test harness: real servers and real clients on `127.0.0.1:0`, no mocks, no
//! fixed ports and no sleeps to wait for readiness.
//!
//! - [`app::TestApp`] is a real HTTP/1.1 keep-alive server standing in for one colour's Flask
//!   app: `GET /` answers its colour, `/slow` and `/slow-post` hold a request open, `/health`
//!   follows a switch, `/headers` shows what arrived, `/drop` closes the connection unanswered.
//!   It counts requests and connections, records POST bodies in a [`app::Recorder`] that
//!   survives restarts, and can be [killed](app::TestApp::kill) like SIGKILL and
//!   [restarted](app::TestApp::restart) on the same port.
//! - [`client`] has a [`client::KeepAliveClient`] on exactly one TCP connection (so a test can
//!   tell that *its* connection survived a switch), an h2c [`client::Http2Client`], and
//!   [`client::raw_request`] for malformed requests.
//! - [`wait::poll_until`] is the one way to wait for something to become true.
//!
//! ```no_run
//! use std::time::Duration;
//! use switchyard_tests::{KeepAliveClient, TestApp, poll_until};
//!
//! # async fn demo() {
//! let green = TestApp::start("green").await;
//! let mut client = KeepAliveClient::connect(green.addr()).await;
//! let resp = client.get("/", "app.test").await.expect("green answers");
//! assert_eq!(resp.text(), "green");
//! poll_until(Duration::from_secs(5), || async { green.requests() == 1 }).await;
//! # }
//! ```
//!
//! Timeouts in this crate are wall-clock (see [`wait`]), so the harness also works inside tests
//! on paused tokio time, where auto-advance would fire a tokio timer while real I/O is pending.

pub mod app;
pub mod browser;
pub mod capture;
pub mod client;
pub mod etcd;
pub mod scripted;
pub mod wait;

pub use app::{Recorder, TestApp, X_COLOUR};
pub use capture::CapturedLog;
pub use client::{
    ClientError, Http2Client, KeepAliveClient, Resp, raw_request, raw_request_timeout, raw_status,
};
pub use scripted::{Scripted, scripted_upstream};
pub use wait::{poll_until, within};
