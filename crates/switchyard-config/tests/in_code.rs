//! `Config::validate` on configs built in code.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use switchyard_config::{
    AdminConfig, Config, HostPattern, IN_CODE_ORIGIN, PoolConfig, ServerConfig, ServiceConfig,
    default_config,
};

fn addr(text: &str) -> SocketAddr {
    text.parse().expect("a socket address")
}

fn pools(entries: &[(&str, &str)]) -> BTreeMap<String, PoolConfig> {
    entries
        .iter()
        .map(|(name, server)| {
            let pool = PoolConfig::new(vec![ServerConfig::new(addr(server))]);
            (name.to_string(), pool)
        })
        .collect()
}

fn one_service(service: ServiceConfig) -> Config {
    let mut services = BTreeMap::new();
    services.insert(service.name.clone(), service);
    Config {
        services,
        ..Config::default()
    }
}

fn messages(config: &Config) -> Vec<String> {
    match config.validate() {
        Ok(()) => Vec::new(),
        Err(errors) => errors
            .iter()
            .map(|e| {
                assert_eq!(
                    (e.origin.as_str(), e.line, e.column),
                    (IN_CODE_ORIGIN, 0, 0)
                );
                e.message.clone()
            })
            .collect(),
    }
}

#[test]
fn a_config_built_in_code_validates() {
    let service = ServiceConfig::new("app", "green", pools(&[("green", "127.0.0.1:5000")]));
    assert_eq!(messages(&one_service(service)), Vec::<String>::new());
    assert_eq!(default_config().validate(), Ok(()));
}

#[test]
fn default_config_has_no_services_and_says_so() {
    assert_eq!(
        messages(&Config::default()),
        ["services: no services: add at least one"]
    );
}

#[test]
fn every_problem_is_reported() {
    let mut service = ServiceConfig::new("app", "purple", pools(&[("green", "127.0.0.1:5000")]));
    service.pools.insert("blue".into(), PoolConfig::new(vec![]));
    service.pools.get_mut("green").expect("green").servers[0].weight = 0;
    service.hosts = vec![HostPattern::Exact("Example.com".into())];
    service.path_prefix = Some("/api/".into());
    service.retry.attempts = 11;
    service.retry.backoff_max = Duration::from_millis(1);
    service.health.expect_min = 500;
    service.health.expect_max = 200;
    service.ejection.max = Duration::ZERO;
    let mut config = one_service(service);
    config.listen.http = vec![addr("0.0.0.0:8080"), addr("0.0.0.0:8080")];
    config.admin = AdminConfig {
        listen: Some(addr("0.0.0.0:9901")),
        token_env: None,
        history: 200,
        max_connections: 64,
    };
    config.runtime.worker_threads = Some(0);
    let found = messages(&config);
    let expected = [
        "listen.http[1]: duplicate listener 0.0.0.0:8080",
        "admin.listen: the admin API on 0.0.0.0:9901 would be reachable",
        "runtime.worker_threads: must be between 1 and 1024, got 0",
        "services.app.hosts[0]: not in normal form",
        "services.app.path_prefix: not in normal form",
        "services.app.active: active names pool `purple` which this service does not have; \
         pools are: blue, green",
        "services.app.pools.blue: pool `blue` has no servers",
        "services.app.pools.green.servers[0].weight: must be between 1 and 1000, got 0",
        "services.app.health: expect_min 500 and expect_max 200",
        "services.app.retry.attempts: must be between 1 and 10, got 11",
        "services.app.retry.backoff_max: 1ms is less than backoff_base (25ms)",
        "services.app.ejection.max: must be more than 0",
        "services.app.ejection.max: 0ms is less than base (10s)",
    ];
    for want in expected {
        assert!(
            found.iter().any(|m| m.starts_with(want)),
            "missing {want:?} in {found:#?}"
        );
    }
    assert_eq!(found.len(), expected.len(), "{found:#?}");
}

#[test]
fn colliding_routes_and_wrong_names() {
    let a = ServiceConfig::new("a", "g", pools(&[("g", "127.0.0.1:5000")]));
    let mut b = ServiceConfig::new("b", "g", pools(&[("g", "127.0.0.1:5001")]));
    b.name = "bee".into();
    let mut config = one_service(a);
    config.services.insert("b".into(), b);
    assert_eq!(
        messages(&config),
        [
            "services.b.name: `name` is \"bee\" but the service's key is \"b\"",
            "services.bee: service `bee` has the same route as service `a` (any host, any path); \
             give one of them other `hosts` or another `path_prefix`",
        ]
    );
}

#[test]
fn empty_pools_and_empty_listeners() {
    let service = ServiceConfig::new("app", "green", BTreeMap::new());
    let mut config = one_service(service);
    config.listen.http.clear();
    assert_eq!(
        messages(&config),
        [
            "listen.http: no client listener",
            "services.app: the service has no pools"
        ]
    );
}
