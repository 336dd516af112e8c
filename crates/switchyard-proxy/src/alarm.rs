//! A deadline watched by one reusable [`Sleep`]: armed the first time it is needed, then moved
//! only when a wait must end sooner than the sleep. A wait that ends later leaves the sleep
//! alone, and the early wake-up re-arms it; a deadline that moves forward with each use (the
//! next request on a connection) then touches the timer wheel about once per period instead of
//! inserting and removing a timer every time.
//!
//! A sleep that was polled keeps the polling task's waker until it fires or is moved, so the
//! same task asking again need not poll it: registering a waker costs four atomic operations
//! (two exchanges on the timer's waker slot, a clone of the new waker and a drop of the old),
//! and a client connection asks once per request. The alarm remembers which waker the sleep
//! holds, by identity (its data and vtable addresses, as `Waker::will_wake` compares them; the
//! sleep's own clone keeps that waker's task alive, so no other task can have the same
//! address meanwhile), and skips the poll while the sleep stands for that waker.

use std::future::Future;
use std::num::NonZeroUsize;
use std::pin::{Pin, pin};
use std::task::{Context, Waker};

use tokio::time::{Instant, Sleep};

/// One connection's sleep, reused across the waits it watches.
#[derive(Debug, Default)]
pub(crate) struct Alarm {
    /// Fires at the current deadline or earlier; `None` until first needed.
    sleep: Option<Pin<Box<Sleep>>>,
    /// The identity of the waker the sleep will wake: set when a poll left it pending (so
    /// registered with that waker), cleared when the sleep is moved or has fired.
    holds: Option<WakerId>,
}

/// A waker's identity: its data and vtable addresses (no reference to it). The vtable's is
/// never zero, which keeps `Option<WakerId>` (in every connection) at two words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct WakerId(usize, NonZeroUsize);

impl WakerId {
    fn of(waker: &Waker) -> Option<Self> {
        let vtable = NonZeroUsize::new(std::ptr::from_ref(waker.vtable()) as usize)?;
        Some(WakerId(waker.data() as usize, vtable))
    }
}

impl Alarm {
    /// True once `deadline` has passed; otherwise the task is woken at (or before) it.
    pub(crate) fn passed(&mut self, cx: &mut Context<'_>, deadline: Instant) -> bool {
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if sleep.deadline() > deadline {
            sleep.as_mut().reset(deadline);
            self.holds = None;
        }
        if self.holds.is_some() && self.holds == WakerId::of(cx.waker()) && !sleep.is_elapsed() {
            // Still in the timer wheel with this task's waker: it will wake this task at its
            // deadline, which is no later than this one.
            return false;
        }
        loop {
            // Outside the task's cooperative budget: an exhausted budget would have the sleep
            // return pending without registering the waker, and the alarm then take it for
            // registered.
            if pin!(tokio::task::unconstrained(sleep.as_mut()))
                .poll(cx)
                .is_pending()
            {
                self.holds = WakerId::of(cx.waker());
                return false;
            }
            self.holds = None;
            if sleep.deadline() >= deadline {
                return true;
            }
            // Left from an earlier wait that ended sooner: sleep on until this one ends.
            sleep.as_mut().reset(deadline);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::poll_fn;
    use std::task::Poll;
    use std::time::Duration;

    use super::*;

    async fn wait(alarm: &mut Alarm, deadline: Instant) {
        poll_fn(|cx| {
            if alarm.passed(cx, deadline) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
    }

    fn passed_now(alarm: &mut Alarm, deadline: Instant) -> bool {
        let waker = std::task::Waker::noop();
        alarm.passed(&mut Context::from_waker(waker), deadline)
    }

    #[tokio::test(start_paused = true)]
    async fn a_later_deadline_is_waited_for_in_full_after_an_early_wake_up() {
        let start = Instant::now();
        let mut alarm = Alarm::default();
        assert!(!passed_now(&mut alarm, start + Duration::from_secs(10)));
        // The next wait ends later: the sleep (still at 10 s) is left alone, wakes early, and
        // the wait goes on to its own deadline.
        wait(&mut alarm, start + Duration::from_secs(25)).await;
        assert_eq!(Instant::now() - start, Duration::from_secs(25));
    }

    #[tokio::test(start_paused = true)]
    async fn a_sooner_deadline_moves_the_sleep() {
        let start = Instant::now();
        let mut alarm = Alarm::default();
        assert!(!passed_now(&mut alarm, start + Duration::from_secs(30)));
        wait(&mut alarm, start + Duration::from_secs(2)).await;
        assert_eq!(Instant::now() - start, Duration::from_secs(2));
        assert!(passed_now(&mut alarm, start + Duration::from_secs(1)));
        assert!(!passed_now(&mut alarm, start + Duration::from_secs(3)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_task_that_asks_again_is_still_woken_at_the_deadline() {
        let start = Instant::now();
        let mut alarm = Alarm::default();
        let deadline = start + Duration::from_secs(5);
        let mut polls = 0;
        poll_fn(|cx| {
            polls += 1;
            if polls == 2 {
                // Woken early: asked again with the same waker, the alarm does not poll
                // the sleep, which still wakes this task at the deadline.
                assert!(!alarm.passed(cx, deadline));
                return Poll::Pending;
            }
            if alarm.passed(cx, deadline) {
                return Poll::Ready(());
            }
            if polls == 1 {
                cx.waker().wake_by_ref();
            }
            Poll::Pending
        })
        .await;
        assert_eq!(Instant::now() - start, Duration::from_secs(5));
        assert_eq!(polls, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_spent_budget_still_arms_the_sleep() {
        let start = Instant::now();
        let mut alarm = Alarm::default();
        let deadline = start + Duration::from_secs(5);
        let mut spent = false;
        let waited = tokio::time::timeout(
            Duration::from_secs(60),
            poll_fn(|cx| {
                if !spent {
                    // Spend the task's cooperative budget (a budgeted sleep would then return
                    // pending without registering the waker).
                    spent = true;
                    while pin!(tokio::task::consume_budget()).poll(cx).is_ready() {}
                }
                if alarm.passed(cx, deadline) {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            }),
        )
        .await;
        assert!(waited.is_ok(), "the alarm never fired");
        assert_eq!(Instant::now() - start, Duration::from_secs(5));
    }
}
