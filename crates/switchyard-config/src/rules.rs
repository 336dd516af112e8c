//! The rules a config obeys, written once and applied both to a file (with positions) and to a
//! `Config` built in code (`Config::validate`).
//!
//! Each rule returns the problem as a message without the field's name; callers prefix it.
//! The rules of the edge settings (TLS, headers, compression, rate limits, static files) are
//! in the `edge` submodule.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::time::Duration;

use crate::types::HostPattern;
use crate::units::format_duration;

mod edge;

pub(crate) use edge::*;

/// An inclusive range an integer setting must lie in.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IntRule {
    pub min: i64,
    pub max: i64,
}

impl IntRule {
    /// Checks `value` and converts it to the field's type.
    pub(crate) fn check<T: TryFrom<i64>>(self, value: i64) -> Result<T, String> {
        let in_range = (self.min..=self.max).contains(&value);
        match T::try_from(value) {
            Ok(converted) if in_range => Ok(converted),
            _ if value < self.min && self.max >= i64::from(u32::MAX) => {
                Err(format!("must be at least {}, got {value}", self.min))
            }
            _ => Err(format!(
                "must be between {} and {}, got {value}",
                self.min, self.max
            )),
        }
    }
}

/// A server's relative weight.
pub(crate) const WEIGHT: IntRule = IntRule { min: 1, max: 1000 };
/// Tokio worker threads.
pub(crate) const WORKER_THREADS: IntRule = IntRule { min: 1, max: 1024 };
/// Total attempts of one request.
pub(crate) const ATTEMPTS: IntRule = IntRule { min: 1, max: 10 };
/// A status that may be retried.
pub(crate) const RETRY_STATUS: IntRule = IntRule { min: 500, max: 599 };
/// Health `rise` and `fall`.
pub(crate) const AT_LEAST_ONE: IntRule = IntRule {
    min: 1,
    max: u32::MAX as i64,
};
/// `admin.max_connections`.
pub(crate) const ADMIN_CONNECTIONS: IntRule = IntRule {
    min: 1,
    max: 10_000,
};
/// Counts where 0 is meaningful (0 disables).
pub(crate) const COUNT: IntRule = IntRule {
    min: 0,
    max: u32::MAX as i64,
};
/// Counts stored as `usize`.
pub(crate) const USIZE_COUNT: IntRule = IntRule {
    min: 0,
    max: i64::MAX,
};

/// The smallest `limits.max_header_bytes`.
pub(crate) const MIN_HEADER_BYTES: u64 = 1024;
/// The largest `retry.replay_buffer`.
pub(crate) const MAX_REPLAY_BUFFER: u64 = 64 << 20;

/// A timeout or interval: zero would mean "never wait" and is refused.
pub(crate) fn positive(duration: Duration) -> Result<(), String> {
    if duration.is_zero() {
        Err("must be more than 0 (e.g. \"1s\")".to_string())
    } else {
        Ok(())
    }
}

/// `upper` must not be below `lower` (named `lower_name`).
pub(crate) fn not_below(upper: Duration, lower: Duration, lower_name: &str) -> Result<(), String> {
    if upper < lower {
        Err(format!(
            "{} is less than {lower_name} ({})",
            format_duration(upper),
            format_duration(lower)
        ))
    } else {
        Ok(())
    }
}

/// `retry.budget_ratio`.
pub(crate) fn ratio(value: f64) -> Result<(), String> {
    if (0.0..=1.0).contains(&value) {
        Ok(())
    } else {
        Err(format!("must be between 0.0 and 1.0, got {value}"))
    }
}

/// A service or pool name: it appears in admin URLs, JSON and command lines.
pub(crate) fn name(kind: &str, name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "bad {kind} name \"{name}\": use letters, digits, `-` and `_` only \
             (it appears in admin URLs and on the command line)"
        ))
    }
}

/// A listener: a literal IP address and port.
pub(crate) fn listen_addr(text: &str) -> Result<SocketAddr, String> {
    text.parse().map_err(|_| {
        format!(
            "bad address \"{text}\": a listener is IP:PORT, e.g. \"0.0.0.0:8080\", \
             \"127.0.0.1:9901\" or \"[::]:8080\""
        )
    })
}

