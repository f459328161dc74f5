//! The lines the `stress` workload prints on the guest's serial console, and their parser.
//!
//! `stress` prints short positional lines starting with `@gp ` so that the serial port, which
//! costs a VM exit per byte under KVM, carries as little as possible:
//!
//! ```text
//! @gp start <threads> <ram_bytes> <grain_ms> <guest_ms>
//! @gp p <thread> <guest_ms> <bytes> <elapsed_ms>
//! @gp gb <thread> <tid> <guest_ms> <elapsed_ms>
//! @gp fatal <message>
//! @gp done <reason>
//! ```
//!
//! `guest_ms` is the guest's wall clock in ms since the epoch. `gp-launch` also understands the
//! original C stress program's line, `stress (01234): INFO: 1469020993123ms copied 1 GB in
//! 01234ms`, so an initrd built from the original works.

use std::fmt;

/// One line printed by the workload.
#[derive(Debug, Clone, PartialEq)]
pub enum StressLine {
    Start {
        threads: u32,
        ram_bytes: u64,
        grain_ms: f64,
        guest_ms: f64,
    },
    Progress {
        thread: u32,
        guest_ms: f64,
        bytes: u64,
        elapsed_ms: f64,
    },
    Gb {
        thread: u32,
        tid: u32,
        guest_ms: f64,
        elapsed_ms: f64,
    },
    Fatal {
        message: String,
    },
    Done {
        reason: String,
    },
}

/// What a console line turned out to be.
#[derive(Debug, Clone, PartialEq)]
pub enum ConsoleLine {
    /// A line of our `stress`.
    Stress(StressLine),
    /// The original C stress program's per-GB line.
    OriginalGb {
        tid: u32,
        guest_ms: f64,
        elapsed_ms: f64,
    },
    /// Anything else (kernel messages, ...).
    Other,
}

const PREFIX: &str = "@gp ";

impl fmt::Display for StressLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StressLine::Start {
                threads,
                ram_bytes,
                grain_ms,
                guest_ms,
            } => {
                write!(
                    f,
                    "{PREFIX}start {threads} {ram_bytes} {grain_ms} {guest_ms:.3}"
                )
            }
            StressLine::Progress {
                thread,
                guest_ms,
                bytes,
                elapsed_ms,
            } => {
                write!(
                    f,
                    "{PREFIX}p {thread} {guest_ms:.3} {bytes} {elapsed_ms:.3}"
                )
            }
            StressLine::Gb {
                thread,
                tid,
                guest_ms,
                elapsed_ms,
            } => {
                write!(f, "{PREFIX}gb {thread} {tid} {guest_ms:.3} {elapsed_ms:.3}")
            }
            StressLine::Fatal { message } => write!(f, "{PREFIX}fatal {message}"),
            StressLine::Done { reason } => write!(f, "{PREFIX}done {reason}"),
        }
    }
}

impl StressLine {
    /// Parses a line starting with `@gp `; `None` if it is not one or is garbled.
    pub fn parse(line: &str) -> Option<StressLine> {
        let rest = line.trim_end().strip_prefix(PREFIX)?;
        let (kind, args) = rest.split_once(' ').unwrap_or((rest, ""));
        let mut it = args.split_ascii_whitespace();
        let mut field = || it.next();
        let parsed = match kind {
            "start" => StressLine::Start {
                threads: field()?.parse().ok()?,
                ram_bytes: field()?.parse().ok()?,
                grain_ms: finite(field()?)?,
                guest_ms: finite(field()?)?,
            },
            "p" => StressLine::Progress {
                thread: field()?.parse().ok()?,
                guest_ms: finite(field()?)?,
                bytes: field()?.parse().ok()?,
                elapsed_ms: finite(field()?)?,
            },
            "gb" => StressLine::Gb {
                thread: field()?.parse().ok()?,
                tid: field()?.parse().ok()?,
                guest_ms: finite(field()?)?,
                elapsed_ms: finite(field()?)?,
            },
            "fatal" => {
                return Some(StressLine::Fatal {
                    message: args.trim().to_string(),
                })
            }
            "done" => {
                return Some(StressLine::Done {
                    reason: args.trim().to_string(),
                })
            }
            _ => return None,
        };
        // Trailing garbage means the line was mangled (e.g. interleaved with a kernel message).
        if it.next().is_some() {
            return None;
        }
        Some(parsed)
    }
}

fn finite(s: &str) -> Option<f64> {
    s.parse::<f64>().ok().filter(|v| v.is_finite())
}

/// Parses the original stress line `NAME (TID): INFO: NNNms copied N GB in NNNms`.
fn parse_original(line: &str) -> Option<ConsoleLine> {
    let (_, rest) = line.split_once(" (")?;
    let (tid, rest) = rest.split_once("): INFO: ")?;
    let (now, rest) = rest.split_once("ms copied ")?;
    let (_gbs, rest) = rest.split_once(" GB in ")?;
    let elapsed = rest.trim_end().strip_suffix("ms")?;
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !(all_digits(tid) && all_digits(now) && all_digits(_gbs) && all_digits(elapsed)) {
        return None;
    }
    Some(ConsoleLine::OriginalGb {
        tid: tid.parse().ok()?,
        guest_ms: now.parse::<u64>().ok()? as f64,
        elapsed_ms: elapsed.parse::<u64>().ok()? as f64,
    })
}

/// Classifies one serial console line (without its line ending).
pub fn parse_console_line(line: &str) -> ConsoleLine {
    let line = line.trim_end_matches(['\r', '\n']);
    if line.starts_with(PREFIX) {
        return StressLine::parse(line).map_or(ConsoleLine::Other, ConsoleLine::Stress);
    }
    parse_original(line).unwrap_or(ConsoleLine::Other)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_round_trips() {
        let lines = [
            StressLine::Start {
                threads: 2,
                ram_bytes: 256 << 20,
                grain_ms: 20.0,
                guest_ms: 1.5,
            },
            StressLine::Progress {
                thread: 1,
                guest_ms: 17e11,
                bytes: 4096,
                elapsed_ms: 20.125,
            },
            StressLine::Gb {
                thread: 0,
                tid: 77,
                guest_ms: 17e11,
                elapsed_ms: 812.5,
            },
            StressLine::Fatal {
                message: "mmap of 256 MiB failed: out of memory".into(),
            },
            StressLine::Done {
                reason: "ran for stress.duration_s=5".into(),
            },
        ];
        for line in lines {
            let text = line.to_string();
            assert!(text.starts_with("@gp "));
            assert_eq!(
                parse_console_line(&text),
                ConsoleLine::Stress(line),
                "{text}"
            );
        }
    }

    #[test]
    fn original_c_stress_line() {
        let l = "stress (01234): INFO: 1469020993123ms copied 1 GB in 00812ms\r";
        assert_eq!(
            parse_console_line(l),
            ConsoleLine::OriginalGb {
                tid: 1234,
                guest_ms: 1469020993123.0,
                elapsed_ms: 812.0
            }
        );
    }

    #[test]
    fn other_and_garbled_lines() {
        for l in [
            "[    0.123] Run /init as init process",
            "@gp p 0 12.0 4096",
            "@gp p 0 12.0 4096 1.0 [ 3.2] kernel",
            "@gp p 0 NaN 4096 1.0",
            "@gp bogus 1",
            "stress (12a): INFO: 1ms copied 1 GB in 2ms",
            "",
        ] {
            assert_eq!(parse_console_line(l), ConsoleLine::Other, "{l}");
        }
    }
}
