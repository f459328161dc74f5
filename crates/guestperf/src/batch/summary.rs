//! `summary.json` and `summary.md`: per scenario the result, total time, downtime, guest stall,
//! guest slowdown during migration and host CPU cost, with median and spread over the runs.
//!
//! The summary is computed from the files in the output directory, not from what this
//! invocation ran, so a resumed batch (or one run with several filters in turn) summarises
//! everything that is there.

use std::fmt::Write as _;

use gp_records::report::Report;
use serde::{Deserialize, Serialize};

use super::comparisons::Comparison;
use super::store::{RunId, Store};

/// The figures of one run, taken from its report's `summary`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunMetrics {
    pub run: u32,
    /// The report, relative to the output directory.
    pub file: String,
    /// `completed`, `failed`, `cancelled`, `interrupted`, or `unknown`.
    pub outcome: String,
    /// The total migration time the report trusts (`summary.trusted_total_time_ms`: QEMU's
    /// unless its checks found it inconsistent), ms; QEMU's for older reports.
    pub total_time_ms: Option<f64>,
    /// The downtime the report trusts (`summary.trusted_downtime_ms`), ms; QEMU's for older
    /// reports.
    pub downtime_ms: Option<f64>,
    /// The longest gap in guest progress around the switchover, ms.
    pub guest_stall_ms: Option<f64>,
    /// Guest workload throughput lost while migrating, percent of the rate before.
    pub guest_slowdown_during_pct: Option<f64>,
    /// CPU time of both QEMUs while the migration ran, seconds.
    pub host_cpu_during_migration_s: Option<f64>,
    /// CPU time of the migration threads of both QEMUs, seconds.
    pub migration_threads_cpu_s: Option<f64>,
    pub transferred_bytes: Option<u64>,
    pub iterations: Option<u64>,
    /// The destination's post-copy blocktime (`summary.destination.postcopy_blocktime_ms`), ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postcopy_blocktime_ms: Option<f64>,
    /// The longest step of the downtime breakdown (`summary.downtime_breakdown`) and its ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub longest_downtime_step: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub longest_downtime_step_ms: Option<f64>,
    /// The mode the scenario asked for and the one the migration reached (`summary.mode`);
    /// absent in reports written before gp-collect said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode_requested: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode_reached: Option<String>,
    /// The requested mode was not reached (a post-copy run that pre-copy beat, a pause that
    /// never came): the run is counted apart and left out of the scenario's figures.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub mode_not_reached: bool,
}

impl RunMetrics {
    pub fn from_report(run: u32, file: String, report: &Report) -> Self {
        let summary = report.summary.clone().unwrap_or_default();
        let outcome = report
            .outcome()
            .map_or_else(|| "unknown".to_string(), |o| o.as_str().to_string());
        let mode = summary.mode.as_ref();
        let longest = summary
            .downtime_breakdown
            .as_ref()
            .and_then(|b| b.steps.iter().max_by(|a, b| a.ms.total_cmp(&b.ms)));
        RunMetrics {
            run,
            file,
            outcome,
            total_time_ms: summary.stated_total_time_ms(),
            downtime_ms: summary.stated_downtime_ms(),
            guest_stall_ms: summary.guest_stall.as_ref().map(|s| s.stall_ms),
            guest_slowdown_during_pct: summary
                .guest_throughput
                .as_ref()
                .and_then(|t| t.slowdown_during_pct),
            host_cpu_during_migration_s: summary.host_cpu.during_migration_s(None),
            migration_threads_cpu_s: summary.host_cpu.migration_threads_s,
            transferred_bytes: summary.transferred_bytes,
            iterations: summary.iterations,
            postcopy_blocktime_ms: summary
                .destination
                .as_ref()
                .and_then(|d| d.postcopy_blocktime_ms)
                .map(|v| v as f64),
            longest_downtime_step: longest.map(|s| s.step.clone()),
            longest_downtime_step_ms: longest.map(|s| s.ms),
            mode_requested: mode.map(|m| m.requested.clone()),
            mode_reached: mode.map(|m| m.reached.clone()),
            mode_not_reached: mode.is_some_and(|m| !m.requested_reached),
        }
    }
}

