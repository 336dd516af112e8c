//! `switchyard-bench`: parse the command line, start the runtime, run the subcommand until it
//! ends or SIGINT/SIGTERM arrives (which drops the run, and with it every child process).

use std::process::ExitCode;

use clap::Parser as _;
use switchyard_bench::cli::{Cli, Command};
use switchyard_bench::{compare, fleet, load, soak, upstream};

fn runtime(threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn interrupted() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

async fn until_interrupted<T>(
    work: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    tokio::select! {
        r = work => r,
        _ = interrupted() => anyhow::bail!("interrupted; child processes stopped"),
    }
}

/// Writes the result on stdout; a closed pipe (`| head`) is not an error.
fn out(text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Upstream(a) => upstream::run_child(a.listen, &a.colour, a.body_size),
        Command::Load(a) => runtime(a.threads)?.block_on(until_interrupted(async {
            let report = load::run(a.spec().await?).await?;
            if a.json {
                out(&format!("{}\n", serde_json::to_string_pretty(&report)?))
            } else {
                out(&report.human())
            }
        })),
        Command::Fleet(a) => runtime(2)?.block_on(until_interrupted(async {
            let report = fleet::run(fleet::FleetSpec {
                switchyard: a.switchyard.clone(),
                etcd: a.etcd.clone(),
                flips: a.flips,
                connections: a.connections,
                interval: a.interval,
            })
            .await?;
            if a.json {
                out(&format!("{}\n", serde_json::to_string_pretty(&report)?))
            } else {
                out(&fleet::markdown(&report))
            }
        })),
        Command::Soak(a) => runtime(2)?.block_on(until_interrupted(async {
            let report = soak::run(soak::SoakSpec {
                switchyard: a.switchyard.clone(),
                duration: a.duration,
                connections: a.connections,
                flip_every: a.flip_every,
                kill_every: a.kill_every,
            })
            .await?;
            if a.json {
                out(&format!("{}\n", serde_json::to_string_pretty(&report)?))
            } else {
                out(&soak::markdown(&report))
            }
        })),
        Command::Compare(a) if a.render.is_some() => {
            let path = a.render.unwrap_or_default();
            let text = std::fs::read_to_string(&path)?;
            out(&compare::markdown(&serde_json::from_str(&text)?))
        }
        Command::Compare(a) => runtime(a.threads)?.block_on(until_interrupted(async {
            let report = compare::run(a.spec()).await?;
            if let Some(path) = &a.save {
                std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
            }
            if a.json {
                out(&format!("{}\n", serde_json::to_string_pretty(&report)?))
            } else {
                out(&compare::markdown(&report))
            }
        })),
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
