//! The access log: one line per request, written without `tracing`'s per-event formatting.
//!
//! The request path formats its line straight into one shared, pre-sized buffer (a short
//! critical section: an append, no I/O, no allocation once the buffer has grown) — nginx's
//! `access_log … buffer= flush=`. When the buffer passes 64 KiB it is written: to
//! `[log] access_file` by the worker that filled it, as nginx's worker does (a write to a file
//! waits on no reader, and it saves a wake-up of another thread per 64 KiB); to standard
//! output by a writer thread of its own, since a pipe's reader may be slow and the request
//! path must not wait for it. That thread also writes whatever is buffered at least every
//! 100 ms. The file is reopened on SIGUSR1 (after logrotate moved it), and a graceful stop
//! flushes every line before the proxy returns.
//!
//! Text and JSON lines keep the shape the `tracing` subscriber gave them before: text
//! (`TIME  INFO switchyard::access: client=… method=… path="…" …`) or JSON
//! (`{"timestamp":…,"level":"INFO","fields":{…},"target":"switchyard::access"}`), with the
//! query string added. `[log] access_format = "combined"` writes the NCSA combined format
//! instead (nginx's and Apache's `combined`), for the tools that read those logs. Every
//! client-supplied string is escaped, so no request can forge a line.
//! If the output cannot keep up, lines beyond 8 MiB of backlog are dropped and counted, rather
//! than stalling requests or growing memory without bound.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, TryLockError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use switchyard_config::AccessFormat;

use crate::observe::RequestLog;

mod line;
use line::{combined_line, keyed_line, stamps};

/// The longest a line waits in the buffer.
const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// A buffer this full wakes the writer at once.
const WAKE_AT: usize = 64 * 1024;
/// Beyond this backlog, lines are dropped (and counted).
const MAX_BACKLOG: usize = 8 * 1024 * 1024;
/// How long a reading of the system clock stands in for later ones: a line's time is that
/// reading plus the monotonic time since (one clock read per line saved; the two clocks part
/// only by NTP's slewing, under a millisecond a second, and a step shows within a second).
const CLOCK_REREAD: Duration = Duration::from_secs(1);

/// Where the lines go.
pub enum AccessSink {
    /// Standard output (with the process log).
    Stdout,
    /// A file, appended to and reopened on SIGUSR1.
    File(PathBuf),
    /// Any writer (tests, embedding programs).
    Writer(Box<dyn Write + Send>),
}

impl std::fmt::Debug for AccessSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AccessSink::Stdout => f.write_str("Stdout"),
            AccessSink::File(p) => write!(f, "File({})", p.display()),
            AccessSink::Writer(_) => f.write_str("Writer"),
        }
    }
}

/// The lines not written yet, and the formatted second they were stamped in.
struct Pending {
    buf: Vec<u8>,
    /// The Unix second `stamp` was made for.
    second: u64,
    /// `YYYY-MM-DDTHH:MM:SS` of that second.
    stamp: [u8; 19],
    /// `DD/Mon/YYYY:HH:MM:SS +0000` of that second (the combined format's time).
    local: [u8; 26],
    /// The last reading of the system clock (as time since the Unix epoch) and the monotonic
    /// instant it was read at.
    clock: Option<(Instant, Duration)>,
}

impl Pending {
    /// The wall-clock time at `at` (since the Unix epoch), from the last clock reading when it
    /// is recent enough ([`CLOCK_REREAD`]), else from a new one.
    fn since_epoch(&mut self, at: Instant) -> Duration {
        if let Some((read_at, wall)) = self.clock {
            match at.checked_duration_since(read_at) {
                Some(later) if later < CLOCK_REREAD => return wall + later,
                Some(_) => {}
                None => {
                    let earlier = read_at - at;
                    if earlier < CLOCK_REREAD {
                        return wall.saturating_sub(earlier);
                    }
                }
            }
        }
        let read_at = Instant::now();
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        self.clock = Some((read_at, wall));
        match read_at.checked_duration_since(at) {
            Some(since) => wall.saturating_sub(since),
            None => wall + (at - read_at),
        }
    }
}

/// Where the lines are written, and the buffer swapped with the pending one to write them.
/// Whoever writes holds this lock from the swap to the end of the write, so lines reach the
/// output in the order they were buffered.
struct Output {
    out: Box<dyn Write + Send>,
    spare: Vec<u8>,
    /// Dropped lines already reported.
    dropped_seen: u64,
}

struct Inner {
    format: AccessFormat,
    pending: Mutex<Pending>,
    output: Mutex<Output>,
    /// Whether the worker that fills the buffer writes it (a file), rather than waking the
    /// writer thread (standard output, a writer of the embedding program's).
    inline: bool,
    stop: AtomicBool,
    reopen: AtomicBool,
    dropped: AtomicU64,
    writer: std::sync::OnceLock<std::thread::Thread>,
}

/// The access log of one proxy.
pub(crate) struct AccessLog {
    inner: Arc<Inner>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for AccessLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessLog")
            .field("format", &self.inner.format)
            .finish()
    }
}

