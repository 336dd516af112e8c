//! The switch history: who changed what, when — kept in memory, and on disk next to the state
//! file when there is one.
//!
//! Every switch, rollback, split and reload (applied or refused) becomes one [`HistoryEntry`].
//! The newest `capacity` entries are kept. With a state file the entries are also appended, one
//! JSON object a line, to `<state file>.history.jsonl`; the file is trimmed to the newest
//! entries at start (and whenever it grows to twice the capacity), by an atomic rewrite.
//!
//! Only the control plane records entries, so the mutex here is never on the request path.

use std::collections::{BTreeMap, VecDeque};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// How many entries are kept when the config does not say.
pub const DEFAULT_CAPACITY: usize = 200;

/// How many entries `GET /history` answers with when no `limit` is given.
pub const DEFAULT_LIMIT: usize = 50;

/// The longest actor name kept; longer ones are cut.
pub const MAX_ACTOR_LEN: usize = 64;

/// The actor of calls through the admin API that do not name one.
pub const ACTOR_ADMIN_API: &str = "admin-api";

/// The actor of calls through `ProxyHandle` that do not name one.
pub const ACTOR_EMBEDDED: &str = "embedded";

/// The actor of reloads triggered by SIGHUP.
pub const ACTOR_SIGHUP: &str = "sighup";

/// What was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HistoryAction {
    /// A switch to a named pool.
    Switch,
    /// A rollback to the previous pool.
    Rollback,
    /// A weighted split set.
    Split,
    /// A weighted split ended (everything back on the active pool).
    EndSplit,
    /// A config reload (an entry with a service: the reload changed that service's colour).
    Reload,
    /// A binary upgrade (`to`: the new process's pid), or a refused or failed one.
    Upgrade,
    /// A mirror set (`to`: its target) or ended (`to` empty).
    Mirror,
    /// A ramped switch started (its steps are recorded as splits, its end as a switch, both
    /// with the actor `ramp`).
    Ramp,
}

/// One recorded control-plane decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// When, in RFC 3339 UTC with milliseconds.
    pub time: String,
    /// What was done.
    pub action: HistoryAction,
    /// The service, or `None` for a reload as a whole.
    pub service: Option<String>,
    /// The pool active before.
    pub from: Option<String>,
    /// The pool active after (or asked for, when refused).
    pub to: Option<String>,
    /// The weights of a split.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights: Option<BTreeMap<String, u32>>,
    /// Whether the health gate was overridden (`force`).
    pub forced: bool,
    /// The snapshot generation after the action (the one in force, when refused).
    pub generation: u64,
    /// Who: the `X-Switchyard-Actor` header, `admin-api`, `sighup` or `embedded`.
    pub actor: String,
    /// Whether it was applied.
    pub ok: bool,
    /// Why it was refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// In fleet mode: the instance that made the decision (this one, or the one whose
    /// decision this instance applied).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// What led to it, when the actor is the proxy itself (a guard's figures, a ramp's step).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// The kept entries and where they are written.
#[derive(Debug)]
pub(crate) struct History {
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Oldest first.
    entries: VecDeque<HistoryEntry>,
    capacity: usize,
    /// The JSON-lines file, when the history is durable.
    file: Option<PathBuf>,
    /// Lines in the file now, so it can be trimmed when it grows past twice the capacity.
    lines_in_file: usize,
}

impl History {
    /// A history kept in memory only.
    pub(crate) fn in_memory(capacity: usize) -> History {
        History::from_parts(VecDeque::new(), capacity.max(1), None, 0)
    }

    /// A history kept in `file` too: reads what it holds (skipping damaged lines), keeps the
    /// newest `capacity` entries and rewrites the file when it held more or was damaged.
    pub(crate) fn open(file: PathBuf, capacity: usize) -> History {
        let capacity = capacity.max(1);
        let (mut entries, lines, damaged) = match fs::read(&file) {
            Ok(bytes) => parse_lines(&bytes, &file),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (VecDeque::new(), 0, 0),
            Err(e) => {
                tracing::error!(file = %file.display(), error = %e, "cannot read the switch history; starting an empty one");
                (VecDeque::new(), 0, 0)
            }
        };
        while entries.len() > capacity {
            entries.pop_front();
        }
        let mut lines_in_file = lines;
        if lines > entries.len() || damaged > 0 {
            match rewrite(&file, &entries) {
                Ok(()) => lines_in_file = entries.len(),
                Err(e) => {
                    tracing::error!(file = %file.display(), error = %e, "cannot trim the switch history")
                }
            }
        }
        tracing::info!(file = %file.display(), entries = entries.len(), "switch history loaded");
        History::from_parts(entries, capacity, Some(file), lines_in_file)
    }

