//! A deadline watched by one reusable [`Sleep`]: armed the first time it is needed, then moved
//! only when a wait must end sooner than the sleep. A wait that ends later leaves the sleep
//! alone, and the early wake-up re-arms it; a deadline that moves forward with each use (the
//! next request on a connection) then touches the timer wheel about once per period instead of
//! inserting and removing a timer every time.

use std::future::Future;
use std::pin::Pin;
use std::task::Context;

use tokio::time::{Instant, Sleep};

/// One connection's sleep, reused across the waits it watches.
#[derive(Debug, Default)]
pub(crate) struct Alarm {
    /// Fires at the current deadline or earlier; `None` until first needed.
    sleep: Option<Pin<Box<Sleep>>>,
}

impl Alarm {
    /// True once `deadline` has passed; otherwise the task is woken at (or before) it.
    pub(crate) fn passed(&mut self, cx: &mut Context<'_>, deadline: Instant) -> bool {
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if sleep.deadline() > deadline {
            sleep.as_mut().reset(deadline);
        }
        loop {
            if sleep.as_mut().poll(cx).is_pending() {
                return false;
            }
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
}
