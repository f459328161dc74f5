//! Records written by `gp-launch`: the header, VM lifecycle, and what the guests print.

use serde::{Deserialize, Serialize};

use crate::stress::{Pattern, Wss};
use crate::Role;

/// The header: the first record of every run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Launch {
    pub time_s: f64,
    /// The tool that wrote the header (`gp-launch`) and its version.
    pub tool: String,
    pub version: String,
    /// The full command line gp-launch was started with.
    pub argv: Vec<String>,
    /// The QEMU binary path and the version it reports (`10.0.2`).
    pub qemu_binary: String,
    pub qemu_version: String,
    /// The accelerator actually used: `kvm` or `tcg`.
    pub accel: String,
    /// Why that accelerator, when it is not the one asked for (e.g. KVM probe failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accel_note: Option<String>,
    pub kernel: String,
    pub initrd: String,
    pub kernel_cmdline: String,
    /// Migration transport: `unix`, `tcp` or `rdma`.
    pub transport: String,
    /// The destination host for a remote run; `null` when both VMs run here.
    pub dst_host: Option<String>,
    pub hardware: Hardware,
    pub host: HostInfo,
    /// QEMU trace events gp-launch turned on in both VMs (`vmstate_downtime_*`), written as
    /// `qemu_trace` records; empty when none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trace_events: Vec<String>,
    /// Why QEMU tracing is off or partial, when it is (e.g. `QEMU 7.2.22 has no
    /// vmstate_downtime tracepoints (they came in 8.2)`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_note: Option<String>,
    /// How gp-launch placed the QEMUs when the user did not bind their CPUs: the disjoint CPU
    /// sets it chose (then in `hardware.src_cpu_bind`/`dst_cpu_bind`), or why it left them
    /// unpinned. Absent when the user's bindings stand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind_note: Option<String>,
}

/// The guest hardware and its placement on the host, as in the original guestperf.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Hardware {
    pub cpus: u32,
    pub mem_bytes: u64,
    pub src_cpu_bind: Vec<u32>,
    pub src_mem_bind: Vec<u32>,
    pub dst_cpu_bind: Vec<u32>,
    pub dst_mem_bind: Vec<u32>,
    pub prealloc_pages: bool,
    pub huge_pages: bool,
    pub locked_pages: bool,
    /// KVM dirty ring size in entries; 0 when the dirty bitmap is used.
    pub dirty_ring_size: u32,
    /// The workload gp-launch asked the guest's `stress` for (its kernel command line). What
    /// the guest really does is in its `guest_start`.
    #[serde(default)]
    pub workload: WorkloadRequest,
}

/// Workload settings as requested on the guest's kernel command line; an absent field leaves
/// the workload's own default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkloadRequest {
    /// `ramsize=`: the RAM the workload threads write, all together.
    pub ram_bytes: u64,
    /// `stress.threads=`.
    pub threads: u32,
    /// `stress.grain_ms=`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grain_ms: Option<f64>,
    /// `stress.duration_s=`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_s: Option<f64>,
    /// `stress.pattern=`: `seq`, `random` or `once`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<Pattern>,
    /// `stress.wss=` given as a size: bytes, all threads together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wss_bytes: Option<u64>,
    /// `stress.wss=` given as a share of `ram_bytes`, percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wss_pct: Option<f64>,
    /// `stress.dirty_rate=`: bytes per second, all threads together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dirty_rate_bytes_per_s: Option<u64>,
}

impl WorkloadRequest {
    /// Records a `stress.wss=` setting in the field its form belongs to.
    pub fn set_wss(&mut self, wss: Option<Wss>) {
        (self.wss_bytes, self.wss_pct) = match wss {
            None => (None, None),
            Some(Wss::Bytes(b)) => (Some(b), None),
            Some(Wss::Pct(p)) => (None, Some(p)),
        };
    }
}

