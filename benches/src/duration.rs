//! Durations on the command line: `250ms`, `10s`, `1.5s`, `2m`, `1h`, `500us`.

use std::time::Duration;

/// Parses a duration: a non-negative number followed by `us`, `ms`, `s`, `m` or `h`.
pub fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| format!("`{text}` has no unit (use us, ms, s, m or h)"))?;
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` does not start with a number"))?;
    let seconds = match unit {
        "us" | "µs" => value / 1_000_000.0,
        "ms" => value / 1_000.0,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3_600.0,
        _ => {
            return Err(format!(
                "`{text}`: unknown unit `{unit}` (use us, ms, s, m or h)"
            ));
        }
    };
    if !seconds.is_finite() || !(0.0..=1.0e7).contains(&seconds) {
        return Err(format!("`{text}` is out of range"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// Formats microseconds for people: `850µs`, `4.21ms`, `1.20s`.
pub fn human_us(us: u64) -> String {
    if us < 1_000 {
        format!("{us}µs")
    } else if us < 1_000_000 {
        format!("{:.2}ms", us as f64 / 1_000.0)
    } else {
        format!("{:.2}s", us as f64 / 1_000_000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse("500us"), Ok(Duration::from_micros(500)));
        assert!(parse("10").is_err());
        assert!(parse("s").is_err());
        assert!(parse("3 parsecs").is_err());
    }

    #[test]
    fn formats_for_people() {
        assert_eq!(human_us(850), "850µs");
        assert_eq!(human_us(4_210), "4.21ms");
        assert_eq!(human_us(1_200_000), "1.20s");
    }
}
