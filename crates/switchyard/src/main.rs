//! The `switchyard` binary: parse the command line, dispatch, map errors to exit codes.
//!
//! Exit codes (SPEC §1): 0 success, 1 refused or failed (with the reason on stderr),
//! 2 usage error (clap's own).

mod check;
mod cli;
mod client;
mod commands;
mod duration;
mod handover;
mod history;
mod serve;
mod table;
mod wait;

use std::fmt;
use std::process::ExitCode;

use hyper::StatusCode;

use crate::cli::{Cli, Command};
use crate::client::{ApiError, TOKEN_ENV};

/// A failure whose details have already been printed: exit 1 without another message.
#[derive(Debug)]
pub struct Failed;

impl fmt::Display for Failed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("failed")
    }
}

impl std::error::Error for Failed {}

/// jemalloc rather than the system allocator: glibc keeps the memory of closed and parked
/// connections (freed in small pieces between live ones), so the process never shrinks after a
/// burst of connections; jemalloc's background thread gives unused pages back to the system
/// about a second after they are freed (the decay is set in `.cargo/config.toml`). Measured:
/// docs/benchmarks.md.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = Cli::parse_args();
    let result = match cli.command {
        Command::Serve(args) => serve::run(&args),
        Command::Check(args) => check::run(&args.config),
        client_command => commands::run(client_command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            report(&e);
            ExitCode::FAILURE
        }
    }
}

/// Prints an error to stderr: `error: <message>`, then any details the admin API gave.
fn report(e: &anyhow::Error) {
    if e.is::<Failed>() {
        return;
    }
    eprintln!("error: {e:#}");
    if let Some(api) = e.downcast_ref::<ApiError>() {
        for detail in &api.errors {
            eprintln!("{detail}");
        }
        if api.status == StatusCode::UNAUTHORIZED && std::env::var_os(TOKEN_ENV).is_none() {
            eprintln!("hint: set {TOKEN_ENV} to the admin token");
        }
    }
}
