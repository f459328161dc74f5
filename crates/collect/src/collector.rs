//! Accumulates the records of a stream and builds the [`Report`].

use gp_records::migrate::Scenario;
use gp_records::ndjson::Line;
use gp_records::report::{
    Extended, Hardware, InputError, ProgressSnapshot, Report, ReportResult, Summary, TimingRecord,
};
use gp_records::sample::ThreadClass;
use gp_records::{MigrationResult, Outcome, Progress, Record, Role, StageError};
use serde_json::Value;

use crate::summary::summarize;

/// What the collector has read so far. Feed it lines with [`Collector::push`]; nothing is
/// dropped: every record lands somewhere in the report.
#[derive(Debug, Default)]
pub struct Collector {
    ext: Extended,
    last_time_s: Option<f64>,
}

impl Collector {
    pub fn new() -> Self {
        Collector::default()
    }

    /// Keeps one input line.
    pub fn push(&mut self, line: Line) {
        self.ext.input.lines = self.ext.input.lines.max(line.number);
        self.ext.input.records += 1;
        let Some(record) = line.record else {
            // A type this version does not know: kept verbatim. The reader checked it is a JSON
            // object with a string "type", so this parse does not fail.
            let value = serde_json::from_str::<Value>(&line.raw).unwrap_or(Value::String(line.raw));
            self.ext.unrecognized.push(value);
            return;
        };
        let t = record.time_s();
        if t.is_finite() {
            self.last_time_s = Some(self.last_time_s.map_or(t, |l| l.max(t)));
        }
        let ext = &mut self.ext;
        match record {
            Record::Launch(r) if ext.header.is_none() => ext.header = Some(r),
            Record::Scenario(r) if ext.scenario.is_none() => ext.scenario = Some(r),
            Record::Result(r) if ext.result.is_none() => {
                ext.result = Some(r);
                ext.result_in_stream = true;
            }
            r @ (Record::Launch(_) | Record::Scenario(_) | Record::Result(_)) => {
                ext.duplicates.push(r)
            }
            Record::Vm(r) => ext.vms.push(r),
            Record::VmExit(r) => ext.vm_exits.push(r),
            Record::GuestStart(r) => ext.guest_start.push(r),
            Record::GuestProgress(r) => ext.guest_progress.push(r),
            Record::GuestWarm(r) => ext.guest_warm.push(r),
            Record::GuestGb(r) => ext.guest_gb.push(r),
            Record::Console(r) => ext.console.push(r),
            Record::CpuSample(r) => ext.samples.push(r),
            Record::Progress(r) => ext.progress.push(r),
            Record::QmpEvent(r) => ext.events.push(r),
            Record::QemuTrace(r) => ext.traces.push(r),
            Record::DirtyRate(r) => ext.dirty_rates.push(r),
            Record::Action(r) => ext.actions.push(r),
            Record::ClockOffset(r) => ext.clock_offsets.push(r),
            Record::StageError(r) => ext.stage_errors.push(r),
        }
    }

    /// Notes a line that could not be read.
    pub fn push_error(&mut self, line: u64, message: String) {
        self.ext.input.lines = self.ext.input.lines.max(line);
        self.ext.input.errors.push(InputError { line, message });
    }

    /// Number of lines that could not be read.
    pub fn error_count(&self) -> usize {
        self.ext.input.errors.len()
    }

