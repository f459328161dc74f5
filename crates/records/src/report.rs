//! The report `gp-collect` writes: one JSON object per run.
//!
//! The top level keeps the layout, field names and units of the original guestperf result
//! (`hardware`, `scenario`, `progress_history`, `guest_timings`, `qemu_timings`, `vcpu_timings`,
//! `result`, `binary`, `dst_host`, `kernel`, `initrd`, `transport`, `sleep`), so tools written
//! for guestperf results read ours. Everything the original lacks is under two new keys:
//! `summary` (figures computed from the records) and `guestperf_rs` (every record of the run,
//! by kind). [`Report`] also deserializes original guestperf result files, where those keys are
//! absent, so a reader handles both with one `serde_json::from_reader::<Report>`.
//!
//! `docs/report.md` documents every field, its unit and how each summary figure is derived.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::launch::{Console, GuestGb, GuestProgress, GuestStart, GuestWarm, Launch, Vm, VmExit};
use crate::migrate::ScenarioRecord;
use crate::migrate::{
    Action, DirtyRate, MigrationResult, Outcome, Progress, QemuTrace, QmpEvent, Scenario,
};
use crate::sample::CpuSample;
use crate::{ClockOffset, Record, Role, StageError};

/// Bytes in the original guestperf's "GB" (the workload's unit of work and `hardware.mem`).
pub const GIB: f64 = (1u64 << 30) as f64;

/// One run's report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub hardware: Hardware,
    /// The scenario gp-migrate ran; fields the file lacks (older guestperf) take the defaults.
    #[serde(deserialize_with = "lenient_scenario")]
    pub scenario: Scenario,
    /// Source `query-migrate` snapshots, thinned as the original did: the first one, one each
    /// time the iteration count grows, and the final one.
    pub progress_history: Vec<ProgressSnapshot>,
    /// One record per GB of work per guest thread: `value` is ms per GB.
    pub guest_timings: Timings,
    /// The source QEMU process: `value` is its cumulative CPU time in ms.
    pub qemu_timings: Timings,
    /// The source vCPU threads: `value` is each thread's cumulative CPU time in ms.
    pub vcpu_timings: Timings,
    /// Whether the migration succeeded. Absent in results of guestperf before 2024.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<ReportResult>,
    /// The QEMU binary.
    #[serde(default)]
    pub binary: String,
    /// The destination host; `localhost` when both VMs ran here.
    #[serde(default = "localhost", deserialize_with = "null_is_localhost")]
    pub dst_host: String,
    #[serde(default)]
    pub kernel: String,
    #[serde(default)]
    pub initrd: String,
    /// `unix`, `tcp` or `rdma`.
    #[serde(default)]
    pub transport: String,
    /// Settle time before and after the migration, seconds.
    #[serde(default, serialize_with = "whole_as_int")]
    pub sleep: f64,
    /// Figures computed from the records (guestperf-rs only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<Summary>,
    /// Every record of the run, by kind (guestperf-rs only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guestperf_rs: Option<Extended>,
}

impl Report {
    /// How the migration ended: the summary's outcome, else gp-migrate's `result`'s; for a
    /// report of the original guestperf, which has neither, `completed` when its `success` says
    /// so. `None` when the report does not tell.
    pub fn outcome(&self) -> Option<Outcome> {
        self.summary
            .as_ref()
            .and_then(|s| s.outcome)
            .or_else(|| self.result.as_ref().and_then(|r| r.outcome))
            .or_else(|| {
                self.result
                    .as_ref()
                    .filter(|r| r.success)
                    .map(|_| Outcome::Completed)
            })
    }
}

/// The guest hardware, as the original recorded it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hardware {
    pub cpus: u32,
    /// Guest RAM in GiB (the original's `--mem`); fractional for guests under 1 GiB.
    #[serde(serialize_with = "whole_as_int")]
    pub mem: f64,
    /// Host CPUs the source is bound to, as strings (the original kept `--src-cpu-bind` split
    /// on commas).
    #[serde(default, deserialize_with = "lenient_list")]
    pub src_cpu_bind: Vec<String>,
    /// Host NUMA nodes the source's memory is bound to.
    #[serde(default, deserialize_with = "lenient_list")]
    pub src_mem_bind: Vec<String>,
    #[serde(default, deserialize_with = "lenient_list")]
    pub dst_cpu_bind: Vec<String>,
    #[serde(default, deserialize_with = "lenient_list")]
    pub dst_mem_bind: Vec<String>,
    #[serde(default, deserialize_with = "lenient_bool")]
    pub prealloc_pages: bool,
    #[serde(default, deserialize_with = "lenient_bool")]
    pub huge_pages: bool,
    #[serde(default, deserialize_with = "lenient_bool")]
    pub locked_pages: bool,
    /// KVM dirty ring entries; 0 for the dirty bitmap.
    #[serde(default)]
    pub dirty_ring_size: u32,
}

