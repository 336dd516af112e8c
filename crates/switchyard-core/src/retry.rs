//! Retry decisions: whether a failed attempt may be tried again, the retry budget, and backoff.
//!
//! One fact drives every decision: could the request have reached the upstream? A connect
//! failure, or a request handed back unsent by a pooled connection, never did, so any method is
//! retried. Once sent, only idempotent methods are retried, and only when the body can be
//! replayed. Once a byte of the response has gone to the client, nothing is retried — the proxy
//! enforces that by deciding before it forwards any response.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use switchyard_config::RetryConfig;
use tokio::time::Instant;

/// What went wrong with one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The TCP connection was refused.
    ConnectRefused,
    /// The TCP connection did not complete within the connect timeout.
    ConnectTimeout,
    /// Another error while connecting.
    ConnectError,
    /// A pooled connection closed before the request was written; it was handed back unsent.
    Unsent,
    /// The connection was reset or closed after the request was (maybe partly) sent, before a
    /// response head arrived.
    Reset,
    /// No response head within the response timeout.
    ResponseTimeout,
    /// The upstream answered with a status the policy retries (e.g. 503).
    Status(u16),
}

impl FailureKind {
    /// True when the request may have reached the upstream application.
    pub fn reached_upstream(self) -> bool {
        !matches!(
            self,
            FailureKind::ConnectRefused
                | FailureKind::ConnectTimeout
                | FailureKind::ConnectError
                | FailureKind::Unsent
        )
    }

    /// A short reason, used in logs, metrics and error bodies.
    pub fn reason(self) -> &'static str {
        match self {
            FailureKind::ConnectRefused => "connect_refused",
            FailureKind::ConnectTimeout => "connect_timeout",
            FailureKind::ConnectError => "connect_error",
            FailureKind::Unsent => "connection_closed_unsent",
            FailureKind::Reset => "reset_before_response",
            FailureKind::ResponseTimeout => "response_timeout",
            FailureKind::Status(_) => "retryable_status",
        }
    }

    /// True for failures that count against the server for passive ejection.
    pub fn counts_against_server(self) -> bool {
        !matches!(self, FailureKind::Unsent)
    }
}

/// What the proxy knows about the request when deciding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestTraits {
    /// The method is idempotent (or the request carries an `Idempotency-Key` and the policy
    /// trusts it).
    pub idempotent: bool,
    /// The body is still available to send again: it was buffered, or it was never touched.
    pub body_replayable: bool,
}

/// The verdict on one failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Try again on another server.
    Retry,
    /// Do not try again, and why.
    Stop(StopReason),
}

/// Why a failed attempt is final.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The attempt count is used up.
    AttemptsExhausted,
    /// The request is not idempotent and may have reached the upstream.
    NotIdempotent,
    /// The body was streamed and is gone.
    BodyNotReplayable,
    /// This status is not retried by the policy.
    StatusNotRetried,
}

/// True for the methods RFC 9110 calls idempotent.
pub fn method_is_idempotent(method: &str) -> bool {
    matches!(
        method,
        "GET" | "HEAD" | "OPTIONS" | "PUT" | "DELETE" | "TRACE"
    )
}

/// Decides whether attempt number `attempt` (1-based) that failed with `kind` may be retried.
///
/// The retry budget is checked separately (it is shared state), after this says `Retry`.
pub fn decide(
    policy: &RetryConfig,
    req: RequestTraits,
    kind: FailureKind,
    attempt: u32,
) -> Verdict {
    if attempt >= policy.attempts {
        return Verdict::Stop(StopReason::AttemptsExhausted);
    }
    if let FailureKind::Status(code) = kind {
        if !policy.on_status.contains(&code) {
            return Verdict::Stop(StopReason::StatusNotRetried);
        }
    }
    if kind.reached_upstream() {
        if !req.idempotent {
            return Verdict::Stop(StopReason::NotIdempotent);
        }
        if !req.body_replayable {
            return Verdict::Stop(StopReason::BodyNotReplayable);
        }
    }
    Verdict::Retry
}

/// The backoff before retry number `retry` (1-based): an exponential step from `base`, capped at
/// `max`, with equal jitter (half fixed, half random) so retries from many requests spread out.
pub fn backoff(retry: u32, base: Duration, max: Duration) -> Duration {
    let factor = 1u32
        .checked_shl(retry.saturating_sub(1).min(31))
        .unwrap_or(u32::MAX);
    let step = base.checked_mul(factor).unwrap_or(max).min(max);
    let half = step / 2;
    let jitter_ns = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
    half + Duration::from_nanos(fastrand::u64(0..=jitter_ns))
}

/// A service's retry budget, over a sliding window of about one second: retries may be at most
/// `ratio` of the requests seen in the window, and at least `min` retries per window are always
/// allowed. A dead pool therefore adds at most `ratio` to the load, while a burst of failures
/// after a deploy (many requests in flight on a killed server at once) is still retried.
///
/// Lock-free: two one-second buckets of atomics, rolled by whoever first notices a new second.
/// The roll is approximate under races, which only blurs a rate estimate.
#[derive(Debug)]
pub struct RetryBudget {
    epoch: Instant,
    /// The second (since `epoch`) the current bucket counts.
    second: AtomicU64,
    requests: AtomicU32,
    retries: AtomicU32,
    prev_requests: AtomicU32,
    prev_retries: AtomicU32,
}

impl Default for RetryBudget {
    fn default() -> Self {
        RetryBudget {
            epoch: Instant::now(),
            second: AtomicU64::new(0),
            requests: AtomicU32::new(0),
            retries: AtomicU32::new(0),
            prev_requests: AtomicU32::new(0),
            prev_retries: AtomicU32::new(0),
        }
    }
}

