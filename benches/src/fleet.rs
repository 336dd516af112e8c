//! `switchyard-bench fleet`: how fast a flip reaches a fleet, and what it costs the clients.
//!
//! Starts a real etcd (a child process on free loopback ports, temporary data), two upstreams
//! (green and blue, in-process), and three Switchyard processes in fleet mode sharing one
//! prefix. Keep-alive clients load all three the whole time. Each flip goes through instance
//! A's admin API; the time until an instance serves the new colour is when the first answer of
//! that colour comes back from it after the flip was sent. Reports, per flip, that time for
//! each instance and for the slowest one, and every failed request of the run.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use http::{Method, Request, header};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

use crate::procs::{ChildGuard, free_port};
use crate::upstream::{self, Upstream, X_COLOUR};

/// What to run.
#[derive(Debug, Clone)]
pub struct FleetSpec {
    /// The switchyard binary.
    pub switchyard: PathBuf,
    /// The etcd binary.
    pub etcd: PathBuf,
    /// How many flips.
    pub flips: usize,
    /// Keep-alive connections per instance.
    pub connections: usize,
    /// Time between two flips.
    pub interval: Duration,
}

/// One flip's figures.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FlipFigures {
    /// The colour flipped to.
    pub to: String,
    /// How long instance A's admin API took to answer the flip, ms.
    pub admin_ms: f64,
    /// Per instance (A, B, C): ms from sending the flip to its first answer of the new colour.
    pub instances_ms: Vec<f64>,
    /// The slowest instance, ms.
    pub fleet_ms: f64,
}

/// The whole run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FleetReport {
    /// Every flip.
    pub flips: Vec<FlipFigures>,
    /// Requests answered during the run.
    pub requests: u64,
    /// Requests that failed (transport error or a status other than 200), with a sample of why.
    pub failed: u64,
    /// Up to ten reasons for failures.
    pub failures: Vec<String>,
}

/// Per instance: the colour being waited for, when the flip was sent, and when it was first seen.
#[derive(Default)]
struct Watch {
    target: Mutex<Option<(String, Instant, Option<Instant>)>>,
}

impl Watch {
    fn arm(&self, colour: &str, at: Instant) {
        *self.target.lock().unwrap_or_else(PoisonError::into_inner) =
            Some((colour.to_string(), at, None));
    }
    fn saw(&self, colour: &[u8], sent: Instant) {
        let mut t = self.target.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((want, at, seen @ None)) = t.as_mut() {
            if want.as_bytes() == colour && sent >= *at {
                *seen = Some(Instant::now());
            }
        }
    }
    fn seen_after(&self) -> Option<Duration> {
        let t = self.target.lock().unwrap_or_else(PoisonError::into_inner);
        t.as_ref().and_then(|(_, at, seen)| seen.map(|s| s - *at))
    }
}

struct Counters {
    requests: AtomicU64,
    failed: AtomicU64,
    reasons: Mutex<Vec<String>>,
}

