//! The read side of [`Guarded`]: hand out what is cleared, judge what is buffered, read more.
//!
//! Bytes flow `client -> buf[ok..end] (being judged) -> buf[pos..ok] (cleared) -> hyper`, except
//! body and tunnel bytes, which are read straight into hyper's buffer when nothing is buffered.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, ReadBuf};

use super::chunked::{Chunked, Progress};
use super::head::{self, Body, Head, Tunnel};
use super::tunnel;
use super::{Guarded, PREFACE, REJECT_HEAD, State, WAKE_UP};

/// The first size of the head buffer.
const INITIAL_BUF: usize = 4096;

/// What the read loop does after judging the buffered bytes.
enum Step {
    /// Something changed: look again.
    Again,
    /// More bytes from the client are needed.
    Read,
    /// Waiting for the service's answer (the waker is registered).
    Wait,
}

impl<IO> Guarded<IO> {
    /// Hands out the wake-up line, cleared bytes or the replacement head; false when there is
    /// nothing to hand out.
    fn hand_out(&mut self, out: &mut ReadBuf<'_>) -> bool {
        let bytes = if !self.prefix.is_empty() {
            let n = self.prefix.len().min(out.remaining());
            out.put_slice(&self.prefix[..n]);
            self.prefix = &self.prefix[n..];
            n
        } else if self.pos < self.ok {
            let n = (self.ok - self.pos).min(out.remaining());
            out.put_slice(&self.buf[self.pos..self.pos + n]);
            self.pos += n;
            if self.pos == self.end {
                self.pos = 0;
                self.ok = 0;
                self.end = 0;
                if matches!(self.state, State::Pass) {
                    // Nothing will be buffered again.
                    self.buf = Vec::new();
                }
            }
            n
        } else if let State::Reject(rest) = &mut self.state {
            let n = rest.len().min(out.remaining());
            out.put_slice(&rest[..n]);
            *rest = &rest[n..];
            if rest.is_empty() {
                self.state = State::Ending;
            }
            n
        } else {
            0
        };
        self.started |= bytes > 0;
        bytes > 0
    }

    /// The state after a body (or a head without one) ends.
    fn after_body(&mut self) -> State {
        match self.hold.take() {
            Some((request, tunnel)) => State::Hold { request, tunnel },
            None => State::Head,
        }
    }

    /// Judges the buffered bytes `ok..end` as far as the state allows.
    fn advance(&mut self, cx: &mut Context<'_>) -> Step {
        let pending = self.end - self.ok;
        match &mut self.state {
            State::Preface => {
                let have = &self.buf[self.ok..self.end];
                let n = have.len().min(PREFACE.len());
                if have[..n] != PREFACE[..n] {
                    self.state = State::Head;
                    Step::Again
                } else if n == PREFACE.len() {
                    self.state = State::Pass;
                    Step::Again
                } else {
                    Step::Read
                }
            }
            State::Head if pending == 0 => Step::Read,
            State::Head => self.judge_head(),
            State::Length(left) if pending > 0 => {
                let take = (*left).min(pending as u64);
                *left -= take;
                self.ok += take as usize;
                if *left == 0 {
                    self.state = self.after_body();
                }
                Step::Again
            }
            State::Chunked(body) if pending > 0 => {
                let (n, progress) = body.feed(&self.buf[self.ok..self.end]);
                self.ok += n;
                match progress {
                    Progress::More => {}
                    Progress::Done => self.state = self.after_body(),
                    Progress::Invalid => {
                        // hyper's decoder fails on the same byte; nothing after it is hyper's.
                        tracing::debug!("invalid chunked body: the connection ends after it");
                        self.end = self.ok;
                        self.state = State::Ending;
                    }
                }
                Step::Again
            }
            State::Hold { request, tunnel } => {
                let Some(watch) = &self.watch else {
                    self.state = State::Head;
                    return Step::Again;
                };
                let Poll::Ready(status) = watch.poll_answer(cx, *request) else {
                    return Step::Wait;
                };
                if tunnel::opens_tunnel(status, *tunnel == Tunnel::Connect) {
                    tracing::debug!(%status, "connection became a tunnel: no more checks");
                    self.state = State::Pass;
                } else {
                    self.state = State::Head;
                }
                Step::Again
            }
            State::Pass if pending > 0 => {
                self.ok = self.end;
                Step::Again
            }
            State::Length(_) | State::Chunked(_) | State::Pass => Step::Read,
            // Handled by the read loop before judging.
            State::Reject(_) | State::Ending => Step::Again,
        }
    }

