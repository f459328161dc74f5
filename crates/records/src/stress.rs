//! The lines the `stress` workload prints on the guest's serial console, their parser, the
//! workload settings both `stress` and `gp-launch` take (pattern, working set, dirty rate), and
//! the arithmetic that turns progress lines into an achieved dirty rate.
//!
//! `stress` prints short positional lines starting with `@gp ` so that the serial port, which
//! costs a VM exit per byte under KVM, carries as little as possible:
//!
//! ```text
//! @gp start <threads> <ram_bytes> <grain_ms> <guest_ms> [<pattern> <wss_bytes> <dirty_rate>]
//! @gp p <thread> <guest_ms> <bytes> <elapsed_ms> [<touched_bytes>]
//! @gp warm <thread> <guest_ms> <elapsed_ms> <touched_bytes>
//! @gp gb <thread> <tid> <guest_ms> <elapsed_ms>
//! @gp fatal <message>
//! @gp done <reason>
//! ```
//!
//! The bracketed fields are optional: the start line carries the workload only when it is not
//! the default (sequential, all of `ram_bytes`, unlimited rate), and a progress line carries
//! `touched_bytes` only while its thread is still in its first pass (before its `warm` line).
//! Readers of the older four-field lines therefore read a default run's start line unchanged.
//!
//! `guest_ms` is the guest's wall clock in ms since the epoch. `gp-launch` also understands the
//! original C stress program's line, `stress (01234): INFO: 1469020993123ms copied 1 GB in
//! 01234ms`, so an initrd built from the original works.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::size::{format_size, parse_size};

/// What the workload threads write once every page of their share has been written once (their
/// first pass, which is always sequential and unpaced).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pattern {
    /// The working set, page after page, pass after pass (the original's loop).
    #[default]
    Seq,
    /// Uniformly random 4 KiB pages of the working set.
    Random,
    /// Nothing: every page was written once, in the first pass; the threads then stay idle
    /// (the pre-copy best case, and the idle baseline).
    Once,
}

impl Pattern {
    /// Every pattern, in the order the docs list them.
    pub const ALL: [Pattern; 3] = [Pattern::Seq, Pattern::Random, Pattern::Once];

    /// The name on command lines and in records.
    pub fn as_str(self) -> &'static str {
        match self {
            Pattern::Seq => "seq",
            Pattern::Random => "random",
            Pattern::Once => "once",
        }
    }

    /// Whether the threads keep writing after their first pass (so a working set and a dirty
    /// rate mean something).
    pub fn rewrites(self) -> bool {
        self != Pattern::Once
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Pattern {
    type Err = String;

    /// `seq` (or `sequential`), `random` or `once`, any case.
    fn from_str(s: &str) -> Result<Pattern, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "seq" | "sequential" => Ok(Pattern::Seq),
            "random" => Ok(Pattern::Random),
            "once" => Ok(Pattern::Once),
            _ => Err(format!("{s:?} is not a pattern: use seq, random or once")),
        }
    }
}

/// The working set: the part of the workload's RAM its threads keep writing after the first
/// pass, as a size or as a share of the RAM.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Wss {
    /// Bytes, all threads together.
    Bytes(u64),
    /// Percent of the RAM (more than 0, at most 100).
    Pct(f64),
}

impl Wss {
    /// The working set in bytes for a RAM of `ram_bytes` (all threads together).
    pub fn bytes_of(self, ram_bytes: u64) -> u64 {
        match self {
            Wss::Bytes(b) => b,
            Wss::Pct(p) => (ram_bytes as f64 * p / 100.0).round() as u64,
        }
    }
}

impl fmt::Display for Wss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Wss::Bytes(b) => f.write_str(&format_size(*b)),
            Wss::Pct(p) => write!(f, "{p}%"),
        }
    }
}

impl FromStr for Wss {
    type Err = String;

