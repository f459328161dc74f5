//! Records written by `gp-sample`: host CPU time of each QEMU and its threads.

use serde::{Deserialize, Serialize};

use crate::Role;

/// Cumulative CPU time of one QEMU process and each of its threads at `time_s`.
///
/// Times are cumulative since the thread started; utilization over an interval is the difference
/// of two samples divided by the difference of their `time_s`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CpuSample {
    pub time_s: f64,
    pub role: Role,
    pub pid: u32,
    /// The host sampled; `null` for this host.
    #[serde(default)]
    pub host: Option<String>,
    /// The whole process (all threads, including exited ones).
    pub process: CpuTime,
    pub threads: Vec<ThreadCpu>,
}

/// Cumulative CPU time.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuTime {
    /// User time in ms (clock-tick resolution, usually 10 ms).
    pub user_ms: f64,
    /// System time in ms (clock-tick resolution).
    pub system_ms: f64,
    /// Time on CPU in ns from schedstat (precise), when the kernel provides it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_ns: Option<u64>,
}

impl CpuTime {
    /// The CPU time in ms: schedstat's when present, else user + system.
    pub fn ms(&self) -> f64 {
        match self.run_ns {
            Some(ns) => ns as f64 / 1e6,
            None => self.user_ms + self.system_ms,
        }
    }
}

/// What a QEMU thread is for, from the launch record and its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ThreadClass {
    Vcpu,
    Migration,
    Other,
}

/// One thread's cumulative CPU time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThreadCpu {
    pub tid: u32,
    pub name: String,
    pub class: ThreadClass,
    /// vCPU index for `class: vcpu`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vcpu: Option<u32>,
    #[serde(flatten)]
    pub cpu: CpuTime,
}

#[cfg(test)]
mod tests {
    use super::CpuTime;

    #[test]
    fn cpu_ms_prefers_schedstat_over_clock_ticks() {
        let ticks = CpuTime {
            user_ms: 30.0,
            system_ms: 10.0,
            run_ns: None,
        };
        assert_eq!(ticks.ms(), 40.0);
        let precise = CpuTime {
            run_ns: Some(41_500_000),
            ..ticks
        };
        assert_eq!(precise.ms(), 41.5);
    }
}
