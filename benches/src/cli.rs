//! The command line of `switchyard-bench`, and its translation into run specs.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use http::{HeaderName, HeaderValue, Method};

use crate::compare::{CompareSpec, Protocol, RequestIds};
use crate::duration;
use crate::flip::{FlipPlan, Flipper};
use crate::load::LoadSpec;
use crate::target::Target;
use crate::tls::{Alpn, TlsClient};

/// Switchyard's load tool.
#[derive(Debug, Parser)]
#[command(name = "switchyard-bench", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Load one http:// or https:// URL and report latency, errors and answers by header.
    Load(LoadArgs),
    /// Compare Switchyard with nginx and HAProxy (and the upstream directly).
    Compare(CompareArgs),
    /// Run the built-in upstream (used by `compare`).
    Upstream(UpstreamArgs),
    /// Fleet mode: three Switchyard instances on a real etcd under load; flip through one and
    /// measure how long until every instance serves the new colour, and what failed.
    Fleet(FleetArgs),
    /// A long run with flips, app kills, aborted uploads, slow readers and HTTP/2 resets mixed
    /// into the load; reports failures by cause and the proxy's memory and fds over time.
    Soak(SoakArgs),
}

/// `soak`.
#[derive(Debug, Args)]
pub struct SoakArgs {
    /// The switchyard binary (build it with `cargo build --release -p switchyard`).
    #[arg(long, default_value = "target/release/switchyard")]
    pub switchyard: std::path::PathBuf,
    /// How long to run.
    #[arg(short = 'd', long, default_value = "30m", value_parser = duration::parse)]
    pub duration: Duration,
    /// Keep-alive load clients.
    #[arg(short = 'c', long, default_value_t = 16)]
    pub connections: usize,
    /// Time between two flips.
    #[arg(long, default_value = "4s", value_parser = duration::parse)]
    pub flip_every: Duration,
    /// Time between two app kills.
    #[arg(long, default_value = "7s", value_parser = duration::parse)]
    pub kill_every: Duration,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `fleet`.
#[derive(Debug, Args)]
pub struct FleetArgs {
    /// The switchyard binary (build it with `cargo build --release -p switchyard`).
    #[arg(long, default_value = "target/release/switchyard")]
    pub switchyard: std::path::PathBuf,
    /// The etcd binary (Debian's etcd-server).
    #[arg(long, default_value = "etcd")]
    pub etcd: std::path::PathBuf,
    /// How many flips.
    #[arg(long, default_value_t = 20)]
    pub flips: usize,
    /// Keep-alive client connections per instance.
    #[arg(short = 'c', long, default_value_t = 8)]
    pub connections: usize,
    /// Time between two flips.
    #[arg(long, default_value = "500ms", value_parser = duration::parse)]
    pub interval: Duration,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `load`.
#[derive(Debug, Args)]
pub struct LoadArgs {
    /// The URL: http://, or https:// with --cacert.
    pub url: String,
    /// Connections.
    #[arg(short = 'c', long, default_value_t = 64)]
    pub connections: usize,
    /// HTTP/2: with prior knowledge on http://, by ALPN on https://.
    #[arg(long)]
    pub h2: bool,
    /// https:// only: the PEM certificates to trust (the server's own, or its CA). TLS 1.3,
    /// TLS13_AES_128_GCM_SHA256 and X25519 only; one handshake per kept-alive connection.
    #[arg(long)]
    pub cacert: Option<PathBuf>,
    /// Concurrent streams per HTTP/2 connection.
    #[arg(long, default_value_t = 1)]
    pub streams: usize,
    /// Open loop: requests per second (latency from the intended send time).
    #[arg(long)]
    pub rate: Option<f64>,
    /// How long to run, after the warm-up (default 10s unless --requests is given).
    #[arg(short = 'd', long, value_parser = duration::parse)]
    pub duration: Option<Duration>,
    /// Stop after this many requests.
    #[arg(short = 'n', long)]
    pub requests: Option<u64>,
    /// Send but do not record the requests of this first period.
    #[arg(long, value_parser = duration::parse, default_value = "0s")]
    pub warmup: Duration,
    /// Request method.
    #[arg(short = 'm', long, default_value = "GET")]
    pub method: String,
    /// Request body size in bytes.
    #[arg(long, default_value_t = 0)]
    pub body_size: usize,
    /// Extra request header, `name:value` (repeatable).
    #[arg(short = 'H', long = "header")]
    pub headers: Vec<String>,
    /// A request without a complete answer after this long fails as a timeout.
    #[arg(long, value_parser = duration::parse, default_value = "10s")]
    pub timeout: Duration,
    /// Count answers by the value of this response header (e.g. x-colour).
    #[arg(long)]
    pub by_header: Option<String>,
    /// Flip colours through the admin API this often during the run.
    #[arg(long, value_parser = duration::parse)]
    pub flip_every: Option<Duration>,
    /// The admin API for flips.
    #[arg(long, default_value = "http://127.0.0.1:9901")]
    pub admin: String,
    /// Colours to flip between, the live one first.
    #[arg(long, default_value = "green,blue", value_delimiter = ',')]
    pub colours: Vec<String>,
    /// The service to flip (default: the single-service `/switch`).
    #[arg(long)]
    pub service: Option<String>,
    /// The first flip, after the warm-up (default: a third of the duration).
    #[arg(long, value_parser = duration::parse)]
    pub flip_start: Option<Duration>,
    /// How long after a flip its requests count as "after the flip".
    #[arg(long, value_parser = duration::parse, default_value = "1s")]
    pub flip_window: Duration,
    /// Load generator threads.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// No progress line.
    #[arg(short, long)]
    pub quiet: bool,
}

/// `compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// Rounds (each runs every target once, in turn).
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Each measured run.
    #[arg(short = 'd', long, value_parser = duration::parse, default_value = "5s")]
    pub duration: Duration,
    /// An unrecorded run before each measured one.
    #[arg(long, value_parser = duration::parse, default_value = "1s")]
    pub warmup: Duration,
    /// Client connections; with --protocol h2, the requests in flight (carried as --streams
    /// streams on each of c/streams connections).
    #[arg(short = 'c', long, default_value_t = 64)]
    pub connections: usize,
    /// What clients speak to the proxies: http1 (plain HTTP/1.1), https (HTTP/1.1 over TLS
    /// 1.3, keep-alive) or h2 (HTTP/2 over TLS 1.3 by ALPN). Every proxy serves the same
    /// self-signed certificate made for the run; the upstream side stays plain HTTP/1.1.
    #[arg(long, value_enum, default_value_t = Protocol::Http1)]
    pub protocol: Protocol,
    /// With --protocol h2: concurrent streams per connection.
    #[arg(long, default_value_t = 8)]
    pub streams: usize,
    /// One more run per target with `strace -c -f` attached, for system calls per request
    /// (skipped with a note where strace is missing).
    #[arg(long)]
    pub syscalls: bool,
    /// The flip scenario: the same load while flipping colours.
    #[arg(long)]
    pub flip: bool,
    /// Time between flips in the flip scenario.
    #[arg(long, value_parser = duration::parse, default_value = "1s")]
    pub flip_every: Duration,
    /// Idle keep-alive connections for the memory check (0 skips it).
    #[arg(long, default_value_t = 1000)]
    pub idle_conns: usize,
    /// The Switchyard binary (default: next to this one, else built).
    #[arg(long)]
    pub switchyard: Option<PathBuf>,
    /// Only these targets: direct, switchyard, nginx, haproxy.
    #[arg(long, value_delimiter = ',')]
    pub only: Option<Vec<String>>,
    /// Load generator threads.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Access logs on for Switchyard and nginx (to a file each, buffered); default: off on both.
    #[arg(long)]
    pub access_log: bool,
    /// With --access-log, Switchyard's `[log] access_format` (its default: text); `combined`
    /// writes the same format as nginx's line.
    #[arg(long, value_parser = ["text", "json", "combined"])]
    pub access_format: Option<String>,
    /// Which proxies add an `X-Request-Id` and echo it: `both` (Switchyard's default and
    /// nginx's `$request_id`, the same fields upstream), `switchyard` (each proxy as it ships)
    /// or `none` (`generate_request_id = false`). The baseline keeps its default.
    #[arg(long, value_enum, default_value_t = RequestIds::Both)]
    pub request_ids: RequestIds,
    /// An earlier Switchyard binary to measure beside this one (row `switchyard-before`).
    #[arg(long)]
    pub baseline: Option<PathBuf>,
    /// Print the full report as JSON instead of markdown.
    #[arg(long)]
    pub json: bool,
    /// Also write the full report as JSON to this file.
    #[arg(long)]
    pub save: Option<PathBuf>,
    /// Run nothing: print the markdown of a report saved with --save.
    #[arg(long)]
    pub render: Option<PathBuf>,
}

/// `upstream`.
#[derive(Debug, Args)]
pub struct UpstreamArgs {
    /// Where to listen (port 0: any free port; the bound address is printed).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Sent as the `x-colour` response header.
    #[arg(long, default_value = "green")]
    pub colour: String,
    /// Response body size in bytes.
    #[arg(long, default_value_t = 13)]
    pub body_size: usize,
}

fn parse_header(h: &str) -> anyhow::Result<(HeaderName, HeaderValue)> {
    let (name, value) = h
        .split_once(':')
        .with_context(|| format!("-H `{h}`: write name:value"))?;
    Ok((
        HeaderName::from_bytes(name.trim().as_bytes())
            .with_context(|| format!("-H `{h}`: bad header name"))?,
        HeaderValue::from_str(value.trim())
            .with_context(|| format!("-H `{h}`: bad header value"))?,
    ))
}

/// The TLS client of a `load` run: for https:// only, trusting `--cacert`.
fn spec_tls(target: &Target, cacert: Option<&Path>, h2: bool) -> anyhow::Result<Option<TlsClient>> {
    let alpn = if h2 { Alpn::H2 } else { Alpn::Http1 };
    match (target.tls, cacert) {
        (false, None) => Ok(None),
        (false, Some(_)) => bail!("--cacert is for https:// URLs"),
        (true, None) => bail!("an https:// URL needs --cacert FILE (the certificates to trust)"),
        (true, Some(file)) => Ok(Some(TlsClient::from_pem_file(file, &target.host, alpn)?)),
    }
}

impl LoadArgs {
    /// The run these arguments describe.
    pub async fn spec(&self) -> anyhow::Result<LoadSpec> {
        let mut spec = LoadSpec::new(Target::resolve(&self.url).await?);
        spec.connections = self.connections;
        spec.h2 = self.h2;
        spec.tls = spec_tls(&spec.target, self.cacert.as_deref(), self.h2)?;
        spec.streams = self.streams.max(1);
        spec.rate = self.rate;
        spec.duration = self.duration;
        spec.requests = self.requests;
        spec.warmup = self.warmup;
        spec.method = Method::from_bytes(self.method.to_ascii_uppercase().as_bytes())
            .with_context(|| format!("--method {}: not a method", self.method))?;
        spec.body_size = self.body_size;
        spec.headers = self
            .headers
            .iter()
            .map(|h| parse_header(h))
            .collect::<anyhow::Result<_>>()?;
        spec.timeout = self.timeout;
        spec.by_header = match &self.by_header {
            Some(h) => Some(HeaderName::from_bytes(h.as_bytes())?),
            None => None,
        };
        spec.progress = !self.quiet;
        if let Some(every) = self.flip_every {
            if every.is_zero() {
                bail!("--flip-every must be more than 0");
            }
            if self.colours.len() < 2 {
                bail!("--colours needs at least two colours");
            }
            let admin = Target::resolve(&self.admin).await?;
            let run = self.duration.unwrap_or(Duration::from_secs(10));
            spec.flip = Some(FlipPlan {
                every,
                start: self.flip_start.unwrap_or((run / 3).max(every)),
                window: self.flip_window,
                colours: self.colours.clone(),
                flipper: Flipper::Admin {
                    addr: admin.addr,
                    service: self.service.clone(),
                    token: std::env::var("SWITCHYARD_ADMIN_TOKEN").ok(),
                },
            });
        }
        Ok(spec)
    }
}

impl CompareArgs {
    /// The comparison these arguments describe.
    pub fn spec(&self) -> CompareSpec {
        CompareSpec {
            rounds: self.rounds,
            duration: self.duration,
            warmup: self.warmup,
            connections: self.connections,
            flip: self.flip,
            flip_every: self.flip_every,
            idle_conns: self.idle_conns,
            switchyard: self.switchyard.clone(),
            only: self.only.clone(),
            access_log: self.access_log,
            access_format: self.access_format.clone(),
            request_ids: self.request_ids,
            baseline: self.baseline.clone(),
            protocol: self.protocol,
            streams: self.streams.max(1),
            syscalls: self.syscalls,
        }
    }
}
