//! The migration loop's state between snapshots: what gp-migrate has done and since when, what
//! it has lost, the last figures; and from that, for each source snapshot, the steps to take or
//! the result. Pure: the engine does the I/O and passes the time in, so whole sequences of
//! snapshots and losses are tested here without QEMU.

use std::time::Duration;

use gp_qemu::qmp::Reply;
use gp_records::migrate::{MigrationResult, Outcome, Progress, Scenario};
use gp_records::{now_s, Role};
use qapi::qmp::{MigrationInfo, MigrationStatus};
use serde::Deserialize;

use crate::decide::{self, decide, Done, Step};

/// After the destination VM or its QMP connection is lost, how long the source has to report
/// the failure.
pub const LOSS_GRACE: Duration = Duration::from_secs(30);
/// After `migrate_cancel`, how long QEMU has to reach `cancelled`.
pub const CANCEL_GRACE: Duration = Duration::from_secs(60);
/// A post-copy phase longer than --max-time plus this is given up as failed.
pub const POSTCOPY_GRACE: Duration = Duration::from_secs(120);

/// How the migration ends.
#[derive(Debug, Clone, PartialEq)]
pub struct End {
    pub result: MigrationResult,
    /// Send `migrate_cancel` to the source first (it may still be migrating to nowhere).
    pub cancel_first: bool,
}

/// What a snapshot calls for.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Take these steps (maybe none) and poll again.
    Act(Vec<Step>),
    End(End),
}

/// The loop's state.
#[derive(Debug, Clone)]
pub struct Watch {
    scenario: Scenario,
    done: Done,
    /// Times are since the migration started.
    cancel_at: Option<Duration>,
    postcopy_at: Option<Duration>,
    dst_lost: Option<(Duration, String)>,
    last: Option<MigrationInfo>,
    /// The last snapshot with RAM figures (a final `cancelled` one has none).
    stats: Option<MigrationInfo>,
}

impl Watch {
    pub fn new(scenario: Scenario) -> Watch {
        Watch {
            scenario,
            done: Done::default(),
            cancel_at: None,
            postcopy_at: None,
            dst_lost: None,
            last: None,
            stats: None,
        }
    }

    pub fn done(&self) -> &Done {
        &self.done
    }

    /// Whether the destination has been lost.
    pub fn dst_lost(&self) -> bool {
        self.dst_lost.is_some()
    }

    /// The source VM exited (`how`: its exit status or reason).
    pub fn source_exited(&self, pid: u32, how: &str) -> MigrationResult {
        let reason = format!(
            "the source VM (pid {pid}) exited during the migration: {how}{}",
            self.guest_lost(Role::Src)
        );
        decide::result(Outcome::Failed, reason, self.last.as_ref())
    }

    /// The source's QMP connection failed (`why`).
    pub fn source_unreachable(&self, why: &str) -> MigrationResult {
        let reason = format!(
            "lost the source during the migration: {why}{}",
            self.guest_lost(Role::Src)
        );
        decide::result(Outcome::Failed, reason, self.last.as_ref())
    }

    /// The destination VM exited, or its QMP connection failed, at `now`. Returns whether that
    /// is news for the user: not after gp-migrate cancelled (an incoming QEMU then exits by
    /// itself), and only the first loss.
    pub fn destination_lost(&mut self, now: Duration, what: String) -> bool {
        if self.dst_lost.is_some() {
            return false;
        }
        self.dst_lost = Some((now, what));
        self.done.cancelled.is_none()
    }

