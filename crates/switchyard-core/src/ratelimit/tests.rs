use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use switchyard_config::{Config, PoolConfig, ServerConfig, ServiceConfig};
use tokio::time::advance;

use super::*;
use crate::live::Registry;
use crate::snapshot::{Snapshot, decisions_from_config};

fn limit(rate: f64, burst: u32) -> RateLimitConfig {
    RateLimitConfig {
        path_prefix: None,
        rate,
        burst,
    }
}

fn ip(n: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, n))
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[tokio::test(start_paused = true)]
async fn a_burst_passes_then_the_next_request_is_refused() {
    let l = RateLimiter::new(&limit(1.0, 4));
    for i in 0..5 {
        assert_eq!(
            l.check(ip(1), Instant::now()),
            Ok(()),
            "request {i} is within 1 + burst"
        );
    }
    let wait = l
        .check(ip(1), Instant::now())
        .expect_err("the sixth is over");
    assert_eq!(wait, Duration::from_secs(1));
    // A refused request takes no token: the wait does not grow.
    assert_eq!(l.check(ip(1), Instant::now()), Err(Duration::from_secs(1)));
}

#[tokio::test(start_paused = true)]
async fn tokens_refill_at_the_rate() {
    let l = RateLimiter::new(&limit(10.0, 0));
    assert_eq!(l.check(ip(1), Instant::now()), Ok(()));
    assert_eq!(l.check(ip(1), Instant::now()), Err(ms(100)));
    advance(ms(40)).await;
    assert_eq!(l.check(ip(1), Instant::now()), Err(ms(60)));
    advance(ms(60)).await;
    assert_eq!(l.check(ip(1), Instant::now()), Ok(()));
    assert!(l.check(ip(1), Instant::now()).is_err());
    // A long pause refills to the capacity and no further.
    let l = RateLimiter::new(&limit(2.0, 2));
    for _ in 0..3 {
        assert!(l.check(ip(1), Instant::now()).is_ok());
    }
    advance(Duration::from_secs(3600)).await;
    for _ in 0..3 {
        assert!(l.check(ip(1), Instant::now()).is_ok());
    }
    assert!(l.check(ip(1), Instant::now()).is_err());
}

#[tokio::test(start_paused = true)]
async fn a_sustained_client_gets_the_rate() {
    let l = RateLimiter::new(&limit(5.0, 0));
    let mut passed = 0;
    // 10 seconds of a request every 50 ms (20/s) from one client.
    for _ in 0..200 {
        if l.check(ip(1), Instant::now()).is_ok() {
            passed += 1;
        }
        advance(ms(50)).await;
    }
    assert!(
        (50..=51).contains(&passed),
        "{passed} passed at 5/s over 10 s"
    );
}

#[tokio::test(start_paused = true)]
async fn slow_rates_announce_long_waits() {
    let l = RateLimiter::new(&limit(0.5, 0)); // "30/m"
    assert!(l.check(ip(1), Instant::now()).is_ok());
    assert_eq!(l.check(ip(1), Instant::now()), Err(Duration::from_secs(2)));
    advance(ms(500)).await;
    assert_eq!(l.check(ip(1), Instant::now()), Err(ms(1500)));
}

#[tokio::test(start_paused = true)]
async fn clients_are_independent() {
    let l = RateLimiter::new(&limit(1.0, 1));
    assert!(l.check(ip(1), Instant::now()).is_ok());
    assert!(l.check(ip(1), Instant::now()).is_ok());
    assert!(l.check(ip(1), Instant::now()).is_err());
    assert!(l.check(ip(2), Instant::now()).is_ok());
    assert!(l.check(ip(2), Instant::now()).is_ok());
    assert!(l.check(ip(2), Instant::now()).is_err());
    let v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
    assert!(l.check(v6, Instant::now()).is_ok());
}

#[tokio::test(start_paused = true)]
async fn a_v4_mapped_address_is_the_same_client() {
    let l = RateLimiter::new(&limit(1.0, 0));
    let mapped = IpAddr::V6(Ipv4Addr::new(192, 0, 2, 1).to_ipv6_mapped());
    assert!(l.check(ip(1), Instant::now()).is_ok());
    assert!(l.check(mapped, Instant::now()).is_err());
}

#[tokio::test(start_paused = true)]
async fn an_earlier_instant_than_the_last_is_harmless() {
    let l = RateLimiter::new(&limit(1.0, 0));
    let now = Instant::now();
    advance(Duration::from_secs(5)).await;
    assert!(l.check(ip(1), Instant::now()).is_ok());
    // A request that read the clock before another took the lock: no refill, no panic.
    assert!(l.check(ip(1), now).is_err());
}

fn many(n: u32) -> impl Iterator<Item = IpAddr> {
    (0..n).map(|i| IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)))
}

#[tokio::test(start_paused = true)]
async fn full_buckets_are_pruned() {
    let l = RateLimiter::new(&limit(10.0, 0));
    let n = (SHARDS * PRUNE_MIN * 2) as u32;
    for a in many(n) {
        assert!(l.check(a, Instant::now()).is_ok());
    }
    assert_eq!(l.len(), n as usize, "every bucket is busy: nothing pruned");
    // Everyone refills; the next wave of new clients sweeps the full buckets away.
    advance(Duration::from_secs(1)).await;
    for a in many(n).map(|a| match a {
        IpAddr::V4(v4) => IpAddr::V4(Ipv4Addr::from(u32::from(v4) + 0x0100_0000)),
        v6 => v6,
    }) {
        assert!(l.check(a, Instant::now()).is_ok());
    }
    assert!(l.len() < 2 * n as usize, "{} buckets left", l.len());
}

