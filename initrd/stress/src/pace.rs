//! Pacing: holding a dirty rate over every short window, not just on average.
//!
//! A paced thread writes in chunks of about [`TICK_MS`] worth of its rate and, before each
//! chunk, waits until its schedule allows it: by time `t` it may have written
//! `rate * (t - origin)` bytes. Cumulative writes then stay within one chunk of the straight
//! line, so any 100 ms window holds the rate to within a chunk's worth (2% at 2 ms ticks), where
//! mig_mon's `mm_dirty` writes a second's worth at full speed and then sleeps out the second.
//!
//! A thread that falls behind (descheduled, its vCPU paused by a migration) catches up at full
//! speed, but by at most [`MAX_LAG_MS`] worth of writes: a short hiccup is made good within the
//! same window, while a long stall does not turn into a long burst. What the guest really wrote
//! is in its progress lines either way.

use crate::meter::CHECK_BYTES;
use crate::xor::PATTERN_BYTES;

/// Target time between two chunks of a paced thread. A 100 ms window is then within one chunk,
/// 2%, of the rate, leaving room for timer jitter below 5%. Each tick is a wake-up: a few µs
/// under KVM, but ~0.25 ms of QEMU's CPU under TCG (a 2-vCPU TCG guest at 32 MiB/s used 0.39
/// host CPUs against 0.13 idle; docs/stress.md).
pub const TICK_MS: f64 = 2.0;

/// Most writes, in ms of the thread's rate, a thread that fell behind makes up at once.
pub const MAX_LAG_MS: f64 = 50.0;

/// Bytes per chunk for a thread writing `rate_bytes_per_s`: [`TICK_MS`] worth, in whole 4 KiB
/// pages, at least one page and at most [`CHECK_BYTES`].
pub fn chunk_bytes(rate_bytes_per_s: f64) -> u64 {
    let page = PATTERN_BYTES as u64;
    let pages = (rate_bytes_per_s * TICK_MS / 1000.0 / page as f64).floor();
    let pages = if pages.is_finite() { pages as u64 } else { 0 };
    (pages.max(1) * page).min(CHECK_BYTES)
}

/// One thread's schedule against a monotonic clock in ms.
#[derive(Debug, Clone)]
pub struct Pacer {
    bytes_per_ms: f64,
    origin_ms: f64,
    done: f64,
}

impl Pacer {
    /// A schedule of `rate_bytes_per_s` (> 0) starting at `now_ms`.
    pub fn new(rate_bytes_per_s: f64, now_ms: f64) -> Pacer {
        assert!(rate_bytes_per_s > 0.0, "a pacer needs a rate");
        Pacer {
            bytes_per_ms: rate_bytes_per_s / 1000.0,
            origin_ms: now_ms,
            done: 0.0,
        }
    }

    /// When the schedule allows the next write: `None` is now, `Some(t)` is not before `t`. A
    /// thread more than [`MAX_LAG_MS`] behind is forgiven the rest.
    pub fn wait_until(&mut self, now_ms: f64) -> Option<f64> {
        let due = self.origin_ms + self.done / self.bytes_per_ms;
        if due > now_ms {
            return Some(due);
        }
        let lag = now_ms - due;
        if lag > MAX_LAG_MS {
            self.origin_ms += lag - MAX_LAG_MS;
        }
        None
    }

