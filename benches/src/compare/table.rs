//! The comparison as markdown: medians over the rounds, each with its ratio to nginx, system
//! calls per request when counted, and the project's targets for Switchyard (set in issue 9,
//! stated in docs/benchmarks.md, "Targets") marked met or missed.

use std::fmt::Write as _;

use super::{CompareReport, Protocol, RequestIds, RunResult, TargetResult};
use crate::duration::human_us;

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Medians of one target's runs.
#[derive(Debug, Clone, Copy, Default)]
struct Summary {
    rps: f64,
    p50: f64,
    p99: f64,
    cpu: f64,
    cpu_user: f64,
    upstream_cpu: f64,
    loadgen: f64,
    machine: f64,
    rss_mb: f64,
    failed: u64,
    closed: u64,
}

fn summary(t: &TargetResult) -> Summary {
    let m = |f: &dyn Fn(&super::RunResult) -> f64| median(t.runs.iter().map(f).collect());
    Summary {
        rps: m(&|r| r.load.rps),
        p50: m(&|r| r.load.latency_us.p50 as f64),
        p99: m(&|r| r.load.latency_us.p99 as f64),
        cpu: m(&|r| r.cpu_us_per_req),
        cpu_user: m(&|r| r.cpu_user_us_per_req),
        upstream_cpu: m(&|r| r.upstream_cpu_us_per_req),
        loadgen: m(&|r| r.loadgen_cores),
        machine: m(&|r| r.machine_us_per_req),
        rss_mb: t.runs.iter().map(|r| r.peak_rss_kb).max().unwrap_or(0) as f64 / 1024.0,
        failed: t.runs.iter().map(|r| r.load.errors.total).sum(),
        closed: t
            .runs
            .iter()
            .map(|r| r.load.connections_closed_by_server)
            .sum(),
    }
}

/// The median over rounds of `f(target) / f(nginx)` for runs of the same round: each ratio
/// compares two runs made a few seconds apart, so slow drifts of a shared machine cancel out.
fn paired(t: &TargetResult, nginx: Option<&TargetResult>, f: fn(&RunResult) -> f64) -> Option<f64> {
    let n = nginx?;
    let ratios: Vec<f64> = t
        .runs
        .iter()
        .filter_map(|r| {
            let b = n.runs.iter().find(|x| x.round == r.round)?;
            let (a, b) = (f(r), f(b));
            (a > 0.0 && b > 0.0).then(|| a / b)
        })
        .collect();
    (!ratios.is_empty()).then(|| median(ratios))
}

fn show(r: Option<f64>) -> String {
    r.map_or_else(|| "—".into(), |r| format!("{r:.2}"))
}

fn rps(r: &RunResult) -> f64 {
    r.load.rps
}

fn p99(r: &RunResult) -> f64 {
    r.load.latency_us.p99 as f64
}

fn cpu(r: &RunResult) -> f64 {
    r.cpu_us_per_req
}

fn us(v: f64) -> String {
    human_us(v.round() as u64)
}

/// The sentence on access logs for a table's heading.
fn access_logs(format: Option<&str>) -> String {
    match format {
        None => "Access logs off on both.".into(),
        Some("default") => "Access logs on: Switchyard's default text line and nginx's \
                            `combined`, each to a file, buffered."
            .into(),
        Some(f) => format!(
            "Access logs on: Switchyard's `{f}` line (`[log] access_format`) and nginx's \
             `combined`, each to a file, buffered."
        ),
    }
}

/// The sentence on request ids for a table's heading.
fn request_ids(ids: RequestIds) -> &'static str {
    match ids {
        RequestIds::Both => {
            "Switchyard and nginx both add an `X-Request-Id` upstream and echo it \
             (Switchyard's default; nginx's `$request_id`): each sends the upstream the same \
             fields (HAProxy adds none).\n\n"
        }
        RequestIds::Switchyard => {
            "Only Switchyard adds an `X-Request-Id` (each proxy as it ships): its upstream and \
             the load generator parse one field more than nginx's.\n\n"
        }
        RequestIds::None => {
            "Neither proxy adds an `X-Request-Id` (Switchyard's `generate_request_id = \
             false`).\n\n"
        }
    }
}

