//! `summary.mode`: the mode a migration really ran in, from events and snapshots, against the
//! one the scenario asked for.

use gp_records::report::{Extended, MigrationMode, ModeSwitch};
use gp_records::{Outcome, QmpEvent, Role};

/// Statuses QEMU reports while post-copy is running or stuck.
fn is_postcopy_status(s: &str) -> bool {
    s.starts_with("postcopy")
}

/// The mode, or `None` when the stream holds no migration at all.
pub fn mode(
    ext: &Extended,
    start_s: Option<f64>,
    outcome: Option<Outcome>,
    notes: &mut Vec<String>,
) -> Option<MigrationMode> {
    let any_migration = ext.scenario.is_some()
        || !ext.progress.is_empty()
        || ext.events.iter().any(|e| e.event == "MIGRATION");
    if !any_migration {
        return None;
    }
    let scenario = ext.scenario.as_ref().map(|s| &s.scenario);
    let want = Wanted {
        postcopy: scenario.is_some_and(|s| s.post_copy),
        pause: scenario.is_some_and(|s| s.pause),
    };
    let seen = Seen::of(ext, start_s);
    let reached = seen.reached();
    let requested_reached = match (want.postcopy, want.pause) {
        (false, false) => true,
        _ => {
            (want.postcopy && reached == "post-copy")
                || (want.pause && reached == "paused-then-completed")
        }
    };
    notes.extend(not_reached(ext, start_s, want, &seen, outcome));
    let guest_lost = seen.postcopy.as_ref().and_then(|p| {
        let lost = !seen.completed && outcome != Some(Outcome::Completed);
        lost.then(|| guest_lost(ext, p, outcome))
    });
    notes.extend(guest_lost.clone());
    Some(MigrationMode {
        requested: want.text().to_string(),
        reached: reached.to_string(),
        requested_reached,
        switches: seen.switches(),
        guest_lost,
    })
}

/// What the scenario asked for.
#[derive(Debug, Clone, Copy)]
struct Wanted {
    postcopy: bool,
    pause: bool,
}

impl Wanted {
    fn text(self) -> &'static str {
        match (self.postcopy, self.pause) {
            (true, true) => "post-copy or paused-then-completed",
            (true, false) => "post-copy",
            (false, true) => "paused-then-completed",
            (false, false) => "precopy",
        }
    }
}

/// Each mode the migration was seen in, when it switched to it (a QMP event, else a
/// `query-migrate` snapshot), and whether it completed.
struct Seen {
    /// The source's migration became active.
    precopy: Option<ModeSwitch>,
    /// Either side said postcopy-active (the source's event first).
    postcopy: Option<ModeSwitch>,
    /// The source stopped at or after gp-migrate's pause action (its `stop`).
    paused: Option<ModeSwitch>,
    /// The source's final status.
    end: Option<ModeSwitch>,
    /// The source ended `completed`, or the destination said so.
    completed: bool,
}