    /// Builds the report. `ended` says how the input ended (`end of input`, a signal, an error).
    pub fn finish(mut self, ended: &str, version: &str) -> Report {
        self.ext.version = version.to_string();
        self.ext.input.ended = ended.to_string();
        if self.ext.result.is_none() {
            self.ext.result = Some(self.made_up_result(ended));
            self.ext.result_in_stream = false;
        }
        let ext = self.ext;
        let progress_history = progress_history(&ext.progress);
        let mut summary = summarize(&ext, &progress_history);
        let header = ext.header.as_ref();
        let scenario_rec = ext.scenario.as_ref();
        let outcome = ext
            .result
            .as_ref()
            .map(|r| run_outcome(r, &ext.stage_errors));
        let lost = summary.mode.as_ref().and_then(|m| m.guest_lost.as_ref());
        // gp-migrate says so itself when it saw it; a stream cut short needs the report to.
        let outcome = outcome.map(|(o, reason)| match lost {
            Some(_) if !reason.contains("guest is lost") && !reason.contains("guest was lost") => {
                (o, format!("{reason}; the guest was lost during post-copy"))
            }
            _ => (o, reason),
        });
        if let Some((outcome, reason)) = &outcome {
            summary.outcome = Some(*outcome);
            summary.reason = reason.clone();
        }
        let result = outcome.map(|(outcome, reason)| ReportResult {
            success: outcome == Outcome::Completed && !ext.actions.iter().any(is_pause),
            outcome: Some(outcome),
            reason: Some(reason),
        });
        let (qemu_timings, vcpu_timings) = cpu_timings(&ext);
        readable(Report {
            hardware: header
                .map(|h| Hardware::from(&h.hardware))
                .unwrap_or_default(),
            scenario: scenario_rec
                .map(|s| s.scenario.clone())
                .unwrap_or_else(|| Scenario {
                    name: "unknown".into(),
                    ..Scenario::default()
                }),
            progress_history,
            guest_timings: guest_timings(&ext),
            qemu_timings,
            vcpu_timings,
            result,
            binary: header.map(|h| h.qemu_binary.clone()).unwrap_or_default(),
            dst_host: header
                .and_then(|h| h.dst_host.clone())
                .unwrap_or_else(|| "localhost".into()),
            kernel: header.map(|h| h.kernel.clone()).unwrap_or_default(),
            initrd: header.map(|h| h.initrd.clone()).unwrap_or_default(),
            transport: header.map(|h| h.transport.clone()).unwrap_or_default(),
            sleep: scenario_rec.map_or(0.0, |s| s.sleep_s),
            summary: Some(summary),
            guestperf_rs: Some(ext),
        })
    }

    /// The result of a stream that ended without gp-migrate's.
    fn made_up_result(&self, ended: &str) -> MigrationResult {
        let mut reason = if self.ext.scenario.is_none() && self.ext.progress.is_empty() {
            "stream ended without a migration (no gp-migrate records)".to_string()
        } else {
            "stream ended before gp-migrate's result".to_string()
        };
        if ended != crate::END_OF_INPUT {
            reason.push_str(&format!(" ({ended})"));
        }
        for e in &self.ext.stage_errors {
            reason.push_str(&format!("; {}: {}", e.stage, e.message));
        }
        MigrationResult {
            time_s: self.last_time_s.unwrap_or_else(gp_records::now_s),
            outcome: Outcome::Interrupted,
            reason,
            total_time_ms: None,
            downtime_ms: None,
            setup_time_ms: None,
            transferred_bytes: None,
            iterations: None,
        }
    }
}

/// The run's outcome as the report states it: gp-migrate's, except that a migration that failed
/// or was cancelled after a stage was ended by a signal (its `stage_error` says which) was
/// interrupted by that signal: gp-launch stopping the VMs on SIGTERM, or gp-sample ending on
/// SIGHUP and closing the pipe, makes the migration fail, but the run did not fail by itself.
/// gp-migrate's own record stays as it was in `guestperf_rs.result`.
fn run_outcome(result: &MigrationResult, stage_errors: &[StageError]) -> (Outcome, String) {
    let signalled = stage_errors
        .iter()
        .find_map(|e| e.signal.map(|sig| (e, sig)));
    match (result.outcome, signalled) {
        (Outcome::Failed | Outcome::Cancelled, Some((e, sig))) => (
            Outcome::Interrupted,
            format!(
                "interrupted: {} received {} (gp-migrate's result: {}: {})",
                e.stage,
                gp_stage::signals::signal_name(sig),
                result.outcome.as_str(),
                result.reason
            ),
        ),
        _ => (result.outcome, result.reason.clone()),
    }
}

fn is_pause(a: &gp_records::Action) -> bool {
    a.action == "pause"
}

/// A report must read back: serde_json writes a float that is not finite as `null`, which no
/// reader takes for a number. Records with values out of range (times near the largest float,
/// CPU times that overflow when added) can make a computed figure infinite: such timing points
/// and summary figures are left out, and the summary's notes say so. The records themselves
/// came from JSON, so they are finite and kept as they are.
fn readable(mut report: Report) -> Report {
    let mut dropped = Vec::new();
    for (name, timings) in [
        ("guest_timings", &mut report.guest_timings),
        ("qemu_timings", &mut report.qemu_timings),
        ("vcpu_timings", &mut report.vcpu_timings),
    ] {
        let before = timings.len();
        timings.retain(|t| t.value.is_finite() && t.timestamp.is_finite());
        if timings.len() < before {
            dropped.push(format!("{} of {name}", before - timings.len()));
        }
    }
    if let Some(s) = report.summary.as_mut() {
        let reads_back = serde_json::to_string(s)
            .ok()
            .is_some_and(|text| serde_json::from_str::<Summary>(&text).is_ok());
        if !reads_back {
            *s = Summary {
                outcome: s.outcome,
                reason: std::mem::take(&mut s.reason),
                notes: std::mem::take(&mut s.notes),
                ..Summary::default()
            };
            dropped.push("the summary's figures".to_string());
        }
        if !dropped.is_empty() {
            s.notes.push(format!(
                "left out as not finite (records with values out of range): {}",
                dropped.join(", ")
            ));
        }
    }
    report
}