    /// `25%` (of the RAM) or a size with a unit (`256M`, `1.5G`; see [`crate::size`]). A plain
    /// number is refused: `50` could mean 50% or 50 GiB.
    fn from_str(s: &str) -> Result<Wss, String> {
        let t = s.trim();
        if let Some(p) = t.strip_suffix('%') {
            return match p.trim().parse::<f64>() {
                Ok(v) if v.is_finite() && v > 0.0 && v <= 100.0 => Ok(Wss::Pct(v)),
                _ => Err(format!(
                    "{s:?} is not a share of the RAM: use a percent above 0 and at most 100, \
                     e.g. 25%"
                )),
            };
        }
        if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            return Err(format!(
                "{s:?} has no unit: write a size (256M) or a share of the RAM (25%)"
            ));
        }
        match parse_size(t, 1) {
            Ok(0) => Err(format!(
                "{s:?} is zero: the working set must be more than 0"
            )),
            Ok(b) => Ok(Wss::Bytes(b)),
            Err(e) => Err(format!("{e}, or a share of the RAM (25%)")),
        }
    }
}

/// Parses a dirty rate in bytes per second, all threads together: a size with the shared syntax
/// (`64M` is 64 MiB/s; a plain number counts bytes), optionally followed by `/s`. Zero is
/// refused: a rate is more than nothing, and no writes after the first pass is pattern `once`.
pub fn parse_dirty_rate(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let t = t.strip_suffix("/s").unwrap_or(t);
    match parse_size(t, 1) {
        Ok(0) => Err(format!(
            "{text:?} is zero: a dirty rate must be more than 0 (for no writes after the first \
             pass, use the once pattern)"
        )),
        Ok(b) => Ok(b),
        Err(e) => Err(e.to_string()),
    }
}

/// What the workload does after its first pass, as its start line states it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Workload {
    pub pattern: Pattern,
    /// Bytes the threads keep writing, all threads together (0 for [`Pattern::Once`]).
    pub wss_bytes: u64,
    /// Target dirty rate in bytes per second, all threads together; `None` is unlimited.
    pub dirty_rate_bytes_per_s: Option<u64>,
}

impl Workload {
    /// The default workload over `ram_bytes`: the original's, sequential over all of it, as
    /// fast as it goes. A start line without workload fields means this.
    pub fn default_for(ram_bytes: u64) -> Workload {
        Workload {
            pattern: Pattern::Seq,
            wss_bytes: ram_bytes,
            dirty_rate_bytes_per_s: None,
        }
    }
}