impl Seen {
    fn of(ext: &Extended, start_s: Option<f64>) -> Seen {
        let switch = |mode: &str, time_s: f64, source: &str, detail: String| ModeSwitch {
            mode: mode.to_string(),
            time_s,
            since_start_ms: since(start_s, time_s),
            source: source.to_string(),
            detail,
        };
        let status_event = |role: Role, pred: &dyn Fn(&str) -> bool| {
            ext.events.iter().find(|e| {
                e.role == role && e.event == "MIGRATION" && status_of(e).is_some_and(pred)
            })
        };
        let src_snapshot = |pred: &dyn Fn(&str) -> bool| {
            ext.progress
                .iter()
                .find(|p| p.role == Role::Src && pred(&p.status))
        };
        let from_event = |mode: &str, e: &QmpEvent| {
            let status = status_of(e).unwrap_or_default();
            switch(
                mode,
                when(e),
                "event",
                format!("MIGRATION {status} ({})", e.role.as_str()),
            )
        };
        let from_snapshot = |mode: &str, p: &gp_records::Progress| {
            switch(
                mode,
                p.time_s,
                "snapshot",
                format!("query-migrate status {} ({})", p.status, p.role.as_str()),
            )
        };

        let active = |s: &str| s == "active";
        let precopy = status_event(Role::Src, &active)
            .map(|e| from_event("precopy", e))
            .or_else(|| src_snapshot(&active).map(|p| from_snapshot("precopy", p)));
        let postcopy = status_event(Role::Src, &is_postcopy_status)
            .or_else(|| status_event(Role::Dst, &is_postcopy_status))
            .map(|e| from_event("post-copy", e))
            .or_else(|| {
                ext.progress
                    .iter()
                    .find(|p| is_postcopy_status(&p.status))
                    .map(|p| from_snapshot("post-copy", p))
            });
        let paused = ext
            .actions
            .iter()
            .find(|a| a.action == "pause")
            .and_then(|a| {
                ext.events
                    .iter()
                    .find(|e| e.role == Role::Src && e.event == "STOP" && when(e) >= a.time_s)
            })
            .map(|e| {
                switch(
                    "paused",
                    when(e),
                    "event",
                    "STOP (src) after the pause action".into(),
                )
            });
        let is_final = |s: &str| matches!(s, "completed" | "failed" | "cancelled");
        let end = status_event(Role::Src, &is_final)
            .map(|e| from_event(status_of(e).unwrap_or_default(), e))
            .or_else(|| src_snapshot(&is_final).map(|p| from_snapshot(&p.status, p)));
        let completed = end.as_ref().is_some_and(|e| e.mode == "completed")
            || status_event(Role::Dst, &|s| s == "completed").is_some();
        Seen {
            precopy,
            postcopy,
            paused,
            end,
            completed,
        }
    }

    /// Every switch seen, in time order.
    fn switches(&self) -> Vec<ModeSwitch> {
        let mut switches: Vec<ModeSwitch> =
            [&self.precopy, &self.postcopy, &self.paused, &self.end]
                .into_iter()
                .flatten()
                .cloned()
                .collect();
        switches.sort_by(|a, b| a.time_s.total_cmp(&b.time_s));
        switches
    }

    /// The mode the migration reached: post-copy, paused (then completed or not), pre-copy,
    /// or `none` when nothing was seen of it.
    fn reached(&self) -> &'static str {
        let nothing = self.precopy.is_none()
            && self.postcopy.is_none()
            && self.paused.is_none()
            && self.end.is_none();
        if self.postcopy.is_some() {
            "post-copy"
        } else if self.paused.is_some() {
            if self.completed {
                "paused-then-completed"
            } else {
                "paused"
            }
        } else if nothing && !self.completed {
            "none"
        } else {
            "precopy"
        }
    }
}

/// Milliseconds since the run's start, to the µs.
fn since(start_s: Option<f64>, t: f64) -> Option<f64> {
    start_s.map(|s| ((t - s) * 1e6).round() / 1e3)
}

/// Notes for a post-copy or a pause that was asked for and not reached, saying when gp-migrate
/// asked and how the migration ended first.
fn not_reached(
    ext: &Extended,
    start_s: Option<f64>,
    want: Wanted,
    seen: &Seen,
    outcome: Option<Outcome>,
) -> Vec<String> {
    let mut notes = Vec::new();
    let ended = if seen.completed {
        "the migration completed in pre-copy".to_string()
    } else {
        format!(
            "the migration ended ({}) in pre-copy",
            outcome.map_or("without a result", Outcome::as_str)
        )
    };
    let action = |name: &str| ext.actions.iter().find(|a| a.action == name);
    if want.postcopy && seen.postcopy.is_none() && !(want.pause && seen.paused.is_some()) {
        notes.push(match action("postcopy") {
            Some(a) => format!(
                "post-copy was requested but not reached: gp-migrate asked for it {} ({}), but \
                 {ended} first (no postcopy-active event or snapshot); the figures are those of \
                 a pre-copy migration",
                at(since(start_s, a.time_s)),
                a.reason
            ),
            None => format!(
                "post-copy was requested but not reached: {ended} before gp-migrate asked for \
                 it; the figures are those of a pre-copy migration"
            ),
        });
    }
    if want.pause && seen.paused.is_none() && !(want.postcopy && seen.postcopy.is_some()) {
        notes.push(match action("pause") {
            Some(a) => format!(
                "the pause was requested but not reached: gp-migrate paused the source {} ({}), \
                 but {ended} first (no STOP after it)",
                at(since(start_s, a.time_s)),
                a.reason
            ),
            None => format!(
                "the pause was requested but not reached: {ended} before gp-migrate paused the \
                 source"
            ),
        });
    } else if want.pause && seen.paused.is_some() && !seen.completed {
        notes.push("the source was paused but the migration did not complete".to_string());
    }
    notes
}

