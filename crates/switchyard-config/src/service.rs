//! Checking one `[services.NAME]`: routing keys, pools and servers, and the per-service
//! health, upstream, retry and ejection tables (its edge options: `service_edge.rs`).

use std::collections::BTreeMap;
use std::ops::Range;

use toml::Spanned;

use crate::raw::{
    RawEjection, RawHealth, RawPool, RawPreview, RawRetry, RawServer, RawService, RawUpstream,
};
use crate::rules;
use crate::types::{
    AllDown, Balance, EjectionConfig, HealthConfig, PoolConfig, PreviewConfig, RetryConfig,
    ServerConfig, ServiceConfig, UpstreamConfig,
};
use crate::units::parse_status_range;
use crate::validate::Checker;

impl Checker<'_, '_> {
    /// One service; `name` is its key under `[services]`.
    pub(crate) fn service(&mut self, name: &Spanned<String>, raw: &RawService) -> ServiceConfig {
        let base = format!("services.{}", name.get_ref());
        self.check(&name.span(), &base, rules::name("service", name.get_ref()));

        let mut hosts = Vec::new();
        for (i, host) in raw.hosts.iter().flatten().enumerate() {
            let path = self.item(&format!("{base}.hosts"), i);
            if let Some(pattern) =
                self.check(&host.span(), &path, rules::host_pattern(host.get_ref()))
            {
                if hosts.contains(&pattern) {
                    self.error(
                        &host.span(),
                        &path,
                        format!("host \"{pattern}\" is listed twice"),
                    );
                } else {
                    hosts.push(pattern);
                }
            }
        }
        let path_prefix = raw.path_prefix.as_ref().and_then(|prefix| {
            let path = format!("{base}.path_prefix");
            self.check(&prefix.span(), &path, rules::path_prefix(prefix.get_ref()))
                .flatten()
        });

        let pools = self.pools(name, &base, raw);
        let active = self.active(name, &base, raw, &pools);

        let mut service = ServiceConfig {
            name: name.get_ref().clone(),
            hosts,
            path_prefix,
            active,
            pools,
            health: self.health(&base, raw.health.as_ref().unwrap_or(&RawHealth::default())),
            upstream: self.upstream(
                &base,
                raw.upstream.as_ref().unwrap_or(&RawUpstream::default()),
            ),
            retry: self.retry(&base, raw.retry.as_ref().unwrap_or(&RawRetry::default())),
            ejection: self.ejection(
                &base,
                raw.ejection.as_ref().unwrap_or(&RawEjection::default()),
            ),
            preview: self.preview(&base, raw.preview.as_ref()),
            guard: raw.guard.as_ref().map(|g| self.guard(&base, g)),
            mirror: raw.mirror.as_ref().and_then(|m| self.mirror(&base, m, raw)),
            ..ServiceConfig::new("", "", BTreeMap::new())
        };
        self.service_edge(&base, raw, &mut service);
        service
    }

    /// `[services.NAME.preview]`: a header and a cookie name, each an HTTP token.
    fn preview(&mut self, base: &str, raw: Option<&RawPreview>) -> PreviewConfig {
        let Some(raw) = raw else {
            return PreviewConfig::default();
        };
        PreviewConfig {
            // Header names are compared in lower case; cookie names as written.
            header: self
                .preview_token(base, "header", raw.header.as_ref())
                .map(|h| h.to_ascii_lowercase()),
            cookie: self.preview_token(base, "cookie", raw.cookie.as_ref()),
        }
    }

    fn preview_token(
        &mut self,
        base: &str,
        key: &str,
        value: Option<&Spanned<String>>,
    ) -> Option<String> {
        let value = value?;
        let text = value.get_ref();
        let token = !text.is_empty()
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        let checked = if token {
            Ok(text.clone())
        } else {
            Err(format!(
                "\"{text}\" is not a valid {key} name (letters, digits and !#$%&'*+-.^_`|~)"
            ))
        };
        self.check(&value.span(), &format!("{base}.preview.{key}"), checked)
    }

