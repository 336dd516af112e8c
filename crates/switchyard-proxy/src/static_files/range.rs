//! The `Range` and `If-Range` request headers of a static file `GET` (RFC 9110 §14.2, §13.1.5):
//! which bytes to send.
//!
//! Only the `bytes` unit is known. A header that does not parse, or names another unit, is
//! ignored (the whole file is sent, as the RFC asks). One satisfiable range is served as 206;
//! a set of several ranges is refused with 416 rather than answered as `multipart/byteranges`,
//! which players and download managers do not need.

use std::time::{SystemTime, UNIX_EPOCH};

use http::header::{self, HeaderMap};

/// What a `GET` gets, given its `Range` and `If-Range`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ranged {
    /// The whole file, 200.
    Whole,
    /// Bytes `start..=end` (both inside the file), 206.
    Part {
        /// The first byte sent.
        start: u64,
        /// The last byte sent.
        end: u64,
    },
    /// 416: no range of the file can answer this, or several ranges were asked for.
    Unsatisfiable,
}

/// The answer to the `Range` in `req` for a file of `len` bytes whose validators are `etag`
/// and `modified`.
pub(super) fn requested(
    req: &HeaderMap,
    len: u64,
    etag: &str,
    modified: Option<SystemTime>,
) -> Ranged {
    let Some(range) = req.get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return Ranged::Whole;
    };
    if let Some(cond) = req.get(header::IF_RANGE) {
        let Ok(cond) = cond.to_str() else {
            return Ranged::Whole;
        };
        if !if_range_matches(cond.trim(), etag, modified) {
            return Ranged::Whole;
        }
    }
    parse(range, len)
}

/// Whether `If-Range` names the current file: an entity tag must equal `etag` by strong
/// comparison (a weak tag never matches); a date must equal the modification time to the
/// second.
fn if_range_matches(cond: &str, etag: &str, modified: Option<SystemTime>) -> bool {
    if cond.starts_with('"') || cond.starts_with("W/") {
        return !etag.starts_with("W/") && cond == etag;
    }
    let (Ok(date), Some(modified)) = (httpdate::parse_http_date(cond), modified) else {
        return false;
    };
    let secs = |t: SystemTime| t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    secs(date) == secs(modified)
}

/// `bytes=FIRST-LAST`, `bytes=FIRST-` or `bytes=-SUFFIX` against a length.
fn parse(value: &str, len: u64) -> Ranged {
    let Some((unit, set)) = value.split_once('=') else {
        return Ranged::Whole;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return Ranged::Whole;
    }
    let specs: Vec<&str> = set
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let [spec] = specs.as_slice() else {
        // None at all is malformed; several are refused.
        return if specs.is_empty() {
            Ranged::Whole
        } else {
            Ranged::Unsatisfiable
        };
    };
    let Some((first, last)) = spec.split_once('-') else {
        return Ranged::Whole;
    };
    let number = |s: &str| -> Option<u64> {
        let s = s.trim();
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        // A number too large for u64 is still a valid (huge) position.
        Some(s.parse().unwrap_or(u64::MAX))
    };
    match (first.trim().is_empty(), number(first), number(last)) {
        // `-SUFFIX`: the last SUFFIX bytes.
        (true, _, Some(suffix)) => {
            if suffix == 0 || len == 0 {
                Ranged::Unsatisfiable
            } else {
                Ranged::Part {
                    start: len.saturating_sub(suffix),
                    end: len - 1,
                }
            }
        }
        // `FIRST-` or `FIRST-LAST`.
        (false, Some(start), _) => {
            let end = if last.trim().is_empty() {
                u64::MAX
            } else {
                match number(last) {
                    Some(end) if end >= start => end,
                    _ => return Ranged::Whole,
                }
            };
            if start >= len {
                Ranged::Unsatisfiable
            } else {
                Ranged::Part {
                    start,
                    end: end.min(len - 1),
                }
            }
        }
        _ => Ranged::Whole,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_ranges() {
        let part = |start, end| Ranged::Part { start, end };
        assert_eq!(parse("bytes=0-99", 1000), part(0, 99));
        assert_eq!(parse("bytes=100-", 1000), part(100, 999));
        assert_eq!(parse("bytes=-10", 1000), part(990, 999));
        assert_eq!(parse("bytes=-5000", 1000), part(0, 999));
        assert_eq!(parse("bytes=990-5000", 1000), part(990, 999));
        assert_eq!(parse("BYTES = 5-5", 1000), part(5, 5));
        assert_eq!(parse("bytes=0-99999999999999999999999", 10), part(0, 9));
    }

    #[test]
    fn unsatisfiable_and_several() {
        assert_eq!(parse("bytes=1000-", 1000), Ranged::Unsatisfiable);
        assert_eq!(parse("bytes=2000-3000", 1000), Ranged::Unsatisfiable);
        assert_eq!(parse("bytes=-0", 1000), Ranged::Unsatisfiable);
        assert_eq!(parse("bytes=0-", 0), Ranged::Unsatisfiable);
        assert_eq!(parse("bytes=0-1,5-6", 1000), Ranged::Unsatisfiable);
    }

    #[test]
    fn malformed_headers_are_ignored() {
        for bad in [
            "bytes=",
            "bytes=abc",
            "bytes=5-1",
            "items=0-1",
            "bytes 0-1",
            "bytes=1-x",
            "bytes=-",
            "bytes=--1",
        ] {
            assert_eq!(parse(bad, 1000), Ranged::Whole, "{bad}");
        }
    }

    #[test]
    fn if_range_needs_a_strong_match() {
        let t = UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        let date = httpdate::fmt_http_date(t);
        assert!(if_range_matches("\"a-1\"", "\"a-1\"", Some(t)));
        assert!(!if_range_matches("\"a-2\"", "\"a-1\"", Some(t)));
        assert!(!if_range_matches("W/\"a-1\"", "\"a-1\"", Some(t)));
        assert!(if_range_matches(&date, "\"a-1\"", Some(t)));
        let later = httpdate::fmt_http_date(t + std::time::Duration::from_secs(1));
        assert!(!if_range_matches(&later, "\"a-1\"", Some(t)));
        assert!(!if_range_matches("yesterday", "\"a-1\"", Some(t)));
    }
}
