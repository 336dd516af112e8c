//! The command line, as clap derives it (SPEC §1).

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::duration::parse_duration;

/// The default admin API address of the client commands.
pub const DEFAULT_ADMIN: &str = "http://127.0.0.1:9901";

/// How long `--wait-healthy` and `--wait-drained` wait when no DURATION is given.
const DEFAULT_WAIT: &str = "30s";

/// Switchyard: a reverse-proxy load balancer for blue-green deployments.
#[derive(Debug, Parser)]
#[command(name = "switchyard", version, about, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the proxy (on the embedded default config without -c).
    Serve(ServeArgs),
    /// Validate a config file: exit 0 with a summary, or 1 with every problem.
    Check(CheckArgs),
    /// Show services, active colours, pools and servers.
    Status(StatusArgs),
    /// Make COLOUR the active pool.
    Switch(SwitchArgs),
    /// Make the previous colour active again.
    Rollback(RollbackArgs),
    /// Split new requests between pools by weight: `split blue=10 green=90`, or `split --off`.
    Split(SplitArgs),
    /// Copy live requests to a pool (usually the staged colour) and throw its answers away:
    /// `mirror blue --percent 10`, or `mirror --off`.
    Mirror(MirrorArgs),
    /// Re-read the running proxy's config file.
    Reload(ReloadArgs),
    /// Upgrade the running proxy to the binary on disk without dropping a connection (like
    /// SIGUSR2); exits 1 when the new process could not take over.
    Upgrade(ReloadArgs),
    /// Show the switch history: who switched, rolled back, split or reloaded what, and when.
    History(HistoryArgs),
    /// Fleet mode: show every node of the fleet, the decision revision it has applied, and
    /// whether it is alive.
    Fleet(StatusArgs),
}

/// `switchyard history`.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// How many entries, newest first.
    #[arg(long, short = 'n', default_value_t = 20)]
    pub limit: usize,
    /// Print the raw JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// The admin API.
    #[command(flatten)]
    pub admin: AdminArgs,
}

/// `switchyard serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The config file (default: the embedded default config).
    #[arg(short, long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The log line format, overriding `[log] format` (logs go to stdout; the level comes from
    /// SWITCHYARD_LOG).
    #[arg(long, value_enum)]
    pub log_format: Option<LogFormat>,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// `switchyard check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The config file to validate.
    #[arg(short, long, value_name = "FILE")]
    pub config: PathBuf,
}

/// Options every admin client command shares.
#[derive(Debug, Clone, Args)]
pub struct AdminArgs {
    /// The admin API (the token comes from SWITCHYARD_ADMIN_TOKEN when set).
    #[arg(long, value_name = "URL", env = "SWITCHYARD_ADMIN", default_value = DEFAULT_ADMIN)]
    pub admin: String,
}

/// `switchyard status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The admin API.
    #[command(flatten)]
    pub admin: AdminArgs,
    /// Print the raw JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `switchyard switch`.
#[derive(Debug, Args)]
pub struct SwitchArgs {
    /// The pool to make active.
    #[arg(value_name = "COLOUR")]
    pub colour: String,
    /// The service (may be left out when there is exactly one).
    #[arg(long, short)]
    pub service: Option<String>,
    /// Switch even when the target pool has no healthy server.
    #[arg(long)]
    pub force: bool,
    /// Move to COLOUR in ten even steps over DURATION (e.g. `--ramp 60s`) instead of at once;
    /// a rollback meanwhile returns everything to the colour it started from.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub ramp: Option<Duration>,
    /// Before switching, wait until the target pool has a healthy server: 30s, or as long as
    /// `--wait-healthy=DURATION` says (with `=`, so `--wait-healthy blue` names the colour).
    #[arg(long, value_name = "DURATION", num_args = 0..=1, require_equals = true, default_missing_value = DEFAULT_WAIT, value_parser = parse_duration)]
    pub wait_healthy: Option<Duration>,
    /// After switching, wait until the old pool has no request in flight: 30s, or as long as
    /// `--wait-drained=DURATION` says.
    #[arg(long, value_name = "DURATION", num_args = 0..=1, require_equals = true, default_missing_value = DEFAULT_WAIT, value_parser = parse_duration)]
    pub wait_drained: Option<Duration>,
    /// Fleet mode: after switching, wait until every live node of the fleet has applied the
    /// switch: 30s, or as long as `--wait-converged=DURATION` says.
    #[arg(long, value_name = "DURATION", num_args = 0..=1, require_equals = true, default_missing_value = DEFAULT_WAIT, value_parser = parse_duration)]
    pub wait_converged: Option<Duration>,
    /// After switching, wait for the guard's verdict (`[services.NAME.guard]`): exit 0 when
    /// its window passed, 1 when it rolled back; 10m at most, or `--wait-guarded=DURATION`.
    #[arg(long, value_name = "DURATION", num_args = 0..=1, require_equals = true, default_missing_value = "10m", value_parser = parse_duration)]
    pub wait_guarded: Option<Duration>,
    /// The admin API.
    #[command(flatten)]
    pub admin: AdminArgs,
}