    fn active(
        &mut self,
        name: &Spanned<String>,
        base: &str,
        raw: &RawService,
        pools: &BTreeMap<String, PoolConfig>,
    ) -> String {
        let path = format!("{base}.active");
        let pool_list = || pools.keys().cloned().collect::<Vec<_>>().join(", ");
        let Some(active) = &raw.active else {
            if !self.removed(&path) {
                let hint = if pools.is_empty() {
                    String::new()
                } else {
                    format!(" (pools: {})", pool_list())
                };
                self.error(
                    &name.span(),
                    base,
                    format!("`active` is missing: name the pool that takes traffic{hint}"),
                );
            }
            return String::new();
        };
        let wanted = active.get_ref();
        // A pool of that name taken out as a problem was reported already.
        let pool_removed = self.removed(&format!("{base}.pools.{wanted}"));
        if !pools.contains_key(wanted) && !pool_removed && !pools.is_empty() {
            self.error(
                &active.span(),
                &path,
                format!(
                    "active names pool `{wanted}` which this service does not have; pools are: {}",
                    pool_list()
                ),
            );
        }
        wanted.clone()
    }

    fn pools(
        &mut self,
        name: &Spanned<String>,
        base: &str,
        raw: &RawService,
    ) -> BTreeMap<String, PoolConfig> {
        let pools_path = format!("{base}.pools");
        let mut pools = BTreeMap::new();
        let Some(raw_pools) = &raw.pools else {
            if !self.removed(&pools_path) {
                self.error(
                    &name.span(),
                    base,
                    format!(
                        "the service has no pools: add [{pools_path}] with at least one pool, \
                         e.g. green = [\"127.0.0.1:5000\"]"
                    ),
                );
            }
            return pools;
        };
        if raw_pools.get_ref().is_empty() && !self.removed(&pools_path) {
            self.error(
                &raw_pools.span(),
                &pools_path,
                "the service has no pools: add at least one, e.g. green = [\"127.0.0.1:5000\"]",
            );
        }
        for (pool_name, raw_pool) in raw_pools.get_ref() {
            let path = format!("{pools_path}.{}", pool_name.get_ref());
            self.check(
                &pool_name.span(),
                &path,
                rules::name("pool", pool_name.get_ref()),
            );
            let pool = self.pool(&path, pool_name, raw_pool);
            pools.insert(pool_name.get_ref().clone(), pool);
        }
        pools
    }

    fn pool(
        &mut self,
        path: &str,
        pool_name: &Spanned<String>,
        raw: &Spanned<RawPool>,
    ) -> PoolConfig {
        let (servers_path, raw_servers, balance) =
            match raw.get_ref() {
                RawPool::Short(servers) => (path.to_string(), Some(servers), Balance::RoundRobin),
                RawPool::Long(long) => {
                    let balance = long.balance.as_ref().map_or(Balance::RoundRobin, |balance| {
                    let balance_path = format!("{path}.balance");
                    let parsed = match balance.get_ref().as_str() {
                        "round_robin" => Ok(Balance::RoundRobin),
                        "least_conn" => Ok(Balance::LeastConn),
                        other => Err(format!(
                            "unknown balance \"{other}\"; use \"round_robin\" or \"least_conn\""
                        )),
                    };
                    self.check(&balance.span(), &balance_path, parsed)
                        .unwrap_or_default()
                });
                    let servers_path = format!("{path}.servers");
                    if long.servers.is_none() && !self.removed(&servers_path) {
                        self.error(
                            &raw.span(),
                            path,
                            "a pool table needs `servers`, e.g. { servers = [\"127.0.0.1:5000\"] }",
                        );
                    }
                    let servers = long.servers.as_ref().map(Spanned::get_ref);
                    (servers_path, servers, balance)
                }
            };
        let mut servers: Vec<ServerConfig> = Vec::new();
        for (i, raw_server) in raw_servers.into_iter().flatten().enumerate() {
            let server_path = self.item(&servers_path, i);
            let span = raw_server.span();
            let Some(server) = self.server(&server_path, &span, raw_server.get_ref()) else {
                continue;
            };
            if servers.iter().any(|s| s.addr == server.addr) {
                let why = format!(
                    "server {} is listed twice in this pool (use `weight`)",
                    server.addr
                );
                self.error(&span, &server_path, why);
            } else {
                servers.push(server);
            }
        }
        if raw_servers.is_some_and(|s| s.is_empty()) && !self.removed(&servers_path) {
            self.error(
                &pool_name.span(),
                path,
                format!("pool `{}` has no servers", pool_name.get_ref()),
            );
        }
        PoolConfig { servers, balance }
    }

