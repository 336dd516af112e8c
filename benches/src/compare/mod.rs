//! `switchyard-bench compare`: the same load against the upstream directly, Switchyard, nginx
//! and HAProxy, in alternation (A B A B …) so that the noise of a shared machine falls on all
//! of them alike; then the memory each proxy holds for idle keep-alive connections, and with
//! `--syscalls` the system calls per request under `strace`. With `--flip`, the same load while
//! flipping colours every second instead. `--protocol` chooses what the clients speak to the
//! proxies: HTTP/1.1, HTTP/1.1 over TLS 1.3 or HTTP/2 over TLS 1.3 (see [`protocol`]).
//!
//! Every process runs in a temp dir of its own and is stopped by a guard, also on Ctrl-C (the
//! binary drops this future on SIGINT/SIGTERM, which drops the guards).

pub mod configs;
mod idle;
pub mod protocol;
pub mod syscalls;
mod table;
pub mod targets;

use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::flip::{FlipPlan, Flipper};
use crate::load::{self, LoadSpec, Report};
use crate::procs;
use crate::target::Target;
use crate::upstream::X_COLOUR;
use protocol::RunTls;
use syscalls::SyscallResult;
use targets::Running;

pub use protocol::Protocol;
pub use table::markdown;

/// What to compare and how long.
#[derive(Debug, Clone)]
pub struct CompareSpec {
    /// Rounds of A B C D (at least 1; 3 or more for a median).
    pub rounds: usize,
    /// Each measured run.
    pub duration: Duration,
    /// An unrecorded run before each measured one.
    pub warmup: Duration,
    /// Client connections.
    pub connections: usize,
    /// Run the flip scenario instead of the throughput comparison.
    pub flip: bool,
    /// Time between flips.
    pub flip_every: Duration,
    /// Idle keep-alive connections for the memory check (0: skip it).
    pub idle_conns: usize,
    /// The Switchyard binary (default: found or built).
    pub switchyard: Option<PathBuf>,
    /// Only these targets (`direct`, `switchyard`, `nginx`, `haproxy`, `baseline`).
    pub only: Option<Vec<String>>,
    /// Access logs on: Switchyard and nginx each log every request to a file, buffered
    /// (HAProxy logs only to syslog and is left without one).
    pub access_log: bool,
    /// Switchyard's `[log] access_format` with the access log on (`None`: its default). Not
    /// given to the baseline, an earlier build that may not know the key.
    pub access_format: Option<String>,
    /// Which proxies send the upstream an `X-Request-Id` of their own and echo it (the
    /// baseline keeps its default, ids on, whatever this says).
    pub request_ids: RequestIds,
    /// An earlier Switchyard binary, measured beside the current one as `switchyard-before`.
    pub baseline: Option<PathBuf>,
    /// What the clients speak to the proxies.
    pub protocol: Protocol,
    /// HTTP/2: concurrent streams per connection (`connections` stays the requests in flight).
    pub streams: usize,
    /// One more run per target with `strace -c` attached, for system calls per request.
    pub syscalls: bool,
}

/// Which proxies add an `X-Request-Id` to each request (the client's own, else a new one)
/// and echo it in the answer. The fields a proxy adds cost the upstream and the load
/// generator too, on the same cores, so a fair comparison has both proxies add the same ones.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum RequestIds {
    /// Switchyard (`generate_request_id = true`, its default) and nginx (`$request_id`).
    Both,
    /// Switchyard only: each proxy as it ships.
    #[default]
    Switchyard,
    /// Neither (`generate_request_id = false`).
    None,
}

/// One measured run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunResult {
    /// The round, from 1.
    pub round: usize,
    /// The load report.
    pub load: Report,
    /// The target's CPU per request in µs (its whole process tree).
    pub cpu_us_per_req: f64,
    /// Of which in user space.
    pub cpu_user_us_per_req: f64,
    /// The upstream's CPU per request in µs.
    pub upstream_cpu_us_per_req: f64,
    /// The load generator's CPU use over the run (1.0 = one core).
    pub loadgen_cores: f64,
    /// Peak RSS (VmHWM summed over the process tree) after the run, in kB.
    pub peak_rss_kb: u64,
    /// The whole machine's busy CPU per request in µs, all cores: the target, the upstream,
    /// the load generator, and what no process is charged for, such as the kernel's writeback
    /// of access logs (absent from reports saved before it was measured).
    #[serde(default)]
    pub machine_us_per_req: f64,
}

