//! Routing a request to a service by Host and path prefix, the most specific match first.
//!
//! Specificity: an exact host beats a wildcard host (a longer wildcard suffix beats a shorter
//! one), which beats "any host"; among equal hosts, the longer path prefix wins. A path prefix
//! matches whole segments only: `/api` matches `/api` and `/api/x`, not `/apix`.

use std::sync::Arc;

use switchyard_config::HostPattern;

use crate::snapshot::Service;

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostMatch {
    Any,
    Exact(String),
    /// The suffix including its leading dot.
    Wildcard(String),
}

impl HostMatch {
    /// (class, length): higher is more specific.
    fn rank(&self) -> (u8, usize) {
        match self {
            HostMatch::Any => (0, 0),
            HostMatch::Wildcard(s) => (1, s.len()),
            HostMatch::Exact(s) => (2, s.len()),
        }
    }

    /// Case-insensitive: `host` is as the client wrote it (patterns are lower-case).
    fn matches(&self, host: &str) -> bool {
        match self {
            HostMatch::Any => true,
            HostMatch::Exact(h) => h.eq_ignore_ascii_case(host),
            HostMatch::Wildcard(suffix) => {
                host.len() > suffix.len()
                    && host.as_bytes()[host.len() - suffix.len()..]
                        .eq_ignore_ascii_case(suffix.as_bytes())
            }
        }
    }
}

#[derive(Debug, Clone)]
struct Route {
    host: HostMatch,
    prefix: Option<String>,
    service: usize,
}

/// The route table of one snapshot, sorted most specific first.
#[derive(Debug, Clone, Default)]
pub struct Router {
    routes: Vec<Route>,
}

impl Router {
    /// Builds the table for `services` (indices into that slice).
    pub fn new(services: &[Arc<Service>]) -> Router {
        let mut routes = Vec::new();
        for (i, svc) in services.iter().enumerate() {
            let prefix = svc
                .config
                .path_prefix
                .clone()
                .filter(|p| p != "/" && !p.is_empty());
            if svc.config.hosts.is_empty() {
                routes.push(Route {
                    host: HostMatch::Any,
                    prefix: prefix.clone(),
                    service: i,
                });
            }
            for h in &svc.config.hosts {
                let host = match h {
                    HostPattern::Exact(s) => HostMatch::Exact(s.to_ascii_lowercase()),
                    HostPattern::Wildcard(s) => HostMatch::Wildcard(s.to_ascii_lowercase()),
                };
                routes.push(Route {
                    host,
                    prefix: prefix.clone(),
                    service: i,
                });
            }
        }
        routes.sort_by(|a, b| {
            let ka = (a.host.rank(), a.prefix.as_ref().map_or(0, String::len));
            let kb = (b.host.rank(), b.prefix.as_ref().map_or(0, String::len));
            kb.cmp(&ka)
        });
        Router { routes }
    }

    /// The index of the service for `host` (without port, any case) and `path`.
    pub fn route(&self, host: &str, path: &str) -> Option<usize> {
        self.routes
            .iter()
            .find(|r| r.host.matches(host) && prefix_matches(r.prefix.as_deref(), path))
            .map(|r| r.service)
    }
}

fn prefix_matches(prefix: Option<&str>, path: &str) -> bool {
    match prefix {
        None => true,
        Some(p) => {
            path.starts_with(p) && (path.len() == p.len() || path.as_bytes()[p.len()] == b'/')
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::Registry;
    use crate::snapshot::{Snapshot, decisions_from_config};
    use std::collections::BTreeMap;
    use switchyard_config::{Config, PoolConfig, ServerConfig};

    fn service(hosts: &[&str], prefix: Option<&str>) -> switchyard_config::ServiceConfig {
        let mut cfg = switchyard_config::default_config()
            .services
            .remove("app")
            .expect("the default config has the service app");
        cfg.hosts = hosts
            .iter()
            .map(|h| match h.strip_prefix('*') {
                Some(rest) => HostPattern::Wildcard(rest.to_string()),
                None => HostPattern::Exact(h.to_string()),
            })
            .collect();
        cfg.path_prefix = prefix.map(str::to_string);
        cfg.pools = BTreeMap::from([(
            "green".to_string(),
            PoolConfig {
                servers: vec![ServerConfig {
                    addr: "127.0.0.1:1".parse().expect("literal"),
                    weight: 1,
                    host: None,
                }],
                balance: Default::default(),
            },
        )]);
        cfg.active = "green".into();
        cfg
    }

    fn snapshot(services: Vec<(&str, switchyard_config::ServiceConfig)>) -> Snapshot {
        let mut config: Config = switchyard_config::default_config();
        config.services = services
            .into_iter()
            .map(|(n, mut s)| {
                s.name = n.to_string();
                (n.to_string(), s)
            })
            .collect();
        Snapshot::build(
            &config,
            &decisions_from_config(&config),
            &Registry::new(),
            1,
        )
    }

    fn routed<'a>(snap: &'a Snapshot, host: &str, path: &str) -> Option<&'a str> {
        snap.route(host, path).map(|s| s.name.as_str())
    }

    #[test]
    fn most_specific_route_wins() {
        let snap = snapshot(vec![
            ("catchall", service(&[], None)),
            ("api", service(&[], Some("/api"))),
            ("wild", service(&["*.example.com"], None)),
            ("deepwild", service(&["*.eu.example.com"], None)),
            ("exact", service(&["shop.example.com"], None)),
            ("exactapi", service(&["shop.example.com"], Some("/api"))),
        ]);
        assert_eq!(routed(&snap, "other.org", "/"), Some("catchall"));
        assert_eq!(routed(&snap, "other.org", "/api/x"), Some("api"));
        assert_eq!(routed(&snap, "other.org", "/api"), Some("api"));
        assert_eq!(routed(&snap, "other.org", "/apix"), Some("catchall"));
        assert_eq!(routed(&snap, "a.example.com", "/api"), Some("wild"));
        assert_eq!(routed(&snap, "a.eu.example.com", "/"), Some("deepwild"));
        assert_eq!(routed(&snap, "example.com", "/"), Some("catchall"));
        assert_eq!(routed(&snap, "shop.example.com", "/"), Some("exact"));
        assert_eq!(
            routed(&snap, "shop.example.com", "/api/v1"),
            Some("exactapi")
        );
    }

    #[test]
    fn no_catch_all_means_no_route() {
        let snap = snapshot(vec![("exact", service(&["a.com"], None))]);
        assert_eq!(routed(&snap, "b.com", "/"), None);
        assert_eq!(routed(&snap, "a.com", "/"), Some("exact"));
    }
}
