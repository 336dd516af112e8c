//! The request body made ready for the attempts: buffered whole when it ends within the
//! retry policy's replay buffer (then every attempt can send it), else streamed once.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::{Bytes, BytesMut};
use http_body::Body;
use http_body_util::BodyExt;
use switchyard_config::RetryConfig;

use crate::body::{ClientBody, LimitedStream, StreamProgress, UpstreamBody};
use crate::error::ProxyError;

/// A request body made ready for the attempts.
pub(super) enum Prepared {
    /// Read completely: replayed on every attempt.
    Buffered(Option<Bytes>),
    /// Too large to buffer: sent once.
    Streamed(UpstreamBody, Arc<StreamProgress>),
}

/// Reads up to the replay limit; a body that ends within it is buffered, else it is streamed.
pub(super) async fn prepare_body(
    body: ClientBody,
    policy: &RetryConfig,
    max_body: u64,
    body_timeout: std::time::Duration,
) -> Result<Prepared, ProxyError> {
    if body.is_end_stream() {
        return Ok(Prepared::Buffered(None));
    }
    let limit = policy.replay_buffer as u64;
    let progress = Arc::new(StreamProgress::default());
    // The body streamed once: what was read of it first (`prefix`), then the rest.
    let streamed = |prefix: Option<Bytes>, inner: ClientBody, progress: Arc<StreamProgress>| {
        let stream = LimitedStream {
            seen: prefix.as_ref().map_or(0, |p| p.len() as u64),
            prefix,
            inner,
            max: max_body,
            progress: progress.clone(),
            timeout: body_timeout,
            wait_until: None,
            idle: None,
        };
        Prepared::Streamed(UpstreamBody::Stream(Box::new(stream)), progress)
    };
    if body.size_hint().lower() > limit {
        return Ok(streamed(None, body, progress));
    }
    let mut body = body;
    let mut buf = BytesMut::new();
    loop {
        let frame = tokio::time::timeout(body_timeout, body.frame())
            .await
            .map_err(|_| ProxyError::BodyTimeout)?;
        match frame {
            None => {
                return Ok(Prepared::Buffered(
                    Some(buf.freeze()).filter(|b| !b.is_empty()),
                ));
            }
            Some(Err(_)) => return Err(ProxyError::BadBody),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    buf.extend_from_slice(&data);
                    if buf.len() as u64 > max_body {
                        return Err(ProxyError::BodyTooLarge);
                    }
                    if buf.len() as u64 > limit {
                        progress.arrived.store(buf.len() as u64, Ordering::Relaxed);
                        return Ok(streamed(Some(buf.freeze()), body, progress));
                    }
                }
            }
        }
    }
}
