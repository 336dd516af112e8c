//! Child processes and what `/proc` says about them: a guard that stops a child (and its
//! descendants, such as nginx's workers) when dropped, CPU time and memory of a process tree,
//! and free loopback ports.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// A running child process, stopped when the guard drops: SIGTERM, up to `GRACE` to exit,
/// then SIGKILL, for the child and every descendant it had.
#[derive(Debug)]
pub struct ChildGuard {
    name: String,
    child: Child,
}

/// How long a child may take to exit after SIGTERM.
const GRACE: Duration = Duration::from_secs(3);

impl ChildGuard {
    /// Spawns `cmd`, naming the child `name` in messages.
    pub fn spawn(name: &str, cmd: &mut Command) -> anyhow::Result<ChildGuard> {
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {name} ({cmd:?})"))?;
        Ok(ChildGuard {
            name: name.to_string(),
            child,
        })
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The child itself (for its pipes).
    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }

    /// An error when the child has exited.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("{} exited early ({status})", self.name);
        }
        Ok(())
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let root = self.child.id();
        let family = descendants(root);
        signal(root, rustix::process::Signal::TERM);
        let started = Instant::now();
        let mut exited = false;
        while started.elapsed() < GRACE {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                exited = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        if !exited {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        for pid in family {
            signal(pid, rustix::process::Signal::KILL);
        }
    }
}

fn signal(pid: u32, sig: rustix::process::Signal) {
    let pid = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw);
    if let Some(pid) = pid {
        let _ = rustix::process::kill_process(pid, sig);
    }
}

/// What `/proc/PID/stat` says about CPU time, in clock ticks.
#[derive(Debug, Clone, Copy, Default)]
struct Stat {
    ppid: u32,
    utime: u64,
    stime: u64,
    cutime: u64,
    cstime: u64,
}

fn read_stat(pid: u32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

/// Parses `/proc/PID/stat` (the command name may hold spaces and parentheses).
fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields after the name: state(3) ppid(4) ... utime(14) stime(15) cutime(16) cstime(17).
    let n = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok());
    Some(Stat {
        ppid: u32::try_from(n(1)?).ok()?,
        utime: n(11)?,
        stime: n(12)?,
        cutime: n(13)?,
        cstime: n(14)?,
    })
}

/// Every live descendant of `root` (children, their children, …).
pub fn descendants(root: u32) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            if let Some(st) = read_stat(pid) {
                children.entry(st.ppid).or_default().push(pid);
            }
        }
    }
    let mut out = Vec::new();
    let mut todo = vec![root];
    while let Some(p) = todo.pop() {
        if let Some(kids) = children.get(&p) {
            for k in kids {
                if *k != root && !out.contains(k) && out.len() < 10_000 {
                    out.push(*k);
                    todo.push(*k);
                }
            }
        }
    }
    out
}

/// CPU time of a process tree, split into user and system time.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Cpu {
    /// Time in user space.
    pub user: Duration,
    /// Time in the kernel on the processes' behalf.
    pub system: Duration,
}

impl Cpu {
    /// User plus system time.
    pub fn total(&self) -> Duration {
        self.user + self.system
    }

    /// The time used between `earlier` and `self`.
    pub fn since(&self, earlier: &Cpu) -> Cpu {
        Cpu {
            user: self.user.saturating_sub(earlier.user),
            system: self.system.saturating_sub(earlier.system),
        }
    }
}

/// CPU time used so far by `root` and its live descendants, plus what its reaped children
/// used.
pub fn cpu_usage(root: u32) -> Cpu {
    let ticks = rustix::param::clock_ticks_per_second().max(1) as f64;
    let (mut user, mut system) = (0u64, 0u64);
    if let Some(st) = read_stat(root) {
        user += st.utime + st.cutime;
        system += st.stime + st.cstime;
    }
    for pid in descendants(root) {
        if let Some(st) = read_stat(pid) {
            user += st.utime;
            system += st.stime;
        }
    }
    Cpu {
        user: Duration::from_secs_f64(user as f64 / ticks),
        system: Duration::from_secs_f64(system as f64 / ticks),
    }
}

/// CPU time (user + system) used so far by `root` and its live descendants, plus what its
/// reaped children used.
pub fn cpu_time(root: u32) -> Duration {
    cpu_usage(root).total()
}

/// CPU time (user + system) of the process `pid` itself (all its threads), without children.
pub fn own_cpu_time(pid: u32) -> Duration {
    let ticks = rustix::param::clock_ticks_per_second().max(1);
    let total = read_stat(pid).map_or(0, |st| st.utime + st.stime);
    Duration::from_secs_f64(total as f64 / ticks as f64)
}

/// CPU time the whole machine has spent busy so far, summed over its cores: everything in
/// `/proc/stat`'s `cpu` line but idle and I/O wait (user, system, interrupts, softirqs,
/// steal). Includes the kernel's own threads (writeback of the access logs, for one), which no
/// process's times show. Zero where `/proc/stat` cannot be read.
pub fn machine_busy() -> Duration {
    let ticks = rustix::param::clock_ticks_per_second().max(1) as f64;
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    Duration::from_secs_f64(busy_ticks(&text) as f64 / ticks)
}

/// The busy ticks of `/proc/stat`'s first line (`cpu user nice system idle iowait irq softirq
/// steal guest guest_nice`); guest time is already counted in user time.
fn busy_ticks(stat: &str) -> u64 {
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return 0;
    };
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    v.iter()
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, x)| x)
        .sum()
}

/// The sum of a `/proc/PID/status` field in kB (`VmRSS`, `VmHWM`) over `root` and its
/// descendants.
pub fn memory_kb(root: u32, field: &str) -> u64 {
    std::iter::once(root)
        .chain(descendants(root))
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/status")).ok())
        .filter_map(|text| status_field_kb(&text, field))
        .sum()
}

fn status_field_kb(text: &str, field: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// A loopback address with a port that was free a moment ago (bound, read, closed).
pub fn free_port() -> anyhow::Result<SocketAddr> {
    let l = TcpListener::bind("127.0.0.1:0").context("cannot bind 127.0.0.1:0")?;
    Ok(l.local_addr()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_ticks_leave_out_idle_and_iowait() {
        let stat = "cpu  100 2 30 5000 40 6 7 8 9 0\ncpu0 50 1 15 2500 20 3 3 4 0 0\nintr 1 2\n";
        // user + nice + system + irq + softirq + steal; guest is inside user already.
        assert_eq!(busy_ticks(stat), 100 + 2 + 30 + 6 + 7 + 8);
        assert_eq!(busy_ticks("intr 1 2\n"), 0);
    }

    #[test]
    fn parses_stat_with_odd_names() {
        let line = "42 (we ird) name)) S 7 42 42 0 -1 4194560 100 0 0 0 150 25 3 4 20 0 1 0";
        let st = parse_stat(line).expect("parses");
        assert_eq!(st.ppid, 7);
        assert_eq!((st.utime, st.stime, st.cutime, st.cstime), (150, 25, 3, 4));
    }

    #[test]
    fn reads_own_process() {
        let me = std::process::id();
        assert!(memory_kb(me, "VmRSS") > 0);
        assert!(memory_kb(me, "VmHWM") >= memory_kb(me, "VmRSS") / 2);
        let _ = cpu_time(me);
        assert!(status_field_kb("VmRSS:\t  1234 kB\n", "VmRSS") == Some(1234));
    }
}