/// One line printed by the workload.
#[derive(Debug, Clone, PartialEq)]
pub enum StressLine {
    Start {
        threads: u32,
        ram_bytes: u64,
        grain_ms: f64,
        guest_ms: f64,
        /// Printed only when it is not [`Workload::default_for`] `ram_bytes`.
        workload: Option<Workload>,
    },
    Progress {
        thread: u32,
        guest_ms: f64,
        bytes: u64,
        elapsed_ms: f64,
        /// Bytes of the thread's share written at least once so far; only before its warm line.
        touched_bytes: Option<u64>,
    },
    /// The thread has written every page of its share at least once (its first pass is over).
    Warm {
        thread: u32,
        guest_ms: f64,
        /// Since the start line.
        elapsed_ms: f64,
        /// The thread's share.
        touched_bytes: u64,
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
                workload,
            } => {
                write!(
                    f,
                    "{PREFIX}start {threads} {ram_bytes} {grain_ms} {guest_ms:.3}"
                )?;
                if let Some(w) = workload {
                    write!(
                        f,
                        " {} {} {}",
                        w.pattern,
                        w.wss_bytes,
                        w.dirty_rate_bytes_per_s.unwrap_or(0)
                    )?;
                }
                Ok(())
            }
            StressLine::Progress {
                thread,
                guest_ms,
                bytes,
                elapsed_ms,
                touched_bytes,
            } => {
                write!(
                    f,
                    "{PREFIX}p {thread} {guest_ms:.3} {bytes} {elapsed_ms:.3}"
                )?;
                if let Some(t) = touched_bytes {
                    write!(f, " {t}")?;
                }
                Ok(())
            }
            StressLine::Warm {
                thread,
                guest_ms,
                elapsed_ms,
                touched_bytes,
            } => write!(
                f,
                "{PREFIX}warm {thread} {guest_ms:.3} {elapsed_ms:.3} {touched_bytes}"
            ),
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
            "start" => {
                let threads = field()?.parse().ok()?;
                let ram_bytes = field()?.parse().ok()?;
                let grain_ms = finite(field()?)?;
                let guest_ms = finite(field()?)?;
                let workload = match field() {
                    None => None,
                    Some(pattern) => Some(Workload {
                        pattern: pattern.parse().ok()?,
                        wss_bytes: field()?.parse().ok()?,
                        dirty_rate_bytes_per_s: Some(field()?.parse().ok()?)
                            .filter(|&r: &u64| r > 0),
                    }),
                };
                StressLine::Start {
                    threads,
                    ram_bytes,
                    grain_ms,
                    guest_ms,
                    workload,
                }
            }
            "p" => StressLine::Progress {
                thread: field()?.parse().ok()?,
                guest_ms: finite(field()?)?,
                bytes: field()?.parse().ok()?,
                elapsed_ms: finite(field()?)?,
                touched_bytes: match field() {
                    None => None,
                    Some(t) => Some(t.parse().ok()?),
                },
            },
            "warm" => StressLine::Warm {
                thread: field()?.parse().ok()?,
                guest_ms: finite(field()?)?,
                elapsed_ms: finite(field()?)?,
                touched_bytes: field()?.parse().ok()?,
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

/// The achieved dirty rate, from progress intervals.
///
/// A progress line (or `guest_progress` record) says a thread wrote `bytes` in the `elapsed_ms`
/// ending at `end_ms` (its `guest_ms`). Within one interval the writes are taken as uniform, so
/// each thread's bytes written up to time `t` is a piecewise-linear function; the bytes written
/// in a window `[from, to]` are the sum over threads of that function's rise across the window,
/// and the achieved rate is those bytes over the window's length. Time nobody reported (before a
/// thread's first interval, gaps) counts as no writes. Feed it only the intervals of the phase
/// to measure: the dirtying phase is the progress lines without `touched_bytes`.
#[derive(Debug, Clone, Default)]
pub struct Written {
    /// Per thread, its intervals in order: (start_ms, end_ms, bytes before, bytes).
    threads: Vec<Vec<(f64, f64, f64, f64)>>,
}

impl Written {
    pub fn new() -> Written {
        Written::default()
    }

    /// Adds one interval of `thread`. Intervals of one thread come in time order; one that ends
    /// before the previous one of its thread is ignored.
    pub fn push(&mut self, thread: u32, end_ms: f64, elapsed_ms: f64, bytes: u64) {
        let i = thread as usize;
        if self.threads.len() <= i {
            self.threads.resize_with(i + 1, Vec::new);
        }
        let spans = &mut self.threads[i];
        let (prev_end, before) = spans
            .last()
            .map_or((f64::NEG_INFINITY, 0.0), |&(_, e, b, n)| (e, b + n));
        if !(end_ms.is_finite() && elapsed_ms.is_finite()) || end_ms < prev_end {
            return;
        }
        // Guest clocks and rounding may overlap consecutive intervals by a few µs.
        let start = (end_ms - elapsed_ms.max(0.0)).max(prev_end);
        spans.push((start, end_ms, before, bytes as f64));
    }

    /// Bytes all threads wrote up to `t_ms`.
    pub fn bytes_at(&self, t_ms: f64) -> f64 {
        self.threads
            .iter()
            .map(|spans| {
                let i = spans.partition_point(|&(_, end, _, _)| end < t_ms);
                match spans.get(i) {
                    None => spans.last().map_or(0.0, |&(_, _, b, n)| b + n),
                    Some(&(start, end, before, n)) => {
                        if t_ms <= start {
                            before
                        } else if end > start {
                            before + n * (t_ms - start) / (end - start)
                        } else {
                            before + n
                        }
                    }
                }
            })
            .sum()
    }

    /// The achieved rate over `[from_ms, to_ms]`, bytes per second (0 for an empty window).
    pub fn rate_bytes_per_s(&self, from_ms: f64, to_ms: f64) -> f64 {
        if to_ms <= from_ms {
            return 0.0;
        }
        (self.bytes_at(to_ms) - self.bytes_at(from_ms)) / (to_ms - from_ms) * 1000.0
    }

    /// The achieved rate over every window of `window_ms` that starts at `from_ms + k *
    /// step_ms` and ends by `to_ms`, bytes per second.
    pub fn window_rates(&self, from_ms: f64, to_ms: f64, window_ms: f64, step_ms: f64) -> Vec<f64> {
        let mut rates = Vec::new();
        if !(window_ms > 0.0 && step_ms > 0.0) {
            return rates;
        }
        let mut k = 0u64;
        loop {
            let a = from_ms + k as f64 * step_ms;
            if a + window_ms > to_ms + 1e-9 {
                return rates;
            }
            rates.push(self.rate_bytes_per_s(a, a + window_ms));
            k += 1;
        }
    }

    /// The time range every thread reported through: from the latest first start to the
    /// earliest last end (`None` when empty or when they do not overlap).
    pub fn span_ms(&self) -> Option<(f64, f64)> {
        let from = self
            .threads
            .iter()
            .filter_map(|s| s.first().map(|&(start, _, _, _)| start))
            .reduce(f64::max)?;
        let to = self
            .threads
            .iter()
            .filter_map(|s| s.last().map(|&(_, end, _, _)| end))
            .reduce(f64::min)?;
        (to > from).then_some((from, to))
    }

    /// How the achieved rate over every `window_ms` window (sliding by `step_ms` across
    /// [`Written::span_ms`]) compares with `target_bytes_per_s`; `None` without a whole window.
    pub fn spread(
        &self,
        target_bytes_per_s: f64,
        window_ms: f64,
        step_ms: f64,
    ) -> Option<RateSpread> {
        let (from, to) = self.span_ms()?;
        let mut rates = self.window_rates(from, to, window_ms, step_ms);
        if rates.is_empty() || target_bytes_per_s.is_nan() || target_bytes_per_s <= 0.0 {
            return None;
        }
        let within_5 = rates
            .iter()
            .filter(|&&r| (r / target_bytes_per_s - 1.0).abs() <= 0.05)
            .count();
        let pct = |q: f64, rates: &mut [f64]| {
            crate::stats::quantile(rates, q).unwrap_or(f64::NAN) / target_bytes_per_s * 100.0
        };
        Some(RateSpread {
            windows: rates.len(),
            window_ms,
            span_ms: to - from,
            mean_pct: self.rate_bytes_per_s(from, to) / target_bytes_per_s * 100.0,
            min_pct: pct(0.0, &mut rates),
            p5_pct: pct(0.05, &mut rates),
            median_pct: pct(0.5, &mut rates),
            p95_pct: pct(0.95, &mut rates),
            max_pct: pct(1.0, &mut rates),
            within_5_pct: within_5 as f64 / rates.len() as f64 * 100.0,
        })
    }
}

/// The achieved rate over sliding windows, as percent of a target rate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RateSpread {
    pub windows: usize,
    pub window_ms: f64,
    /// Length of the range the windows slide over.
    pub span_ms: f64,
    /// The rate over the whole range.
    pub mean_pct: f64,
    pub min_pct: f64,
    pub p5_pct: f64,
    pub median_pct: f64,
    pub p95_pct: f64,
    pub max_pct: f64,
    /// Share of the windows within 5% of the target.
    pub within_5_pct: f64,
}

impl RateSpread {
    /// The largest deviation of any window from the target, percent.
    pub fn worst_pct(&self) -> f64 {
        (100.0 - self.min_pct).max(self.max_pct - 100.0)
    }
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
                workload: None,
            },
            StressLine::Start {
                threads: 2,
                ram_bytes: 256 << 20,
                grain_ms: 30.0,
                guest_ms: 1.5,
                workload: Some(Workload {
                    pattern: Pattern::Random,
                    wss_bytes: 64 << 20,
                    dirty_rate_bytes_per_s: Some(32 << 20),
                }),
            },
            StressLine::Start {
                threads: 1,
                ram_bytes: 64 << 20,
                grain_ms: 30.0,
                guest_ms: 1.5,
                workload: Some(Workload {
                    pattern: Pattern::Seq,
                    wss_bytes: 16 << 20,
                    dirty_rate_bytes_per_s: None,
                }),
            },
            StressLine::Progress {
                thread: 1,
                guest_ms: 17e11,
                bytes: 4096,
                elapsed_ms: 20.125,
                touched_bytes: None,
            },
            StressLine::Progress {
                thread: 0,
                guest_ms: 17e11,
                bytes: 8192,
                elapsed_ms: 30.0,
                touched_bytes: Some(1 << 20),
            },
            StressLine::Warm {
                thread: 1,
                guest_ms: 17e11,
                elapsed_ms: 1234.5,
                touched_bytes: 128 << 20,
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
    fn the_default_start_line_keeps_its_four_fields() {
        let line = StressLine::Start {
            threads: 2,
            ram_bytes: 201326592,
            grain_ms: 30.0,
            guest_ms: 1764102436412.25,
            workload: None,
        };
        assert_eq!(
            line.to_string(),
            "@gp start 2 201326592 30 1764102436412.250"
        );
        let line = StressLine::Start {
            threads: 2,
            ram_bytes: 201326592,
            grain_ms: 30.0,
            guest_ms: 1764102436412.25,
            workload: Some(Workload {
                pattern: Pattern::Seq,
                wss_bytes: 100663296,
                dirty_rate_bytes_per_s: Some(33554432),
            }),
        };
        assert_eq!(
            line.to_string(),
            "@gp start 2 201326592 30 1764102436412.250 seq 100663296 33554432"
        );
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
            "@gp p 0 12.0 4096 1.0 -5",
            "@gp p 0 NaN 4096 1.0",
            "@gp start 2 1024 30 1.0 seq",
            "@gp start 2 1024 30 1.0 zigzag 1024 0",
            "@gp start 2 1024 30 1.0 seq 1024 0 extra",
            "@gp warm 0 1.0 2.0",
            "@gp warm 0 1.0 2.0 4096 more",
            "@gp bogus 1",
            "stress (12a): INFO: 1ms copied 1 GB in 2ms",
            "",
        ] {
            assert_eq!(parse_console_line(l), ConsoleLine::Other, "{l}");
        }
    }

