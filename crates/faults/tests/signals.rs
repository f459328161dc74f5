//! Ctrl-C (SIGINT to the whole process group) and SIGTERM to one stage, in each phase of a run:
//! boot, settling, pre-copy, post-copy, settling after, shutdown; SIGHUP, SIGINT and SIGTERM to
//! each stage alone mid-migration, and to a running `guestperf`. Real QEMU under TCG.
//!
//! Every case: the pipeline ends within [`BOUND`] of the signal; no QEMU, socket or runtime
//! directory remains; the report (or the stages' errors) says what happened.

use std::time::Duration;

use gp_faults::{log_time, Ended, OneShot, Phase, Pipeline, Spec, Stage};
use gp_records::report::Report;
use gp_records::Outcome;
use gp_stage::signals::signal_name;
use gp_testkit::vm_test_lock;
use libc::{SIGHUP, SIGINT, SIGTERM};

/// Longest a pipeline may take to end after the signal: the stages' grace periods are 10 s by
/// default (gp-sample, gp-collect; [`GRACE`] here) and 15 s (gp-launch's quit deadline), so this
/// is generous.
const BOUND: Duration = Duration::from_secs(90);

/// gp-sample's and gp-collect's grace when the signal goes to that stage alone: it passes its
/// input on for that long before it ends, whatever the length; the default 10 s (their unit
/// tests) would make each such case wait 10 s.
const GRACE: &[&str] = &["--grace", "2s"];

struct Case {
    p: Pipeline,
    ended: Ended,
}

/// Starts a pipeline for `phase`, waits for the record that shows it is there, signals.
fn run(phase: Phase, target: Option<Stage>, sig: i32) -> Case {
    let spec = Spec::new(&phase.migrate_args());
    // The signalled stage's grace is what ends these runs; to the group, the defaults stand (the
    // input ends long before them, and gp-collect must wait for everything upstream says).
    let spec = match target {
        Some(Stage::Sample) => spec.sample_args(GRACE),
        Some(Stage::Collect) => spec.collect_args(GRACE),
        _ => spec,
    };
    let mut p = Pipeline::start(&spec);
    p.wait_for(phase.name(), |r| phase.entered(r));
    assert!(
        !phase.left(&p.records()),
        "the run left {phase} before the signal could be sent\n{}",
        p.logs()
    );
    match target {
        None => p.signal_group(sig),
        Some(stage) => p.signal(stage, sig),
    }
    let ended = p.finish(BOUND);
    p.assert_clean();
    let name = match target {
        None => format!("{} to the group in {phase}", signal_name(sig)),
        Some(stage) => format!("{} to {stage} in {phase}", signal_name(sig)),
    };
    log_time(
        &name,
        ended.after_fault.unwrap().as_secs_f64(),
        BOUND.as_secs_f64(),
        ended.total.as_secs_f64(),
    );
    if std::env::var_os("GP_FAULTS_VERBOSE").is_some() {
        eprintln!("{}\n{}", ended.describe(), p.logs());
    }
    Case { p, ended }
}

impl Case {
    fn report(&self) -> Report {
        self.p.report()
    }

    fn ctx(&self) -> String {
        format!("{}\n{}", self.ended.describe(), self.p.logs())
    }
}

/// The report as text, for "does it say what happened" checks.
fn text(r: &Report) -> String {
    serde_json::to_string(r).unwrap()
}

/// Ctrl-C: the stages end by SIGINT's convention (130), gp-collect writes the report and says it
/// was interrupted, gp-migrate's result says so (before the migration ended) or stays
/// `completed` (after).
fn ctrl_c(phase: Phase) {
    let _lock = vm_test_lock();
    let c = run(phase, None, SIGINT);
    let r = c.report();
    let ext = r.guestperf_rs.as_ref().unwrap();
    for stage in [Stage::Launch, Stage::Migrate, Stage::Collect] {
        assert_eq!(c.ended.code(stage), 130, "{stage}\n{}", c.ctx());
    }
    assert!(
        ext.input.ended.starts_with("SIGINT"),
        "{}\n{}",
        ext.input.ended,
        c.ctx()
    );
    // Nothing lost: every line that went through the tap is in the report, and gp-launch's
    // last records (the exit of every VM it started: in boot the signal can come before the
    // destination is spawned) made it through.
    assert_eq!(ext.input.records, c.p.lines().len() as u64, "{}", c.ctx());
    assert!(!ext.vms.is_empty(), "{}", c.ctx());
    assert_eq!(ext.vm_exits.len(), ext.vms.len(), "{}", c.ctx());
    let result = ext.result.as_ref().expect("a result");
    assert!(
        ext.result_in_stream,
        "gp-migrate wrote the result\n{}",
        c.ctx()
    );
    // The report's outcome: gp-migrate's, or, when gp-launch stopped the VMs on the signal
    // before gp-migrate acted on it (its result then says the migration failed), interrupted
    // by gp-launch's signal.
    let outcome = r.result.as_ref().expect("a result");
    if phase.after_migration() {
        assert_eq!(result.outcome, Outcome::Completed, "{}", c.ctx());
        assert_eq!(outcome.outcome, Some(Outcome::Completed), "{}", c.ctx());
    } else {
        assert_eq!(
            outcome.outcome,
            Some(Outcome::Interrupted),
            "{outcome:?}\n{}",
            c.ctx()
        );
        let reason = outcome.reason.as_deref().unwrap_or_default();
        assert!(reason.contains("SIGINT"), "{outcome:?}");
    }
}

