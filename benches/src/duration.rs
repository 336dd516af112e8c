//! Durations on the command line, in the config file's grammar (`250ms`, `10s`, `1.5s`, `2m`,
//! `1h`, `1m30s`: one parser for the whole project), and latencies for people.

use std::time::Duration;

/// Parses a duration the way the config file spells them (surrounding spaces ignored).
pub fn parse(text: &str) -> Result<Duration, String> {
    switchyard_config::units::parse_duration(text.trim())
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
        assert_eq!(parse("1m30s"), Ok(Duration::from_secs(90)));
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
