//! `gp-batch`: run the predefined comparisons and summarise them.
//!
//! For every selected scenario (and every repeat), the batch runs the one-shot's pipeline with
//! the scenario's settings and writes the report to `DIR/COMPARISON/SCENARIO.json` (see
//! [`store`] for the layout). Before running anything it asks QEMU which scenarios it can do
//! ([`probe`]) and checks the host (RDMA device, memory); what cannot run is skipped with the
//! reason written down. A rerun with the same directory resumes: runs whose file exists are not
//! run again. Repeats are interleaved across a comparison's scenarios (A1 B1 C1 A2 B2 C2), so a
//! drift of the machine spreads over all of them. At the end: `summary.json`, `summary.md` and
//! one chart per comparison (gp-plot).

pub mod comparisons;
pub mod glob;
pub mod probe;
pub mod progress;
pub mod store;
pub mod summary;

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use gp_records::report::Report;

use self::comparisons::{Comparison, Scenario};
use self::glob::{Filter, GlobError};
use self::probe::{ProbeAccel, ProbeError};
use self::progress::Progress;
use self::store::{RunError, RunId, Skipped, Store, StoreError};
use self::summary::{ComparisonSummary, Summary};
use crate::options::{Accel, HardwareArgs, Transport};
use crate::pipeline::{self, Grace, Output, PipelineExit, SignalWatch, StageCommand};
use crate::stages::{self, NotFound, Stage};

/// gp-migrate's exit status when the QEMUs cannot do the scenario.
pub const MIGRATE_UNSUPPORTED: i32 = 6;
/// gp-migrate's exit status when the migration failed (a result, not an error of the test).
pub const MIGRATE_FAILED: i32 = 3;
/// gp-migrate's exit status when it cancelled the migration after --max-iters / --max-time.
pub const MIGRATE_CANCELLED: i32 = 4;

/// Run the standard migration comparisons and write every report, a summary and charts to DIR.
///
/// Each scenario runs the pipeline gp-launch | gp-sample | gp-migrate | gp-collect and its
/// report goes to DIR/COMPARISON/SCENARIO.json (run K of --repeat: SCENARIO.rK.json). Scenarios
/// this QEMU or host cannot run are skipped, with the reason in SCENARIO.skipped.json. Rerun
/// with the same DIR to resume: finished runs are kept, not rerun.
#[derive(Debug, Clone, Parser)]
#[command(name = "gp-batch", version, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub hardware: HardwareArgs,

    /// Output directory (created if needed)
    #[arg(
        long,
        value_name = "DIR",
        required_unless_present = "list",
        help_heading = "Batch"
    )]
    pub output: Option<PathBuf>,

    /// Only scenarios whose COMPARISON/SCENARIO, or COMPARISON, matches GLOB (`*` also matches
    /// `/`); repeatable [default: all]
    #[arg(long, value_name = "GLOB", help_heading = "Batch")]
    pub filter: Vec<String>,

    /// List the comparisons and their scenarios (those --filter selects) and exit
    #[arg(long, help_heading = "Batch")]
    pub list: bool,

    /// Run each scenario N times, interleaved across each comparison's scenarios
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=1000), help_heading = "Batch")]
    pub repeat: u32,

    /// Probe QEMU and print what would run and what would be skipped, without running anything
    #[arg(long, help_heading = "Batch")]
    pub dry_run: bool,

    /// Chart format
    #[arg(long, value_enum, default_value_t = ChartFormat::Svg, help_heading = "Batch")]
    pub chart_format: ChartFormat,

    /// Seconds of workload before and after each migration, for every scenario (gp-migrate
    /// --sleep) [default: 15]
    #[arg(
        long,
        value_name = "SECONDS",
        help_heading = "Shrinking for quick runs"
    )]
    pub sleep: Option<f64>,

    /// Cancel every migration after N passes over RAM (gp-migrate --max-iters) [default: 30]
    #[arg(long, value_name = "N", help_heading = "Shrinking for quick runs")]
    pub max_iters: Option<u64>,

    /// Cancel every migration after SECONDS (gp-migrate --max-time) [default: 300]
    #[arg(
        long,
        value_name = "SECONDS",
        help_heading = "Shrinking for quick runs"
    )]
    pub max_time: Option<u64>,

    /// Host CPU sampling interval with a unit, e.g. 100ms (gp-sample --interval) [default: 100ms]
    #[arg(
        long,
        value_name = "DURATION",
        help_heading = "Shrinking for quick runs"
    )]
    pub sample_interval: Option<String>,
}