/// Median and spread of one figure over the runs that have it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Stat {
    /// Runs with this figure.
    pub n: usize,
    pub median: f64,
    pub min: f64,
    pub max: f64,
    /// `max - min`.
    pub spread: f64,
}

impl Stat {
    pub fn of(values: &[f64]) -> Option<Stat> {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        let median = gp_records::stats::median(&mut v)?;
        let n = v.len();
        let (min, max) = (v[0], v[n - 1]);
        Some(Stat {
            n,
            median,
            min,
            max,
            spread: max - min,
        })
    }
}

/// Statistics of every figure of a scenario.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScenarioStats {
    pub total_time_ms: Option<Stat>,
    pub downtime_ms: Option<Stat>,
    pub guest_stall_ms: Option<Stat>,
    pub guest_slowdown_during_pct: Option<Stat>,
    pub host_cpu_during_migration_s: Option<Stat>,
    pub migration_threads_cpu_s: Option<Stat>,
    /// Post-copy runs only: the destination's blocktime, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postcopy_blocktime_ms: Option<Stat>,
}

impl ScenarioStats {
    /// Over the runs that reached the mode their scenario asked for.
    pub fn of(runs: &[RunMetrics]) -> Self {
        let stat = |f: fn(&RunMetrics) -> Option<f64>| {
            let values: Vec<f64> = runs
                .iter()
                .filter(|r| !r.mode_not_reached)
                .filter_map(f)
                .collect();
            Stat::of(&values)
        };
        ScenarioStats {
            total_time_ms: stat(|r| r.total_time_ms),
            downtime_ms: stat(|r| r.downtime_ms),
            guest_stall_ms: stat(|r| r.guest_stall_ms),
            guest_slowdown_during_pct: stat(|r| r.guest_slowdown_during_pct),
            host_cpu_during_migration_s: stat(|r| r.host_cpu_during_migration_s),
            migration_threads_cpu_s: stat(|r| r.migration_threads_cpu_s),
            postcopy_blocktime_ms: stat(|r| r.postcopy_blocktime_ms),
        }
    }
}

/// A run that failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailedRun {
    pub run: u32,
    pub file: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    pub message: String,
}

/// Everything about one scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScenarioSummary {
    pub name: String,
    /// Its settings, as command-line options.
    pub settings: String,
    /// Why it was skipped, when it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    /// `3 completed`, `1 completed, 1 cancelled`, ...
    pub result: String,
    pub runs: Vec<RunMetrics>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_runs: Vec<FailedRun>,
    /// Reports that exist but could not be read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unreadable: Vec<String>,
    pub stats: ScenarioStats,
}

/// Everything about one comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComparisonSummary {
    pub name: String,
    pub description: String,
    /// The chart, relative to the output directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chart: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chart_error: Option<String>,
    pub scenarios: Vec<ScenarioSummary>,
}

/// `summary.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub tool: String,
    pub version: String,
    pub generated_s: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qemu_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe_accel: Option<String>,
    /// The gp-batch command line of the invocation that wrote this summary.
    pub argv: Vec<String>,
    pub comparisons: Vec<ComparisonSummary>,
}