#[tokio::test(start_paused = true)]
async fn each_shard_is_capped_and_the_stalest_go_first() {
    let cap = 64;
    let l = RateLimiter::with_max_per_shard(&limit(0.001, 0), cap);
    let heavy = ip(1);
    assert!(l.check(heavy, Instant::now()).is_ok());
    for a in many(10_000) {
        advance(ms(1)).await;
        let _ = l.check(a, Instant::now());
        // The heavy client keeps coming back: it is never the stalest.
        assert!(
            l.check(heavy, Instant::now()).is_err(),
            "the heavy client stays limited"
        );
    }
    assert!(l.len() <= SHARDS * cap, "{} buckets", l.len());
}

fn prefixed(prefix: Option<&str>, rate: f64) -> Limit {
    let cfg = RateLimitConfig {
        path_prefix: prefix.map(str::to_string),
        rate,
        burst: 0,
    };
    let limiter = Arc::new(RateLimiter::new(&cfg));
    (cfg, limiter)
}

#[test]
fn the_longest_prefix_applies() {
    let limits = [
        prefixed(None, 1.0),
        prefixed(Some("/login"), 2.0),
        prefixed(Some("/login/sso"), 3.0),
    ];
    let rate = |p: &str| matching(&limits, p).map(|(c, _)| c.rate);
    assert_eq!(rate("/"), Some(1.0));
    assert_eq!(rate("/loginx"), Some(1.0));
    assert_eq!(rate("/login"), Some(2.0));
    assert_eq!(rate("/login/form"), Some(2.0));
    assert_eq!(rate("/login/sso/cb"), Some(3.0));
    let only_login = [prefixed(Some("/login"), 2.0)];
    assert!(matching(&only_login, "/api").is_none());
}

#[tokio::test(start_paused = true)]
async fn service_limits_check_the_matching_entry_only() {
    let limits = ServiceLimits {
        limits: vec![prefixed(Some("/login"), 1.0)],
    };
    assert!(limits.check("/login", ip(1), Instant::now()).is_ok());
    assert!(limits.check("/login/x", ip(1), Instant::now()).is_err());
    for _ in 0..10 {
        assert!(limits.check("/other", ip(1), Instant::now()).is_ok());
    }
}

fn config(limits: &[(&str, Vec<RateLimitConfig>)]) -> Config {
    let server = ServerConfig::new(std::net::SocketAddr::from(([127, 0, 0, 1], 9)));
    let pools = BTreeMap::from([("green".to_string(), PoolConfig::new(vec![server]))]);
    let mut config = Config::default();
    for (name, l) in limits {
        let mut svc = ServiceConfig::new(*name, "green", pools.clone());
        svc.rate_limits = l.clone();
        config.services.insert((*name).to_string(), svc);
    }
    config
}

/// The limits of service `name` in `snapshot` (`None`: it has none, or no such service).
fn limits_of<'a>(snapshot: &'a Snapshot, name: &str) -> Option<&'a ServiceLimits> {
    snapshot
        .service(name)
        .map(|s| &s.rate_limits)
        .filter(|l| !l.is_empty())
}

#[tokio::test(start_paused = true)]
async fn limiters_survive_a_rebuild_with_the_same_config_and_reset_when_it_changes() {
    let login = RateLimitConfig {
        path_prefix: Some("/login".into()),
        ..limit(1.0, 0)
    };
    let all = limit(100.0, 10);
    let registry = Registry::new();
    let build = |config: &Config, previous: &Snapshot| {
        previous.build_next(config, &decisions_from_config(config), &registry)
    };
    let first = config(&[("app", vec![all.clone(), login.clone()]), ("web", vec![])]);
    let snapshot = Snapshot::build(&first, &decisions_from_config(&first), &registry, 1);
    assert!(limits_of(&snapshot, "web").is_none(), "no limits, no entry");
    assert!(limits_of(&snapshot, "nope").is_none());
    let app = limits_of(&snapshot, "app").expect("app has limits");
    assert!(app.check("/login", ip(1), Instant::now()).is_ok());
    assert!(app.check("/login", ip(1), Instant::now()).is_err());

    // Same entries, another order: the buckets are kept.
    let snapshot = build(
        &config(&[("app", vec![login.clone(), all.clone()])]),
        &snapshot,
    );
    let app = limits_of(&snapshot, "app").expect("app has limits");
    assert!(
        app.check("/login", ip(1), Instant::now()).is_err(),
        "still limited"
    );

    // The login limit changes: a fresh limiter, a fresh bucket.
    let looser = RateLimitConfig {
        burst: 5,
        ..login.clone()
    };
    let snapshot = build(&config(&[("app", vec![all.clone(), looser])]), &snapshot);
    let app = limits_of(&snapshot, "app").expect("app has limits");
    assert!(app.check("/login", ip(1), Instant::now()).is_ok());

    // Limits removed: the service has none.
    let snapshot = build(&config(&[("app", vec![])]), &snapshot);
    assert!(limits_of(&snapshot, "app").is_none());

    // Limits put back: they start afresh.
    let snapshot = build(&config(&[("app", vec![login.clone()])]), &snapshot);
    let app = limits_of(&snapshot, "app").expect("app has limits");
    assert!(app.check("/login", ip(1), Instant::now()).is_ok());
}