/// Idle keep-alive connections and memory.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct IdleResult {
    /// Connections held open.
    pub connections: usize,
    /// RSS before they were opened, in kB.
    pub rss_before_kb: u64,
    /// RSS while they are open and idle, in kB.
    pub rss_idle_kb: u64,
    /// RSS [`idle::HOLD`] after they were all closed, in kB (memory a proxy gives back; not in
    /// reports saved before it was measured).
    #[serde(default)]
    pub rss_closed_kb: Option<u64>,
}

/// Everything measured for one target.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TargetResult {
    /// `direct`, `switchyard`, `nginx` or `haproxy`.
    pub name: String,
    /// Every measured run.
    pub runs: Vec<RunResult>,
    /// The idle-connections check (proxies only).
    pub idle: Option<IdleResult>,
    /// System calls per request (`--syscalls`, where strace exists).
    #[serde(default)]
    pub syscalls: Option<SyscallResult>,
}

/// The whole comparison.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CompareReport {
    /// `throughput` or `flip`.
    pub scenario: String,
    /// What the clients spoke to the proxies (reports saved before `--protocol`: HTTP/1.1).
    #[serde(default)]
    pub protocol: Protocol,
    /// HTTP/2 streams per connection (1 otherwise; 0 in reports saved before `--protocol`).
    #[serde(default)]
    pub streams: usize,
    /// Requests in flight (client connections for HTTP/1.1), duration and rounds, for the
    /// record.
    pub connections: usize,
    /// Seconds per measured run.
    pub duration_s: f64,
    /// Rounds run.
    pub rounds: usize,
    /// Access logs: `None` off on both; else on for Switchyard (in this `[log]
    /// access_format`, `default` for its own default) and nginx (`combined`), to files.
    #[serde(default)]
    pub access_log: Option<String>,
    /// Which proxies generated request ids (reports saved before `--request-ids`:
    /// Switchyard's default, ids from Switchyard only).
    #[serde(default)]
    pub request_ids: RequestIds,
    /// Per target.
    pub targets: Vec<TargetResult>,
    /// Why a target is missing (not installed, failed to start).
    pub notes: Vec<String>,
}

fn wanted(spec: &CompareSpec, name: &str) -> bool {
    spec.only
        .as_ref()
        .is_none_or(|o| o.iter().any(|n| n == name))
}

