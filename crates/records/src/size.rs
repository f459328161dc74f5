//! Sizes as people write them on command lines and kernel command lines: `256M`, `1.5G`,
//! `1536MiB`, `4` (a plain number counts a unit the caller chooses: GiB for guest RAM, as in the
//! original guestperf; bytes for a dirty rate).
//!
//! One parser for every tool (gp-launch, gp-batch, `stress` inside the guest, mount options), so
//! `--mem 1.5G` and `ramsize=1.5G` can never mean different things. Units are binary (K = 1024)
//! and case-insensitive, optionally followed by `iB` or `B`. What a caller needs beyond a byte
//! count (a whole number of MiB, more than zero) it checks itself, with its own message.

use thiserror::Error;

pub const KIB: u64 = 1 << 10;
pub const MIB: u64 = 1 << 20;
pub const GIB: u64 = 1 << 30;
pub const TIB: u64 = 1 << 40;

/// The largest size accepted: 1 PiB. Anything larger is a typo, and keeps the float
/// arithmetic below exact to the byte.
pub const MAX_BYTES: u64 = 1 << 50;

/// Why a text is not a size.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SizeError {
    #[error("{text:?} is not a size: write a number with an optional unit, e.g. 256M, 1.5G")]
    NotANumber { text: String },
    #[error("{text:?} has an unknown unit {unit:?}: use K, M, G or T, e.g. 256M")]
    UnknownUnit { text: String, unit: String },
    #[error("{text:?} is too large (the limit is 1 PiB)")]
    TooLarge { text: String },
}

/// Parses `text` into bytes. A plain number counts `plain_unit` bytes; `K`, `M`, `G`, `T`
/// (any case, optionally followed by `iB` or `B`) are powers of 1024. Decimals are allowed
/// (`1.5G`); the result is rounded to the nearest byte. Zero is a size: callers that need more
/// say so themselves.
pub fn parse_size(text: &str, plain_unit: u64) -> Result<u64, SizeError> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let not_a_number = || SizeError::NotANumber {
        text: text.to_string(),
    };
    // Rust's float parser takes "1e3", "inf" and "NaN"; a size does not.
    if number.is_empty() || number.starts_with('.') && number.len() == 1 {
        return Err(not_a_number());
    }
    let value: f64 = number.parse().map_err(|_| not_a_number())?;
    let scale = match unit.trim().to_ascii_lowercase().as_str() {
        "" => plain_unit,
        "b" => 1,
        "k" | "kb" | "kib" => KIB,
        "m" | "mb" | "mib" => MIB,
        "g" | "gb" | "gib" => GIB,
        "t" | "tb" | "tib" => TIB,
        _ => {
            return Err(SizeError::UnknownUnit {
                text: text.to_string(),
                unit: unit.trim().to_string(),
            })
        }
    };
    let bytes = value * scale as f64;
    if !bytes.is_finite() || bytes > MAX_BYTES as f64 {
        return Err(SizeError::TooLarge {
            text: text.to_string(),
        });
    }
    Ok(bytes.round() as u64)
}

/// Formats a byte count the way QEMU and `ramsize=` take it: `2G` when whole GiB, `256M` when
/// whole MiB, `4K` when whole KiB, else bytes.
pub fn format_size(bytes: u64) -> String {
    match bytes {
        0 => "0".to_string(),
        b if b % GIB == 0 => format!("{}G", b / GIB),
        b if b % MIB == 0 => format!("{}M", b / MIB),
        b if b % KIB == 0 => format!("{}K", b / KIB),
        b => format!("{b}B"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_plain_numbers() {
        assert_eq!(parse_size("4", GIB), Ok(4 * GIB));
        assert_eq!(parse_size("1.5", GIB), Ok(3 * GIB / 2));
        assert_eq!(parse_size("64", 1), Ok(64));
        assert_eq!(parse_size("256M", GIB), Ok(256 * MIB));
        assert_eq!(parse_size("256m", GIB), Ok(256 * MIB));
        assert_eq!(parse_size("1536MiB", GIB), Ok(1536 * MIB));
        assert_eq!(parse_size("1.5G", 1), Ok(1536 * MIB));
        assert_eq!(parse_size("2gb", 1), Ok(2 * GIB));
        assert_eq!(parse_size("524288k", 1), Ok(512 * MIB));
        assert_eq!(parse_size("1T", 1), Ok(TIB));
        assert_eq!(parse_size(" 2M ", 1), Ok(2 * MIB));
        assert_eq!(parse_size("100B", GIB), Ok(100));
        assert_eq!(parse_size("0", GIB), Ok(0));
    }

    #[test]
    fn what_is_not_a_size_says_why() {
        for bad in ["", "abc", "-1", "1e3", "inf", "NaN", ".", "M", "1.2.3"] {
            assert!(
                matches!(
                    parse_size(bad, GIB),
                    Err(SizeError::NotANumber { .. } | SizeError::UnknownUnit { .. })
                ),
                "{bad:?} should be refused"
            );
        }
        let e = parse_size("12Q", GIB).unwrap_err();
        assert_eq!(
            e.to_string(),
            "\"12Q\" has an unknown unit \"Q\": use K, M, G or T, e.g. 256M"
        );
        assert!(matches!(
            parse_size("2000T", 1),
            Err(SizeError::TooLarge { .. })
        ));
    }

    #[test]
    fn formats_in_the_largest_whole_unit() {
        assert_eq!(format_size(256 * MIB), "256M");
        assert_eq!(format_size(2 * GIB), "2G");
        assert_eq!(format_size(4 * KIB), "4K");
        assert_eq!(format_size(1000), "1000B");
        assert_eq!(format_size(0), "0");
        for b in [GIB, 3 * MIB, 5 * KIB, 7] {
            assert_eq!(parse_size(&format_size(b), 1), Ok(b));
        }
    }
}
