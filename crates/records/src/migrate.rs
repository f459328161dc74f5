//! Records written by `gp-migrate`: the scenario, every `query-migrate` snapshot, QMP events,
//! the actions it took and the result.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Role;

/// A migration scenario, with the original guestperf's field names and units.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scenario {
    pub name: String,
    /// Maximum downtime, ms.
    pub downtime: u64,
    /// Maximum bandwidth, MiB/s (0: unlimited).
    pub bandwidth: u64,
    pub max_iters: u64,
    /// Seconds.
    pub max_time: u64,
    pub pause: bool,
    pub pause_iters: u64,
    pub post_copy: bool,
    pub post_copy_iters: u64,
    pub auto_converge: bool,
    pub auto_converge_step: u64,
    pub compression_mt: bool,
    pub compression_mt_threads: u64,
    pub compression_xbzrle: bool,
    /// Percent of guest RAM.
    pub compression_xbzrle_cache: u64,
    pub multifd: bool,
    pub multifd_channels: u64,
    pub multifd_compression: String,
    pub dirty_limit: bool,
    /// ms.
    pub x_vcpu_dirty_limit_period: u64,
    /// MB/s.
    pub vcpu_dirty_limit: u64,
}

impl Default for Scenario {
    /// The original guestperf defaults.
    fn default() -> Self {
        Scenario {
            name: "default".into(),
            downtime: 500,
            bandwidth: 125_000,
            max_iters: 30,
            max_time: 300,
            pause: false,
            pause_iters: 5,
            post_copy: false,
            post_copy_iters: 5,
            auto_converge: false,
            auto_converge_step: 10,
            compression_mt: false,
            compression_mt_threads: 1,
            compression_xbzrle: false,
            compression_xbzrle_cache: 10,
            multifd: false,
            multifd_channels: 2,
            multifd_compression: "none".into(),
            dirty_limit: false,
            x_vcpu_dirty_limit_period: 500,
            vcpu_dirty_limit: 1,
        }
    }
}

/// gp-migrate's header: the scenario it runs and what it found the QEMUs support.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScenarioRecord {
    pub time_s: f64,
    pub scenario: Scenario,
    /// Settle time before and after migration, seconds.
    pub sleep_s: f64,
    /// `query-migrate` poll interval, ms.
    pub poll_ms: f64,
    /// Extra capabilities and parameters from `--capability` / `--parameter`.
    #[serde(default)]
    pub extra_capabilities: Value,
    #[serde(default)]
    pub extra_parameters: Value,
    /// Migration capabilities the source QEMU reports (`query-migrate-capabilities`).
    #[serde(default)]
    pub capabilities: Value,
    /// Migration parameters the source QEMU reports after configuration.
    #[serde(default)]
    pub parameters: Value,
    /// QEMU versions (`query-version`: `10.0.2`) of the source and the destination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qemu_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dst_qemu_version: Option<String>,
    /// What the destination QEMU reports after configuration.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub dst_capabilities: Value,
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub dst_parameters: Value,
    /// How gp-migrate decided the workload had settled before it started the migration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settle: Option<Settle>,
}

/// How long gp-migrate waited before migrating, and why (the `settle` of a `scenario` record).
///
/// The wait has up to three phases, each measured from the first workload record of the source:
/// every workload thread warm (its first pass over its share done), then the workload's rate
/// steady, then `--sleep` (a minimum, as in the original guestperf).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settle {
    /// What the wait waited for: `warm+steady` (the default), `sleep` (`--cold`: `--sleep`
    /// only), or `none` (no workload records to wait for, e.g. `--no-wait-workload`).
    pub criterion: String,
    /// The steadiness rule in words, e.g. `the last 5 windows of 500 ms within 10% of their
    /// median, at most 60 s`.
    #[serde(default)]
    pub rule: String,
    /// Seconds from the first workload record to every thread warm; absent when the workload
    /// says nothing about warmth (the original C stress) or the wait did not ask.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warm_s: Option<f64>,
    /// Seconds from the first workload record to a steady rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steady_s: Option<f64>,
    /// Whether the rate was steady when the wait ended (`false`: the cap ended it).
    #[serde(default)]
    pub steady: bool,
    /// Seconds from the first workload record to the start of the migration.
    pub waited_s: f64,
    /// The share of the workload's memory touched at least once when the migration started,
    /// 0 to 1 (from `guest_progress.touched_bytes` and `guest_warm`); absent when unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub touched_share: Option<f64>,
}

