//! The migration loop's decisions, as a pure function of the scenario, what gp-migrate has done
//! so far and the latest `query-migrate` snapshot (qapi's typed view of it).

use std::time::Duration;

use gp_records::migrate::{MigrationResult, Outcome, Scenario};
use gp_records::now_s;
use qapi::qmp::{MigrationInfo, MigrationStatus};

/// What gp-migrate has done to the running migration.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Done {
    pub postcopy_started: bool,
    pub paused: bool,
    /// Why gp-migrate cancelled, once it has.
    pub cancelled: Option<String>,
}

/// One thing to do after a snapshot.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// The migration ended: `completed`, `failed` or `cancelled`.
    Finished(Outcome),
    Cancel(String),
    StartPostcopy(String),
    Pause(String),
}

/// `ram.dirty-sync-count`: the number of passes over RAM begun so far.
pub fn iteration(info: &MigrationInfo) -> Option<u64> {
    info.ram
        .as_ref()
        .and_then(|r| u64::try_from(r.dirty_sync_count).ok())
}

/// QEMU's name of a status (`postcopy-active`).
pub fn status_name(status: MigrationStatus) -> &'static str {
    qapi::Enum::name(&status)
}

/// A status in which `migrate_cancel` stops the migration (before post-copy).
pub fn cancellable(status: MigrationStatus) -> bool {
    use MigrationStatus as S;
    matches!(
        status,
        S::setup | S::active | S::pre_switchover | S::device | S::wait_unplug
    )
}

/// A post-copy status: the guest runs on the destination and cannot be given back.
pub fn in_postcopy(status: MigrationStatus) -> bool {
    use MigrationStatus as S;
    matches!(
        status,
        S::postcopy_active | S::postcopy_paused | S::postcopy_recover_setup | S::postcopy_recover
    )
}

/// The steps the snapshot calls for, in the order the original guestperf takes them: end,
/// `--max-iters`, `--max-time`, then post-copy and pause. A status newer than qapi's schema
/// (`info.status` is `None`) is neither an end nor `active`: the loop keeps polling.
pub fn decide(s: &Scenario, done: &Done, info: &MigrationInfo, elapsed: Duration) -> Vec<Step> {
    use MigrationStatus as S;
    match info.status {
        Some(S::completed) => return vec![Step::Finished(Outcome::Completed)],
        Some(S::failed) => return vec![Step::Finished(Outcome::Failed)],
        Some(S::cancelled) => return vec![Step::Finished(Outcome::Cancelled)],
        _ => {}
    }
    let iter = iteration(info).unwrap_or(0);
    let mut steps = Vec::new();
    // Post-copy cannot be cancelled: once switched, it runs to the end (or fails).
    if done.cancelled.is_none() && !done.postcopy_started {
        if iter > s.max_iters {
            return vec![Step::Cancel(format!(
                "pass {iter} over RAM exceeds --max-iters {} without completing",
                s.max_iters
            ))];
        }
        if elapsed.as_secs_f64() > s.max_time as f64 {
            return vec![Step::Cancel(format!(
                "not completed after --max-time {} s (pass {iter} over RAM)",
                s.max_time
            ))];
        }
    }
    if done.cancelled.is_some() || info.status != Some(S::active) {
        return steps;
    }
    if s.post_copy && !done.postcopy_started && iter >= s.post_copy_iters {
        steps.push(Step::StartPostcopy(format!(
            "pass {iter} over RAM reached --post-copy-iters {}",
            s.post_copy_iters
        )));
    }
    if s.pause && !done.paused && iter >= s.pause_iters {
        steps.push(Step::Pause(format!(
            "pass {iter} over RAM reached --pause-iters {}",
            s.pause_iters
        )));
    }
    steps
}

fn ms(v: Option<i64>) -> Option<u64> {
    v.and_then(|v| u64::try_from(v).ok())
}

/// The result record for a migration that ended (or was given up) with `info` as the last
/// source snapshot.
pub fn result(outcome: Outcome, reason: String, info: Option<&MigrationInfo>) -> MigrationResult {
    MigrationResult {
        time_s: now_s(),
        outcome,
        reason,
        total_time_ms: ms(info.and_then(|i| i.total_time)),
        downtime_ms: ms(info.and_then(|i| i.downtime)),
        setup_time_ms: ms(info.and_then(|i| i.setup_time)),
        transferred_bytes: ms(info.and_then(|i| Some(i.ram.as_ref()?.transferred))),
        iterations: info.and_then(iteration),
    }
}

