//! A load run's report: built from the merged records and the flips, printed as a table for
//! people or as JSON for machines.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::IsTerminal as _;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::LoadSpec;
use super::record::{Merged, Recorder, new_histogram};
use crate::duration::human_us;
use crate::flip::FlipEvent;

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Latency {
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest.
    pub max: u64,
    /// Mean.
    pub mean: f64,
}

/// Failed requests by kind.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Errors {
    /// No connection could be made.
    pub connect: u64,
    /// Reset or closed after the request was sent.
    pub closed: u64,
    /// No complete answer within the timeout.
    pub timeout: u64,
    /// 4xx answers.
    pub status_4xx: u64,
    /// 5xx answers.
    pub status_5xx: u64,
    /// All of the above.
    pub total: u64,
}

/// Answers counted by the value of one response header.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ByHeader {
    /// The header's name.
    pub name: String,
    /// Answers per value.
    pub counts: BTreeMap<String, u64>,
    /// Answers without the header (failed requests included).
    pub missing: u64,
}

/// One flip and the second after it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FlipStat {
    /// When the flip call started, in seconds after the measurement started.
    pub at_s: f64,
    /// The colour flipped to.
    pub to: String,
    /// How long the flip call took, in ms.
    pub call_ms: f64,
    /// Why the flip call failed, if it did.
    pub error: Option<String>,
    /// Requests started within the window after the flip.
    pub requests: u64,
    /// Of those, the failed ones.
    pub failed: u64,
    /// Their p99 latency in µs.
    pub p99_us: u64,
    /// `p99_us` over the steady p99.
    pub p99_ratio: f64,
    /// Successful answers to requests that started after the flip call returned and ended
    /// before the next flip began, yet came from another colour than `to` (needs
    /// `--by-header`).
    pub stale_answers: Option<u64>,
    /// How long after the flip call returned the last of those requests started, in ms.
    pub stale_latest_ms: Option<f64>,
}

/// The flips of a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FlipReport {
    /// Requests outside every post-flip window.
    pub steady_requests: u64,
    /// Their p99 in µs.
    pub steady_p99_us: u64,
    /// Each flip.
    pub flips: Vec<FlipStat>,
    /// Failed requests within the post-flip windows.
    pub failed_after_flips: u64,
    /// The largest post-flip p99 in µs.
    pub worst_p99_us: u64,
    /// The largest `p99_ratio`.
    pub worst_p99_ratio: f64,
    /// The sum of `stale_answers`.
    pub stale_answers: Option<u64>,
}

/// What a load run measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// The URL loaded.
    pub url: String,
    /// `HTTP/1.1` or `HTTP/2`, each with ` over TLS` when it was.
    pub protocol: String,
    /// Connections.
    pub connections: usize,
    /// Concurrent streams per connection (1 for HTTP/1.1).
    pub streams: usize,
    /// `closed` or `open` loop.
    pub mode: String,
    /// The open loop's target rate.
    pub rate: Option<f64>,
    /// The measured time in seconds (warm-up excluded).
    pub duration_s: f64,
    /// Requests recorded (warm-up excluded), failed ones included.
    pub requests: u64,
    /// Requests answered with 1xx–3xx.
    pub ok: u64,
    /// Requests still waiting for their answer when the duration ended: abandoned, and not
    /// counted in `requests`.
    #[serde(default)]
    pub unfinished: u64,
    /// Recorded requests per second.
    pub rps: f64,
    /// Latency of every recorded request, in µs.
    pub latency_us: Latency,
    /// Failed requests by kind.
    pub errors: Errors,
    /// Connections opened.
    pub connections_opened: u64,
    /// Connections the server closed.
    pub connections_closed_by_server: u64,
    /// Answers by header value (`--by-header`).
    pub by_header: Option<ByHeader>,
    /// The flips (`--flip-every`).
    pub flips: Option<FlipReport>,
}

fn latency(h: &hdrhistogram::Histogram<u64>) -> Latency {
    if h.is_empty() {
        return Latency::default();
    }
    Latency {
        p50: h.value_at_quantile(0.50),
        p90: h.value_at_quantile(0.90),
        p99: h.value_at_quantile(0.99),
        p999: h.value_at_quantile(0.999),
        max: h.max(),
        mean: h.mean(),
    }
}

