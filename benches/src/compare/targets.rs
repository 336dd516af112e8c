//! Starting what `compare` measures: the built-in upstreams (children of this binary),
//! Switchyard, nginx and HAProxy, each on free loopback ports with a generated config in the
//! run's temp dir (serving TLS on its client listener when the run's protocol asks for it),
//! and each stopped by its guard.

use std::fs::File;
use std::io::BufRead as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};

use super::configs;
use super::protocol::RunTls;
use crate::flip::Flipper;
use crate::load::Dial;
use crate::procs::{ChildGuard, free_port};
use crate::upstream::READY_PREFIX;

/// How long a started process may take to answer its first request.
const READY_LIMIT: Duration = Duration::from_secs(15);

/// A running process that takes load.
#[derive(Debug)]
pub struct Running {
    /// `direct`, `switchyard`, `nginx`, `haproxy`, or an upstream's colour.
    pub name: String,
    /// Where clients connect.
    pub addr: SocketAddr,
    /// How the load generator connects: to `addr`, over TLS when the run's protocol is.
    pub dial: Dial,
    /// The process whose tree's CPU and memory are measured.
    pub pid: u32,
    /// How to flip colours on it (proxies only).
    pub flipper: Option<Flipper>,
    /// Stops the process when dropped (`None` for `direct`, which is the upstream itself).
    pub guard: Option<ChildGuard>,
}

fn log_file(dir: &Path, name: &str) -> anyhow::Result<(File, File)> {
    let f = File::create(dir.join(format!("{name}.log")))?;
    let g = f.try_clone()?;
    Ok((f, g))
}

/// The last lines of a child's log, for error messages.
pub fn log_tail(dir: &Path, name: &str) -> String {
    let text = std::fs::read_to_string(dir.join(format!("{name}.log"))).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

async fn wait_ready(r: &mut Running, dir: &Path, tls: Option<&RunTls>) -> anyhow::Result<()> {
    let name = r.name.clone();
    let ready = tls.map(|t| &t.ready);
    let result = match r.guard.as_mut() {
        Some(g) => {
            crate::http::wait_ready_over(r.addr, ready, "/", READY_LIMIT, || g.check_alive()).await
        }
        None => crate::http::wait_ready_over(r.addr, ready, "/", READY_LIMIT, || Ok(())).await,
    };
    result.with_context(|| {
        format!(
            "{name} did not start; its log says:\n{}",
            log_tail(dir, &name)
        )
    })
}

/// Starts a built-in upstream of `colour` (this binary's `upstream` subcommand) and reads the
/// address it bound from its first line.
pub async fn start_upstream(dir: &Path, colour: &str) -> anyhow::Result<Running> {
    let exe = std::env::current_exe()?;
    let (_, err) = log_file(dir, colour)?;
    let mut cmd = Command::new(exe);
    cmd.args(["upstream", "--listen", "127.0.0.1:0", "--colour", colour])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(err);
    let mut guard = ChildGuard::spawn(&format!("upstream {colour}"), &mut cmd)?;
    let stdout = guard
        .child_mut()
        .stdout
        .take()
        .context("upstream stdout is not piped")?;
    let line = tokio::time::timeout(
        READY_LIMIT,
        tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            std::io::BufReader::new(stdout)
                .read_line(&mut line)
                .map(|_| line)
        }),
    )
    .await
    .context("the upstream did not say where it listens")???;
    let addr: SocketAddr = line
        .trim()
        .strip_prefix(READY_PREFIX)
        .with_context(|| format!("unexpected first line from the upstream: {line:?}"))?
        .parse()?;
    let mut r = Running {
        name: colour.to_string(),
        addr,
        dial: Dial::plain(addr),
        pid: guard.pid(),
        flipper: None,
        guard: Some(guard),
    };
    wait_ready(&mut r, dir, None).await?;
    Ok(r)
}