/// Runs the comparison. Children are stopped when this returns or is dropped.
pub async fn run(spec: CompareSpec) -> anyhow::Result<CompareReport> {
    let dir = tempfile::Builder::new()
        .prefix("switchyard-bench-")
        .tempdir()
        .context("cannot make a temp dir")?;
    // nginx's workers run as another user and must reach their temp paths.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
    let mut notes = Vec::new();
    let tls = RunTls::new(spec.protocol, dir.path())?;
    let tls = tls.as_ref();

    let green = targets::start_upstream(dir.path(), "green").await?;
    let blue = targets::start_upstream(dir.path(), "blue").await?;
    let colours = vec![
        ("green".to_string(), green.addr),
        ("blue".to_string(), blue.addr),
    ];
    let mut running: Vec<Running> = Vec::new();
    if wanted(&spec, "direct") && !spec.flip && spec.protocol.tls() {
        notes.push(
            "no row for the upstream directly: it speaks plain HTTP/1.1 only, not TLS".into(),
        );
    } else if wanted(&spec, "direct") && !spec.flip {
        running.push(Running {
            name: "direct".into(),
            addr: green.addr,
            dial: green.dial.clone(),
            pid: green.pid,
            flipper: None,
            guard: None,
        });
    }
    if wanted(&spec, "switchyard") {
        let bin = targets::switchyard_binary(spec.switchyard.as_deref())?;
        eprintln!("switchyard: {}", bin.display());
        running.push(
            targets::start_switchyard(
                "switchyard",
                &bin,
                dir.path(),
                &colours,
                targets::SwitchyardRun {
                    access: spec.access_log,
                    format: spec.access_format.as_deref(),
                    generate_request_id: spec.request_ids != RequestIds::None,
                },
                false,
                tls,
            )
            .await?,
        );
    }
    if let Some(bin) = &spec.baseline {
        eprintln!("switchyard-before: {}", bin.display());
        running.push(
            targets::start_switchyard(
                "switchyard-before",
                bin,
                dir.path(),
                &colours,
                targets::SwitchyardRun {
                    access: spec.access_log,
                    format: None,
                    generate_request_id: true,
                },
                true,
                tls,
            )
            .await?,
        );
    }
    for (name, start) in [("nginx", 0), ("haproxy", 1)] {
        if !wanted(&spec, name) {
            continue;
        }
        let Some(bin) = targets::which(name) else {
            let note = format!(
                "{name} is not installed (not on PATH): no {name} row; install it (e.g. apt-get install {name}) to compare"
            );
            eprintln!("note: {note}");
            notes.push(note);
            continue;
        };
        let started = if start == 0 {
            let ids = spec.request_ids == RequestIds::Both;
            targets::start_nginx(&bin, dir.path(), &colours, spec.access_log, ids, tls).await
        } else {
            targets::start_haproxy(&bin, dir.path(), &colours, tls).await
        };
        match started {
            Ok(r) => running.push(r),
            Err(e) => {
                let note = format!("{name} failed to start: {e:#}");
                eprintln!("note: {note}");
                notes.push(note);
            }
        }
    }

    let mut results: Vec<TargetResult> = running
        .iter()
        .map(|r| TargetResult {
            name: r.name.clone(),
            runs: Vec::new(),
            idle: None,
            syscalls: None,
        })
        .collect();
    let rounds = spec.rounds.max(1);
    for round in 1..=rounds {
        // Each round starts with the next target, so that no target always runs first (or
        // last) of its round, next to the same neighbour.
        let n = running.len();
        for k in 0..n {
            let i = (k + round - 1) % n;
            let r = &running[i];
            let result = if spec.flip {
                flip_run(&spec, r, round).await?
            } else {
                throughput_run(&spec, r, green.pid, round).await?
            };
            eprintln!("{}", progress_summary(round, rounds, &r.name, &result));
            results[i].runs.push(result);
        }
    }
    if !spec.flip && spec.idle_conns > 0 {
        for (i, r) in running.iter().enumerate() {
            if r.name == "direct" {
                continue;
            }
            let idle = idle::measure(&r.dial, spec.protocol.h2(), r.pid, spec.idle_conns).await?;
            eprintln!(
                "idle: {} holds {:.1} MB with {} idle {} connections ({:.1} MB before)",
                r.name,
                idle.rss_idle_kb as f64 / 1024.0,
                idle.connections,
                spec.protocol.idle_kind(),
                idle.rss_before_kb as f64 / 1024.0
            );
            results[i].idle = Some(idle);
        }
    }
    if !spec.flip && spec.syscalls {
        count_syscalls(&spec, &running, dir.path(), &mut results, &mut notes).await?;
    }
    drop(running);
    drop((green, blue));
    Ok(CompareReport {
        scenario: if spec.flip { "flip" } else { "throughput" }.into(),
        protocol: spec.protocol,
        streams: spec.protocol.connections(spec.connections, spec.streams).1,
        connections: spec.connections,
        duration_s: spec.duration.as_secs_f64(),
        rounds,
        access_log: spec.access_log.then(|| {
            spec.access_format
                .clone()
                .unwrap_or_else(|| "default".into())
        }),
        request_ids: spec.request_ids,
        targets: results,
        notes,
    })
}

/// One more run per target with strace attached (or a note when strace is missing or cannot
/// attach: the other figures stand without it).
async fn count_syscalls(
    spec: &CompareSpec,
    running: &[Running],
    dir: &std::path::Path,
    results: &mut [TargetResult],
    notes: &mut Vec<String>,
) -> anyhow::Result<()> {
    let Some(strace) = targets::which("strace") else {
        let note = "strace is not installed: no system calls per request (apt-get install strace)";
        eprintln!("note: {note}");
        notes.push(note.into());
        return Ok(());
    };
    for (i, r) in running.iter().enumerate() {
        if !spec.warmup.is_zero() {
            load::run(load_spec(spec, r, spec.warmup)).await?;
        }
        match syscalls::measure(&strace, dir, r, load_spec(spec, r, spec.duration)).await {
            Ok(s) => {
                eprintln!(
                    "syscalls: {} {:.2} per request ({}) over {} requests",
                    r.name,
                    s.per_request(),
                    s.top(3),
                    s.requests
                );
                results[i].syscalls = Some(s);
            }
            Err(e) => {
                let note = format!("no system call count for {}: {e:#}", r.name);
                eprintln!("note: {note}");
                notes.push(note);
            }
        }
    }
    Ok(())
}

