//! Valid configs parse into the typed `Config` they describe.

mod common;

use common::{addr, parse};

use std::collections::BTreeMap;
use std::time::Duration;

use switchyard_config::{
    AllDown, Balance, CertConfig, CompressionConfig, Config, DEFAULT_CONFIG_TOML, EjectionConfig,
    HealthConfig, HostPattern, LimitsConfig, ListenConfig, LogConfig, RetryConfig, RuntimeConfig,
    ServerConfig, ServiceConfig, TlsConfig, UpstreamConfig, default_config, load_file,
};

const EXAMPLE: &str = include_str!("../../../config/example.toml");

#[test]
fn default_config_is_the_classic_blue_green_setup() {
    let config = default_config();
    assert_eq!(config.source, None);
    assert_eq!(config.listen.http, vec![addr("0.0.0.0:8080")]);
    assert_eq!(config.admin.listen, Some(addr("127.0.0.1:9901")));
    assert_eq!(config.admin.token_env, None);
    assert_eq!(config.limits, LimitsConfig::default());
    assert_eq!(config.runtime, RuntimeConfig::default());
    assert_eq!(config.state.file, None);
    assert_eq!(config.services.keys().collect::<Vec<_>>(), ["app"]);
    let app = &config.services["app"];
    assert_eq!(app.name, "app");
    assert_eq!(app.active, "green");
    assert!(app.hosts.is_empty());
    assert_eq!(app.path_prefix, None);
    assert_eq!(
        app.pools["green"].servers,
        vec![ServerConfig::new(addr("127.0.0.1:5000"))]
    );
    assert_eq!(
        app.pools["blue"].servers,
        vec![ServerConfig::new(addr("127.0.0.1:5001"))]
    );
    assert_eq!(app.health.path, "/health");
    assert_eq!(app.health.interval, Duration::from_secs(1));
    assert_eq!(app.health, HealthConfig::default());
    assert_eq!(config.validate(), Ok(()));
    assert!(DEFAULT_CONFIG_TOML.contains("[services.app.pools]"));
}

#[test]
fn example_parses_to_the_defaults() {
    let example = parse(EXAMPLE);
    let default = default_config();
    assert_eq!(example.listen, default.listen);
    assert_eq!(example.listen, ListenConfig::default());
    assert_eq!(example.admin, default.admin);
    assert_eq!(example.tls, TlsConfig::default());
    assert_eq!(example.limits, LimitsConfig::default());
    assert_eq!(example.log, LogConfig::default());
    assert_eq!(example.runtime, RuntimeConfig::default());
    let app = &example.services["app"];
    assert_eq!(app.pools, default.services["app"].pools);
    assert_eq!(app.health, HealthConfig::default());
    assert_eq!(app.upstream, UpstreamConfig::default());
    assert_eq!(app.retry, RetryConfig::default());
    assert_eq!(app.ejection, EjectionConfig::default());
    let bare = ServiceConfig::new("app", "green", app.pools.clone());
    assert_eq!(app.upgraded_drain_timeout, bare.upgraded_drain_timeout);
    assert_eq!(app.response_headers, bare.response_headers);
    assert_eq!(app.compression, CompressionConfig::default());
    assert_eq!(app.rate_limits, bare.rate_limits);
    assert_eq!(app.static_files, bare.static_files);
    assert_eq!(example.validate(), Ok(()));
}

/// A commented-out option: `# key = value`, `# "Header-Name" = value` or `# [table]`.
fn is_commented_option(rest: &str) -> bool {
    let bare = |key: &str| {
        !key.is_empty()
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    };
    let quoted = |key: &str| key.len() > 2 && key.starts_with('"') && key.ends_with('"');
    rest.starts_with('[')
        || rest
            .split_once(" = ")
            .is_some_and(|(key, _)| bare(key) || quoted(key))
}

#[test]
fn example_with_every_optional_key_uncommented_parses() {
    let uncommented: String = EXAMPLE
        .lines()
        .map(|line| match line.strip_prefix("# ") {
            Some(rest) if is_commented_option(rest) => format!("{rest}\n"),
            _ => format!("{line}\n"),
        })
        .collect();
    assert_ne!(uncommented.len(), EXAMPLE.len() + 1);
    let config = parse(&uncommented);
    assert_eq!(
        config.admin.token_env.as_deref(),
        Some("SWITCHYARD_ADMIN_TOKEN")
    );
    assert_eq!(config.runtime.worker_threads, Some(2));
    assert_eq!(
        config.state.file,
        Some("/var/lib/switchyard/state.json".into())
    );
    assert_eq!(config.listen.https, vec![addr("0.0.0.0:8443")]);
    assert_eq!(
        config.tls.certs,
        vec![CertConfig::new(
            "/etc/switchyard/site.crt",
            "/etc/switchyard/site.key"
        )]
    );
    let app = &config.services["app"];
    assert_eq!(app.hosts.len(), 2);
    assert_eq!(app.path_prefix, None);
    assert_eq!(app.upgraded_drain_timeout, Some(Duration::from_secs(30)));
    assert_eq!(app.response_headers.len(), 2);
    assert_eq!(app.rate_limits.len(), 1);
    assert_eq!(app.static_files.len(), 1);
    assert_eq!(app.static_files[0].index.as_deref(), Some("index.html"));
    let guard = app.guard.as_ref().expect("the guard table");
    assert_eq!(guard.window, Duration::from_secs(120));
    assert_eq!(guard.min_requests, 50);
    let fleet = config.fleet.as_ref().expect("the fleet table");
    assert_eq!(fleet.etcd, ["http://127.0.0.1:2379"]);
    assert_eq!(fleet.prefix, "/switchyard/prod");
    assert_eq!(fleet.node.as_deref(), Some("edge-1"));
}