impl Default for Hardware {
    fn default() -> Self {
        Hardware {
            cpus: 0,
            mem: 0.0,
            src_cpu_bind: Vec::new(),
            src_mem_bind: Vec::new(),
            dst_cpu_bind: Vec::new(),
            dst_mem_bind: Vec::new(),
            prealloc_pages: false,
            huge_pages: false,
            locked_pages: false,
            dirty_ring_size: 0,
        }
    }
}

impl From<&crate::launch::Hardware> for Hardware {
    fn from(h: &crate::launch::Hardware) -> Self {
        let strings = |v: &[u32]| v.iter().map(u32::to_string).collect();
        Hardware {
            cpus: h.cpus,
            mem: h.mem_bytes as f64 / GIB,
            src_cpu_bind: strings(&h.src_cpu_bind),
            src_mem_bind: strings(&h.src_mem_bind),
            dst_cpu_bind: strings(&h.dst_cpu_bind),
            dst_mem_bind: strings(&h.dst_mem_bind),
            prealloc_pages: h.prealloc_pages,
            huge_pages: h.huge_pages,
            locked_pages: h.locked_pages,
            dirty_ring_size: h.dirty_ring_size,
        }
    }
}

/// One `query-migrate` snapshot in the original's shape. Missing QEMU fields are 0, as there.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProgressSnapshot {
    pub status: String,
    pub ram: RamStats,
    /// Host time of the snapshot, seconds since the epoch.
    pub now: f64,
    /// QEMU's `total-time`: ms since the migration started.
    pub duration: u64,
    /// QEMU's `downtime`, ms (known once completed).
    pub downtime: u64,
    /// QEMU's `expected-downtime`, ms.
    pub downtime_expected: u64,
    /// QEMU's `setup-time`, ms.
    pub setup_time: u64,
    /// QEMU's `cpu-throttle-percentage` (auto-converge).
    pub throttle_pcent: u64,
    /// QEMU's `dirty-limit-throttle-time-per-round`, µs. Absent before guestperf 8.1.
    #[serde(default)]
    pub dirty_limit_throttle_time_per_round: u64,
    /// QEMU's `dirty-limit-ring-full-time`, µs. Absent before guestperf 8.1.
    #[serde(default)]
    pub dirty_limit_ring_full_time: u64,
}

/// `ram` of a snapshot, renamed as the original did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RamStats {
    /// `ram.transferred`, bytes.
    pub transferred_bytes: u64,
    /// `ram.remaining`, bytes.
    pub remaining_bytes: u64,
    /// `ram.total`, bytes.
    pub total_bytes: u64,
    /// `ram.duplicate`: zero pages, count.
    pub duplicate_pages: u64,
    /// `ram.skipped`, count.
    pub skipped_pages: u64,
    /// `ram.normal`, count.
    pub normal_pages: u64,
    /// `ram.normal-bytes`.
    pub normal_bytes: u64,
    /// `ram.dirty-pages-rate`, pages per second.
    pub dirty_rate_pps: u64,
    /// `ram.mbps`, megabits per second (the original's name says MB/s; QEMU reports Mbit/s).
    pub transfer_rate_mbs: f64,
    /// `ram.dirty-sync-count`: passes over RAM so far.
    pub iterations: u64,
}

impl ProgressSnapshot {
    /// Converts one `progress` record the way the original read `query-migrate`.
    pub fn from_progress(p: &Progress) -> Self {
        let info = &p.info;
        let ram = info.get("ram").unwrap_or(&Value::Null);
        let int = |v: &Value, key: &str| v.get(key).and_then(as_u64).unwrap_or(0);
        ProgressSnapshot {
            status: info
                .get("status")
                .and_then(Value::as_str)
                .unwrap_or(&p.status)
                .to_string(),
            ram: RamStats {
                transferred_bytes: int(ram, "transferred"),
                remaining_bytes: int(ram, "remaining"),
                total_bytes: int(ram, "total"),
                duplicate_pages: int(ram, "duplicate"),
                skipped_pages: int(ram, "skipped"),
                normal_pages: int(ram, "normal"),
                normal_bytes: int(ram, "normal-bytes"),
                dirty_rate_pps: int(ram, "dirty-pages-rate"),
                transfer_rate_mbs: ram.get("mbps").and_then(Value::as_f64).unwrap_or(0.0),
                iterations: ram
                    .get("dirty-sync-count")
                    .and_then(as_u64)
                    .or(p.iteration)
                    .unwrap_or(0),
            },
            now: p.time_s,
            duration: int(info, "total-time"),
            downtime: int(info, "downtime"),
            downtime_expected: int(info, "expected-downtime"),
            setup_time: int(info, "setup-time"),
            throttle_pcent: int(info, "cpu-throttle-percentage"),
            dirty_limit_throttle_time_per_round: int(info, "dirty-limit-throttle-time-per-round"),
            dirty_limit_ring_full_time: int(info, "dirty-limit-ring-full-time"),
        }
    }

    /// Whether the migration is over (`completed`, `failed` or `cancelled`).
    pub fn is_final(&self) -> bool {
        matches!(self.status.as_str(), "completed" | "failed" | "cancelled")
    }
}

