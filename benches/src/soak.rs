//! `switchyard-bench soak`: a long run of everything that goes wrong in production at once.
//!
//! Starts the release `switchyard` with two colours of two apps each (the bench upstream, as
//! child processes), loads it with keep-alive clients (GETs, and one POST in ten), and meanwhile
//! flips the colour every few seconds through the admin API, kills an app (SIGKILL) and starts
//! it again on the same port, sends uploads that are cut off half-way, opens slow readers that
//! never read their answer, and resets HTTP/2 streams right after opening them. It samples the
//! proxy's RSS and open file descriptors over time and reports requests, failures by cause
//! (only POSTs in flight on a killed app may fail), and whether memory and descriptors level off.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, header};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::procs::{ChildGuard, free_port, memory_kb};

/// What to run.
#[derive(Debug, Clone)]
pub struct SoakSpec {
    /// The switchyard binary.
    pub switchyard: PathBuf,
    /// How long.
    pub duration: Duration,
    /// Keep-alive load clients.
    pub connections: usize,
    /// Time between two flips.
    pub flip_every: Duration,
    /// Time between two app kills.
    pub kill_every: Duration,
}

/// One sample of the proxy.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Sample {
    /// Seconds since the start.
    pub at_s: u64,
    /// Requests answered so far.
    pub requests: u64,
    /// The proxy's resident memory, kB.
    pub rss_kb: u64,
    /// The proxy's open file descriptors.
    pub fds: u64,
}

/// The whole run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SoakReport {
    /// How long it ran, seconds.
    pub seconds: u64,
    /// Requests answered (GET and POST).
    pub requests: u64,
    /// Failed GETs by cause (none may fail).
    pub get_failures: BTreeMap<String, u64>,
    /// Failed POSTs by cause (only those in flight on a killed app may fail).
    pub post_failures: BTreeMap<String, u64>,
    /// Flips applied, and refused (the target had no healthy server at that moment).
    pub flips: (u64, u64),
    /// Apps killed and started again.
    pub kills: u64,
    /// Uploads cut off half-way, slow readers opened, HTTP/2 streams reset.
    pub abuse: (u64, u64, u64),
    /// The proxy over time.
    pub samples: Vec<Sample>,
}

struct App {
    addr: SocketAddr,
    colour: &'static str,
    child: Option<ChildGuard>,
}

fn start_app(addr: SocketAddr, colour: &str) -> anyhow::Result<ChildGuard> {
    let exe = std::env::current_exe()?;
    ChildGuard::spawn(
        &format!("upstream {colour} {addr}"),
        Command::new(exe)
            .args([
                "upstream",
                "--listen",
                &addr.to_string(),
                "--colour",
                colour,
            ])
            .args(["--body-size", "16384"])
            .stdout(Stdio::null()),
    )
}

#[derive(Default)]
struct Tally {
    requests: AtomicU64,
    get: Mutex<BTreeMap<String, u64>>,
    post: Mutex<BTreeMap<String, u64>>,
}

impl Tally {
    fn fail(&self, post: bool, why: String) {
        let map = if post { &self.post } else { &self.get };
        *map.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(why)
            .or_default() += 1;
    }
}

