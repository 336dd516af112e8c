//! Flipping colours during a load run: on a schedule, through Switchyard's admin API, an
//! nginx upstream file and `nginx -s reload`, or HAProxy's runtime API on its stats socket.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use http::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

use crate::compare::configs;

/// How one flip is carried out.
#[derive(Debug, Clone)]
pub enum Flipper {
    /// Switchyard's admin API: `POST /services/{svc}/switch` (or `/switch`) with `{"to": C}`.
    Admin {
        /// The admin listener.
        addr: SocketAddr,
        /// The service; `None` uses the single-service shorthand `/switch`.
        service: Option<String>,
        /// The bearer token (from `SWITCHYARD_ADMIN_TOKEN`).
        token: Option<String>,
    },
    /// nginx: rewrite the included upstream file to the colour's server, then reload.
    Nginx {
        /// The nginx binary.
        binary: PathBuf,
        /// nginx's `-p` prefix.
        prefix: PathBuf,
        /// nginx's `-c` config file.
        conf: PathBuf,
        /// The file `nginx.conf` includes, holding the `upstream` block.
        upstream_file: PathBuf,
        /// Each colour's server.
        servers: Vec<(String, SocketAddr)>,
    },
    /// HAProxy: `set server BK/C state ready`, every other server `maint`, over the socket.
    Haproxy {
        /// The stats socket (`level admin`).
        socket: PathBuf,
        /// The backend whose servers are named after the colours.
        backend: String,
        /// Every colour (server name) of the backend.
        colours: Vec<String>,
    },
}

impl Flipper {
    /// Makes `to` the live colour; returns when the proxy has accepted the change.
    pub async fn flip(&self, to: &str) -> anyhow::Result<()> {
        match self {
            Flipper::Admin {
                addr,
                service,
                token,
            } => {
                let path = match service {
                    Some(s) => format!("/services/{s}/switch"),
                    None => "/switch".to_string(),
                };
                let body = serde_json::json!({ "to": to }).to_string();
                let answer = crate::http::request(
                    *addr,
                    Method::POST,
                    &path,
                    token.as_deref(),
                    Some(body),
                    Duration::from_secs(5),
                )
                .await?;
                if !answer.status.is_success() {
                    bail!(
                        "admin API answered {}: {}",
                        answer.status,
                        String::from_utf8_lossy(&answer.body).trim()
                    );
                }
                Ok(())
            }
            Flipper::Nginx {
                binary,
                prefix,
                conf,
                upstream_file,
                servers,
            } => {
                let addr = servers
                    .iter()
                    .find(|(c, _)| c == to)
                    .map(|(_, a)| *a)
                    .with_context(|| format!("no server for colour {to}"))?;
                write_atomically(upstream_file, &configs::nginx_upstream(&[addr]))?;
                let mut cmd = std::process::Command::new(binary);
                cmd.arg("-p").arg(prefix).arg("-c").arg(conf);
                cmd.args(["-s", "reload"]);
                let out = tokio::task::spawn_blocking(move || cmd.output()).await??;
                if !out.status.success() {
                    bail!(
                        "nginx -s reload failed: {}",
                        String::from_utf8_lossy(&out.stderr).trim()
                    );
                }
                Ok(())
            }
            Flipper::Haproxy {
                socket,
                backend,
                colours,
            } => {
                let cmd = haproxy_flip_command(backend, colours, to);
                let out = haproxy_command(socket, &cmd).await?;
                if !out.trim().is_empty() {
                    bail!("HAProxy refused `{cmd}`: {}", out.trim());
                }
                Ok(())
            }
        }
    }
}

/// The runtime-API line that makes server `to` of `backend` ready and every other colour
/// `maint` (ready first, so there is always a server up).
pub fn haproxy_flip_command(backend: &str, colours: &[String], to: &str) -> String {
    let mut cmds = vec![format!("set server {backend}/{to} state ready")];
    for c in colours.iter().filter(|c| c.as_str() != to) {
        cmds.push(format!("set server {backend}/{c} state maint"));
    }
    cmds.join("; ")
}

/// Sends one command line to HAProxy's stats socket and returns its whole answer (HAProxy
/// closes the connection after answering in non-interactive mode).
pub async fn haproxy_command(socket: &Path, command: &str) -> anyhow::Result<String> {
    let talk = async {
        let mut s = tokio::net::UnixStream::connect(socket)
            .await
            .with_context(|| format!("cannot connect to {}", socket.display()))?;
        s.write_all(command.as_bytes()).await?;
        s.write_all(b"\n").await?;
        let mut out = String::new();
        s.read_to_string(&mut out).await?;
        anyhow::Ok(out)
    };
    tokio::time::timeout(Duration::from_secs(5), talk)
        .await
        .context("HAProxy's socket did not answer within 5s")?
}

fn write_atomically(path: &Path, text: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// A flip schedule.
#[derive(Debug, Clone)]
pub struct FlipPlan {
    /// Time between two flips.
    pub every: Duration,
    /// The first flip, after the end of the warm-up.
    pub start: Duration,
    /// How long after a flip its requests are counted as "after the flip".
    pub window: Duration,
    /// The colours, the live one first; flips go to the next one in turn.
    pub colours: Vec<String>,
    /// How to flip.
    pub flipper: Flipper,
}

/// One flip as it happened.
#[derive(Debug, Clone)]
pub struct FlipEvent {
    /// When the flip call started.
    pub sent: Instant,
    /// When it returned.
    pub returned: Instant,
    /// The colour flipped to.
    pub to: String,
    /// Why it failed, if it did.
    pub error: Option<String>,
}

/// At most this many flips in one run, whatever the schedule.
const MAX_FLIPS: u32 = 10_000;

impl FlipPlan {
    /// Flips on schedule from `from + start` until `end` or until `stop` turns true.
    pub async fn run(
        self,
        from: Instant,
        end: Option<Instant>,
        mut stop: watch::Receiver<bool>,
    ) -> Vec<FlipEvent> {
        let mut events = Vec::new();
        let n = self.colours.len().max(1);
        for k in 0..MAX_FLIPS {
            let at = from + self.start + self.every * k;
            if end.is_some_and(|e| at >= e) {
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep_until(at.into()) => {}
                _ = stop.wait_for(|s| *s) => break,
            }
            let Some(to) = self.colours.get((k as usize + 1) % n) else {
                break;
            };
            let sent = Instant::now();
            let result = self.flipper.flip(to).await;
            events.push(FlipEvent {
                sent,
                returned: Instant::now(),
                to: to.clone(),
                error: result.err().map(|e| format!("{e:#}")),
            });
        }
        events
    }
}
