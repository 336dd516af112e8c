//! The counters of mirror copies per target pool, how a pool counts an answer, and what the
//! guard reads of a pool.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::{BUCKETS_US, Latency, PoolCounters, class_index, load};

/// Why a mirror copy was not sent, by index.
pub(crate) const MIRROR_SKIPS: [&str; 3] = ["max_in_flight", "body_not_buffered", "no_server"];

/// What became of mirror copies, by index: the answer's status class, or `error`.
pub(crate) const MIRROR_RESULTS: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "error"];

/// The counters of the copies a mirror sends to one pool.
#[derive(Debug, Default)]
pub(crate) struct MirrorCounters {
    /// Copies by result ([`MIRROR_RESULTS`]).
    pub(crate) results: [AtomicU64; MIRROR_RESULTS.len()],
    /// Copies skipped, by reason ([`MIRROR_SKIPS`]).
    pub(crate) skips: [AtomicU64; MIRROR_SKIPS.len()],
    /// Time from sending a copy to its answer's head.
    pub(crate) latency: Latency,
    /// Copies in flight now.
    pub(crate) in_flight: AtomicU64,
}

impl MirrorCounters {
    /// Counts a copy's answer (`None`: it failed) and its latency.
    pub(crate) fn answered(&self, status: Option<u16>, took: Duration) {
        let i = status.map_or(MIRROR_RESULTS.len() - 1, class_index);
        self.results[i].fetch_add(1, Ordering::Relaxed);
        self.latency.observe(took);
    }

    /// Counts a skipped copy.
    pub(crate) fn skipped(&self, reason: usize) {
        if let Some(n) = self.skips.get(reason) {
            n.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl PoolCounters {
    pub(super) fn record(&self, status: u16, duration: Duration, attempts: u32, bytes: (u64, u64)) {
        self.requests[class_index(status)].fetch_add(1, Ordering::Relaxed);
        if bytes.0 > 0 {
            self.bytes_in.fetch_add(bytes.0, Ordering::Relaxed);
        }
        if bytes.1 > 0 {
            self.bytes_out.fetch_add(bytes.1, Ordering::Relaxed);
        }
        if attempts > 0 {
            self.attempts
                .fetch_add(u64::from(attempts), Ordering::Relaxed);
        }
        self.latency.observe(duration);
    }

    /// Requests answered so far.
    pub(crate) fn requests(&self) -> u64 {
        self.requests.iter().map(load).sum()
    }

    /// Requests answered with a 5xx status so far.
    pub(crate) fn errors(&self) -> u64 {
        load(&self.requests[4])
    }
}

/// What the guard reads of one pool: answers, 5xx answers, failed upstream attempts, and the
/// latency histogram (per bucket, not cumulative), all counted since the start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PoolReading {
    pub(crate) requests: u64,
    pub(crate) errors: u64,
    pub(crate) failures: u64,
    pub(crate) buckets: Vec<u64>,
}

impl PoolReading {
    /// What happened between `earlier` and this reading.
    pub(crate) fn since(&self, earlier: &PoolReading) -> PoolReading {
        PoolReading {
            requests: self.requests.saturating_sub(earlier.requests),
            errors: self.errors.saturating_sub(earlier.errors),
            failures: self.failures.saturating_sub(earlier.failures),
            buckets: self
                .buckets
                .iter()
                .enumerate()
                .map(|(i, n)| n.saturating_sub(earlier.buckets.get(i).copied().unwrap_or(0)))
                .collect(),
        }
    }

    /// The upper bound (ms) of the bucket holding the `q` quantile; `None` without answers.
    /// Answers slower than the last bound count as twice that bound.
    pub(crate) fn quantile_ms(&self, q: f64) -> Option<f64> {
        let total: u64 = self.buckets.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = (q * total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                let us = BUCKETS_US
                    .get(i)
                    .copied()
                    .unwrap_or(BUCKETS_US[BUCKETS_US.len() - 1] * 2);
                return Some(us as f64 / 1000.0);
            }
        }
        None
    }
}