    /// A source snapshot taken at `now`.
    pub fn snapshot(&mut self, now: Duration, reply: &Reply<MigrationInfo>) -> Verdict {
        let info = &reply.typed;
        let status = status_text(reply);
        if info.ram.is_some() {
            self.stats = Some(info.clone());
        }
        self.last = Some(info.clone());
        let steps = decide(&self.scenario, &self.done, info, now);
        let finished = matches!(steps.first(), Some(Step::Finished(_)));
        let failed = |reason: String, cancel_first| {
            Verdict::End(End {
                result: decide::result(Outcome::Failed, reason, Some(info)),
                cancel_first,
            })
        };
        if let Some((since, what)) = &self.dst_lost {
            let paused = info.status == Some(MigrationStatus::postcopy_paused);
            if !finished && (paused || now.saturating_sub(*since) > LOSS_GRACE) {
                let reason = format!(
                    "{what}; the source's migration status is {status}{}",
                    self.guest_lost(Role::Dst)
                );
                return failed(reason, !paused);
            }
        }
        if let Some(at) = self.cancel_at {
            if now.saturating_sub(at) > CANCEL_GRACE {
                let reason = format!(
                    "migrate_cancel did not take effect within {} s (status {status})",
                    CANCEL_GRACE.as_secs()
                );
                return failed(reason, false);
            }
        }
        if let Some(at) = self.postcopy_at {
            let limit = Duration::from_secs(self.scenario.max_time) + POSTCOPY_GRACE;
            if now.saturating_sub(at) > limit && !finished {
                let reason = format!(
                    "post-copy did not complete within {} s of switching (status {status})",
                    limit.as_secs()
                );
                return failed(reason, false);
            }
        }
        match steps.first() {
            Some(Step::Finished(outcome)) => Verdict::End(self.finished(*outcome, info)),
            _ => Verdict::Act(steps),
        }
    }

    fn finished(&self, outcome: Outcome, info: &MigrationInfo) -> End {
        let reason = match outcome {
            Outcome::Completed => decide::completed_reason(info),
            Outcome::Failed => {
                let desc = info
                    .error_desc
                    .as_deref()
                    .unwrap_or("QEMU gave no error-desc");
                match &self.dst_lost {
                    Some((_, what)) => format!("{desc} ({what})"),
                    None => desc.to_string(),
                }
            }
            _ => self
                .done
                .cancelled
                .clone()
                .unwrap_or_else(|| "cancelled outside gp-migrate".into()),
        };
        // A final snapshot without RAM figures (`cancelled`) has no others either: take the last
        // that had, if any.
        let figures = match &self.stats {
            Some(stats) if info.ram.is_none() => stats,
            _ => info,
        };
        End {
            result: decide::result(outcome, reason, Some(figures)),
            cancel_first: false,
        }
    }

    /// QEMU took `step` at `now`.
    pub fn acted(&mut self, step: &Step, now: Duration) {
        match step {
            Step::Cancel(why) => {
                self.done.cancelled = Some(why.clone());
                self.cancel_at = Some(now);
            }
            Step::StartPostcopy(_) => {
                self.done.postcopy_started = true;
                self.postcopy_at = Some(now);
            }
            Step::Pause(_) => self.done.paused = true,
            Step::Finished(_) => {}
        }
    }

    /// `step` could not be taken (`why`): how the migration ends.
    pub fn step_failed(&self, step: &Step, why: &str) -> End {
        let (reason, cancel_first) = match step {
            Step::Cancel(after) => (
                format!("migrate_cancel failed: {why} (after: {after})"),
                false,
            ),
            Step::StartPostcopy(_) => (format!("migrate-start-postcopy failed: {why}"), true),
            Step::Pause(_) => (format!("stopping the source failed: {why}"), true),
            Step::Finished(_) => (why.to_string(), false),
        };
        End {
            result: decide::result(Outcome::Failed, reason, self.last.as_ref()),
            cancel_first,
        }
    }

    /// What losing a VM in post-copy means, said plainly for the result's reason: after the
    /// switch the destination runs the guest and the source holds the pages not sent yet, so
    /// neither can go on alone. Empty before post-copy.
    fn guest_lost(&self, lost: Role) -> &'static str {
        match (self.done.postcopy_started, lost) {
            (false, _) => "",
            (true, Role::Src) => {
                "; the migration was in post-copy, so the guest is lost: the pages the source had \
                 not sent yet are gone with it"
            }
            (true, Role::Dst) => {
                "; the migration was in post-copy, so the guest is lost: it was running on the \
                 destination"
            }
        }
    }
}

/// The status as QEMU named it: qapi's name, or for a status newer than qapi's schema QEMU's
/// own word (`none` when it gave none).
pub fn status_text(reply: &Reply<MigrationInfo>) -> String {
    #[derive(Deserialize)]
    struct AsSent {
        status: Option<String>,
    }
    match reply.typed.status {
        Some(s) => decide::status_name(s).to_string(),
        None => AsSent::deserialize(&reply.raw)
            .ok()
            .and_then(|s| s.status)
            .unwrap_or_else(|| "none".into()),
    }
}