impl Report {
    /// Builds the report of a finished run.
    pub fn build(
        spec: &LoadSpec,
        t0: Instant,
        measure_from: Instant,
        merged: &Merged,
        flips: &[FlipEvent],
        unfinished: u64,
    ) -> Report {
        let total = &merged.total;
        let c = total.counts;
        let duration = total.last_end.map_or(Duration::ZERO, |e| {
            e.saturating_duration_since(measure_from)
        });
        let secs = duration.as_secs_f64();
        let requests = c.total();
        let by_header = spec.by_header.as_ref().map(|name| {
            let counts: BTreeMap<String, u64> = total.header_values.iter().cloned().collect();
            let seen: u64 = counts.values().sum();
            ByHeader {
                name: name.to_string(),
                counts,
                missing: requests.saturating_sub(seen),
            }
        });
        let flips = spec.flip.as_ref().map(|plan| {
            flip_report(
                t0,
                measure_from,
                plan.window,
                &merged.parts,
                flips,
                spec.by_header.is_some(),
            )
        });
        Report {
            url: spec.target.url.clone(),
            protocol: match (spec.h2, spec.tls.is_some()) {
                (false, false) => "HTTP/1.1",
                (true, false) => "HTTP/2",
                (false, true) => "HTTP/1.1 over TLS",
                (true, true) => "HTTP/2 over TLS",
            }
            .to_string(),
            connections: spec.connections,
            streams: if spec.h2 { spec.streams.max(1) } else { 1 },
            mode: if spec.rate.is_some() {
                "open"
            } else {
                "closed"
            }
            .to_string(),
            rate: spec.rate,
            duration_s: secs,
            requests,
            ok: c.ok,
            unfinished,
            rps: if secs > 0.0 {
                requests as f64 / secs
            } else {
                0.0
            },
            latency_us: latency(&total.hist),
            errors: Errors {
                connect: c.connect,
                closed: c.closed,
                timeout: c.timeout,
                status_4xx: c.status_4xx,
                status_5xx: c.status_5xx,
                total: c.failed(),
            },
            connections_opened: total.conns_opened,
            connections_closed_by_server: total.conns_closed_by_server,
            by_header,
            flips,
        }
    }

    /// The report as an aligned text table.
    pub fn human(&self) -> String {
        let mut out = String::new();
        let l = &self.latency_us;
        let e = &self.errors;
        let mode = match self.rate {
            Some(r) => format!("open loop at {r:.0} req/s"),
            None => "closed loop".to_string(),
        };
        let streams = if self.streams > 1 {
            format!(" x {} streams", self.streams)
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "target       {} ({}, {} connections{streams}, {mode})",
            self.url, self.protocol, self.connections
        );
        let _ = writeln!(out, "duration     {:.2} s", self.duration_s);
        let unfinished = if self.unfinished > 0 {
            format!(", {} unfinished at the end (not counted)", self.unfinished)
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "requests     {} ({:.1} req/s), {} ok{unfinished}",
            self.requests, self.rps, self.ok
        );
        let _ = writeln!(
            out,
            "latency      p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
            human_us(l.p50),
            human_us(l.p90),
            human_us(l.p99),
            human_us(l.p999),
            human_us(l.max)
        );
        let _ = writeln!(
            out,
            "errors       {} (connect {}, reset/closed {}, timeout {}, 4xx {}, 5xx {})",
            e.total, e.connect, e.closed, e.timeout, e.status_4xx, e.status_5xx
        );
        let _ = writeln!(
            out,
            "connections  {} opened, {} closed by the server",
            self.connections_opened, self.connections_closed_by_server
        );
        if let Some(b) = &self.by_header {
            let total: u64 = b.counts.values().sum::<u64>() + b.missing;
            let mut line = format!("{:<12}", b.name);
            for (v, n) in &b.counts {
                let _ = write!(line, " {v} {n} ({:.1}%)", pct(*n, total));
            }
            if b.missing > 0 {
                let _ = write!(line, " (none) {}", b.missing);
            }
            let _ = writeln!(out, "{line}");
        }
        if let Some(f) = &self.flips {
            out.push_str(&flips_table(f));
        }
        out
    }
}

fn pct(n: u64, total: u64) -> f64 {
    if total == 0 {
        0.0
    } else {
        100.0 * n as f64 / total as f64
    }
}

fn flips_table(f: &FlipReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "flips        {} flips; steady p99 {} ({} requests); failed after flips {}; worst p99 after a flip {} ({:.2}x steady){}",
        f.flips.len(),
        human_us(f.steady_p99_us),
        f.steady_requests,
        f.failed_after_flips,
        human_us(f.worst_p99_us),
        f.worst_p99_ratio,
        f.stale_answers.map_or(String::new(), |s| format!(
            "; old-colour answers after a flip returned {s}"
        ))
    );
    let _ = writeln!(
        out,
        "  {:>3} {:>7} {:<8} {:>8} {:>9} {:>7} {:>9} {:>7} {:>6}",
        "#", "at", "to", "call", "requests", "failed", "p99", "xsteady", "stale"
    );
    for (i, s) in f.flips.iter().enumerate() {
        let _ = writeln!(
            out,
            "  {:>3} {:>6.2}s {:<8} {:>6.1}ms {:>9} {:>7} {:>9} {:>7.2} {:>6}{}",
            i + 1,
            s.at_s,
            s.to,
            s.call_ms,
            s.requests,
            s.failed,
            human_us(s.p99_us),
            s.p99_ratio,
            s.stale_answers.map_or("-".to_string(), |n| n.to_string()),
            s.error
                .as_ref()
                .map_or(String::new(), |e| format!("  FLIP FAILED: {e}"))
        );
    }
    out
}

