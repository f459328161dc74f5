//! Live progress on stderr: which run, how many are left, elapsed time and an estimate.
//!
//! On a terminal a status line is kept at the bottom and redrawn every second; the stages'
//! stderr lines scroll above it. Anywhere else (a log file, CI) each run gets a start and a
//! finish line and nothing is redrawn.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Sender};

use gp_stage::status::StatusLine;

use crate::pipeline::StderrSink;

/// The progress display. Also the sink for the stages' stderr, so their lines and the status
/// line do not trample each other.
pub struct Progress {
    state: Mutex<State>,
    fancy: bool,
    start: Instant,
    line: Mutex<StatusLine>,
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Progress")
            .field("fancy", &self.fancy)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Default)]
struct State {
    total: usize,
    started: usize,
    finished: usize,
    current: Option<(String, Instant)>,
    durations: Vec<Duration>,
}

/// Stops the redraw thread when dropped.
#[derive(Debug)]
pub struct Ticker {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Progress {
    /// A display for `total` runs on `out`; `fancy` redraws a status line (use it only when
    /// `out` is a terminal).
    pub fn new(total: usize, fancy: bool, out: Box<dyn Write + Send>) -> Arc<Self> {
        Progress::on(total, StatusLine::new(out, fancy))
    }

    /// On our stderr, fancy when it is a terminal (and `TERM` is not `dumb`).
    pub fn stderr(total: usize) -> Arc<Self> {
        Progress::on(total, StatusLine::stderr())
    }

    fn on(total: usize, line: StatusLine) -> Arc<Self> {
        Arc::new(Progress {
            state: Mutex::new(State {
                total,
                ..Default::default()
            }),
            fancy: line.is_live(),
            start: Instant::now(),
            line: Mutex::new(line),
        })
    }

    /// Redraws the status line every second until the returned ticker is dropped.
    pub fn ticker(self: &Arc<Self>) -> Ticker {
        if !self.fancy {
            return Ticker {
                stop: None,
                thread: None,
            };
        }
        let (tx, rx) = bounded::<()>(0);
        let me = Arc::clone(self);
        let thread = thread::Builder::new()
            .name("progress".into())
            .spawn(move || {
                while rx
                    .recv_timeout(Duration::from_secs(1))
                    .is_err_and(|e| e.is_timeout())
                {
                    me.redraw();
                }
                me.clear();
            })
            .ok();
        Ticker {
            stop: Some(tx),
            thread,
        }
    }

    /// A run starts.
    pub fn start_run(&self, label: &str) {
        let line = {
            let mut st = self.state.lock().unwrap();
            st.started += 1;
            st.current = Some((label.to_string(), Instant::now()));
            format!(
                "gp-batch: [{}/{}] {label}: running ({} left after this, elapsed {}{})",
                st.started,
                st.total,
                st.total - st.started,
                fmt_duration(self.start.elapsed()),
                eta(&st)
                    .map(|e| format!(", about {} to go", fmt_duration(e)))
                    .unwrap_or_default()
            )
        };
        if self.fancy {
            self.redraw();
        } else {
            self.println(&line);
        }
    }

    /// The current run ended; `what` says how (`completed in 12.3 s`, `failed: ...`).
    pub fn finish_run(&self, label: &str, what: &str) {
        let (n, total) = {
            let mut st = self.state.lock().unwrap();
            st.finished += 1;
            if let Some((_, t)) = st.current.take() {
                st.durations.push(t.elapsed());
            }
            (st.started, st.total)
        };
        self.println(&format!("gp-batch: [{n}/{total}] {label}: {what}"));
    }

    /// `n` planned runs will not happen after all.
    pub fn forget_runs(&self, n: usize) {
        let mut st = self.state.lock().unwrap();
        st.total = st.total.saturating_sub(n).max(st.started);
    }

    /// A line of its own (a skip, a note).
    pub fn note(&self, text: &str) {
        self.println(&format!("gp-batch: {text}"));
    }

