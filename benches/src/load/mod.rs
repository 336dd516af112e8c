//! `switchyard-bench load`: HTTP load against one URL, closed or open loop, with an HDR latency
//! histogram, errors by kind, answers by header value and an optional flip schedule.
//!
//! Closed loop (`-c N`): each connection sends its next request as soon as the previous answer
//! is complete. Open loop (`--rate R`): request *k* is due at `start + k/R`; a free connection
//! takes the next due request, and its latency counts from the moment it was due, not from the
//! moment it could be sent, so a stall of the server is not hidden by the generator politely
//! waiting (coordinated omission). A connection that is idle and early sleeps until the due
//! time and measures from when it woke, so the timer's own granularity is not charged to the
//! server.
//!
//! A run with a duration ends at its deadline: a request still waiting for its answer then is
//! abandoned and reported as unfinished (not recorded, not a timeout), so `-d 5s` takes 5 s
//! even when answers take longer than that or never come.

mod conn;
pub mod record;
pub mod report;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Request, Uri, Version, header};
use http_body_util::{BodyExt, Full};

use conn::{Conn, H2Shared};
pub use conn::{Dial, H2Sender, ReqBody};
use record::{Outcome, Recorder};
pub use report::Report;

use crate::flip::{FlipEvent, FlipPlan};
use crate::target::Target;
use crate::tls::{Alpn, TlsClient};

/// Everything a load run needs to know.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// Where the requests go.
    pub target: Target,
    /// Connections to open (`-c`).
    pub connections: usize,
    /// HTTP/2 instead of HTTP/1.1 (with prior knowledge over TCP, by ALPN over TLS).
    pub h2: bool,
    /// TLS to the target (its ALPN must offer what `h2` says), or plain TCP. Each connection
    /// makes one handshake and is kept alive.
    pub tls: Option<TlsClient>,
    /// Concurrent streams per HTTP/2 connection.
    pub streams: usize,
    /// Open loop at this many requests per second; `None` is a closed loop.
    pub rate: Option<f64>,
    /// Run this long after the warm-up (default 10 s when `requests` is not set either).
    pub duration: Option<Duration>,
    /// Stop after this many requests in all (warm-up included).
    pub requests: Option<u64>,
    /// Requests started within this time from the start are sent but not recorded.
    pub warmup: Duration,
    /// The request method.
    pub method: Method,
    /// A request body of this many bytes (0: none).
    pub body_size: usize,
    /// Extra request headers.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// A request without a complete answer after this long fails as a timeout.
    pub timeout: Duration,
    /// Count answers by the value of this response header.
    pub by_header: Option<HeaderName>,
    /// Flip colours during the run.
    pub flip: Option<FlipPlan>,
    /// Print a progress line on stderr every second.
    pub progress: bool,
}

impl LoadSpec {
    /// A closed-loop GET run of 10 s with 64 connections.
    pub fn new(target: Target) -> LoadSpec {
        LoadSpec {
            target,
            connections: 64,
            h2: false,
            tls: None,
            streams: 1,
            rate: None,
            duration: None,
            requests: None,
            warmup: Duration::ZERO,
            method: Method::GET,
            body_size: 0,
            headers: Vec::new(),
            timeout: Duration::from_secs(10),
            by_header: None,
            flip: None,
            progress: false,
        }
    }
}

/// The shared state of one run.
#[derive(Debug)]
struct Run {
    /// When the run started (the open-loop schedule and sample times count from here).
    t0: Instant,
    /// Requests started before this are not recorded.
    measure_from: Instant,
    /// No request starts at or after this.
    deadline: Option<Instant>,
    /// No more than this many requests start.
    max_requests: Option<u64>,
    /// Open loop: the time between two due requests.
    interval: Option<f64>,
    /// The next request's sequence number.
    next_seq: AtomicU64,
    /// The request head, cloned for every request.
    head: http::request::Parts,
    /// The request body, cloned (cheaply) for every request.
    body: Bytes,
    timeout: Duration,
    by_header: Option<HeaderName>,
    keep_samples: bool,
    /// Requests finished, for the progress line.
    done: AtomicU64,
    /// Requests failed, for the progress line.
    failed: AtomicU64,
    /// Requests abandoned at the deadline, still waiting for their answer.
    unfinished: AtomicU64,
}

