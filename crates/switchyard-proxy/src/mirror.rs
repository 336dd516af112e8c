//! Mirror (SPEC §5): copies of live requests sent to another pool — usually the staged colour —
//! whose answers are thrown away, so its error rate and latency are known before the flip.
//!
//! A copy is decided and encoded before the original goes upstream (the head as rewritten for
//! the upstream, and the buffered body), and sent by a task of its own once the original has
//! its answer: it never delays or fails the client's request. Copies are bounded by
//! `max_in_flight` (beyond it a copy is skipped and counted, never queued), made only of the
//! listed methods and of bodies the replay buffer holds, and paused while the target pool takes
//! live traffic. A copy's connection is closed after its answer's head: the copy does not keep
//! a connection of the pool busy with a body nobody reads.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use http::request::Parts;
use switchyard_config::AllDown;
use switchyard_core::Service;
use switchyard_h1::BodyLength;
use tokio::time::Instant;

use switchyard_core::counters::PoolCounters;

use crate::upstream::exchange::{OutHead, Outgoing, exchange};

/// Skip reasons, as indexes of `switchyard_core::counters::MIRROR_SKIPS`.
const SKIP_FULL: usize = 0;
const SKIP_BODY: usize = 1;
const SKIP_NO_SERVER: usize = 2;

/// One copy, encoded and holding its in-flight slot until it is done (or dropped unsent).
pub(crate) struct Copy {
    service: Arc<Service>,
    pool: usize,
    counters: Arc<PoolCounters>,
    bytes: Bytes,
    head_request: bool,
}

impl Drop for Copy {
    fn drop(&mut self) {
        self.counters
            .mirror
            .in_flight
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// Decides whether this request is copied, and encodes the copy. Called with the head as it
/// will go upstream (its header map and the fields the proxy adds beside it) and the buffered
/// body (`None`: the body streams, and is not copied).
pub(crate) fn prepare(
    service: &Arc<Service>,
    parts: &Parts,
    added: &crate::headers::Added<'_>,
    replay: Option<&Option<Bytes>>,
) -> Option<Copy> {
    let target = service.mirror.as_ref()?;
    if service.is_live(target.pool) {
        // Paused: the target takes live traffic now (after a flip to it).
        return None;
    }
    let m = &target.mirror;
    if !m.methods.iter().any(|x| x == parts.method.as_str()) {
        return None;
    }
    if m.percent < 100 && fastrand::u32(0..100) >= m.percent {
        return None;
    }
    let pool = &service.pools[target.pool];
    let counters = pool.counters.clone();
    let Some(body) = replay else {
        counters.mirror.skipped(SKIP_BODY);
        return None;
    };
    let slots = &counters.mirror.in_flight;
    if slots.fetch_add(1, Ordering::Relaxed) >= u64::from(m.max_in_flight) {
        slots.fetch_sub(1, Ordering::Relaxed);
        counters.mirror.skipped(SKIP_FULL);
        return None;
    }
    let length = match body {
        Some(b) => BodyLength::Known(b.len() as u64),
        None => crate::forward::empty_body_length(parts),
    };
    let out = crate::forward::encode_request(parts, added, length, body.as_deref());
    Some(Copy {
        service: service.clone(),
        pool: target.pool,
        counters,
        bytes: out.freeze(),
        head_request: parts.method == http::Method::HEAD,
    })
}

/// Sends `copy` on a task of its own.
pub(crate) fn send(copy: Copy) {
    tokio::spawn(copy.run());
}

impl Copy {
    async fn run(self) {
        let pool = &self.service.pools[self.pool];
        let server = match pool.pick(&[], Instant::now(), AllDown::TryAll) {
            Ok(p) => p.server.state.clone(),
            Err(_) => {
                self.counters.mirror.skipped(SKIP_NO_SERVER);
                return;
            }
        };
        let Some(conns) = crate::upstream::conns(&server) else {
            self.counters.mirror.skipped(SKIP_NO_SERVER);
            return;
        };
        let started = Instant::now();
        let mut conn = match conns.checkout(&self.service.config.upstream, started).await {
            Ok(c) => c,
            Err(_) => {
                self.counters.mirror.answered(None, started.elapsed());
                return;
            }
        };
        let out = Outgoing {
            head: OutHead::Bytes(&self.bytes),
            streamed: None,
            head_request: self.head_request,
        };
        let timeout = self.service.config.upstream.response_timeout;
        let status = match tokio::time::timeout(timeout, exchange(&mut conn, out)).await {
            Ok(Ok(answer)) => Some(answer.head.status),
            _ => None,
        };
        self.counters.mirror.answered(status, started.elapsed());
        // The connection closes here, with whatever body the answer had unread.
        drop(conn);
    }
}