fn micros_since(t0: Instant, t: Instant) -> u64 {
    u64::try_from(t.saturating_duration_since(t0).as_micros()).unwrap_or(u64::MAX)
}

fn flip_report(
    t0: Instant,
    measure_from: Instant,
    window: Duration,
    parts: &[Recorder],
    events: &[FlipEvent],
    by_header: bool,
) -> FlipReport {
    let win = u64::try_from(window.as_micros()).unwrap_or(u64::MAX);
    let windows: Vec<(u64, u64)> = events
        .iter()
        .map(|e| {
            let s = micros_since(t0, e.sent);
            (s, s.saturating_add(win))
        })
        .collect();
    let in_any = |t: u64| windows.iter().any(|(a, b)| t >= *a && t < *b);
    let mut steady = new_histogram();
    for p in parts {
        for s in p.samples.iter().flatten() {
            if !in_any(u64::from(s.start_us)) {
                steady.saturating_record(u64::from(s.latency_us));
            }
        }
    }
    let steady_p99 = if steady.is_empty() {
        0
    } else {
        steady.value_at_quantile(0.99)
    };
    let mut flips = Vec::with_capacity(events.len());
    for (i, e) in events.iter().enumerate() {
        let (from, to) = windows[i];
        let returned = micros_since(t0, e.returned);
        let next = windows.get(i + 1).map_or(u64::MAX, |w| w.0);
        let mut hist = new_histogram();
        let (mut requests, mut failed, mut stale, mut latest) = (0u64, 0u64, 0u64, 0u64);
        for p in parts {
            for s in p.samples.iter().flatten() {
                let start = u64::from(s.start_us);
                if start >= from && start < to {
                    requests += 1;
                    failed += u64::from(!s.ok());
                    hist.saturating_record(u64::from(s.latency_us));
                }
                // Only requests that began after the flip returned and ended before the next
                // flip began must have been answered by `to`.
                let end = start + u64::from(s.latency_us);
                if by_header
                    && s.ok()
                    && start >= returned
                    && end < next
                    && p.header_of(s).is_some_and(|v| v != e.to)
                {
                    stale += 1;
                    latest = latest.max(start - returned);
                }
            }
        }
        let p99 = if hist.is_empty() {
            0
        } else {
            hist.value_at_quantile(0.99)
        };
        flips.push(FlipStat {
            at_s: e.sent.saturating_duration_since(measure_from).as_secs_f64(),
            to: e.to.clone(),
            call_ms: e.returned.saturating_duration_since(e.sent).as_secs_f64() * 1000.0,
            error: e.error.clone(),
            requests,
            failed,
            p99_us: p99,
            p99_ratio: ratio(p99, steady_p99),
            stale_answers: by_header.then_some(stale),
            stale_latest_ms: (stale > 0).then(|| latest as f64 / 1000.0),
        });
    }
    let worst = flips.iter().map(|f| f.p99_us).max().unwrap_or(0);
    FlipReport {
        steady_requests: steady.len(),
        steady_p99_us: steady_p99,
        failed_after_flips: flips.iter().map(|f| f.failed).sum(),
        worst_p99_us: worst,
        worst_p99_ratio: ratio(worst, steady_p99),
        stale_answers: by_header.then(|| flips.iter().filter_map(|f| f.stale_answers).sum()),
        flips,
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// Prints the progress line on stderr (rewritten in place on a terminal).
pub(crate) fn progress_line(elapsed: Duration, done: u64, last_second: u64, failed: u64) {
    let line = format!(
        "[{:>6.1}s] {done} requests, {last_second} req/s, {failed} failed",
        elapsed.as_secs_f64()
    );
    if std::io::stderr().is_terminal() {
        eprint!("\r\x1b[K{line}");
    } else {
        eprintln!("{line}");
    }
}

/// Clears the progress line (on a terminal).
pub(crate) fn clear_progress() {
    if std::io::stderr().is_terminal() {
        eprint!("\r\x1b[K");
    }
}
