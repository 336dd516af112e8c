//! The guard (SPEC §5): after a switch, or during a ramp, the new colour's error rate (5xx
//! answers and failed upstream attempts, as a share of its answers) and p99 are compared with
//! `[services.NAME.guard]`; a breach rolls back by itself, recorded with `actor: "guard"` and the
//! figures. A verdict stays in `/status` (`guard`) until the next switch.

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use switchyard_config::GuardConfig;
use tokio::sync::watch;
use tokio::time::Instant;

use super::Controller;
use crate::history::rfc3339;
use crate::metrics::{PoolReading, SwitchKind, pool_reading};

/// The actor of the guard's rollbacks in the history.
pub const ACTOR_GUARD: &str = "guard";

/// How often a watched colour's figures are looked at.
const LOOK_EVERY: Duration = Duration::from_millis(250);

/// What the guard says about a service's newest switch, as `/status` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuardStatus {
    /// The colour watched (the new one).
    pub pool: String,
    /// The colour it rolls back to.
    pub from: String,
    /// When the watch ends (RFC 3339 UTC).
    pub until: String,
    /// Answers of the new colour since the switch.
    pub requests: u64,
    /// Their share that were 5xx answers or failed upstream attempts.
    pub error_rate: f64,
    /// Their p99, ms (the upper bound of its latency bucket).
    pub p99_ms: Option<f64>,
    /// The old colour's p99 before the switch, ms.
    pub baseline_p99_ms: Option<f64>,
    /// `watching`, `passed` or `rolled_back`.
    pub verdict: String,
    /// The rule that broke, with the figures, when it rolled back.
    #[serde(default)]
    pub reason: Option<String>,
}

/// One watch under way (or its verdict).
#[derive(Debug)]
pub(crate) struct Watch {
    rules: GuardConfig,
    until: Instant,
    start: PoolReading,
    status: GuardStatus,
}

/// The figures of a watch so far, and the rule they break, if any.
pub(crate) fn judge(
    rules: &GuardConfig,
    seen: &PoolReading,
    baseline_p99_ms: Option<f64>,
) -> (f64, Option<f64>, Option<String>) {
    let bad = seen.errors + seen.failures;
    let rate = if seen.requests == 0 {
        0.0
    } else {
        (bad as f64 / seen.requests as f64).min(1.0)
    };
    let p99 = seen.quantile_ms(0.99);
    if seen.requests < rules.min_requests {
        return (rate, p99, None);
    }
    if rate > rules.max_error_rate {
        let why = format!(
            "error rate {rate:.3} ({bad} of {} answers were 5xx or upstream failures) above max_error_rate {}",
            seen.requests, rules.max_error_rate
        );
        return (rate, p99, Some(why));
    }
    if let (Some(p99), Some(base)) = (p99, baseline_p99_ms) {
        if rules.max_p99_factor > 0.0 && base > 0.0 && p99 > base * rules.max_p99_factor {
            let why = format!(
                "p99 {p99} ms above {} × the old colour's {base} ms",
                rules.max_p99_factor
            );
            return (rate, Some(p99), Some(why));
        }
    }
    (rate, p99, None)
}

impl Controller {
    /// Starts watching `pool` of `service` (switched to from `from`) for the service's guard
    /// window, extended by `extra` (a ramp's duration). Nothing when the service has no guard.
    pub(crate) fn arm_guard(&self, service: &str, pool: &str, from: &str, extra: Duration) {
        let snapshot = self.snapshot();
        let Some(rules) = snapshot
            .service(service)
            .and_then(|s| s.config.guard.clone())
        else {
            return;
        };
        let baseline = pool_reading(&snapshot, service, from).quantile_ms(0.99);
        let window = rules.window + extra;
        let until = SystemTime::now() + window;
        let watch = Watch {
            until: Instant::now() + window,
            start: pool_reading(&snapshot, service, pool),
            status: GuardStatus {
                pool: pool.to_string(),
                from: from.to_string(),
                until: rfc3339(until),
                requests: 0,
                error_rate: 0.0,
                p99_ms: None,
                baseline_p99_ms: baseline,
                verdict: "watching".into(),
                reason: None,
            },
            rules,
        };
        tracing::info!(service, pool, ?window, "guard watching the new colour");
        self.guards
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(service.to_string(), watch);
        self.guard_wake.notify_one();
    }

    /// Ends a watch without a verdict of its own (a later decision replaced the switch).
    pub(crate) fn disarm_guard(&self, service: &str) {
        let mut guards = self.guards.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(w) = guards.get_mut(service) {
            if w.status.verdict == "watching" {
                w.status.verdict = "ended".into();
            }
        }
    }

