//! Black-box harness: the real `switchyard` binary as a child process, its log read line by
//! line, the client commands run as processes, and the admin API read over HTTP.
//!
//! Nothing here sleeps to wait for readiness: the proxy is ready when its `switchyard started`
//! line appears, and every other wait polls a condition with a bounded timeout.

// Each test binary uses a different part of the harness.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use switchyard_tests::{KeepAliveClient, Resp, within};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_switchyard");

/// The bound on any single wait in these tests.
pub const WAIT: Duration = Duration::from_secs(20);

/// Environment variables of the client and server that must not leak in from the caller.
const SCRUBBED: &[&str] = &[
    "SWITCHYARD_ADMIN",
    "SWITCHYARD_ADMIN_TOKEN",
    "SWITCHYARD_LOG",
];

/// The config every proxy test starts from: green live, blue staged, health checked fast.
pub fn two_colour_config(green: SocketAddr, blue: SocketAddr, extra: &str) -> String {
    format!(
        r#"[listen]
http = ["127.0.0.1:0"]

[admin]
listen = "127.0.0.1:0"
{extra}
[runtime]
worker_threads = 2
shutdown_timeout = "10s"

[services.app]
active = "green"

[services.app.pools]
green = ["{green}"]
blue = ["{blue}"]

[services.app.health]
path = "/health"
interval = "100ms"
rise = 1
fall = 1
"#
    )
}

/// A config file in its own temporary directory (removed on drop).
pub struct ConfigFile {
    /// Keeps the directory alive.
    _dir: tempfile::TempDir,
    /// The file.
    pub path: PathBuf,
}

impl ConfigFile {
    /// Writes `text` to a new `switchyard.toml`.
    pub fn new(text: &str) -> ConfigFile {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("switchyard.toml");
        std::fs::write(&path, text).expect("write the config");
        ConfigFile { _dir: dir, path }
    }

    /// Replaces the file's contents.
    pub fn rewrite(&self, text: &str) {
        std::fs::write(&self.path, text).expect("rewrite the config");
    }

    /// The path as a string, for command lines.
    pub fn arg(&self) -> String {
        self.path.display().to_string()
    }
}

/// What a finished command printed, and how it exited.
#[derive(Debug)]
pub struct Output {
    /// The exit code (`None`: killed by a signal).
    pub code: Option<i32>,
    /// Everything on stdout.
    pub stdout: String,
    /// Everything on stderr.
    pub stderr: String,
}