    #[test]
    fn patterns_parse_by_name() {
        for p in Pattern::ALL {
            assert_eq!(p.as_str().parse::<Pattern>(), Ok(p));
            assert_eq!(p.to_string().to_uppercase().parse::<Pattern>(), Ok(p));
        }
        assert_eq!("sequential".parse::<Pattern>(), Ok(Pattern::Seq));
        let e = "zigzag".parse::<Pattern>().unwrap_err();
        assert!(e.contains("seq, random or once"), "{e}");
        assert!(Pattern::Seq.rewrites() && Pattern::Random.rewrites());
        assert!(!Pattern::Once.rewrites());
        assert_eq!(Pattern::default(), Pattern::Seq);
    }

    #[test]
    fn working_sets() {
        assert_eq!("25%".parse::<Wss>(), Ok(Wss::Pct(25.0)));
        assert_eq!(" 12.5 % ".parse::<Wss>(), Ok(Wss::Pct(12.5)));
        assert_eq!("100%".parse::<Wss>(), Ok(Wss::Pct(100.0)));
        assert_eq!("64M".parse::<Wss>(), Ok(Wss::Bytes(64 << 20)));
        assert_eq!("1.5G".parse::<Wss>(), Ok(Wss::Bytes(3 << 29)));
        assert_eq!(Wss::Pct(25.0).bytes_of(1 << 30), 1 << 28);
        assert_eq!(Wss::Bytes(4096).bytes_of(1 << 30), 4096);
        assert_eq!(Wss::Pct(50.0).to_string(), "50%");
        assert_eq!(Wss::Bytes(64 << 20).to_string(), "64M");
        for (bad, needle) in [
            ("0%", "above 0 and at most 100"),
            ("101%", "above 0 and at most 100"),
            ("-5%", "above 0 and at most 100"),
            ("x%", "above 0 and at most 100"),
            ("50", "no unit"),
            ("0M", "zero"),
            ("12Q", "unknown unit"),
            ("lots", "not a size"),
            ("", "not a size"),
        ] {
            let e = bad.parse::<Wss>().unwrap_err();
            assert!(e.contains(needle), "{bad:?}: {e}");
        }
    }