fn as_u64(v: &Value) -> Option<u64> {
    v.as_u64()
        .or_else(|| v.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
}

/// A timing series: the original serializes it as a bare list of records.
pub type Timings = Vec<TimingRecord>;

/// One point of a timing series.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TimingRecord {
    /// Guest thread id (guest timings), QEMU pid (qemu timings) or vCPU thread id.
    pub tid: u64,
    /// Seconds since the epoch.
    pub timestamp: f64,
    /// ms per GB (guest timings) or cumulative CPU ms (qemu and vCPU timings).
    pub value: f64,
}

/// CPU utilization over one interval, from two consecutive cumulative timing records.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Utilization {
    pub tid: u64,
    /// End of the interval, seconds since the epoch.
    pub timestamp: f64,
    /// Percent of one host CPU over the interval.
    pub percent: f64,
}

/// Turns cumulative CPU-ms records (`qemu_timings`, `vcpu_timings`) into % of one CPU per
/// interval, per `tid`, the way the original plot did (intervals of zero length are skipped).
pub fn utilization(records: &[TimingRecord]) -> Vec<Utilization> {
    let mut last: std::collections::HashMap<u64, (f64, f64)> = Default::default();
    let mut out = Vec::new();
    for r in records {
        if let Some(&(t0, v0)) = last.get(&r.tid) {
            let dt = r.timestamp - t0;
            if dt <= 0.0 {
                continue;
            }
            out.push(Utilization {
                tid: r.tid,
                timestamp: r.timestamp,
                percent: (r.value - v0) / 1000.0 / dt * 100.0,
            });
        }
        last.insert(r.tid, (r.timestamp, r.value));
    }
    out
}

/// The top-level `result`: the original's `success`, plus how the run ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportResult {
    /// Completed without the `pause` strategy (the original's definition).
    pub success: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Figures computed from the records; `docs/report.md` says how each is derived.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Summary {
    /// How the migration ended (from gp-migrate's `result`, or `interrupted`).
    pub outcome: Option<Outcome>,
    pub reason: String,
    /// Host time gp-migrate started the migration, seconds since the epoch.
    pub migration_start_s: Option<f64>,
    /// Host time the source stopped running the guest (precopy) or post-copy began.
    pub switchover_s: Option<f64>,
    /// Host time the migration ended (first final snapshot, else the result).
    pub migration_end_s: Option<f64>,
    /// QEMU's `total-time`, ms.
    pub total_time_ms: Option<u64>,
    /// QEMU's `downtime`, ms.
    pub downtime_ms: Option<u64>,
    /// QEMU's `setup-time`, ms.
    pub setup_time_ms: Option<u64>,
    /// The longest gap in workload progress around the switchover, as the guest saw it.
    pub guest_stall: Option<GuestStall>,
    /// The switchover as the guest saw it: from the last workload record of the source to the
    /// first of the destination.
    pub guest_switch_gap: Option<SwitchGap>,
    /// Workload throughput before, during and after the migration.
    pub guest_throughput: Option<GuestThroughput>,
    /// Host CPU time of each QEMU and its migration threads.
    pub host_cpu: HostCpu,
    /// `ram.transferred` at the end, bytes.
    pub transferred_bytes: Option<u64>,
    /// Guest RAM, bytes (from the launch header, else `ram.total`).
    pub guest_ram_bytes: Option<u64>,
    /// `transferred_bytes` per GiB of guest RAM.
    pub transferred_bytes_per_guest_gb: Option<f64>,
    /// Passes over RAM (`ram.dirty-sync-count` at the end).
    pub iterations: Option<u64>,
    /// Why a figure is missing or approximate.
    pub notes: Vec<String>,
    /// The mode the migration really ran in, and when it switched (issue 16).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<MigrationMode>,
    /// Each headline figure against the others that measure the same thing.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<Check>,
    /// The total time the report trusts, ms: QEMU's unless the checks found it inconsistent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trusted_total_time_ms: Option<f64>,
    /// Where `trusted_total_time_ms` comes from, and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trusted_total_time_source: Option<String>,
    /// The downtime the report trusts, ms: QEMU's unless the checks found it inconsistent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trusted_downtime_ms: Option<f64>,
    /// Where `trusted_downtime_ms` comes from, and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trusted_downtime_source: Option<String>,
    /// What the destination (and the source's phase counters) say post-copy cost.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination: Option<DestinationFigures>,
    /// Where the downtime went, from QEMU's downtime tracepoints.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub downtime_breakdown: Option<DowntimeBreakdown>,
    /// The guest when the migration started: how warm, how fast it wrote.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before_migration: Option<BeforeMigration>,
}

impl Summary {
    /// The total migration time the report stands by, ms: the trusted one (QEMU's unless the
    /// checks found it inconsistent), else QEMU's (reports written before the checks).
    pub fn stated_total_time_ms(&self) -> Option<f64> {
        self.trusted_total_time_ms
            .or(self.total_time_ms.map(|v| v as f64))
    }