/// An upstream server: `IP:PORT` or `NAME:PORT`, the name resolved now (first address).
pub(crate) fn server_addr(text: &str) -> Result<SocketAddr, String> {
    let bad = |why: &str| format!("bad address \"{text}\": {why}");
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return server_port(addr.port())
            .map(|()| addr)
            .map_err(|why| bad(&why));
    }
    let Some((host, port)) = text.rsplit_once(':') else {
        return Err(bad(
            "the port is missing; write HOST:PORT, e.g. \"127.0.0.1:5000\"",
        ));
    };
    if host.is_empty() {
        return Err(bad(
            "the host is missing; write HOST:PORT, e.g. \"127.0.0.1:5000\"",
        ));
    }
    if host.contains(':') {
        return Err(bad(
            "write an IPv6 address in brackets, e.g. \"[::1]:5000\"",
        ));
    }
    if host.contains(char::is_whitespace) || host.contains(['/', '[', ']']) {
        return Err(bad(
            "not a host name; write HOST:PORT, e.g. \"app-green:5000\"",
        ));
    }
    let port: u16 = port
        .parse()
        .map_err(|_| bad(&format!("`{port}` is not a port number (1-65535)")))?;
    server_port(port).map_err(|why| bad(&why))?;
    match (host, port).to_socket_addrs() {
        Ok(mut addrs) => addrs
            .next()
            .ok_or_else(|| bad(&format!("`{host}` resolves to no address"))),
        Err(error) => Err(bad(&format!("cannot resolve `{host}`: {error}"))),
    }
}

/// The host name of a server written `NAME:PORT` (`None` for an IP address).
pub(crate) fn server_host(text: &str) -> Option<String> {
    if text.parse::<SocketAddr>().is_ok() {
        return None;
    }
    text.rsplit_once(':').map(|(host, _)| host.to_string())
}

fn server_port(port: u16) -> Result<(), String> {
    if port == 0 {
        Err("port 0 is not a server port".to_string())
    } else {
        Ok(())
    }
}

/// A `hosts` entry: a host name (lower-cased) or `*.domain`.
pub(crate) fn host_pattern(text: &str) -> Result<HostPattern, String> {
    let bad = |why: &str| format!("bad host \"{text}\": {why}");
    if text.is_empty() {
        return Err(bad("it is empty"));
    }
    if text == "*" {
        return Err(bad("leave out `hosts` to answer any host"));
    }
    if let Some(inner) = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
        return match inner.parse::<std::net::Ipv6Addr>() {
            Ok(ip) => Ok(HostPattern::Exact(format!("[{ip}]"))),
            Err(_) => Err(bad("not an IPv6 address")),
        };
    }
    if text.contains(char::is_whitespace) {
        return Err(bad("it contains a space"));
    }
    if text.contains(':') {
        return Err(bad(
            "a host has no port here (the port of the Host header is ignored)",
        ));
    }
    let (wildcard, name) = match text.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    if name.contains('*') {
        return Err(bad(
            "`*` is only allowed as the whole first label, as in \"*.example.com\"",
        ));
    }
    if !name.is_ascii() {
        return Err(bad(
            "write international names in their xn-- (punycode) form",
        ));
    }
    let labels_ok = name.split('.').all(|label| {
        !label.is_empty()
            && label
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    });
    if !labels_ok {
        return Err(bad(
            "use letters, digits, `-` and `_` in labels separated by single dots",
        ));
    }
    let name = name.to_ascii_lowercase();
    Ok(if wildcard {
        HostPattern::Wildcard(format!(".{name}"))
    } else {
        HostPattern::Exact(name)
    })
}

/// `path_prefix`: starts with `/`; trailing slashes removed; `/` means every path (`None`).
pub(crate) fn path_prefix(text: &str) -> Result<Option<String>, String> {
    if !text.starts_with('/') {
        return Err(format!(
            "bad path prefix \"{text}\": it must start with `/`"
        ));
    }
    if text.contains(|c: char| c.is_whitespace() || c == '?' || c == '#') {
        return Err(format!(
            "bad path prefix \"{text}\": no spaces, `?` or `#` (it matches the path only)"
        ));
    }
    let trimmed = text.trim_end_matches('/');
    Ok((!trimmed.is_empty()).then(|| trimmed.to_string()))
}

