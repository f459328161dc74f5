//! What one thread writes, and when: its first pass, then its pattern at its rate.
//!
//! The first pass writes every page of the thread's share once, in order, as fast as it can (it
//! also faults the share in); it ends in the thread's `warm` line. After it the thread writes
//! its [`Pattern`] over its working set (the first `wss` bytes of its share; the rest stays as
//! the first pass left it), paced to its part of the dirty rate, or writes nothing (`once`).
//! [`Work::step`] decides; the caller does the writing and the clock, so all of it is tested
//! here without memory or time.

use gp_records::stress::Pattern;

use crate::meter::{Walk, CHECK_BYTES};
use crate::pace::{chunk_bytes, Pacer};
use crate::xor::{splitmix64, PATTERN_BYTES};

const PAGE: u64 = PATTERN_BYTES as u64;

/// What a step did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Step {
    /// Wrote `bytes`; `warmed`: this write ended the first pass.
    Wrote { bytes: u64, warmed: bool },
    /// The rate allows nothing before this time (ms, the caller's clock).
    WaitUntil(f64),
    /// Nothing left to write, ever (`once` after the first pass).
    Idle,
}

/// One thread's schedule.
#[derive(Debug, Clone)]
pub struct Work {
    share: u64,
    pattern: Pattern,
    first_pass: Walk,
    touched: u64,
    warm: bool,
    wss: u64,
    walk: Walk,
    chunk: u64,
    rate: Option<f64>,
    pacer: Option<Pacer>,
    rng: u64,
}

impl Work {
    /// `share` and `wss` (at most `share`; unused by `once`) are multiples of 4 KiB;
    /// `rate` is this thread's bytes per second after the first pass (`None`: unlimited);
    /// `seed` picks the random pages.
    pub fn new(share: u64, wss: u64, pattern: Pattern, rate: Option<f64>, seed: u64) -> Work {
        assert!(share > 0 && share % PAGE == 0, "bad share {share}");
        let wss = if pattern.rewrites() { wss } else { share };
        assert!(
            wss > 0 && wss <= share && wss % PAGE == 0,
            "bad working set {wss}"
        );
        let chunk = rate.map_or(CHECK_BYTES, chunk_bytes);
        Work {
            share,
            pattern,
            first_pass: Walk::new(share, CHECK_BYTES),
            touched: 0,
            warm: false,
            wss,
            walk: Walk::new(wss, chunk),
            chunk,
            rate,
            pacer: None,
            rng: seed,
        }
    }

    /// Whether the first pass is over.
    pub fn is_warm(&self) -> bool {
        self.warm
    }

    /// Bytes of the share written at least once.
    pub fn touched(&self) -> u64 {
        self.touched
    }

    /// Does the next piece of work at `now_ms`, in pieces that never cross the current GB
    /// (`to_gb` bytes to go): calls `write(offset, len, first_touch)` for each range of the
    /// share to xor (`first_touch`: its pages are new), or says why it wrote nothing.
    pub fn step(&mut self, now_ms: f64, to_gb: u64, mut write: impl FnMut(u64, u64, bool)) -> Step {
        if !self.warm {
            let (start, len) = self.first_pass.next(to_gb);
            write(start, len, true);
            self.touched = start + len;
            self.warm = self.touched == self.share;
            return Step::Wrote {
                bytes: len,
                warmed: self.warm,
            };
        }
        if !self.pattern.rewrites() {
            return Step::Idle;
        }
        if let Some(rate) = self.rate {
            // The schedule starts with the first write after the first pass.
            let pacer = self.pacer.get_or_insert_with(|| Pacer::new(rate, now_ms));
            if let Some(t) = pacer.wait_until(now_ms) {
                return Step::WaitUntil(t);
            }
        }
        let bytes = match self.pattern {
            Pattern::Random => {
                let pages = self.chunk.min(to_gb) / PAGE;
                let wss_pages = self.wss / PAGE;
                for _ in 0..pages {
                    let page = below(splitmix64(&mut self.rng), wss_pages);
                    write(page * PAGE, PAGE, false);
                }
                pages * PAGE
            }
            Pattern::Seq | Pattern::Once => {
                let (start, len) = self.walk.next(to_gb);
                write(start, len, false);
                len
            }
        };
        if let Some(p) = &mut self.pacer {
            p.wrote(bytes);
        }
        Step::Wrote {
            bytes,
            warmed: false,
        }
    }
}

