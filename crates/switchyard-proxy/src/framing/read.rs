//! The read side of [`Guarded`]: hand out what is cleared, judge what arrives, read more.
//!
//! Whenever nothing is set aside, the client's bytes are read straight into the reader's buffer
//! (the HTTP/1 server's read buffer) and judged there; whatever cannot be cleared yet (the start
//! of an incomplete head, bytes held until an answer is known) is taken back out of that buffer
//! and set aside. Set-aside bytes flow `client -> buf[ok..end] (being judged) -> buf[pos..ok]
//! (cleared) -> reader`, and the buffer is freed once it is empty, so an idle connection holds
//! none.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, ReadBuf};

use super::answers;
use super::chunked::{Chunked, Progress};
use super::head::{self, Body, Head, Tunnel};
use super::{Guarded, PREFACE, REJECT_HEAD, State, TOO_LARGE_HEAD, URI_TOO_LONG_HEAD};

/// The first size of the set-aside buffer.
const INITIAL_BUF: usize = 4096;

/// With less room than this in the reader's buffer, a head is read into the set-aside buffer
/// instead: it would likely not fit and be copied aside anyway. (The HTTP/1 server always
/// offers at least this much: it makes room for 8 KiB before a read once less than 1 KiB is
/// left.)
const DIRECT_HEAD_MIN: usize = 1024;

/// Padding handed out after [`TOO_LARGE_HEAD`].
const FILLER: &[u8; 64] = &[b'a'; 64];

/// How far [`Guarded::scan`] cleared the bytes it was given, and what becomes of the rest.
struct Scan {
    /// Bytes cleared to be handed out, from the start.
    cleared: usize,
    /// What to do with the bytes after them.
    rest: Rest,
}

/// What becomes of the bytes a scan did not clear.
enum Rest {
    /// Keep them, to judge when more arrive.
    Keep,
    /// Keep them: they wait for an answer (the reader reads again once it has reported it).
    Wait,
    /// Discard them: nothing after the cleared bytes is handed out.
    Drop,
}

impl Scan {
    /// `cleared` bytes cleared, the rest kept.
    fn keep(cleared: usize) -> Self {
        Scan {
            cleared,
            rest: Rest::Keep,
        }
    }
}

/// What judging a pending head led to.
enum Judged {
    /// A head of this many bytes was released; the state is its body's.
    Accepted(usize),
    /// The head is not complete yet.
    Partial,
    /// Everything goes to the HTTP/1 server as it is, then EOF.
    PassAll,
    /// The head was refused: a replacement goes instead, and nothing after it.
    Refused,
}

impl<IO> Guarded<IO> {
    /// Hands out cleared bytes or the replacement head; false when there is nothing to hand out.
    fn hand_out(&mut self, out: &mut ReadBuf<'_>) -> bool {
        if self.pos < self.ok {
            let n = (self.ok - self.pos).min(out.remaining());
            out.put_slice(&self.buf[self.pos..self.pos + n]);
            self.pos += n;
            self.handed += n as u64;
            self.release_buffer();
            return true;
        }
        let State::Reject {
            head,
            filler,
            stall,
        } = &mut self.state
        else {
            return false;
        };
        let room = out.remaining();
        let n = head.len().min(out.remaining());
        out.put_slice(&head[..n]);
        *head = &head[n..];
        while head.is_empty() && *filler > 0 && out.remaining() > 0 {
            let n = (*filler).min(FILLER.len()).min(out.remaining());
            out.put_slice(&FILLER[..n]);
            *filler -= n;
        }
        self.handed += (room - out.remaining()) as u64;
        if head.is_empty() && *filler == 0 {
            self.state = if *stall { State::Stall } else { State::Ending };
        }
        out.remaining() < room
    }

    /// The state after a body (or a head without one) ends.
    fn after_body(&mut self) -> State {
        match self.hold.take() {
            Some((request, tunnel)) => State::Hold { request, tunnel },
            None => State::Head,
        }
    }

