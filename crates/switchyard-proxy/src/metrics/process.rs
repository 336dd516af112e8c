//! Process metrics, read from `/proc/self` at scrape time: resident memory, CPU time, open
//! file descriptors and their limit, start time, and the build.

use std::fmt;

use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Unit;

use super::exposition::family;

/// What `/proc/self/stat` says, in seconds and bytes.
struct Stat {
    cpu_seconds: f64,
    start_seconds: f64,
    rss_bytes: f64,
}

fn stat() -> Option<Stat> {
    let text = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name may hold spaces: the fields are what follows its closing parenthesis.
    let (_, rest) = text.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| fields.get(n).and_then(|v| v.parse::<f64>().ok());
    let ticks = rustix::param::clock_ticks_per_second() as f64;
    let page = rustix::param::page_size() as f64;
    // Fields 14 (utime), 15 (stime), 22 (starttime) and 24 (rss) of the line; the first two
    // fields (pid, comm) are before `rest`.
    let utime = field(11)?;
    let stime = field(12)?;
    let start = field(19)?;
    let rss = field(21)?;
    let boot = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse::<f64>().ok())?;
    Some(Stat {
        cpu_seconds: (utime + stime) / ticks,
        start_seconds: boot + start / ticks,
        rss_bytes: rss * page,
    })
}

fn open_fds() -> Option<f64> {
    std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|d| d.count() as f64)
}

fn max_fds() -> Option<f64> {
    rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .map(|n| n as f64)
}

/// Writes the process metrics and `switchyard_build_info`.
pub(super) fn encode(enc: &mut DescriptorEncoder) -> fmt::Result {
    let none: [(&str, &str); 0] = [];
    family(
        enc,
        "switchyard_build_info",
        "Always 1; the version of the running binary is in the label.",
        None,
        [(
            [("version", env!("CARGO_PKG_VERSION"))],
            ConstGauge::new(1i64),
        )],
    )?;
    if let Some(s) = stat() {
        family(
            enc,
            "process_cpu",
            "User and system CPU time spent.",
            Some(&Unit::Seconds),
            [(none, ConstCounter::new(s.cpu_seconds))],
        )?;
        family(
            enc,
            "process_resident_memory_bytes",
            "Resident memory size.",
            None,
            [(none, ConstGauge::new(s.rss_bytes))],
        )?;
        family(
            enc,
            "process_start_time_seconds",
            "Start time of the process since the Unix epoch.",
            None,
            [(none, ConstGauge::new(s.start_seconds))],
        )?;
    }
    if let Some(n) = open_fds() {
        family(
            enc,
            "process_open_fds",
            "Open file descriptors.",
            None,
            [(none, ConstGauge::new(n))],
        )?;
    }
    if let Some(n) = max_fds() {
        family(
            enc,
            "process_max_fds",
            "The limit on open file descriptors.",
            None,
            [(none, ConstGauge::new(n))],
        )?;
    }
    Ok(())
}