    /// Accounts a write.
    pub fn wrote(&mut self, bytes: u64) {
        self.done += bytes as f64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: f64 = 1e6;

    /// Runs a thread that writes a chunk in `write_ms` whenever the pacer lets it, sleeping
    /// exactly until it is due otherwise (plus `hiccup(t)` ms of lost time), and returns its
    /// cumulative writes as (time, bytes) after each chunk.
    fn simulate(
        rate: f64,
        until_ms: f64,
        write_ms: f64,
        mut hiccup: impl FnMut(f64) -> f64,
    ) -> Vec<(f64, f64)> {
        let chunk = chunk_bytes(rate);
        let mut p = Pacer::new(rate, 0.0);
        let mut t = 0.0;
        let mut total = 0.0;
        let mut out = vec![(0.0, 0.0)];
        while t < until_ms {
            match p.wait_until(t) {
                Some(due) => t = due,
                None => {
                    t += write_ms + hiccup(t);
                    p.wrote(chunk);
                    total += chunk as f64;
                    out.push((t, total));
                }
            }
        }
        out
    }

    /// Bytes written by time `t` (the last point at or before it).
    fn at(points: &[(f64, f64)], t: f64) -> f64 {
        points
            .iter()
            .take_while(|(pt, _)| *pt <= t)
            .last()
            .map_or(0.0, |p| p.1)
    }

    #[test]
    fn chunks_are_a_tick_of_pages() {
        assert_eq!(chunk_bytes(100.0 * MB), 48 * 4096); // 200 kB per 2 ms, in whole pages
        assert_eq!(chunk_bytes(16.0 * MB), 7 * 4096);
        assert_eq!(chunk_bytes(1000.0), 4096); // below a page per tick: one page
        assert_eq!(chunk_bytes(1e12), CHECK_BYTES);
        for r in [1.0, 3e5, 7.7e6, 2e8, 1e10] {
            assert_eq!(chunk_bytes(r) % 4096, 0, "{r}");
        }
    }

    #[test]
    fn every_100_ms_window_holds_the_rate_within_a_chunk() {
        for rate in [1.0 * MB, 16.0 * MB, 100.0 * MB, 200.0 * MB] {
            let pts = simulate(rate, 10_000.0, 0.05, |_| 0.0);
            let chunk = chunk_bytes(rate) as f64;
            let want = rate / 10.0;
            let mut a = 0.0;
            while a + 100.0 <= 9_900.0 {
                let got = at(&pts, a + 100.0) - at(&pts, a);
                assert!(
                    (got - want).abs() <= chunk + 1.0,
                    "rate {rate}: window at {a} ms wrote {got}, want {want} ± {chunk}"
                );
                a += 7.0;
            }
            // And on average exactly.
            let total = pts.last().unwrap();
            let avg = total.1 / total.0 * 1000.0;
            assert!(
                (avg / rate - 1.0).abs() < 0.01,
                "rate {rate}: average {avg}"
            );
        }
    }

    #[test]
    fn a_short_hiccup_is_made_good_a_long_stall_is_not() {
        let rate = 100.0 * MB;
        // 30 ms lost at t = 1000: made good right after.
        let mut once = true;
        let pts = simulate(rate, 3_000.0, 0.01, |t| {
            if t >= 1000.0 && once {
                once = false;
                30.0
            } else {
                0.0
            }
        });
        let got = at(&pts, 1100.0) - at(&pts, 990.0);
        assert!((got / (rate * 0.110) - 1.0).abs() < 0.03, "{got}");
        // 500 ms lost: only MAX_LAG_MS worth is made up, so by the end the thread is short by
        // the rest, and never wrote faster than its rate over a window after catching up.
        let mut once = true;
        let pts = simulate(rate, 3_000.0, 0.01, |t| {
            if t >= 1000.0 && once {
                once = false;
                500.0
            } else {
                0.0
            }
        });
        let short = rate * 3.0 - at(&pts, 3000.0);
        let want_short = rate * (500.0 - MAX_LAG_MS) / 1000.0;
        assert!(
            (short / want_short - 1.0).abs() < 0.02,
            "{short} vs {want_short}"
        );
        let burst = at(&pts, 1600.0) - at(&pts, 1500.0);
        let bound = rate * (0.1 + MAX_LAG_MS / 1000.0) + chunk_bytes(rate) as f64;
        assert!(burst <= bound, "{burst} > {bound}");
    }

    #[test]
    fn waits_are_due_times_not_durations() {
        let mut p = Pacer::new(1000.0, 100.0); // 1 byte per ms
        assert_eq!(p.wait_until(100.0), None);
        p.wrote(10);
        assert_eq!(p.wait_until(105.0), Some(110.0));
        assert_eq!(p.wait_until(110.0), None);
        // 1000 ms behind: forgiven down to MAX_LAG_MS.
        assert_eq!(p.wait_until(1110.0), None);
        p.wrote(100);
        assert_eq!(p.wait_until(1110.0), Some(1110.0 - MAX_LAG_MS + 100.0));
    }
}
