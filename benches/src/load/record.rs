//! What each load worker writes down: a latency histogram, counts by outcome, answers by
//! header value and, when a flip analysis needs them, one small sample per request.
//!
//! Every worker owns its recorder (no sharing on the hot path); they are merged once at the end.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// Largest latency the histogram holds, in microseconds (one hour); longer ones are clamped.
const MAX_US: u64 = 3_600_000_000;

/// How one request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// An answer with status 1xx, 2xx or 3xx.
    Ok,
    /// An answer with status 4xx.
    Status4xx,
    /// An answer with status 5xx.
    Status5xx,
    /// No connection could be made.
    Connect,
    /// The connection was reset or closed after the request was sent, before the answer was
    /// complete.
    Closed,
    /// No complete answer within the request timeout.
    Timeout,
}

impl Outcome {
    /// The outcome of a complete answer with `status`.
    pub fn of_status(status: u16) -> Outcome {
        match status {
            400..=499 => Outcome::Status4xx,
            500..=599 => Outcome::Status5xx,
            _ => Outcome::Ok,
        }
    }

    fn code(self) -> u8 {
        self as u8
    }

    /// True unless the request failed.
    pub fn is_ok(self) -> bool {
        self == Outcome::Ok
    }
}

/// Counts by outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Counts {
    /// Answers with 1xx–3xx.
    pub ok: u64,
    /// Answers with 4xx.
    pub status_4xx: u64,
    /// Answers with 5xx.
    pub status_5xx: u64,
    /// Connection attempts that failed (each one a failed request).
    pub connect: u64,
    /// Requests whose connection was reset or closed before the answer was complete.
    pub closed: u64,
    /// Requests without a complete answer within the timeout.
    pub timeout: u64,
}

impl Counts {
    fn add(&mut self, o: Outcome) {
        let slot = match o {
            Outcome::Ok => &mut self.ok,
            Outcome::Status4xx => &mut self.status_4xx,
            Outcome::Status5xx => &mut self.status_5xx,
            Outcome::Connect => &mut self.connect,
            Outcome::Closed => &mut self.closed,
            Outcome::Timeout => &mut self.timeout,
        };
        *slot += 1;
    }

    fn merge(&mut self, o: &Counts) {
        self.ok += o.ok;
        self.status_4xx += o.status_4xx;
        self.status_5xx += o.status_5xx;
        self.connect += o.connect;
        self.closed += o.closed;
        self.timeout += o.timeout;
    }

    /// Every request that did not end with a 1xx–3xx answer.
    pub fn failed(&self) -> u64 {
        self.status_4xx + self.status_5xx + self.connect + self.closed + self.timeout
    }

    /// Every request recorded.
    pub fn total(&self) -> u64 {
        self.ok + self.failed()
    }
}

/// One request, as kept for the flip analysis (12 bytes).
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// Start (send time, or intended send time in an open loop) in µs after the run started.
    pub start_us: u32,
    /// Latency in µs.
    pub latency_us: u32,
    /// `Outcome as u8`.
    outcome: u8,
    /// Index into the recorder's header values; `u16::MAX` when absent.
    header: u16,
}

impl Sample {
    /// True when the request succeeded.
    pub fn ok(&self) -> bool {
        self.outcome == Outcome::Ok.code()
    }
}

/// One worker's record of a run.
#[derive(Debug)]
pub struct Recorder {
    /// When the run started: sample times are relative to it.
    origin: Instant,
    /// Latencies in µs of every recorded request, failed ones included.
    pub hist: Histogram<u64>,
    /// Counts by outcome.
    pub counts: Counts,
    /// Connections this worker opened.
    pub conns_opened: u64,
    /// Connections that the server closed (found closed before reuse, or closed mid-request).
    pub conns_closed_by_server: u64,
    /// Distinct values of the `--by-header` header and how many answers carried each.
    pub header_values: Vec<(String, u64)>,
    /// Per-request samples, when kept.
    pub samples: Option<Vec<Sample>>,
    /// The end of the last recorded request.
    pub last_end: Option<Instant>,
}

impl Recorder {
    /// An empty recorder; `keep_samples` keeps one `Sample` per request.
    pub fn new(origin: Instant, keep_samples: bool) -> Recorder {
        Recorder {
            origin,
            hist: new_histogram(),
            counts: Counts::default(),
            conns_opened: 0,
            conns_closed_by_server: 0,
            header_values: Vec::new(),
            samples: keep_samples.then(Vec::new),
            last_end: None,
        }
    }

    /// Records one request that started at `start` and ended at `end`.
    pub fn record(
        &mut self,
        start: Instant,
        end: Instant,
        outcome: Outcome,
        header: Option<&[u8]>,
    ) {
        let latency = end.saturating_duration_since(start);
        let us = u64::try_from(latency.as_micros())
            .unwrap_or(MAX_US)
            .clamp(1, MAX_US);
        self.hist.saturating_record(us);
        self.counts.add(outcome);
        self.last_end = Some(self.last_end.map_or(end, |l| l.max(end)));
        let header = header.map_or(u16::MAX, |v| self.header_index(v));
        if let Some(samples) = &mut self.samples {
            samples.push(Sample {
                start_us: micros_u32(start.saturating_duration_since(self.origin)),
                latency_us: u32::try_from(us).unwrap_or(u32::MAX),
                outcome: outcome.code(),
                header,
            });
        }
    }

    fn header_index(&mut self, value: &[u8]) -> u16 {
        if let Some(i) = self
            .header_values
            .iter()
            .position(|(v, _)| v.as_bytes() == value)
        {
            self.header_values[i].1 += 1;
            return u16::try_from(i).unwrap_or(u16::MAX);
        }
        if self.header_values.len() >= usize::from(u16::MAX - 1) {
            return u16::MAX;
        }
        self.header_values
            .push((String::from_utf8_lossy(value).into_owned(), 1));
        u16::try_from(self.header_values.len() - 1).unwrap_or(u16::MAX)
    }

    /// The header value a sample carried.
    pub fn header_of(&self, s: &Sample) -> Option<&str> {
        self.header_values
            .get(usize::from(s.header))
            .map(|(v, _)| v.as_str())
    }

    /// Adds `other` into `self`; samples are kept per worker (see `Merged`).
    fn merge_counts(&mut self, other: &Recorder) {
        // Both histograms have the same bounds, so adding cannot fail.
        let _ = self.hist.add(&other.hist);
        self.counts.merge(&other.counts);
        self.conns_opened += other.conns_opened;
        self.conns_closed_by_server += other.conns_closed_by_server;
        for (v, n) in &other.header_values {
            match self.header_values.iter_mut().find(|(x, _)| x == v) {
                Some(slot) => slot.1 += n,
                None => self.header_values.push((v.clone(), *n)),
            }
        }
        self.last_end = match (self.last_end, other.last_end) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }
}

/// Every worker's record, summed, with the per-worker samples kept beside it.
#[derive(Debug)]
pub struct Merged {
    /// The sums.
    pub total: Recorder,
    /// The workers' recorders with their samples (header indices are per worker).
    pub parts: Vec<Recorder>,
}

/// Sums the workers' records.
pub fn merge(origin: Instant, parts: Vec<Recorder>) -> Merged {
    let mut total = Recorder::new(origin, false);
    for p in &parts {
        total.merge_counts(p);
    }
    total
        .header_values
        .sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    Merged { total, parts }
}

/// An empty latency histogram in µs, 1 µs to one hour, 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_US, 3).expect("constant histogram bounds are valid")
}

fn micros_u32(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}
