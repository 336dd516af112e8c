//! Per-client request rate limits (nginx `limit_req zone=… burst=… nodelay`): a token bucket
//! per client IP address, refusing with 429 and `Retry-After` what goes over.
//!
//! Each bucket holds `1 + burst` tokens and refills at `rate` tokens per second; a request
//! takes one token or is refused at once (no queueing). Buckets live in a sharded map: each
//! shard is a `std::sync::Mutex<HashMap>` chosen by hashing the address, held for a few
//! arithmetic operations and never across an `.await`. It is the one lock on the request path,
//! taken only for services that configure a limit, and with [`SHARDS`] shards two requests
//! rarely meet on it.
//!
//! Memory is bounded. A bucket that has refilled completely carries no information (a new
//! client would get the same full bucket), so when a shard grows past its prune mark those
//! are dropped; if a shard still reaches its cap (many clients, all active), the stalest
//! eighth of its buckets is evicted. An evicted client starts again with a full bucket: under
//! that much pressure the limiter errs towards letting a few requests through.
//!
//! Limiters survive snapshot swaps: [`RateLimiters::sync`] keeps a service's limiter while its
//! entry is unchanged and replaces it when a reload changes it, and the request path finds
//! them with one lock-free `ArcSwap` load.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwap;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use switchyard_config::{Config, RateLimitConfig};
use tokio::time::Instant;

use crate::body::ProxyBody;
use crate::static_files::prefix_matches;

/// Shards per limiter (a power of two).
pub(crate) const SHARDS: usize = 32;
/// Buckets a shard may hold before it is pruned for the first time.
const PRUNE_MIN: usize = 256;
/// Most buckets per shard: 32 × 4096 = 131072 clients, a few MiB per limiter.
const MAX_PER_SHARD: usize = 4096;
/// The longest wait ever announced (a day; only a tiny `rate` comes near it).
const MAX_WAIT: Duration = Duration::from_secs(86_400);

/// One client's bucket.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Tokens left at `last` (fractional: refill is continuous).
    tokens: f64,
    /// When `tokens` was last brought up to date.
    last: Instant,
}

/// One shard of the bucket map.
#[derive(Debug, Default)]
struct Shard {
    buckets: HashMap<IpAddr, Bucket>,
    /// The size at which the next new client triggers a prune; raised after a prune so that
    /// pruning stays amortised O(1) per request when most buckets are busy.
    prune_at: usize,
}

/// The token buckets of one `[[services.NAME.rate_limits]]` entry.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    /// Tokens added per second.
    rate: f64,
    /// Bucket size: `1 + burst`.
    capacity: f64,
    /// Most buckets per shard.
    max_per_shard: usize,
    shards: Box<[Mutex<Shard>]>,
    /// Picks the shard of an address (random keys, so clients cannot aim at one shard).
    hasher: std::collections::hash_map::RandomState,
}

impl RateLimiter {
    /// A limiter enforcing `cfg` (its `path_prefix` is the caller's business).
    pub(crate) fn new(cfg: &RateLimitConfig) -> Self {
        Self::with_max_per_shard(cfg, MAX_PER_SHARD)
    }

    /// As [`new`](Self::new) with another cap per shard (tests use a small one).
    fn with_max_per_shard(cfg: &RateLimitConfig, max_per_shard: usize) -> Self {
        let shards = (0..SHARDS)
            .map(|_| {
                Mutex::new(Shard {
                    buckets: HashMap::new(),
                    prune_at: PRUNE_MIN.min(max_per_shard),
                })
            })
            .collect();
        RateLimiter {
            rate: cfg.rate,
            capacity: 1.0 + f64::from(cfg.burst),
            max_per_shard: max_per_shard.max(1),
            shards,
            hasher: std::collections::hash_map::RandomState::new(),
        }
    }

    /// Takes a token for `ip` at `now`, or says how long until one is available.
    pub(crate) fn check(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        let ip = ip.to_canonical();
        let index = (self.hasher.hash_one(ip) as usize) % SHARDS;
        let mut shard = self.shards[index]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let tokens = match shard.buckets.get(&ip) {
            Some(b) => self.refilled(b, now),
            None => {
                self.make_room(&mut shard, now);
                self.capacity
            }
        };
        let (tokens, verdict) = if tokens >= 1.0 {
            (tokens - 1.0, Ok(()))
        } else {
            let wait = Duration::try_from_secs_f64((1.0 - tokens) / self.rate)
                .map_or(MAX_WAIT, |d| d.min(MAX_WAIT));
            (tokens, Err(wait))
        };
        shard.buckets.insert(ip, Bucket { tokens, last: now });
        verdict
    }

    /// The bucket's tokens at `now`.
    fn refilled(&self, b: &Bucket, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        (b.tokens + elapsed * self.rate).min(self.capacity)
    }