/// The `progress` record of a snapshot: the reply as QEMU sent it.
pub fn progress(role: Role, reply: &Reply<MigrationInfo>) -> Progress {
    Progress {
        time_s: now_s(),
        role,
        status: status_text(reply),
        iteration: decide::iteration(&reply.typed),
        info: reply.raw.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn reply(raw: Value) -> Reply<MigrationInfo> {
        let (typed, undecoded) = gp_qemu::qmp::decode_lenient(&raw).unwrap();
        Reply {
            raw,
            typed,
            undecoded,
        }
    }

    fn snap(status: &str, pass: u64) -> Reply<MigrationInfo> {
        let typed = crate::decide::tests::snap(status, pass);
        reply(serde_json::to_value(typed).unwrap())
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn steps(v: Verdict) -> Vec<Step> {
        match v {
            Verdict::Act(steps) => steps,
            Verdict::End(end) => panic!("ended: {end:?}"),
        }
    }

    fn end(v: Verdict) -> End {
        match v {
            Verdict::End(end) => end,
            Verdict::Act(steps) => panic!("not ended: {steps:?}"),
        }
    }

    #[test]
    fn post_copy_switches_once_then_runs_to_completion_past_max_time() {
        let mut w = Watch::new(Scenario {
            post_copy: true,
            post_copy_iters: 1,
            max_time: 10,
            ..Scenario::default()
        });
        assert!(steps(w.snapshot(secs(0), &reply(json!({"status": "setup"})))).is_empty());
        let s = steps(w.snapshot(secs(1), &snap("active", 1)));
        assert!(matches!(&s[..], [Step::StartPostcopy(_)]), "{s:?}");
        w.acted(&s[0], secs(1));
        // Post-copy is never cancelled, even past --max-time.
        assert!(steps(w.snapshot(secs(50), &snap("postcopy-active", 2))).is_empty());
        let e = end(w.snapshot(secs(60), &snap("completed", 2)));
        assert_eq!(e.result.outcome, Outcome::Completed);
        assert!(!e.cancel_first);
        assert_eq!(e.result.iterations, Some(2));
        assert!(w.done().postcopy_started);
    }

    #[test]
    fn a_post_copy_phase_that_never_ends_is_given_up() {
        let mut w = Watch::new(Scenario {
            post_copy: true,
            post_copy_iters: 1,
            max_time: 10,
            ..Scenario::default()
        });
        let s = steps(w.snapshot(secs(1), &snap("active", 1)));
        w.acted(&s[0], secs(1));
        assert!(steps(w.snapshot(secs(131), &snap("postcopy-active", 2))).is_empty());
        let e = end(w.snapshot(secs(132), &snap("postcopy-active", 2)));
        assert_eq!(e.result.outcome, Outcome::Failed);
        assert_eq!(
            e.result.reason,
            "post-copy did not complete within 130 s of switching (status postcopy-active)"
        );
    }

    #[test]
    fn a_cancel_ends_with_the_last_figures_or_fails_when_qemu_ignores_it() {
        let scenario = Scenario {
            max_iters: 2,
            ..Scenario::default()
        };
        let mut w = Watch::new(scenario.clone());
        let s = steps(w.snapshot(secs(1), &snap("active", 3)));
        assert!(matches!(&s[..], [Step::Cancel(_)]), "{s:?}");
        w.acted(&s[0], secs(1));
        assert!(steps(w.snapshot(secs(2), &snap("cancelling", 3))).is_empty());
        // The final snapshot has no RAM figures: the result takes the last that had.
        let e = end(w.snapshot(secs(3), &reply(json!({"status": "cancelled"}))));
        assert_eq!(e.result.outcome, Outcome::Cancelled);
        assert!(
            e.result.reason.contains("--max-iters 2"),
            "{}",
            e.result.reason
        );
        assert_eq!(e.result.iterations, Some(3));
        assert_eq!(e.result.transferred_bytes, Some(1234567));

        let mut w = Watch::new(scenario);
        let s = steps(w.snapshot(secs(1), &snap("active", 3)));
        w.acted(&s[0], secs(1));
        assert!(steps(w.snapshot(secs(61), &snap("cancelling", 3))).is_empty());
        let e = end(w.snapshot(secs(62), &snap("cancelling", 3)));
        assert_eq!(
            e.result.reason,
            "migrate_cancel did not take effect within 60 s (status cancelling)"
        );
    }

    #[test]
    fn a_lost_destination_before_post_copy_gives_the_source_time_to_say_why() {
        let mut w = Watch::new(Scenario::default());
        assert!(steps(w.snapshot(secs(1), &snap("active", 1))).is_empty());
        assert!(w.destination_lost(secs(2), "the destination VM (pid 7) exited".into()));
        assert!(!w.destination_lost(secs(3), "again".into()), "told once");
        assert!(steps(w.snapshot(secs(20), &snap("active", 1))).is_empty());
        // The source reports the failure: its words, and what was lost.
        let failed = reply(json!({"status": "failed", "error-desc": "Unable to write to socket"}));
        let e = end(w.clone().snapshot(secs(21), &failed));
        assert_eq!(
            e.result.reason,
            "Unable to write to socket (the destination VM (pid 7) exited)"
        );
        assert!(!e.cancel_first);
        // Or it does not, within the grace: cancel it and fail.
        let e = end(w.snapshot(secs(33), &snap("active", 1)));
        assert!(e.cancel_first);
        assert_eq!(
            e.result.reason,
            "the destination VM (pid 7) exited; the source's migration status is active"
        );
    }

    #[test]
    fn a_lost_destination_in_post_copy_fails_at_postcopy_paused_and_loses_the_guest() {
        let mut w = Watch::new(Scenario {
            post_copy: true,
            post_copy_iters: 1,
            ..Scenario::default()
        });
        let s = steps(w.snapshot(secs(1), &snap("active", 1)));
        w.acted(&s[0], secs(1));
        assert!(w.destination_lost(secs(2), "lost the destination".into()));
        let e = end(w.snapshot(secs(3), &snap("postcopy-paused", 2)));
        assert!(!e.cancel_first, "post-copy cannot be cancelled");
        assert!(
            e.result
                .reason
                .ends_with("it was running on the destination"),
            "{}",
            e.result.reason
        );
        let r = w.source_exited(42, "killed by SIGKILL");
        assert!(
            r.reason.starts_with("the source VM (pid 42) exited during the migration: killed by SIGKILL; the migration was in post-copy"),
            "{}",
            r.reason
        );
    }

    #[test]
    fn losses_after_a_cancel_are_not_news() {
        let mut w = Watch::new(Scenario {
            max_time: 5,
            ..Scenario::default()
        });
        let s = steps(w.snapshot(secs(6), &snap("active", 1)));
        assert!(matches!(&s[..], [Step::Cancel(r)] if r.contains("--max-time 5")));
        w.acted(&s[0], secs(6));
        assert!(!w.destination_lost(secs(7), "the destination exited".into()));
        assert!(w.dst_lost());
    }

    #[test]
    fn a_status_newer_than_the_schema_keeps_polling_and_is_named_as_qemu_sent_it() {
        let mut w = Watch::new(Scenario::default());
        let odd = reply(json!({"status": "from-qemu-99", "ram": {"dirty-sync-count": 1}}));
        assert_eq!(odd.undecoded.len(), 2);
        assert!(steps(w.snapshot(secs(1), &odd)).is_empty());
        let p = progress(Role::Src, &odd);
        assert_eq!(p.status, "from-qemu-99");
        assert_eq!(p.info, odd.raw);
        assert!(w.destination_lost(secs(1), "gone".into()));
        let e = end(w.snapshot(secs(40), &odd));
        assert!(
            e.result.reason.ends_with("status is from-qemu-99"),
            "{}",
            e.result.reason
        );
        assert_eq!(status_text(&reply(json!({}))), "none");
    }

    #[test]
    fn a_step_qemu_refuses_ends_the_migration() {
        let w = Watch::new(Scenario::default());
        let e = w.step_failed(&Step::Pause("pass 1".into()), "stop: QEMU said: no");
        assert_eq!(
            e.result.reason,
            "stopping the source failed: stop: QEMU said: no"
        );
        assert!(e.cancel_first);
        let e = w.step_failed(&Step::Cancel("--max-iters".into()), "x");
        assert!(!e.cancel_first);
        assert_eq!(
            e.result.reason,
            "migrate_cancel failed: x (after: --max-iters)"
        );
    }

    #[test]
    fn progress_records_carry_the_reply_as_sent() {
        let mut raw = serde_json::to_value(crate::decide::tests::snap("active", 3)).unwrap();
        raw["member-from-qemu-99"] = json!({"x": 1});
        let p = progress(Role::Dst, &reply(raw.clone()));
        assert_eq!(p.info, raw);
        assert_eq!(p.iteration, Some(3));
        assert_eq!(p.status, "active");
        assert_eq!(p.role, Role::Dst);
    }
}
