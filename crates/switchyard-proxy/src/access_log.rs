//! The access log: one line per request, written without `tracing`'s per-event formatting.
//!
//! The request path formats its line straight into one shared, pre-sized buffer (a short
//! critical section: an append, no I/O, no allocation once the buffer has grown); a writer
//! thread of its own swaps the buffer out at least every 100 ms, or sooner when it passes
//! 64 KiB, and writes it to standard output or to `[log] access_file` — nginx's
//! `access_log … buffer= flush=`. The file is reopened on SIGUSR1 (after logrotate moved it),
//! and a graceful stop flushes every line before the proxy returns.
//!
//! Text and JSON lines keep the shape the `tracing` subscriber gave them before: text
//! (`TIME  INFO switchyard::access: client=… method=… path="…" …`) or JSON
//! (`{"timestamp":…,"level":"INFO","fields":{…},"target":"switchyard::access"}`), with the
//! query string added. `[log] access_format = "combined"` writes the NCSA combined format
//! instead (nginx's and Apache's `combined`), for the tools that read those logs. Every
//! client-supplied string is escaped, so no request can forge a line.
//! If the output cannot keep up, lines beyond 8 MiB of backlog are dropped and counted, rather
//! than stalling requests or growing memory without bound.

use crate::digits::decimal as num;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use switchyard_config::AccessFormat;

use crate::observe::RequestLog;

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

struct Inner {
    format: AccessFormat,
    pending: Mutex<Pending>,
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
        let inner = Arc::new(Inner {
            format,
            pending: Mutex::new(Pending {
                buf: Vec::with_capacity(WAKE_AT + 4096),
                second: u64::MAX,
                stamp: [b'0'; 19],
                local: [b'0'; 26],
                clock: None,
            }),
            stop: AtomicBool::new(false),
            reopen: AtomicBool::new(false),
            dropped: AtomicU64::new(0),
            writer: std::sync::OnceLock::new(),
        });
        let thread_inner = inner.clone();
        let thread = std::thread::Builder::new()
            .name("switchyard-access-log".into())
            .spawn(move || write_loop(&thread_inner, out, path.as_deref()))?;
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
                AccessFormat::Json => json_line(buf, stamp, now.subsec_micros(), log),
                AccessFormat::Text => text_line(buf, stamp, now.subsec_micros(), log),
                AccessFormat::Combined => combined_line(buf, local, log),
            }
            buf.len() >= WAKE_AT
        };
        if full {
            self.wake();
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

/// The writer thread: swaps the buffer out and writes it, until stopped.
fn write_loop(inner: &Inner, mut out: Box<dyn Write + Send>, path: Option<&Path>) {
    let mut spare: Vec<u8> = Vec::with_capacity(WAKE_AT + 4096);
    let mut dropped_seen = 0;
    loop {
        std::thread::park_timeout(FLUSH_EVERY);
        let stopping = inner.stop.load(Ordering::Acquire);
        if inner.reopen.swap(false, Ordering::Relaxed) {
            if let Some(path) = path {
                match open(path) {
                    Ok(f) => {
                        let _ = out.flush();
                        out = Box::new(f);
                        tracing::info!(file = %path.display(), "access log reopened");
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "access log not reopened; still writing to the old file")
                    }
                }
            }
        }
        {
            let mut p = inner.pending.lock().unwrap_or_else(PoisonError::into_inner);
            std::mem::swap(&mut p.buf, &mut spare);
        }
        if !spare.is_empty() {
            if let Err(e) = out.write_all(&spare).and_then(|()| out.flush()) {
                tracing::error!(error = %e, "cannot write the access log");
            }
            spare.clear();
            if spare.capacity() > 4 * WAKE_AT {
                spare.shrink_to(WAKE_AT + 4096);
            }
        }
        let dropped = inner.dropped.load(Ordering::Relaxed);
        if dropped > dropped_seen {
            tracing::warn!(
                dropped = dropped - dropped_seen,
                "access-log lines dropped: the output did not keep up"
            );
            dropped_seen = dropped;
        }
        if stopping {
            return;
        }
    }
}

