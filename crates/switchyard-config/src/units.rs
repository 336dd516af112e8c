//! The spelled-out values of the config file: durations, sizes, status ranges and rates.
//!
//! - A duration is one or more `<number><unit>` groups with the units `ms`, `s`, `m`, `h`:
//!   `"250ms"`, `"1s"`, `"1.5s"`, `"2m"`, `"1h"`, `"1m30s"`. A bare number is an error.
//! - A size is a whole number and a unit: `B`, `KiB`, `MiB`, `GiB` (powers of 1024), or the
//!   nginx spellings `k`/`K`, `m`/`M`, `g`/`G` (also powers of 1024): `"512B"`, `"64KiB"`,
//!   `"16MiB"`, `"16m"`. `KB`, `MB` and `GB` are refused because they are ambiguous.
//! - A status range is `"200"`, `"200-399"` or an integer, within 100..=599.
//! - A rate is a positive number of requests per second or minute: `"10/s"`, `"30/m"`,
//!   `"0.5/s"`, or nginx's spelling `"10r/s"`.

use std::time::Duration;

const DURATION_FORMS: &str = "a duration is a number followed by ms, s, m or h, \
     e.g. \"250ms\", \"1s\", \"1.5s\", \"2m\", \"1m30s\"";

const SIZE_FORMS: &str = "a size is a whole number followed by B, KiB, MiB or GiB \
     (or k, m, g as in nginx; all powers of 1024), e.g. \"512B\", \"64KiB\", \"16MiB\"";

/// Parses a duration such as `"250ms"`, `"1.5s"` or `"1m30s"`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = |why: &str| format!("bad duration \"{text}\": {why}; {DURATION_FORMS}");
    if text.is_empty() {
        return Err(bad("it is empty"));
    }
    let mut rest = text;
    let mut total_nanos: u128 = 0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(number_len);
        if number.is_empty() {
            return Err(bad("expected a number"));
        }
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let unit_nanos: u128 = match unit {
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => return Err(bad("the unit is missing")),
            other => return Err(bad(&format!("unknown unit `{other}`"))),
        };
        let nanos = scaled(number, unit_nanos).ok_or_else(|| bad("not a valid number"))?;
        total_nanos = total_nanos
            .checked_add(nanos)
            .ok_or_else(|| bad("it is too long"))?;
        rest = after;
    }
    let nanos = u64::try_from(total_nanos).map_err(|_| bad("it is too long"))?;
    Ok(Duration::from_nanos(nanos))
}

/// `number` (digits, optionally with a fraction) times `unit`, truncated to whole units of 1.
fn scaled(number: &str, unit: u128) -> Option<u128> {
    let (whole, fraction) = match number.split_once('.') {
        Some((whole, fraction)) => (whole, fraction),
        None => (number, ""),
    };
    if whole.is_empty() || (number.contains('.') && fraction.is_empty()) || fraction.len() > 9 {
        return None;
    }
    let digits = |s: &str| -> Option<u128> {
        if s.is_empty() {
            return Some(0);
        }
        if !s.bytes().all(|b| b.is_ascii_digit()) || s.len() > 30 {
            return None;
        }
        s.parse().ok()
    };
    let whole = digits(whole)?.checked_mul(unit)?;
    let scale = 10u128.pow(u32::try_from(fraction.len()).ok()?);
    let fraction = digits(fraction)?.checked_mul(unit)? / scale;
    whole.checked_add(fraction)
}

/// Parses a size such as `"64KiB"` or `"16MiB"` into bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let bad = |why: &str| format!("bad size \"{text}\": {why}; {SIZE_FORMS}");
    let number_len = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(number_len);
    if number.is_empty() {
        return Err(bad("expected a whole number first"));
    }
    let unit = unit.trim_start_matches(' ');
    let multiplier: u64 = match unit {
        "B" => 1,
        "KiB" | "k" | "K" => 1 << 10,
        "MiB" | "m" | "M" => 1 << 20,
        "GiB" | "g" | "G" => 1 << 30,
        "" => return Err(bad("the unit is missing")),
        "KB" | "kB" | "MB" | "GB" => {
            return Err(bad(&format!(
                "`{unit}` is ambiguous (1000 or 1024?); write KiB, MiB or GiB"
            )));
        }
        other => return Err(bad(&format!("unknown unit `{other}`"))),
    };
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(multiplier))
        .ok_or_else(|| bad("it is too large"))
}

