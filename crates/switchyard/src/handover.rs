//! Listening sockets handed over: taken from systemd socket activation or an old process at
//! start (`LISTEN_FDS`, `LISTEN_FDNAMES`), and handed to a new process on SIGUSR2.
//!
//! A binary upgrade, step by step: the running process starts the binary now on disk at the
//! path it was started from, with the same arguments, passing its listening sockets as
//! descriptors 3.. (`LISTEN_FDS`, `LISTEN_FDNAMES` = `http`, `https`, `admin`) and the path of
//! a Unix socket in `SWITCHYARD_UPGRADE_SOCKET`. The new process connects there, receives the
//! runtime decisions in force (active, previous and split per service) and the switch history,
//! starts on the inherited sockets, runs its first health checks and answers `READY`. Meanwhile
//! the old process refuses every change, so the state has one writer. Only then does the old process
//! stop accepting and finish gracefully (kept-alive connections are closed after their next
//! answer, requests in flight finish within `shutdown_timeout`) and exit 0. A new process that
//! exits or is not ready within 30 s is stopped, and the old one keeps serving.

use std::ffi::OsString;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, anyhow};
use command_fds::{CommandFdExt, FdMapping};
use switchyard_proxy::ProxyHandle;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// The variable naming the Unix socket a new process reports to.
pub const UPGRADE_SOCKET_ENV: &str = "SWITCHYARD_UPGRADE_SOCKET";

/// How long a new process has to become ready.
const READY_LIMIT: Duration = Duration::from_secs(30);

/// The sockets this process was started with (systemd socket activation, or an upgrade), with
/// their names. Must run before any thread is started (it clears `LISTEN_FDS`).
pub fn inherited() -> Vec<(Option<String>, std::net::TcpListener)> {
    let names: Vec<String> = std::env::var("LISTEN_FDNAMES")
        .map(|v| v.split(':').map(str::to_string).collect())
        .unwrap_or_default();
    let mut fds = listenfd::ListenFd::from_env();
    let mut out = Vec::new();
    for i in 0..fds.len() {
        match fds.take_tcp_listener(i) {
            Ok(Some(l)) => out.push((names.get(i).filter(|n| !n.is_empty()).cloned(), l)),
            Ok(None) => {}
            Err(e) => eprintln!(
                "warning: inherited descriptor {} is not a TCP listener: {e}",
                i + 3
            ),
        }
    }
    out
}