/// Runs the soak.
pub async fn run(spec: SoakSpec) -> anyhow::Result<SoakReport> {
    let dir = tempfile::tempdir()?;
    let mut apps = Vec::new();
    for colour in ["green", "green", "blue", "blue"] {
        let addr = free_port()?;
        apps.push(App {
            addr,
            colour,
            child: Some(start_app(addr, colour)?),
        });
    }
    let http = free_port()?;
    let admin = free_port()?;
    let pool = |c: &str| {
        apps.iter()
            .filter(|a| a.colour == c)
            .map(|a| format!("\"{}\"", a.addr))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let conf = dir.path().join("soak.toml");
    std::fs::write(
        &conf,
        format!(
            "[listen]\nhttp = [\"{http}\"]\n\n[admin]\nlisten = \"{admin}\"\n\n[log]\naccess = false\n\n\
             [limits]\nsend_timeout = \"10s\"\nbody_timeout = \"10s\"\n\n\
             [services.app]\nactive = \"green\"\n\n[services.app.pools]\ngreen = [{}]\nblue = [{}]\n\n\
             [services.app.health]\npath = \"/\"\ninterval = \"200ms\"\n",
            pool("green"),
            pool("blue")
        ),
    )?;
    let mut proxy = ChildGuard::spawn(
        "switchyard",
        Command::new(&spec.switchyard)
            .args(["serve", "-c"])
            .arg(&conf)
            .env("SWITCHYARD_LOG", "error")
            .stdout(Stdio::null()),
    )?;
    crate::http::wait_ready(admin, "/healthz", Duration::from_secs(20), || {
        proxy.check_alive()
    })
    .await?;
    crate::http::wait_ready(http, "/", Duration::from_secs(20), || Ok(())).await?;
    let pid = proxy.pid();

    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let mut tasks = Vec::new();
    for i in 0..spec.connections {
        tasks.push(tokio::spawn(client(http, i, stop.clone(), tally.clone())));
    }
    let abuse = Arc::new([AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)]);
    tasks.push(tokio::spawn(abuser(http, stop.clone(), abuse.clone())));

    let started = Instant::now();
    let mut samples = Vec::new();
    let (mut flips_ok, mut flips_refused, mut kills) = (0u64, 0u64, 0u64);
    let mut next_flip = started + spec.flip_every;
    let mut next_kill = started + spec.kill_every;
    let mut next_sample = started;
    let mut colour = "green";
    while started.elapsed() < spec.duration {
        proxy.check_alive()?;
        let now = Instant::now();
        if now >= next_sample {
            next_sample += Duration::from_secs(10);
            samples.push(Sample {
                at_s: started.elapsed().as_secs(),
                requests: tally.requests.load(Ordering::Relaxed),
                rss_kb: memory_kb(pid, "VmRSS"),
                fds: std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count() as u64),
            });
        }
        if now >= next_flip {
            next_flip += spec.flip_every;
            let to = if colour == "green" { "blue" } else { "green" };
            let body = format!(r#"{{"to":"{to}"}}"#);
            match crate::http::request(
                admin,
                Method::POST,
                "/switch",
                None,
                Some(body),
                Duration::from_secs(5),
            )
            .await
            {
                Ok(a) if a.status.is_success() => {
                    flips_ok += 1;
                    colour = to;
                }
                _ => flips_refused += 1,
            }
        }
        if now >= next_kill {
            next_kill += spec.kill_every;
            let i = fastrand::usize(0..apps.len());
            if let Some(mut child) = apps[i].child.take() {
                let _ = child.child_mut().kill();
                let _ = child.child_mut().wait();
                kills += 1;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            apps[i].child = Some(start_app(apps[i].addr, apps[i].colour)?);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(15), t).await;
    }
    let get_failures = tally
        .get
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let post_failures = tally
        .post
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    drop(proxy);
    Ok(SoakReport {
        seconds: started.elapsed().as_secs(),
        requests: tally.requests.load(Ordering::Relaxed),
        get_failures,
        post_failures,
        flips: (flips_ok, flips_refused),
        kills,
        abuse: (
            abuse[0].load(Ordering::Relaxed),
            abuse[1].load(Ordering::Relaxed),
            abuse[2].load(Ordering::Relaxed),
        ),
        samples,
    })
}

/// One keep-alive client: GETs, and a POST every tenth request, until `stop`.
async fn client(addr: SocketAddr, seed: usize, stop: Arc<AtomicBool>, tally: Arc<Tally>) {
    let mut n = seed;
    while !stop.load(Ordering::Relaxed) {
        let Ok(stream) = TcpStream::connect(addr).await else {
            tally.fail(false, "connect to the proxy failed".into());
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let Ok((mut sender, conn)) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await
        else {
            continue;
        };
        let driver = tokio::spawn(conn);
        while !stop.load(Ordering::Relaxed) {
            n += 1;
            let post = n.is_multiple_of(10);
            let req = Request::builder()
                .method(if post { Method::POST } else { Method::GET })
                .uri(if post { "/order" } else { "/" })
                .header(header::HOST, "app.soak")
                .body(Full::new(Bytes::from_static(if post {
                    b"order=1"
                } else {
                    b""
                })));
            let Ok(req) = req else { return };
            match tokio::time::timeout(Duration::from_secs(30), sender.send_request(req)).await {
                Ok(Ok(resp)) => {
                    let status = resp.status();
                    let body = resp.into_body().collect().await;
                    tally.requests.fetch_add(1, Ordering::Relaxed);
                    if body.is_err() {
                        tally.fail(post, "answer cut short".into());
                        break;
                    }
                    if status != http::StatusCode::OK {
                        tally.fail(post, format!("status {}", status.as_u16()));
                    }
                }
                Ok(Err(e)) => {
                    tally.fail(post, format!("connection error: {e}"));
                    break;
                }
                Err(_) => {
                    tally.fail(post, "no answer within 30 s".into());
                    break;
                }
            }
        }
        driver.abort();
    }
}

/// Aborted uploads, slow readers and HTTP/2 resets, a few a second, until `stop`.
async fn abuser(addr: SocketAddr, stop: Arc<AtomicBool>, counts: Arc<[AtomicU64; 3]>) {
    let mut round = 0u64;
    let mut slow = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        round += 1;
        // An upload announced as 1 MB, cut off after 70 kB.
        if let Ok(mut s) = TcpStream::connect(addr).await {
            let head = "POST /upload HTTP/1.1\r\nHost: app.soak\r\nContent-Length: 1000000\r\n\r\n";
            if s.write_all(head.as_bytes()).await.is_ok()
                && s.write_all(&[b'x'; 70_000]).await.is_ok()
            {
                counts[0].fetch_add(1, Ordering::Relaxed);
            }
        }
        // A slow reader: asks for a 16 kB answer and never reads it; let go after ~30 s.
        if round.is_multiple_of(4) {
            if let Ok(mut s) = TcpStream::connect(addr).await {
                let get = "GET / HTTP/1.1\r\nHost: app.soak\r\n\r\n".repeat(64);
                if s.write_all(get.as_bytes()).await.is_ok() {
                    counts[1].fetch_add(1, Ordering::Relaxed);
                    slow.push(s);
                    if slow.len() > 60 {
                        slow.remove(0);
                    }
                }
            }
        }
        // An HTTP/2 stream reset right after it was opened.
        if let Ok(stream) = TcpStream::connect(addr).await {
            if let Ok((mut sender, conn)) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                    .await
            {
                let driver = tokio::spawn(conn);
                if let Ok(req) = Request::builder()
                    .uri("http://app.soak/")
                    .body(Full::new(Bytes::new()))
                {
                    let pending = sender.send_request(req);
                    let _ = tokio::time::timeout(Duration::from_micros(200), pending).await;
                    counts[2].fetch_add(1, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
                driver.abort();
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The report as Markdown: totals, failures by cause, the samples, and the verdict.
pub fn markdown(r: &SoakReport) -> String {
    let mut out = format!(
        "soak: {} s, {} requests, {} flips ({} refused), {} apps killed and restarted, {} uploads cut off, {} slow readers, {} HTTP/2 streams reset\n\n",
        r.seconds, r.requests, r.flips.0, r.flips.1, r.kills, r.abuse.0, r.abuse.1, r.abuse.2
    );
    let list = |m: &BTreeMap<String, u64>| {
        if m.is_empty() {
            "none".to_string()
        } else {
            m.iter()
                .map(|(k, v)| format!("{v} × {k}"))
                .collect::<Vec<_>>()
                .join("; ")
        }
    };
    out.push_str(&format!(
        "failed GETs: {}\nfailed POSTs: {}\n\n",
        list(&r.get_failures),
        list(&r.post_failures)
    ));
    out.push_str("| at (s) | requests | RSS (MB) | open fds |\n|---:|---:|---:|---:|\n");
    let step = (r.samples.len() / 30).max(1);
    for s in r.samples.iter().step_by(step) {
        out.push_str(&format!(
            "| {} | {} | {:.1} | {} |\n",
            s.at_s,
            s.requests,
            s.rss_kb as f64 / 1024.0,
            s.fds
        ));
    }
    let third = r.samples.len() / 3;
    if third > 0 {
        let max = |part: &[Sample], f: fn(&Sample) -> u64| part.iter().map(f).max().unwrap_or(0);
        let (mid, last) = (&r.samples[third..2 * third], &r.samples[2 * third..]);
        let rss = (max(mid, |s| s.rss_kb), max(last, |s| s.rss_kb));
        let fds = (max(mid, |s| s.fds), max(last, |s| s.fds));
        let level = rss.1 as f64 <= rss.0 as f64 * 1.25 && fds.1 <= fds.0 + 50;
        out.push_str(&format!(
            "\nRSS peak: middle third {:.1} MB, last third {:.1} MB; open fds peak: {} then {} — {}\n",
            rss.0 as f64 / 1024.0,
            rss.1 as f64 / 1024.0,
            fds.0,
            fds.1,
            if level { "both level off" } else { "NOT levelling off" }
        ));
    }
    out
}
