//! The admin client commands: `status`, `switch`, `rollback`, `split`, `reload` (and `history`,
//! in its own module).
//!
//! Each one is a few calls to the admin API (SPEC §3) on a current-thread runtime; answers are
//! printed to stdout, errors returned for `main` to print and turn into exit code 1.

use std::collections::BTreeMap;
use std::io::Write as _;

use anyhow::{Context, anyhow};
use hyper::Method;
use serde::Deserialize;
use serde_json::json;
use switchyard_proxy::SwitchOutcome;
use switchyard_proxy::status::StatusReport;

use crate::cli::{Command, MirrorArgs, RollbackArgs, SplitArgs, StatusArgs, SwitchArgs};
use crate::client::AdminClient;
use crate::duration::human;
use crate::table::render_status;
use crate::wait::{self, Verdict};

/// Runs one client command to completion.
pub fn run(command: Command) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        match command {
            Command::Status(args) => status(args).await,
            Command::Switch(args) => switch(args).await,
            Command::Rollback(args) => rollback(args).await,
            Command::Split(args) => split(args).await,
            Command::Mirror(args) => mirror(args).await,
            Command::Reload(args) => reload(&AdminClient::from_args(&args.admin)?).await,
            Command::Upgrade(args) => upgrade(&AdminClient::from_args(&args.admin)?).await,
            Command::History(args) => crate::history::run(&args).await,
            Command::Fleet(args) => fleet(args).await,
            Command::Serve(_) | Command::Check(_) => Err(anyhow!("not a client command")),
        }
    })
}

/// The admin path of `action` for a service, or its shorthand when no service is named.
fn service_path(service: Option<&str>, action: &str) -> String {
    match service {
        Some(s) => format!("/services/{}/{action}", encode_segment(s)),
        None => format!("/{action}"),
    }
}