    /// The downtime the report stands by, ms: the trusted one, else QEMU's.
    pub fn stated_downtime_ms(&self) -> Option<f64> {
        self.trusted_downtime_ms
            .or(self.downtime_ms.map(|v| v as f64))
    }
}

/// The mode a migration really ran in.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MigrationMode {
    /// What the scenario asked for: `precopy`, `post-copy`, `paused-then-completed`, or
    /// `post-copy or paused-then-completed` when both were asked.
    pub requested: String,
    /// What happened: `precopy`, `post-copy`, `paused-then-completed`, `paused` (stopped by the
    /// pause strategy, not completed), or `none` (no migration in the stream).
    pub reached: String,
    /// Whether `reached` is what was requested (always true for `precopy`).
    pub requested_reached: bool,
    /// Each switch, in time order: `precopy` (migration active), `post-copy`, `paused`, and
    /// how it ended (`completed`, `failed`, `cancelled`).
    pub switches: Vec<ModeSwitch>,
    /// Set when the run was interrupted or failed during post-copy: the guest was lost (neither
    /// side held all of its memory); says the phase.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guest_lost: Option<String>,
}

/// One change of mode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModeSwitch {
    /// The mode entered.
    pub mode: String,
    /// When, seconds since the epoch (QEMU's event timestamp, or the snapshot's host time).
    pub time_s: f64,
    /// ms after `migration_start_s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_start_ms: Option<f64>,
    /// `event` (a QMP event), `snapshot` (a `query-migrate` status), or `action`.
    pub source: String,
    /// The event or status that shows it (`MIGRATION postcopy-active (src)`).
    pub detail: String,
}

/// One headline figure against another measure of the same thing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    /// `total_time` or `downtime`.
    pub figure: String,
    /// QEMU's figure, ms.
    pub qemu_ms: f64,
    /// What it is compared with (`events: STOP (src) to RESUME (dst)`).
    pub against: String,
    pub against_ms: f64,
    /// `against_ms - qemu_ms`.
    pub difference_ms: f64,
    /// How far apart the two may be given their resolutions and what each includes.
    pub tolerance_ms: f64,
    pub agree: bool,
    /// What a disagreement means.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// What post-copy cost the guest, as QEMU counts it; absent fields were not reported.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DestinationFigures {
    /// Host time of the destination snapshot the figures come from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot_s: Option<f64>,
    /// Destination `postcopy-blocktime`: time some vCPU waited for a page, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postcopy_blocktime_ms: Option<u64>,
    /// Destination `postcopy-vcpu-blocktime`, per vCPU, ms.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub postcopy_vcpu_blocktime_ms: Vec<u64>,
    /// Source `ram.postcopy-requests`: pages the destination asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postcopy_requests: Option<u64>,
    /// Destination `postcopy-latency` (QEMU 10.1): mean page fault latency, ns.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postcopy_latency_ns: Option<u64>,
    /// Destination `postcopy-vcpu-latency` (QEMU 10.1), per vCPU, ns.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub postcopy_vcpu_latency_ns: Vec<u64>,
    /// Destination `postcopy-non-vcpu-latency` (QEMU 10.1), ns.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postcopy_non_vcpu_latency_ns: Option<u64>,
    /// Destination `postcopy-latency-dist` (QEMU 10.1): faults per latency bucket, bucket i
    /// counting latencies in [2^i, 2^(i+1)) µs.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub postcopy_latency_dist: Vec<u64>,
    /// From `postcopy_latency_dist`: remote faults counted, and the lower bound (µs) of the
    /// bucket holding the median and the 99th-percentile fault (the bucket is [x, 2x)).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postcopy_remote_faults: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postcopy_latency_p50_bucket_us: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postcopy_latency_p99_bucket_us: Option<u64>,
    /// Source `ram.precopy-bytes`, `ram.downtime-bytes`, `ram.postcopy-bytes`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub precopy_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub downtime_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postcopy_bytes: Option<u64>,
    /// The guest-observed stall, ms, for comparison (`guest_stall.stall_ms`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guest_stall_ms: Option<f64>,
}

/// The switchover step by step, from QEMU's `vmstate_downtime_*` tracepoints.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DowntimeBreakdown {
    pub available: bool,
    /// Why there is no breakdown (QEMU without the tracepoints, tracing off, no checkpoints).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Consecutive checkpoints of both VMs, in time order, from `src-downtime-start`.
    pub steps: Vec<BreakdownStep>,
    /// `src-downtime-start` to `src-downtime-end`: QEMU's own downtime window, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qemu_window_ms: Option<f64>,
    /// `src-downtime-start` to the destination's `...-vm-started`: the guest's pause, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_ms: Option<f64>,
    /// Steps within QEMU's window over QEMU's downtime, percent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub coverage_pct: Option<f64>,
    /// Devices saved on the source, slowest first (at most 5), and all of them together.
    pub top_save: Vec<DeviceTime>,
    pub save_ms: f64,
    /// Devices loaded on the destination, slowest first (at most 5), and all together.
    pub top_load: Vec<DeviceTime>,
    pub load_ms: f64,
}

