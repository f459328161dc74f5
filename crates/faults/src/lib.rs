//! gp-faults: helpers for proving the whole guestperf-rs pipeline under faults, and the fault
//! suite itself (`tests/`).
//!
//! The suite builds the pipeline by hand, as a shell would (`gp-launch | gp-sample |
//! gp-migrate | gp-collect`, one process group, every stage's pid known), watches the stream
//! through a tap between the last filter and the sink, injects a fault when a record shows the
//! run is in the phase under test (no sleeps as synchronization), and then checks three things:
//! the run ended within a bound, no QEMU process, socket or runtime directory remains, and the
//! report (or the error) says what happened. `docs/faults.md` lists every case.
//!
//! - [`pipeline`]: start a pipeline, wait for records, send signals, collect the end.
//! - [`phase`]: the phases of a run, told apart by the records.
//! - [`cleanup`]: nothing outlives a run (QEMUs, sockets, runtime directories).
//! - [`fake`]: QMP peers that accept and never answer.
//! - [`oneshot`]: the one-shot `guestperf` started, watched and signalled as a user would.
//! - [`corpus`]: the hostile NDJSON lines and reports kept in `corpus/`.

pub mod cleanup;
pub mod corpus;
pub mod fake;
pub mod oneshot;
pub mod phase;
pub mod pipeline;

pub use oneshot::OneShot;
pub use phase::Phase;
pub use pipeline::{Ended, Pipeline, Sink, Spec, Stage};

/// [`log_time`] for a case with no fault to time from: the whole run, `took`, against `bound`.
pub fn log_whole_run(case: &str, took: std::time::Duration, bound: std::time::Duration) {
    log_time(
        case,
        took.as_secs_f64(),
        bound.as_secs_f64(),
        took.as_secs_f64(),
    );
}

/// Writes a case's timing line to stderr and, when `GP_FAULTS_TIMES` names a file, appends it
/// there (tab-separated: case, fault-to-end seconds, bound seconds, whole run seconds), so the
/// table in docs/faults.md can be regenerated from a run of the suite.
pub fn log_time(case: &str, after_fault_s: f64, bound_s: f64, total_s: f64) {
    eprintln!(
        "fault case {case}: ended {after_fault_s:.1} s after the fault (bound {bound_s:.0} s), \
         whole run {total_s:.1} s"
    );
    if let Some(path) = std::env::var_os("GP_FAULTS_TIMES") {
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(f, "{case}\t{after_fault_s:.1}\t{bound_s:.0}\t{total_s:.1}");
        }
    }
}