/// Percent-encodes what cannot stand in a path segment as it is.
fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The service a command is about: the one named, or the only one there is.
fn service_name(report: &StatusReport, named: Option<&str>) -> anyhow::Result<String> {
    if let Some(name) = named {
        return Ok(name.to_string());
    }
    let mut names = report.services.keys();
    match (names.next(), names.next()) {
        (Some(only), None) => Ok(only.clone()),
        (None, _) => Err(anyhow!("the proxy has no services")),
        _ => Err(anyhow!(
            "the proxy has several services ({}); name one with --service",
            report
                .services
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// Prints `what…` without a newline, so the outcome can follow on the same line.
fn progress(what: &str) {
    print!("{what}… ");
    let _ = std::io::stdout().flush();
}

/// `switchyard status`.
async fn status(args: StatusArgs) -> anyhow::Result<()> {
    let client = AdminClient::from_args(&args.admin)?;
    if args.json {
        let body = client.call(Method::GET, "/status", None).await?;
        let text = String::from_utf8_lossy(&body);
        println!("{}", text.trim_end());
    } else {
        print!("{}", render_status(&client.status().await?));
    }
    Ok(())
}

/// `switchyard switch`.
async fn switch(args: SwitchArgs) -> anyhow::Result<()> {
    let client = AdminClient::from_args(&args.admin)?;
    let report = client.status().await?;
    let named = args.service.as_deref();
    let before = service_name(&report, named)
        .ok()
        .and_then(|name| report.services.get(&name).cloned());
    if let Some(limit) = args.wait_healthy {
        let service = service_name(&report, named)?;
        let colour = args.colour.clone();
        if matches!(
            wait::healthy(&report, &service, &colour),
            Verdict::Pending(_)
        ) {
            progress(&format!("waiting for {colour} to be healthy"));
            let result = wait::poll(&client, limit, |r| wait::healthy(r, &service, &colour)).await;
            match result {
                Ok((Verdict::Moot(why), _)) => println!("stopped waiting: {why}"),
                Ok((_, took)) => println!("healthy after {}", human(took)),
                Err(e) => {
                    println!("gave up");
                    return Err(e);
                }
            }
        }
    }
    let mut body = json!({ "to": args.colour, "force": args.force });
    if let Some(ramp) = args.ramp {
        body["ramp"] = json!(format!("{}ms", ramp.as_millis()));
    }
    let out: SwitchOutcome = client
        .json(Method::POST, &service_path(named, "switch"), Some(&body))
        .await?;
    let ramped = args.ramp.inspect(|ramp| {
        println!(
            "{}: ramping to {} over {} in ten steps (generation {})",
            out.service,
            args.colour,
            human(*ramp),
            out.generation
        );
    });
    match &before {
        _ if ramped.is_some() => {}
        Some(b) if b.active == out.active && b.split.is_some() => println!(
            "{}: split ended, all traffic to {} (generation {})",
            out.service, out.active, out.generation
        ),
        Some(b) if b.active == out.active => println!(
            "{}: already on {} (generation {})",
            out.service, out.active, out.generation
        ),
        _ => print_outcome(&out),
    }
    if let Some(limit) = args.wait_converged {
        wait_converged(&client, &out, limit).await?;
    }
    if let Some(limit) = args.wait_guarded {
        wait_guarded(&client, &out.service, limit).await?;
    }
    if let Some(limit) = args.wait_drained {
        let changed = before.as_ref().is_none_or(|b| b.active != out.active);
        if let Some(old) = out.previous.clone().filter(|_| changed) {
            wait_drained(&client, &out.service, &old, limit).await?;
        }
    }
    Ok(())
}

/// Fleet mode: waits for every live node to have applied the decision `out` made.
async fn wait_converged(
    client: &AdminClient,
    out: &SwitchOutcome,
    limit: std::time::Duration,
) -> anyhow::Result<()> {
    let Some(revision) = out.revision else {
        println!("not in fleet mode: nothing to converge");
        return Ok(());
    };
    progress("waiting for every node of the fleet to apply it");
    match wait::poll(client, limit, |r| wait::converged(r, revision)).await {
        Ok((Verdict::Moot(why), _)) => println!("stopped waiting: {why}"),
        Ok((_, took)) => println!("converged after {}", human(took)),
        Err(e) => {
            println!("gave up");
            return Err(e);
        }
    }
    Ok(())
}

/// Waits for the guard's verdict on the switch just made: an error when it rolled back.
async fn wait_guarded(
    client: &AdminClient,
    service: &str,
    limit: std::time::Duration,
) -> anyhow::Result<()> {
    progress("waiting for the guard's verdict");
    match wait::poll(client, limit, |r| wait::guarded(r, service)).await {
        Ok((Verdict::Moot(why), _)) if why.contains("has no [services") => {
            println!("no guard: {why}");
            Ok(())
        }
        Ok((Verdict::Moot(why), _)) => {
            println!("rolled back");
            Err(anyhow!("{why}"))
        }
        Ok((_, took)) => {
            println!("passed after {}", human(took));
            Ok(())
        }
        Err(e) => {
            println!("gave up");
            Err(e)
        }
    }
}

/// `switchyard fleet`.
async fn fleet(args: StatusArgs) -> anyhow::Result<()> {
    let client = AdminClient::from_args(&args.admin)?;
    let body = client.call(Method::GET, "/status", None).await?;
    let report: StatusReport =
        serde_json::from_slice(&body).context("the admin API answered /status with no report")?;
    let Some(fleet) = &report.fleet else {
        return Err(anyhow!(
            "this proxy is not in fleet mode (its config has no [fleet] table)"
        ));
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(fleet)?);
    } else {
        print!("{}", crate::table::render_fleet(fleet));
    }
    Ok(())
}

/// Waits for `pool` to finish its requests in flight, telling the user how it went.
async fn wait_drained(
    client: &AdminClient,
    service: &str,
    pool: &str,
    limit: std::time::Duration,
) -> anyhow::Result<()> {
    progress(&format!("waiting for {pool} to drain"));
    match wait::poll(client, limit, |r| wait::drained(r, service, pool)).await {
        Ok((Verdict::Moot(why), _)) => println!("stopped waiting: {why}"),
        Ok((_, took)) => println!("drained after {}", human(took)),
        Err(e) => {
            println!("gave up");
            return Err(e);
        }
    }
    Ok(())
}

/// Prints `app: green -> blue (generation 4)`.
fn print_outcome(out: &SwitchOutcome) {
    match &out.previous {
        Some(prev) if *prev != out.active => println!(
            "{}: {prev} -> {} (generation {})",
            out.service, out.active, out.generation
        ),
        _ => println!(
            "{}: now {} (generation {})",
            out.service, out.active, out.generation
        ),
    }
}

/// `switchyard rollback`.
async fn rollback(args: RollbackArgs) -> anyhow::Result<()> {
    let client = AdminClient::from_args(&args.admin)?;
    let body = json!({ "force": args.force });
    let out: SwitchOutcome = client
        .json(
            Method::POST,
            &service_path(args.service.as_deref(), "rollback"),
            Some(&body),
        )
        .await?;
    print_outcome(&out);
    Ok(())
}

/// `switchyard split`.
async fn split(args: SplitArgs) -> anyhow::Result<()> {
    let client = AdminClient::from_args(&args.admin)?;
    let path = service_path(args.service.as_deref(), "split");
    if args.off {
        let out: SwitchOutcome = client.json(Method::DELETE, &path, None).await?;
        println!(
            "{}: split off, all traffic to {} (generation {})",
            out.service, out.active, out.generation
        );
        return Ok(());
    }
    let mut weights = BTreeMap::new();
    for (pool, weight) in &args.weights {
        if weights.insert(pool.clone(), *weight).is_some() {
            return Err(anyhow!("pool `{pool}` is given twice"));
        }
    }
    let mut body = json!(weights);
    if args.force {
        body["force"] = json!(true);
    }
    if args.sticky {
        body["sticky"] = json!(true);
    }
    let out: SwitchOutcome = client.json(Method::PUT, &path, Some(&body)).await?;
    let shares = weights
        .iter()
        .map(|(pool, weight)| format!("{pool}={weight}"))
        .collect::<Vec<_>>()
        .join(" ");
    println!(
        "{}: split {shares}{} (generation {})",
        out.service,
        if args.sticky { ", sticky" } else { "" },
        out.generation
    );
    Ok(())
}

/// `switchyard mirror`.
async fn mirror(args: MirrorArgs) -> anyhow::Result<()> {
    let client = AdminClient::from_args(&args.admin)?;
    let path = service_path(args.service.as_deref(), "mirror");
    let Some(pool) = args.pool.filter(|_| !args.off) else {
        let out: SwitchOutcome = client.json(Method::DELETE, &path, None).await?;
        println!(
            "{}: mirror off (generation {})",
            out.service, out.generation
        );
        return Ok(());
    };
    let body = json!({
        "to": pool,
        "percent": args.percent,
        "methods": args.methods,
        "max_in_flight": args.max_in_flight,
    });
    let out: SwitchOutcome = client.json(Method::PUT, &path, Some(&body)).await?;
    println!(
        "{}: copying {}% of {} to {} (generation {})",
        out.service,
        args.percent,
        args.methods.join(", "),
        pool,
        out.generation
    );
    Ok(())
}

/// The answer to `POST /reload`.
#[derive(Deserialize)]
struct Reloaded {
    generation: u64,
}

/// `switchyard reload`.
async fn reload(client: &AdminClient) -> anyhow::Result<()> {
    let out: Reloaded = client.json(Method::POST, "/reload", None).await?;
    println!("reloaded (generation {})", out.generation);
    Ok(())
}

/// The answer to `POST /upgrade`.
#[derive(Debug, serde::Deserialize)]
struct Upgraded {
    pid: u32,
}

/// `switchyard upgrade`.
async fn upgrade(client: &AdminClient) -> anyhow::Result<()> {
    let out: Upgraded = client.json(Method::POST, "/upgrade", None).await?;
    println!(
        "upgraded: the new process (pid {}) serves; the old one is finishing",
        out.pid
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(service_path(None, "switch"), "/switch");
        assert_eq!(
            service_path(Some("app"), "rollback"),
            "/services/app/rollback"
        );
        assert_eq!(
            service_path(Some("a b/c"), "split"),
            "/services/a%20b%2Fc/split"
        );
    }

    #[test]
    fn the_only_service_is_implied() {
        let mut report = StatusReport {
            generation: 1,
            names: BTreeMap::new(),
            fleet: None,
            services: BTreeMap::new(),
        };
        assert!(service_name(&report, None).is_err());
        assert_eq!(service_name(&report, Some("x")).ok().as_deref(), Some("x"));
        let svc: switchyard_proxy::status::ServiceStatus = serde_json::from_value(json!({
            "active": "green", "previous": null, "pools": {}
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        report.services.insert("app".into(), svc.clone());
        assert_eq!(service_name(&report, None).ok().as_deref(), Some("app"));
        report.services.insert("web".into(), svc);
        assert!(service_name(&report, None).is_err_and(|e| e.to_string().contains("app, web")));
    }
}
