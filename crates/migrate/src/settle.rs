//! When the source's workload has settled: every thread warm (its first pass over its share
//! done), then its rate steady. A pure tracker fed with the source's workload records; the
//! engine waits on it and writes what it found into the `scenario` record's `settle`.
//!
//! The rate is measured on the guest's own clock (`guest_progress.guest_time_ms`, the end of
//! each chunk, and `elapsed_ms`, its length), so the batching of console lines on their way to
//! the host does not make it look unsteady. Each chunk is spread evenly over its interval and
//! cut into windows of [`Rule::window_ms`] starting when the last thread became warm; a window
//! counts once every thread has reported past its end, so a stalled thread lowers the rate of
//! the windows its stall covers instead of being missed.

use gp_records::migrate::Settle;
use gp_records::{stats, GuestProgress, GuestStart, GuestWarm};

/// What "steady" means.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// Window length, guest ms.
    pub window_ms: f64,
    /// How many of the last windows must agree.
    pub windows: usize,
    /// How far each may be from their median, as a share of it.
    pub tolerance: f64,
    /// Longest wait for a steady rate after every thread is warm, seconds.
    pub max_s: f64,
}

impl Rule {
    /// The default rule with `max_s` as its cap.
    pub fn with_cap(max_s: f64) -> Rule {
        Rule {
            window_ms: 500.0,
            windows: 5,
            tolerance: 0.10,
            max_s,
        }
    }

    /// In words, for the records: `the last 5 windows of 500 ms within 10% of their median, at
    /// most 60 s`.
    pub fn describe(&self) -> String {
        format!(
            "the last {} windows of {} ms within {}% of their median, at most {} s",
            self.windows,
            self.window_ms,
            self.tolerance * 100.0,
            self.max_s
        )
    }

    /// Whether these window rates (oldest first) end steady.
    pub fn steady(&self, rates: &[f64]) -> bool {
        if rates.len() < self.windows {
            return false;
        }
        let mut last = rates[rates.len() - self.windows..].to_vec();
        let Some(median) = stats::median(&mut last) else {
            return false;
        };
        last.iter()
            .all(|r| (r - median).abs() <= self.tolerance * median.abs())
    }
}

/// One chunk of one thread after warm: its interval on the guest clock and its bytes.
#[derive(Debug, Clone, Copy)]
struct Chunk {
    start_ms: f64,
    end_ms: f64,
    bytes: f64,
}

/// The source workload as its records tell it.
#[derive(Debug, Clone)]
pub struct Tracker {
    rule: Rule,
    /// Host time of the first workload record.
    first_s: Option<f64>,
    /// From the workload's start line; `None` for a workload without one (the original stress).
    threads: Option<usize>,
    ram_bytes: u64,
    /// Per thread: bytes touched so far, and the host time of its warm record.
    touched: Vec<u64>,
    warm_s: Vec<Option<f64>>,
    /// Guest time every thread was warm (the last warm line's), where the windows start.
    warm_guest_ms: Option<f64>,
    /// Per thread, the chunks after warm not yet wholly in a closed window.
    chunks: Vec<Vec<Chunk>>,
    /// Per thread, the end of its last chunk (guest ms).
    reported_ms: Vec<f64>,
    /// Rates of the closed windows, bytes per second, oldest first.
    rates: Vec<f64>,
    /// Host time the rate was first found steady.
    steady_s: Option<f64>,
}

impl Tracker {
    pub fn new(rule: Rule) -> Tracker {
        Tracker {
            rule,
            first_s: None,
            threads: None,
            ram_bytes: 0,
            touched: Vec::new(),
            warm_s: Vec::new(),
            warm_guest_ms: None,
            chunks: Vec::new(),
            reported_ms: Vec::new(),
            rates: Vec::new(),
            steady_s: None,
        }
    }

    pub fn rule(&self) -> &Rule {
        &self.rule
    }

    fn first(&mut self, time_s: f64) {
        self.first_s.get_or_insert(time_s);
    }

    /// Host time of the first workload record.
    pub fn first_s(&self) -> Option<f64> {
        self.first_s
    }

    /// A workload record without warmth or progress (the original stress's per-GB line).
    pub fn other(&mut self, time_s: f64) {
        self.first(time_s);
    }

    pub fn start(&mut self, g: &GuestStart) {
        self.first(g.time_s);
        if self.threads.is_some() {
            return;
        }
        let n = g.threads.max(1) as usize;
        self.threads = Some(n);
        self.ram_bytes = g.ram_bytes;
        self.touched = vec![0; n];
        self.warm_s = vec![None; n];
        self.chunks = vec![Vec::new(); n];
        self.reported_ms = vec![f64::NEG_INFINITY; n];
    }