/// Reads what the directory holds for `comparison` (`None` when it holds nothing).
pub fn summarize_comparison(store: &Store, comparison: &Comparison) -> Option<ComparisonSummary> {
    let mut scenarios = Vec::new();
    for scenario in &comparison.scenarios {
        let mut runs = Vec::new();
        let mut unreadable = Vec::new();
        for k in store.finished_runs(comparison.name, &scenario.name) {
            let id = RunId::new(comparison.name, &scenario.name, k);
            let path = store.result_path(&id);
            let file = relative(store, &path);
            match std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<Report>(&b).map_err(|e| e.to_string()))
            {
                Ok(report) => runs.push(RunMetrics::from_report(k, file, &report)),
                Err(e) => unreadable.push(format!("{file}: {e}")),
            }
        }
        let mut failed_runs = Vec::new();
        if let Ok(entries) = std::fs::read_dir(store.comparison_dir(comparison.name)) {
            let mut names: Vec<String> = entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".error.json"))
                .collect();
            names.sort();
            for name in names {
                let stem = &name[..name.len() - ".error.json".len()];
                let run = if stem == scenario.name {
                    1
                } else if let Some(k) = stem
                    .strip_prefix(scenario.name.as_str())
                    .and_then(|r| r.strip_prefix(".r"))
                    .and_then(|k| k.parse().ok())
                {
                    k
                } else {
                    continue;
                };
                let id = RunId::new(comparison.name, &scenario.name, run);
                let path = store.error_path(&id);
                let (stage, message) = match store.read_error(&id) {
                    Some(e) => (e.stage, e.message),
                    None => (None, "unreadable error file".to_string()),
                };
                failed_runs.push(FailedRun {
                    run,
                    file: relative(store, &path),
                    stage,
                    message,
                });
            }
        }
        let skipped = store
            .read_skipped(comparison.name, &scenario.name)
            .map(|s| s.reason);
        if runs.is_empty() && failed_runs.is_empty() && skipped.is_none() && unreadable.is_empty() {
            continue;
        }
        let result = if runs.is_empty() {
            match (&skipped, failed_runs.len()) {
                (Some(_), _) => "skipped".to_string(),
                (None, n) if n > 0 => format!("{n} failed"),
                _ => "no result".to_string(),
            }
        } else {
            let mut result = outcome_counts(&runs);
            let missed = runs.iter().filter(|r| r.mode_not_reached).count();
            if missed > 0 {
                result.push_str(&format!(
                    " ({missed} did not reach the requested mode: not in the figures)"
                ));
            }
            result
        };
        scenarios.push(ScenarioSummary {
            name: scenario.name.clone(),
            settings: scenario.describe(),
            skipped,
            result,
            stats: ScenarioStats::of(&runs),
            runs,
            failed_runs,
            unreadable,
        });
    }
    (!scenarios.is_empty()).then(|| ComparisonSummary {
        name: comparison.name.to_string(),
        description: comparison.description.to_string(),
        chart: None,
        chart_error: None,
        scenarios,
    })
}

fn relative(store: &Store, path: &std::path::Path) -> String {
    path.strip_prefix(store.root())
        .unwrap_or(path)
        .display()
        .to_string()
}