/// `switchyard rollback`.
#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The service (may be left out when there is exactly one).
    #[arg(long, short)]
    pub service: Option<String>,
    /// Roll back even when the previous pool has no healthy server.
    #[arg(long)]
    pub force: bool,
    /// The admin API.
    #[command(flatten)]
    pub admin: AdminArgs,
}

/// `switchyard split`.
#[derive(Debug, Args)]
pub struct SplitArgs {
    /// Weights per pool, e.g. `blue=10 green=90`.
    #[arg(value_name = "POOL=WEIGHT", required_unless_present = "off", conflicts_with = "off", value_parser = parse_weight)]
    pub weights: Vec<(String, u32)>,
    /// End the split: all new requests go to the active pool again.
    #[arg(long)]
    pub off: bool,
    /// Split even when no pool named has a healthy server.
    #[arg(long, conflicts_with = "off")]
    pub force: bool,
    /// Keep each client on the pool it first got (by a cookie) while the split lasts.
    #[arg(long, conflicts_with = "off")]
    pub sticky: bool,
    /// The service (may be left out when there is exactly one).
    #[arg(long, short)]
    pub service: Option<String>,
    /// The admin API.
    #[command(flatten)]
    pub admin: AdminArgs,
}

/// `switchyard mirror`.
#[derive(Debug, Args)]
pub struct MirrorArgs {
    /// The pool the copies go to.
    #[arg(
        value_name = "POOL",
        required_unless_present = "off",
        conflicts_with = "off"
    )]
    pub pool: Option<String>,
    /// The share of requests copied, 0 to 100.
    #[arg(long, default_value_t = 100)]
    pub percent: u32,
    /// Only requests with these methods are copied (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "GET,HEAD")]
    pub methods: Vec<String>,
    /// Copies in flight at most; beyond it a copy is skipped.
    #[arg(long, default_value_t = 64)]
    pub max_in_flight: u32,
    /// End the mirror.
    #[arg(long)]
    pub off: bool,
    /// The service (may be left out when there is exactly one).
    #[arg(long, short)]
    pub service: Option<String>,
    /// The admin API.
    #[command(flatten)]
    pub admin: AdminArgs,
}

/// `switchyard reload`.
#[derive(Debug, Args)]
pub struct ReloadArgs {
    /// The admin API.
    #[command(flatten)]
    pub admin: AdminArgs,
}

impl Cli {
    /// Parses the process's command line, exiting as clap does on a usage error (code 2), with
    /// a hint when a wait flag's duration was written after a space (`--wait-healthy 60s`).
    pub fn parse_args() -> Cli {
        let args: Vec<OsString> = std::env::args_os().collect();
        match Cli::try_parse_from(&args) {
            Ok(cli) => cli,
            Err(e) => {
                let _ = e.print();
                if e.use_stderr() {
                    if let Some(hint) = spaced_wait_value(&args) {
                        eprintln!("\nhint: {hint}");
                    }
                }
                std::process::exit(e.exit_code());
            }
        }
    }
}