#[test]
fn short_and_long_pool_forms() {
    let config = parse(
        "[services.app]\nactive = \"blue\"\n[services.app.pools]\n\
         green = [\"127.0.0.1:5000\", \"localhost:5003\"]\n\
         blue = { servers = [\"127.0.0.1:5001\", { addr = \"127.0.0.1:5002\", weight = 3 }], \
         balance = \"least_conn\" }\n\
         [services.app.pools.canary]\nservers = [{ addr = \"[::1]:5004\" }]\n",
    );
    let pools = &config.services["app"].pools;
    assert_eq!(pools["green"].balance, Balance::RoundRobin);
    assert_eq!(pools["green"].servers.len(), 2);
    assert!(pools["green"].servers[1].addr.ip().is_loopback());
    assert_eq!(pools["green"].servers[1].addr.port(), 5003);
    assert_eq!(pools["blue"].balance, Balance::LeastConn);
    assert_eq!(
        pools["blue"].servers,
        vec![
            ServerConfig::new(addr("127.0.0.1:5001")),
            ServerConfig {
                addr: addr("127.0.0.1:5002"),
                weight: 3,
                host: None,
            },
        ]
    );
    assert_eq!(
        pools["canary"].servers,
        vec![ServerConfig::new(addr("[::1]:5004"))]
    );
}

#[test]
fn hosts_are_lower_cased_and_wildcards_keep_the_dot() {
    let config = parse(
        "[services.app]\nhosts = [\"Example.COM\", \"*.Example.com\", \"[::1]\"]\nactive = \"g\"\n\
         pools.g = [\"127.0.0.1:5000\"]\n",
    );
    assert_eq!(
        config.services["app"].hosts,
        vec![
            HostPattern::Exact("example.com".into()),
            HostPattern::Wildcard(".example.com".into()),
            HostPattern::Exact("[::1]".into()),
        ]
    );
}

#[test]
fn path_prefix_is_normalised() {
    let service = |prefix: &str| {
        let text = format!(
            "[services.app]\npath_prefix = \"{prefix}\"\nactive = \"g\"\npools.g = [\"127.0.0.1:5000\"]\n"
        );
        parse(&text).services["app"].path_prefix.clone()
    };
    assert_eq!(service("/api"), Some("/api".to_string()));
    assert_eq!(service("/api/"), Some("/api".to_string()));
    assert_eq!(service("/api/v1//"), Some("/api/v1".to_string()));
    assert_eq!(service("/"), None);
}

#[test]
fn services_with_distinct_routes_coexist() {
    let config = parse(
        "[services.web]\nactive = \"g\"\npools.g = [\"127.0.0.1:5000\"]\n\
         [services.api]\npath_prefix = \"/api\"\nactive = \"g\"\npools.g = [\"127.0.0.1:5001\"]\n\
         [services.shop]\nhosts = [\"shop.example\"]\nactive = \"g\"\npools.g = [\"127.0.0.1:5002\"]\n\
         [services.shop-api]\nhosts = [\"shop.example\"]\npath_prefix = \"/api\"\nactive = \"g\"\n\
         pools.g = [\"127.0.0.1:5003\"]\n",
    );
    assert_eq!(config.services.len(), 4);
}