/// `2 completed, 1 cancelled`, most frequent first.
fn outcome_counts(runs: &[RunMetrics]) -> String {
    let mut counts: Vec<(String, usize)> = Vec::new();
    for r in runs {
        match counts.iter_mut().find(|(o, _)| *o == r.outcome) {
            Some((_, n)) => *n += 1,
            None => counts.push((r.outcome.clone(), 1)),
        }
    }
    counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    counts
        .iter()
        .map(|(o, n)| format!("{n} {o}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The run to draw in a comparison chart: the one whose total time is the median (the first
/// run when no run has a total time), among the runs that reached the requested mode when any
/// did.
pub fn representative(runs: &[RunMetrics]) -> Option<&RunMetrics> {
    let reached = runs.iter().any(|r| !r.mode_not_reached);
    let timed: Vec<&RunMetrics> = runs
        .iter()
        .filter(|r| r.total_time_ms.is_some() && (!reached || !r.mode_not_reached))
        .collect();
    if timed.is_empty() {
        return runs.first();
    }
    let mut sorted = timed;
    sorted.sort_by(|a, b| {
        a.total_time_ms
            .unwrap()
            .total_cmp(&b.total_time_ms.unwrap())
    });
    Some(sorted[(sorted.len() - 1) / 2])
}

/// `summary.md`.
pub fn markdown(summary: &Summary) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# gp-batch summary\n");
    let qemu = match (&summary.qemu_version, &summary.probe_accel) {
        (Some(v), Some(a)) => format!("QEMU {v} ({a})"),
        (Some(v), None) => format!("QEMU {v}"),
        _ => "QEMU version unknown".to_string(),
    };
    let _ = writeln!(
        md,
        "{qemu}; written {} by `{}`.\n",
        utc(summary.generated_s),
        summary.argv.join(" ")
    );
    let _ = writeln!(
        md,
        "Each figure is the median over the runs, with the smallest and largest in brackets when \
         there is more than one run. Guest stall: the longest gap in workload progress around \
         the switchover. Slowdown: workload throughput lost while migrating. Host CPU: CPU time \
         of both QEMUs while migrating.\n"
    );
    for c in &summary.comparisons {
        let _ = writeln!(md, "## {}\n", c.name);
        let _ = write!(md, "{}.", capitalize(&c.description));
        if let Some(chart) = &c.chart {
            let _ = write!(md, " Chart: [{chart}]({chart}).");
        }
        if let Some(err) = &c.chart_error {
            let _ = write!(md, " No chart: {}.", err.replace('\n', " "));
        }
        let _ = writeln!(md, "\n");
        let _ = writeln!(
            md,
            "| scenario | runs | result | total time (s) | downtime (ms) | guest stall (ms) | \
             guest slowdown (%) | host CPU (s) |"
        );
        let _ = writeln!(md, "|---|---:|---|---:|---:|---:|---:|---:|");
        for s in &c.scenarios {
            let st = &s.stats;
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                s.name,
                s.runs.len(),
                s.result,
                fmt_stat(st.total_time_ms, 1e-3, 2),
                fmt_stat(st.downtime_ms, 1.0, 0),
                fmt_stat(st.guest_stall_ms, 1.0, 0),
                fmt_stat(st.guest_slowdown_during_pct, 1.0, 1),
                fmt_stat(st.host_cpu_during_migration_s, 1.0, 2),
            );
        }
        let notes: Vec<String> = c
            .scenarios
            .iter()
            .flat_map(|s| {
                let mut v = Vec::new();
                if let Some(reason) = &s.skipped {
                    v.push(format!(
                        "- {} skipped: {}",
                        s.name,
                        reason.replace('\n', " ")
                    ));
                }
                for f in &s.failed_runs {
                    v.push(format!(
                        "- {} run {} failed{}: {} ([{}]({}))",
                        s.name,
                        f.run,
                        f.stage
                            .as_deref()
                            .map(|st| format!(" in {st}"))
                            .unwrap_or_default(),
                        f.message.replace('\n', " "),
                        f.file,
                        f.file
                    ));
                }
                for r in s.runs.iter().filter(|r| r.mode_not_reached) {
                    v.push(format!(
                        "- {} run {} asked for {} but reached {}: counted apart, not in the \
                         figures ([{}]({}))",
                        s.name,
                        r.run,
                        r.mode_requested.as_deref().unwrap_or("?"),
                        r.mode_reached.as_deref().unwrap_or("?"),
                        r.file,
                        r.file
                    ));
                }
                for u in &s.unreadable {
                    v.push(format!("- {} unreadable report: {u}", s.name));
                }
                v
            })
            .collect();
        if !notes.is_empty() {
            let _ = writeln!(md, "\n{}", notes.join("\n"));
        }
        let _ = writeln!(md);
    }
    md
}

fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// `3.41 (3.30–3.52)`, or `3.41` for one run, or `–` for none; `scale` converts the unit.
fn fmt_stat(stat: Option<Stat>, scale: f64, decimals: usize) -> String {
    match stat {
        None => "–".to_string(),
        Some(s) if s.n == 1 => format!("{:.*}", decimals, s.median * scale),
        Some(s) => format!(
            "{:.*} ({:.*}–{:.*})",
            decimals,
            s.median * scale,
            decimals,
            s.min * scale,
            decimals,
            s.max * scale
        ),
    }
}

/// `2025-11-25 20:30:00 UTC` from seconds since the epoch.
pub fn utc(epoch_s: f64) -> String {
    let secs = epoch_s.max(0.0) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil-from-days (proleptic Gregorian), after Howard Hinnant's algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(k: u32, outcome: &str, total: Option<f64>) -> RunMetrics {
        RunMetrics {
            run: k,
            file: format!("c/s.r{k}.json"),
            outcome: outcome.into(),
            total_time_ms: total,
            ..Default::default()
        }
    }

    #[test]
    fn median_and_spread() {
        assert_eq!(Stat::of(&[]), None);
        let one = Stat::of(&[4.0]).unwrap();
        assert_eq!((one.n, one.median, one.spread), (1, 4.0, 0.0));
        let odd = Stat::of(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!(
            (odd.median, odd.min, odd.max, odd.spread),
            (2.0, 1.0, 3.0, 2.0)
        );
        let even = Stat::of(&[1.0, 4.0, 2.0, 10.0]).unwrap();
        assert_eq!(even.median, 3.0);
        let with_nan = Stat::of(&[f64::NAN, 5.0]).unwrap();
        assert_eq!(with_nan.n, 1);
    }

    #[test]
    fn stats_skip_runs_without_the_figure() {
        let runs = [
            run(1, "completed", Some(1000.0)),
            run(2, "cancelled", None),
            run(3, "completed", Some(3000.0)),
        ];
        let st = ScenarioStats::of(&runs);
        let total = st.total_time_ms.unwrap();
        assert_eq!((total.n, total.median), (2, 2000.0));
        assert_eq!(st.downtime_ms, None);
        assert_eq!(outcome_counts(&runs), "2 completed, 1 cancelled");
    }

    #[test]
    fn runs_that_missed_the_requested_mode_are_counted_apart() {
        let mut missed = run(2, "completed", Some(150.0));
        missed.mode_not_reached = true;
        missed.mode_requested = Some("post-copy".into());
        missed.mode_reached = Some("precopy".into());
        let runs = [
            run(1, "completed", Some(1000.0)),
            missed,
            run(3, "completed", Some(3000.0)),
        ];
        let total = ScenarioStats::of(&runs).total_time_ms.unwrap();
        assert_eq!((total.n, total.median), (2, 2000.0));
        let summary = Summary {
            tool: "gp-batch".into(),
            version: "0".into(),
            generated_s: 0.0,
            qemu_version: None,
            probe_accel: None,
            argv: vec![],
            comparisons: vec![ComparisonSummary {
                name: "c".into(),
                description: "d".into(),
                chart: None,
                chart_error: None,
                scenarios: vec![ScenarioSummary {
                    name: "post-copy".into(),
                    settings: String::new(),
                    skipped: None,
                    result: "3 completed".into(),
                    stats: ScenarioStats::of(&runs),
                    runs: runs.to_vec(),
                    failed_runs: vec![],
                    unreadable: vec![],
                }],
            }],
        };
        let md = markdown(&summary);
        assert!(
            md.contains(
                "- post-copy run 2 asked for post-copy but reached precopy: counted apart, not in \
                 the figures ([c/s.r2.json](c/s.r2.json))"
            ),
            "{md}"
        );
    }

    #[test]
    fn representative_is_the_median_run() {
        let runs = [
            run(1, "completed", Some(5.0)),
            run(2, "completed", Some(1.0)),
            run(3, "completed", Some(3.0)),
        ];
        assert_eq!(representative(&runs).unwrap().run, 3);
        let untimed = [run(1, "failed", None), run(2, "failed", None)];
        assert_eq!(representative(&untimed).unwrap().run, 1);
        assert!(representative(&[]).is_none());
        // A run that missed its mode is not drawn while another reached it.
        let mut missed = run(3, "completed", Some(3.0));
        missed.mode_not_reached = true;
        let runs = [run(1, "completed", Some(5.0)), missed];
        assert_eq!(representative(&runs).unwrap().run, 1);
    }

    #[test]
    fn formats() {
        assert_eq!(fmt_stat(None, 1.0, 0), "–");
        assert_eq!(fmt_stat(Stat::of(&[3410.0]), 1e-3, 2), "3.41");
        assert_eq!(
            fmt_stat(Stat::of(&[3300.0, 3520.0]), 1e-3, 2),
            "3.41 (3.30–3.52)"
        );
        assert_eq!(utc(0.0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(1_764_102_435.9), "2025-11-25 20:27:15 UTC");
        assert_eq!(utc(951_782_400.0), "2000-02-29 00:00:00 UTC");
    }

    #[test]
    fn metrics_come_from_the_report_summary() {
        use gp_records::report::{GuestStall, GuestThroughput, HostCpu, VmCpu};
        use gp_records::{Outcome, Role};
        let mut report: Report = serde_json::from_value(serde_json::json!({
            "hardware": {"cpus": 1, "mem": 0.25},
            "scenario": {"name": "x"},
            "progress_history": [], "guest_timings": [], "qemu_timings": [], "vcpu_timings": [],
            "result": {"success": true}
        }))
        .unwrap();
        let vm = |role, during| VmCpu {
            role,
            pid: 1,
            host: None,
            samples: 3,
            process_s: 9.0,
            during_migration_s: during,
            vcpu_s: 0.0,
            migration_s: 0.0,
            other_s: 0.0,
            migration_threads: vec![],
        };
        report.summary = Some(gp_records::report::Summary {
            outcome: Some(Outcome::Cancelled),
            total_time_ms: Some(4000),
            downtime_ms: Some(120),
            guest_stall: Some(GuestStall {
                stall_ms: 250.0,
                start_s: 1.0,
                end_s: 1.25,
                before_role: Role::Src,
                after_role: Role::Dst,
                typical_gap_ms: None,
                qemu_downtime_ms: Some(120),
                excess_over_downtime_ms: Some(130.0),
            }),
            guest_throughput: Some(GuestThroughput {
                slowdown_during_pct: Some(35.5),
                ..Default::default()
            }),
            host_cpu: HostCpu {
                migration_threads_s: Some(0.5),
                vms: vec![vm(Role::Src, Some(1.5)), vm(Role::Dst, Some(1.0))],
                ..Default::default()
            },
            ..Default::default()
        });
        let m = RunMetrics::from_report(2, "f".into(), &report);
        assert_eq!(m.outcome, "cancelled");
        assert_eq!(m.total_time_ms, Some(4000.0));
        assert_eq!(m.downtime_ms, Some(120.0));
        assert_eq!(m.guest_stall_ms, Some(250.0));
        assert_eq!(m.guest_slowdown_during_pct, Some(35.5));
        assert_eq!(m.host_cpu_during_migration_s, Some(2.5));
        assert_eq!(m.migration_threads_cpu_s, Some(0.5));
        assert!(!m.mode_not_reached && m.mode_reached.is_none());
        // The trusted figures win over QEMU's, and a missed mode is said.
        let s = report.summary.as_mut().unwrap();
        s.trusted_downtime_ms = Some(160.0);
        s.trusted_total_time_ms = Some(4100.0);
        s.mode = Some(gp_records::report::MigrationMode {
            requested: "post-copy".into(),
            reached: "precopy".into(),
            requested_reached: false,
            ..Default::default()
        });
        let m = RunMetrics::from_report(2, "f".into(), &report);
        assert_eq!(
            (m.total_time_ms, m.downtime_ms),
            (Some(4100.0), Some(160.0))
        );
        assert!(m.mode_not_reached);
        assert_eq!(m.mode_reached.as_deref(), Some("precopy"));
        // Blocktime and the longest breakdown step, where the report has them.
        let s = report.summary.as_mut().unwrap();
        s.destination = Some(gp_records::report::DestinationFigures {
            postcopy_blocktime_ms: Some(2929),
            ..Default::default()
        });
        s.downtime_breakdown = Some(gp_records::report::DowntimeBreakdown {
            available: true,
            steps: [("src-vm-stopped", 0.1), ("src-iterable-saved", 6.9)]
                .into_iter()
                .map(|(step, ms)| gp_records::report::BreakdownStep {
                    step: step.into(),
                    from: "x".into(),
                    role: Role::Src,
                    start_s: 0.0,
                    ms,
                })
                .collect(),
            ..Default::default()
        });
        let m = RunMetrics::from_report(2, "f".into(), &report);
        assert_eq!(m.postcopy_blocktime_ms, Some(2929.0));
        assert_eq!(
            m.longest_downtime_step.as_deref(),
            Some("src-iterable-saved")
        );
        assert_eq!(m.longest_downtime_step_ms, Some(6.9));
        // An original guestperf result has only `result.success`.
        report.summary = None;
        assert_eq!(
            RunMetrics::from_report(1, "f".into(), &report).outcome,
            "completed"
        );
    }
}