#[test]
fn ctrl_c_in_boot() {
    ctrl_c(Phase::Boot);
}

#[test]
fn ctrl_c_in_settling() {
    ctrl_c(Phase::Settling);
}

#[test]
fn ctrl_c_in_pre_copy() {
    ctrl_c(Phase::PreCopy);
}

#[test]
fn ctrl_c_in_post_copy() {
    ctrl_c(Phase::PostCopy);
}

#[test]
fn ctrl_c_in_settling_after() {
    ctrl_c(Phase::SettlingAfter);
}

#[test]
fn ctrl_c_in_shutdown() {
    ctrl_c(Phase::Shutdown);
}

/// SIGTERM to one stage: that stage ends with 143, the rest of the pipeline winds down (closed
/// pipes, ended input), and the report names the signal.
fn sigterm(phase: Phase, stage: Stage) -> (Case, Report) {
    let _lock = vm_test_lock();
    let c = run(phase, Some(stage), SIGTERM);
    assert_eq!(c.ended.code(stage), 143, "{stage}\n{}", c.ctx());
    let r = c.report();
    let ext = r.guestperf_rs.as_ref().unwrap();
    // Either the report names the signal, or nothing was lost (every line reached the report,
    // both VMs' exits included) and the stage's exit status is the whole story.
    let nothing_lost = ext.input.records == c.p.lines().len() as u64 && ext.vm_exits.len() == 2;
    assert!(
        text(&r).contains("SIGTERM") || nothing_lost,
        "the report does not mention SIGTERM, and records were lost\n{}",
        c.ctx()
    );
    assert!(ext.result.is_some(), "no result\n{}", c.ctx());
    (c, r)
}

#[test]
fn sigterm_to_gp_launch_in_boot() {
    let (c, r) = sigterm(Phase::Boot, Stage::Launch);
    let ext = r.guestperf_rs.as_ref().unwrap();
    assert_ne!(ext.result.as_ref().unwrap().outcome, Outcome::Completed);
    assert!(
        ext.vm_exits
            .iter()
            .all(|e| e.reason.as_deref().unwrap_or("").contains("SIGTERM")),
        "{}",
        c.ctx()
    );
}

#[test]
fn sigterm_to_gp_sample_in_settling() {
    let (c, r) = sigterm(Phase::Settling, Stage::Sample);
    // gp-sample passes input on for its grace (2 s here), then says in the stream that it ended
    // with its input open; gp-migrate, whose input then ends, says so too.
    let ext = r.guestperf_rs.as_ref().unwrap();
    let said = |stage: &str, what: &str| {
        ext.stage_errors
            .iter()
            .any(|e| e.stage == stage && e.message.contains(what))
    };
    assert!(said("gp-sample", "input still open"), "{}", c.ctx());
    assert!(said("gp-migrate", "input ended"), "{}", c.ctx());
    assert_eq!(c.ended.code(Stage::Migrate), 1, "{}", c.ctx());
}

#[test]
fn sigterm_to_gp_collect_in_pre_copy() {
    let (c, r) = sigterm(Phase::PreCopy, Stage::Collect);
    let ext = r.guestperf_rs.as_ref().unwrap();
    assert_ne!(ext.result.as_ref().unwrap().outcome, Outcome::Completed);
    assert!(
        ext.input.ended.starts_with("SIGTERM"),
        "{}\n{}",
        ext.input.ended,
        c.ctx()
    );
}

#[test]
fn sigterm_to_gp_launch_in_post_copy() {
    let (c, r) = sigterm(Phase::PostCopy, Stage::Launch);
    let result = r.guestperf_rs.as_ref().unwrap().result.clone().unwrap();
    assert!(
        result.reason.contains("guest is lost"),
        "{result:?}\n{}",
        c.ctx()
    );
}

#[test]
fn sigterm_to_gp_migrate_in_settling_after() {
    sigterm(Phase::SettlingAfter, Stage::Migrate);
}