/// A one-line summary of a completed migration.
pub fn completed_reason(info: &MigrationInfo) -> String {
    let mut parts = vec!["migration completed".to_string()];
    if let Some(t) = ms(info.total_time) {
        parts.push(format!("in {t} ms"));
    }
    if let Some(d) = ms(info.downtime) {
        parts.push(format!("with {d} ms downtime"));
    }
    if let Some(i) = iteration(info) {
        parts.push(format!("after {i} passes over RAM"));
    }
    parts.join(" ")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    /// A snapshot as QEMU 10 sends it, through qapi's types.
    pub(crate) fn snap(status: &str, iter: u64) -> MigrationInfo {
        let ram = json!({"transferred": 1234567, "remaining": 0, "total": 268435456,
            "duplicate": 0, "normal": 0, "normal-bytes": 0, "dirty-pages-rate": 0, "mbps": 1.0,
            "dirty-sync-count": iter, "postcopy-requests": 0, "page-size": 4096,
            "multifd-bytes": 0, "pages-per-second": 0, "precopy-bytes": 0, "downtime-bytes": 0,
            "postcopy-bytes": 0, "dirty-sync-missed-zero-copy": 0});
        serde_json::from_value(
            json!({"status": status, "total-time": 1500, "downtime": 120,
            "setup-time": 7, "ram": ram}),
        )
        .unwrap()
    }

    fn setup() -> MigrationInfo {
        serde_json::from_value(json!({"status": "setup"})).unwrap()
    }

    const SEC: Duration = Duration::from_secs(1);

    #[test]
    fn final_states_end_the_loop() {
        let s = Scenario::default();
        let d = Done::default();
        assert_eq!(
            decide(&s, &d, &snap("completed", 3), SEC),
            [Step::Finished(Outcome::Completed)]
        );
        assert_eq!(
            decide(&s, &d, &snap("failed", 3), SEC),
            [Step::Finished(Outcome::Failed)]
        );
        assert_eq!(
            decide(&s, &d, &snap("cancelled", 3), SEC),
            [Step::Finished(Outcome::Cancelled)]
        );
        assert!(decide(&s, &d, &snap("active", 3), SEC).is_empty());
        assert!(decide(&s, &d, &setup(), SEC).is_empty());
        // A status newer than the schema: keep polling.
        assert!(decide(&s, &d, &MigrationInfo::default(), SEC).is_empty());
    }

    #[test]
    fn max_iters_and_max_time_cancel_once_and_not_in_post_copy() {
        let s = Scenario {
            max_iters: 2,
            max_time: 10,
            ..Scenario::default()
        };
        let d = Done::default();
        assert!(
            decide(&s, &d, &snap("active", 2), SEC).is_empty(),
            "2 passes is not more than 2"
        );
        let steps = decide(&s, &d, &snap("active", 3), SEC);
        assert!(
            matches!(&steps[..], [Step::Cancel(r)] if r.contains("--max-iters 2")),
            "{steps:?}"
        );
        let steps = decide(&s, &d, &snap("active", 1), Duration::from_secs(11));
        assert!(
            matches!(&steps[..], [Step::Cancel(r)] if r.contains("--max-time 10")),
            "{steps:?}"
        );
        let cancelling = Done {
            cancelled: Some("x".into()),
            ..Done::default()
        };
        assert!(decide(&s, &cancelling, &snap("cancelling", 5), SEC).is_empty());
        let post = Done {
            postcopy_started: true,
            ..Done::default()
        };
        assert!(decide(
            &s,
            &post,
            &snap("postcopy-active", 5),
            Duration::from_secs(99)
        )
        .is_empty());
    }

    #[test]
    fn post_copy_and_pause_happen_at_their_pass_once() {
        let s = Scenario {
            post_copy: true,
            post_copy_iters: 2,
            pause: true,
            pause_iters: 1,
            ..Scenario::default()
        };
        let mut d = Done::default();
        let steps = decide(&s, &d, &snap("active", 1), SEC);
        assert!(
            matches!(&steps[..], [Step::Pause(r)] if r == "pass 1 over RAM reached --pause-iters 1"),
            "{steps:?}"
        );
        d.paused = true;
        let steps = decide(&s, &d, &snap("active", 2), SEC);
        assert!(matches!(&steps[..], [Step::StartPostcopy(_)]), "{steps:?}");
        d.postcopy_started = true;
        assert!(decide(&s, &d, &snap("postcopy-active", 3), SEC).is_empty());
        // Nothing is started outside the active state.
        let fresh = Done::default();
        assert!(decide(&s, &fresh, &snap("pre-switchover", 4), SEC).is_empty());
    }

    #[test]
    fn result_takes_qemus_figures() {
        let r = result(
            Outcome::Completed,
            completed_reason(&snap("completed", 4)),
            Some(&snap("completed", 4)),
        );
        assert_eq!(r.total_time_ms, Some(1500));
        assert_eq!(r.downtime_ms, Some(120));
        assert_eq!(r.setup_time_ms, Some(7));
        assert_eq!(r.transferred_bytes, Some(1234567));
        assert_eq!(r.iterations, Some(4));
        assert_eq!(
            r.reason,
            "migration completed in 1500 ms with 120 ms downtime after 4 passes over RAM"
        );
        let r = result(Outcome::Interrupted, "SIGINT".into(), None);
        assert_eq!(r.total_time_ms, None);
    }

    #[test]
    fn statuses_are_sorted_for_cancelling() {
        use MigrationStatus as S;
        assert!(cancellable(S::active) && cancellable(S::setup));
        assert!(!cancellable(S::postcopy_active) && in_postcopy(S::postcopy_active));
        assert!(!cancellable(S::completed) && !in_postcopy(S::completed));
        assert_eq!(status_name(S::postcopy_active), "postcopy-active");
    }
}
