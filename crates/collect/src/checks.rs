//! `summary.checks` and the trusted figures: QEMU's total time and downtime against the event
//! timeline, the tracepoints and the guest-observed stall.

use gp_records::report::{Check, DowntimeBreakdown, Extended, GuestStall, MigrationMode};
use gp_records::{QmpEvent, Role};

use crate::breakdown::clock_offset;
use crate::mode::when;

/// Tolerances, ms: QEMU's figures are whole ms and its boundaries differ slightly from the
/// events' (total time starts at `migrate`, before the `setup` event; downtime ends on the
/// source before the destination's RESUME), so a fixed part plus a share of the figure.
pub const TOTAL_TOLERANCE_MS: f64 = 5.0;
pub const TOTAL_TOLERANCE_SHARE: f64 = 0.05;
pub const DOWNTIME_TOLERANCE_MS: f64 = 5.0;
pub const DOWNTIME_TOLERANCE_SHARE: f64 = 0.10;
/// QEMU's downtime is the whole-ms difference of the same clock the checkpoints read.
pub const TRACE_TOLERANCE_MS: f64 = 2.0;
/// The guest's view: up to two chunks lost around the stall, plus console latency.
pub const STALL_SLACK_MS: f64 = 20.0;

/// What the checks conclude.
#[derive(Debug, Default)]
pub struct Verdict {
    pub checks: Vec<Check>,
    pub total_ms: Option<f64>,
    pub total_source: Option<String>,
    pub downtime_ms: Option<f64>,
    pub downtime_source: Option<String>,
}

