//! Turning serial console lines into records.
//!
//! Workload lines (`@gp ...`, or the original C stress program's per-GB line) become
//! `guest_start`, `guest_progress`, `guest_warm` and `guest_gb`; every other non-empty line
//! becomes a `console` record, so nothing the guest printed is lost. Each record carries the
//! host arrival time of its line's first byte (see `gp_qemu::process` on console batching).
//! [`ConsoleParser::translate`] takes one line, however the bytes were read and batched.

use std::collections::{HashMap, VecDeque};

use gp_records::stress::{parse_console_line, ConsoleLine, StressLine, Workload};
use gp_records::{Console, GuestGb, GuestProgress, GuestStart, GuestWarm, Record, Role};

/// How many recent console lines are kept per VM for error messages.
pub const TAIL_LINES: usize = 20;

/// Per-run console state: the first workload line of each VM, and thread numbers for the
/// original stress program (which prints only thread ids; the guest, and so the ids, move with
/// the migration, hence one map for both VMs).
#[derive(Debug, Default)]
pub struct ConsoleParser {
    started: HashMap<Role, bool>,
    original_threads: HashMap<u32, u32>,
    tails: HashMap<Role, VecDeque<String>>,
}

/// What a console line turned into.
#[derive(Debug, Clone, PartialEq)]
pub struct Translated {
    pub record: Record,
    /// This is the VM's first workload line.
    pub first_workload: bool,
    /// The workload reported a fatal error (`@gp fatal`): worth telling the user.
    pub fatal: bool,
}

