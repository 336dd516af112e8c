//! The guard's one timer: how long a client may take to start or finish a request head, and how
//! long an idle keep-alive connection is kept.
//!
//! The timer only matters while the guard waits for the client; it is looked at when a read from
//! the client would block (and when the HTTP/1 server flushes a finished answer, to start the
//! keep-alive wait). Its deadlines are watched by one [`Alarm`] per connection, so a busy
//! keep-alive connection touches the timer wheel about once per keep-alive period rather than
//! once per request.

use std::task::Context;
use std::time::Duration;

use tokio::time::Instant;

use crate::alarm::Alarm;

/// What the client is being waited for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// The connection's first byte (nginx `client_header_timeout` from the accept).
    First,
    /// The rest of a started request head (nginx `client_header_timeout`).
    Head,
    /// The next request on an idle keep-alive connection (nginx `keepalive_timeout`).
    Idle,
    /// The first part of an idle period, after which the connection may be parked (its
    /// buffers freed). The [`Phase::Idle`] wait that follows counts from this one's start.
    Park,
}

/// The deadline of the current wait and the sleep that fires at (or before) it.
#[derive(Debug)]
pub(super) struct Timer {
    /// When the connection was opened: the first-byte wait counts from here.
    opened: Instant,
    /// The wait the deadline belongs to: its phase and the number of requests released before
    /// it, so that each head and each idle period gets a deadline of its own.
    wait: Option<(Phase, u64)>,
    /// When the current wait started.
    started: Instant,
    /// When the current wait ends.
    deadline: Instant,
    /// Fires at `deadline` or earlier.
    alarm: Alarm,
}

impl Timer {
    /// A timer for a connection opened now.
    pub(super) fn new() -> Self {
        let now = Instant::now();
        Timer {
            opened: now,
            wait: None,
            started: now,
            deadline: now,
            alarm: Alarm::default(),
        }
    }

    /// Waits in `phase` (with `requests` requests released so far) for at most `limit`,
    /// counted from the start of this wait (from the connection's opening for
    /// [`Phase::First`]; from `idle_from`, when given, for the idle waits). Returns true once
    /// the wait's deadline has passed; otherwise the task is woken at (or before) the
    /// deadline.
    pub(super) fn expired(
        &mut self,
        cx: &mut Context<'_>,
        phase: Phase,
        requests: u64,
        limit: Duration,
        idle_from: Option<Instant>,
    ) -> bool {
        if self.wait != Some((phase, requests)) {
            let from = match phase {
                Phase::First => self.opened,
                // The idle period began with the park wait, if there was one.
                Phase::Idle if self.wait == Some((Phase::Park, requests)) => self.started,
                Phase::Idle | Phase::Park => idle_from.unwrap_or_else(Instant::now),
                Phase::Head => Instant::now(),
            };
            self.wait = Some((phase, requests));
            self.started = from;
            self.deadline = from + limit;
        }
        self.alarm.passed(cx, self.deadline)
    }
}