/// The event timeline: `(total, downtime)` in ms, each with what it spans.
struct Timeline {
    total: Option<(f64, &'static str)>,
    downtime: Option<(f64, &'static str)>,
}

const EV_TOTAL: &str = "events: MIGRATION setup to completed (src)";
const EV_DOWNTIME: &str = "events: STOP (src) to RESUME (dst)";
const TRACE_WINDOW: &str = "tracepoints: src-downtime-start to src-downtime-end";
const STALL: &str = "guest: longest gap in workload progress";

fn timeline(ext: &Extended, start_s: Option<f64>) -> Timeline {
    let src_status = |status: &str| {
        ext.events
            .iter()
            .find(|e| e.role == Role::Src && e.event == "MIGRATION" && has_status(e, status))
    };
    let setup = src_status("setup");
    let total = match (setup, src_status("completed")) {
        (Some(a), Some(b)) if when(b) >= when(a) => Some((ms(when(b) - when(a)), EV_TOTAL)),
        _ => None,
    };
    let from = setup.map(when).or(start_s).unwrap_or(f64::NEG_INFINITY) - 0.001;
    let stop = ext
        .events
        .iter()
        .find(|e| e.role == Role::Src && e.event == "STOP" && when(e) >= from);
    let dst_offset = clock_offset(ext, Role::Dst);
    let downtime = stop.and_then(|s| {
        let resume = ext.events.iter().find(|e| {
            e.role == Role::Dst && e.event == "RESUME" && when(e) - dst_offset >= when(s)
        })?;
        Some((ms(when(resume) - dst_offset - when(s)), EV_DOWNTIME))
    });
    Timeline { total, downtime }
}

fn has_status(e: &QmpEvent, status: &str) -> bool {
    e.data.get("status").and_then(|s| s.as_str()) == Some(status)
}

fn ms(s: f64) -> f64 {
    (s * 1e6).round() / 1e3
}

fn check(figure: &str, qemu: f64, against: &str, other: f64, tolerance: f64) -> Check {
    let difference_ms = ((other - qemu) * 1e3).round() / 1e3;
    Check {
        figure: figure.into(),
        qemu_ms: qemu,
        against: against.into(),
        against_ms: other,
        difference_ms,
        tolerance_ms: (tolerance * 1e3).round() / 1e3,
        agree: difference_ms.abs() <= tolerance,
        note: None,
    }
}

/// Compares QEMU's figures with the others and picks the ones to trust.
#[allow(clippy::too_many_arguments)]
pub fn verdict(
    ext: &Extended,
    start_s: Option<f64>,
    completed: bool,
    qemu_total_ms: Option<u64>,
    qemu_downtime_ms: Option<u64>,
    mode: Option<&MigrationMode>,
    breakdown: Option<&DowntimeBreakdown>,
    stall: Option<&GuestStall>,
    notes: &mut Vec<String>,
) -> Verdict {
    let mut v = Verdict::default();
    let tl = timeline(ext, start_s);
    let paused = mode.is_some_and(|m| m.reached.starts_with("paused"));
    let postcopy = mode.is_some_and(|m| m.reached == "post-copy");

    let qt = qemu_total_ms.map(|t| t as f64);
    let total_check = check_total(qt, tl.total, completed);
    (v.total_ms, v.total_source) = trusted_total(total_check.as_ref(), qt, tl.total, completed);
    v.checks.extend(total_check);

    let downtime = Downtime {
        qemu: qemu_downtime_ms.map(|d| d as f64),
        events: tl.downtime,
        window: breakdown.and_then(|b| b.qemu_window_ms),
        paused,
        postcopy,
        completed,
    };
    let (checks, disagree) = downtime.checks(stall);
    v.checks.extend(checks);
    (v.downtime_ms, v.downtime_source) = downtime.trusted(disagree);

    // The stall's note said QEMU's figure is what the migration cost: not when it is not
    // trusted.
    if !v
        .downtime_source
        .as_deref()
        .is_some_and(|s| s.starts_with("qemu"))
    {
        for c in v.checks.iter_mut().filter(|c| c.against == STALL) {
            if let Some(n) = c.note.as_mut() {
                if let Some(i) = n.find("; QEMU's figure is what the migration itself cost") {
                    n.truncate(i);
                    n.push_str("; QEMU's figure is not trusted (see the other checks)");
                }
            }
        }
    }
    notes.extend(disagreements(&v, paused));
    v
}

/// QEMU's total time against the events', for a completed migration.
fn check_total(qemu: Option<f64>, events: Option<(f64, &str)>, completed: bool) -> Option<Check> {
    let (Some(q), Some((e, what)), true) = (qemu, events, completed) else {
        return None;
    };
    let tol = TOTAL_TOLERANCE_MS + TOTAL_TOLERANCE_SHARE * q.max(e);
    let mut c = check("total_time", q, what, e, tol);
    if !c.agree {
        c.note = Some(format!(
            "QEMU's total-time ({q} ms) and the events ({e} ms) disagree beyond {:.0} ms: the \
             events are trusted (QEMU's own timestamps of the migration's first and last status)",
            c.tolerance_ms
        ));
    }
    Some(c)
}

/// The total time to trust and where it comes from: QEMU's unless the events disagree, the
/// events' when QEMU gave none.
fn trusted_total(
    check: Option<&Check>,
    qemu: Option<f64>,
    events: Option<(f64, &str)>,
    completed: bool,
) -> (Option<f64>, Option<String>) {
    match (check, qemu, events) {
        (Some(c), _, _) if !c.agree => (
            Some(c.against_ms),
            Some(format!("{EV_TOTAL} (QEMU's total-time disagrees)")),
        ),
        (_, Some(q), _) => (Some(q), Some("qemu: total-time".to_string())),
        (_, None, Some((e, what))) if completed => {
            (Some(e), Some(format!("{what} (QEMU reported none)")))
        }
        _ => (None, None),
    }
}

/// The downtime figures there are, ms, and what the migration reached.
struct Downtime {
    /// QEMU's `downtime`.
    qemu: Option<f64>,
    /// The events' STOP (src) to RESUME (dst), with what it spans.
    events: Option<(f64, &'static str)>,
    /// QEMU's own tracepoints' window.
    window: Option<f64>,
    paused: bool,
    postcopy: bool,
    completed: bool,
}

/// Which of the downtime checks found QEMU's figure wrong.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Disagree {
    events: bool,
    tracepoints: bool,
}

impl Downtime {
    /// QEMU's downtime against the events, its tracepoints and the guest's stall.
    fn checks(&self, stall: Option<&GuestStall>) -> (Vec<Check>, Disagree) {
        let mut checks = Vec::new();
        let mut disagree = Disagree::default();
        let Some(q) = self.qemu else {
            return (checks, disagree);
        };
        if let Some((e, what)) = self.events {
            let tol = DOWNTIME_TOLERANCE_MS + DOWNTIME_TOLERANCE_SHARE * q.max(e);
            let mut c = check("downtime", q, what, e, tol);
            if self.paused {
                c.note = Some(
                    "the pause strategy stopped the guest at this STOP: QEMU's downtime counts \
                     only the final switchover, the events the whole pause"
                        .into(),
                );
            } else if !c.agree {
                disagree.events = true;
                c.note = Some(format!(
                    "the guest was stopped from STOP to RESUME for {e} ms, QEMU says {q} ms"
                ));
            }
            checks.push(c);
        }
        if let Some(w) = self.window {
            let mut c = check("downtime", q, TRACE_WINDOW, w, TRACE_TOLERANCE_MS);
            if !c.agree {
                disagree.tracepoints = true;
                c.note = Some(format!(
                    "QEMU's downtime ({q} ms) is not its own tracepoints' window ({w} ms)"
                ));
            }
            checks.push(c);
        }
        if let Some(s) = stall {
            checks.push(self.check_stall(q, s));
        }
        (checks, disagree)
    }

    /// QEMU's downtime against the guest's longest stall: it only informs, never decides.
    fn check_stall(&self, q: f64, s: &GuestStall) -> Check {
        let tol = 2.0 * s.typical_gap_ms.unwrap_or(0.0) + STALL_SLACK_MS;
        let mut c = check("downtime", q, STALL, s.stall_ms, tol);
        if !c.agree {
            c.note = Some(if s.stall_ms > q {
                let why = if self.postcopy {
                    "post-copy: the destination ran the guest while pages were still missing"
                } else if self.paused {
                    "the pause strategy stopped the guest before QEMU's downtime began"
                } else {
                    "the destination's start, the final transfer before QEMU's clock starts, or \
                     a busy host"
                };
                format!(
                    "the guest stalled {:.0} ms longer than QEMU's downtime ({why}); QEMU's \
                     figure is what the migration itself cost",
                    s.stall_ms - q
                )
            } else {
                format!(
                    "the guest stalled only {} ms, less than QEMU's downtime ({q} ms): QEMU's \
                     figure is suspect",
                    s.stall_ms
                )
            });
        }
        c
    }

    /// The downtime to trust and where it comes from: the events for a pause (QEMU counts only
    /// the final switchover); QEMU's tracepoints' window when QEMU's figure is not it; QEMU's
    /// figure unless the events disagree with no tracepoints to settle it (or it is 0 while the
    /// guest was seen stopped); else the events. A QEMU figure its own tracepoints confirm
    /// stands, even at 0.
    fn trusted(&self, disagree: Disagree) -> (Option<f64>, Option<String>) {
        let zero_but_stopped = self.qemu == Some(0.0)
            && self.window.is_none()
            && self.events.is_some_and(|(e, _)| e > DOWNTIME_TOLERANCE_MS);
        let qemu_stands = !(disagree.events && self.window.is_none() || zero_but_stopped);
        if let Some((e, what)) = self.events.filter(|_| self.paused) {
            (
                Some(e),
                Some(format!(
                    "{what}: the pause strategy stopped the guest, QEMU's downtime counts only \
                     the final switchover"
                )),
            )
        } else if disagree.tracepoints {
            (
                self.window,
                Some(format!(
                    "{TRACE_WINDOW} (QEMU's downtime disagrees with its own tracepoints)"
                )),
            )
        } else if let (Some(q), true) = (self.qemu, qemu_stands) {
            let why = if disagree.events {
                " (agrees with the tracepoints; the events disagree)"
            } else {
                ""
            };
            (Some(q), Some(format!("qemu: downtime{why}")))
        } else if let Some((e, what)) = self.events.filter(|_| self.completed || self.postcopy) {
            let why = if self.qemu.is_some() {
                "QEMU's downtime disagrees"
            } else {
                "QEMU reported none"
            };
            (Some(e), Some(format!("{what} ({why})")))
        } else {
            (self.qemu, self.qemu.map(|_| "qemu: downtime".to_string()))
        }
    }
}

/// A note for each check that found QEMU's figure wrong (the stall only informs; a pause's
/// events are expected to differ), saying which figure the report trusts instead.
fn disagreements(v: &Verdict, paused: bool) -> Vec<String> {
    v.checks
        .iter()
        .filter(|c| !c.agree && c.against != STALL && !(paused && c.against == EV_DOWNTIME))
        .map(|c| {
            let trusted = if c.figure == "total_time" {
                (v.total_ms, &v.total_source)
            } else {
                (v.downtime_ms, &v.downtime_source)
            };
            format!(
                "QEMU's {} ({} ms) and {} ({} ms) disagree beyond {} ms: the report trusts {} ms \
                 from {}",
                c.figure.replace('_', " "),
                c.qemu_ms,
                c.against,
                c.against_ms,
                c.tolerance_ms,
                trusted.0.map_or("no".into(), |t| t.to_string()),
                trusted.1.as_deref().unwrap_or("nothing")
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mode::tests::ev;

    #[test]
    fn the_trusted_downtime_follows_its_rules_in_order() {
        let base = Downtime {
            qemu: Some(40.0),
            events: Some((90.0, EV_DOWNTIME)),
            window: None,
            paused: false,
            postcopy: false,
            completed: true,
        };
        let none = Disagree::default();
        let events = Disagree {
            events: true,
            tracepoints: false,
        };
        let source = |d: &Downtime, dis| {
            let (ms, from) = d.trusted(dis);
            (ms, from.unwrap_or_default())
        };
        // 1. A pause: the events, whatever QEMU says.
        let paused = Downtime {
            paused: true,
            ..base
        };
        let (ms, from) = source(&paused, events);
        assert_eq!(ms, Some(90.0));
        assert!(
            from.starts_with(EV_DOWNTIME) && from.contains("pause strategy"),
            "{from}"
        );
        // 2. QEMU's figure is not its own tracepoints' window: the window.
        let traced = Downtime {
            window: Some(38.5),
            ..base
        };
        let both = Disagree {
            events: true,
            tracepoints: true,
        };
        assert_eq!(source(&traced, both).0, Some(38.5));
        // 3. QEMU's figure, confirmed by the tracepoints although the events disagree.
        let (ms, from) = source(&traced, events);
        assert_eq!(ms, Some(40.0));
        assert_eq!(
            from,
            "qemu: downtime (agrees with the tracepoints; the events disagree)"
        );
        assert_eq!(source(&base, none), (Some(40.0), "qemu: downtime".into()));
        // 4. The events disagree and nothing settles it: the events.
        let (ms, from) = source(&base, events);
        assert_eq!(ms, Some(90.0));
        assert!(from.ends_with("(QEMU's downtime disagrees)"), "{from}");
        // A 0 from QEMU while the guest was seen stopped is no figure.
        let zero = Downtime {
            qemu: Some(0.0),
            ..base
        };
        assert_eq!(source(&zero, none).0, Some(90.0));
        // 5. No QEMU figure: the events, only once the migration completed (or ran post-copy).
        let unfinished = Downtime {
            qemu: None,
            completed: false,
            ..base
        };
        assert_eq!(source(&unfinished, none), (None, String::new()));
        let postcopy = Downtime {
            postcopy: true,
            ..unfinished
        };
        let (ms, from) = source(&postcopy, none);
        assert_eq!(ms, Some(90.0));
        assert!(from.ends_with("(QEMU reported none)"), "{from}");
    }

    fn ext(events: Vec<QmpEvent>) -> Extended {
        Extended {
            events,
            ..Extended::default()
        }
    }

    fn timeline_events(stop: f64, resume: f64, completed: f64) -> Vec<QmpEvent> {
        vec![
            ev(Role::Src, 10.0, "MIGRATION", Some("setup")),
            ev(Role::Src, stop, "STOP", None),
            ev(Role::Dst, resume, "RESUME", None),
            ev(Role::Src, completed, "MIGRATION", Some("completed")),
        ]
    }

    #[test]
    fn agreeing_figures_trust_qemu() {
        let e = ext(timeline_events(10.9, 10.992, 11.0));
        let mut notes = vec![];
        let v = verdict(
            &e,
            Some(10.0),
            true,
            Some(1001),
            Some(90),
            None,
            None,
            None,
            &mut notes,
        );
        assert_eq!(v.checks.len(), 2);
        assert!(v.checks.iter().all(|c| c.agree), "{:?}", v.checks);
        assert_eq!(v.checks[1].against_ms, 92.0);
        assert_eq!(v.total_ms, Some(1001.0));
        assert_eq!(v.downtime_source.as_deref(), Some("qemu: downtime"));
        assert!(notes.is_empty());
    }

    #[test]
    fn qemu_zeros_are_replaced_by_the_events_with_a_note() {
        // QEMU 7.2, multifd, zlib: total-time 0 and downtime 0, the source stopped 160 ms
        // before completed.
        let e = ext(timeline_events(10.84, 10.99, 11.0));
        let mut notes = vec![];
        let v = verdict(
            &e,
            Some(10.0),
            true,
            Some(0),
            Some(0),
            None,
            None,
            None,
            &mut notes,
        );
        assert_eq!(v.total_ms, Some(1000.0));
        assert_eq!(v.downtime_ms, Some(150.0));
        assert!(v.total_source.unwrap().starts_with(EV_TOTAL));
        assert!(v.downtime_source.unwrap().starts_with(EV_DOWNTIME));
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(notes[0].starts_with(
            "QEMU's total time (0 ms) and events: MIGRATION setup to completed (src) (1000 ms) \
             disagree beyond 55 ms: the report trusts 1000 ms"
        ));
    }

    #[test]
    fn the_tracepoints_outrank_the_events_and_the_stall_only_informs() {
        let e = ext(timeline_events(10.5, 10.9, 11.0));
        let b = DowntimeBreakdown {
            available: true,
            qemu_window_ms: Some(48.8),
            ..Default::default()
        };
        let stall = GuestStall {
            stall_ms: 300.0,
            start_s: 10.5,
            end_s: 10.8,
            before_role: Role::Src,
            after_role: Role::Dst,
            typical_gap_ms: Some(20.0),
            qemu_downtime_ms: Some(48),
            excess_over_downtime_ms: Some(252.0),
        };
        let mut notes = vec![];
        let v = verdict(
            &e,
            Some(10.0),
            true,
            Some(1000),
            Some(48),
            None,
            Some(&b),
            Some(&stall),
            &mut notes,
        );
        let agree: Vec<bool> = v.checks.iter().map(|c| c.agree).collect();
        assert_eq!(agree, [true, false, true, false]);
        assert_eq!(v.downtime_ms, Some(48.0));
        assert!(v
            .downtime_source
            .unwrap()
            .contains("agrees with the tracepoints"));
        assert!(v.checks[3]
            .note
            .as_ref()
            .unwrap()
            .starts_with("the guest stalled 252 ms longer"));
        assert_eq!(notes.len(), 1, "the stall does not make a note: {notes:?}");
    }

    #[test]
    fn a_post_copy_switchover_under_1_ms_that_qemu_reports_as_the_whole_phase_is_not_trusted() {
        // Seen on QEMU 10.0.2: a 0.8 ms switchover rounds to a downtime of 0, which QEMU takes
        // for "not set" at completion and replaces with the whole post-copy phase (5021 ms of a
        // 5127 ms migration); the events saw the guest stopped 7.8 ms.
        let e = ext(timeline_events(14.9922, 15.0, 15.127359));
        let mode = MigrationMode {
            requested: "post-copy".into(),
            reached: "post-copy".into(),
            requested_reached: true,
            switches: vec![],
            guest_lost: None,
        };
        let traced = DowntimeBreakdown {
            available: true,
            qemu_window_ms: Some(0.832),
            ..Default::default()
        };
        for (breakdown, trusted) in [(Some(&traced), 0.832), (None, 7.8)] {
            let mut notes = vec![];
            let v = verdict(
                &e,
                Some(10.0),
                true,
                Some(5127),
                Some(5021),
                Some(&mode),
                breakdown,
                None,
                &mut notes,
            );
            let downtime = v.downtime_ms.unwrap();
            assert!(
                (downtime - trusted).abs() < 1e-6,
                "{downtime} {:?}",
                v.checks
            );
            assert!(
                v.checks.iter().any(|c| c.figure == "downtime" && !c.agree),
                "{:?}",
                v.checks
            );
            assert!(notes.iter().any(|n| n.contains("5021 ms")), "{notes:?}");
        }
    }
}
