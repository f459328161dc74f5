//! The record contract of guestperf-rs.
//!
//! Every stage (`gp-launch`, `gp-migrate`, `gp-sample`, `gp-collect`, ...) exchanges
//! newline-delimited JSON. Each line is one [`Record`], tagged by its `type` field, stamped with
//! the host wall-clock time it was produced (`time_s`). This crate is the only place a record
//! shape is defined; `docs/records.md` documents each one, and a test keeps the two in step.
//!
//! Filter stages read with [`ndjson::Reader`], which hands back every line verbatim together with
//! the parsed record (or `None` for a type this version does not know), so a stage passes every
//! line through unchanged and adds its own with [`ndjson::Writer`].

pub mod launch;
pub mod migrate;
pub mod ndjson;
pub mod report;
pub mod sample;
pub mod size;
pub mod stats;
pub mod stress;
pub mod time;

use serde::{Deserialize, Serialize};

pub use launch::{
    Console, GuestGb, GuestProgress, GuestStart, GuestWarm, Hardware, Launch, Vm, VmExit,
    WorkloadRequest,
};
pub use migrate::{
    Action, DirtyRate, MigrationResult, Outcome, Progress, QemuTrace, QmpEvent, ScenarioRecord,
    Settle,
};
pub use sample::CpuSample;
pub use time::now_s;

/// Which of the two VMs a record concerns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The source VM, booted running the workload.
    Src,
    /// The destination VM, started with `-incoming`.
    Dst,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Src => "src",
            Role::Dst => "dst",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One line of the stream. The `type` field names the variant in snake_case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Record {
    /// gp-launch's header: what ran, where, with which QEMU and hardware.
    Launch(Launch),
    /// A VM is up: its pid, QMP socket, vCPU threads, and (destination) migration URI.
    Vm(Vm),
    /// A VM's QEMU has exited.
    VmExit(VmExit),
    /// The guest workload started (first line `stress` printed).
    GuestStart(GuestStart),
    /// A workload thread finished one fine-grained chunk of work.
    GuestProgress(GuestProgress),
    /// A workload thread finished its first pass: every page of its share written once.
    GuestWarm(GuestWarm),
    /// A workload thread finished one GB of work (the original guestperf's timing record).
    GuestGb(GuestGb),
    /// A line from a VM's serial console that is not workload output.
    Console(Console),
    /// Host CPU time of one QEMU process and each of its threads (gp-sample).
    CpuSample(CpuSample),
    /// The migration scenario gp-migrate runs, and what the QEMUs support.
    Scenario(ScenarioRecord),
    /// One `query-migrate` snapshot.
    Progress(Progress),
    /// A QMP event, with QEMU's own timestamp.
    QmpEvent(QmpEvent),
    /// A line of a QEMU trace (the downtime tracepoints), with its own timestamp.
    QemuTrace(QemuTrace),
    /// QEMU's measurement of the guest's dirty rate.
    DirtyRate(DirtyRate),
    /// Something gp-migrate did to the VMs (start, pause, post-copy switch, cancel, ...).
    Action(Action),
    /// How the migration ended.
    Result(MigrationResult),
    /// Measured clock offset between this host and a remote host.
    ClockOffset(ClockOffset),
    /// A stage failed; written before it exits non-zero so the report says why.
    StageError(StageError),
}

impl Record {
    /// Every `type` value this version knows, in declaration order.
    pub const TYPES: &'static [&'static str] = &[
        "launch",
        "vm",
        "vm_exit",
        "guest_start",
        "guest_progress",
        "guest_warm",
        "guest_gb",
        "console",
        "cpu_sample",
        "scenario",
        "progress",
        "qmp_event",
        "qemu_trace",
        "dirty_rate",
        "action",
        "result",
        "clock_offset",
        "stage_error",
    ];

    /// Whether `ty` is a `type` this version parses (unknown types are passed through).
    pub fn is_known_type(ty: &str) -> bool {
        Self::TYPES.contains(&ty)
    }

    /// The record's `type` tag.
    pub fn type_name(&self) -> &'static str {
        match self {
            Record::Launch(_) => "launch",
            Record::Vm(_) => "vm",
            Record::VmExit(_) => "vm_exit",
            Record::GuestStart(_) => "guest_start",
            Record::GuestProgress(_) => "guest_progress",
            Record::GuestWarm(_) => "guest_warm",
            Record::GuestGb(_) => "guest_gb",
            Record::Console(_) => "console",
            Record::CpuSample(_) => "cpu_sample",
            Record::Scenario(_) => "scenario",
            Record::Progress(_) => "progress",
            Record::QmpEvent(_) => "qmp_event",
            Record::QemuTrace(_) => "qemu_trace",
            Record::DirtyRate(_) => "dirty_rate",
            Record::Action(_) => "action",
            Record::Result(_) => "result",
            Record::ClockOffset(_) => "clock_offset",
            Record::StageError(_) => "stage_error",
        }
    }

    /// Host wall-clock time the record was produced, seconds since the epoch.
    pub fn time_s(&self) -> f64 {
        match self {
            Record::Launch(r) => r.time_s,
            Record::Vm(r) => r.time_s,
            Record::VmExit(r) => r.time_s,
            Record::GuestStart(r) => r.time_s,
            Record::GuestProgress(r) => r.time_s,
            Record::GuestWarm(r) => r.time_s,
            Record::GuestGb(r) => r.time_s,
            Record::Console(r) => r.time_s,
            Record::CpuSample(r) => r.time_s,
            Record::Scenario(r) => r.time_s,
            Record::Progress(r) => r.time_s,
            Record::QmpEvent(r) => r.time_s,
            Record::QemuTrace(r) => r.time_s,
            Record::DirtyRate(r) => r.time_s,
            Record::Action(r) => r.time_s,
            Record::Result(r) => r.time_s,
            Record::ClockOffset(r) => r.time_s,
            Record::StageError(r) => r.time_s,
        }
    }
}

/// Clock offset of a remote host against this one, measured over ssh.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClockOffset {
    pub time_s: f64,
    /// The remote host as given on the command line (`[user@]host`).
    pub host: String,
    /// Remote clock minus local clock, seconds. Subtract it from a remote `time_s`.
    pub offset_s: f64,
    /// Round-trip time of the best probe, seconds: the offset's uncertainty is half of it.
    pub rtt_s: f64,
}

/// A stage's fatal error, written to the stream before the stage exits non-zero.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageError {
    pub time_s: f64,
    /// The stage binary, e.g. `gp-launch`.
    pub stage: String,
    /// The error and its causes, as printed on stderr.
    pub message: String,
    /// The signal that ended the stage, when one did (the stage then exits 128 + `signal`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
}

impl StageError {
    pub fn new(stage: &str, message: impl Into<String>) -> Self {
        StageError {
            time_s: now_s(),
            stage: stage.to_string(),
            message: message.into(),
            signal: None,
        }
    }

    /// The stage is ending because it received `signal`.
    pub fn signalled(stage: &str, signal: i32, message: impl Into<String>) -> Self {
        StageError {
            signal: Some(signal),
            ..StageError::new(stage, message)
        }
    }
}
