//! `Config::validate`: the file's rules applied to a `Config` built in code.
//!
//! Problems have no position (line 0, column 0) and the origin `<in code>`; each message starts
//! with the dotted name of the field, as in a file (`services.app.retry.attempts: …`).
//! The edge settings are checked in the `edge` submodule. Nothing here looks at the disk.

mod edge;

use std::net::SocketAddr;
use std::time::Duration;

use crate::error::{ConfigError, ConfigErrors};
use crate::rules::{self, IntRule, Listener, Route};
use crate::types::{Config, ServiceConfig};

/// The origin given to problems of a `Config` built in code.
pub const IN_CODE_ORIGIN: &str = "<in code>";

impl Config {
    /// Checks a `Config` built in code against the rules a config file obeys: listeners that
    /// do not collide, an admin API that is loopback-only unless it has a token, at least one
    /// service, non-empty pools, `active` naming a pool, values in range, routes that do not
    /// collide, and the edge settings (https listeners and certificates in agreement, valid
    /// response headers, compression types, rate limits and static entries). Returns every
    /// problem found (line 0, column 0, origin `<in code>`). Paths are not looked up on disk.
    ///
    /// A `Config` from [`crate::parse_str`] or [`crate::load_file`] always passes.
    pub fn validate(&self) -> Result<(), ConfigErrors> {
        let mut problems = Problems::default();
        self.check_listeners(&mut problems);
        let limits = &self.limits;
        if (limits.max_header_bytes as u64) < rules::MIN_HEADER_BYTES {
            problems.push("limits.max_header_bytes", "must be at least 1KiB");
        }
        problems.positive("limits.header_timeout", limits.header_timeout);
        problems.positive("limits.keepalive_timeout", limits.keepalive_timeout);
        problems.positive("limits.body_timeout", limits.body_timeout);
        problems.positive("limits.send_timeout", limits.send_timeout);
        self.check_edge(&mut problems);
        if let Some(threads) = self.runtime.worker_threads {
            problems.int(
                "runtime.worker_threads",
                rules::WORKER_THREADS,
                threads as u64,
            );
        }
        if self
            .state
            .file
            .as_ref()
            .is_some_and(|f| f.as_os_str().is_empty())
        {
            problems.push("state.file", "the path is empty; use None to keep no state");
        }
        if let Some(fleet) = &self.fleet {
            if fleet.etcd.is_empty() {
                problems.push("fleet.etcd", "name at least one endpoint");
            }
            for e in &fleet.etcd {
                if let Err(why) = crate::fleet::endpoint(e) {
                    problems.push("fleet.etcd", why);
                }
            }
            if let Err(why) = crate::fleet::prefix(&fleet.prefix) {
                problems.push("fleet.prefix", why);
            }
            if let Some(Err(why)) = fleet.node.as_deref().map(crate::fleet::node) {
                problems.push("fleet.node", why);
            }
        }
        if self.services.is_empty() {
            problems.push("services", "no services: add at least one");
        }
        for (key, service) in &self.services {
            check_service(&mut problems, key, service);
            edge::check_service_edge(&mut problems, &format!("services.{key}"), service);
        }
        let routes: Vec<Route<'_>> = self
            .services
            .values()
            .map(|s| Route {
                name: &s.name,
                hosts: &s.hosts,
                prefix: s.path_prefix.as_deref(),
            })
            .collect();
        for (i, why) in rules::route_collisions(&routes) {
            problems.push(&format!("services.{}", routes[i].name), why);
        }
        problems.finish()
    }

    fn check_listeners(&self, problems: &mut Problems) {
        if self.listen.http.is_empty() && self.listen.https.is_empty() {
            problems.push("listen.http", "no client listener");
        }
        let label = |kind: &'static str| {
            move |(i, &addr): (usize, &SocketAddr)| Listener {
                addr,
                label: format!("listen.{kind}[{i}]"),
            }
        };
        let http = self.listen.http.iter().enumerate().map(label("http"));
        let https = self.listen.https.iter().enumerate().map(label("https"));
        let mut listeners: Vec<Listener> = http.chain(https).collect();
        if let Some(addr) = self.admin.listen {
            let has_token = self.admin.token_env.is_some();
            problems.result("admin.listen", rules::admin_exposure(addr, has_token));
            let label = "admin.listen".to_string();
            listeners.push(Listener { addr, label });
        }
        if let Some(name) = &self.admin.token_env {
            problems.result("admin.token_env", rules::env_name(name));
        }
        for (i, why) in rules::listener_clashes(&listeners) {
            problems.push(&listeners[i].label, why);
        }
    }
}

