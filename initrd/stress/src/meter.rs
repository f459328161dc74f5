//! Timing arithmetic: how each thread cuts its work into chunks, and which `@gp p` / `@gp gb`
//! lines are due after each chunk.
//!
//! A thread walks its share of memory pass after pass. It looks at the clock once per chunk of
//! [`CHECK_BYTES`] (fewer at the end of a pass or of a GB), so a GB of work (2^30 bytes, counted
//! across passes, so shares below 1 GiB work) always ends exactly on a chunk boundary and its
//! time is exact, whatever the share size.

/// Bytes xored between two looks at the clock. At the host's ~10 GB/s that is ~25 us of work
/// against a ~20 ns vDSO clock read (under 0.1%); under TCG the work is ~20x slower and the
/// clock read ~5x, so it costs even less there. At the guest's slowest speeds a chunk still takes
/// well under a millisecond, so progress lines stay within 1 ms of their grain.
pub const CHECK_BYTES: u64 = 256 << 10;

/// The unit of the per-GB report.
pub const GB: u64 = 1 << 30;

/// Cuts a share into chunks that never straddle the end of a pass or a GB boundary.
#[derive(Debug, Clone)]
pub struct Walk {
    share: u64,
    check: u64,
    pos: u64,
}

impl Walk {
    /// `share` and `check` are multiples of the pattern size (4 KiB).
    pub fn new(share: u64, check: u64) -> Walk {
        assert!(share > 0 && check > 0, "empty share or chunk");
        Walk {
            share,
            check,
            pos: 0,
        }
    }

    /// The next chunk as (offset into the share, length), given how far the current GB still
    /// has to go; wraps to the start of the share after the last chunk of a pass.
    pub fn next(&mut self, to_gb: u64) -> (u64, u64) {
        if self.pos == self.share {
            self.pos = 0;
        }
        let len = self.check.min(self.share - self.pos).min(to_gb.max(1));
        let start = self.pos;
        self.pos += len;
        (start, len)
    }
}

/// A progress report: `bytes` done in `elapsed_ms` since the thread's previous one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    pub bytes: u64,
    pub elapsed_ms: f64,
}

/// What to print after a chunk.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Due {
    pub progress: Option<Progress>,
    /// A GB was completed; how long it took.
    pub gb_elapsed_ms: Option<f64>,
}

/// Per-thread accounting of work against a monotonic clock in ms.
#[derive(Debug, Clone)]
pub struct Meter {
    grain_ms: f64,
    unit: u64,
    total: u64,
    gb_start_ms: f64,
    p_start_ms: f64,
    p_bytes: u64,
}

impl Meter {
    /// Starts the clock at `now_ms`; `grain_ms == 0` turns progress reports off.
    pub fn new(now_ms: f64, grain_ms: f64) -> Meter {
        Meter::with_unit(now_ms, grain_ms, GB)
    }

    /// As [`Meter::new`] with another report unit (tests use small ones).
    pub fn with_unit(now_ms: f64, grain_ms: f64, unit: u64) -> Meter {
        Meter {
            grain_ms,
            unit,
            total: 0,
            gb_start_ms: now_ms,
            p_start_ms: now_ms,
            p_bytes: 0,
        }
    }

    /// Bytes until the current GB is complete.
    pub fn to_gb(&self) -> u64 {
        self.unit - self.total % self.unit
    }

    /// All bytes accounted so far.
    pub fn total_bytes(&self) -> u64 {
        self.total
    }

    /// When the next progress report falls due (ms); infinity when reports are off.
    pub fn next_progress_ms(&self) -> f64 {
        if self.grain_ms > 0.0 {
            self.p_start_ms + self.grain_ms
        } else {
            f64::INFINITY
        }
    }

    /// A progress report now, before its grain has passed (to end one at a phase change);
    /// `None` when reports are off or nothing happened since the last one.
    pub fn flush(&mut self, now_ms: f64) -> Option<Progress> {
        let elapsed_ms = now_ms - self.p_start_ms;
        if self.grain_ms <= 0.0 || (self.p_bytes == 0 && elapsed_ms <= 0.0) {
            return None;
        }
        let p = Progress {
            bytes: self.p_bytes,
            elapsed_ms,
        };
        self.p_start_ms = now_ms;
        self.p_bytes = 0;
        Some(p)
    }