/// `YYYY-MM-DDTHH:MM:SS` and `DD/Mon/YYYY:HH:MM:SS +0000` of a Unix time (UTC).
fn stamps(since_epoch: Duration) -> ([u8; 19], [u8; 26]) {
    let (mut iso, mut local) = ([b'0'; 19], [b'0'; 26]);
    let t = i64::try_from(since_epoch.as_secs())
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok());
    let Some(t) = t else {
        return (iso, local);
    };
    let format = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    if let Some(b) = t
        .format(&format)
        .ok()
        .as_deref()
        .and_then(|t| t.as_bytes().get(..19))
    {
        iso.copy_from_slice(b);
    }
    let format = time::macros::format_description!(
        "[day]/[month repr:short]/[year]:[hour]:[minute]:[second] +0000"
    );
    if let Some(b) = t
        .format(&format)
        .ok()
        .as_deref()
        .and_then(|t| t.as_bytes().get(..26))
    {
        local.copy_from_slice(b);
    }
    (iso, local)
}

/// Appends `v` zero-padded to `width` digits.
fn padded(buf: &mut Vec<u8>, v: u64, width: usize) {
    let start = buf.len();
    num(buf, v);
    let len = buf.len() - start;
    if len < width {
        let pad = width - len;
        buf.splice(start..start, std::iter::repeat_n(b'0', pad));
    }
}

/// Appends the time `stamp` + `.micros` + `Z`.
fn time(buf: &mut Vec<u8>, stamp: &[u8; 19], micros: u32) {
    buf.extend_from_slice(stamp);
    buf.push(b'.');
    padded(buf, u64::from(micros), 6);
    buf.push(b'Z');
}

/// Appends a duration in milliseconds with three decimals.
fn millis(buf: &mut Vec<u8>, d: Duration) {
    let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
    num(buf, micros / 1000);
    buf.push(b'.');
    padded(buf, micros % 1000, 3);
}

/// Appends `s` escaped for a JSON string or a quoted text value (`"`, `\` and control
/// characters escaped).
fn escaped(buf: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    // Most strings need no escape: eight bytes are vetted at a time, and the part before the
    // first eight that may hold one is copied whole.
    let clean = plain_prefix(bytes);
    let Some(first) = bytes[clean..].iter().position(|&b| needs_escape(b)) else {
        buf.extend_from_slice(bytes);
        return;
    };
    buf.extend_from_slice(&bytes[..clean + first]);
    let mut rest = &bytes[clean + first..];
    // Runs of plain bytes are copied whole; only the bytes that need an escape are looked at
    // one by one.
    while let Some(at) = rest.iter().position(|&b| needs_escape(b)) {
        let (plain, tail) = rest.split_at(at);
        buf.extend_from_slice(plain);
        let Some((&b, tail)) = tail.split_first() else {
            return;
        };
        match b {
            b'"' => buf.extend_from_slice(b"\\\""),
            b'\\' => buf.extend_from_slice(b"\\\\"),
            b'\n' => buf.extend_from_slice(b"\\n"),
            b'\r' => buf.extend_from_slice(b"\\r"),
            b'\t' => buf.extend_from_slice(b"\\t"),
            _ => {
                buf.extend_from_slice(b"\\u00");
                buf.extend_from_slice(&crate::digits::hex_pair(b));
            }
        }
        rest = tail;
    }
    buf.extend_from_slice(rest);
}

/// The length of a prefix of `bytes`, a multiple of eight, in which no byte needs an escape.
/// Each eight bytes are tested as one word (a test that may flag a clean word, never miss a
/// byte that needs an escape; the exact test follows in [`escaped`]).
fn plain_prefix(bytes: &[u8]) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // A byte of `x` is flagged when it is zero (bit 7 of the byte set in the result).
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let mut clean = 0;
    for chunk in bytes.chunks_exact(8) {
        let Ok(word) = <[u8; 8]>::try_from(chunk) else {
            break;
        };
        let w = u64::from_le_bytes(word);
        // Below 0x20: control characters. Bytes of 0x80 and above never need an escape.
        let control = w.wrapping_sub(ONES * 0x20) & !w & HIGH;
        let flagged = control
            | zero(w ^ (ONES * u64::from(b'"')))
            | zero(w ^ (ONES * u64::from(b'\\')))
            | zero(w ^ (ONES * 0x7f));
        if flagged != 0 {
            break;
        }
        clean += 8;
    }
    clean
}