    pub fn warm(&mut self, w: &GuestWarm) {
        self.first(w.time_s);
        let t = w.thread as usize;
        if t >= self.warm_s.len() || self.warm_s[t].is_some() {
            return;
        }
        self.warm_s[t] = Some(w.time_s);
        self.touched[t] = w.touched_bytes;
        if self.all_warm() {
            self.warm_guest_ms = Some(w.guest_time_ms);
        }
    }

    pub fn progress(&mut self, p: &GuestProgress) {
        self.first(p.time_s);
        let t = p.thread as usize;
        if t >= self.touched.len() {
            return;
        }
        if let Some(b) = p.touched_bytes {
            self.touched[t] = self.touched[t].max(b);
        }
        if p.touched_bytes.is_some() || self.warm_guest_ms.is_none() {
            return;
        }
        self.chunks[t].push(Chunk {
            start_ms: p.guest_time_ms - p.elapsed_ms.max(0.0),
            end_ms: p.guest_time_ms,
            bytes: p.bytes as f64,
        });
        self.reported_ms[t] = self.reported_ms[t].max(p.guest_time_ms);
        self.close_windows();
        if self.steady_s.is_none() && self.rule.steady(&self.rates) {
            self.steady_s = Some(p.time_s);
        }
    }

    /// Closes every window all threads have reported past.
    fn close_windows(&mut self) {
        let Some(origin) = self.warm_guest_ms else {
            return;
        };
        let reported = self
            .reported_ms
            .iter()
            .copied()
            .fold(f64::INFINITY, f64::min);
        let w = self.rule.window_ms;
        loop {
            let start = origin + self.rates.len() as f64 * w;
            let end = start + w;
            if reported < end {
                return;
            }
            let mut bytes = 0.0;
            for chunks in &mut self.chunks {
                for c in chunks.iter() {
                    let overlap = c.end_ms.min(end) - c.start_ms.max(start);
                    if overlap > 0.0 {
                        let len = c.end_ms - c.start_ms;
                        bytes += if len > 0.0 {
                            c.bytes * overlap / len
                        } else {
                            c.bytes
                        };
                    }
                }
                chunks.retain(|c| c.end_ms > end);
            }
            self.rates.push(bytes * 1000.0 / w);
        }
    }

    /// Whether the workload has a start line: it reports warmth and progress.
    pub fn knows_warmth(&self) -> bool {
        self.threads.is_some()
    }

    pub fn all_warm(&self) -> bool {
        !self.warm_s.is_empty() && self.warm_s.iter().all(Option::is_some)
    }

    /// Host time the last thread became warm.
    pub fn warm_at(&self) -> Option<f64> {
        if !self.all_warm() {
            return None;
        }
        self.warm_s.iter().flatten().copied().reduce(f64::max)
    }

    pub fn steady_at(&self) -> Option<f64> {
        self.steady_s
    }

    /// Rates of the closed windows so far, bytes per second.
    pub fn rates(&self) -> &[f64] {
        &self.rates
    }

    /// The share of the workload's memory touched at least once, 0 to 1.
    pub fn touched_share(&self) -> Option<f64> {
        if self.ram_bytes == 0 {
            return None;
        }
        let touched: u64 = self.touched.iter().sum();
        Some((touched as f64 / self.ram_bytes as f64).min(1.0))
    }

    /// The `settle` record for a wait that ended at host time `now_s`.
    pub fn record(&self, criterion: &str, now_s: f64) -> Settle {
        let since = |t: Option<f64>| match (t, self.first_s) {
            (Some(t), Some(first)) => Some(round_ms(t - first)),
            _ => None,
        };
        let asked = criterion == CRITERION_WARM_STEADY;
        Settle {
            criterion: criterion.to_string(),
            rule: if asked {
                self.rule.describe()
            } else {
                String::new()
            },
            warm_s: if asked { since(self.warm_at()) } else { None },
            steady_s: if asked { since(self.steady_s) } else { None },
            steady: asked && self.steady_s.is_some(),
            waited_s: since(Some(now_s)).unwrap_or(0.0).max(0.0),
            touched_share: self.touched_share(),
        }
    }
}

/// The criterion names of `Settle::criterion`.
pub const CRITERION_WARM_STEADY: &str = "warm+steady";
pub const CRITERION_SLEEP: &str = "sleep";
pub const CRITERION_NONE: &str = "none";