/// Runs the benchmark.
pub async fn run(spec: FleetSpec) -> anyhow::Result<FleetReport> {
    let dir = tempfile::tempdir()?;
    let (etcd_url, mut etcd) = start_etcd(&spec.etcd, dir.path())?;
    let green = start_upstream("green").await?;
    let blue = start_upstream("blue").await?;
    let prefix = format!("/bench/{}", std::process::id());
    let mut instances = Vec::new();
    for node in ["a", "b", "c"] {
        let http = free_port()?;
        let admin = free_port()?;
        let conf = dir.path().join(format!("{node}.toml"));
        std::fs::write(
            &conf,
            config(http, admin, &etcd_url, &prefix, node, green, blue),
        )?;
        let child = ChildGuard::spawn(
            &format!("switchyard {node}"),
            Command::new(&spec.switchyard)
                .arg("serve")
                .arg("-c")
                .arg(&conf)
                .env("SWITCHYARD_LOG", "warn")
                .stdout(Stdio::null()),
        )?;
        instances.push((http, admin, child));
    }
    for (http, admin, child) in &mut instances {
        crate::http::wait_ready(*admin, "/healthz", Duration::from_secs(20), || {
            child.check_alive()
        })
        .await?;
        crate::http::wait_ready(*http, "/", Duration::from_secs(20), || Ok(())).await?;
        etcd.check_alive()?;
    }
    let counters = Arc::new(Counters {
        requests: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        reasons: Mutex::new(Vec::new()),
    });
    let watches: Vec<Arc<Watch>> = instances.iter().map(|_| Arc::default()).collect();
    let mut load = Vec::new();
    for ((http, _, _), watch) in instances.iter().zip(&watches) {
        for _ in 0..spec.connections {
            load.push(tokio::spawn(client(*http, watch.clone(), counters.clone())));
        }
    }
    // Let the blue pool pass its health checks on every instance before the first flip.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let admin_a = instances[0].1;
    let mut flips = Vec::new();
    for i in 0..spec.flips {
        let to = if i % 2 == 0 { "blue" } else { "green" };
        let started = Instant::now();
        for w in &watches {
            w.arm(to, started);
        }
        let answer = crate::http::request(
            admin_a,
            Method::POST,
            "/switch",
            None,
            Some(format!(r#"{{"to":"{to}"}}"#)),
            Duration::from_secs(5),
        )
        .await?;
        let admin_ms = ms(started.elapsed());
        if !answer.status.is_success() {
            bail!(
                "the flip to {to} was refused: {} {}",
                answer.status,
                String::from_utf8_lossy(&answer.body)
            );
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while watches.iter().any(|w| w.seen_after().is_none()) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let instances_ms: Vec<f64> = watches
            .iter()
            .map(|w| w.seen_after().map_or(f64::INFINITY, ms))
            .collect();
        let fleet_ms = instances_ms.iter().copied().fold(0.0, f64::max);
        flips.push(FlipFigures {
            to: to.to_string(),
            admin_ms,
            instances_ms,
            fleet_ms,
        });
        tokio::time::sleep(spec.interval).await;
    }
    for task in load {
        task.abort();
    }
    drop(instances);
    drop(etcd);
    let failures = counters
        .reasons
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    Ok(FleetReport {
        flips,
        requests: counters.requests.load(Ordering::Relaxed),
        failed: counters.failed.load(Ordering::Relaxed),
        failures,
    })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// One keep-alive client loading `addr` until aborted.
async fn client(addr: SocketAddr, watch: Arc<Watch>, counters: Arc<Counters>) {
    loop {
        let Ok(stream) = TcpStream::connect(addr).await else {
            fail(&counters, format!("connect to {addr} failed"));
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let Ok((mut sender, conn)) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await
        else {
            continue;
        };
        let driver = tokio::spawn(conn);
        loop {
            let req = Request::builder()
                .method(Method::GET)
                .uri("/")
                .header(header::HOST, "app.bench")
                .body(Empty::<Bytes>::new());
            let Ok(req) = req else { return };
            let sent = Instant::now();
            match sender.send_request(req).await {
                Ok(resp) => {
                    let ok = resp.status() == http::StatusCode::OK;
                    let colour = resp.headers().get(&X_COLOUR).cloned();
                    let status = resp.status();
                    if resp.into_body().collect().await.is_err() {
                        fail(&counters, format!("{addr}: body cut short"));
                        break;
                    }
                    counters.requests.fetch_add(1, Ordering::Relaxed);
                    if !ok {
                        fail(&counters, format!("{addr}: status {status}"));
                    } else if let Some(c) = colour {
                        watch.saw(c.as_bytes(), sent);
                    }
                }
                Err(e) => {
                    fail(&counters, format!("{addr}: {e}"));
                    break;
                }
            }
        }
        driver.abort();
    }
}

fn fail(counters: &Counters, why: String) {
    counters.failed.fetch_add(1, Ordering::Relaxed);
    let mut reasons = counters
        .reasons
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if reasons.len() < 10 {
        reasons.push(why);
    }
}

async fn start_upstream(colour: &str) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(upstream::serve(listener, Upstream::new(colour, 64)?));
    Ok(addr)
}

/// Starts etcd on free loopback ports with its data in `dir`; its client URL and the child.
fn start_etcd(binary: &Path, dir: &Path) -> anyhow::Result<(String, ChildGuard)> {
    let client = format!("http://{}", free_port()?);
    let peer = format!("http://{}", free_port()?);
    let child = ChildGuard::spawn(
        "etcd",
        Command::new(binary)
            .arg("--name")
            .arg("bench")
            .arg("--data-dir")
            .arg(dir.join("etcd"))
            .arg("--listen-client-urls")
            .arg(&client)
            .arg("--advertise-client-urls")
            .arg(&client)
            .arg("--listen-peer-urls")
            .arg(&peer)
            .arg("--initial-advertise-peer-urls")
            .arg(&peer)
            .arg("--initial-cluster")
            .arg(format!("bench={peer}"))
            .arg("--logger=zap")
            .arg("--log-level=error")
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
    .context("cannot start etcd (Debian: apt-get install etcd-server)")?;
    Ok((client, child))
}

fn config(
    http: SocketAddr,
    admin: SocketAddr,
    etcd: &str,
    prefix: &str,
    node: &str,
    green: SocketAddr,
    blue: SocketAddr,
) -> String {
    format!(
        r#"[listen]
http = ["{http}"]

[admin]
listen = "{admin}"

[log]
access = false

[fleet]
etcd = ["{etcd}"]
prefix = "{prefix}"
node = "{node}"

[services.app]
active = "green"

[services.app.pools]
green = ["{green}"]
blue = ["{blue}"]

[services.app.health]
path = "/"
interval = "100ms"
"#
    )
}

/// The report as a Markdown table and a summary.
pub fn markdown(report: &FleetReport) -> String {
    let mut out = String::from(
        "| flip | to | admin answer (ms) | A (ms) | B (ms) | C (ms) | whole fleet (ms) |\n|---:|---|---:|---:|---:|---:|---:|\n",
    );
    for (i, f) in report.flips.iter().enumerate() {
        let cells = f
            .instances_ms
            .iter()
            .map(|v| format!("{v:.1}"))
            .collect::<Vec<_>>()
            .join(" | ");
        out.push_str(&format!(
            "| {} | {} | {:.1} | {cells} | {:.1} |\n",
            i + 1,
            f.to,
            f.admin_ms,
            f.fleet_ms
        ));
    }
    let mut fleet: Vec<f64> = report.flips.iter().map(|f| f.fleet_ms).collect();
    fleet.sort_by(f64::total_cmp);
    let median = fleet.get(fleet.len() / 2).copied().unwrap_or(0.0);
    let worst = fleet.last().copied().unwrap_or(0.0);
    out.push_str(&format!(
        "\nwhole fleet on the new colour: median {median:.1} ms, worst {worst:.1} ms (target < 100 ms: {})\nrequests {}, failed {}{}\n",
        if worst < 100.0 { "met" } else { "MISSED" },
        report.requests,
        report.failed,
        if report.failures.is_empty() {
            String::new()
        } else {
            format!(" ({})", report.failures.join("; "))
        }
    ));
    out
}