    fn server(&mut self, path: &str, span: &Range<usize>, raw: &RawServer) -> Option<ServerConfig> {
        match raw {
            RawServer::Addr(text) => {
                let addr = self.check(span, path, rules::server_addr(text))?;
                Some(ServerConfig {
                    host: rules::server_host(text),
                    ..ServerConfig::new(addr)
                })
            }
            RawServer::Table(table) => {
                let weight_path = format!("{path}.weight");
                let weight = self.int(table.weight.as_ref(), &weight_path, rules::WEIGHT, 1);
                let Some(addr) = &table.addr else {
                    if !self.removed(&format!("{path}.addr")) {
                        self.error(span, path, "a server table needs `addr = \"host:port\"`");
                    }
                    return None;
                };
                let addr_path = format!("{path}.addr");
                let addr_text = addr;
                let addr =
                    self.check(&addr.span(), &addr_path, rules::server_addr(addr.get_ref()))?;
                Some(ServerConfig {
                    addr,
                    weight: weight.unwrap_or(1),
                    host: rules::server_host(addr_text.get_ref()),
                })
            }
        }
    }

    fn health(&mut self, base: &str, raw: &RawHealth) -> HealthConfig {
        let d = HealthConfig::default();
        let p = |key: &str| format!("{base}.health.{key}");
        let path = raw.path.as_ref().and_then(|path| {
            self.check(
                &path.span(),
                &p("path"),
                rules::request_path(path.get_ref()),
            )
            .map(|()| path.get_ref().clone())
        });
        let (expect_min, expect_max) = raw
            .expect_status
            .as_ref()
            .and_then(|status| {
                let parsed = parse_status_range(&status.get_ref().text);
                self.check(&status.span(), &p("expect_status"), parsed)
            })
            .unwrap_or((d.expect_min, d.expect_max));
        HealthConfig {
            path: path.unwrap_or(d.path),
            interval: self
                .duration(raw.interval.as_ref(), &p("interval"), d.interval, true)
                .unwrap_or(d.interval),
            timeout: self
                .duration(raw.timeout.as_ref(), &p("timeout"), d.timeout, true)
                .unwrap_or(d.timeout),
            expect_min,
            expect_max,
            rise: self
                .int(raw.rise.as_ref(), &p("rise"), rules::AT_LEAST_ONE, d.rise)
                .unwrap_or(d.rise),
            fall: self
                .int(raw.fall.as_ref(), &p("fall"), rules::AT_LEAST_ONE, d.fall)
                .unwrap_or(d.fall),
        }
    }

    fn upstream(&mut self, base: &str, raw: &RawUpstream) -> UpstreamConfig {
        let d = UpstreamConfig::default();
        let p = |key: &str| format!("{base}.upstream.{key}");
        let max_idle = raw.max_idle_per_server.as_ref();
        UpstreamConfig {
            connect_timeout: self
                .duration(
                    raw.connect_timeout.as_ref(),
                    &p("connect_timeout"),
                    d.connect_timeout,
                    true,
                )
                .unwrap_or(d.connect_timeout),
            response_timeout: self
                .duration(
                    raw.response_timeout.as_ref(),
                    &p("response_timeout"),
                    d.response_timeout,
                    true,
                )
                .unwrap_or(d.response_timeout),
            idle_timeout: self
                .duration(
                    raw.idle_timeout.as_ref(),
                    &p("idle_timeout"),
                    d.idle_timeout,
                    true,
                )
                .unwrap_or(d.idle_timeout),
            max_idle_per_server: self
                .int(
                    max_idle,
                    &p("max_idle_per_server"),
                    rules::USIZE_COUNT,
                    d.max_idle_per_server,
                )
                .unwrap_or(d.max_idle_per_server),
            resolve_interval: self
                .duration(
                    raw.resolve_interval.as_ref(),
                    &p("resolve_interval"),
                    d.resolve_interval,
                    true,
                )
                .unwrap_or(d.resolve_interval),
        }
    }