/// Maps a uniform 64-bit value onto `0..n` (multiply-shift: no division, bias below 2^-40 for
/// any share that fits in memory).
fn below(x: u64, n: u64) -> u64 {
    ((u128::from(x) * u128::from(n)) >> 64) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meter::{Meter, GB};
    use crate::pace::MAX_LAG_MS;

    const KIB: u64 = 1024;
    const MIB: u64 = 1 << 20;

    /// Steps with a clock that only moves when told, recording every write.
    struct Run {
        work: Work,
        meter: Meter,
        writes: Vec<(u64, u64, bool)>,
    }

    impl Run {
        fn new(work: Work) -> Run {
            Run {
                work,
                meter: Meter::new(0.0, 0.0),
                writes: Vec::new(),
            }
        }

        fn step(&mut self, now_ms: f64) -> Step {
            let writes = &mut self.writes;
            let step = self
                .work
                .step(now_ms, self.meter.to_gb(), |s, l, f| writes.push((s, l, f)));
            if let Step::Wrote { bytes, .. } = step {
                self.meter.add(bytes, now_ms);
            }
            step
        }

        /// Steps until the first pass is over; returns the steps taken.
        fn warm_up(&mut self) -> usize {
            let mut n = 0;
            while !self.work.is_warm() {
                n += 1;
                assert!(matches!(self.step(0.0), Step::Wrote { .. }));
            }
            n
        }
    }

    #[test]
    fn first_pass_touches_every_page_once_in_order_then_warms() {
        let share = 3 * MIB + 12 * KIB;
        let mut run = Run::new(Work::new(share, share, Pattern::Seq, None, 1));
        let mut warmed = 0;
        let mut end = 0;
        while !run.work.is_warm() {
            let Step::Wrote { bytes, warmed: w } = run.step(0.0) else {
                panic!("the first pass never waits")
            };
            let &(start, len, first) = run.writes.last().unwrap();
            assert_eq!((start, len), (end, bytes));
            assert!(first, "first-pass writes are first touches");
            end += len;
            assert_eq!(run.work.touched(), end);
            warmed += usize::from(w);
        }
        assert_eq!((end, warmed), (share, 1));
        // Then the default workload goes on exactly as before: the share again, from 0.
        run.step(0.0);
        assert_eq!(run.writes.last(), Some(&(0, CHECK_BYTES, false)));
    }

    #[test]
    fn seq_rewrites_only_the_working_set() {
        let (share, wss) = (4 * MIB, MIB);
        let mut run = Run::new(Work::new(share, wss, Pattern::Seq, None, 1));
        run.warm_up();
        run.writes.clear();
        for _ in 0..20 {
            run.step(0.0);
        }
        let mut covered = 0;
        for &(start, len, first) in &run.writes {
            assert!(!first && start + len <= wss, "{start}+{len}");
            covered += len;
        }
        assert_eq!(covered, 20 * CHECK_BYTES); // 5 passes over 1 MiB
    }

    #[test]
    fn random_pages_cover_the_working_set_uniformly_and_nothing_else() {
        let (share, wss) = (8 * MIB, 2 * MIB);
        let pages = (wss / PAGE) as usize;
        let mut run = Run::new(Work::new(share, wss, Pattern::Random, None, 42));
        run.warm_up();
        run.writes.clear();
        // Write 8 working sets' worth of random pages.
        let mut written = 0;
        while written < 8 * wss {
            let Step::Wrote { bytes, .. } = run.step(0.0) else {
                panic!("unpaced random never waits")
            };
            written += bytes;
        }
        let mut hits = vec![0u32; pages];
        for &(start, len, first) in &run.writes {
            assert!(!first && len == PAGE && start % PAGE == 0 && start < wss);
            hits[(start / PAGE) as usize] += 1;
        }
        assert_eq!(
            hits.iter().map(|&h| u64::from(h)).sum::<u64>() * PAGE,
            written
        );
        // Uniform with replacement: a page is missed with probability e^-8 (0.03%); 512 pages
        // expect 0.17 misses. Each half gets half of the writes within 5%.
        let missed = hits.iter().filter(|&&h| h == 0).count();
        assert!(missed <= 3, "{missed} of {pages} pages never written");
        let first_half: u32 = hits[..pages / 2].iter().sum();
        let share_first = f64::from(first_half) / (written / PAGE) as f64;
        assert!((share_first - 0.5).abs() < 0.05, "{share_first}");
        // And not a permutation in disguise: some page was hit twice before all were hit once.
        assert!(hits.iter().any(|&h| h >= 12));
    }

    #[test]
    fn random_pages_differ_by_seed() {
        let mut a = Run::new(Work::new(MIB, MIB, Pattern::Random, None, 1));
        let mut b = Run::new(Work::new(MIB, MIB, Pattern::Random, None, 2));
        a.warm_up();
        b.warm_up();
        a.step(0.0);
        b.step(0.0);
        assert_ne!(a.writes.last(), b.writes.last());
    }

    #[test]
    fn once_writes_the_share_once_then_idles() {
        let share = 2 * MIB;
        let mut run = Run::new(Work::new(share, 0, Pattern::Once, Some(1e6), 1));
        run.warm_up();
        let written: u64 = run.writes.iter().map(|w| w.1).sum();
        assert_eq!(written, share);
        for t in [0.0, 1e3, 1e9] {
            assert_eq!(run.step(t), Step::Idle);
        }
        assert_eq!(run.meter.total_bytes(), share);
    }

    #[test]
    fn paced_writes_start_after_the_first_pass_and_follow_the_rate() {
        let (share, rate) = (4 * MIB, 8_192_000.0); // 4 pages per 2 ms tick
        let mut run = Run::new(Work::new(share, MIB, Pattern::Seq, Some(rate), 1));
        // The first pass ignores the rate: all of it at t = 0.
        let steps = run.warm_up();
        assert_eq!(steps as u64, share / CHECK_BYTES);
        // Then 16 KiB chunks, each due 2 ms after the previous.
        let mut t = 100.0;
        let mut due = Vec::new();
        for _ in 0..10 {
            match run.step(t) {
                Step::Wrote { bytes, .. } => assert_eq!(bytes, 16 * KIB),
                Step::WaitUntil(at) => {
                    due.push(at);
                    t = at;
                    assert!(matches!(run.step(t), Step::Wrote { .. }));
                }
                Step::Idle => panic!("seq never idles"),
            }
        }
        let tick = 16.0 * 1024.0 / rate * 1000.0;
        for (i, at) in due.iter().enumerate() {
            assert!(
                (at - (100.0 + (i + 1) as f64 * tick)).abs() < 1e-9,
                "{due:?}"
            );
        }
        // A thread far behind makes up at most MAX_LAG_MS worth before waiting again.
        let mut caught_up = 0;
        while let Step::Wrote { bytes, .. } = run.step(t + 1000.0) {
            caught_up += bytes;
        }
        let lag_bytes = rate * MAX_LAG_MS / 1000.0;
        assert!(
            (caught_up as f64 - lag_bytes).abs() <= (16 * KIB) as f64,
            "{caught_up}"
        );
    }

    #[test]
    fn pieces_never_cross_a_gb() {
        // A 96 MiB working set in random and sequential patterns: GB lines stay exact.
        for pattern in [Pattern::Seq, Pattern::Random] {
            let mut run = Run::new(Work::new(96 * MIB, 96 * MIB, pattern, None, 3));
            run.meter = Meter::new(0.0, 0.0);
            let mut gbs = 0;
            while run.meter.total_bytes() < 3 * GB {
                let before = run.meter.total_bytes();
                if let Step::Wrote { bytes, .. } = run.step(0.0) {
                    assert!(before / GB == (before + bytes - 1) / GB, "{pattern}");
                    gbs = run.meter.total_bytes() / GB;
                }
            }
            assert_eq!(gbs, 3);
        }
    }

    #[test]
    fn below_maps_onto_the_range() {
        assert_eq!(below(u64::MAX, 10), 9);
        assert_eq!(below(0, 10), 0);
    }
}