    fn from_parts(
        entries: VecDeque<HistoryEntry>,
        capacity: usize,
        file: Option<PathBuf>,
        lines_in_file: usize,
    ) -> History {
        History {
            inner: Mutex::new(Inner {
                entries,
                capacity,
                file,
                lines_in_file,
            }),
        }
    }

    /// Records an entry (and appends it to the file). A write error is logged, not returned:
    /// the decision it records has already been applied.
    pub(crate) fn record(&self, entry: HistoryEntry) {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.entries.push_back(entry.clone());
        while inner.entries.len() > inner.capacity {
            inner.entries.pop_front();
        }
        let Some(file) = inner.file.clone() else {
            return;
        };
        let written = if inner.lines_in_file + 1 > inner.capacity.saturating_mul(2) {
            rewrite(&file, &inner.entries).map(|()| inner.entries.len())
        } else {
            append(&file, &entry).map(|()| inner.lines_in_file + 1)
        };
        match written {
            Ok(lines) => inner.lines_in_file = lines,
            Err(e) => {
                tracing::error!(file = %file.display(), error = %e, "cannot write the switch history")
            }
        }
    }

    /// Changes how many entries are kept (a reload may change `[admin] history`); the file
    /// follows at its next trim.
    pub(crate) fn set_capacity(&self, capacity: usize) {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.capacity = capacity.max(1);
        while inner.entries.len() > inner.capacity {
            inner.entries.pop_front();
        }
    }

    /// The newest `limit` entries, newest first.
    pub(crate) fn newest(&self, limit: usize) -> Vec<HistoryEntry> {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.entries.iter().rev().take(limit).cloned().collect()
    }
}

/// Parses JSON lines: `(entries, lines, damaged lines)`. Lines are judged one by one, so a
/// damaged one (a torn write, bytes that are not UTF-8) costs that line only.
fn parse_lines(bytes: &[u8], file: &Path) -> (VecDeque<HistoryEntry>, usize, usize) {
    let mut entries = VecDeque::new();
    let (mut lines, mut damaged) = (0, 0);
    for (n, line) in bytes.split(|b| *b == b'\n').enumerate() {
        if line.trim_ascii().is_empty() {
            continue;
        }
        lines += 1;
        match serde_json::from_slice::<HistoryEntry>(line) {
            Ok(e) => entries.push_back(e),
            Err(e) => {
                damaged += 1;
                tracing::warn!(file = %file.display(), line = n + 1, error = %e, "skipping a damaged switch history line");
            }
        }
    }
    (entries, lines, damaged)
}

fn line(entry: &HistoryEntry) -> std::io::Result<Vec<u8>> {
    let mut bytes = serde_json::to_vec(entry)?;
    bytes.push(b'\n');
    Ok(bytes)
}

fn append(file: &Path, entry: &HistoryEntry) -> std::io::Result<()> {
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir)?;
    }
    let mut f = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)?;
    // One write of one whole line: a crash leaves at most one damaged last line, skipped at start.
    f.write_all(&line(entry)?)
}

/// Replaces the file with `entries` atomically (temporary file, rename).
fn rewrite(file: &Path, entries: &VecDeque<HistoryEntry>) -> std::io::Result<()> {
    let dir = file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "history.jsonl".into());
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = fs::File::create(&tmp)?;
        for e in entries {
            f.write_all(&line(e)?)?;
        }
        f.sync_all()?;
        fs::rename(&tmp, file)
    };
    write().inspect_err(|_| {
        let _ = fs::remove_file(&tmp);
    })
}

/// The history file that goes with a state file: `<state file>.history.jsonl`.
pub(crate) fn path_for_state(state: &Path) -> PathBuf {
    let mut name = state.as_os_str().to_owned();
    name.push(".history.jsonl");
    PathBuf::from(name)
}

/// An actor name as given by a client, made safe to log and show: printable ASCII letters,
/// digits and `-_.@:/+ ` only (anything else becomes `_`), trimmed, at most
/// [`MAX_ACTOR_LEN`] characters. `None` when nothing usable is left.
pub fn sanitize_actor(raw: &str) -> Option<String> {
    let cleaned: String = raw
        .trim()
        .chars()
        .take(MAX_ACTOR_LEN)
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.@:/+ ".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let cleaned = cleaned.trim();
    (!cleaned.is_empty() && cleaned.chars().any(|c| c != '_')).then(|| cleaned.to_string())
}

