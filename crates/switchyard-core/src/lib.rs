//! Switchyard's engine without sockets: the routing snapshot, live per-server state, server
//! selection, the health state machine, the retry policy, and what the snapshot carries for the
//! request path (traffic counters, per-client rate limiters).
//!
//! Everything here is pure logic over shared atomics, so it is unit-tested directly and used
//! unchanged by the proxy crate, the benches and the tests.

pub mod counters;
pub mod health;
pub mod live;
pub mod ratelimit;
pub mod retry;
pub mod router;
pub mod select;
pub mod snapshot;

pub use live::{Health, InFlight, Member, PoolState, Registry, ServerState};
pub use snapshot::{
    Decisions, Mirror, MirrorTarget, Pool, PoolRole, PoolServer, Ramp, Service, ServiceDecision,
    Snapshot,
};