    /// Accounts a chunk of `bytes` finished at `now_ms`.
    pub fn add(&mut self, bytes: u64, now_ms: f64) -> Due {
        let mut due = Due::default();
        let before = self.total;
        self.total += bytes;
        self.p_bytes += bytes;
        if self.total / self.unit > before / self.unit {
            due.gb_elapsed_ms = Some(now_ms - self.gb_start_ms);
            self.gb_start_ms = now_ms;
        }
        let elapsed_ms = now_ms - self.p_start_ms;
        if self.grain_ms > 0.0 && elapsed_ms >= self.grain_ms {
            due.progress = Some(Progress {
                bytes: self.p_bytes,
                elapsed_ms,
            });
            self.p_start_ms = now_ms;
            self.p_bytes = 0;
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walk_cuts_at_pass_end_and_gb() {
        // share of 10 units, chunk 4, "GB" of 7: chunks never cross either boundary.
        let mut walk = Walk::new(10, 4);
        let mut meter = Meter::with_unit(0.0, 0.0, 7);
        let mut chunks = Vec::new();
        for _ in 0..8 {
            let (start, len) = walk.next(meter.to_gb());
            meter.add(len, 0.0);
            chunks.push((start, len));
        }
        assert_eq!(
            chunks,
            [
                (0, 4),
                (4, 3),
                (7, 3),
                (0, 4),
                (4, 4),
                (8, 2),
                (0, 1),
                (1, 4)
            ]
        );
    }

    #[test]
    fn gb_lines_count_across_passes() {
        // A 96 MiB share (not a divisor of 1 GiB): every GB line comes after exactly 2^30 bytes.
        let share = 96 << 20;
        let mut walk = Walk::new(share, CHECK_BYTES);
        let mut meter = Meter::new(0.0, 0.0);
        let mut now = 0.0;
        let mut gb_at = Vec::new();
        while meter.total_bytes() < 3 * GB {
            let (start, len) = walk.next(meter.to_gb());
            assert!(start + len <= share && len > 0);
            assert_eq!(start % 4096, 0);
            now += len as f64 / 1e6; // 1 byte per ns: 1 GB = 1073.741824 ms
            if let Some(ms) = meter.add(len, now).gb_elapsed_ms {
                gb_at.push((meter.total_bytes(), ms));
            }
        }
        assert_eq!(gb_at.len(), 3);
        for (i, (total, ms)) in gb_at.iter().enumerate() {
            assert_eq!(*total, (i as u64 + 1) * GB);
            assert!((ms - 1073.741824).abs() < 1e-6, "{ms}");
        }
    }

    #[test]
    fn progress_once_per_grain_with_bytes_since_last() {
        let mut meter = Meter::with_unit(100.0, 20.0, GB);
        assert_eq!(meter.add(10, 105.0).progress, None);
        assert_eq!(meter.add(10, 119.9).progress, None);
        assert_eq!(
            meter.add(10, 120.0).progress,
            Some(Progress {
                bytes: 30,
                elapsed_ms: 20.0
            })
        );
        // A 50 ms stall shows as one report with a long elapsed time and the same bytes.
        assert_eq!(
            meter.add(10, 190.0).progress,
            Some(Progress {
                bytes: 10,
                elapsed_ms: 70.0
            })
        );
        assert_eq!(meter.add(5, 200.0).progress, None);
    }

    #[test]
    fn flush_ends_a_report_early_once() {
        let mut meter = Meter::with_unit(0.0, 20.0, GB);
        assert_eq!(meter.next_progress_ms(), 20.0);
        meter.add(10, 5.0);
        assert_eq!(
            meter.flush(7.0),
            Some(Progress {
                bytes: 10,
                elapsed_ms: 7.0
            })
        );
        assert_eq!(meter.flush(7.0), None);
        assert_eq!(meter.next_progress_ms(), 27.0);
        // Idle time alone is worth a report: a heartbeat with no bytes.
        assert_eq!(
            meter.add(0, 27.0).progress,
            Some(Progress {
                bytes: 0,
                elapsed_ms: 20.0
            })
        );
        let mut off = Meter::with_unit(0.0, 0.0, GB);
        off.add(10, 5.0);
        assert_eq!(off.flush(6.0), None);
        assert_eq!(off.next_progress_ms(), f64::INFINITY);
    }

    #[test]
    fn grain_zero_means_no_progress() {
        let mut meter = Meter::with_unit(0.0, 0.0, 100);
        let due = meter.add(100, 1e6);
        assert_eq!(due.progress, None);
        assert_eq!(due.gb_elapsed_ms, Some(1e6));
    }

    #[test]
    fn gb_time_runs_from_the_previous_gb() {
        let mut meter = Meter::with_unit(0.0, 0.0, 100);
        assert_eq!(meter.add(60, 6.0).gb_elapsed_ms, None);
        assert_eq!(meter.add(40, 10.0).gb_elapsed_ms, Some(10.0));
        assert_eq!(meter.to_gb(), 100);
        assert_eq!(meter.add(100, 25.0).gb_elapsed_ms, Some(15.0));
    }
}