    fn retry(&mut self, base: &str, raw: &RawRetry) -> RetryConfig {
        let d = RetryConfig::default();
        let p = |key: &str| format!("{base}.retry.{key}");
        let on_status = match &raw.on_status {
            None => d.on_status.clone(),
            Some(statuses) => statuses
                .iter()
                .enumerate()
                .filter_map(|(i, status)| {
                    let path = self.item(&p("on_status"), i);
                    self.check(
                        &status.span(),
                        &path,
                        rules::RETRY_STATUS.check(*status.get_ref()),
                    )
                })
                .collect(),
        };
        let backoff_base = self.duration(
            raw.backoff_base.as_ref(),
            &p("backoff_base"),
            d.backoff_base,
            false,
        );
        let backoff_max = self.duration(
            raw.backoff_max.as_ref(),
            &p("backoff_max"),
            d.backoff_max,
            false,
        );
        if let (Some(base_value), Some(max_value), Some(max_field)) = (
            backoff_base,
            backoff_max,
            raw.backoff_max.as_ref().or(raw.backoff_base.as_ref()),
        ) {
            let order = rules::not_below(max_value, base_value, "backoff_base");
            self.check(&max_field.span(), &p("backoff_max"), order);
        }
        let budget_ratio = raw
            .budget_ratio
            .as_ref()
            .map_or(Some(d.budget_ratio), |ratio| {
                let value = *ratio.get_ref();
                self.check(&ratio.span(), &p("budget_ratio"), rules::ratio(value))
                    .map(|()| value)
            });
        let replay_buffer = self
            .size(
                raw.replay_buffer.as_ref(),
                &p("replay_buffer"),
                d.replay_buffer as u64,
                (0, rules::MAX_REPLAY_BUFFER),
            )
            .and_then(|bytes| usize::try_from(bytes).ok());
        RetryConfig {
            attempts: self
                .int(
                    raw.attempts.as_ref(),
                    &p("attempts"),
                    rules::ATTEMPTS,
                    d.attempts,
                )
                .unwrap_or(d.attempts),
            on_status,
            backoff_base: backoff_base.unwrap_or(d.backoff_base),
            backoff_max: backoff_max.unwrap_or(d.backoff_max),
            budget_ratio: budget_ratio.unwrap_or(d.budget_ratio),
            budget_min: self
                .int(
                    raw.budget_min.as_ref(),
                    &p("budget_min"),
                    rules::COUNT,
                    d.budget_min,
                )
                .unwrap_or(d.budget_min),
            replay_buffer: replay_buffer.unwrap_or(d.replay_buffer),
            idempotency_key: raw
                .idempotency_key
                .as_ref()
                .map_or(d.idempotency_key, |flag| *flag.get_ref()),
        }
    }

    fn ejection(&mut self, base: &str, raw: &RawEjection) -> EjectionConfig {
        let d = EjectionConfig::default();
        let p = |key: &str| format!("{base}.ejection.{key}");
        let failures = raw.consecutive_failures.as_ref();
        let base_time = self.duration(raw.base.as_ref(), &p("base"), d.base, true);
        let max_time = self.duration(raw.max.as_ref(), &p("max"), d.max, true);
        if let (Some(base_value), Some(max_value), Some(field)) =
            (base_time, max_time, raw.max.as_ref().or(raw.base.as_ref()))
        {
            self.check(
                &field.span(),
                &p("max"),
                rules::not_below(max_value, base_value, "base"),
            );
        }
        let all_down = raw.all_down.as_ref().map_or(d.all_down, |all_down| {
            let parsed = match all_down.get_ref().as_str() {
                "try_all" => Ok(AllDown::TryAll),
                "fail" => Ok(AllDown::Fail),
                other => Err(format!(
                    "unknown value \"{other}\"; use \"try_all\" or \"fail\""
                )),
            };
            self.check(&all_down.span(), &p("all_down"), parsed)
                .unwrap_or_default()
        });
        EjectionConfig {
            consecutive_failures: self
                .int(
                    failures,
                    &p("consecutive_failures"),
                    rules::COUNT,
                    d.consecutive_failures,
                )
                .unwrap_or(d.consecutive_failures),
            base: base_time.unwrap_or(d.base),
            max: max_time.unwrap_or(d.max),
            all_down,
        }
    }
}