/// Why the guest is gone: the migration ended during post-copy (switched at `switch`), when
/// neither side held all of its memory.
fn guest_lost(ext: &Extended, switch: &ModeSwitch, outcome: Option<Outcome>) -> String {
    let phase = last_postcopy_phase(ext).unwrap_or_else(|| "postcopy-active".into());
    let how = outcome.map_or("ended", |o| match o {
        Outcome::Interrupted => "was interrupted",
        Outcome::Failed => "failed",
        Outcome::Cancelled => "was cancelled",
        Outcome::Completed => "ended",
    });
    let after = ext
        .result
        .as_ref()
        .map(|r| {
            format!(
                ", {:.0} ms after the switch to post-copy",
                (r.time_s - switch.time_s) * 1e3
            )
        })
        .unwrap_or_default();
    format!(
        "the guest was lost: the migration {how} during post-copy (phase {phase}{after}); \
         neither the source nor the destination held all of its memory"
    )
}

fn at(since_ms: Option<f64>) -> String {
    since_ms.map_or_else(String::new, |ms| format!("at +{ms:.0} ms"))
}

/// The last post-copy status either side reported (event or snapshot), by time.
fn last_postcopy_phase(ext: &Extended) -> Option<String> {
    let events = ext
        .events
        .iter()
        .filter(|e| e.event == "MIGRATION")
        .filter_map(|e| status_of(e).map(|s| (when(e), s.to_string())));
    let snaps = ext.progress.iter().map(|p| (p.time_s, p.status.clone()));
    events
        .chain(snaps)
        .filter(|(_, s)| is_postcopy_status(s))
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, s)| s)
}

fn status_of(e: &QmpEvent) -> Option<&str> {
    e.data.get("status").and_then(|s| s.as_str())
}