    /// Before a new client is added: prunes full buckets when the shard has reached its prune
    /// mark, and evicts the stalest buckets when it is still at its cap.
    fn make_room(&self, shard: &mut Shard, now: Instant) {
        if shard.buckets.len() < shard.prune_at {
            return;
        }
        shard
            .buckets
            .retain(|_, b| self.refilled(b, now) < self.capacity);
        let len = shard.buckets.len();
        if len >= self.max_per_shard {
            let evict = (len / 8).max(1);
            let mut ages: Vec<Instant> = shard.buckets.values().map(|b| b.last).collect();
            let (_, cutoff, _) = ages.select_nth_unstable(evict - 1);
            let cutoff = *cutoff;
            let mut left = evict;
            shard.buckets.retain(|_, b| {
                if left > 0 && b.last <= cutoff {
                    left -= 1;
                    false
                } else {
                    true
                }
            });
        }
        let floor = PRUNE_MIN.min(self.max_per_shard);
        shard.prune_at = (shard.buckets.len() * 2).clamp(floor, self.max_per_shard);
    }

    /// Buckets held now, over all shards.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map_or(0, |s| s.buckets.len()))
            .sum()
    }
}

/// A limit entry with its live limiter.
pub(crate) type Limit = (RateLimitConfig, Arc<RateLimiter>);

/// The limit that applies to `path`: the entry with the longest matching `path_prefix`
/// (`None` matches every path, as the shortest prefix).
pub(crate) fn matching<'a>(limits: &'a [Limit], path: &str) -> Option<&'a Limit> {
    limits
        .iter()
        .filter(|(cfg, _)| {
            cfg.path_prefix
                .as_deref()
                .is_none_or(|p| prefix_matches(p, path))
        })
        .max_by_key(|(cfg, _)| cfg.path_prefix.as_deref().map_or(0, str::len))
}

/// The live limiters of one service.
#[derive(Debug, Default)]
pub(crate) struct ServiceLimits {
    /// The service's entries, in config order, each with its limiter.
    pub(crate) limits: Vec<Limit>,
}

impl ServiceLimits {
    /// Checks a request for `path` from `ip` against the limit that applies, if any.
    pub(crate) fn check(&self, path: &str, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        match matching(&self.limits, path) {
            Some((_, limiter)) => limiter.check(ip, now),
            None => Ok(()),
        }
    }
}

/// Every service's live limiters, kept across snapshot swaps.
#[derive(Debug, Default)]
pub(crate) struct RateLimiters {
    /// Service name → its limiters; services without limits are absent. Replaced whole by
    /// `sync` (the control path), read lock-free by the request path.
    by_service: ArcSwap<HashMap<String, Arc<ServiceLimits>>>,
}

impl RateLimiters {
    /// Limiters for every service of `config`.
    pub(crate) fn new(config: &Config) -> Self {
        let limiters = RateLimiters::default();
        limiters.sync(config);
        limiters
    }

    /// Brings the limiters in line with `config` (at start and after each reload): an entry
    /// whose service, `path_prefix`, rate and burst are unchanged keeps its limiter and its
    /// buckets; a changed or new entry gets a fresh limiter; entries that are gone are dropped.
    /// Entries are matched by `path_prefix` (a service has at most one per prefix), so
    /// reordering them in the file resets nothing.
    pub(crate) fn sync(&self, config: &Config) {
        let old = self.by_service.load_full();
        let mut next = HashMap::new();
        for (name, svc) in &config.services {
            if svc.rate_limits.is_empty() {
                continue;
            }
            let previous = old.get(name);
            let limits = svc
                .rate_limits
                .iter()
                .map(|cfg| {
                    let kept = previous
                        .and_then(|p| p.limits.iter().find(|(c, _)| c == cfg))
                        .map(|(_, l)| l.clone());
                    (
                        cfg.clone(),
                        kept.unwrap_or_else(|| Arc::new(RateLimiter::new(cfg))),
                    )
                })
                .collect();
            next.insert(name.clone(), Arc::new(ServiceLimits { limits }));
        }
        self.by_service.store(Arc::new(next));
    }

    /// The limiters of service `name`; `None` when it has no limit (the common case, one
    /// atomic load and a hash lookup).
    pub(crate) fn for_service(&self, name: &str) -> Option<Arc<ServiceLimits>> {
        self.by_service.load().get(name).cloned()
    }
}

/// The 429 answer: `Retry-After` in whole seconds, rounded up, at least 1.
pub(crate) fn too_many_requests(retry_after: Duration) -> Response<ProxyBody> {
    let secs = retry_after
        .as_secs()
        .saturating_add(u64::from(retry_after.subsec_nanos() > 0))
        .max(1);
    let mut resp = Response::new(ProxyBody::full(format!(
        "Too Many Requests: rate limit exceeded; retry in {secs} s\n"
    )));
    *resp.status_mut() = StatusCode::TOO_MANY_REQUESTS;
    let h = resp.headers_mut();
    h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

#[cfg(test)]
mod tests;