/// The Switchyard binary: `--switchyard`, else `switchyard` next to this binary, else built
/// with `cargo build --release -p switchyard` in this workspace.
pub fn switchyard_binary(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(p) = explicit {
        if !p.is_file() {
            bail!("--switchyard {}: no such file", p.display());
        }
        return Ok(p.to_path_buf());
    }
    let exe = std::env::current_exe()?;
    let beside = exe.with_file_name("switchyard");
    if beside.is_file() {
        return Ok(beside);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("the workspace root")?;
    eprintln!(
        "{} not found; building it: cargo build --release -p switchyard",
        beside.display()
    );
    let status = Command::new("cargo")
        .args(["build", "--release", "-p", "switchyard"])
        .current_dir(root)
        .status()
        .context("cannot run cargo")?;
    if !status.success() {
        bail!("cargo build --release -p switchyard failed");
    }
    let target_dir =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let built = target_dir.join("release").join("switchyard");
    if !built.is_file() {
        bail!("built switchyard, but {} is not there", built.display());
    }
    Ok(built)
}

/// The first `name` found on PATH (and in the sbin directories, where nginx and HAProxy live).
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// How Switchyard runs beside its config's fixed parts: its access log on or off, the log's
/// format when not the default, and whether its service generates request ids.
#[derive(Debug, Clone, Copy)]
pub struct SwitchyardRun<'a> {
    /// Access log on (to a file).
    pub access: bool,
    /// `[log] access_format`, when set.
    pub format: Option<&'a str>,
    /// `generate_request_id` of the service (its default: true).
    pub generate_request_id: bool,
}