/// `time` in RFC 3339, UTC, with milliseconds: `2025-01-31T23:59:59.123Z`. A time before 1970
/// reads as 1970-01-01 (the clock is never set that far back).
pub fn rfc3339(time: SystemTime) -> String {
    const FORMAT: &[time::format_description::BorrowedFormatItem<'_>] = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    let since = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let nanos = i128::try_from(since.as_nanos()).unwrap_or(i128::MAX);
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| t.format(FORMAT).ok())
        .unwrap_or_else(|| "9999-12-31T23:59:59.999Z".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn entry(n: u64) -> HistoryEntry {
        HistoryEntry {
            time: rfc3339(SystemTime::UNIX_EPOCH + Duration::from_secs(n)),
            action: HistoryAction::Switch,
            service: Some("app".into()),
            from: Some("green".into()),
            to: Some("blue".into()),
            weights: None,
            forced: false,
            generation: n,
            actor: "test".into(),
            ok: true,
            error: None,
            node: None,
            detail: None,
        }
    }

    #[test]
    fn formats_rfc3339_utc() {
        let t = |s: u64, ms: u64| {
            rfc3339(SystemTime::UNIX_EPOCH + Duration::from_secs(s) + Duration::from_millis(ms))
        };
        assert_eq!(t(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(t(951_782_400, 5), "2000-02-29T00:00:00.005Z");
        assert_eq!(t(1_709_251_199, 999), "2024-02-29T23:59:59.999Z");
        assert_eq!(t(4_102_444_800, 0), "2100-01-01T00:00:00.000Z");
    }

    #[test]
    fn actors_are_sanitised() {
        assert_eq!(sanitize_actor("cli").as_deref(), Some("cli"));
        assert_eq!(
            sanitize_actor("  deploy-bot@ci ").as_deref(),
            Some("deploy-bot@ci")
        );
        assert_eq!(
            sanitize_actor("a\nb<script>").as_deref(),
            Some("a_b_script_")
        );
        assert_eq!(sanitize_actor(&"x".repeat(200)).map(|s| s.len()), Some(64));
        assert_eq!(sanitize_actor("   "), None);
        assert_eq!(sanitize_actor("\u{1F600}"), None);
    }

    #[test]
    fn keeps_the_newest_in_memory() {
        let h = History::in_memory(3);
        for n in 1..=5 {
            h.record(entry(n));
        }
        let got: Vec<u64> = h.newest(10).iter().map(|e| e.generation).collect();
        assert_eq!(got, vec![5, 4, 3]);
        assert_eq!(h.newest(1)[0].generation, 5);
        h.set_capacity(2);
        assert_eq!(h.newest(10).len(), 2);
    }

    #[test]
    fn survives_a_restart_and_is_trimmed_at_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = path_for_state(&dir.path().join("state.json"));
        assert!(file.ends_with("state.json.history.jsonl"));
        let h = History::open(file.clone(), 10);
        for n in 1..=8 {
            h.record(entry(n));
        }
        drop(h);
        let mut text = fs::read_to_string(&file).expect("written");
        assert_eq!(text.lines().count(), 8);
        text.push_str("{\"torn");
        fs::write(&file, text).expect("damage the last line");

        let h = History::open(file.clone(), 5);
        let got: Vec<u64> = h.newest(50).iter().map(|e| e.generation).collect();
        assert_eq!(got, vec![8, 7, 6, 5, 4]);
        assert_eq!(
            fs::read_to_string(&file).expect("trimmed").lines().count(),
            5
        );
    }

    #[test]
    fn the_file_is_trimmed_when_it_grows_past_twice_the_capacity() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("h.jsonl");
        let h = History::open(file.clone(), 2);
        for n in 1..=4 {
            h.record(entry(n));
        }
        assert_eq!(fs::read_to_string(&file).expect("file").lines().count(), 4);
        h.record(entry(5));
        let text = fs::read_to_string(&file).expect("file");
        assert_eq!(text.lines().count(), 2, "{text}");
        let reopened = History::open(file, 2);
        assert_eq!(reopened.newest(9), vec![entry(5), entry(4)]);
    }

    #[test]
    fn a_torn_multi_byte_character_costs_only_its_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("h.jsonl");
        let h = History::open(file.clone(), 10);
        for n in 1..=3 {
            h.record(entry(n));
        }
        drop(h);
        let mut bytes = fs::read(&file).expect("file");
        // Tear the middle line: a lone first byte of a two-byte UTF-8 character.
        let second = bytes.iter().position(|b| *b == b'\n').expect("a line") + 3;
        bytes.insert(second, 0xC3);
        fs::write(&file, &bytes).expect("write");
        let reopened = History::open(file, 10);
        assert_eq!(reopened.newest(9), vec![entry(3), entry(1)]);
    }
}