/// The bytes escaped in a JSON string or a quoted text value.
const ESCAPED: [bool; 256] = {
    let mut out = [false; 256];
    let mut b = 0;
    while b < 256 {
        out[b] = b < 0x20 || b == 0x7f || b == b'"' as usize || b == b'\\' as usize;
        b += 1;
    }
    out
};

/// Whether `b` is escaped in a JSON string or a quoted text value.
fn needs_escape(b: u8) -> bool {
    ESCAPED[usize::from(b)]
}

/// Appends a service or pool name (or `-`). Names are the config's, letters, digits, `-` and
/// `_` only (`switchyard_config` refuses others, in a file and in code alike), so nothing in
/// them needs an escape.
fn name(buf: &mut Vec<u8>, name: Option<&str>) {
    let name = name.unwrap_or("-");
    debug_assert!(!name.bytes().any(needs_escape), "{name:?}");
    buf.extend_from_slice(name.as_bytes());
}

/// Appends a socket address (or `-`); IPv4 without the formatting machinery.
fn addr(buf: &mut Vec<u8>, a: Option<std::net::SocketAddr>) {
    match a {
        Some(std::net::SocketAddr::V4(v4)) => crate::digits::ipv4(buf, v4),
        Some(a) => {
            let _ = write!(buf, "{a}");
        }
        None => buf.push(b'-'),
    }
}

fn request_id<'a>(log: &'a RequestLog<'_>) -> &'a str {
    log.request_id.unwrap_or("-")
}

/// One JSON line, in the shape `tracing`'s JSON formatter gave access events.
fn json_line(buf: &mut Vec<u8>, stamp: &[u8; 19], micros: u32, log: &RequestLog<'_>) {
    buf.extend_from_slice(b"{\"timestamp\":\"");
    time(buf, stamp, micros);
    buf.extend_from_slice(b"\",\"level\":\"INFO\",\"fields\":{\"client\":\"");
    buf.extend_from_slice(log.client.as_bytes());
    buf.extend_from_slice(b"\",\"method\":\"");
    // A method is a token (`http` checks it): nothing in it needs an escape.
    buf.extend_from_slice(log.method.as_str().as_bytes());
    buf.extend_from_slice(b"\",\"path\":\"");
    escaped(buf, log.path);
    buf.extend_from_slice(b"\",\"query\":\"");
    if let Some(query) = log.query {
        escaped(buf, query);
    }
    buf.extend_from_slice(b"\",\"status\":");
    num(buf, u64::from(log.status));
    buf.extend_from_slice(b",\"service\":\"");
    name(buf, log.service);
    buf.extend_from_slice(b"\",\"colour\":\"");
    name(buf, log.pool);
    buf.extend_from_slice(b"\",\"upstream\":\"");
    addr(buf, log.upstream);
    buf.extend_from_slice(b"\",\"attempts\":");
    num(buf, u64::from(log.attempts));
    buf.extend_from_slice(b",\"bytes_in\":");
    num(buf, log.bytes_in.unwrap_or(0));
    buf.extend_from_slice(b",\"bytes_out\":");
    num(buf, log.bytes_out.unwrap_or(0));
    buf.extend_from_slice(b",\"duration_ms\":");
    millis(buf, log.duration);
    buf.extend_from_slice(b",\"request_id\":\"");
    escaped(buf, request_id(log));
    buf.extend_from_slice(b"\",\"error\":\"");
    match log.error {
        Some(error) => escaped(buf, error),
        None => buf.push(b'-'),
    }
    buf.extend_from_slice(b"\"},\"target\":\"switchyard::access\"}\n");
}