    #[test]
    fn dirty_rates() {
        assert_eq!(parse_dirty_rate("64M"), Ok(64 << 20));
        assert_eq!(parse_dirty_rate("200M/s"), Ok(200 << 20));
        assert_eq!(parse_dirty_rate("1.5G"), Ok(3 << 29));
        assert_eq!(parse_dirty_rate("4096"), Ok(4096));
        let e = parse_dirty_rate("0").unwrap_err();
        assert!(e.contains("more than 0") && e.contains("once"), "{e}");
        assert!(parse_dirty_rate("fast").unwrap_err().contains("not a size"));
        assert!(parse_dirty_rate("-1M").is_err());
    }

    #[test]
    fn written_is_piecewise_linear_per_thread() {
        let mut w = Written::new();
        // Thread 0: 100 bytes in [0, 10], 100 in [10, 20]; thread 1: 50 in [5, 15].
        w.push(0, 10.0, 10.0, 100);
        w.push(0, 20.0, 10.0, 100);
        w.push(1, 15.0, 10.0, 50);
        assert_eq!(w.bytes_at(-1.0), 0.0);
        assert_eq!(w.bytes_at(5.0), 50.0);
        assert_eq!(w.bytes_at(10.0), 100.0 + 25.0);
        assert_eq!(w.bytes_at(20.0), 250.0);
        assert_eq!(w.bytes_at(99.0), 250.0);
        // 200 + 50 bytes over 20 ms.
        assert_eq!(w.rate_bytes_per_s(0.0, 20.0), 12_500.0);
        assert_eq!(w.rate_bytes_per_s(5.0, 5.0), 0.0);
        assert_eq!(w.span_ms(), Some((5.0, 15.0)));
        // An interval that goes back in time is ignored.
        w.push(0, 15.0, 1.0, 1000);
        assert_eq!(w.bytes_at(99.0), 250.0);
    }

