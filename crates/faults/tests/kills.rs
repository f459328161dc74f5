//! Things that die without warning: kill -9 of a QEMU (destination mid pre-copy and mid
//! post-copy, source mid pre-copy and mid post-copy), kill -9 of each stage binary, a consumer
//! that closes its input early (`| head -n 5`), and a QEMU that stops answering (SIGSTOP).
//! Real QEMU under TCG.
//!
//! Every case: the pipeline ends within [`BOUND`]; no QEMU, socket or runtime directory
//! remains; the report (or the stages' errors) says what happened.

use std::time::Duration;

use gp_faults::{log_time, log_whole_run, Ended, Phase, Pipeline, Sink, Spec, Stage};
use gp_records::report::Report;
use gp_records::{Outcome, Role};
use gp_testkit::vm_test_lock;
use libc::{SIGKILL, SIGSTOP};

/// gp-migrate gives a lost destination up to 30 s to show in the source's status; everything
/// else ends in seconds.
const BOUND: Duration = Duration::from_secs(90);

fn finish(p: &mut Pipeline, case: &str, bound: Duration) -> Ended {
    let ended = p.finish(bound);
    p.assert_clean();
    log_time(
        case,
        ended.after_fault.unwrap().as_secs_f64(),
        bound.as_secs_f64(),
        ended.total.as_secs_f64(),
    );
    if std::env::var_os("GP_FAULTS_VERBOSE").is_some() {
        eprintln!("{}\n{}", ended.describe(), p.logs());
    }
    ended
}

/// Waits for `phase`, then kill -9s the `role` QEMU (its pid from the vm record); the report's
/// result must say the migration failed.
fn kill_qemu(phase: Phase, role: Role) -> (Pipeline, Ended, Report, gp_records::MigrationResult) {
    let mut p = Pipeline::start(&Spec::new(&phase.migrate_args()));
    let vm = p.vm(role);
    p.wait_for(phase.name(), |r| phase.entered(r));
    assert!(
        !phase.left(&p.records()),
        "left {phase} too soon\n{}",
        p.logs()
    );
    p.signal_pid(vm.pid, &format!("the {role} QEMU"), SIGKILL);
    let ended = finish(
        &mut p,
        &format!("kill -9 of the {role} QEMU in {phase}"),
        BOUND,
    );
    let r = p.report();
    // The killed QEMU's exit is in the stream, with the signal.
    let ext = r.guestperf_rs.as_ref().unwrap();
    let exit = ext
        .vm_exits
        .iter()
        .find(|e| e.pid == vm.pid)
        .unwrap_or_else(|| panic!("no vm_exit for the killed QEMU\n{}", p.logs()));
    assert_eq!(exit.signal, Some(SIGKILL), "{exit:?}");
    let result = result_of(&r);
    assert_eq!(result.outcome, Outcome::Failed, "{}", p.logs());
    (p, ended, r, result)
}

fn result_of(r: &Report) -> gp_records::MigrationResult {
    r.guestperf_rs
        .as_ref()
        .unwrap()
        .result
        .clone()
        .expect("a result")
}

#[test]
fn kill_9_of_the_destination_qemu_mid_pre_copy() {
    let _lock = vm_test_lock();
    let (_p, ended, r, result) = kill_qemu(Phase::PreCopy, Role::Dst);
    assert!(result.reason.contains("destination"), "{result:?}");
    assert!(!result.reason.contains("guest is lost"), "{result:?}");
    assert_eq!(ended.code(Stage::Migrate), 3, "{}", ended.describe());
    // The source lived through it and was quit at the end.
    assert!(r
        .guestperf_rs
        .unwrap()
        .vm_exits
        .iter()
        .any(|e| e.role == Role::Src && e.status == 0));
}

#[test]
fn kill_9_of_the_destination_qemu_mid_post_copy() {
    let _lock = vm_test_lock();
    let (_p, ended, _r, result) = kill_qemu(Phase::PostCopy, Role::Dst);
    assert!(result.reason.contains("guest is lost"), "{result:?}");
    assert_eq!(ended.code(Stage::Migrate), 3, "{}", ended.describe());
}

#[test]
fn kill_9_of_the_source_qemu_mid_pre_copy() {
    let _lock = vm_test_lock();
    let (_p, ended, _r, result) = kill_qemu(Phase::PreCopy, Role::Src);
    assert!(
        result.reason.contains("source") && !result.reason.contains("guest is lost"),
        "{result:?}"
    );
    assert_eq!(ended.code(Stage::Migrate), 3, "{}", ended.describe());
}

#[test]
fn kill_9_of_the_source_qemu_mid_post_copy_says_the_guest_is_lost() {
    let _lock = vm_test_lock();
    let (_p, _ended, _r, result) = kill_qemu(Phase::PostCopy, Role::Src);
    assert!(
        result.reason.contains("source") && result.reason.contains("guest is lost"),
        "{result:?}"
    );
}

