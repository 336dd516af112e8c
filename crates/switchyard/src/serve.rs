//! `switchyard serve`: load the config, start logging and the runtime, bind, and hand over to
//! the proxy until SIGTERM or SIGINT (SIGHUP reloads the config file).

use std::io::IsTerminal as _;
use std::time::Duration;

use anyhow::Context;
use switchyard_config::Config;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;

use crate::check;
use crate::cli::{LogFormat, ServeArgs};

/// The environment variable holding the log filter (`info` when unset).
pub const LOG_ENV: &str = "SWITCHYARD_LOG";

/// How long the runtime may take to wind down once the proxy has stopped.
const RUNTIME_SHUTDOWN: Duration = Duration::from_secs(1);

/// Runs the proxy until a stop signal; returns once it has stopped gracefully.
pub fn run(args: &ServeArgs) -> anyhow::Result<()> {
    // Before any thread starts: sockets handed over by systemd or an upgrading process.
    let inherited = crate::handover::inherited();
    let mut config = match &args.config {
        Some(path) => check::load(path)?,
        None => switchyard_config::default_config(),
    };
    let format = args.log_format.unwrap_or(match config.log.format {
        switchyard_config::LogFormat::Text => LogFormat::Text,
        switchyard_config::LogFormat::Json => LogFormat::Json,
    });
    // The command line's format applies to the access log as well.
    config.log.format = match format {
        LogFormat::Text => switchyard_config::LogFormat::Text,
        LogFormat::Json => switchyard_config::LogFormat::Json,
    };
    init_logging(format, config.log.access)?;
    let source = config.source.as_ref().map_or_else(
        || switchyard_config::DEFAULT_CONFIG_NAME.to_string(),
        |p| p.display().to_string(),
    );
    tracing::info!(version = env!("CARGO_PKG_VERSION"), config = %source, pid = std::process::id(), "starting switchyard");
    match switchyard_proxy::raise_fd_limit() {
        Ok((before, after)) if before != after => {
            let show = |v: Option<u64>| v.map_or("unlimited".to_string(), |v| v.to_string());
            tracing::info!(from = %show(before), to = %show(after), "raised the open-file limit to its hard limit");
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot raise the open-file limit"),
    }
    let runtime = runtime(&config)?;
    let result = runtime.block_on(async move {
        // Started by an upgrade: the old process's decisions, and whom to tell when ready.
        let successor = crate::handover::Successor::connect().await?;
        let listeners = if inherited.is_empty() {
            switchyard_proxy::Listeners::bind(&config).await?
        } else {
            tracing::info!(sockets = inherited.len(), "serving on inherited sockets");
            switchyard_proxy::Listeners::from_inherited(&config, inherited).await?
        };
        let upgrader =
            std::sync::Arc::new(crate::handover::Upgrader::new(listeners.handover_fds()?)?);
        let access = match &config.log.access_file {
            Some(path) => switchyard_proxy::AccessSink::File(path.clone()),
            None => switchyard_proxy::AccessSink::Stdout,
        };
        let history_file = config.state.file.is_some();
        // Fleet mode: read etcd's decisions before serving (when it answers within a moment).
        let fleet = match &config.fleet {
            Some(f) => Some(switchyard_proxy::fleet::Fleet::connect(f).await),
            None => None,
        };
        let mut builder = switchyard_proxy::Builder::new(config, listeners).access_log(access);
        if let Some(fleet) = fleet {
            builder = builder.fleet(fleet);
        }
        if let Some(s) = &successor {
            builder = builder.decisions(s.decisions.clone());
        }
        let handle = builder.start()?;
        match successor {
            Some(s) => s.ready(&handle, history_file).await?,
            None => switchyard_proxy::notify::send("READY=1"),
        }
        let for_upgrade = handle.clone();
        switchyard_proxy::signals::serve_until_signal_or_upgrade(handle, move || {
            let handle = for_upgrade.clone();
            let upgrader = upgrader.clone();
            async move {
                match upgrader.upgrade(&handle).await {
                    Ok(pid) => {
                        tracing::info!(pid, "upgrade complete: the new process serves");
                        Ok(pid)
                    }
                    Err(e) => {
                        let why = format!("{e:#}");
                        tracing::error!(error = %why, "upgrade failed; this process keeps serving");
                        Err(why)
                    }
                }
            }
        })
        .await
        .context("cannot listen for signals")?;
        Ok(())
    });
    runtime.shutdown_timeout(RUNTIME_SHUTDOWN);
    result
}

/// The async runtime: with one worker (configured, or by default on a one-core machine) a
/// single-thread runtime, which runs every task on the thread that serves (a work-stealing
/// scheduler with one worker has nothing to steal, and only adds its atomic operations to
/// each wake-up); else a multi-thread runtime with that many workers (default: one per core).
fn runtime(config: &Config) -> anyhow::Result<tokio::runtime::Runtime> {
    let workers = config
        .runtime
        .worker_threads
        .filter(|n| *n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
    let mut builder = if workers == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(workers);
        builder
    };
    builder
        .enable_all()
        .thread_name("switchyard-worker")
        .build()
        .context("cannot start the async runtime")
}

/// Logs to stdout, filtered by `SWITCHYARD_LOG`, as text or JSON lines. The access log does
/// not go through this subscriber: the proxy's buffered writer writes it (to stdout, or to
/// `[log] access_file`), in the same format, when `[log] access` is on.
fn init_logging(format: LogFormat, access: bool) -> anyhow::Result<()> {
    let mut filter = EnvFilter::builder()
        .with_default_directive(LevelFilter::INFO.into())
        .with_env_var(LOG_ENV)
        .from_env()
        .with_context(|| format!("{LOG_ENV} is not a valid log filter"))?;
    let filter_mentions_access =
        std::env::var(LOG_ENV).is_ok_and(|f| f.contains("switchyard::access"));
    if !access && !filter_mentions_access {
        filter = filter.add_directive(
            "switchyard::access=off"
                .parse()
                .context("the access-log directive parses")?,
        );
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stdout);
    let installed = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stdout().is_terminal())
            .try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    installed.map_err(|e| anyhow::anyhow!("cannot start logging: {e}"))
}