impl Run {
    /// The next request to send: `Some(None)` now (closed loop), `Some(Some(t))` due at `t`
    /// (open loop), `None` when the run is over.
    fn next_slot(&self) -> Option<Option<Instant>> {
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        if self.max_requests.is_some_and(|n| seq >= n) {
            return None;
        }
        match self.interval {
            None => match self.deadline {
                Some(d) if Instant::now() >= d => None,
                _ => Some(None),
            },
            Some(interval) => {
                let due = self.t0 + Duration::from_secs_f64(seq as f64 * interval);
                match self.deadline {
                    Some(d) if due >= d => None,
                    _ => Some(Some(due)),
                }
            }
        }
    }

    fn request(&self) -> Request<Full<Bytes>> {
        Request::from_parts(self.head.clone(), Full::new(self.body.clone()))
    }
}

/// Runs the load described by `spec` and reports on it. Must run inside a Tokio runtime; the
/// workers are spawned tasks, so a multi-thread runtime spreads them over its threads.
pub async fn run(spec: LoadSpec) -> anyhow::Result<Report> {
    if spec.connections == 0 {
        bail!("-c must be at least 1");
    }
    if spec.rate.is_some_and(|r| !(r > 0.0 && r.is_finite())) {
        bail!("--rate must be a positive number");
    }
    if let Some(tls) = &spec.tls {
        let wanted = if spec.h2 { Alpn::H2 } else { Alpn::Http1 };
        if tls.alpn() != wanted {
            bail!(
                "the TLS client offers {:?} in ALPN, but the run speaks {wanted:?}",
                tls.alpn()
            );
        }
    }
    let head = request_head(&spec)?;
    let t0 = Instant::now();
    let measure_from = t0 + spec.warmup;
    let duration = match (spec.duration, spec.requests) {
        (None, None) => Some(Duration::from_secs(10)),
        (d, _) => d,
    };
    let run = Arc::new(Run {
        t0,
        measure_from,
        deadline: duration.map(|d| measure_from + d),
        max_requests: spec.requests,
        interval: spec.rate.map(|r| 1.0 / r),
        next_seq: AtomicU64::new(0),
        head,
        body: Bytes::from(vec![b'x'; spec.body_size]),
        timeout: spec.timeout,
        by_header: spec.by_header.clone(),
        keep_samples: spec.flip.is_some(),
        done: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        unfinished: AtomicU64::new(0),
    });

    let dial = Dial {
        addr: spec.target.addr,
        tls: spec.tls.clone(),
    };
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..spec.connections {
        if spec.h2 {
            let shared = Arc::new(H2Shared::default());
            for _ in 0..spec.streams.max(1) {
                let conn = Conn::h2(dial.clone(), shared.clone());
                workers.spawn(worker(run.clone(), conn));
            }
        } else {
            workers.spawn(worker(run.clone(), Conn::h1(dial.clone())));
        }
    }
    let (stop_flips, stop_rx) = tokio::sync::watch::channel(false);
    let flips = spec
        .flip
        .clone()
        .map(|plan| tokio::spawn(plan.run(measure_from, run.deadline, stop_rx)));
    let progress = spec
        .progress
        .then(|| tokio::spawn(progress_loop(run.clone())));

    let mut parts = Vec::with_capacity(workers.len());
    while let Some(done) = workers.join_next().await {
        parts.push(done?);
    }
    let _ = stop_flips.send(true);
    if let Some(p) = progress {
        p.abort();
        report::clear_progress();
    }
    let flips: Vec<FlipEvent> = match flips {
        Some(f) => f.await?,
        None => Vec::new(),
    };
    let merged = record::merge(t0, parts);
    let unfinished = run.unfinished.load(Ordering::Relaxed);
    Ok(Report::build(
        &spec,
        t0,
        measure_from,
        &merged,
        &flips,
        unfinished,
    ))
}