/// kill -9 of a stage mid pre-copy.
fn kill_stage(stage: Stage) -> (Pipeline, Ended) {
    let phase = Phase::PreCopy;
    let mut p = Pipeline::start(&Spec::new(&phase.migrate_args()));
    p.wait_for(phase.name(), |r| phase.entered(r));
    p.signal(stage, SIGKILL);
    let ended = finish(&mut p, &format!("kill -9 of {stage} in {phase}"), BOUND);
    assert_eq!(ended.code(stage), 128 + SIGKILL, "{}", ended.describe());
    (p, ended)
}

#[test]
fn kill_9_of_gp_sample_mid_pre_copy() {
    let _lock = vm_test_lock();
    let (p, ended) = kill_stage(Stage::Sample);
    // gp-launch sees its output close and stops both VMs; gp-migrate loses them mid-migration.
    let r = p.report();
    let result = result_of(&r);
    assert_eq!(
        result.outcome,
        Outcome::Failed,
        "{}\n{}",
        ended.describe(),
        p.logs()
    );
    assert!(
        p.stderr(Stage::Launch).is_empty() || ended.code(Stage::Launch) == 0,
        "{}",
        ended.describe()
    );
}

#[test]
fn kill_9_of_gp_migrate_mid_pre_copy() {
    let _lock = vm_test_lock();
    let (p, ended) = kill_stage(Stage::Migrate);
    // gp-collect made the result up and says the stream ended early.
    let r = p.report();
    let ext = r.guestperf_rs.as_ref().unwrap();
    assert!(!ext.result_in_stream, "{}", ended.describe());
    let result = ext.result.as_ref().unwrap();
    assert_eq!(result.outcome, Outcome::Interrupted);
    assert!(
        result
            .reason
            .contains("stream ended before gp-migrate's result"),
        "{result:?}"
    );
    assert_eq!(ended.code(Stage::Collect), 0, "{}", ended.describe());
}

#[test]
fn kill_9_of_gp_collect_mid_pre_copy() {
    let _lock = vm_test_lock();
    let (p, ended) = kill_stage(Stage::Collect);
    // The report is lost with gp-collect, but never half-written; the stages before it see the
    // closed pipe and stop (gp-migrate: exit 5, interrupted).
    assert!(!p.report_path().exists(), "a report appeared");
    let leftovers: Vec<_> = std::fs::read_dir(p.dir())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(".gp-collect-"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    assert_eq!(ended.code(Stage::Migrate), 5, "{}", ended.describe());
    assert!(
        p.stderr(Stage::Migrate).contains("output closed"),
        "{}",
        p.stderr(Stage::Migrate)
    );
}

#[test]
fn a_consumer_that_closes_its_input_early_stops_the_pipeline() {
    let _lock = vm_test_lock();
    let spec = Spec::new(&Phase::PreCopy.migrate_args()).sink(Sink::Head(5));
    let mut p = Pipeline::start(&spec);
    // No fault to inject: `head` closes its input after 5 lines. Time from the start.
    let ended = p.finish(BOUND);
    p.assert_clean();
    log_whole_run("head -n 5 as the consumer", ended.total, BOUND);
    assert_eq!(ended.code(Stage::Head), 0);
    // gp-migrate says the output closed (exit 5); gp-sample and gp-launch end quietly.
    assert_eq!(
        ended.code(Stage::Migrate),
        5,
        "{}\n{}",
        ended.describe(),
        p.logs()
    );
    assert_eq!(ended.code(Stage::Sample), 0, "{}", ended.describe());
    assert_eq!(ended.code(Stage::Launch), 0, "{}", ended.describe());
    let out = std::fs::read_to_string(p.dir().join("sink.stdout")).unwrap();
    assert_eq!(out.lines().count(), 5);
}

#[test]
fn a_qemu_that_stops_answering_is_given_up_not_waited_for() {
    let _lock = vm_test_lock();
    // SIGSTOP the source mid pre-copy: its QMP socket still accepts, nothing answers.
    let phase = Phase::PreCopy;
    let mut args = phase.migrate_args();
    args.extend(["--qmp-timeout", "3", "--drain-timeout", "10"]);
    let mut p = Pipeline::start(&Spec::new(&args));
    let vm = p.vm(Role::Src);
    p.wait_for(phase.name(), |r| phase.entered(r));
    p.signal_pid(vm.pid, "the src QEMU", SIGSTOP);
    let ended = finish(
        &mut p,
        "SIGSTOP of the src QEMU in pre-copy",
        Duration::from_secs(60),
    );
    let r = p.report();
    let result = result_of(&r);
    assert_eq!(result.outcome, Outcome::Failed, "{}", p.logs());
    assert!(result.reason.contains("no reply"), "{result:?}");
    assert_eq!(ended.code(Stage::Migrate), 3, "{}", ended.describe());
    // gp-launch ended it once the pipeline after it was gone (a stopped process takes no
    // SIGTERM: it was killed); its vm_exit came after gp-migrate gave up draining, so the
    // report cannot have it, and says the result instead.
    assert!(!gp_testkit::procs::qemu_alive(vm.pid));
}