/// Parses an HTTP status range: `"200"` or `"200-399"`, each within 100..=599.
pub fn parse_status_range(text: &str) -> Result<(u16, u16), String> {
    let bad = |why: &str| {
        format!(
            "bad status range \"{text}\": {why}; write one status (\"200\") or a range (\"200-399\") within 100-599"
        )
    };
    let status = |s: &str| -> Result<u16, String> {
        let s = s.trim();
        match s.parse::<u16>() {
            Ok(code) if (100..=599).contains(&code) => Ok(code),
            Ok(_) => Err(bad(&format!("{s} is not an HTTP status"))),
            Err(_) => Err(bad(&format!("`{s}` is not a number"))),
        }
    };
    let (min, max) = match text.split_once('-') {
        Some((min, max)) => (status(min)?, status(max)?),
        None => {
            let code = status(text)?;
            (code, code)
        }
    };
    if min > max {
        return Err(bad("the first status is above the second"));
    }
    Ok((min, max))
}

/// Parses a request rate such as `"10/s"`, `"30/m"` or `"10r/s"` into requests per second.
pub fn parse_rate(text: &str) -> Result<f64, String> {
    let bad = |why: &str| {
        format!(
            "bad rate \"{text}\": {why}; a rate is a positive number of requests per second or \
             minute, e.g. \"10/s\", \"30/m\", \"0.5/s\" (nginx's \"10r/s\" also works)"
        )
    };
    let Some((number, unit)) = text.split_once('/') else {
        return Err(bad("the unit is missing"));
    };
    let per_second = match unit {
        "s" => 1.0,
        "m" => 60.0,
        other => return Err(bad(&format!("unknown unit `{other}` (use s or m)"))),
    };
    let number = number.strip_suffix('r').unwrap_or(number);
    let well_formed = match number.split_once('.') {
        Some((whole, fraction)) => is_digits(whole) && is_digits(fraction),
        None => is_digits(number),
    };
    let value: f64 = match number.parse() {
        Ok(value) if well_formed => value,
        _ => return Err(bad(&format!("`{number}` is not a number"))),
    };
    let rate = value / per_second;
    if rate > 0.0 && rate.is_finite() {
        Ok(rate)
    } else {
        Err(bad("it must be more than 0"))
    }
}

/// True for a non-empty run of ASCII digits.
fn is_digits(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}

/// Formats a byte count the way the config file spells it, in the largest exact unit.
pub fn format_size(bytes: u64) -> String {
    const UNITS: [(u64, &str); 3] = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
    for (size, unit) in UNITS {
        if bytes >= size && bytes.is_multiple_of(size) {
            return format!("{}{unit}", bytes / size);
        }
    }
    format!("{bytes}B")
}

