//! Waiting without sleeps: poll a condition until it holds, or bound a future, by wall-clock time.
//!
//! Deadlines here are measured with [`std::time::Instant`], not tokio's clock, so they mean the
//! same thing in a test on paused tokio time: there, auto-advance would otherwise fire a tokio
//! timeout at once while real socket I/O is still on its way. The short steps between polls are
//! tokio sleeps, so on paused time the virtual clock moves on in small steps while a test waits.

use std::future::Future;
use std::panic::Location;
use std::time::{Duration, Instant};

/// How often [`poll_until`] checks its condition.
pub const POLL_INTERVAL: Duration = Duration::from_millis(5);

/// The longest single tokio sleep [`within`] takes before it looks at the wall clock again.
const DEADLINE_STEP: Duration = Duration::from_millis(25);

/// Polls `condition` every [`POLL_INTERVAL`] until it returns `true`; panics, naming the
/// caller's line, if it is still `false` after `timeout` of wall-clock time.
///
/// The only sanctioned way for a test to wait for something to become ready.
#[track_caller]
pub fn poll_until<F, Fut>(timeout: Duration, mut condition: F) -> impl Future<Output = ()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let caller = Location::caller();
    async move {
        let deadline = Instant::now() + timeout;
        loop {
            if condition().await {
                return;
            }
            if Instant::now() >= deadline {
                panic!("poll_until at {caller}: condition still false after {timeout:?}");
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }
}

/// Runs `fut` for at most `timeout` of wall-clock time: `Some(output)` if it finished, `None`
/// if the time ran out (the future is dropped then).
pub async fn within<F: Future>(timeout: Duration, fut: F) -> Option<F::Output> {
    let deadline = Instant::now() + timeout;
    tokio::select! {
        biased;
        out = fut => Some(out),
        () = wall_deadline(deadline) => None,
    }
}

/// Resolves once the wall clock has passed `deadline`.
async fn wall_deadline(deadline: Instant) {
    loop {
        let now = Instant::now();
        if now >= deadline {
            return;
        }
        tokio::time::sleep((deadline - now).min(DEADLINE_STEP)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn poll_until_returns_once_the_condition_holds() {
        let calls = Arc::new(AtomicU32::new(0));
        poll_until(Duration::from_secs(5), || {
            let calls = Arc::clone(&calls);
            async move { calls.fetch_add(1, Ordering::SeqCst) >= 3 }
        })
        .await;
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    #[should_panic(expected = "condition still false after")]
    async fn poll_until_panics_after_the_timeout() {
        poll_until(Duration::from_millis(30), || async { false }).await;
    }

    #[tokio::test]
    async fn within_bounds_a_future_that_never_ends() {
        assert_eq!(within(Duration::from_secs(1), async { 7 }).await, Some(7));
        let never = std::future::pending::<()>();
        assert_eq!(within(Duration::from_millis(30), never).await, None);
    }

    #[tokio::test(start_paused = true)]
    async fn within_measures_wall_time_on_paused_tokio_time() {
        // On paused time a tokio timeout would fire at once; a wall-clock one does not.
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            let _ = tx.send(());
        });
        assert!(within(Duration::from_secs(10), rx).await.is_some());
    }
}
