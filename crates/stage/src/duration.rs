//! Durations on the command line, with their unit: `100ms`, `0.5s`, `2s`. One parser, so every
//! stage's duration options read and refuse alike.

use std::time::Duration;

/// Parses `100ms`, `0.5s`, `2s` (a unit is required; a bare number could mean either) into a
/// duration of 0 to `max`.
pub fn parse(s: &str, max: Duration) -> Result<Duration, String> {
    let s = s.trim();
    let (number, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else {
        return Err(format!(
            "\"{s}\" needs a unit, ms or s: write e.g. 100ms or 0.5s"
        ));
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("\"{s}\" is not a duration: write e.g. 100ms or 0.5s"))?;
    let secs = value * scale;
    if !(0.0..=max.as_secs_f64()).contains(&secs) {
        return Err(format!(
            "{s} is out of range: write 0s to {}s",
            max.as_secs_f64()
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn takes_milliseconds_and_seconds() {
        assert_eq!(parse("100ms", HOUR), Ok(Duration::from_millis(100)));
        assert_eq!(parse(" 0.5s ", HOUR), Ok(Duration::from_millis(500)));
        assert_eq!(parse("2 s", HOUR), Ok(Duration::from_secs(2)));
        assert_eq!(parse("0s", HOUR), Ok(Duration::ZERO));
        assert_eq!(parse("3600s", HOUR), Ok(HOUR));
    }

    #[test]
    fn refuses_what_is_not_a_duration_in_range_and_says_how_to_write_one() {
        assert!(parse("100", HOUR).unwrap_err().contains("needs a unit"));
        assert!(parse("fast s", HOUR).unwrap_err().contains("100ms or 0.5s"));
        assert!(parse("-1s", HOUR).unwrap_err().contains("0s to 3600s"));
        assert!(parse("2h", HOUR)
            .unwrap_err()
            .contains("needs a unit, ms or s"));
        assert!(parse("3601s", HOUR).unwrap_err().contains("out of range"));
        assert!(parse("NaNs", HOUR).unwrap_err().contains("out of range"));
        assert!(parse("infs", HOUR).unwrap_err().contains("out of range"));
    }
}