    /// Each service's guard verdict, for `/status`.
    pub(crate) fn guard_statuses(&self) -> BTreeMap<String, GuardStatus> {
        self.guards
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(s, w)| (s.clone(), w.status.clone()))
            .collect()
    }

    /// Looks at every watch once: updates its figures, passes it after its window, and rolls
    /// back a colour that broke a rule. True while some watch goes on.
    pub(crate) async fn look_at_guards(&self) -> bool {
        let now = Instant::now();
        let mut breaches = Vec::new();
        let mut watching = false;
        let snapshot = self.snapshot();
        {
            let mut guards = self.guards.lock().unwrap_or_else(PoisonError::into_inner);
            for (service, w) in guards.iter_mut() {
                if w.status.verdict != "watching" {
                    continue;
                }
                let seen = pool_reading(&snapshot, service, &w.status.pool).since(&w.start);
                let (rate, p99, breach) = judge(&w.rules, &seen, w.status.baseline_p99_ms);
                w.status.requests = seen.requests;
                w.status.error_rate = rate;
                w.status.p99_ms = p99;
                if let Some(why) = breach {
                    w.status.verdict = "rolled_back".into();
                    w.status.reason = Some(why.clone());
                    breaches.push((service.clone(), w.status.pool.clone(), why));
                } else if now >= w.until {
                    w.status.verdict = "passed".into();
                    tracing::info!(service = %service, pool = %w.status.pool, requests = seen.requests, error_rate = rate, "guard window passed");
                } else {
                    watching = true;
                }
            }
        }
        for (service, pool, why) in breaches {
            tracing::warn!(service = %service, pool = %pool, reason = %why, "guard: rolling back");
            match self
                .rollback_with(ACTOR_GUARD, Some(&service), true, Some(why))
                .await
            {
                Ok(_) => self
                    .shared
                    .metrics
                    .switched(&service, SwitchKind::GuardRollback),
                Err(e) => {
                    tracing::error!(service = %service, error = %e, "guard: the rollback failed");
                    let mut guards = self.guards.lock().unwrap_or_else(PoisonError::into_inner);
                    if let Some(w) = guards.get_mut(&service) {
                        w.status.verdict = "rollback_failed".into();
                        w.status.reason = Some(format!(
                            "{}; the rollback failed: {e}",
                            w.status.reason.clone().unwrap_or_default()
                        ));
                    }
                }
            }
        }
        watching
    }
}

/// Looks at the watches while any goes on, until `stop` turns true.
pub(crate) async fn run(ctl: Arc<Controller>, mut stop: watch::Receiver<bool>) {
    loop {
        let watching = ctl.look_at_guards().await;
        let wait = if watching {
            LOOK_EVERY
        } else {
            Duration::from_secs(3600)
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = ctl.guard_wake.notified() => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(requests: u64, errors: u64, failures: u64, slow: u64) -> PoolReading {
        // 18 buckets: 1 ms is bucket 4, 250 ms bucket 11.
        let mut buckets = vec![0; 18];
        buckets[4] = requests - slow;
        buckets[11] = slow;
        PoolReading {
            requests,
            errors,
            failures,
            buckets,
        }
    }

    #[test]
    fn verdicts() {
        let rules = GuardConfig {
            window: Duration::from_secs(60),
            max_error_rate: 0.05,
            min_requests: 50,
            max_p99_factor: 3.0,
        };
        // Too few answers: no verdict, however bad.
        assert_eq!(judge(&rules, &reading(49, 49, 0, 0), Some(1.0)).2, None);
        // Healthy.
        let (rate, p99, breach) = judge(&rules, &reading(200, 2, 3, 0), Some(1.0));
        assert!((rate - 0.025).abs() < 1e-9);
        assert_eq!(p99, Some(1.0));
        assert_eq!(breach, None);
        // 5xx plus failures over the limit.
        let breach = judge(&rules, &reading(100, 4, 2, 0), Some(1.0)).2;
        assert!(breach.is_some_and(|b| b.contains("error rate 0.060")));
        // p99 over 3× the old colour's.
        let breach = judge(&rules, &reading(100, 0, 0, 5), Some(1.0)).2;
        assert!(breach.is_some_and(|b| b.contains("p99 250 ms")));
        // The p99 rule off, or no baseline: no p99 verdict.
        let off = GuardConfig {
            max_p99_factor: 0.0,
            ..rules.clone()
        };
        assert_eq!(judge(&off, &reading(100, 0, 0, 5), Some(1.0)).2, None);
        assert_eq!(judge(&rules, &reading(100, 0, 0, 5), None).2, None);
    }
}