/// QEMU's own measurement of the guest's dirty rate (`calc-dirty-rate`, then `query-dirty-rate`
/// until it is measured), made by gp-migrate before migrating when asked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DirtyRate {
    pub time_s: f64,
    pub role: Role,
    /// `page-sampling`, `dirty-bitmap` or `dirty-ring`.
    pub mode: String,
    /// How long QEMU measured, ms.
    pub calc_time_ms: u64,
    /// Pages sampled per GiB (page-sampling mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample_pages: Option<u64>,
    /// QEMU's estimate in its own unit, MB/s (QEMU divides by 2^20: MiB/s); absent when the
    /// measurement failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dirty_rate_mb_s: Option<f64>,
    /// Per vCPU, MB/s (dirty-ring mode).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vcpu_dirty_rate_mb_s: Vec<f64>,
    /// Why there is no estimate, when there is none (QEMU's error, or the mode is unsupported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// `query-dirty-rate`'s reply as QEMU sent it.
    #[serde(default)]
    pub info: Value,
}

/// One line of a QEMU trace (its `log` backend, `-trace`), turned into a record by gp-launch.
/// The downtime tracepoints (`vmstate_downtime_checkpoint`, `vmstate_downtime_save`,
/// `vmstate_downtime_load`) are what the report's downtime breakdown is made of.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QemuTrace {
    /// Host time the line was read.
    pub time_s: f64,
    pub role: Role,
    /// The tracepoint's timestamp, seconds since the epoch on the clock of the host QEMU runs
    /// on (as `qmp_event.qemu_time_s`: for a remote VM, subtract its `clock_offset`).
    pub qemu_time_s: f64,
    /// The tracepoint's name.
    pub event: String,
    /// Everything after the name, as QEMU printed it.
    #[serde(default)]
    pub args: String,
    /// The `key=value` pairs of `args`, numbers as numbers; words without `=` under their
    /// position (`"0"`, `"1"`, ...).
    #[serde(default)]
    pub fields: serde_json::Map<String, Value>,
}

/// One `query-migrate` snapshot, verbatim.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    pub time_s: f64,
    pub role: Role,
    /// `status` from the snapshot (`setup`, `active`, `postcopy-active`, `completed`, ...).
    pub status: String,
    /// Passes over RAM so far (`ram.dirty-sync-count`), when QEMU reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iteration: Option<u64>,
    /// Everything `query-migrate` returned.
    pub info: Value,
}

/// A QMP event as QEMU sent it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QmpEvent {
    /// Host time the event was read.
    pub time_s: f64,
    pub role: Role,
    pub event: String,
    /// QEMU's own timestamp of the event, seconds since the epoch.
    pub qemu_time_s: f64,
    #[serde(default)]
    pub data: Value,
}

/// Something gp-migrate did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Action {
    pub time_s: f64,
    /// `migrate`, `postcopy`, `pause`, `resume`, `cancel`, `shutdown`, ...
    pub action: String,
    /// Why, in words: `iteration 1 reached --post-copy-iters 1`.
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
}

/// How a migration ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Completed,
    Failed,
    /// Cancelled by gp-migrate after `--max-iters` or `--max-time`.
    Cancelled,
    /// Ctrl-C, SIGTERM, a closed pipe, or a stream that ended before a result.
    Interrupted,
}

impl Outcome {
    /// The name as the records spell it: `completed`, `failed`, `cancelled`, `interrupted`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Completed => "completed",
            Outcome::Failed => "failed",
            Outcome::Cancelled => "cancelled",
            Outcome::Interrupted => "interrupted",
        }
    }
}

/// The final record of gp-migrate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MigrationResult {
    pub time_s: f64,
    pub outcome: Outcome,
    /// What happened, in words (QEMU's error text for `failed`).
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_time_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub downtime_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub setup_time_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transferred_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iterations: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_names_are_the_serialized_ones() {
        for o in [
            Outcome::Completed,
            Outcome::Failed,
            Outcome::Cancelled,
            Outcome::Interrupted,
        ] {
            assert_eq!(serde_json::to_value(o).unwrap(), o.as_str());
        }
    }
}