/// What an upgrade needs from the running process.
pub struct Upgrader {
    /// The binary's path when this process started (the file there may have been replaced).
    exe: PathBuf,
    /// This process's arguments, for the new one.
    args: Vec<OsString>,
    /// Copies of the listening sockets, by name.
    fds: Vec<(&'static str, OwnedFd)>,
    /// One upgrade at a time.
    busy: AtomicBool,
}

impl Upgrader {
    /// Captures the path, the arguments and copies of the listening sockets.
    pub fn new(fds: Vec<(&'static str, OwnedFd)>) -> anyhow::Result<Upgrader> {
        Ok(Upgrader {
            exe: std::env::current_exe().context("cannot find this binary's path")?,
            args: std::env::args_os().skip(1).collect(),
            fds,
            busy: AtomicBool::new(false),
        })
    }

    /// Starts the binary on disk on these sockets and waits until it is ready. Returns its
    /// process id; on failure the new process is stopped and this one carries on.
    pub async fn upgrade(&self, handle: &ProxyHandle) -> anyhow::Result<u32> {
        if self.busy.swap(true, Ordering::AcqRel) {
            return Err(anyhow!("an upgrade is already under way"));
        }
        // No decision while the new process starts from the ones it is handed: the state
        // (and its file) has one writer.
        handle.freeze_for_upgrade(true);
        let result = self.run(handle).await;
        if let Err(e) = &result {
            // A success is recorded by the new process (this one stops writing its history).
            handle.record_upgrade("upgrade", &Err(format!("{e:#}")));
            handle.freeze_for_upgrade(false);
        }
        self.busy.store(false, Ordering::Release);
        result
    }

    async fn run(&self, handle: &ProxyHandle) -> anyhow::Result<u32> {
        let socket = std::env::temp_dir().join(format!(
            "switchyard-upgrade-{}-{}.sock",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        let listener = tokio::net::UnixListener::bind(&socket)
            .with_context(|| format!("cannot listen on {}", socket.display()))?;
        let mut cmd = std::process::Command::new(&self.exe);
        let names: Vec<&str> = self.fds.iter().map(|(n, _)| *n).collect();
        cmd.args(&self.args)
            .env("LISTEN_FDS", self.fds.len().to_string())
            .env("LISTEN_FDNAMES", names.join(":"))
            .env_remove("LISTEN_PID")
            .env(UPGRADE_SOCKET_ENV, &socket);
        let mut mappings = Vec::with_capacity(self.fds.len());
        for (i, (_, fd)) in self.fds.iter().enumerate() {
            mappings.push(FdMapping {
                parent_fd: fd.try_clone()?,
                child_fd: 3 + i32::try_from(i)?,
            });
        }
        cmd.fd_mappings(mappings)
            .map_err(|e| anyhow!("cannot pass the sockets: {e}"))?;
        let mut child = tokio::process::Command::from(cmd)
            .spawn()
            .with_context(|| format!("cannot start {}", self.exe.display()))?;
        let pid = child.id().unwrap_or(0);
        tracing::info!(pid, binary = %self.exe.display(), "upgrade: new process started");
        let outcome = tokio::select! {
            r = handshake(&listener, handle) => r,
            status = child.wait() => Err(anyhow!("the new process exited before it was ready ({})",
                status.map_or_else(|e| e.to_string(), |s| s.to_string()))),
            () = tokio::time::sleep(READY_LIMIT) => Err(anyhow!("the new process was not ready within {READY_LIMIT:?}")),
        };
        let _ = std::fs::remove_file(&socket);
        match outcome {
            Ok(()) => {
                tracing::info!(pid, "upgrade: the new process is ready");
                Ok(pid)
            }
            Err(e) => {
                let _ = child.start_kill();
                let _ = child.wait().await;
                Err(e)
            }
        }
    }
}

/// Hands the decisions to the new process and waits for its `READY`.
async fn handshake(
    listener: &tokio::net::UnixListener,
    handle: &ProxyHandle,
) -> anyhow::Result<()> {
    let (stream, _) = listener.accept().await?;
    let (read, mut write) = stream.into_split();
    let mut history = handle.history(usize::MAX);
    history.reverse();
    let handed = Handed {
        decisions: handle.snapshot().decisions(),
        history,
    };
    let mut line = serde_json::to_vec(&handed)?;
    line.push(b'\n');
    write.write_all(&line).await?;
    let mut answer = String::new();
    BufReader::new(read).read_line(&mut answer).await?;
    if answer.trim() == "READY" {
        Ok(())
    } else {
        Err(anyhow!(
            "the new process said {:?} instead of READY",
            answer.trim()
        ))
    }
}

/// What the old process hands to the new one.
#[derive(serde::Serialize, serde::Deserialize)]
struct Handed {
    /// The runtime decisions in force.
    decisions: switchyard_proxy::Decisions,
    /// The switch history, oldest first (taken over when there is no history file).
    history: Vec<switchyard_proxy::HistoryEntry>,
}

/// In a process started by an upgrade: the old process's decisions and history, and the
/// connection to tell it when this one is ready.
pub struct Successor {
    stream: tokio::net::UnixStream,
    /// The decisions to start with.
    pub decisions: switchyard_proxy::Decisions,
    /// The old process's history, oldest first.
    pub history: Vec<switchyard_proxy::HistoryEntry>,
}

impl Successor {
    /// Connects to the old process when this one was started by an upgrade.
    pub async fn connect() -> anyhow::Result<Option<Successor>> {
        let Some(path) = std::env::var_os(UPGRADE_SOCKET_ENV) else {
            return Ok(None);
        };
        let stream = match tokio::net::UnixStream::connect(&path).await {
            Ok(s) => s,
            // A stale variable (this process was not started by an upgrade after all).
            Err(_) => return Ok(None),
        };
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        reader.read_line(&mut line).await?;
        let handed: Handed =
            serde_json::from_str(&line).context("what the old process handed over")?;
        Ok(Some(Successor {
            stream: reader.into_inner(),
            decisions: handed.decisions,
            history: handed.history,
        }))
    }

    /// Waits for the first health checks of every server (at most 10 s), then tells the old
    /// process this one is ready.
    pub async fn ready(mut self, handle: &ProxyHandle, history_file: bool) -> anyhow::Result<()> {
        if !history_file {
            handle.adopt_history(std::mem::take(&mut self.history));
        }
        handle.record_upgrade("upgrade", &Ok(std::process::id()));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while tokio::time::Instant::now() < deadline {
            let snap = handle.snapshot();
            let checked = snap
                .services
                .iter()
                .flat_map(|s| s.pools.iter())
                .flat_map(|p| p.servers.iter())
                .all(|s| s.state.health() != switchyard_proxy::Health::Unknown);
            if checked {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.stream.write_all(b"READY\n").await?;
        switchyard_proxy::notify::send(&format!("MAINPID={}\nREADY=1", std::process::id()));
        Ok(())
    }
}