/// QEMU's own timestamp of an event, else the time it was read.
pub fn when(e: &QmpEvent) -> f64 {
    if e.qemu_time_s > 0.0 {
        e.qemu_time_s
    } else {
        e.time_s
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use gp_records::migrate::{Scenario, ScenarioRecord};
    use gp_records::{Action, Progress};
    use serde_json::json;

    pub(crate) fn ev(role: Role, t: f64, event: &str, status: Option<&str>) -> QmpEvent {
        QmpEvent {
            time_s: t + 0.001,
            role,
            event: event.into(),
            qemu_time_s: t,
            data: status.map_or(json!({}), |s| json!({ "status": s })),
        }
    }

    fn action(t: f64, a: &str) -> Action {
        Action {
            time_s: t,
            action: a.into(),
            reason: format!("{a} reason"),
            role: Some(Role::Src),
        }
    }

    pub(crate) fn scenario(post_copy: bool, pause: bool) -> ScenarioRecord {
        serde_json::from_value(json!({
            "time_s": 0.5, "scenario": Scenario { post_copy, pause, ..Scenario::default() },
            "sleep_s": 1.0, "poll_ms": 50.0
        }))
        .unwrap()
    }

    fn ext(post_copy: bool, pause: bool, events: Vec<QmpEvent>, actions: Vec<Action>) -> Extended {
        Extended {
            scenario: Some(scenario(post_copy, pause)),
            events,
            actions,
            ..Extended::default()
        }
    }

    #[test]
    fn a_postcopy_run_that_converged_first_is_precopy_with_a_note() {
        // The CI run of issue 16: pass 1, the post-copy action, then STOP and completed.
        let e = ext(
            true,
            false,
            vec![
                ev(Role::Src, 1.0, "MIGRATION", Some("setup")),
                ev(Role::Src, 1.01, "MIGRATION", Some("active")),
                ev(Role::Src, 1.5, "STOP", None),
                ev(Role::Src, 1.6, "MIGRATION", Some("completed")),
            ],
            vec![action(1.0, "migrate"), action(1.4, "postcopy")],
        );
        let mut notes = vec![];
        let m = mode(&e, Some(1.0), Some(Outcome::Completed), &mut notes).unwrap();
        assert_eq!(
            (m.requested.as_str(), m.reached.as_str()),
            ("post-copy", "precopy")
        );
        assert!(!m.requested_reached);
        let modes: Vec<&str> = m.switches.iter().map(|s| s.mode.as_str()).collect();
        assert_eq!(modes, ["precopy", "completed"]);
        assert_eq!(m.switches[1].since_start_ms, Some(600.0));
        assert!(
            notes[0].starts_with(
                "post-copy was requested but not reached: gp-migrate asked for it at +400 ms"
            ),
            "{notes:?}"
        );
        assert!(m.guest_lost.is_none());
    }

    #[test]
    fn postcopy_from_a_snapshot_and_the_guest_lost_when_interrupted() {
        let mut e = ext(
            true,
            false,
            vec![ev(Role::Src, 1.01, "MIGRATION", Some("active"))],
            vec![action(1.0, "migrate"), action(1.2, "postcopy")],
        );
        e.progress.push(Progress {
            time_s: 1.3,
            role: Role::Src,
            status: "postcopy-active".into(),
            iteration: None,
            info: json!({"status": "postcopy-active"}),
        });
        e.result = Some(gp_records::MigrationResult {
            time_s: 1.8,
            outcome: Outcome::Interrupted,
            reason: "SIGINT".into(),
            total_time_ms: None,
            downtime_ms: None,
            setup_time_ms: None,
            transferred_bytes: None,
            iterations: None,
        });
        let mut notes = vec![];
        let m = mode(&e, Some(1.0), Some(Outcome::Interrupted), &mut notes).unwrap();
        assert_eq!(m.reached, "post-copy");
        assert!(m.requested_reached);
        assert_eq!(m.switches[1].source, "snapshot");
        let lost = m.guest_lost.unwrap();
        assert!(
            lost.starts_with(
                "the guest was lost: the migration was interrupted during post-copy \
                              (phase postcopy-active, 500 ms after the switch"
            ),
            "{lost}"
        );
        assert_eq!(notes, [lost]);
    }

    #[test]
    fn pause_reached_and_not_reached() {
        let events = vec![
            ev(Role::Src, 1.01, "MIGRATION", Some("active")),
            ev(Role::Src, 2.1, "STOP", None),
            ev(Role::Src, 2.5, "MIGRATION", Some("completed")),
        ];
        let mut notes = vec![];
        let e = ext(false, true, events.clone(), vec![action(2.0, "pause")]);
        let m = mode(&e, Some(1.0), Some(Outcome::Completed), &mut notes).unwrap();
        assert_eq!(m.reached, "paused-then-completed");
        assert!(m.requested_reached && notes.is_empty());
        // The STOP came before the pause action: the migration stopped the source itself.
        let e = ext(false, true, events, vec![action(2.2, "pause")]);
        let m = mode(&e, Some(1.0), Some(Outcome::Completed), &mut notes).unwrap();
        assert_eq!(m.reached, "precopy");
        assert!(!m.requested_reached);
        assert!(
            notes[0].starts_with("the pause was requested but not reached"),
            "{notes:?}"
        );
        // A precopy scenario is always reached; no migration at all is None.
        let e = ext(false, false, vec![], vec![]);
        let m = mode(&e, None, None, &mut notes).unwrap();
        assert!(m.requested_reached);
        assert!(mode(&Extended::default(), None, None, &mut notes).is_none());
    }

    #[test]
    fn nothing_seen_is_none_and_a_pause_that_never_completes_is_paused() {
        let mut notes = vec![];
        // A scenario, and no event or snapshot of the migration: it never started.
        let m = mode(&ext(false, false, vec![], vec![]), None, None, &mut notes).unwrap();
        assert_eq!(m.reached, "none");
        assert!(m.switches.is_empty());
        let e = ext(
            false,
            true,
            vec![
                ev(Role::Src, 1.01, "MIGRATION", Some("active")),
                ev(Role::Src, 2.1, "STOP", None),
            ],
            vec![action(2.0, "pause")],
        );
        let m = mode(&e, Some(1.0), Some(Outcome::Failed), &mut notes).unwrap();
        assert_eq!(m.reached, "paused");
        assert!(!m.requested_reached);
        assert_eq!(
            notes,
            ["the source was paused but the migration did not complete"]
        );
    }
}