/// The format of the comparison charts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ChartFormat {
    Svg,
    Png,
}

impl ChartFormat {
    pub fn extension(self) -> &'static str {
        match self {
            ChartFormat::Svg => "svg",
            ChartFormat::Png => "png",
        }
    }
}

/// Why the batch stopped or did not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Filter(#[from] GlobError),
    #[error("--filter {0} selects no scenario; `gp-batch --list` shows them all")]
    NothingSelected(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    NotFound(#[from] NotFound),
    #[error(transparent)]
    Probe(#[from] ProbeError),
    #[error("cannot start {stage} ({program})")]
    Spawn {
        stage: String,
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot install signal handlers")]
    Signals(#[source] std::io::Error),
    #[error("{what}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{failed} of {total} runs failed; see the .error.json files and {summary}")]
    RunsFailed {
        failed: usize,
        total: usize,
        summary: String,
    },
    #[error("interrupted by {}; rerun the same command to resume", pipeline::signal_name(*.0))]
    Interrupted(i32),
}

impl Error {
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Interrupted(sig) => 128 + sig,
            Error::NotFound(_) | Error::Spawn { .. } => 127,
            Error::Filter(_) | Error::NothingSelected(_) => 2,
            _ => 1,
        }
    }
}

impl gp_stage::Failure for Error {
    fn exit_code(&self) -> u8 {
        Error::exit_code(self).clamp(1, 255) as u8
    }
}

/// The comparisons and scenarios `filter` selects, in batch order.
pub fn select(filter: &Filter) -> Vec<Comparison> {
    comparisons::all()
        .into_iter()
        .filter_map(|mut c| {
            c.scenarios.retain(|s| filter.selects(c.name, &s.name));
            (!c.scenarios.is_empty()).then_some(c)
        })
        .collect()
}

/// `--list`.
pub fn list(selected: &[Comparison]) -> String {
    let mut out = String::new();
    for c in selected {
        out.push_str(&format!("{}  ({})\n", c.name, c.description));
        for s in &c.scenarios {
            out.push_str(&format!("  {}/{}  {}\n", c.name, s.name, s.describe()));
        }
    }
    out
}

/// The runs to do, in order: per comparison, run 1 of every scenario, then run 2, ...
pub fn plan(
    selected: &[Comparison],
    repeat: u32,
    skipped: &dyn Fn(&str, &str) -> bool,
    done: &dyn Fn(&RunId) -> bool,
) -> Vec<RunId> {
    let mut runs = Vec::new();
    for c in selected {
        for k in 1..=repeat {
            for s in &c.scenarios {
                let id = RunId::new(c.name, &s.name, k);
                if !skipped(c.name, &s.name) && !done(&id) {
                    runs.push(id);
                }
            }
        }
    }
    runs
}

impl Cli {
    /// gp-launch's arguments for `scenario`: the batch's hardware with the scenario's changes.
    pub fn launch_args(&self, scenario: &Scenario) -> Vec<OsString> {
        let mut hw = self.hardware.clone();
        if let Some(t) = scenario.hardware.transport {
            hw.transport = Some(t);
        }
        if let Some(n) = scenario.hardware.cpus {
            hw.cpus = Some(n);
        }
        if let Some(m) = &scenario.hardware.mem {
            hw.mem = Some(m.clone());
        }
        hw.launch_args()
    }

    /// gp-migrate's arguments for `scenario`: its name, its settings and the batch's
    /// shrinking overrides.
    pub fn migrate_args(&self, scenario: &Scenario) -> Vec<OsString> {
        let mut sc = scenario.migrate.clone();
        sc.sleep = sc.sleep.or(self.sleep);
        sc.max_iters = sc.max_iters.or(self.max_iters);
        sc.max_time = sc.max_time.or(self.max_time);
        let mut args: Vec<OsString> = vec!["--name".into(), scenario.name.clone().into()];
        args.extend(sc.migrate_args());
        args
    }

    fn sample_args(&self) -> Vec<OsString> {
        match &self.sample_interval {
            Some(i) => crate::options::option_arg("--interval", i.into()),
            None => Vec::new(),
        }
    }

    fn probe_accel(&self) -> ProbeAccel {
        ProbeAccel {
            accel: self.hardware.accel.unwrap_or(Accel::Auto),
            dirty_ring_size: self.hardware.dirty_ring_size.unwrap_or(0),
        }
    }
}

/// The located stage binaries.
#[derive(Debug, Clone)]
struct Binaries {
    launch: PathBuf,
    sample: PathBuf,
    migrate: PathBuf,
    collect: PathBuf,
    plot: PathBuf,
}

impl Binaries {
    fn locate() -> Result<Self, NotFound> {
        Ok(Binaries {
            launch: stages::locate(Stage::Launch)?,
            sample: stages::locate(Stage::Sample)?,
            migrate: stages::locate(Stage::Migrate)?,
            collect: stages::locate(Stage::Collect)?,
            plot: stages::locate(Stage::Plot)?,
        })
    }

    fn pipeline(&self, cli: &Cli, scenario: &Scenario) -> Vec<StageCommand> {
        vec![
            StageCommand::new(Stage::Launch.binary(), &self.launch).args(cli.launch_args(scenario)),
            StageCommand::new(Stage::Sample.binary(), &self.sample).args(cli.sample_args()),
            StageCommand::new(Stage::Migrate.binary(), &self.migrate)
                .args(cli.migrate_args(scenario)),
            StageCommand::new(Stage::Collect.binary(), &self.collect),
        ]
    }
}

/// A reason this host cannot run `scenario`, found without asking QEMU.
pub fn host_refusal(cli: &Cli, scenario: &Scenario) -> Option<String> {
    let transport = scenario.hardware.transport.or(cli.hardware.transport);
    if transport == Some(Transport::Rdma) {
        let devices = std::fs::read_dir("/sys/class/infiniband")
            .map(|d| d.count())
            .unwrap_or(0);
        if devices == 0 {
            return Some(
                "no RDMA device on this host (/sys/class/infiniband is empty or missing)".into(),
            );
        }
    }
    if let Some(mem) = scenario.hardware.mem.as_deref() {
        if let Some(bytes) = parse_size(mem) {
            let vms_here = if cli.hardware.dst_host.is_some() {
                1
            } else {
                2
            };
            let available = procfs_mem_available();
            if let Some(available) = available {
                if bytes * vms_here > available {
                    return Some(format!(
                        "needs {vms_here} × {} of guest RAM but the host has {} available",
                        human_bytes(bytes),
                        human_bytes(available)
                    ));
                }
            }
        }
    }
    None
}

fn procfs_mem_available() -> Option<u64> {
    use procfs::Current;
    procfs::Meminfo::current().ok()?.mem_available
}

/// `4` (GiB, as the original), `512M`, `2G`, `1T`; `None` when it is not a size.
pub fn parse_size(text: &str) -> Option<u64> {
    gp_records::size::parse_size(text, gp_records::size::GIB).ok()
}

fn human_bytes(bytes: u64) -> String {
    let gib = bytes as f64 / (1u64 << 30) as f64;
    if gib >= 1.0 {
        format!("{gib:.1} GiB")
    } else {
        format!("{:.0} MiB", bytes as f64 / (1u64 << 20) as f64)
    }
}

/// How one run ended, as the batch files it.
#[derive(Debug)]
enum RunOutcome {
    /// A report was written (the migration may still have failed or been cancelled).
    Result {
        outcome: String,
        took: Duration,
    },
    /// gp-migrate refused the scenario for this QEMU.
    Unsupported(String),
    Failed(RunError),
    Interrupted(i32),
}

/// Runs the batch.
pub fn run(cli: &Cli) -> Result<(), Error> {
    let filter = Filter::new(&cli.filter)?;
    let selected = select(&filter);
    if selected.is_empty() {
        return Err(Error::NothingSelected(filter.patterns().join(" --filter ")));
    }
    if cli.list {
        print!("{}", list(&selected));
        return Ok(());
    }
    let output = cli
        .output
        .clone()
        .expect("clap requires --output without --list");
    let binaries = Binaries::locate()?;
    let store = Store::new(&output);
    let _lock = store.open()?;
    let signals = SignalWatch::start().map_err(Error::Signals)?;

    // Ask QEMU about every selected scenario at once.
    let scenarios: Vec<(&Comparison, &Scenario)> = selected
        .iter()
        .flat_map(|c| c.scenarios.iter().map(move |s| (c, s)))
        .collect();
    let requirements: Vec<_> = scenarios
        .iter()
        .map(|(_, s)| s.migrate.qemu_requirements())
        .collect();
    let binary = cli
        .hardware
        .binary
        .clone()
        .unwrap_or_else(|| PathBuf::from("qemu-system-x86_64"));
    let report = probe::probe(
        &binary,
        cli.probe_accel(),
        &requirements,
        Duration::from_secs(60),
    )?;

    let mut skipped: Vec<(String, String)> = Vec::new();
    for ((c, s), refusal) in scenarios.iter().zip(&report.refusals) {
        let (reason, decided_by) = match (refusal, host_refusal(cli, s)) {
            (Some(r), _) => (Some(r.clone()), "probe"),
            (None, Some(r)) => (Some(r), "host"),
            (None, None) => (None, ""),
        };
        let path = store.skipped_path(c.name, &s.name);
        match reason {
            Some(reason) => {
                if !cli.dry_run {
                    let record = Skipped {
                        comparison: c.name.to_string(),
                        scenario: s.name.clone(),
                        reason: reason.clone(),
                        decided_by: decided_by.to_string(),
                        qemu_version: Some(report.qemu_version.clone()),
                        time_s: gp_records::now_s(),
                    };
                    store
                        .write_json(&path, &record)
                        .map_err(|source| Error::Io {
                            what: format!("cannot write {}", path.display()),
                            source,
                        })?;
                }
                skipped.push((format!("{}/{}", c.name, s.name), reason));
            }
            None => {
                // Supported now (another QEMU, another host): forget an old skip.
                if !cli.dry_run && path.exists() {
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
    }
    let is_skipped = |c: &str, s: &str| skipped.iter().any(|(k, _)| *k == format!("{c}/{s}"));
    let runs = plan(&selected, cli.repeat, &is_skipped, &|id| store.is_done(id));
    let total_runs =
        selected.iter().map(|c| c.scenarios.len()).sum::<usize>() * cli.repeat as usize;
    let already = total_runs - runs.len() - skipped.len() * cli.repeat as usize;

    if cli.dry_run {
        let mut out = std::io::stdout().lock();
        let w = |out: &mut std::io::StdoutLock, s: String| {
            writeln!(out, "{s}").map_err(|source| Error::Io {
                what: "cannot write to stdout".into(),
                source,
            })
        };
        w(
            &mut out,
            format!(
                "# QEMU {} ({}), output {}",
                report.qemu_version,
                report.accel,
                output.display()
            ),
        )?;
        for (name, reason) in &skipped {
            w(&mut out, format!("# skip {name}: {reason}"))?;
        }
        w(
            &mut out,
            format!(
                "# {} to do, {already} already done",
                plural(runs.len(), "run")
            ),
        )?;
        for id in &runs {
            let (_, s) = find_scenario(&selected, id);
            let stages = binaries.pipeline(cli, s);
            w(
                &mut out,
                format!(
                    "# {}\n{} > {}",
                    id.label(),
                    pipeline::shell_pipeline(&stages),
                    pipeline::shell_quote(&store.result_path(id).display().to_string())
                ),
            )?;
        }
        return Ok(());
    }

    let progress = Progress::stderr(runs.len());
    progress.note(&format!(
        "{} to do in {} ({} already done, {} skipped); QEMU {} ({})",
        plural(runs.len(), "run"),
        output.display(),
        already,
        plural(skipped.len(), "scenario"),
        report.qemu_version,
        report.accel
    ));
    for (name, reason) in &skipped {
        progress.note(&format!("skip {name}: {reason}"));
    }
    let ticker = progress.ticker();
    let mut failed = 0;
    let mut attempted = 0;
    let mut interrupted = None;
    let mut refused_now: Vec<String> = Vec::new();
    for id in &runs {
        if let Some(sig) = signals.pending() {
            interrupted = Some(sig);
            break;
        }
        let key = format!("{}/{}", id.comparison, id.scenario);
        if refused_now.contains(&key) {
            continue;
        }
        let (c, s) = find_scenario(&selected, id);
        let label = id.label();
        progress.start_run(&label);
        if cli.hardware.verbose || cli.hardware.debug {
            progress.note(&pipeline::shell_pipeline(&binaries.pipeline(cli, s)));
        }
        attempted += 1;
        let outcome = run_one(cli, &binaries, &store, &signals, &progress, c, s, id)?;
        match outcome {
            RunOutcome::Result { outcome, took } => {
                progress.finish_run(&label, &format!("{outcome} ({:.1} s)", took.as_secs_f64()));
            }
            RunOutcome::Unsupported(reason) => {
                let record = Skipped {
                    comparison: c.name.to_string(),
                    scenario: s.name.clone(),
                    reason: reason.clone(),
                    decided_by: Stage::Migrate.binary().to_string(),
                    qemu_version: Some(report.qemu_version.clone()),
                    time_s: gp_records::now_s(),
                };
                let path = store.skipped_path(c.name, &s.name);
                store
                    .write_json(&path, &record)
                    .map_err(|source| Error::Io {
                        what: format!("cannot write {}", path.display()),
                        source,
                    })?;
                progress.finish_run(&label, &format!("skipped: {reason}"));
                // The scenario's later runs will not be tried.
                let later = runs
                    .iter()
                    .filter(|r| r.comparison == id.comparison && r.scenario == id.scenario)
                    .filter(|r| r.run > id.run)
                    .count();
                progress.forget_runs(later);
                refused_now.push(key);
            }
            RunOutcome::Failed(err) => {
                failed += 1;
                progress.finish_run(
                    &label,
                    &format!(
                        "FAILED{}: {}",
                        err.stage
                            .as_deref()
                            .map(|s| format!(" in {s}"))
                            .unwrap_or_default(),
                        err.message
                    ),
                );
            }
            RunOutcome::Interrupted(sig) => {
                progress.finish_run(
                    &label,
                    &format!("interrupted by {}", pipeline::signal_name(sig)),
                );
                interrupted = Some(sig);
                break;
            }
        }
    }
    drop(ticker);

    let summary_path = output.join("summary.md");
    let charts = interrupted.is_none();
    write_summary(cli, &binaries, &store, &signals, &progress, &report, charts)?;
    progress.note(&format!("summary: {}", summary_path.display()));
    if let Some(sig) = interrupted {
        return Err(Error::Interrupted(sig));
    }
    if failed > 0 {
        return Err(Error::RunsFailed {
            failed,
            total: attempted,
            summary: summary_path.display().to_string(),
        });
    }
    Ok(())
}

/// `1 run`, `2 runs`.
fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

fn find_scenario<'a>(selected: &'a [Comparison], id: &RunId) -> (&'a Comparison, &'a Scenario) {
    let c = selected
        .iter()
        .find(|c| c.name == id.comparison)
        .expect("planned runs come from the selection");
    let s = c
        .scenarios
        .iter()
        .find(|s| s.name == id.scenario)
        .expect("planned runs come from the selection");
    (c, s)
}

/// Runs one scenario once and files the outcome.
#[allow(clippy::too_many_arguments)]
fn run_one(
    cli: &Cli,
    binaries: &Binaries,
    store: &Store,
    signals: &SignalWatch,
    progress: &Arc<Progress>,
    comparison: &Comparison,
    scenario: &Scenario,
    id: &RunId,
) -> Result<RunOutcome, Error> {
    let io = |what: String| move |source| Error::Io { what, source };
    let temp = store.temp_file(comparison.name).map_err(io(format!(
        "cannot create a file in {}",
        store.comparison_dir(comparison.name).display()
    )))?;
    let file = temp
        .reopen()
        .map_err(io("cannot reopen a temporary file".into()))?;
    let stages = binaries.pipeline(cli, scenario);
    let started = Instant::now();
    let sink: Arc<dyn pipeline::StderrSink> = progress.clone();
    let exit = match pipeline::run(&stages, Output::File(file), signals, sink, Grace::default()) {
        Ok(exit) => exit,
        Err(pipeline::PipelineError::Spawn {
            stage,
            program,
            source,
        }) => {
            return Err(Error::Spawn {
                stage,
                program,
                source,
            })
        }
        Err(other) => unreachable!("pipeline::run only fails to spawn: {other}"),
    };
    let took = started.elapsed();
    if let Some(sig) = exit.interrupted {
        return Ok(RunOutcome::Interrupted(sig));
    }
    let report_bytes = std::fs::read(temp.path()).unwrap_or_default();
    let report: Option<Report> = serde_json::from_slice(&report_bytes).ok();
    let first = exit.first_failure().cloned();

    // A migration that failed or was cancelled is a result of the scenario, like a completed one.
    let migration_result = |f: &pipeline::StageExit| {
        f.name == Stage::Migrate.binary() && matches!(f.code, MIGRATE_FAILED | MIGRATE_CANCELLED)
    };
    match (&first, &report) {
        (None, Some(report)) | (Some(_), Some(report))
            if first.as_ref().map_or(true, migration_result) =>
        {
            store
                .persist(temp, &store.result_path(id))
                .map_err(io(format!(
                    "cannot write {}",
                    store.result_path(id).display()
                )))?;
            let _ = std::fs::remove_file(store.error_path(id));
            let outcome = summary::RunMetrics::from_report(id.run, String::new(), report).outcome;
            Ok(RunOutcome::Result { outcome, took })
        }
        (Some(f), _) if f.name == Stage::Migrate.binary() && f.code == MIGRATE_UNSUPPORTED => {
            Ok(RunOutcome::Unsupported(f.message()))
        }
        _ => {
            let err = run_error(id, &exit, &report_bytes);
            store
                .write_json(&store.error_path(id), &err)
                .map_err(io(format!(
                    "cannot write {}",
                    store.error_path(id).display()
                )))?;
            Ok(RunOutcome::Failed(err))
        }
    }
}

fn run_error(id: &RunId, exit: &PipelineExit, report_bytes: &[u8]) -> RunError {
    let report: Option<serde_json::Value> = serde_json::from_slice(report_bytes).ok();
    let (stage, status, message) = match exit.first_failure() {
        Some(f) => (Some(f.name.clone()), Some(f.code), f.message()),
        None if report_bytes.is_empty() => (None, None, "gp-collect wrote no report".to_string()),
        None => (
            None,
            None,
            "gp-collect's report is not a valid report".to_string(),
        ),
    };
    RunError {
        comparison: id.comparison.clone(),
        scenario: id.scenario.clone(),
        run: id.run,
        stage,
        status,
        message,
        time_s: gp_records::now_s(),
        report,
    }
}

/// Writes summary.json, summary.md and (when `charts`) one chart per comparison.
fn write_summary(
    cli: &Cli,
    binaries: &Binaries,
    store: &Store,
    signals: &SignalWatch,
    progress: &Arc<Progress>,
    probe: &probe::ProbeReport,
    charts: bool,
) -> Result<(), Error> {
    let mut comparisons: Vec<ComparisonSummary> = comparisons::all()
        .iter()
        .filter_map(|c| summary::summarize_comparison(store, c))
        .collect();
    for c in &mut comparisons {
        let chart = store.chart_path(&c.name, cli.chart_format.extension());
        let reports: Vec<PathBuf> = c
            .scenarios
            .iter()
            .filter_map(|s| summary::representative(&s.runs))
            .map(|r| store.root().join(&r.file))
            .collect();
        if reports.is_empty() {
            continue;
        }
        let relative = chart
            .strip_prefix(store.root())
            .unwrap_or(&chart)
            .display()
            .to_string();
        if !charts {
            if chart.exists() {
                c.chart = Some(relative);
            }
            continue;
        }
        match draw_chart(
            binaries,
            store,
            signals,
            progress,
            &c.name,
            &c.description,
            &reports,
            &chart,
            cli.chart_format,
        ) {
            Ok(()) => c.chart = Some(relative),
            Err(e) => {
                progress.note(&format!("no chart for {}: {e}", c.name));
                c.chart_error = Some(e);
            }
        }
    }
    let summary = Summary {
        tool: "gp-batch".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        generated_s: gp_records::now_s(),
        qemu_version: Some(probe.qemu_version.clone()),
        probe_accel: Some(probe.accel.clone()),
        argv: std::env::args().collect(),
        comparisons,
    };
    let json_path = store.root().join("summary.json");
    store
        .write_json(&json_path, &summary)
        .map_err(|source| Error::Io {
            what: format!("cannot write {}", json_path.display()),
            source,
        })?;
    let md_path = store.root().join("summary.md");
    store
        .write_atomic(&md_path, summary::markdown(&summary).as_bytes())
        .map_err(|source| Error::Io {
            what: format!("cannot write {}", md_path.display()),
            source,
        })?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn draw_chart(
    binaries: &Binaries,
    store: &Store,
    signals: &SignalWatch,
    progress: &Arc<Progress>,
    name: &str,
    description: &str,
    reports: &[PathBuf],
    chart: &Path,
    format: ChartFormat,
) -> Result<(), String> {
    let dir = store.comparison_dir(name);
    let temp = store
        .temp_in(&dir, &format!(".{}", format.extension()))
        .map_err(|e| format!("cannot create a file in {}: {e}", dir.display()))?;
    let cmd = StageCommand::new(Stage::Plot.binary(), &binaries.plot)
        .arg("--output")
        .arg(temp.path())
        .arg("--title")
        .arg(format!("{name}: {description}"))
        .args(reports.iter().map(|p| p.as_os_str().to_owned()));
    let sink: Arc<dyn pipeline::StderrSink> = progress.clone();
    let exit = pipeline::run(&[cmd], Output::Inherit, signals, sink, Grace::default())
        .map_err(|e| crate::error_chain(&e))?;
    exit.into_result().map_err(|e| e.to_string())?;
    store
        .persist(temp, chart)
        .map_err(|e| format!("cannot write {}: {e}", chart.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn output_is_required_except_for_list() {
        assert!(Cli::try_parse_from(["gp-batch"]).is_err());
        assert!(Cli::try_parse_from(["gp-batch", "--list"]).is_ok());
        assert!(Cli::try_parse_from(["gp-batch", "--output", "d", "--repeat", "0"]).is_err());
    }

    #[test]
    fn repeats_are_interleaved_and_finished_runs_left_out() {
        let selected =
            select(&Filter::new(&["post-copy-iters/*-[01]", "pause-iters/*-0"]).unwrap());
        let done = |id: &RunId| id.scenario == "post-copy-iters-0" && id.run == 1;
        let runs = plan(&selected, 2, &|_, s| s == "pause-iters-0", &done);
        let labels: Vec<String> = runs.iter().map(RunId::label).collect();
        assert_eq!(
            labels,
            [
                "post-copy-iters/post-copy-iters-1",
                "post-copy-iters/post-copy-iters-0#2",
                "post-copy-iters/post-copy-iters-1#2",
            ]
        );
    }

    #[test]
    fn scenario_and_overrides_reach_the_stages() {
        let cli = Cli::parse_from([
            "gp-batch",
            "--output",
            "d",
            "--mem",
            "256M",
            "--accel",
            "tcg",
            "--sleep",
            "1",
            "--max-time",
            "20",
            "--transport",
            "tcp",
        ]);
        let transport = comparisons::find("transport").unwrap();
        let unix = &transport.scenarios[0];
        let strings = |v: Vec<OsString>| {
            v.into_iter()
                .map(|s| s.into_string().unwrap())
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(
            strings(cli.launch_args(unix)),
            "--mem 256M --transport unix --accel tcg"
        );
        let mem = &comparisons::find("memory-size").unwrap().scenarios[1];
        assert_eq!(
            strings(cli.launch_args(mem)),
            "--mem 2G --transport tcp --accel tcg"
        );
        let pc = &comparisons::find("post-copy-iters").unwrap().scenarios[1];
        assert_eq!(
            strings(cli.migrate_args(pc)),
            "--name post-copy-iters-1 --sleep 1 --max-time 20 --post-copy --post-copy-iters 1"
        );
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4"), Some(4 << 30));
        assert_eq!(parse_size("512M"), Some(512 << 20));
        assert_eq!(parse_size("2G"), Some(2 << 30));
        assert_eq!(parse_size("1.5GiB"), Some(3 << 29));
        assert_eq!(parse_size("lots"), None);
        assert_eq!(human_bytes(3 << 29), "1.5 GiB");
        assert_eq!(human_bytes(256 << 20), "256 MiB");
    }

    #[test]
    fn rdma_without_a_device_is_refused_by_the_host_check() {
        if std::path::Path::new("/sys/class/infiniband").exists() {
            // An RDMA host: the check must not refuse (nothing else to assert here).
            let cli = Cli::parse_from(["gp-batch", "--output", "d"]);
            let rdma = &comparisons::find("transport").unwrap().scenarios[2];
            let has_devices = std::fs::read_dir("/sys/class/infiniband").unwrap().count() > 0;
            assert_eq!(host_refusal(&cli, rdma).is_none(), has_devices);
            return;
        }
        let cli = Cli::parse_from(["gp-batch", "--output", "d"]);
        let rdma = &comparisons::find("transport").unwrap().scenarios[2];
        let reason = host_refusal(&cli, rdma).unwrap();
        assert!(reason.starts_with("no RDMA device"), "{reason}");
        let tcp = &comparisons::find("transport").unwrap().scenarios[1];
        assert_eq!(host_refusal(&cli, tcp), None);
    }

    #[test]
    fn a_huge_guest_is_refused_by_the_memory_check() {
        let cli = Cli::parse_from(["gp-batch", "--output", "d"]);
        let mut s = comparisons::find("memory-size").unwrap().scenarios[0].clone();
        s.hardware.mem = Some("100000G".into());
        let reason = host_refusal(&cli, &s).unwrap();
        assert!(
            reason.starts_with("needs 2 × 100000.0 GiB of guest RAM but the host has "),
            "{reason}"
        );
    }
}