fn progress_summary(round: usize, rounds: usize, name: &str, r: &RunResult) -> String {
    let l = &r.load;
    let mut s = format!(
        "round {round}/{rounds} {name:<10} {:>9.0} req/s  p50 {:>8}  p99 {:>8}  failed {}",
        l.rps,
        crate::duration::human_us(l.latency_us.p50),
        crate::duration::human_us(l.latency_us.p99),
        l.errors.total,
    );
    if let Some(f) = &l.flips {
        s.push_str(&format!(
            "  conns closed {}  worst p99 after flip {:.2}x steady",
            l.connections_closed_by_server, f.worst_p99_ratio
        ));
    } else {
        s.push_str(&format!(
            "  cpu {:.1}µs/req ({:.1} user)  loadgen {:.2} cores  machine {:.1}µs/req",
            r.cpu_us_per_req, r.cpu_user_us_per_req, r.loadgen_cores, r.machine_us_per_req
        ));
    }
    s
}

fn load_spec(spec: &CompareSpec, r: &Running, duration: Duration) -> LoadSpec {
    let mut l = LoadSpec::new(Target::local(r.addr, "/"));
    let (connections, streams) = spec.protocol.connections(spec.connections, spec.streams);
    l.connections = connections;
    l.streams = streams;
    l.h2 = spec.protocol.h2();
    l.tls = r.dial.tls.clone();
    l.duration = Some(duration);
    l.by_header = Some(X_COLOUR.clone());
    l
}

fn per_request_us(cpu: Duration, requests: u64) -> f64 {
    if requests == 0 {
        0.0
    } else {
        cpu.as_secs_f64() * 1e6 / requests as f64
    }
}

async fn throughput_run(
    spec: &CompareSpec,
    r: &Running,
    upstream_pid: u32,
    round: usize,
) -> anyhow::Result<RunResult> {
    if !spec.warmup.is_zero() {
        load::run(load_spec(spec, r, spec.warmup)).await?;
    }
    let me = std::process::id();
    let (cpu0, up0, me0, box0, t0) = (
        procs::cpu_usage(r.pid),
        procs::cpu_time(upstream_pid),
        procs::own_cpu_time(me),
        procs::machine_busy(),
        Instant::now(),
    );
    let report = load::run(load_spec(spec, r, spec.duration)).await?;
    let wall = t0.elapsed();
    let cpu = procs::cpu_usage(r.pid).since(&cpu0);
    let up = procs::cpu_time(upstream_pid).saturating_sub(up0);
    let mine = procs::own_cpu_time(me).saturating_sub(me0);
    let machine = procs::machine_busy().saturating_sub(box0);
    Ok(RunResult {
        round,
        cpu_us_per_req: per_request_us(cpu.total(), report.requests),
        cpu_user_us_per_req: per_request_us(cpu.user, report.requests),
        upstream_cpu_us_per_req: per_request_us(up, report.requests),
        loadgen_cores: mine.as_secs_f64() / wall.as_secs_f64().max(1e-9),
        peak_rss_kb: procs::memory_kb(r.pid, "VmHWM"),
        machine_us_per_req: per_request_us(machine, report.requests),
        load: report,
    })
}

/// Flips to each colour once, retrying for a while, so that every colour is known healthy
/// (Switchyard refuses a switch to an unhealthy colour) and the run starts on `colours[0]`.
async fn settle_colours(flipper: &Flipper, colours: &[&str]) -> anyhow::Result<()> {
    for c in colours.iter().rev() {
        let started = Instant::now();
        loop {
            match flipper.flip(c).await {
                Ok(()) => break,
                Err(e) if started.elapsed() > Duration::from_secs(15) => {
                    return Err(e.context(format!("cannot flip to {c}")));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }
    Ok(())
}

async fn flip_run(spec: &CompareSpec, r: &Running, round: usize) -> anyhow::Result<RunResult> {
    let flipper = r
        .flipper
        .clone()
        .with_context(|| format!("{} cannot flip", r.name))?;
    let colours = ["green", "blue"];
    settle_colours(&flipper, &colours).await?;
    if !spec.warmup.is_zero() {
        load::run(load_spec(spec, r, spec.warmup)).await?;
    }
    let mut l = load_spec(spec, r, spec.duration);
    // A third of the run is steady (no flip yet); flips follow every `flip_every`.
    l.flip = Some(FlipPlan {
        every: spec.flip_every,
        start: (spec.duration / 3).max(spec.flip_every),
        window: Duration::from_secs(1),
        colours: colours.iter().map(|c| c.to_string()).collect(),
        flipper,
    });
    let report = load::run(l).await?;
    Ok(RunResult {
        round,
        cpu_us_per_req: 0.0,
        cpu_user_us_per_req: 0.0,
        upstream_cpu_us_per_req: 0.0,
        loadgen_cores: 0.0,
        peak_rss_kb: procs::memory_kb(r.pid, "VmHWM"),
        machine_us_per_req: 0.0,
        load: report,
    })
}
