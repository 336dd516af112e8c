//! The rise/fall state machine of active health checks.
//!
//! A server's first check decides its state at once (there is nothing to smooth yet). After
//! that, `rise` consecutive passes turn a down server up and `fall` consecutive failures turn an
//! up server down, so one lost probe does not eject a server (the classic HAProxy 2/3).

use crate::live::Health;

/// Tracks consecutive check results for one server.
#[derive(Debug, Clone)]
pub struct HealthTracker {
    rise: u32,
    fall: u32,
    state: Health,
    streak_ok: u32,
    streak_fail: u32,
}

impl HealthTracker {
    /// A tracker for a server not checked yet.
    pub fn new(rise: u32, fall: u32) -> Self {
        HealthTracker {
            rise: rise.max(1),
            fall: fall.max(1),
            state: Health::Unknown,
            streak_ok: 0,
            streak_fail: 0,
        }
    }

    /// The current verdict.
    pub fn state(&self) -> Health {
        self.state
    }

    /// Changes the thresholds (on a config reload) without forgetting the state.
    pub fn set_thresholds(&mut self, rise: u32, fall: u32) {
        self.rise = rise.max(1);
        self.fall = fall.max(1);
    }

    /// Records one check result; returns the new state when it changed.
    pub fn record(&mut self, passed: bool) -> Option<Health> {
        if passed {
            self.streak_ok += 1;
            self.streak_fail = 0;
        } else {
            self.streak_fail += 1;
            self.streak_ok = 0;
        }
        let next = match self.state {
            Health::Unknown => {
                if passed {
                    Health::Up
                } else {
                    Health::Down
                }
            }
            Health::Up if self.streak_fail >= self.fall => Health::Down,
            Health::Down if self.streak_ok >= self.rise => Health::Up,
            same => same,
        };
        if next != self.state {
            self.state = next;
            Some(next)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_result_decides() {
        let mut t = HealthTracker::new(2, 3);
        assert_eq!(t.record(true), Some(Health::Up));
        let mut t = HealthTracker::new(2, 3);
        assert_eq!(t.record(false), Some(Health::Down));
    }

    #[test]
    fn fall_after_three_failures_rise_after_two_passes() {
        let mut t = HealthTracker::new(2, 3);
        t.record(true);
        assert_eq!(t.record(false), None);
        assert_eq!(t.record(false), None);
        assert_eq!(t.record(true), None, "a pass resets the failure streak");
        assert_eq!(t.record(false), None);
        assert_eq!(t.record(false), None);
        assert_eq!(t.record(false), Some(Health::Down));
        assert_eq!(t.record(true), None);
        assert_eq!(t.record(false), None);
        assert_eq!(t.record(true), None);
        assert_eq!(t.record(true), Some(Health::Up));
        assert_eq!(t.state(), Health::Up);
    }
}