impl ConsoleParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether a workload line has been seen from `role`.
    pub fn started(&self, role: Role) -> bool {
        self.started.get(&role).copied().unwrap_or(false)
    }

    /// The last [`TAIL_LINES`] lines `role` printed.
    pub fn tail(&self, role: Role) -> Vec<String> {
        self.tails
            .get(&role)
            .map(|t| t.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Translates one line; `None` for an empty line. `spawned_s` is when the VM's QEMU was
    /// spawned (for `boot_ms`).
    pub fn translate(
        &mut self,
        role: Role,
        line: &str,
        time_s: f64,
        spawned_s: f64,
    ) -> Option<Translated> {
        let line = line.trim_end_matches(['\r', '\n']);
        if line.trim().is_empty() {
            return None;
        }
        let tail = self.tails.entry(role).or_default();
        if tail.len() == TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(line.to_string());

        let mut fatal = false;
        let record = match parse_console_line(line) {
            ConsoleLine::Stress(StressLine::Start {
                threads,
                ram_bytes,
                grain_ms,
                guest_ms,
                workload,
            }) => {
                let first = !self.started(role);
                // A start line without workload fields is the default workload.
                let w = workload.unwrap_or(Workload::default_for(ram_bytes));
                Record::GuestStart(GuestStart {
                    time_s,
                    role,
                    threads,
                    ram_bytes,
                    grain_ms,
                    guest_time_ms: guest_ms,
                    boot_ms: first.then(|| ((time_s - spawned_s) * 1000.0).max(0.0)),
                    pattern: w.pattern,
                    wss_bytes: Some(w.wss_bytes),
                    dirty_rate_bytes_per_s: w.dirty_rate_bytes_per_s,
                })
            }
            ConsoleLine::Stress(StressLine::Progress {
                thread,
                guest_ms,
                bytes,
                elapsed_ms,
                touched_bytes,
            }) => Record::GuestProgress(GuestProgress {
                time_s,
                role,
                thread,
                guest_time_ms: guest_ms,
                bytes,
                elapsed_ms,
                touched_bytes,
            }),
            ConsoleLine::Stress(StressLine::Warm {
                thread,
                guest_ms,
                elapsed_ms,
                touched_bytes,
            }) => Record::GuestWarm(GuestWarm {
                time_s,
                role,
                thread,
                guest_time_ms: guest_ms,
                elapsed_ms,
                touched_bytes,
            }),
            ConsoleLine::Stress(StressLine::Gb {
                thread,
                tid,
                guest_ms,
                elapsed_ms,
            }) => Record::GuestGb(GuestGb {
                time_s,
                role,
                thread,
                tid: Some(tid),
                guest_time_ms: guest_ms,
                elapsed_ms,
            }),
            ConsoleLine::OriginalGb {
                tid,
                guest_ms,
                elapsed_ms,
            } => {
                let next = self.original_threads.len() as u32;
                let thread = *self.original_threads.entry(tid).or_insert(next);
                Record::GuestGb(GuestGb {
                    time_s,
                    role,
                    thread,
                    tid: Some(tid),
                    guest_time_ms: guest_ms,
                    elapsed_ms,
                })
            }
            ConsoleLine::Stress(StressLine::Fatal { .. }) => {
                fatal = true;
                Record::Console(Console {
                    time_s,
                    role,
                    line: line.to_string(),
                })
            }
            ConsoleLine::Stress(StressLine::Done { .. }) | ConsoleLine::Other => {
                Record::Console(Console {
                    time_s,
                    role,
                    line: line.to_string(),
                })
            }
        };
        let workload = !matches!(record, Record::Console(_));
        let first_workload = workload && !self.started(role);
        if workload {
            self.started.insert(role, true);
        }
        Some(Translated {
            record,
            first_workload,
            fatal,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workload_lines_become_records() {
        let mut c = ConsoleParser::new();
        let t = c
            .translate(
                Role::Src,
                "[    0.5] Run /init as init process\r",
                10.0,
                9.0,
            )
            .unwrap();
        assert!(!t.first_workload);
        assert_eq!(
            t.record,
            Record::Console(Console {
                time_s: 10.0,
                role: Role::Src,
                line: "[    0.5] Run /init as init process".into()
            })
        );
        let t = c
            .translate(
                Role::Src,
                "@gp start 2 201326592 20 1764102436412.25",
                10.5,
                9.0,
            )
            .unwrap();
        assert!(t.first_workload);
        let Record::GuestStart(s) = t.record else {
            panic!()
        };
        assert_eq!(s.threads, 2);
        assert_eq!(s.boot_ms, Some(1500.0));
        let t = c
            .translate(
                Role::Src,
                "@gp p 1 1764102436440.5 6291456 20.375",
                10.6,
                9.0,
            )
            .unwrap();
        assert!(!t.first_workload);
        assert!(matches!(
            t.record,
            Record::GuestProgress(GuestProgress {
                thread: 1,
                bytes: 6291456,
                ..
            })
        ));
        assert!(c.translate(Role::Src, "\r", 10.7, 9.0).is_none());
        assert!(c.started(Role::Src) && !c.started(Role::Dst));
    }

    #[test]
    fn workload_and_first_pass_lines_become_records() {
        let mut c = ConsoleParser::new();
        let start = |c: &mut ConsoleParser, line: &str| match c
            .translate(Role::Src, line, 10.5, 9.0)
            .unwrap()
            .record
        {
            Record::GuestStart(s) => s,
            other => panic!("{other:?}"),
        };
        // The original four fields: the default workload, stated in the record.
        let s = start(&mut c, "@gp start 2 201326592 30 1764102436412.25");
        assert_eq!(s.pattern, gp_records::stress::Pattern::Seq);
        assert_eq!(
            (s.wss_bytes, s.dirty_rate_bytes_per_s),
            (Some(201326592), None)
        );
        let s = start(
            &mut c,
            "@gp start 2 201326592 30 1764102436412.25 random 100663296 33554432",
        );
        assert_eq!(s.pattern, gp_records::stress::Pattern::Random);
        assert_eq!(
            (s.wss_bytes, s.dirty_rate_bytes_per_s),
            (Some(100663296), Some(33554432))
        );
        let s = start(&mut c, "@gp start 1 1048576 30 1.0 once 0 0");
        assert_eq!(s.pattern, gp_records::stress::Pattern::Once);
        assert_eq!((s.wss_bytes, s.dirty_rate_bytes_per_s), (Some(0), None));

        let t = c
            .translate(
                Role::Src,
                "@gp p 1 1764102436440.5 6291456 30.125 6291456",
                10.6,
                9.0,
            )
            .unwrap();
        assert!(matches!(
            t.record,
            Record::GuestProgress(GuestProgress {
                thread: 1,
                touched_bytes: Some(6291456),
                ..
            })
        ));
        let t = c
            .translate(
                Role::Src,
                "@gp warm 1 1764102437000.5 588.25 100663296",
                11.1,
                9.0,
            )
            .unwrap();
        assert_eq!(
            t.record,
            Record::GuestWarm(GuestWarm {
                time_s: 11.1,
                role: Role::Src,
                thread: 1,
                guest_time_ms: 1764102437000.5,
                elapsed_ms: 588.25,
                touched_bytes: 100663296,
            })
        );
        assert!(!t.fatal);
    }

    #[test]
    fn original_stress_threads_are_numbered_across_roles() {
        let mut c = ConsoleParser::new();
        let line =
            |tid: u32| format!("stress ({tid:05}): INFO: 1469020993123ms copied 1 GB in 00812ms");
        let thread_of = |c: &mut ConsoleParser, role, tid| match c
            .translate(role, &line(tid), 1.0, 0.0)
            .unwrap()
            .record
        {
            Record::GuestGb(g) => (g.thread, g.tid),
            other => panic!("{other:?}"),
        };
        assert_eq!(thread_of(&mut c, Role::Src, 77), (0, Some(77)));
        assert_eq!(thread_of(&mut c, Role::Src, 78), (1, Some(78)));
        assert_eq!(thread_of(&mut c, Role::Dst, 78), (1, Some(78)));
    }

    #[test]
    fn fatal_and_garbled_lines_are_kept_as_console() {
        let mut c = ConsoleParser::new();
        let t = c
            .translate(Role::Src, "@gp fatal mmap failed", 1.0, 0.0)
            .unwrap();
        assert!(t.fatal);
        assert!(matches!(t.record, Record::Console(_)));
        let t = c
            .translate(Role::Src, "@gp p 0 12.0 4096 [ 3.2] kernel", 1.0, 0.0)
            .unwrap();
        assert!(matches!(t.record, Record::Console(_)));
        assert!(!c.started(Role::Src));
        assert_eq!(c.tail(Role::Src).len(), 2);
    }
}
