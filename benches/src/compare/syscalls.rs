//! System calls per request (`compare --syscalls`): `strace -c -f` attached to every process
//! of a target (all their threads, and nginx's worker beside its master) for one extra run
//! after the measured rounds; its counts divided by the requests that run completed.
//!
//! strace stops the traced process at every system call, so the traced run is many times
//! slower: its throughput and latency are not reported, only the counts. With one request in
//! flight per HTTP/1 connection the calls per request hardly depend on speed; with HTTP/2 a
//! slowed proxy finds more frames per read, so its count is a lower bound.

use std::io::BufRead as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use super::targets::Running;
use crate::load::{self, LoadSpec};
use crate::procs::{self, ChildGuard};

/// How long strace may take to attach to every process.
const ATTACH_LIMIT: Duration = Duration::from_secs(10);

/// What strace counted over one run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SyscallResult {
    /// Requests the traced run completed.
    pub requests: u64,
    /// System calls counted, all kinds.
    pub calls: u64,
    /// Calls by name, the most frequent first.
    pub by_name: Vec<(String, u64)>,
}

impl SyscallResult {
    /// System calls per request.
    pub fn per_request(&self) -> f64 {
        self.calls as f64 / self.requests.max(1) as f64
    }

    /// The `n` most frequent calls, each per request: `recvfrom 2.00, sendto 1.00`.
    pub fn top(&self, n: usize) -> String {
        let per = |c: u64| c as f64 / self.requests.max(1) as f64;
        self.by_name
            .iter()
            .take(n)
            .map(|(name, c)| format!("{name} {:.2}", per(*c)))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Reads the table `strace -c` writes: the calls of every row, by name, most frequent first.
/// Columns are found from the heading, as the `usecs/call` and `errors` cells may be blank.
pub fn parse_summary(text: &str) -> Option<Vec<(String, u64)>> {
    let mut lines = text.lines();
    let heading = lines.find(|l| l.contains("calls") && l.contains("syscall"))?;
    let calls_end = heading.find(" calls")? + " calls".len();
    let calls_start = heading
        .find("usecs/call")
        .map(|i| i + "usecs/call".len())
        .or_else(|| heading.find("seconds").map(|i| i + "seconds".len()))?;
    let mut rows = Vec::new();
    for line in lines {
        if line.starts_with("---") || line.trim().is_empty() {
            continue;
        }
        let Some(name) = line.split_whitespace().last() else {
            continue;
        };
        if name == "total" {
            break;
        }
        let calls = line
            .get(calls_start..calls_end.min(line.len()))
            .and_then(|cell| cell.trim().parse::<u64>().ok())?;
        rows.push((name.to_string(), calls));
    }
    rows.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    Some(rows)
}

/// Runs `spec` against `r` with `strace` attached to its process tree.
pub async fn measure(
    strace: &Path,
    dir: &Path,
    r: &Running,
    spec: LoadSpec,
) -> anyhow::Result<SyscallResult> {
    let pids: Vec<u32> = std::iter::once(r.pid)
        .chain(procs::descendants(r.pid))
        .collect();
    let out = dir.join(format!("{}-strace.txt", r.name));
    let mut cmd = Command::new(strace);
    cmd.arg("-c").arg("-f").arg("-o").arg(&out);
    for pid in &pids {
        cmd.arg("-p").arg(pid.to_string());
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut guard = ChildGuard::spawn("strace", &mut cmd)?;
    let stderr = guard
        .child_mut()
        .stderr
        .take()
        .context("strace's stderr is not piped")?;
    // strace says `Process N attached` for every thread it attaches to; read that on a thread
    // of its own, to the end, so that strace never blocks on a full pipe.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut waiting = pids.clone();
    let mut said = Vec::new();
    let attached = tokio::time::timeout(ATTACH_LIMIT, async {
        while !waiting.is_empty() {
            let line = rx.recv().await?;
            waiting.retain(|pid| !line.contains(&format!("Process {pid} attached")));
            said.push(line);
        }
        Some(())
    })
    .await;
    if !matches!(attached, Ok(Some(()))) {
        bail!(
            "strace did not attach to {} (pids {pids:?}): {}",
            r.name,
            said.join(" / ")
        );
    }
    let report = load::run(spec).await?;
    // SIGTERM: strace detaches and writes its table.
    tokio::task::spawn_blocking(move || drop(guard)).await?;
    let _ = tokio::task::spawn_blocking(move || reader.join()).await;
    let text = std::fs::read_to_string(&out)
        .with_context(|| format!("strace wrote no table to {}", out.display()))?;
    let by_name =
        parse_summary(&text).with_context(|| format!("cannot read strace's table:\n{text}"))?;
    Ok(SyscallResult {
        requests: report.requests,
        calls: by_name.iter().map(|(_, c)| c).sum(),
        by_name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUMMARY: &str = "\
% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ----------------
 45.10    0.500000           2    200000           recvfrom
 30.00    0.300000           3    100000           writev
 20.00    0.200000           2    100000     12000 sendto
  4.90    0.049000          49      1000           epoll_wait
  0.00    0.000000                     3           futex
------ ----------- ----------- --------- --------- ----------------
100.00    1.049000           2    401003     12000 total";

    #[test]
    fn reads_the_calls_of_every_row() {
        let rows = parse_summary(SUMMARY).expect("a table");
        assert_eq!(
            rows,
            vec![
                ("recvfrom".to_string(), 200_000),
                ("sendto".to_string(), 100_000),
                ("writev".to_string(), 100_000),
                ("epoll_wait".to_string(), 1000),
                ("futex".to_string(), 3),
            ]
        );
        let r = SyscallResult {
            requests: 100_000,
            calls: rows.iter().map(|(_, c)| c).sum(),
            by_name: rows,
        };
        assert!((r.per_request() - 4.01003).abs() < 1e-9);
        assert_eq!(r.top(2), "recvfrom 2.00, sendto 1.00");
    }

    #[test]
    fn no_table_is_none() {
        assert!(parse_summary("strace: attach: ptrace(PTRACE_SEIZE, 1): EPERM").is_none());
        assert_eq!(
            parse_summary("% time     seconds  usecs/call     calls    errors syscall\n------\n"),
            Some(vec![])
        );
    }
}
