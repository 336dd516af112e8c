//! Durations on the command line (`250ms`, `1s`, `2m`, `1h`, as in the config file) and for
//! people (`1.23s`).

use std::time::Duration;

/// Parses a duration the way the config file spells them (`250ms`, `1.5s`, `1m30s`), so the
/// command line and the config agree.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    switchyard_config::units::parse_duration(s.trim())
}

/// Formats a measured duration for people: `0.25s`, `1.2s`, `2m05s`.
pub fn human(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 10.0 {
        format!("{secs:.2}s")
    } else if secs < 60.0 {
        format!("{secs:.1}s")
    } else {
        let whole = d.as_secs();
        format!("{}m{:02}s", whole / 60, whole % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration(" 30s "), Ok(Duration::from_secs(30)));
    }

    #[test]
    fn mistakes_are_explained() {
        assert!(parse_duration("10").is_err_and(|e| e.contains("unit is missing")));
        assert!(parse_duration("10d").is_err_and(|e| e.contains("unknown unit")));
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("99999999999999999999s").is_err());
    }

    #[test]
    fn human_readable() {
        assert_eq!(human(Duration::from_millis(1234)), "1.23s");
        assert_eq!(human(Duration::from_millis(12_340)), "12.3s");
        assert_eq!(human(Duration::from_secs(125)), "2m05s");
    }
}