/// One step between two checkpoints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BreakdownStep {
    /// The checkpoint that ends the step (`src-iterable-saved`: saving RAM's last pass).
    pub step: String,
    /// The checkpoint it starts from.
    pub from: String,
    /// The VM of the ending checkpoint.
    pub role: Role,
    /// Start of the step, seconds since the epoch (this host's clock).
    pub start_s: f64,
    pub ms: f64,
}

/// One device's save or load time in the switchover.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceTime {
    /// QEMU's `idstr`, with `#instance` when the instance is not 0.
    pub device: String,
    /// `iterable` (RAM, block) or `non-iterable`.
    #[serde(rename = "type")]
    pub kind: String,
    pub ms: f64,
}

/// One of QEMU's dirty-rate measurements next to what the workload really wrote.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct QemuDirtyRate {
    /// `page-sampling`, `dirty-bitmap` or `dirty-ring`.
    pub mode: String,
    /// QEMU's estimate, bytes/s (its MB/s are MiB/s).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub estimate_bytes_per_s: Option<f64>,
    /// The workload's achieved write rate over QEMU's measurement (the `calc_time_ms` before
    /// the record), bytes/s.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub achieved_bytes_per_s: Option<f64>,
    /// `estimate / achieved`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio: Option<f64>,
    /// Why there is no estimate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The guest as the migration started.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BeforeMigration {
    /// Share of the workload's memory written at least once, 0 to 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub touched_share: Option<f64>,
    /// Whether the migration started before every thread was warm.
    pub cold: bool,
    /// gp-migrate's settle criterion (`warm+steady`, `sleep`, `none`), when it said.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub settle_criterion: Option<String>,
    /// Seconds gp-migrate waited from the first workload record.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waited_s: Option<f64>,
    /// The workload's achieved write rate over the last 2 s before the migration, bytes/s.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub write_rate_bytes_per_s: Option<f64>,
    /// The rate the workload was asked for, bytes/s (absent: unlimited).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_rate_bytes_per_s: Option<u64>,
    /// QEMU's own measurements (`dirty_rate` records, one per mode), each beside the workload's
    /// achieved rate over the same window.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub qemu_dirty_rates: Vec<QemuDirtyRate>,
}

/// The longest time no workload thread reported progress, around the switchover.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuestStall {
    /// Length of the gap between two consecutive `guest_progress` arrivals (any thread, either
    /// VM), ms of host time.
    pub stall_ms: f64,
    /// Host arrival time of the record before the gap.
    pub start_s: f64,
    /// Host arrival time of the record after the gap.
    pub end_s: f64,
    pub before_role: Role,
    pub after_role: Role,
    /// Median gap between consecutive arrivals before the migration: what "no stall" looks like.
    pub typical_gap_ms: Option<f64>,
    /// QEMU's downtime for comparison, ms.
    pub qemu_downtime_ms: Option<u64>,
    /// `stall_ms - qemu_downtime_ms`: what the guest lost beyond what QEMU reports.
    pub excess_over_downtime_ms: Option<f64>,
}

/// The gap in workload progress between the source's last record and the destination's first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SwitchGap {
    /// Host arrival time of the source's last `guest_progress` record.
    pub last_src_s: f64,
    /// Host arrival time of the destination's first `guest_progress` record.
    pub first_dst_s: f64,
    pub gap_ms: f64,
}

/// Throughput of the workload in each phase of the run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GuestThroughput {
    /// Records it is computed from: `guest_progress` or, without them, `guest_gb`.
    pub source: String,
    pub before: Option<PhaseThroughput>,
    pub during: Option<PhaseThroughput>,
    pub after: Option<PhaseThroughput>,
    /// `(1 - during.gb_per_s / before.gb_per_s) * 100`.
    pub slowdown_during_pct: Option<f64>,
    /// `(1 - after.gb_per_s / before.gb_per_s) * 100`.
    pub slowdown_after_pct: Option<f64>,
}

/// Workload throughput over one phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseThroughput {
    /// Host-time window, seconds since the epoch.
    pub start_s: f64,
    pub end_s: f64,
    /// Work finished in the window by all threads, bytes.
    pub bytes: u64,
    pub records: u64,
    /// All threads together, GiB per second of host time.
    pub gb_per_s: f64,
    /// Per thread, ms per GiB (the original's unit), from the guest's own chunk timings.
    pub ms_per_gb: f64,
}

/// Host CPU time, seconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HostCpu {
    /// All source QEMUs, whole process, at their last sample.
    pub src_s: Option<f64>,
    /// All destination QEMUs, whole process, at their last sample.
    pub dst_s: Option<f64>,
    /// Migration threads of both ends.
    pub migration_threads_s: Option<f64>,
    /// The destination QEMU's main thread (tid = pid; counted in its `other_s`). It loads an
    /// incoming precopy stream without multifd (a main-loop coroutine, not a `mig/` thread).
    pub dst_main_thread_s: Option<f64>,
    /// Per QEMU process.
    pub vms: Vec<VmCpu>,
}