/// One line in the NCSA combined format, as nginx's `combined` writes it:
/// `ADDRESS - - [TIME] "METHOD TARGET VERSION" STATUS BYTES "REFERER" "USER-AGENT"`. The
/// client's address without its port; the body bytes as `bytes_out` counts them (0 when not
/// known); a missing `Referer` or `User-Agent` is `-`. Client strings are escaped as nginx
/// escapes them: `"`, `\` and bytes below 0x20 or above 0x7e as `\xHH`.
fn combined_line(buf: &mut Vec<u8>, local: &[u8; 26], log: &RequestLog<'_>) {
    buf.extend_from_slice(without_port(log.client).as_bytes());
    buf.extend_from_slice(b" - - [");
    buf.extend_from_slice(local);
    buf.extend_from_slice(b"] \"");
    buf.extend_from_slice(log.method.as_str().as_bytes());
    buf.push(b' ');
    hex_escaped(buf, log.path.as_bytes());
    if let Some(query) = log.query {
        buf.push(b'?');
        hex_escaped(buf, query.as_bytes());
    }
    buf.push(b' ');
    buf.extend_from_slice(version(log.version));
    buf.extend_from_slice(b"\" ");
    num(buf, u64::from(log.status));
    buf.push(b' ');
    num(buf, log.bytes_out.unwrap_or(0));
    for field in [log.referer, log.user_agent] {
        buf.extend_from_slice(b" \"");
        match field {
            Some(value) if !value.is_empty() => hex_escaped(buf, value),
            _ => buf.push(b'-'),
        }
        buf.push(b'"');
    }
    buf.push(b'\n');
}

/// A client address's text without its port: `a.b.c.d` of `a.b.c.d:port`, `::1` of
/// `[::1]:port`.
fn without_port(client: &str) -> &str {
    match client.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host),
        _ => client,
    }
}

/// The request line's protocol text of `v`.
fn version(v: http::Version) -> &'static [u8] {
    match v {
        http::Version::HTTP_09 => b"HTTP/0.9",
        http::Version::HTTP_10 => b"HTTP/1.0",
        http::Version::HTTP_2 => b"HTTP/2.0",
        http::Version::HTTP_3 => b"HTTP/3.0",
        _ => b"HTTP/1.1",
    }
}

/// Appends `bytes` escaped as nginx escapes its log's variables: `"`, `\` and bytes below
/// 0x20 or above 0x7e as `\xHH` (upper-case hex), runs of other bytes copied whole.
fn hex_escaped(buf: &mut Vec<u8>, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let plain = |b: u8| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\';
    let mut rest = bytes;
    while let Some(at) = rest.iter().position(|&b| !plain(b)) {
        let (run, tail) = rest.split_at(at);
        buf.extend_from_slice(run);
        let Some((&b, tail)) = tail.split_first() else {
            return;
        };
        buf.extend_from_slice(&[
            b'\\',
            b'x',
            HEX[usize::from(b >> 4)],
            HEX[usize::from(b & 0xf)],
        ]);
        rest = tail;
    }
    buf.extend_from_slice(rest);
}

/// One text line, in the shape `tracing`'s text formatter gave access events.
fn text_line(buf: &mut Vec<u8>, stamp: &[u8; 19], micros: u32, log: &RequestLog<'_>) {
    time(buf, stamp, micros);
    buf.extend_from_slice(b"  INFO switchyard::access: client=");
    buf.extend_from_slice(log.client.as_bytes());
    buf.extend_from_slice(b" method=");
    buf.extend_from_slice(log.method.as_str().as_bytes());
    buf.extend_from_slice(b" path=\"");
    escaped(buf, log.path);
    buf.extend_from_slice(b"\" query=\"");
    if let Some(query) = log.query {
        escaped(buf, query);
    }
    buf.extend_from_slice(b"\" status=");
    num(buf, u64::from(log.status));
    buf.extend_from_slice(b" service=\"");
    name(buf, log.service);
    buf.extend_from_slice(b"\" colour=\"");
    name(buf, log.pool);
    buf.extend_from_slice(b"\" upstream=");
    addr(buf, log.upstream);
    buf.extend_from_slice(b" attempts=");
    num(buf, u64::from(log.attempts));
    buf.extend_from_slice(b" bytes_in=");
    num(buf, log.bytes_in.unwrap_or(0));
    buf.extend_from_slice(b" bytes_out=");
    num(buf, log.bytes_out.unwrap_or(0));
    buf.extend_from_slice(b" duration_ms=");
    millis(buf, log.duration);
    buf.extend_from_slice(b" request_id=\"");
    escaped(buf, request_id(log));
    buf.extend_from_slice(b"\" error=\"");
    match log.error {
        Some(error) => escaped(buf, error),
        None => buf.push(b'-'),
    }
    buf.extend_from_slice(b"\"\n");
}

#[cfg(test)]
mod tests;