/// Provenance of the machine the source ran on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HostInfo {
    pub hostname: String,
    pub cpu_model: String,
    pub kernel_release: String,
    pub cpus: u32,
}

/// A VM is up and its QMP socket accepts connections.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Vm {
    pub time_s: f64,
    pub role: Role,
    pub pid: u32,
    /// The host the QEMU runs on; `null` for this host.
    #[serde(default)]
    pub host: Option<String>,
    /// Path of the QMP unix socket later stages connect to (on this host, forwarded if remote).
    pub qmp_socket: String,
    /// Host thread ids of the vCPU threads, in vCPU index order.
    pub vcpu_tids: Vec<u32>,
    /// For the destination: the URI to pass to `migrate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migrate_uri: Option<String>,
    /// Host time at which the QEMU process was spawned.
    pub spawned_s: f64,
    /// The QEMU command line.
    pub argv: Vec<String>,
}

/// A VM's QEMU has exited.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VmExit {
    pub time_s: f64,
    pub role: Role,
    pub pid: u32,
    /// Exit code, or 128 + signal number when killed by a signal.
    pub status: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    /// Who ended it and how: `guest poweroff`, `quit over QMP`, `killed after deadline`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The workload started in the guest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuestStart {
    pub time_s: f64,
    pub role: Role,
    pub threads: u32,
    /// Total RAM the workload touches, split evenly across threads.
    pub ram_bytes: u64,
    /// Each thread reports a `guest_progress` once at least this many ms have passed.
    pub grain_ms: f64,
    /// Guest wall clock when the line was printed, ms since the epoch.
    pub guest_time_ms: f64,
    /// Host ms from spawning QEMU to this record's arrival (boot-to-workload time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_ms: Option<f64>,
    /// What the threads write after their first pass (`seq` when the workload did not say).
    #[serde(default)]
    pub pattern: Pattern,
    /// Bytes the threads keep writing after their first pass, all together: `ram_bytes` unless
    /// a working set was set, 0 for `once`. Absent only in records written before this field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wss_bytes: Option<u64>,
    /// Target dirty rate, bytes per second, all threads together; absent when unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dirty_rate_bytes_per_s: Option<u64>,
}

/// One workload thread finished a chunk of `bytes` in `elapsed_ms`.
///
/// A stall shows as a `guest_progress` whose `elapsed_ms` is far above its neighbours', and as a
/// gap in host arrival times (`time_s`) between consecutive records of the same thread.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuestProgress {
    pub time_s: f64,
    pub role: Role,
    /// Workload thread index, 0..threads.
    pub thread: u32,
    /// Guest wall clock at the end of the chunk, ms since the epoch.
    pub guest_time_ms: f64,
    /// Bytes written in `elapsed_ms`.
    pub bytes: u64,
    pub elapsed_ms: f64,
    /// Bytes of the thread's share written at least once so far: present until the thread's
    /// `guest_warm`, absent afterwards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub touched_bytes: Option<u64>,
}

/// One workload thread has written every page of its share at least once: its first pass is
/// over, its memory is resident, and from now on it writes its pattern at its rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuestWarm {
    pub time_s: f64,
    pub role: Role,
    pub thread: u32,
    /// Guest wall clock when the line was printed, ms since the epoch.
    pub guest_time_ms: f64,
    /// Guest ms from the workload's start line to the end of the first pass.
    pub elapsed_ms: f64,
    /// The thread's share of `ram_bytes`, all of it touched.
    pub touched_bytes: u64,
}

/// One workload thread finished one GB (2^30 bytes) of xor work in `elapsed_ms`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuestGb {
    pub time_s: f64,
    pub role: Role,
    pub thread: u32,
    /// Guest thread id, as the original stress printed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tid: Option<u32>,
    pub guest_time_ms: f64,
    pub elapsed_ms: f64,
}

/// A serial console line that is not workload output (kernel messages, errors).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Console {
    pub time_s: f64,
    pub role: Role,
    pub line: String,
}