/// The report as markdown tables (and the target verdicts).
pub fn markdown(r: &CompareReport) -> String {
    if r.scenario == "flip" {
        return flip_markdown(r);
    }
    let mut out = String::new();
    let nginx_t = r.targets.iter().find(|t| t.name == "nginx");
    let nginx = nginx_t.map(summary);
    let _ = writeln!(
        out,
        "{}: {}, {} rounds of {:.0} s per target. Values are medians over the rounds; \
         each × nginx is the median of the per-round ratios; CPU is user+system of the whole \
         process tree (user share in brackets); peak RSS is the largest VmHWM. {}\n",
        r.protocol.title(),
        r.protocol.describe(r.connections, r.streams),
        r.rounds,
        r.duration_s,
        access_logs(r.access_log.as_deref()),
    );
    out.push_str(request_ids(r.request_ids));
    out.push_str("| target | requests/s | × nginx | p50 | p99 | × nginx | proxy CPU µs/req | × nginx | peak RSS MB | × nginx | failed |\n");
    out.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for t in &r.targets {
        let s = summary(t);
        let direct = t.name == "direct";
        let name = if direct {
            "upstream directly (ceiling)".to_string()
        } else {
            t.name.clone()
        };
        let dash = || "—".to_string();
        let rss_ratio = nginx
            .filter(|n| n.rss_mb > 0.0)
            .map(|n| s.rss_mb / n.rss_mb);
        let _ = writeln!(
            out,
            "| {name} | {:.0} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            s.rps,
            show(paired(t, nginx_t, rps)),
            us(s.p50),
            us(s.p99),
            show(paired(t, nginx_t, p99)),
            if direct {
                dash()
            } else {
                format!("{:.1} ({:.1})", s.cpu, s.cpu_user)
            },
            if direct {
                dash()
            } else {
                show(paired(t, nginx_t, cpu))
            },
            if direct {
                dash()
            } else {
                format!("{:.1}", s.rss_mb)
            },
            if direct { dash() } else { show(rss_ratio) },
            s.failed,
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Upstream CPU µs/req (median): {}; load generator cores used (median): {}\n",
        r.targets
            .iter()
            .map(|t| format!("{} {:.1}", t.name, summary(t).upstream_cpu))
            .collect::<Vec<_>>()
            .join(", "),
        r.targets
            .iter()
            .map(|t| format!("{} {:.2}", t.name, summary(t).loadgen))
            .collect::<Vec<_>>()
            .join(", "),
    );
    if r.targets.iter().any(|t| summary(t).machine > 0.0) {
        let _ = writeln!(
            out,
            "Machine CPU µs/req, all cores busy (median; × nginx, paired): {}. Beside the \
             proxy, the upstream and the load generator this holds what no process is charged \
             for, such as the kernel writing the access logs to disk.\n",
            r.targets
                .iter()
                .map(|t| format!(
                    "{} {:.1} ({})",
                    t.name,
                    summary(t).machine,
                    show(paired(t, nginx_t, |x| x.machine_us_per_req))
                ))
                .collect::<Vec<_>>()
                .join(", "),
        );
    }
    let idle: Vec<&TargetResult> = r.targets.iter().filter(|t| t.idle.is_some()).collect();
    if let Some(n) = idle.first().and_then(|t| t.idle).map(|i| i.connections) {
        let kind = r.protocol.idle_kind();
        let _ = writeln!(
            out,
            "| target | RSS before | RSS with {n} idle {kind} connections | per connection | RSS after closing them |"
        );
        out.push_str("|---|---:|---:|---:|---:|\n");
        for t in &idle {
            if let Some(i) = t.idle {
                let per = (i.rss_idle_kb as f64 - i.rss_before_kb as f64) / n.max(1) as f64;
                let _ = writeln!(
                    out,
                    "| {} | {:.1} MB | {:.1} MB | {:.1} kB | {} |",
                    t.name,
                    i.rss_before_kb as f64 / 1024.0,
                    i.rss_idle_kb as f64 / 1024.0,
                    per,
                    i.rss_closed_kb.map_or_else(
                        || "—".to_string(),
                        |kb| format!("{:.1} MB", kb as f64 / 1024.0)
                    ),
                );
            }
        }
        let _ = writeln!(out);
    }
    out.push_str(&syscalls_table(r));
    out.push_str(&verdicts(r, nginx_t));
    for n in &r.notes {
        let _ = writeln!(out, "\nNote: {n}");
    }
    out
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}

fn verdicts(r: &CompareReport, nginx: Option<&TargetResult>) -> String {
    let mut out = String::new();
    let Some(sy) = r.targets.iter().find(|t| t.name == "switchyard") else {
        return out;
    };
    let s = summary(sy);
    let _ = writeln!(
        out,
        "Switchyard against the project's targets ({} rows; set in issue 9, stated in \
         docs/benchmarks.md, \"Targets\"):",
        r.protocol.title()
    );
    if let Some(n) = nginx {
        let ns = summary(n);
        if let Some(cpu) = paired(sy, Some(n), cpu) {
            let _ = writeln!(
                out,
                "- proxy CPU per request ≤ 1.0× nginx (aim 0.8×): {cpu:.3}× ({:.1} vs {:.1} µs) — {}{}",
                s.cpu,
                ns.cpu,
                verdict(cpu <= 1.0),
                if cpu <= 0.8 { ", aim met" } else { "" }
            );
        }
        if let Some(rps) = paired(sy, Some(n), rps) {
            let _ = writeln!(
                out,
                "- requests/s ≥ 1.0× nginx (aim 1.1×): {rps:.3}× ({:.0} vs {:.0}) — {}{}",
                s.rps,
                ns.rps,
                verdict(rps >= 1.0),
                if rps >= 1.1 { ", aim met" } else { "" }
            );
        }
        if let Some(p99) = paired(sy, Some(n), p99) {
            let _ = writeln!(
                out,
                "- p99 ≤ nginx: {p99:.3}× ({} vs {}) — {}",
                us(s.p99),
                us(ns.p99),
                verdict(p99 <= 1.0)
            );
        }
    }
    if let Some(i) = sy.idle.filter(|_| r.protocol == Protocol::Http1) {
        let per_conn_kb =
            i.rss_idle_kb.saturating_sub(i.rss_before_kb) as f64 / i.connections.max(1) as f64;
        let _ = writeln!(
            out,
            "- ≤ 4 kB per idle HTTP/1 keep-alive connection: {per_conn_kb:.1} kB ({} connections, RSS {:.1} MB) — {}",
            i.connections,
            i.rss_idle_kb as f64 / 1024.0,
            verdict(per_conn_kb <= 4.0)
        );
    }
    out
}

/// System calls per request, for the targets that were traced.
fn syscalls_table(r: &CompareReport) -> String {
    let mut out = String::new();
    let traced: Vec<_> = r
        .targets
        .iter()
        .filter_map(|t| t.syscalls.as_ref().map(|s| (t, s)))
        .collect();
    if traced.is_empty() {
        return out;
    }
    let _ = writeln!(
        out,
        "System calls per request: `strace -c -f` attached to each target's processes for one \
         more run of {:.0} s after the rounds (strace slows the target, so that run gives counts \
         only).\n",
        r.duration_s
    );
    out.push_str("| target | system calls per request | the most frequent, per request | requests traced |\n");
    out.push_str("|---|---:|---|---:|\n");
    for (t, s) in traced {
        let _ = writeln!(
            out,
            "| {} | {:.2} | {} | {} |",
            t.name,
            s.per_request(),
            s.top(4),
            s.requests
        );
    }
    let _ = writeln!(out);
    out
}

fn flip_markdown(r: &CompareReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}: {}, {} rounds of {:.0} s per target, a flip every second after the first third of each run\n",
        r.protocol.title(),
        r.protocol.describe(r.connections, r.streams),
        r.rounds,
        r.duration_s
    );
    out.push_str("| target | requests | failed | client conns closed | old-colour answers after the flip returned | steady p99 | p99 in the second after a flip: median × steady | flips ≤ 1.2× | worst | × steady |\n");
    out.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    let mut sy_line = String::new();
    for t in &r.targets {
        let s = summary(t);
        let requests: u64 = t.runs.iter().map(|r| r.load.requests).sum();
        let flips: Vec<_> = t
            .runs
            .iter()
            .filter_map(|r| r.load.flips.as_ref())
            .collect();
        let stale: u64 = flips.iter().filter_map(|f| f.stale_answers).sum();
        let steady = median(flips.iter().map(|f| f.steady_p99_us as f64).collect());
        let (worst, worst_ratio) = flips
            .iter()
            .map(|f| (f.worst_p99_us, f.worst_p99_ratio))
            .fold((0, 0.0f64), |a, b| if b.1 > a.1 { b } else { a });
        let ratios: Vec<f64> = flips
            .iter()
            .flat_map(|f| f.flips.iter().map(|x| x.p99_ratio))
            .collect();
        let within = ratios.iter().filter(|r| **r <= 1.2).count();
        let n_flips = ratios.len();
        let median_ratio = median(ratios);
        let flip_errors: usize = flips
            .iter()
            .map(|f| f.flips.iter().filter(|x| x.error.is_some()).count())
            .sum();
        let _ = writeln!(
            out,
            "| {}{} | {requests} | {} | {} | {stale} | {} | {median_ratio:.2} | {within} of {n_flips} | {} | {:.2} |",
            t.name,
            if flip_errors > 0 {
                format!(" ({flip_errors} flips failed)")
            } else {
                String::new()
            },
            s.failed,
            s.closed,
            us(steady),
            human_us(worst),
            worst_ratio
        );
        if t.name == "switchyard" {
            sy_line = format!(
                "- flipping every second at full load: {} failed requests — {}; p99 in the second after a flip ≤ 1.2× steady: {within} of {n_flips} flips (median {median_ratio:.2}×, worst {worst_ratio:.2}×) — {}\n",
                s.failed,
                verdict(s.failed == 0),
                verdict(worst_ratio <= 1.2)
            );
        }
    }
    let _ = writeln!(out);
    out.push_str(&sy_line);
    for n in &r.notes {
        let _ = writeln!(out, "\nNote: {n}");
    }
    out
}
