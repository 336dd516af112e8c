//! `switchyard check -c FILE`: validate a config like `nginx -t`.

use std::net::SocketAddr;
use std::path::Path;

use switchyard_config::{Config, ConfigErrors};

use crate::Failed;

/// Validates `path`: prints a one-line summary and succeeds, or prints every problem
/// (`FILE:LINE:COL: message`, one per line) to stderr and fails.
pub fn run(path: &Path) -> anyhow::Result<()> {
    let config = load(path)?;
    println!("{}: ok ({})", path.display(), summary(&config));
    Ok(())
}

/// Loads and validates a config file, printing every problem to stderr on failure.
pub fn load(path: &Path) -> anyhow::Result<Config> {
    switchyard_config::load_file(path).map_err(|errors| report(&errors))
}

/// Prints each config problem on its own line to stderr.
pub fn report(errors: &ConfigErrors) -> anyhow::Error {
    for e in &errors.0 {
        eprintln!("{e}");
    }
    Failed.into()
}

/// `1 service, 2 pools, 2 servers; listening on 0.0.0.0:8080; admin on 127.0.0.1:9901`.
pub fn summary(config: &Config) -> String {
    let services = config.services.len();
    let pools: usize = config.services.values().map(|s| s.pools.len()).sum();
    let servers: usize = config
        .services
        .values()
        .flat_map(|s| s.pools.values())
        .map(|p| p.servers.len())
        .sum();
    let mut listen = match (
        config.listen.http.is_empty(),
        config.listen.https.is_empty(),
    ) {
        (true, true) => "no listener".to_string(),
        (false, _) => format!("listening on {}", join(&config.listen.http)),
        (true, false) => String::from("listening"),
    };
    if !config.listen.https.is_empty() {
        let sep = if config.listen.http.is_empty() {
            " on"
        } else {
            ","
        };
        listen.push_str(&format!(
            "{sep} https on {} ({} certificate{})",
            join(&config.listen.https),
            config.tls.certs.len(),
            if config.tls.certs.len() == 1 { "" } else { "s" }
        ));
        if config.listen.redirect_https {
            listen.push_str(", http redirects to https");
        }
    }
    let admin = match (config.admin.listen, &config.admin.token_env) {
        (None, _) => "admin off".to_string(),
        (Some(addr), None) => format!("admin on {addr}"),
        (Some(addr), Some(var)) => format!("admin on {addr}, token from ${var}"),
    };
    format!(
        "{}, {}, {}; {listen}; {admin}",
        plural(services, "service"),
        plural(pools, "pool"),
        plural(servers, "server"),
    )
}

fn join(addrs: &[SocketAddr]) -> String {
    addrs
        .iter()
        .map(SocketAddr::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_config_summary() {
        assert_eq!(
            summary(&switchyard_config::default_config()),
            "1 service, 2 pools, 2 servers; listening on 0.0.0.0:8080; admin on 127.0.0.1:9901"
        );
    }

    #[test]
    fn plurals() {
        assert_eq!(plural(0, "pool"), "0 pools");
        assert_eq!(plural(1, "pool"), "1 pool");
        assert_eq!(plural(3, "pool"), "3 pools");
    }
}