/// The fix for `--wait-healthy 60s` (the value must follow `=`), when the arguments hold one.
fn spaced_wait_value(args: &[OsString]) -> Option<String> {
    args.windows(2).find_map(|pair| {
        let flag = pair[0].to_str()?;
        let value = pair[1].to_str()?;
        (matches!(
            flag,
            "--wait-healthy" | "--wait-drained" | "--wait-converged" | "--wait-guarded"
        ) && parse_duration(value).is_ok())
        .then(|| format!("give the wait its duration with `=`: {flag}={value}"))
    })
}

/// Parses `POOL=WEIGHT`.
fn parse_weight(s: &str) -> Result<(String, u32), String> {
    let (pool, weight) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not POOL=WEIGHT"))?;
    let pool = pool.trim();
    if pool.is_empty() {
        return Err(format!("`{s}` names no pool"));
    }
    let weight = weight
        .trim()
        .parse::<u32>()
        .map_err(|e| format!("`{s}`: the weight must be a whole number ({e})"))?;
    Ok((pool.to_string(), weight))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn weights_parse() {
        assert_eq!(parse_weight("blue=10"), Ok(("blue".to_string(), 10)));
        assert!(parse_weight("blue").is_err());
        assert!(parse_weight("=3").is_err());
        assert!(parse_weight("blue=-1").is_err());
    }

    #[test]
    fn wait_flags_take_an_optional_duration() {
        let cli = Cli::try_parse_from(["switchyard", "switch", "blue", "--wait-drained"]);
        let Ok(Cli {
            command: Command::Switch(args),
        }) = cli
        else {
            panic!("switch did not parse: {cli:?}");
        };
        assert_eq!(args.wait_drained, Some(Duration::from_secs(30)));
        assert_eq!(args.wait_healthy, None);
        let cli = Cli::try_parse_from(["switchyard", "switch", "blue", "--wait-healthy=250ms"]);
        let Ok(Cli {
            command: Command::Switch(args),
        }) = cli
        else {
            panic!("switch did not parse: {cli:?}");
        };
        assert_eq!(args.wait_healthy, Some(Duration::from_millis(250)));
        // The colour after a bare flag is the colour, not the flag's value.
        let cli = Cli::try_parse_from(["switchyard", "switch", "--wait-healthy", "green"]);
        let Ok(Cli {
            command: Command::Switch(args),
        }) = cli
        else {
            panic!("switch did not parse: {cli:?}");
        };
        assert_eq!(args.colour, "green");
        assert_eq!(args.wait_healthy, Some(Duration::from_secs(30)));
        let cli = Cli::try_parse_from([
            "switchyard",
            "switch",
            "--wait-healthy",
            "--wait-drained=1m",
            "blue",
        ]);
        let Ok(Cli {
            command: Command::Switch(args),
        }) = cli
        else {
            panic!("switch did not parse: {cli:?}");
        };
        assert_eq!(
            (args.colour.as_str(), args.wait_drained),
            ("blue", Some(Duration::from_secs(60)))
        );
    }

    #[test]
    fn a_spaced_wait_duration_gets_a_hint() {
        let args = |a: &[&str]| a.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(
            spaced_wait_value(&args(&[
                "switchyard",
                "switch",
                "blue",
                "--wait-healthy",
                "60s"
            ])),
            Some("give the wait its duration with `=`: --wait-healthy=60s".to_string())
        );
        assert!(
            Cli::try_parse_from(["switchyard", "switch", "blue", "--wait-healthy", "60s"]).is_err()
        );
        assert_eq!(
            spaced_wait_value(&args(&["switchyard", "switch", "--wait-drained", "blue"])),
            None
        );
    }

    #[test]
    fn split_needs_weights_or_off() {
        assert!(Cli::try_parse_from(["switchyard", "split"]).is_err());
        assert!(Cli::try_parse_from(["switchyard", "split", "--off", "blue=1"]).is_err());
        assert!(Cli::try_parse_from(["switchyard", "split", "--off"]).is_ok());
        assert!(Cli::try_parse_from(["switchyard", "split", "blue=1", "green=9"]).is_ok());
    }
}