/// Whether `bin check -c conf` accepts the config (an earlier build may not know a key).
fn accepts(bin: &Path, conf: &Path) -> bool {
    Command::new(bin)
        .arg("check")
        .arg("-c")
        .arg(conf)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Starts Switchyard (`serve -c`, one worker thread, `SWITCHYARD_LOG=warn`) in front of the
/// colours, `colours[0]` live; on an https listener only when `tls` is set.
pub async fn start_switchyard(
    name: &str,
    bin: &Path,
    dir: &Path,
    colours: &[(String, SocketAddr)],
    log: SwitchyardRun<'_>,
    baseline: bool,
    tls: Option<&RunTls>,
) -> anyhow::Result<Running> {
    let access_log = log.access;
    let listen = free_port()?;
    let admin = free_port()?;
    let active = colours.first().map_or("green", |c| c.0.as_str());
    let conf = dir.join(format!("{name}.toml"));
    let log_path = dir.join(format!("{name}-access.log"));
    std::fs::write(
        &conf,
        configs::switchyard_conf(&configs::SwitchyardParams {
            listen,
            admin,
            pools: colours,
            active,
            access_log: access_log.then_some(log_path.as_path()),
            access_format: log.format,
            generate_request_id: log.generate_request_id,
            tls: tls.map(RunTls::listen),
        }),
    )?;
    if baseline && access_log && !accepts(bin, &conf) {
        // A build from before `[log] access_file`: its access lines are `tracing` events on
        // stdout, which goes to its log file.
        let conf_text = std::fs::read_to_string(&conf)?;
        let access_file = conf_text
            .lines()
            .find(|l| l.starts_with("access_file = "))
            .map(|l| format!("{l}\n"))
            .unwrap_or_default();
        std::fs::write(&conf, conf_text.replace(&access_file, ""))?;
    }
    let filter = if access_log {
        "warn,switchyard::access=info"
    } else {
        "warn"
    };
    let (out, err) = log_file(dir, name)?;
    let mut cmd = Command::new(bin);
    cmd.arg("serve")
        .arg("-c")
        .arg(&conf)
        .env("SWITCHYARD_LOG", filter)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    let guard = ChildGuard::spawn(name, &mut cmd)?;
    let mut r = Running {
        name: name.into(),
        addr: listen,
        dial: RunTls::dial(tls, listen),
        pid: guard.pid(),
        flipper: Some(Flipper::Admin {
            addr: admin,
            service: Some("app".into()),
            token: std::env::var("SWITCHYARD_ADMIN_TOKEN").ok(),
        }),
        guard: Some(guard),
    };
    wait_ready(&mut r, dir, tls).await?;
    Ok(r)
}

/// Starts nginx (master and one worker, `daemon off`) in front of `colours[0]`, serving TLS
/// with the run's certificate when `tls` is set.
pub async fn start_nginx(
    bin: &Path,
    dir: &Path,
    colours: &[(String, SocketAddr)],
    access_log: bool,
    request_id: bool,
    tls: Option<&RunTls>,
) -> anyhow::Result<Running> {
    let prefix = dir.join("nginx");
    std::fs::create_dir_all(&prefix)?;
    let listen = free_port()?;
    let conf = prefix.join("nginx.conf");
    let upstream_file = prefix.join("upstream.conf");
    let access_file = prefix.join("access.log");
    let first = colours.first().context("no upstream")?.1;
    std::fs::write(&upstream_file, configs::nginx_upstream(&[first]))?;
    std::fs::write(
        &conf,
        configs::nginx_conf(&configs::NginxParams {
            prefix: &prefix,
            listen,
            upstream_file: &upstream_file,
            access_log: access_log.then_some(access_file.as_path()),
            tls: tls.map(RunTls::listen),
            request_id,
        }),
    )?;
    let (out, err) = log_file(dir, "nginx")?;
    let mut cmd = Command::new(bin);
    cmd.arg("-p")
        .arg(&prefix)
        .arg("-c")
        .arg(&conf)
        .arg("-e")
        .arg(prefix.join("error.log"))
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    let guard = ChildGuard::spawn("nginx", &mut cmd)?;
    let mut r = Running {
        name: "nginx".into(),
        addr: listen,
        dial: RunTls::dial(tls, listen),
        pid: guard.pid(),
        flipper: Some(Flipper::Nginx {
            binary: bin.to_path_buf(),
            prefix: prefix.clone(),
            conf,
            upstream_file,
            servers: colours.to_vec(),
        }),
        guard: Some(guard),
    };
    wait_ready(&mut r, dir, tls).await.map_err(|e| {
        let errlog = std::fs::read_to_string(prefix.join("error.log")).unwrap_or_default();
        e.context(format!("nginx error.log:\n{errlog}"))
    })?;
    Ok(r)
}

/// Starts HAProxy (one process, one thread, foreground) in front of `colours[0]`, serving TLS
/// with the run's certificate when `tls` is set.
pub async fn start_haproxy(
    bin: &Path,
    dir: &Path,
    colours: &[(String, SocketAddr)],
    tls: Option<&RunTls>,
) -> anyhow::Result<Running> {
    let listen = free_port()?;
    let socket = dir.join("haproxy.sock");
    let conf = dir.join("haproxy.cfg");
    let active = colours.first().map_or("green", |c| c.0.as_str());
    std::fs::write(
        &conf,
        configs::haproxy_conf(&configs::HaproxyParams {
            listen,
            servers: colours,
            active,
            socket: &socket,
            tls: tls.map(RunTls::listen),
        }),
    )?;
    let (out, err) = log_file(dir, "haproxy")?;
    let mut cmd = Command::new(bin);
    cmd.arg("-f")
        .arg(&conf)
        .arg("-db")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    let guard = ChildGuard::spawn("haproxy", &mut cmd)?;
    let mut r = Running {
        name: "haproxy".into(),
        addr: listen,
        dial: RunTls::dial(tls, listen),
        pid: guard.pid(),
        flipper: Some(Flipper::Haproxy {
            socket,
            backend: "app".into(),
            colours: colours.iter().map(|c| c.0.clone()).collect(),
        }),
        guard: Some(guard),
    };
    wait_ready(&mut r, dir, tls).await?;
    Ok(r)
}