/// A path requested by the health checker.
pub(crate) fn request_path(text: &str) -> Result<(), String> {
    if !text.starts_with('/') || text.contains(char::is_whitespace) {
        Err(format!(
            "bad path \"{text}\": it must start with `/` and contain no spaces"
        ))
    } else {
        Ok(())
    }
}

/// `admin.token_env`: the name of an environment variable.
pub(crate) fn env_name(text: &str) -> Result<(), String> {
    if text.is_empty() || text.contains(['=', '\0']) || text.contains(char::is_whitespace) {
        Err(format!(
            "bad environment variable name \"{text}\": it must be non-empty, without `=` or spaces"
        ))
    } else {
        Ok(())
    }
}

/// Without a token the admin API may listen only on a loopback address (SPEC §3).
pub(crate) fn admin_exposure(listen: SocketAddr, has_token: bool) -> Result<(), String> {
    if has_token || listen.ip().is_loopback() {
        Ok(())
    } else {
        Err(format!(
            "the admin API on {listen} would be reachable from other machines without a token: \
             set `admin.token_env`, or listen on a loopback address such as 127.0.0.1"
        ))
    }
}

/// A listener to check against the others.
#[derive(Debug)]
pub(crate) struct Listener {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its key, e.g. `listen.http[0]` or `admin.listen`.
    pub label: String,
}

/// For each listener (in file order) that collides with an earlier one: its index and why.
pub(crate) fn listener_clashes(listeners: &[Listener]) -> Vec<(usize, String)> {
    let covers = |a: IpAddr, b: IpAddr| a == b || a.is_unspecified() || b.is_unspecified();
    let mut clashes = Vec::new();
    for (i, later) in listeners.iter().enumerate() {
        if later.addr.port() == 0 {
            continue;
        }
        let earlier = listeners[..i].iter().find(|earlier| {
            earlier.addr.port() == later.addr.port() && covers(earlier.addr.ip(), later.addr.ip())
        });
        if let Some(earlier) = earlier {
            let why = if earlier.addr == later.addr {
                format!(
                    "duplicate listener {}: {} already listens there",
                    later.addr, earlier.label
                )
            } else {
                format!(
                    "listener {} overlaps {} ({}): both take port {}",
                    later.addr,
                    earlier.addr,
                    earlier.label,
                    later.addr.port()
                )
            };
            clashes.push((i, why));
        }
    }
    clashes
}

/// A service's routing key, to check against the others.
#[derive(Debug)]
pub(crate) struct Route<'a> {
    /// The service's name.
    pub name: &'a str,
    /// Its host patterns; empty means any host.
    pub hosts: &'a [HostPattern],
    /// Its path prefix; `None` means any path.
    pub prefix: Option<&'a str>,
}

/// For each service (in file order) whose routes collide with an earlier one's: index and why.
///
/// Two services collide when they have the same path prefix and either both answer any host
/// or they share a host pattern: the router could not tell which one a request is for.
pub(crate) fn route_collisions(routes: &[Route<'_>]) -> Vec<(usize, String)> {
    let mut collisions = Vec::new();
    for (i, later) in routes.iter().enumerate() {
        for earlier in &routes[..i] {
            if earlier.prefix != later.prefix {
                continue;
            }
            let host = if earlier.hosts.is_empty() && later.hosts.is_empty() {
                Some("any host".to_string())
            } else {
                later
                    .hosts
                    .iter()
                    .find(|h| earlier.hosts.contains(h))
                    .map(|h| format!("host \"{h}\""))
            };
            if let Some(host) = host {
                let path = later
                    .prefix
                    .map_or("any path".to_string(), |p| format!("path prefix \"{p}\""));
                collisions.push((
                    i,
                    format!(
                        "service `{}` has the same route as service `{}` ({host}, {path}); \
                         give one of them other `hosts` or another `path_prefix`",
                        later.name, earlier.name
                    ),
                ));
                break;
            }
        }
    }
    collisions
}