impl HostCpu {
    /// CPU time of the QEMU processes (of `role`, or all) while the migration ran, seconds:
    /// the sum of their `during_migration_s`, `None` when none of them has it.
    pub fn during_migration_s(&self, role: Option<Role>) -> Option<f64> {
        let values: Vec<f64> = self
            .vms
            .iter()
            .filter(|vm| role.map_or(true, |r| vm.role == r))
            .filter_map(|vm| vm.during_migration_s)
            .collect();
        (!values.is_empty()).then(|| values.iter().sum())
    }
}

/// CPU time of one QEMU process, seconds, from its `cpu_sample` records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VmCpu {
    pub role: Role,
    pub pid: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    pub samples: u64,
    /// The whole process (user + system) at its last sample, since it started.
    pub process_s: f64,
    /// The process between the last sample at or before the migration started and the first
    /// at or after it ended.
    pub during_migration_s: Option<f64>,
    /// Sum over vCPU threads of each thread's last sample.
    pub vcpu_s: f64,
    /// Sum over migration threads of each thread's last sample.
    pub migration_s: f64,
    /// Sum over the other threads of each thread's last sample.
    pub other_s: f64,
    /// Names of the migration threads seen.
    pub migration_threads: Vec<String>,
}

/// Everything the original lacks: every record of the run, by kind.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Extended {
    /// The gp-collect version that wrote the report.
    pub version: String,
    /// gp-launch's `launch` record.
    pub header: Option<Launch>,
    /// gp-migrate's `scenario` record (capabilities and parameters included).
    pub scenario: Option<ScenarioRecord>,
    pub vms: Vec<Vm>,
    pub vm_exits: Vec<VmExit>,
    pub guest_start: Vec<GuestStart>,
    pub guest_progress: Vec<GuestProgress>,
    /// Each workload thread's end of its first pass.
    pub guest_warm: Vec<GuestWarm>,
    pub guest_gb: Vec<GuestGb>,
    /// Every `cpu_sample`, source and destination, with per-thread times.
    pub samples: Vec<CpuSample>,
    /// Every `progress` snapshot (both ends), verbatim.
    pub progress: Vec<Progress>,
    /// QMP events.
    pub events: Vec<QmpEvent>,
    /// QEMU trace lines (the downtime tracepoints), both ends.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub traces: Vec<QemuTrace>,
    /// QEMU's dirty-rate measurements.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dirty_rates: Vec<DirtyRate>,
    pub actions: Vec<Action>,
    /// gp-migrate's result, or the one gp-collect wrote when the stream ended without it.
    pub result: Option<MigrationResult>,
    /// Whether `result` came from the stream (`false`: gp-collect made it up).
    pub result_in_stream: bool,
    /// Serial console lines that are not workload output.
    pub console: Vec<Console>,
    pub clock_offsets: Vec<ClockOffset>,
    pub stage_errors: Vec<StageError>,
    /// A second `launch`, `scenario` or `result` record, kept as it came.
    pub duplicates: Vec<Record>,
    /// Records of a type this version does not know, verbatim.
    pub unrecognized: Vec<Value>,
    /// How reading the stream went.
    pub input: InputSummary,
}

/// What gp-collect read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct InputSummary {
    /// Lines read, blank ones included.
    pub lines: u64,
    /// Records kept (known and unrecognized).
    pub records: u64,
    /// How the input ended: `end of input`, `interrupted by SIGINT`, or a read error.
    pub ended: String,
    /// Lines that could not be read as records.
    pub errors: Vec<InputError>,
}

/// A line gp-collect could not read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputError {
    pub line: u64,
    pub message: String,
}

// ---- (de)serialization helpers: accept original files, write numbers the way they did. ----

fn localhost() -> String {
    "localhost".to_string()
}

fn null_is_localhost<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_else(localhost))
}

/// Writes a whole number as an integer (`1`, not `1.0`), as the original did for `mem`/`sleep`.
fn whole_as_int<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    if v.fract() == 0.0 && v.abs() < 9e15 {
        s.serialize_i64(*v as i64)
    } else {
        s.serialize_f64(*v)
    }
}

/// Older guestperf scenarios lack the multifd and dirty-limit fields: take the defaults.
fn lenient_scenario<'de, D: Deserializer<'de>>(d: D) -> Result<Scenario, D::Error> {
    let given = Value::deserialize(d)?;
    let mut merged = serde_json::to_value(Scenario::default()).map_err(serde::de::Error::custom)?;
    if let (Value::Object(base), Value::Object(given)) = (&mut merged, given) {
        for (k, v) in given {
            if !v.is_null() {
                base.insert(k, v);
            }
        }
    }
    serde_json::from_value(merged).map_err(serde::de::Error::custom)
}