fn check_service(problems: &mut Problems, key: &str, service: &ServiceConfig) {
    let base = format!("services.{key}");
    let p = |field: &str| format!("{base}.{field}");
    problems.result(&base, rules::name("service", key));
    if service.name != key {
        let why = format!(
            "`name` is \"{}\" but the service's key is \"{key}\"",
            service.name
        );
        problems.push(&p("name"), why);
    }
    for (i, host) in service.hosts.iter().enumerate() {
        let normal = rules::host_pattern(&host.to_string());
        if normal.as_ref() != Ok(host) {
            let why = normal.err().unwrap_or_else(|| {
                "not in normal form (lower case; a wildcard is stored as \".example.com\")".into()
            });
            problems.push(&format!("{}[{i}]", p("hosts")), why);
        }
    }
    if let Some(prefix) = &service.path_prefix {
        let normal = rules::path_prefix(prefix);
        if normal.as_ref() != Ok(&Some(prefix.clone())) {
            let why = normal.err().unwrap_or_else(|| {
                "not in normal form: no trailing `/`, and None rather than \"/\"".into()
            });
            problems.push(&p("path_prefix"), why);
        }
    }
    if service.pools.is_empty() {
        problems.push(&base, "the service has no pools");
    } else if !service.pools.contains_key(&service.active) {
        let pools = service.pools.keys().cloned().collect::<Vec<_>>().join(", ");
        let why = format!(
            "active names pool `{}` which this service does not have; pools are: {pools}",
            service.active
        );
        problems.push(&p("active"), why);
    }
    for (name, pool) in &service.pools {
        let path = format!("{}.{name}", p("pools"));
        problems.result(&path, rules::name("pool", name));
        if pool.servers.is_empty() {
            problems.push(&path, format!("pool `{name}` has no servers"));
        }
        for (i, server) in pool.servers.iter().enumerate() {
            let server_path = format!("{path}.servers[{i}]");
            if server.addr.port() == 0 {
                problems.push(&server_path, "port 0 is not a server port");
            }
            if pool.servers[..i].iter().any(|s| s.addr == server.addr) {
                problems.push(
                    &server_path,
                    format!("server {} is listed twice", server.addr),
                );
            }
            problems.int(
                &format!("{server_path}.weight"),
                rules::WEIGHT,
                u64::from(server.weight),
            );
        }
    }
    let health = &service.health;
    problems.result(&p("health.path"), rules::request_path(&health.path));
    problems.positive(&p("health.interval"), health.interval);
    problems.positive(&p("health.timeout"), health.timeout);
    let status_ok = (100..=599).contains(&health.expect_min)
        && (100..=599).contains(&health.expect_max)
        && health.expect_min <= health.expect_max;
    if !status_ok {
        let why = format!(
            "expect_min {} and expect_max {} must be statuses (100-599) in order",
            health.expect_min, health.expect_max
        );
        problems.push(&p("health"), why);
    }
    problems.int(
        &p("health.rise"),
        rules::AT_LEAST_ONE,
        u64::from(health.rise),
    );
    problems.int(
        &p("health.fall"),
        rules::AT_LEAST_ONE,
        u64::from(health.fall),
    );
    let upstream = &service.upstream;
    problems.positive(&p("upstream.connect_timeout"), upstream.connect_timeout);
    problems.positive(&p("upstream.response_timeout"), upstream.response_timeout);
    problems.positive(&p("upstream.idle_timeout"), upstream.idle_timeout);
    let retry = &service.retry;
    problems.int(
        &p("retry.attempts"),
        rules::ATTEMPTS,
        u64::from(retry.attempts),
    );
    for (i, &status) in retry.on_status.iter().enumerate() {
        problems.int(
            &format!("{}[{i}]", p("retry.on_status")),
            rules::RETRY_STATUS,
            u64::from(status),
        );
    }
    let order = rules::not_below(retry.backoff_max, retry.backoff_base, "backoff_base");
    problems.result(&p("retry.backoff_max"), order);
    problems.result(&p("retry.budget_ratio"), rules::ratio(retry.budget_ratio));
    if retry.replay_buffer as u64 > rules::MAX_REPLAY_BUFFER {
        problems.push(&p("retry.replay_buffer"), "must be at most 64MiB");
    }
    if let Some(mirror) = &service.mirror {
        if !service.pools.contains_key(&mirror.to) {
            problems.push(
                &p("mirror.to"),
                format!("the service has no pool `{}`", mirror.to),
            );
        }
        if mirror.percent > 100 {
            problems.push(&p("mirror.percent"), "must be 0 to 100");
        }
        if mirror.max_in_flight == 0 {
            problems.push(&p("mirror.max_in_flight"), "must be at least 1");
        }
    }
    if let Some(guard) = &service.guard {
        problems.positive(&p("guard.window"), guard.window);
        problems.result(
            &p("guard.max_error_rate"),
            rules::ratio(guard.max_error_rate),
        );
        if guard.min_requests == 0 {
            problems.push(&p("guard.min_requests"), "must be at least 1");
        }
        if !(guard.max_p99_factor.is_finite() && guard.max_p99_factor >= 0.0) {
            problems.push(&p("guard.max_p99_factor"), "must be 0 (off) or more");
        }
    }
    let ejection = &service.ejection;
    problems.positive(&p("ejection.base"), ejection.base);
    problems.positive(&p("ejection.max"), ejection.max);
    problems.result(
        &p("ejection.max"),
        rules::not_below(ejection.max, ejection.base, "base"),
    );
}

/// Problems found so far.
#[derive(Default)]
struct Problems(Vec<ConfigError>);

impl Problems {
    fn push(&mut self, path: &str, why: impl AsRef<str>) {
        let message = format!("{path}: {}", why.as_ref());
        self.0.push(ConfigError::unplaced(IN_CODE_ORIGIN, message));
    }

    fn result(&mut self, path: &str, result: Result<(), String>) {
        if let Err(why) = result {
            self.push(path, why);
        }
    }

    fn positive(&mut self, path: &str, duration: Duration) {
        self.result(path, rules::positive(duration));
    }

    fn int(&mut self, path: &str, rule: IntRule, value: u64) {
        let value = i64::try_from(value).unwrap_or(i64::MAX);
        self.result(path, rule.check::<i64>(value).map(|_| ()));
    }

    fn finish(self) -> Result<(), ConfigErrors> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrors(self.0))
        }
    }
}