/// Runs `switchyard ARGS` with only `envs` of the Switchyard variables set, bounded by [`WAIT`].
pub async fn cli(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args).kill_on_drop(true).stdin(Stdio::null());
    for var in SCRUBBED {
        cmd.env_remove(var);
    }
    cmd.envs(envs.iter().copied());
    let out = within(WAIT, cmd.output())
        .await
        .unwrap_or_else(|| panic!("switchyard {args:?} did not finish within {WAIT:?}"))
        .unwrap_or_else(|e| panic!("cannot run switchyard {args:?}: {e}"));
    Output {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A running `switchyard serve`, killed when dropped.
pub struct Proxy {
    /// The child process.
    child: Child,
    /// Every line it wrote to stdout (its log) and stderr, in order.
    log: Arc<Mutex<Vec<String>>>,
    /// The first client listener.
    pub http: SocketAddr,
    /// The admin API.
    pub admin: SocketAddr,
}

impl Proxy {
    /// Starts `switchyard serve` with `args` and `envs`, and waits for its `switchyard started`
    /// line; panics with its output if it exits or stays silent instead.
    pub async fn start(args: &[&str], envs: &[(&str, &str)]) -> Proxy {
        match Proxy::try_start(args, envs).await {
            Ok(proxy) => proxy,
            Err(output) => panic!("switchyard serve did not start:\n{output}"),
        }
    }

    /// Like [`Proxy::start`], but returns what the process printed when it does not start.
    pub async fn try_start(args: &[&str], envs: &[(&str, &str)]) -> Result<Proxy, String> {
        Proxy::try_start_binary(std::path::Path::new(BIN), args, envs).await
    }

    /// [`Proxy::start`] with another copy of the binary.
    pub async fn start_binary(
        bin: &std::path::Path,
        args: &[&str],
        envs: &[(&str, &str)],
    ) -> Proxy {
        match Proxy::try_start_binary(bin, args, envs).await {
            Ok(proxy) => proxy,
            Err(output) => panic!("switchyard serve did not start:\n{output}"),
        }
    }

    /// [`Proxy::try_start`] with another copy of the binary.
    pub async fn try_start_binary(
        bin: &std::path::Path,
        args: &[&str],
        envs: &[(&str, &str)],
    ) -> Result<Proxy, String> {
        let mut cmd = Command::new(bin);
        cmd.arg("serve")
            .args(args)
            .kill_on_drop(true)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for var in SCRUBBED {
            cmd.env_remove(var);
        }
        cmd.env("SWITCHYARD_LOG", "info").envs(envs.iter().copied());
        let mut child = spawn(&mut cmd).await;
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut readers = Vec::new();
        if let Some(out) = child.stdout.take() {
            readers.push(tokio::spawn(collect_lines(out, log.clone())));
        }
        if let Some(err) = child.stderr.take() {
            readers.push(tokio::spawn(collect_lines(err, log.clone())));
        }
        let mut proxy = Proxy {
            child,
            log,
            http: SocketAddr::from(([0, 0, 0, 0], 0)),
            admin: SocketAddr::from(([0, 0, 0, 0], 0)),
        };
        let started = within(WAIT, async {
            loop {
                if let Some(addrs) = proxy.lines().iter().find_map(|l| started_line(l)) {
                    return Some(addrs);
                }
                if let Ok(Some(_exited)) = proxy.child.try_wait() {
                    return None;
                }
                tokio::time::sleep(switchyard_tests::wait::POLL_INTERVAL).await;
            }
        })
        .await
        .flatten();
        let Some((http, admin)) = started else {
            // Let the readers pick up the last words before showing them.
            let _ = proxy.child.start_kill();
            for reader in readers {
                let _ = within(Duration::from_secs(2), reader).await;
            }
            return Err(proxy.log_text());
        };
        proxy.http = http;
        proxy.admin = admin;
        Ok(proxy)
    }

    /// The process id, for `kill`.
    pub fn pid(&self) -> String {
        self.child
            .id()
            .map(|p| p.to_string())
            .expect("the proxy still runs")
    }

    /// Sends a signal (`HUP`, `TERM`...) with the `kill` command.
    pub fn signal(&self, name: &str) {
        let status = std::process::Command::new("kill")
            .args([format!("-{name}"), self.pid()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits (bounded) for the process to exit.
    pub async fn wait_exit(&mut self) -> ExitStatus {
        within(WAIT, self.child.wait())
            .await
            .unwrap_or_else(|| {
                panic!(
                    "switchyard did not exit within {WAIT:?}:\n{}",
                    self.log_text()
                )
            })
            .expect("wait for switchyard")
    }

    /// `--admin` for the client commands.
    pub fn admin_url(&self) -> String {
        format!("http://{}", self.admin)
    }

    /// The log lines so far.
    pub fn lines(&self) -> Vec<String> {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The log so far, as one text.
    pub fn log_text(&self) -> String {
        self.lines().join("\n")
    }

    /// Polls until a log line satisfies `pred`.
    pub async fn wait_log(&self, what: &str, pred: impl Fn(&str) -> bool) {
        let found = within(WAIT, async {
            loop {
                if self.lines().iter().any(|l| pred(l)) {
                    return;
                }
                tokio::time::sleep(switchyard_tests::wait::POLL_INTERVAL).await;
            }
        })
        .await;
        assert!(
            found.is_some(),
            "no log line {what} within {WAIT:?}:\n{}",
            self.log_text()
        );
    }

    /// `GET /status` on the admin API (with a bearer token when given).
    pub async fn status(&self, token: Option<&str>) -> serde_json::Value {
        let resp = admin_get(self.admin, "/status", token).await;
        assert_eq!(resp.status, 200, "GET /status: {}", resp.text());
        resp.json()
    }

    /// Polls `/status` until `cond` holds for it; returns that status.
    pub async fn wait_status(
        &self,
        what: &str,
        cond: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let found = within(WAIT, async {
            loop {
                let status = self.status(None).await;
                if cond(&status) {
                    return status;
                }
                tokio::time::sleep(switchyard_tests::wait::POLL_INTERVAL).await;
            }
        })
        .await;
        found.unwrap_or_else(|| {
            panic!(
                "status never showed {what} within {WAIT:?}; log:\n{}",
                self.log_text()
            )
        })
    }

    /// Waits until every server of both pools of `app` passes its health checks.
    pub async fn wait_healthy(&self) -> serde_json::Value {
        self.wait_status("every server healthy", |s| {
            let pools = &s["services"]["app"]["pools"];
            ["green", "blue"].iter().all(|p| {
                pools[p]["servers"]
                    .as_array()
                    .is_some_and(|servers| servers.iter().all(|s| s["healthy"] == true))
            })
        })
        .await
    }

    /// `GET /` through the proxy on a new connection.
    pub async fn get(&self, path: &str) -> Resp {
        let mut client = KeepAliveClient::connect(self.http).await;
        client
            .get(path, "app.test")
            .await
            .expect("the proxy answers")
    }
}

/// Reads lines from a child's pipe into `log` until it closes.
async fn collect_lines(pipe: impl AsyncRead + Unpin, log: Arc<Mutex<Vec<String>>>) {
    let mut lines = BufReader::new(pipe).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        log.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(line);
    }
}

/// `(http, admin)` from the proxy's `switchyard started http=A[,B] admin=C` log line, in text
/// or JSON form.
fn started_line(line: &str) -> Option<(SocketAddr, SocketAddr)> {
    if !line.contains("switchyard started") {
        return None;
    }
    let (http, admin) = match serde_json::from_str::<serde_json::Value>(line) {
        Ok(json) => (
            json["fields"]["http"].as_str()?.to_string(),
            json["fields"]["admin"].as_str()?.to_string(),
        ),
        Err(_) => {
            let field = |name: &str| {
                line.split_whitespace()
                    .find_map(|w| w.strip_prefix(name))
                    .map(|v| v.trim_matches('"').to_string())
            };
            (field("http=")?, field("admin=")?)
        }
    };
    Some((http.split(',').next()?.parse().ok()?, admin.parse().ok()?))
}

/// `GET path` on the admin API over a fresh connection.
pub async fn admin_get(admin: SocketAddr, path: &str, token: Option<&str>) -> Resp {
    let mut client = KeepAliveClient::connect(admin).await;
    let mut req = http::Request::get(path).header(http::header::HOST, admin.to_string());
    if let Some(token) = token {
        req = req.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let req = req.body(Full::new(Bytes::new())).expect("a valid request");
    client.request(req).await.expect("the admin API answers")
}

/// `POST path` with a JSON body on the admin API over a fresh connection.
pub async fn admin_post(admin: SocketAddr, path: &str, body: &str) -> Resp {
    let mut client = KeepAliveClient::connect(admin).await;
    let req = http::Request::post(path)
        .header(http::header::HOST, admin.to_string())
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("a valid request");
    client.request(req).await.expect("the admin API answers")
}

/// A loopback address where nothing listens (bound, then closed).
pub async fn closed_port() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a port");
    listener.local_addr().expect("its address")
}

/// Whether every line of `stderr` is `FILE:LINE:COL: message` for `file`, and which lines they
/// name.
pub fn error_lines(stderr: &str, file: &Path) -> Vec<(usize, usize)> {
    let prefix = format!("{}:", file.display());
    stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let rest = l
                .strip_prefix(&prefix)
                .unwrap_or_else(|| panic!("`{l}` does not start with {prefix}"));
            let mut parts = rest.splitn(3, ':');
            let line = parts.next().and_then(|n| n.parse().ok());
            let col = parts.next().and_then(|n| n.parse().ok());
            let msg = parts.next().unwrap_or("");
            match (line, col) {
                (Some(line), Some(col)) if msg.starts_with(' ') && msg.len() > 1 => (line, col),
                _ => panic!("`{l}` is not FILE:LINE:COL: message"),
            }
        })
        .collect()
}

/// Spawns `cmd`, trying again while the kernel answers "text file busy": a binary the test just
/// wrote can be held open for a moment by a child another test thread forked before it
/// exec'd (the fork inherits the writer's descriptor until then).
async fn spawn(cmd: &mut Command) -> Child {
    let mut tries = 0;
    loop {
        match cmd.spawn() {
            Ok(child) => return child,
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy && tries < 200 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err(e) => panic!("spawn switchyard serve: {e}"),
        }
    }
}
