//! Ctrl-C (SIGINT to the whole process group) and SIGTERM to one stage, in each phase of a run:
//! boot, settling, pre-copy, post-copy, settling after, shutdown. Real QEMU under TCG.
//!
//! Every case: the pipeline ends within [`BOUND`] of the signal; no QEMU, socket or runtime
//! directory remains; the report (or the stages' errors) says what happened.

use std::time::Duration;

use gp_faults::{log_time, Ended, Phase, Pipeline, Spec, Stage};
use gp_qemu::testing::vm_test_lock;
use gp_records::report::Report;
use gp_records::Outcome;
use libc::{SIGINT, SIGTERM};

/// Longest a pipeline may take to end after the signal: the stages' grace periods are 10 s
/// (gp-sample, gp-collect) and 15 s (gp-launch's quit deadline), so this is generous.
const BOUND: Duration = Duration::from_secs(90);

struct Case {
    p: Pipeline,
    ended: Ended,
}

/// Starts a pipeline for `phase`, waits for the record that shows it is there, signals.
fn run(phase: Phase, target: Option<Stage>, sig: i32) -> Case {
    let mut p = Pipeline::start(&Spec::new(&phase.migrate_args()));
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
        None => format!("SIGINT to the group in {phase}"),
        Some(stage) => format!("SIGTERM to {stage} in {phase}"),
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
    // last records (both VMs' exits) made it through.
    assert_eq!(ext.input.records, c.p.lines().len() as u64, "{}", c.ctx());
    assert_eq!(ext.vm_exits.len(), 2, "{}", c.ctx());
    let result = ext.result.as_ref().expect("a result");
    assert!(
        ext.result_in_stream,
        "gp-migrate wrote the result\n{}",
        c.ctx()
    );
    if phase.after_migration() {
        assert_eq!(result.outcome, Outcome::Completed, "{}", c.ctx());
    } else {
        assert_eq!(result.outcome, Outcome::Interrupted, "{}", c.ctx());
        assert!(result.reason.contains("SIGINT"), "{result:?}");
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
    // gp-sample passes input on for its 10 s grace (on an idle machine the migration completes
    // meanwhile), then says in the stream that it ended with its input open; gp-migrate, whose
    // input then ends, says so too.
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