impl AccessLog {
    /// Starts the writer thread for `sink`; a file that cannot be opened is an error.
    pub(crate) fn start(format: AccessFormat, sink: AccessSink) -> io::Result<AccessLog> {
        let out: Box<dyn Write + Send> = match &sink {
            AccessSink::Stdout => Box::new(io::stdout()),
            AccessSink::File(path) => Box::new(open(path)?),
            AccessSink::Writer(_) => Box::new(io::sink()),
        };
        let (out, path) = match sink {
            AccessSink::Writer(w) => (w, None),
            AccessSink::File(p) => (out, Some(p)),
            AccessSink::Stdout => (out, None),
        };
        let inline = path.is_some();
        let inner = Arc::new(Inner {
            format,
            pending: Mutex::new(Pending {
                buf: Vec::with_capacity(WAKE_AT + 4096),
                second: u64::MAX,
                stamp: [b'0'; 19],
                local: [b'0'; 26],
                clock: None,
            }),
            output: Mutex::new(Output {
                out,
                spare: Vec::with_capacity(WAKE_AT + 4096),
                dropped_seen: 0,
            }),
            inline,
            stop: AtomicBool::new(false),
            reopen: AtomicBool::new(false),
            dropped: AtomicU64::new(0),
            writer: std::sync::OnceLock::new(),
        });
        let thread_inner = inner.clone();
        let thread = std::thread::Builder::new()
            .name("switchyard-access-log".into())
            .spawn(move || write_loop(&thread_inner, path.as_deref()))?;
        let _ = inner.writer.set(thread.thread().clone());
        Ok(AccessLog {
            inner,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Whether lines carry the request's `Referer` and `User-Agent` (the combined format), so
    /// the request path reads them for [`RequestLog`].
    pub(crate) fn wants_client_fields(&self) -> bool {
        self.inner.format == AccessFormat::Combined
    }

    /// Asks the writer to reopen the file (after logrotate moved it).
    pub(crate) fn reopen(&self) {
        self.inner.reopen.store(true, Ordering::Relaxed);
        self.wake();
    }

    fn wake(&self) {
        if let Some(t) = self.inner.writer.get() {
            t.unpark();
        }
    }

    /// Appends the line for one request.
    pub(crate) fn write(&self, log: &RequestLog<'_>) {
        let full = {
            let mut p = self
                .inner
                .pending
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if p.buf.len() > MAX_BACKLOG {
                self.inner.dropped.fetch_add(1, Ordering::Relaxed);
                return;
            }
            let now = p.since_epoch(log.at);
            let second = now.as_secs();
            if second != p.second {
                (p.stamp, p.local) = stamps(now);
                p.second = second;
            }
            let Pending {
                buf, stamp, local, ..
            } = &mut *p;
            match self.inner.format {
                AccessFormat::Json => keyed_line::<true>(buf, stamp, now.subsec_micros(), log),
                AccessFormat::Text => keyed_line::<false>(buf, stamp, now.subsec_micros(), log),
                AccessFormat::Combined => combined_line(buf, local, log),
            }
            buf.len() >= WAKE_AT
        };
        if full {
            if self.inner.inline {
                // A worker already writing has the buffer's next swap in hand; this one goes on.
                match self.inner.output.try_lock() {
                    Ok(mut o) => write_pending(&self.inner, &mut o),
                    Err(TryLockError::Poisoned(p)) => {
                        write_pending(&self.inner, &mut p.into_inner())
                    }
                    Err(TryLockError::WouldBlock) => {}
                }
            } else {
                self.wake();
            }
        }
    }

    /// Writes every pending line and stops the writer. Later lines are not written.
    pub(crate) fn close(&self) {
        self.inner.stop.store(true, Ordering::Release);
        self.wake();
        let thread = self
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(t) = thread {
            let _ = t.join();
        }
    }
}

impl Drop for AccessLog {
    fn drop(&mut self) {
        self.close();
    }
}

fn open(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot open the access log {}: {e}", path.display()),
            )
        })
}

/// Writes every buffered line: swaps the pending buffer with the spare one (a moment under
/// the pending lock) and writes it while holding only the output's.
fn write_pending(inner: &Inner, o: &mut Output) {
    {
        let mut p = inner.pending.lock().unwrap_or_else(PoisonError::into_inner);
        std::mem::swap(&mut p.buf, &mut o.spare);
    }
    if !o.spare.is_empty() {
        if let Err(e) = o.out.write_all(&o.spare).and_then(|()| o.out.flush()) {
            tracing::error!(error = %e, "cannot write the access log");
        }
        o.spare.clear();
        if o.spare.capacity() > 4 * WAKE_AT {
            o.spare.shrink_to(WAKE_AT + 4096);
        }
    }
    let dropped = inner.dropped.load(Ordering::Relaxed);
    if dropped > o.dropped_seen {
        tracing::warn!(
            dropped = dropped - o.dropped_seen,
            "access-log lines dropped: the output did not keep up"
        );
        o.dropped_seen = dropped;
    }
}

/// The writer thread: reopens the file when asked and writes what is buffered at least every
/// [`FLUSH_EVERY`] (and, for standard output, whenever the buffer passes [`WAKE_AT`]), until
/// stopped.
fn write_loop(inner: &Inner, path: Option<&Path>) {
    loop {
        std::thread::park_timeout(FLUSH_EVERY);
        let stopping = inner.stop.load(Ordering::Acquire);
        let mut o = inner.output.lock().unwrap_or_else(PoisonError::into_inner);
        if inner.reopen.swap(false, Ordering::Relaxed) {
            if let Some(path) = path {
                // Lines buffered before the signal go to the old file (written and flushed).
                write_pending(inner, &mut o);
                match open(path) {
                    Ok(f) => {
                        o.out = Box::new(f);
                        tracing::info!(file = %path.display(), "access log reopened");
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "access log not reopened; still writing to the old file")
                    }
                }
            }
        }
        write_pending(inner, &mut o);
        drop(o);
        if stopping {
            return;
        }
    }
}

#[cfg(test)]
mod tests;
