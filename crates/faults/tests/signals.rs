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

/// Ctrl-C: every stage ends by SIGINT's convention (130) or, for gp-sample, quietly when its
/// output closed; gp-collect writes the report and says it was interrupted.
fn ctrl_c(phase: Phase) -> (Case, Report) {
    let _lock = vm_test_lock();
    let c = run(phase, None, SIGINT);
    let r = c.report();
    let ext = r.guestperf_rs.as_ref().unwrap();
    assert_eq!(c.ended.code(Stage::Collect), 130, "{}", c.ctx());
    assert!(
        ext.input.ended.starts_with("SIGINT"),
        "{}\n{}",
        ext.input.ended,
        c.ctx()
    );
    assert_eq!(c.ended.code(Stage::Launch), 130, "{}", c.ctx());
    assert_eq!(c.ended.code(Stage::Migrate), 130, "{}", c.ctx());
    let result = ext.result.as_ref().expect("a result");
    if phase.after_migration() {
        assert_eq!(result.outcome, Outcome::Completed, "{}", c.ctx());
    } else {
        assert_eq!(result.outcome, Outcome::Interrupted, "{}", c.ctx());
        assert!(
            ext.result_in_stream,
            "gp-migrate wrote the result\n{}",
            c.ctx()
        );
        assert!(result.reason.contains("SIGINT"), "{result:?}");
    }
    (c, r)
}

#[test]
fn ctrl_c_in_boot() {
    let (_c, r) = ctrl_c(Phase::Boot);
    eprintln!("{:?}", r.guestperf_rs.unwrap().vm_exits);
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

fn _unused() {
    let _ = SIGTERM;
}