    #[test]
    fn window_rates_slide_over_the_range() {
        let mut w = Written::new();
        // 1 MB per 10 ms, then a 30 ms stall (one interval of 40 ms with 1 MB).
        let mut t = 0.0;
        for _ in 0..20 {
            t += 10.0;
            w.push(0, t, 10.0, 1_000_000);
        }
        w.push(0, t + 40.0, 40.0, 1_000_000);
        let rates = w.window_rates(0.0, 200.0, 100.0, 10.0);
        assert_eq!(rates.len(), 11);
        assert!(rates.iter().all(|r| (r - 1e8).abs() < 1.0), "{rates:?}");
        let rates = w.window_rates(100.0, 240.0, 100.0, 20.0);
        // [140, 240]: 6 MB before the stall, then 1 MB over 40 ms.
        assert!((rates.last().unwrap() - 7e7).abs() < 1.0, "{rates:?}");
        assert!(w.window_rates(0.0, 50.0, 100.0, 10.0).is_empty());
        // Against a target of 100 MB/s: the stall shows in the windows it touches.
        let spread = w.spread(1e8, 100.0, 10.0).unwrap();
        assert_eq!(spread.windows, 15);
        assert_eq!(spread.span_ms, 240.0);
        assert!((spread.max_pct - 100.0).abs() < 1e-6, "{spread:?}");
        assert!((spread.min_pct - 70.0).abs() < 1e-6, "{spread:?}");
        assert!((spread.worst_pct() - 30.0).abs() < 1e-6, "{spread:?}");
        assert!((spread.within_5_pct - 11.0 / 15.0 * 100.0).abs() < 1e-6);
        assert!((spread.mean_pct - 21e6 / 240.0 * 1e3 / 1e8 * 100.0).abs() < 1e-6);
        assert_eq!(Written::new().spread(1e8, 100.0, 10.0), None);
    }
}