    /// The status line's text.
    pub fn status(&self) -> String {
        let st = self.state.lock().unwrap();
        let mut s = format!(
            "[{}/{}] elapsed {}",
            st.started.max(st.finished),
            st.total,
            fmt_duration(self.start.elapsed())
        );
        if let Some((label, t)) = &st.current {
            s.push_str(&format!(" · {label} {}", fmt_duration(t.elapsed())));
        }
        s.push_str(&format!(" · {} left", st.total - st.finished));
        if let Some(e) = eta(&st) {
            s.push_str(&format!(" · ~{} to go", fmt_duration(e)));
        }
        s
    }

    fn println(&self, line: &str) {
        self.line.lock().unwrap().println(line);
        if self.fancy {
            self.redraw();
        }
    }

    fn redraw(&self) {
        if self.fancy {
            let text = self.status();
            self.line.lock().unwrap().show(&text);
        }
    }

    fn clear(&self) {
        self.line.lock().unwrap().clear();
    }
}

impl StderrSink for Progress {
    fn line(&self, _stage: &str, line: &[u8]) {
        let text = String::from_utf8_lossy(line);
        self.println(text.trim_end_matches('\n'));
    }
}

/// Mean time per finished run times the runs left, once one has finished.
fn eta(st: &State) -> Option<Duration> {
    if st.durations.is_empty() {
        return None;
    }
    let mean = st.durations.iter().sum::<Duration>() / st.durations.len() as u32;
    let left = st.total.saturating_sub(st.finished);
    let current = st
        .current
        .as_ref()
        .map(|(_, t)| t.elapsed())
        .unwrap_or_default();
    Some((mean * left as u32).saturating_sub(current))
}

/// `45s`, `3m05s`, `1h02m`.
pub fn fmt_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s < 60 {
        format!("{s}s")
    } else if s < 3600 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{}h{:02}m", s / 3600, s % 3600 / 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use gp_testkit::SharedBuf as Buf;

    #[test]
    fn plain_output_is_one_line_per_event_without_escapes() {
        let buf = Buf::default();
        let p = Progress::new(3, false, Box::new(buf.clone()));
        let _t = p.ticker();
        p.start_run("c/s-1");
        p.line("gp-launch", b"gp-launch: warning: something\n");
        p.finish_run("c/s-1", "completed in 1.0 s");
        p.start_run("c/s-2");
        let text = buf.text();
        assert!(!text.contains('\x1b') && !text.contains('\r'), "{text:?}");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert!(
            lines[0].starts_with("gp-batch: [1/3] c/s-1: running (2 left after this, elapsed 0s")
        );
        assert_eq!(lines[1], "gp-launch: warning: something");
        assert_eq!(lines[2], "gp-batch: [1/3] c/s-1: completed in 1.0 s");
        assert!(
            lines[3].contains("about"),
            "an estimate once a run has finished: {}",
            lines[3]
        );
    }

    #[test]
    fn fancy_output_keeps_a_status_line_below_the_log() {
        let buf = Buf::default();
        let p = Progress::new(2, true, Box::new(buf.clone()));
        p.start_run("c/s-1");
        p.line("gp-migrate", b"gp-migrate: note\n");
        let text = buf.text();
        assert!(
            text.contains("\r\x1b[2K[1/2] elapsed 0s · c/s-1 0s · 2 left"),
            "{text:?}"
        );
        // The stage line clears the status line first and redraws it after.
        assert!(
            text.contains("\r\x1b[2Kgp-migrate: note\n\r\x1b[2K[1/2]"),
            "{text:?}"
        );
    }

    #[test]
    fn durations() {
        assert_eq!(fmt_duration(Duration::from_secs(45)), "45s");
        assert_eq!(fmt_duration(Duration::from_secs(185)), "3m05s");
        assert_eq!(fmt_duration(Duration::from_secs(3720)), "1h02m");
    }
}