#[test]
fn every_option_is_read() {
    let config = parse(
        "[listen]\nhttp = [\"127.0.0.1:8081\", \"[::1]:8081\"]\n\
         [admin]\nlisten = \"\"\ntoken_env = \"TOKEN\"\nhistory = 1\n\
         [limits]\nmax_body = \"1GiB\"\nmax_header_bytes = \"8k\"\nheader_timeout = \"500ms\"\n\
         keepalive_timeout = \"2m\"\nbody_timeout = \"15s\"\nsend_timeout = \"30s\"\n\
         max_headers = 1000\nmax_connections = 1\n\
         [runtime]\nworker_threads = 4\nshutdown_timeout = \"0s\"\n\
         [state]\nfile = \"/tmp/s.json\"\n\
         [services.app]\nactive = \"g\"\npools.g = [\"127.0.0.1:5000\"]\n\
         [services.app.health]\npath = \"/ready?full=1\"\ninterval = \"1m30s\"\ntimeout = \"1.5s\"\n\
         expect_status = 204\nrise = 1\nfall = 5\n\
         [services.app.upstream]\nconnect_timeout = \"100ms\"\nresponse_timeout = \"1h\"\n\
         idle_timeout = \"5s\"\nmax_idle_per_server = 0\n\
         [services.app.retry]\nattempts = 1\non_status = []\nbackoff_base = \"0ms\"\n\
         backoff_max = \"0ms\"\nbudget_ratio = 1\nbudget_min = 0\nreplay_buffer = \"0B\"\n\
         idempotency_key = true\n\
         [services.app.ejection]\nconsecutive_failures = 0\nbase = \"1s\"\nmax = \"1s\"\n\
         all_down = \"fail\"\n",
    );
    assert_eq!(
        config.listen.http,
        vec![addr("127.0.0.1:8081"), addr("[::1]:8081")]
    );
    assert_eq!(config.admin.listen, None);
    assert_eq!(config.admin.token_env.as_deref(), Some("TOKEN"));
    assert_eq!(config.admin.history, 1);
    assert_eq!(
        config.limits,
        LimitsConfig {
            max_body: 1 << 30,
            max_header_bytes: 8192,
            header_timeout: Duration::from_millis(500),
            keepalive_timeout: Duration::from_secs(120),
            body_timeout: Duration::from_secs(15),
            send_timeout: Duration::from_secs(30),
            max_headers: 1000,
            max_connections: 1,
        }
    );
    assert_eq!(
        config.runtime,
        RuntimeConfig {
            worker_threads: Some(4),
            shutdown_timeout: Duration::ZERO
        }
    );
    assert_eq!(config.state.file, Some("/tmp/s.json".into()));
    let app = &config.services["app"];
    assert_eq!(
        app.health,
        HealthConfig {
            path: "/ready?full=1".into(),
            interval: Duration::from_secs(90),
            timeout: Duration::from_millis(1500),
            expect_min: 204,
            expect_max: 204,
            rise: 1,
            fall: 5,
        }
    );
    assert_eq!(
        app.upstream,
        UpstreamConfig {
            connect_timeout: Duration::from_millis(100),
            response_timeout: Duration::from_secs(3600),
            idle_timeout: Duration::from_secs(5),
            max_idle_per_server: 0,
            resolve_interval: Duration::from_secs(5),
        }
    );
    assert_eq!(
        app.retry,
        RetryConfig {
            attempts: 1,
            on_status: vec![],
            backoff_base: Duration::ZERO,
            backoff_max: Duration::ZERO,
            budget_ratio: 1.0,
            budget_min: 0,
            replay_buffer: 0,
            idempotency_key: true,
        }
    );
    assert_eq!(
        app.ejection,
        EjectionConfig {
            consecutive_failures: 0,
            base: Duration::from_secs(1),
            max: Duration::from_secs(1),
            all_down: AllDown::Fail,
        }
    );
}

#[test]
fn omitted_admin_table_means_the_default_listener() {
    let config = parse("[services.app]\nactive = \"g\"\npools.g = [\"127.0.0.1:5000\"]\n");
    assert_eq!(config.admin.listen, Some(addr("127.0.0.1:9901")));
    assert_eq!(config.listen.http, vec![addr("0.0.0.0:8080")]);
    assert_eq!(config.services["app"].pools, {
        let mut pools = BTreeMap::new();
        pools.insert(
            "g".to_string(),
            switchyard_config::PoolConfig::new(vec![ServerConfig::new(addr("127.0.0.1:5000"))]),
        );
        pools
    });
}

#[test]
fn load_file_sets_the_source() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("switchyard.toml");
    std::fs::write(&path, DEFAULT_CONFIG_TOML).expect("write");
    let config = load_file(&path).unwrap_or_else(|errors| panic!("{errors}"));
    assert_eq!(config.source.as_deref(), Some(path.as_path()));
    assert_eq!(
        Config {
            source: None,
            ..config
        },
        default_config()
    );
}

#[test]
fn load_file_errors_name_the_file() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[services.app]\nactive = \"g\"\npools.g = [\"x\"]\n").expect("write");
    let errors = load_file(&path).expect_err("invalid");
    let error = &errors.0[0];
    assert_eq!(error.origin, path.display().to_string());
    assert_eq!((error.line, error.column), (3, 12));
    assert!(
        errors
            .to_string()
            .starts_with(&format!("{}:3:12: ", path.display()))
    );
}

#[test]
fn missing_file_is_one_error_naming_it() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("absent.toml");
    let errors = load_file(&path).expect_err("missing");
    assert_eq!(errors.len(), 1);
    let error = &errors.0[0];
    assert_eq!((error.line, error.column), (0, 0));
    assert_eq!(error.origin, path.display().to_string());
    assert!(error.message.contains("cannot read"), "{error}");
    assert!(errors.to_string().contains("absent.toml"), "{errors}");
}