/// Formats a duration the way the config file spells it (`"250ms"`, `"1s"`, `"2m"`).
pub fn format_duration(duration: Duration) -> String {
    let millis = duration.as_millis();
    if !duration.subsec_nanos().is_multiple_of(1_000_000) {
        return format!("{}ms", duration.as_secs_f64() * 1000.0);
    }
    if millis == 0 || !millis.is_multiple_of(1000) {
        return format!("{millis}ms");
    }
    let secs = millis / 1000;
    if secs.is_multiple_of(3600) {
        format!("{}h", secs / 3600)
    } else if secs.is_multiple_of(60) {
        format!("{}m", secs / 60)
    } else {
        format!("{secs}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let ok = |s: &str| parse_duration(s).expect(s);
        assert_eq!(ok("250ms"), Duration::from_millis(250));
        assert_eq!(ok("1s"), Duration::from_secs(1));
        assert_eq!(ok("1.5s"), Duration::from_millis(1500));
        assert_eq!(ok("0.25m"), Duration::from_secs(15));
        assert_eq!(ok("2m"), Duration::from_secs(120));
        assert_eq!(ok("1h"), Duration::from_secs(3600));
        assert_eq!(ok("1m30s"), Duration::from_secs(90));
        assert_eq!(ok("0s"), Duration::ZERO);
        assert_eq!(ok("0.000001ms"), Duration::from_nanos(1));
    }

    #[test]
    fn bad_durations_name_the_accepted_forms() {
        for (text, why) in [
            ("5", "the unit is missing"),
            ("", "it is empty"),
            ("5sec", "unknown unit `sec`"),
            ("1 s", "unknown unit ` s`"),
            ("s", "expected a number"),
            ("1.s", "not a valid number"),
            (".5s", "not a valid number"),
            ("1..5s", "not a valid number"),
            ("-1s", "expected a number"),
            ("99999999999999999999h", "too long"),
        ] {
            let err = parse_duration(text).expect_err(text);
            assert!(err.contains(why), "{text}: {err}");
            assert!(err.contains("ms, s, m or h"), "{text}: {err}");
        }
    }

    #[test]
    fn sizes() {
        let ok = |s: &str| parse_size(s).expect(s);
        assert_eq!(ok("0B"), 0);
        assert_eq!(ok("512B"), 512);
        assert_eq!(ok("64KiB"), 64 * 1024);
        assert_eq!(ok("16MiB"), 16 << 20);
        assert_eq!(ok("16 MiB"), 16 << 20);
        assert_eq!(ok("2GiB"), 2 << 30);
        assert_eq!(ok("16m"), 16 << 20);
        assert_eq!(ok("8K"), 8 << 10);
    }

    #[test]
    fn bad_sizes() {
        for (text, why) in [
            ("16", "the unit is missing"),
            ("16MB", "ambiguous"),
            ("1.5MiB", "unknown unit `.5MiB`"),
            ("MiB", "expected a whole number"),
            ("16 TiB", "unknown unit `TiB`"),
            ("99999999999GiB", "too large"),
        ] {
            let err = parse_size(text).expect_err(text);
            assert!(err.contains(why), "{text}: {err}");
            assert!(err.contains("KiB, MiB or GiB"), "{text}: {err}");
        }
    }

    #[test]
    fn status_ranges() {
        assert_eq!(parse_status_range("200"), Ok((200, 200)));
        assert_eq!(parse_status_range("200-399"), Ok((200, 399)));
        assert!(parse_status_range("399-200").is_err());
        assert!(parse_status_range("600").is_err());
        assert!(parse_status_range("2xx").is_err());
        assert!(parse_status_range("99-200").is_err());
    }

    #[test]
    fn rates() {
        assert_eq!(parse_rate("10/s"), Ok(10.0));
        assert_eq!(parse_rate("10r/s"), Ok(10.0));
        assert_eq!(parse_rate("30/m"), Ok(0.5));
        assert_eq!(parse_rate("0.5/s"), Ok(0.5));
        assert_eq!(parse_rate("1r/m"), Ok(1.0 / 60.0));
        for (text, why) in [
            ("10", "unit is missing"),
            ("10/h", "unknown unit `h`"),
            ("10 /s", "`10 ` is not a number"),
            ("/s", "`` is not a number"),
            ("-1/s", "`-1` is not a number"),
            ("1e3/s", "`1e3` is not a number"),
            ("1./s", "`1.` is not a number"),
            ("inf/s", "`inf` is not a number"),
            ("0/s", "more than 0"),
            ("0.0/m", "more than 0"),
        ] {
            let err = parse_rate(text).expect_err(text);
            assert!(err.contains(why), "{text}: {err}");
            assert!(err.contains("\"10/s\""), "{text}: {err}");
        }
    }

    #[test]
    fn formatting_round_trips() {
        for text in ["250ms", "1s", "90s", "2m", "1h", "10ms"] {
            let d = parse_duration(text).expect(text);
            assert_eq!(format_duration(d), text);
        }
        for text in ["512B", "64KiB", "16MiB", "2GiB", "1025B"] {
            let n = parse_size(text).expect(text);
            assert_eq!(format_size(n), text);
        }
    }
}