impl RetryBudget {
    fn roll(&self, now: Instant) {
        let now = now.saturating_duration_since(self.epoch).as_secs();
        let seen = self.second.load(Ordering::Acquire);
        if now == seen
            || self
                .second
                .compare_exchange(seen, now, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
        {
            return;
        }
        let (reqs, rets) = (
            self.requests.swap(0, Ordering::AcqRel),
            self.retries.swap(0, Ordering::AcqRel),
        );
        let (reqs, rets) = if now == seen + 1 {
            (reqs, rets)
        } else {
            (0, 0)
        };
        self.prev_requests.store(reqs, Ordering::Release);
        self.prev_retries.store(rets, Ordering::Release);
    }

    /// Counts one request (call once per client request, not per attempt); `now` is the time
    /// the caller read for it.
    pub fn record_request(&self, now: Instant) {
        self.roll(now);
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// Admits one retry if the budget allows it, and counts it.
    pub fn try_retry(&self, ratio: f64, min: u32) -> bool {
        self.roll(Instant::now());
        let requests =
            self.requests.load(Ordering::Relaxed) + self.prev_requests.load(Ordering::Relaxed);
        let allowed = ((f64::from(requests) * ratio).floor() as u32).max(min);
        let spent =
            self.retries.load(Ordering::Relaxed) + self.prev_retries.load(Ordering::Relaxed);
        if spent >= allowed {
            return false;
        }
        self.retries.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// Retries counted in the current window.
    pub fn retries_in_window(&self) -> u32 {
        self.roll(Instant::now());
        self.retries.load(Ordering::Relaxed) + self.prev_retries.load(Ordering::Relaxed)
    }
}

/// One failure of every kind, for tests.
#[cfg(test)]
pub(crate) const ALL_KINDS: [FailureKind; 7] = [
    FailureKind::ConnectRefused,
    FailureKind::ConnectTimeout,
    FailureKind::ConnectError,
    FailureKind::Unsent,
    FailureKind::Reset,
    FailureKind::ResponseTimeout,
    FailureKind::Status(503),
];

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [FailureKind; 7] = ALL_KINDS;

    fn traits(idempotent: bool, body_replayable: bool) -> RequestTraits {
        RequestTraits {
            idempotent,
            body_replayable,
        }
    }

    #[test]
    fn unsent_failures_retry_for_any_method() {
        let p = RetryConfig::default();
        for kind in ALL.into_iter().filter(|k| !k.reached_upstream()) {
            assert_eq!(decide(&p, traits(false, false), kind, 1), Verdict::Retry);
        }
    }

    #[test]
    fn sent_failures_retry_only_idempotent_replayable_requests() {
        let p = RetryConfig::default();
        for kind in ALL.into_iter().filter(|k| k.reached_upstream()) {
            assert_eq!(
                decide(&p, traits(false, true), kind, 1),
                Verdict::Stop(StopReason::NotIdempotent),
                "{kind:?}"
            );
            assert_eq!(
                decide(&p, traits(true, false), kind, 1),
                Verdict::Stop(StopReason::BodyNotReplayable)
            );
            assert_eq!(decide(&p, traits(true, true), kind, 1), Verdict::Retry);
        }
    }

    #[test]
    fn attempts_are_bounded_and_statuses_filtered() {
        let p = RetryConfig::default();
        let k = FailureKind::ConnectRefused;
        assert_eq!(decide(&p, traits(true, true), k, 2), Verdict::Retry);
        assert_eq!(
            decide(&p, traits(true, true), k, 3),
            Verdict::Stop(StopReason::AttemptsExhausted)
        );
        assert_eq!(
            decide(&p, traits(true, true), FailureKind::Status(500), 1),
            Verdict::Stop(StopReason::StatusNotRetried)
        );
    }

    #[test]
    fn idempotent_methods() {
        for m in ["GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"] {
            assert!(method_is_idempotent(m));
        }
        for m in ["POST", "PATCH", "CONNECT", "LOCK"] {
            assert!(!method_is_idempotent(m));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn budget_has_a_floor_and_a_ratio_per_window() {
        let b = RetryBudget::default();
        for _ in 0..5 {
            b.record_request(Instant::now());
        }
        // 20% of 5 is 1, the floor is 3.
        assert_eq!((0..5).filter(|_| b.try_retry(0.2, 3)).count(), 3);
        for _ in 0..45 {
            b.record_request(Instant::now());
        }
        // 20% of 50 is 10, 3 already spent.
        assert_eq!((0..20).filter(|_| b.try_retry(0.2, 3)).count(), 7);
        assert_eq!(b.retries_in_window(), 10);
        // The previous second still counts; two seconds later the window is fresh.
        tokio::time::advance(Duration::from_millis(1000)).await;
        assert!(!b.try_retry(0.2, 3));
        tokio::time::advance(Duration::from_millis(1000)).await;
        assert_eq!(b.retries_in_window(), 0);
        assert_eq!((0..5).filter(|_| b.try_retry(0.2, 3)).count(), 3);
    }

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let base = Duration::from_millis(25);
        let max = Duration::from_millis(250);
        for _ in 0..200 {
            let d1 = backoff(1, base, max);
            assert!(d1 >= base / 2 && d1 <= base, "{d1:?}");
            let d3 = backoff(3, base, max);
            assert!(d3 >= base * 2 && d3 <= base * 4, "{d3:?}");
            let d9 = backoff(9, base, max);
            assert!(d9 >= max / 2 && d9 <= max, "{d9:?}");
        }
        let distinct: std::collections::HashSet<_> =
            (0..50).map(|_| backoff(4, base, max)).collect();
        assert!(distinct.len() > 1, "backoff is jittered");
    }
}
