//! Per-client request rate limits (nginx `limit_req zone=… burst=… nodelay`): a token bucket
//! per client IP address; what goes over is refused with the time until a token is back (the
//! proxy answers it with 429 and `Retry-After`).
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
//! Limiters live in the snapshot: each [`Service`](crate::Service) carries its
//! [`ServiceLimits`], and `Snapshot::build_next` hands an entry's limiter (and its buckets)
//! to the next snapshot while the entry's `path_prefix`, rate and burst are unchanged. A
//! request reaches them through the service it was routed to, with no look-up.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use switchyard_config::RateLimitConfig;
use tokio::time::Instant;

/// Shards per limiter (a power of two).
pub const SHARDS: usize = 32;
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
pub struct RateLimiter {
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
    pub fn new(cfg: &RateLimitConfig) -> Self {
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
    pub fn check(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
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
pub type Limit = (RateLimitConfig, Arc<RateLimiter>);

/// The limit that applies to `path`: the entry with the longest matching `path_prefix`
/// (`None` matches every path, as the shortest prefix).
pub fn matching<'a>(limits: &'a [Limit], path: &str) -> Option<&'a Limit> {
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
pub struct ServiceLimits {
    /// The service's entries, in config order, each with its limiter.
    pub limits: Vec<Limit>,
}

impl ServiceLimits {
    /// The limiters of `entries`: an entry equal to one of `previous` (same `path_prefix`, rate
    /// and burst) keeps that limiter and its buckets; a changed or new entry gets a fresh one.
    /// Entries are matched by value, so reordering them in the file resets nothing.
    pub fn carried_over(entries: &[RateLimitConfig], previous: Option<&ServiceLimits>) -> Self {
        let limits = entries
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
        ServiceLimits { limits }
    }

    /// True when the service has no limit (the common case: nothing to check).
    pub fn is_empty(&self) -> bool {
        self.limits.is_empty()
    }

    /// Checks a request for `path` from `ip` against the limit that applies, if any.
    pub fn check(&self, path: &str, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        match matching(&self.limits, path) {
            Some((_, limiter)) => limiter.check(ip, now),
            None => Ok(()),
        }
    }
}

/// Whether `path` lies within `prefix`, whole segments only (`/login` covers `/login` and
/// `/login/x`, not `/loginx`; `/` covers every path): the rule of static files' prefixes too.
fn prefix_matches(prefix: &str, path: &str) -> bool {
    if prefix == "/" {
        return true;
    }
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

#[cfg(test)]
mod tests;