    /// Judges `bytes`, the connection's next bytes (none of them cleared yet), as far as the
    /// state allows. They will be handed out from `base` on (in the count of bytes handed out).
    fn scan(&mut self, bytes: &[u8], base: u64) -> Scan {
        let mut at = 0;
        loop {
            let rest = &bytes[at..];
            match &mut self.state {
                State::Preface => {
                    let n = rest.len().min(PREFACE.len());
                    if rest[..n] != PREFACE[..n] {
                        self.state = State::Head;
                    } else if n == PREFACE.len() {
                        self.state = State::Pass;
                    } else {
                        return Scan::keep(at);
                    }
                }
                State::Head if rest.is_empty() => return Scan::keep(at),
                State::Head => match self.judge_head(rest, base + at as u64) {
                    Judged::Accepted(len) => at += len,
                    Judged::Partial => return Scan::keep(at),
                    Judged::PassAll => return Scan::keep(bytes.len()),
                    Judged::Refused => {
                        return Scan {
                            cleared: at,
                            rest: Rest::Drop,
                        };
                    }
                },
                State::Length(_) | State::Chunked(_) if rest.is_empty() => return Scan::keep(at),
                State::Length(left) => {
                    let take = (*left).min(rest.len() as u64);
                    *left -= take;
                    at += take as usize;
                    if *left == 0 {
                        self.state = self.after_body();
                    }
                }
                State::Chunked(body) => {
                    let (n, progress) = body.feed(rest);
                    at += n;
                    match progress {
                        Progress::More => return Scan::keep(at),
                        Progress::Done => self.state = self.after_body(),
                        Progress::Invalid => {
                            // The HTTP/1 server's chunked decoder fails on this byte too;
                            // nothing after it is handed out.
                            tracing::debug!("invalid chunked body: the connection ends after it");
                            self.state = State::Ending;
                            return Scan {
                                cleared: at,
                                rest: Rest::Drop,
                            };
                        }
                    }
                }
                State::Hold { request, tunnel } => {
                    let Some(answers) = &self.answers else {
                        self.state = State::Head;
                        continue;
                    };
                    let Some(status) = answers.answer(*request) else {
                        return Scan {
                            cleared: at,
                            rest: Rest::Wait,
                        };
                    };
                    if answers::opens_tunnel(status, *tunnel == Tunnel::Connect) {
                        tracing::debug!(%status, "connection became a tunnel: no more checks");
                        self.state = State::Pass;
                    } else {
                        self.state = State::Head;
                    }
                }
                State::Pass => return Scan::keep(bytes.len()),
                State::Reject { .. } | State::Stall | State::Ending => {
                    return Scan {
                        cleared: at,
                        rest: Rest::Drop,
                    };
                }
            }
        }
    }

    /// Judges the pending head at the start of `pending`, which will be handed out from `at`.
    fn judge_head(&mut self, pending: &[u8], at: u64) -> Judged {
        let max = self.limits.max_head_bytes;
        let verdict = if pending[self.scanned.min(pending.len())..].contains(&b'\n') {
            head::judge(pending, self.limits.max_headers, &mut self.tokens)
        } else {
            // A head can only become complete with an LF.
            Head::Partial
        };
        match verdict {
            Head::Partial if pending.len() > max && !pending[..max].contains(&b'\n') => {
                self.refuse_uri_too_long()
            }
            Head::Partial if pending.len() > max => self.refuse_too_large("head over the limit"),
            Head::Partial => {
                self.scanned = pending.len();
                Judged::Partial
            }
            Head::TooManyHeaders => self.refuse_too_large("more header fields than the limit"),
            Head::Accepted { len, .. } if len > max => self.refuse_too_large("head over the limit"),
            Head::Malformed => {
                // The HTTP/1 server's parser (the same tokenizer) refuses these bytes
                // the same way and answers 400.
                self.scanned = 0;
                self.state = State::Ending;
                Judged::PassAll
            }
            Head::Rejected(reason) => {
                tracing::info!(reason, "request rejected: ambiguous framing");
                self.scanned = 0;
                self.state = State::Reject {
                    head: REJECT_HEAD,
                    filler: 0,
                    stall: false,
                };
                Judged::Refused
            }
            Head::Accepted { len, body, tunnel } => {
                self.tokens.keep(at);
                self.scanned = 0;
                self.requests += 1;
                if tunnel != Tunnel::No && self.answers.is_some() {
                    self.hold = Some((self.requests, tunnel));
                }
                self.state = match body {
                    Body::Empty => self.after_body(),
                    Body::Length(n) => State::Length(n),
                    Body::Chunked => State::Chunked(Chunked::new()),
                };
                Judged::Accepted(len)
            }
        }
    }

    /// Refuses the pending head, whose request line alone is over the limit, with a replacement
    /// the service answers with 414.
    fn refuse_uri_too_long(&mut self) -> Judged {
        tracing::info!(
            max_bytes = self.limits.max_head_bytes,
            "request rejected: 414 (request line over the limit)"
        );
        self.scanned = 0;
        self.state = State::Reject {
            head: URI_TOO_LONG_HEAD,
            filler: 0,
            stall: true,
        };
        Judged::Refused
    }