#[test]
fn sigterm_to_gp_sample_in_shutdown() {
    sigterm(Phase::Shutdown, Stage::Sample);
}

/// A signal to one stage alone mid pre-copy (8 MiB/s for a 256 MiB guest: the migration cannot
/// end within the grace of gp-sample and gp-collect): the stage ends by the signal's
/// convention (128 + N), gp-collect writes a readable report, and its result says the run was
/// interrupted and by which signal.
fn alone(stage: Stage, sig: i32) {
    let _lock = vm_test_lock();
    let c = run(Phase::PreCopy, Some(stage), sig);
    let name = signal_name(sig);
    assert_eq!(c.ended.code(stage), 128 + sig, "{stage}\n{}", c.ctx());
    let r = c.report();
    let result = r.result.clone().expect("a result");
    assert_eq!(
        result.outcome,
        Some(Outcome::Interrupted),
        "{result:?}\n{}",
        c.ctx()
    );
    assert!(!result.success);
    let summary = r.summary.as_ref().unwrap();
    assert_eq!(summary.outcome, result.outcome);
    assert!(
        summary.reason.contains(&name) && result.reason.as_deref() == Some(&summary.reason),
        "the report's outcome does not name {name}: {summary:?}\n{}",
        c.ctx()
    );
}

#[test]
fn sighup_to_gp_launch_alone() {
    alone(Stage::Launch, SIGHUP);
}

#[test]
fn sigint_to_gp_launch_alone() {
    alone(Stage::Launch, SIGINT);
}

#[test]
fn sigterm_to_gp_launch_alone() {
    alone(Stage::Launch, SIGTERM);
}

#[test]
fn sighup_to_gp_sample_alone() {
    alone(Stage::Sample, SIGHUP);
}

#[test]
fn sigint_to_gp_sample_alone() {
    alone(Stage::Sample, SIGINT);
}

#[test]
fn sigterm_to_gp_sample_alone() {
    alone(Stage::Sample, SIGTERM);
}

#[test]
fn sighup_to_gp_migrate_alone() {
    alone(Stage::Migrate, SIGHUP);
}

#[test]
fn sigint_to_gp_migrate_alone() {
    alone(Stage::Migrate, SIGINT);
}

#[test]
fn sigterm_to_gp_migrate_alone() {
    alone(Stage::Migrate, SIGTERM);
}

#[test]
fn sighup_to_gp_collect_alone() {
    alone(Stage::Collect, SIGHUP);
}

#[test]
fn sigint_to_gp_collect_alone() {
    alone(Stage::Collect, SIGINT);
}

#[test]
fn sigterm_to_gp_collect_alone() {
    alone(Stage::Collect, SIGTERM);
}

/// A signal to a running `guestperf` (a closed terminal or a dropped ssh session sends SIGHUP):
/// it forwards the signal to every stage once, exits 128 + N, and the report is written and
/// readable: its result is interrupted, naming the signal, and so is `input.ended`.
fn guestperf_signalled(sig: i32) {
    let _lock = vm_test_lock();
    let name = signal_name(sig);
    // gp-launch --verbose says when the workload runs; gp-migrate then settles for 8 s.
    let mut g = OneShot::start(&["--sleep", "8"]);
    g.wait_for_stderr("src workload started");
    g.signal(sig);
    let (status, took) = g.finish(BOUND);
    g.assert_clean();
    log_time(
        &format!("{name} to guestperf while settling"),
        took.as_secs_f64(),
        BOUND.as_secs_f64(),
        g.started().elapsed().as_secs_f64(),
    );
    assert_eq!(OneShot::code(status), 128 + sig, "{}", g.logs());
    let r = g.report();
    let ext = r.guestperf_rs.as_ref().unwrap();
    let result = ext.result.as_ref().expect("a result");
    assert_eq!(
        result.outcome,
        Outcome::Interrupted,
        "{result:?}\n{}",
        g.logs()
    );
    assert!(result.reason.contains(&name), "{result:?}\n{}", g.logs());
    assert!(
        ext.input.ended.starts_with(&name),
        "{}\n{}",
        ext.input.ended,
        g.logs()
    );
    assert_eq!(
        ext.vm_exits.len(),
        2,
        "both VMs' exits reach the report\n{}",
        g.logs()
    );
    assert!(
        g.logs()
            .contains(&format!("guestperf: interrupted by {name}")),
        "guestperf says why it ended\n{}",
        g.logs()
    );
}

#[test]
fn sighup_to_guestperf() {
    guestperf_signalled(SIGHUP);
}

#[test]
fn sigint_to_guestperf() {
    guestperf_signalled(SIGINT);
}

#[test]
fn sigterm_to_guestperf() {
    guestperf_signalled(SIGTERM);
}
