//! What the guard reads of one pool, and what it makes of two readings.

use switchyard_core::counters::BUCKETS_US;

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