fn request_head(spec: &LoadSpec) -> anyhow::Result<http::request::Parts> {
    let t = &spec.target;
    let mut builder = Request::builder().method(spec.method.clone());
    builder = if spec.h2 {
        let scheme = if spec.tls.is_some() { "https" } else { "http" };
        let uri: Uri = format!("{scheme}://{}{}", t.authority, t.path).parse()?;
        builder.uri(uri).version(Version::HTTP_2)
    } else {
        builder
            .uri(t.path.as_str())
            .header(header::HOST, t.authority.as_str())
    };
    for (name, value) in &spec.headers {
        builder = builder.header(name, value);
    }
    let (parts, ()) = builder.body(())?.into_parts();
    Ok(parts)
}

/// One worker: takes the next due request until the run is over.
async fn worker(run: Arc<Run>, mut conn: Conn) -> Recorder {
    let mut rec = Recorder::new(run.t0, run.keep_samples);
    while let Some(due) = run.next_slot() {
        let start = match due {
            Some(t) if t > Instant::now() => {
                tokio::time::sleep_until(t.into()).await;
                Instant::now()
            }
            Some(t) => t,
            None => Instant::now(),
        };
        let req = run.request();
        // The answer is awaited until the request times out, or until the run's deadline when
        // that comes first.
        let timeout_at = Instant::now() + run.timeout;
        let (limit, cut_at_end) = match run.deadline {
            Some(d) if d < timeout_at => (d, true),
            _ => (timeout_at, false),
        };
        let result = tokio::time::timeout_at(
            limit.into(),
            exchange(&mut conn, req, &mut rec, run.by_header.as_ref()),
        )
        .await;
        let end = Instant::now();
        let (outcome, header) = match result {
            Ok(r) => r,
            Err(_) if cut_at_end => {
                conn.abandon();
                run.unfinished.fetch_add(1, Ordering::Relaxed);
                break;
            }
            Err(_) => {
                conn.abandon();
                (Outcome::Timeout, None)
            }
        };
        run.done.fetch_add(1, Ordering::Relaxed);
        if !outcome.is_ok() {
            run.failed.fetch_add(1, Ordering::Relaxed);
        }
        if start >= run.measure_from {
            rec.record(
                start,
                end,
                outcome,
                header.as_ref().map(HeaderValue::as_bytes),
            );
        }
        if outcome == Outcome::Connect {
            // Nothing listens: do not spin; the next attempt is the next request.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    rec
}

/// One request and its whole answer.
async fn exchange(
    conn: &mut Conn,
    req: Request<Full<Bytes>>,
    rec: &mut Recorder,
    by_header: Option<&HeaderName>,
) -> (Outcome, Option<HeaderValue>) {
    let resp = match conn.send(req, rec).await {
        Ok(r) => r,
        Err(o) => return (o, None),
    };
    let outcome = Outcome::of_status(resp.status().as_u16());
    let header = by_header.and_then(|h| resp.headers().get(h).cloned());
    let mut body = resp.into_body();
    while let Some(frame) = body.frame().await {
        if frame.is_err() {
            conn.broken(rec);
            return (Outcome::Closed, header);
        }
    }
    (outcome, header)
}

async fn progress_loop(run: Arc<Run>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    let mut last = 0;
    loop {
        tick.tick().await;
        let done = run.done.load(Ordering::Relaxed);
        report::progress_line(
            run.t0.elapsed(),
            done,
            done - last,
            run.failed.load(Ordering::Relaxed),
        );
        last = done;
    }
}