/// A bind list: strings (the original) or numbers.
fn lenient_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let v = Option::<Vec<Value>>::deserialize(d)?.unwrap_or_default();
    v.into_iter()
        .map(|x| match x {
            Value::String(s) => Ok(s),
            Value::Number(n) => Ok(n.to_string()),
            other => Err(serde::de::Error::custom(format!(
                "expected a string or number, got {other}"
            ))),
        })
        .collect()
}

/// A flag: `true`/`false`, or (the original took these from argparse without a type) a string.
fn lenient_bool<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Bool(b) => b,
        Value::Null => false,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !matches!(s.to_ascii_lowercase().as_str(), "" | "0" | "false" | "no"),
        other => {
            return Err(serde::de::Error::custom(format!(
                "expected a boolean, got {other}"
            )))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A result as the original guestperf (QEMU 9.x, tests/migration-stress) writes it.
    const ORIGINAL: &str = r#"{
        "hardware": {"cpus": 2, "mem": 1, "src_mem_bind": [], "dst_mem_bind": ["1"],
                     "src_cpu_bind": ["0", "1"], "dst_cpu_bind": [], "prealloc_pages": false,
                     "huge_pages": false, "locked_pages": false, "dirty_ring_size": 0},
        "scenario": {"name": "perfreport", "downtime": 500, "bandwidth": 125000,
                     "max_iters": 30, "max_time": 300, "pause": false, "pause_iters": 5,
                     "post_copy": false, "post_copy_iters": 5, "auto_converge": false,
                     "auto_converge_step": 10, "compression_mt": false,
                     "compression_mt_threads": 1, "compression_xbzrle": false,
                     "compression_xbzrle_cache": 10, "multifd": false, "multifd_channels": 2},
        "progress_history": [{"status": "completed",
            "ram": {"transferred_bytes": 1, "remaining_bytes": 0, "total_bytes": 3,
                    "duplicate_pages": 4, "skipped_pages": 0, "normal_pages": 5,
                    "normal_bytes": 6, "dirty_rate_pps": 7, "transfer_rate_mbs": 8.5,
                    "iterations": 9},
            "now": 1469020993.5, "duration": 10, "downtime": 11, "downtime_expected": 12,
            "setup_time": 13, "throttle_pcent": 14}],
        "guest_timings": [{"tid": 101, "timestamp": 1469020993.123, "value": 812}],
        "qemu_timings": [{"tid": 5, "timestamp": 1469020990.0, "value": 1230.0}],
        "vcpu_timings": [{"tid": 6, "timestamp": 1469020990.0, "value": 1000.0}],
        "binary": "/usr/bin/qemu-system-x86_64", "dst_host": "localhost",
        "kernel": "/boot/vmlinuz", "initrd": "initrd-stress.img", "transport": "unix",
        "sleep": 15
    }"#;

    #[test]
    fn the_outcome_is_the_summary_s_then_the_result_s_then_the_original_s_success() {
        let mut r: Report = serde_json::from_str(ORIGINAL).unwrap();
        assert_eq!(r.outcome(), None, "an original report that does not say");
        let result = |success, outcome| ReportResult {
            success,
            outcome,
            reason: None,
        };
        r.result = Some(result(false, None));
        assert_eq!(r.outcome(), None, "not a success is not a failure either");
        r.result = Some(result(true, None));
        assert_eq!(r.outcome(), Some(Outcome::Completed));
        r.result = Some(result(true, Some(Outcome::Cancelled)));
        assert_eq!(r.outcome(), Some(Outcome::Cancelled));
        r.summary = Some(Summary {
            outcome: Some(Outcome::Interrupted),
            ..Summary::default()
        });
        assert_eq!(r.outcome(), Some(Outcome::Interrupted));
    }

    #[test]
    fn cpu_during_migration_sums_the_processes_that_have_it() {
        let vm = |role, during| VmCpu {
            role,
            pid: 1,
            host: None,
            samples: 2,
            process_s: 3.0,
            during_migration_s: during,
            vcpu_s: 2.0,
            migration_s: 0.5,
            other_s: 0.5,
            migration_threads: vec![],
        };
        let cpu = HostCpu {
            vms: vec![
                vm(Role::Src, Some(1.5)),
                vm(Role::Dst, Some(1.0)),
                vm(Role::Dst, None),
            ],
            ..HostCpu::default()
        };
        assert_eq!(cpu.during_migration_s(None), Some(2.5));
        assert_eq!(cpu.during_migration_s(Some(Role::Dst)), Some(1.0));
        let none = HostCpu {
            vms: vec![vm(Role::Src, None)],
            ..HostCpu::default()
        };
        assert_eq!(none.during_migration_s(Some(Role::Src)), None);
    }

    #[test]
    fn the_stated_figures_are_the_trusted_ones_else_qemu_s() {
        let mut s = Summary {
            total_time_ms: Some(2017),
            downtime_ms: Some(61),
            ..Summary::default()
        };
        assert_eq!(
            (s.stated_total_time_ms(), s.stated_downtime_ms()),
            (Some(2017.0), Some(61.0))
        );
        s.trusted_total_time_ms = Some(2016.5);
        s.trusted_downtime_ms = Some(60.5);
        assert_eq!(
            (s.stated_total_time_ms(), s.stated_downtime_ms()),
            (Some(2016.5), Some(60.5))
        );
        assert_eq!(Summary::default().stated_downtime_ms(), None);
    }

    #[test]
    fn reads_an_original_guestperf_result() {
        let r: Report = serde_json::from_str(ORIGINAL).unwrap();
        assert_eq!(r.hardware.cpus, 2);
        assert_eq!(r.hardware.mem, 1.0);
        assert_eq!(r.hardware.src_cpu_bind, vec!["0", "1"]);
        assert_eq!(r.scenario.name, "perfreport");
        // Fields the old scenario lacks take the defaults.
        assert_eq!(r.scenario.multifd_compression, "none");
        assert_eq!(r.scenario.vcpu_dirty_limit, 1);
        let p = &r.progress_history[0];
        assert_eq!(p.ram.iterations, 9);
        assert_eq!(p.ram.transfer_rate_mbs, 8.5);
        assert_eq!(p.dirty_limit_ring_full_time, 0);
        assert_eq!(r.guest_timings[0].value, 812.0);
        assert!(r.result.is_none() && r.summary.is_none() && r.guestperf_rs.is_none());
        assert_eq!(r.sleep, 15.0);
    }

    #[test]
    fn writes_the_original_shapes() {
        let r: Report = serde_json::from_str(ORIGINAL).unwrap();
        let v = serde_json::to_value(&r).unwrap();
        // Whole numbers stay integers, timings stay bare lists, new keys are absent.
        assert_eq!(v["hardware"]["mem"], serde_json::json!(1));
        assert_eq!(v["sleep"], serde_json::json!(15));
        assert!(v["guest_timings"].is_array());
        assert!(v.get("summary").is_none() && v.get("guestperf_rs").is_none());
        let back: Report = serde_json::from_value(v).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn a_summary_written_before_the_checks_reads_back() {
        // gp-collect's summary before mode, checks, trusted figures, destination, breakdown
        // and before_migration: all of them absent, nothing else lost.
        let old = serde_json::json!({
            "outcome": "completed", "reason": "migration completed", "total_time_ms": 2040,
            "downtime_ms": 230, "notes": ["a note"], "host_cpu": {"vms": []}
        });
        let s: Summary = serde_json::from_value(old).unwrap();
        assert_eq!((s.total_time_ms, s.downtime_ms), (Some(2040), Some(230)));
        assert!(s.mode.is_none() && s.checks.is_empty() && s.trusted_downtime_ms.is_none());
        assert!(s.destination.is_none() && s.downtime_breakdown.is_none());
        // And the new fields stay out of a summary that has none of them.
        let v = serde_json::to_value(&s).unwrap();
        assert!(v.get("checks").is_none() && v.get("mode").is_none());
    }

    #[test]
    fn lenient_fields() {
        let mut v: Value = serde_json::from_str(ORIGINAL).unwrap();
        v["hardware"]["src_cpu_bind"] = serde_json::json!([0, 1]);
        v["hardware"]["huge_pages"] = serde_json::json!("1");
        v["dst_host"] = Value::Null;
        let r: Report = serde_json::from_value(v).unwrap();
        assert_eq!(r.hardware.src_cpu_bind, vec!["0", "1"]);
        assert!(r.hardware.huge_pages);
        assert_eq!(r.dst_host, "localhost");
    }

    #[test]
    fn snapshot_from_query_migrate() {
        let info = serde_json::json!({
            "status": "completed", "total-time": 4012, "downtime": 45, "setup-time": 3,
            "ram": {"transferred": 300000000u64, "remaining": 0, "total": 537673728u64,
                    "duplicate": 70000, "skipped": 0, "normal": 73000,
                    "normal-bytes": 299008000u64, "dirty-pages-rate": 1200,
                    "mbps": 812.4, "dirty-sync-count": 4}
        });
        let p = Progress {
            time_s: 7.5,
            role: Role::Src,
            status: "completed".into(),
            iteration: Some(4),
            info,
        };
        let s = ProgressSnapshot::from_progress(&p);
        assert_eq!(s.duration, 4012);
        assert_eq!(s.downtime, 45);
        assert_eq!(s.downtime_expected, 0);
        assert_eq!(s.ram.total_bytes, 537673728);
        assert_eq!(s.ram.iterations, 4);
        assert_eq!(s.now, 7.5);
        assert!(s.is_final());
    }

    #[test]
    fn utilization_per_tid() {
        let rec = |tid, timestamp, value| TimingRecord {
            tid,
            timestamp,
            value,
        };
        let u = utilization(&[
            rec(1, 0.0, 0.0),
            rec(2, 0.0, 0.0),
            rec(1, 0.5, 250.0),
            rec(2, 1.0, 100.0),
            rec(1, 0.5, 300.0),
        ]);
        assert_eq!(u.len(), 2);
        assert_eq!((u[0].tid, u[0].percent), (1, 50.0));
        assert_eq!((u[1].tid, u[1].percent), (2, 10.0));
    }
}