fn round_ms(s: f64) -> f64 {
    (s * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use gp_records::stress::Pattern;
    use gp_records::Role;

    fn start(threads: u32, ram: u64) -> GuestStart {
        GuestStart {
            time_s: 100.0,
            role: Role::Src,
            threads,
            ram_bytes: ram,
            grain_ms: 50.0,
            guest_time_ms: 0.0,
            boot_ms: None,
            pattern: Pattern::default(),
            wss_bytes: None,
            dirty_rate_bytes_per_s: None,
        }
    }

    fn progress(
        thread: u32,
        end_ms: f64,
        elapsed: f64,
        bytes: u64,
        touched: Option<u64>,
    ) -> GuestProgress {
        GuestProgress {
            time_s: 100.0 + end_ms / 1000.0,
            role: Role::Src,
            thread,
            guest_time_ms: end_ms,
            bytes,
            elapsed_ms: elapsed,
            touched_bytes: touched,
        }
    }

    fn warm(thread: u32, at_ms: f64, touched: u64) -> GuestWarm {
        GuestWarm {
            time_s: 100.0 + at_ms / 1000.0,
            role: Role::Src,
            thread,
            guest_time_ms: at_ms,
            elapsed_ms: at_ms,
            touched_bytes: touched,
        }
    }

    #[test]
    fn the_rule_in_words_and_numbers() {
        let r = Rule::with_cap(60.0);
        assert_eq!(
            r.describe(),
            "the last 5 windows of 500 ms within 10% of their median, at most 60 s"
        );
        assert!(!r.steady(&[100.0; 4]));
        assert!(r.steady(&[5.0, 100.0, 95.0, 105.0, 100.0, 91.0]));
        assert!(!r.steady(&[100.0, 95.0, 105.0, 100.0, 80.0]));
        // An idle workload is steady at 0.
        assert!(r.steady(&[0.0; 5]));
    }

    #[test]
    fn warm_when_every_thread_has_touched_its_share() {
        let mut t = Tracker::new(Rule::with_cap(60.0));
        t.start(&start(2, 200));
        assert_eq!(t.touched_share(), Some(0.0));
        t.progress(&progress(0, 100.0, 100.0, 50, Some(50)));
        t.progress(&progress(1, 100.0, 100.0, 30, Some(30)));
        assert_eq!(t.touched_share(), Some(0.4));
        t.warm(&warm(0, 200.0, 100));
        assert!(!t.all_warm());
        t.warm(&warm(1, 300.0, 100));
        assert!(t.all_warm());
        assert_eq!(t.touched_share(), Some(1.0));
        let s = t.record(CRITERION_WARM_STEADY, 100.5);
        assert_eq!(s.warm_s, Some(0.3));
        assert_eq!(s.waited_s, 0.5);
        assert!(!s.steady);
    }

    #[test]
    fn steady_after_enough_even_windows_and_a_stall_shows() {
        let mut t = Tracker::new(Rule::with_cap(60.0));
        t.start(&start(2, 2000));
        t.warm(&warm(0, 0.0, 1000));
        t.warm(&warm(1, 0.0, 1000));
        // 100 bytes per 50 ms chunk each: 4000 B/s together; thread 1 stalls 600..1300 ms.
        let mut end = 50.0;
        while end <= 1200.0 {
            t.progress(&progress(0, end, 50.0, 100, None));
            if !(600.0..1300.0).contains(&end) && end <= 600.0 {
                t.progress(&progress(1, end, 50.0, 100, None));
            }
            end += 50.0;
        }
        // Thread 1 has reported up to 600 ms: one window closed.
        assert_eq!(t.rates().len(), 1);
        // Its stalled chunk: 100 bytes over 700 ms.
        t.progress(&progress(1, 1300.0, 700.0, 100, None));
        assert_eq!(t.rates().len(), 2);
        assert!((t.rates()[0] - 4000.0).abs() < 1e-6, "{:?}", t.rates());
        assert!(t.rates()[1] < 3000.0, "{:?}", t.rates());
        assert!(t.steady_at().is_none());
        let mut end = 1250.0;
        while t.steady_at().is_none() && end < 10_000.0 {
            t.progress(&progress(0, end, 50.0, 100, None));
            if end > 1300.0 {
                t.progress(&progress(1, end, 50.0, 100, None));
            }
            end += 50.0;
        }
        // Five whole windows after the stall: 1500..4000 ms, steady when 4000 ms is reported.
        assert_eq!(t.steady_at(), Some(100.0 + 4.0));
        let s = t.record(CRITERION_WARM_STEADY, 104.5);
        assert_eq!(
            (s.warm_s, s.steady_s, s.steady),
            (Some(0.0), Some(4.0), true)
        );
    }

    #[test]
    fn a_workload_without_a_start_line_knows_nothing_of_warmth() {
        let mut t = Tracker::new(Rule::with_cap(60.0));
        t.other(50.0);
        assert!(!t.knows_warmth());
        assert!(!t.all_warm());
        let s = t.record(CRITERION_SLEEP, 52.0);
        assert_eq!(s.criterion, "sleep");
        assert_eq!(s.rule, "");
        assert_eq!(s.waited_s, 2.0);
        assert_eq!(s.touched_share, None);
    }
}