    /// Refuses the pending head with a replacement the HTTP/1 server answers with 431.
    fn refuse_too_large(&mut self, reason: &'static str) -> Judged {
        tracing::info!(
            reason,
            max_bytes = self.limits.max_head_bytes,
            max_headers = self.limits.max_headers,
            "request rejected: 431"
        );
        self.scanned = 0;
        self.state = State::Reject {
            head: TOO_LARGE_HEAD,
            filler: self.limits.read_buf_limit(),
            stall: false,
        };
        Judged::Refused
    }

    /// Judges the set-aside bytes `ok..end` (a held request's answer needs none).
    fn scan_aside(&mut self) -> Scan {
        let buf = std::mem::take(&mut self.buf);
        // The cleared bytes `pos..ok` are handed out before these.
        let base = self.handed + (self.ok - self.pos) as u64;
        let scan = self.scan(&buf[self.ok..self.end], base);
        self.buf = buf;
        self.ok += scan.cleared;
        if matches!(scan.rest, Rest::Drop) {
            self.end = self.ok;
            self.release_buffer();
        }
        scan
    }

    /// Moves `bytes` into the (empty) set-aside buffer.
    fn set_aside(&mut self, bytes: &[u8]) {
        let size = bytes.len().max(INITIAL_BUF);
        let mut buf = Vec::with_capacity(size);
        buf.extend_from_slice(bytes);
        buf.resize(size, 0);
        self.buf = buf;
        self.pos = 0;
        self.ok = 0;
        self.end = bytes.len();
    }

    /// Whether the next bytes may be read straight into the reader's buffer, which has `room`.
    fn direct(&self, room: usize) -> bool {
        self.pos == self.end
            && match self.state {
                State::Length(_) | State::Chunked(_) | State::Pass => true,
                State::Preface | State::Head => room >= DIRECT_HEAD_MIN,
                State::Hold { .. } | State::Reject { .. } | State::Stall | State::Ending => false,
            }
    }
}

impl<IO: AsyncRead + Unpin> Guarded<IO> {
    /// Reads into `out` and judges the new bytes in place: what cannot be cleared is set aside
    /// (or dropped). True when some bytes were cleared to be handed out.
    fn read_direct(
        &mut self,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<bool>> {
        let before = out.filled().len();
        ready!(Pin::new(&mut self.io).poll_read(cx, out))?;
        let read = out.filled().len();
        if read == before {
            self.state = State::Ending;
            return Poll::Ready(Ok(false));
        }
        // Nothing is set aside (`direct`): these are the next bytes handed out.
        let scan = self.scan(&out.filled()[before..], self.handed);
        let keep = before + scan.cleared;
        self.handed += scan.cleared as u64;
        if !matches!(scan.rest, Rest::Drop) && keep < read {
            self.set_aside(&out.filled()[keep..]);
        }
        out.set_filled(keep);
        Poll::Ready(Ok(scan.cleared > 0))
    }

    /// Reads from the client into the set-aside buffer; at EOF, clears what is left and ends.
    pub(super) fn fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.pos > 0 {
            self.buf.copy_within(self.pos..self.end, 0);
            self.end -= self.pos;
            self.ok -= self.pos;
            self.pos = 0;
        }
        if self.end == self.buf.len() {
            let cap = self
                .limits
                .max_head_bytes
                .saturating_add(1)
                .max(INITIAL_BUF);
            if self.buf.len() >= cap {
                // Unreachable: a pending head over the limit is refused first.
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
            // A partial head, preface or chunk line goes to the reader as it is, as without a
            // guard.
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
            if matches!(this.state, State::Stall) {
                return Poll::Pending;
            }
            if matches!(this.state, State::Ending | State::Reject { .. }) {
                // EOF (a refused head's replacement is handed out above, then `Ending`).
                return Poll::Ready(Ok(()));
            }
            if this.end > this.ok || matches!(this.state, State::Hold { .. }) {
                let scan = this.scan_aside();
                if scan.cleared > 0 || matches!(this.state, State::Ending | State::Reject { .. }) {
                    continue;
                }
                if matches!(scan.rest, Rest::Wait) {
                    return Poll::Pending;
                }
            }
            let read = if this.direct(out.remaining()) {
                this.read_direct(cx, out)
            } else {
                this.fill(cx).map_ok(|()| false)
            };
            match read {
                Poll::Ready(Ok(true)) => return Poll::Ready(Ok(())),
                Poll::Ready(Ok(false)) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                // Timed out: the state is `Ending`, and the next turn hands out EOF.
                Poll::Pending if this.timed_out(cx) => {}
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}
