//! Handing a client connection over once its request was answered with `101 Switching
//! Protocols` (or a 2xx to `CONNECT`): the service takes an [`OnUpgrade`] from the request's
//! extensions and awaits it; the connection driver sends it the stream, with any bytes already
//! read after the request, once the answer's head is written.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::oneshot;

/// A client stream after an upgrade, as the tunnel gets it.
pub(crate) trait UpgradedIo: AsyncRead + AsyncWrite + Unpin + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> UpgradedIo for T {}

/// The client's stream once the connection has been upgraded.
pub(crate) type Upgraded = Box<dyn UpgradedIo>;

/// Why a connection was not handed over.
#[derive(Debug, thiserror::Error)]
#[error("the connection was not upgraded")]
pub(crate) struct NotUpgraded;

/// Resolves to the client's stream once the answer to the request it came with has opened a
/// tunnel; fails when the request was answered otherwise or the connection ended first.
/// (A request's extensions must be `Clone`: the clones share one hand-over, which the first to
/// await it takes.)
#[derive(Debug, Clone)]
pub(crate) struct OnUpgrade(Arc<Mutex<Option<oneshot::Receiver<Upgraded>>>>);

impl std::fmt::Debug for dyn UpgradedIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Upgraded")
    }
}

/// The driver's side of an [`OnUpgrade`].
pub(super) struct Pending(oneshot::Sender<Upgraded>);

/// A linked pair: the pending hand-over (for the driver) and its future (for the service).
pub(super) fn pair() -> (Pending, OnUpgrade) {
    let (tx, rx) = oneshot::channel();
    (Pending(tx), OnUpgrade(Arc::new(Mutex::new(Some(rx)))))
}

impl Pending {
    /// Hands the stream over, with `early`: bytes the client sent after the request that were
    /// already read.
    pub(super) fn fulfil<I: UpgradedIo + 'static>(self, io: I, early: Bytes) {
        let io: Upgraded = if early.is_empty() {
            Box::new(io)
        } else {
            Box::new(Prefixed { early, io })
        };
        // The service gave up on the tunnel: the stream closes as it is dropped.
        let _ = self.0.send(io);
    }
}

impl Future for OnUpgrade {
    type Output = Result<Upgraded, NotUpgraded>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut slot = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(rx) = slot.as_mut() else {
            return Poll::Ready(Err(NotUpgraded));
        };
        let r = std::task::ready!(Pin::new(rx).poll(cx));
        *slot = None;
        Poll::Ready(r.map_err(|_| NotUpgraded))
    }
}

/// A stream with bytes already read from it put back in front.
struct Prefixed<I> {
    /// Read first.
    early: Bytes,
    /// The stream.
    io: I,
}

impl<I: AsyncRead + Unpin> AsyncRead for Prefixed<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.early.has_remaining() {
            let n = this.early.len().min(buf.remaining());
            buf.put_slice(&this.early[..n]);
            this.early.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Prefixed<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}