    /// Judges the pending head `ok..end`.
    fn judge_head(&mut self) -> Step {
        let pending = &self.buf[self.ok..self.end];
        let verdict = if pending[self.scanned.min(pending.len())..].contains(&b'\n') {
            head::judge(pending)
        } else {
            // A head can only become complete with an LF.
            Head::Partial
        };
        match verdict {
            Head::Partial => {
                self.scanned = pending.len();
                if pending.len() > self.max_head {
                    tracing::debug!(
                        bytes = pending.len(),
                        "request head over the limit: left to hyper's limit"
                    );
                    self.ok = self.end;
                    self.state = State::Ending;
                    return Step::Again;
                }
                if !self.started {
                    self.prefix = WAKE_UP;
                    return Step::Again;
                }
                Step::Read
            }
            Head::Malformed => {
                // hyper's parser refuses these bytes the same way and answers 400.
                self.ok = self.end;
                self.state = State::Ending;
                Step::Again
            }
            Head::Rejected(reason) => {
                tracing::info!(reason, "request rejected: ambiguous framing");
                self.end = self.ok;
                self.scanned = 0;
                self.state = State::Reject(REJECT_HEAD);
                Step::Again
            }
            Head::Accepted { len, body, tunnel } => {
                self.ok += len;
                self.scanned = 0;
                self.requests += 1;
                if tunnel != Tunnel::No && self.watch.is_some() {
                    self.hold = Some((self.requests, tunnel));
                }
                self.state = match body {
                    Body::Empty => self.after_body(),
                    Body::Length(n) => State::Length(n),
                    Body::Chunked => State::Chunked(Chunked::new()),
                };
                Step::Again
            }
        }
    }

    /// How many bytes may be read straight into hyper's buffer now, if any.
    fn direct_limit(&self) -> Option<u64> {
        match &self.state {
            State::Pass => Some(u64::MAX),
            State::Length(left) => Some(*left),
            State::Chunked(body) if body.data_left() > 0 => Some(body.data_left()),
            _ => None,
        }
    }
}

impl<IO: AsyncRead + Unpin> Guarded<IO> {
    /// Reads at most `limit` body (or tunnel) bytes straight into `out`.
    fn read_direct(
        &mut self,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
        limit: u64,
    ) -> Poll<io::Result<()>> {
        let n = match usize::try_from(limit) {
            Ok(limit) if limit < out.remaining() => {
                let mut part = ReadBuf::new(out.initialize_unfilled_to(limit));
                ready!(Pin::new(&mut self.io).poll_read(cx, &mut part))?;
                let n = part.filled().len();
                out.advance(n);
                n
            }
            _ => {
                let before = out.filled().len();
                ready!(Pin::new(&mut self.io).poll_read(cx, out))?;
                out.filled().len() - before
            }
        };
        if n == 0 {
            self.state = State::Ending;
            return Poll::Ready(Ok(()));
        }
        self.started = true;
        match &mut self.state {
            State::Length(left) => {
                *left = left.saturating_sub(n as u64);
                if *left == 0 {
                    self.state = self.after_body();
                }
            }
            State::Chunked(body) => body.skip_data(n as u64),
            _ => {}
        }
        Poll::Ready(Ok(()))
    }

    /// Reads from the client into the buffer; at EOF, clears what is left and ends.
    fn fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.pos > 0 {
            self.buf.copy_within(self.pos..self.end, 0);
            self.end -= self.pos;
            self.ok -= self.pos;
            self.pos = 0;
        }
        if self.end == self.buf.len() {
            let cap = self.max_head.saturating_add(1).max(INITIAL_BUF);
            if self.buf.len() >= cap {
                // Unreachable: a pending head over `max_head` ends the checks first.
                self.ok = self.end;
                self.state = State::Ending;
                return Poll::Ready(Ok(()));
            }
            let grown = self.buf.len().saturating_mul(2).clamp(INITIAL_BUF, cap);
            self.buf.resize(grown, 0);
        }
        let mut space = ReadBuf::new(&mut self.buf[self.end..]);
        ready!(Pin::new(&mut self.io).poll_read(cx, &mut space))?;
        let n = space.filled().len();
        if n == 0 {
            // A partial head, preface or chunk line goes to hyper as it is, as without a guard.
            self.ok = self.end;
            self.state = State::Ending;
        } else {
            self.end += n;
        }
        Poll::Ready(Ok(()))
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Guarded<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if out.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        loop {
            if this.hand_out(out) {
                return Poll::Ready(Ok(()));
            }
            if matches!(this.state, State::Ending | State::Reject(_)) {
                // EOF (a refused head's replacement is handed out above, then `Ending`).
                return Poll::Ready(Ok(()));
            }
            match this.advance(cx) {
                Step::Again => continue,
                Step::Wait => return Poll::Pending,
                Step::Read => {}
            }
            if this.pos == this.end {
                if let Some(limit) = this.direct_limit() {
                    return this.read_direct(cx, out, limit);
                }
            }
            ready!(this.fill(cx))?;
        }
    }
}