/// The original's progress history: source snapshots, the first, each one whose iteration
/// count grew, and the first final one (where the original stopped polling).
pub fn progress_history(progress: &[Progress]) -> Vec<ProgressSnapshot> {
    let mut history: Vec<ProgressSnapshot> = Vec::new();
    let mut last_iterations = None;
    for p in progress.iter().filter(|p| p.role == Role::Src) {
        // Cheap checks first; a snapshot is only built for the ones kept.
        let iterations = p
            .info
            .get("ram")
            .and_then(|r| r.get("dirty-sync-count"))
            .and_then(Value::as_u64)
            .or(p.iteration)
            .unwrap_or(0);
        let status = p
            .info
            .get("status")
            .and_then(Value::as_str)
            .unwrap_or(&p.status);
        let is_final = matches!(status, "completed" | "failed" | "cancelled");
        if is_final || last_iterations.map_or(true, |last| last < iterations) {
            history.push(ProgressSnapshot::from_progress(p));
            last_iterations = Some(iterations);
        }
        if is_final {
            break;
        }
    }
    history
}

/// The original's guest timings: one record per GB per guest thread, source then destination.
/// `timestamp` is the host arrival time (the original used the guest clock, which it assumed
/// equal to the host's); the guest clock is kept in `guestperf_rs.guest_gb`.
fn guest_timings(ext: &Extended) -> Vec<TimingRecord> {
    let mut t: Vec<TimingRecord> = ext
        .guest_gb
        .iter()
        .map(|g| TimingRecord {
            tid: g.tid.map_or(g.thread as u64, u64::from),
            timestamp: g.time_s,
            value: g.elapsed_ms,
        })
        .collect();
    t.sort_by(|a, b| a.timestamp.total_cmp(&b.timestamp));
    t
}

/// The original's qemu and vCPU timings: cumulative CPU ms of the source QEMU process and of
/// each source vCPU thread, per sample. vCPU threads use schedstat's precise run time when
/// present (same unit), the process its user + system time.
fn cpu_timings(ext: &Extended) -> (Vec<TimingRecord>, Vec<TimingRecord>) {
    let mut qemu = Vec::new();
    let mut vcpu = Vec::new();
    for s in ext.samples.iter().filter(|s| s.role == Role::Src) {
        qemu.push(TimingRecord {
            tid: s.pid as u64,
            timestamp: s.time_s,
            value: s.process.user_ms + s.process.system_ms,
        });
        for t in s.threads.iter().filter(|t| t.class == ThreadClass::Vcpu) {
            vcpu.push(TimingRecord {
                tid: t.tid as u64,
                timestamp: s.time_s,
                value: t.cpu.ms(),
            });
        }
    }
    (qemu, vcpu)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(outcome: Outcome, reason: &str) -> MigrationResult {
        MigrationResult {
            time_s: 1.0,
            outcome,
            reason: reason.into(),
            total_time_ms: None,
            downtime_ms: None,
            setup_time_ms: None,
            transferred_bytes: None,
            iterations: None,
        }
    }

    #[test]
    fn a_migration_failed_by_a_signalled_stage_was_interrupted_by_that_signal() {
        let failed = result(Outcome::Failed, "lost the source during the migration");
        let errors = [
            StageError::new("gp-sample", "1 malformed input line(s)"),
            StageError::signalled("gp-launch", 15, "interrupted by SIGTERM: stopping both VMs"),
        ];
        let (outcome, reason) = run_outcome(&failed, &errors);
        assert_eq!(outcome, Outcome::Interrupted);
        assert_eq!(
            reason,
            "interrupted: gp-launch received SIGTERM (gp-migrate's result: failed: lost the \
             source during the migration)"
        );
        // Without a signal, or with a migration that completed, gp-migrate's word stands.
        assert_eq!(
            run_outcome(&failed, &errors[..1]),
            (Outcome::Failed, failed.reason.clone())
        );
        let done = result(Outcome::Completed, "migration completed");
        assert_eq!(run_outcome(&done, &errors).0, Outcome::Completed);
    }
}
