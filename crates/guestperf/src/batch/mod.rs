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
//!
//! Beyond one machine and one build: [`shard`] cuts the selection into parts for many hosts
//! (`--shard K/N`), [`merge`] gathers parts back and summarises them without running anything
//! (`--merge DIR ...`), and [`ab`] runs two arms of every run interleaved and compares them
//! (`--ab-a`, `--ab-b`).
//!
//! [`run`] is the sequence of steps below, each testable on its own: [`resolve`] (each
//! scenario's options for gp-launch and gp-migrate), [`skips`] (the probe's and the host's
//! refusals), [`plan`] and [`Counts`] (what is left to do), [`dry_run_text`], `run_one` with
//! [`classify`] (how a finished pipeline is filed), [`Tally`] (the running count and the end
//! status), and the summary.

pub mod ab;
pub mod comparisons;
pub mod glob;
pub mod merge;
pub mod probe;
pub mod progress;
pub mod shard;
pub mod store;
pub mod summary;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use gp_records::report::Report;

use self::comparisons::{Comparison, Scenario};
use self::glob::{Filter, GlobError};
use self::probe::{ProbeAccel, ProbeError, ProbeReport};
use self::progress::Progress;
use self::shard::{Shard, ShardError, ShardSource};
use self::store::{RunError, RunId, Skipped, Store, StoreError};
use self::summary::{ComparisonSummary, Summary};
use crate::options::{Launch, Migrate, Sampling, Transport, LAUNCH_HEADING};
use crate::pipeline::{
    self, Grace, Output, PipelineError, PipelineExit, SignalWatch, StageCommand,
};
use crate::stages::{self, NotFound, Stage};

/// gp-migrate's exit status when the QEMUs cannot do the scenario.
pub const MIGRATE_UNSUPPORTED: i32 = 6;
/// gp-migrate's exit status when the migration failed (a result, not an error of the test).
pub const MIGRATE_FAILED: i32 = 3;
/// gp-migrate's exit status when it cancelled the migration after --max-iters / --max-time.
pub const MIGRATE_CANCELLED: i32 = 4;

/// Help heading of gp-migrate's options in gp-batch.
const MIGRATE_HEADING: &str =
    "Migration, for every scenario (passed to gp-migrate; a scenario's own settings win)";

/// Run the standard migration comparisons and write every report, a summary and charts to DIR.
///
/// Each scenario runs the pipeline gp-launch | gp-sample | gp-migrate | gp-collect and its
/// report goes to DIR/COMPARISON/SCENARIO.json (run K of --repeat: SCENARIO.rK.json). Scenarios
/// this QEMU or host cannot run are skipped, with the reason in SCENARIO.skipped.json. Rerun
/// with the same DIR to resume: finished runs are kept, not rerun.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "gp-batch",
    version,
    max_term_width = 100,
    allow_negative_numbers = true
)]
// gp-batch names every run after its scenario: gp-migrate's --name is not an option here.
#[command(mut_arg("name", |a| a.hide(true).value_parser(no_name)))]
pub struct Cli {
    #[command(flatten, next_help_heading = LAUNCH_HEADING)]
    pub launch: Launch,

    #[command(flatten, next_help_heading = MIGRATE_HEADING)]
    pub migrate: Migrate,

    #[command(flatten, next_help_heading = "Batch")]
    pub sampling: Sampling,

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

    /// List the comparisons and their scenarios (those --filter selects) and exit; with --shard,
    /// the part's runs and their expected times
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

    /// Run only part K of N of the selected runs (scenarios x --repeat), cut the same way on
    /// every machine given the same command line: the N parts together are the whole batch,
    /// each run once, balanced in expected run time
    #[arg(
        long,
        value_name = "K/N",
        help_heading = "Many hosts",
        conflicts_with = "shard_from"
    )]
    pub shard: Option<Shard>,

    /// Take the part's index (and count, where the runner says it) from the job runner's
    /// environment, e.g. `--shard-from slurm`; never guessed without this flag
    #[arg(long, value_enum, value_name = "RUNNER", help_heading = "Many hosts")]
    pub shard_from: Option<ShardSource>,

    /// The number of parts, for --shard-from runners that do not say it (kubernetes, parallel-*)
    #[arg(long, value_name = "N", requires = "shard_from", help_heading = "Many hosts",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub shard_count: Option<u32>,

    /// Summarise only, running nothing: gather the runs of the DIRs (e.g. the --shard parts
    /// from many hosts) into --output, check that each run of the selection is there once
    /// (listing what is missing or duplicated), and write the summary
    #[arg(long, value_name = "DIR", num_args = 1.., help_heading = "Many hosts",
          conflicts_with_all = ["shard", "shard_from", "dry_run"])]
    pub merge: Vec<PathBuf>,

    /// A/B: run every selected run once per arm, interleaved (A B, then B A, ...), arm A with
    /// these extra gp-launch/gp-migrate options over the batch's and the scenario's (e.g.
    /// '--binary /opt/old/bin/qemu-system-x86_64'; '' for none); reports in OUTPUT/a and
    /// OUTPUT/b, then gp-compare into OUTPUT/compare
    #[arg(
        long,
        value_name = "OPTIONS",
        allow_hyphen_values = true,
        requires = "ab_b",
        conflicts_with = "merge",
        help_heading = "A/B"
    )]
    pub ab_a: Option<String>,

    /// A/B: arm B's extra options (see --ab-a)
    #[arg(
        long,
        value_name = "OPTIONS",
        allow_hyphen_values = true,
        requires = "ab_a",
        help_heading = "A/B"
    )]
    pub ab_b: Option<String>,

    /// With --merge: when the runs of a scenario come from different hardware, write one merged
    /// directory per kind of hardware (OUTPUT/HARDWARE/) instead of refusing
    #[arg(long, requires = "merge", help_heading = "Many hosts")]
    pub by_hardware: bool,
}

/// gp-migrate's `--name`, refused unless it is gp-migrate's default (which clap parses when the
/// option is not given).
fn no_name(s: &str) -> Result<String, String> {
    if s == Migrate::defaults().name {
        Ok(s.to_string())
    } else {
        Err("gp-batch names each run after its scenario; --name is guestperf's".to_string())
    }
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
    #[error("scenario {scenario}: {message}")]
    Scenario { scenario: String, message: String },
    /// A stage could not be started (exit 127).
    #[error(transparent)]
    Pipeline(PipelineError),
    #[error("cannot install signal handlers")]
    Signals(#[source] std::io::Error),
    #[error("{what}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Shard(#[from] ShardError),
    /// A bad --ab-a or --ab-b.
    #[error("{0}")]
    AbOptions(String),
    /// The A/B could not go on (other arms in the directory, gp-compare failed).
    #[error("{0}")]
    Ab(String),
    /// A --merge argument that is not a directory.
    #[error("{0}")]
    MergeInput(String),
    /// The merge refuses (duplicates, mixed hardware, conflicting files) or is incomplete.
    #[error("{0}")]
    Merge(String),
    #[error("--output DIR is needed (except with --list)")]
    NoOutput,
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
            Error::NotFound(_) => 127,
            Error::Filter(_)
            | Error::NothingSelected(_)
            | Error::NoOutput
            | Error::Shard(_)
            | Error::AbOptions(_)
            | Error::MergeInput(_) => 2,
            Error::Pipeline(e) => e.exit_code(),
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

/// A selected scenario with what its stages get: the batch's options with the scenario's own
/// over them.
#[derive(Debug, Clone)]
pub struct Resolved<'a> {
    pub comparison: &'a Comparison,
    pub scenario: &'a Scenario,
    pub launch: Launch,
    pub migrate: Migrate,
}

impl Resolved<'_> {
    /// `COMPARISON/SCENARIO`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.comparison.name, self.scenario.name)
    }
}

/// Every selected scenario, in batch order, with its stages' options.
pub fn resolve<'a>(cli: &Cli, selected: &'a [Comparison]) -> Result<Vec<Resolved<'a>>, Error> {
    let refused = |s: &Scenario, e: clap::Error| Error::Scenario {
        scenario: s.name.clone(),
        message: e.kind().as_str().unwrap_or("refused").to_string() + ": " + &s.describe(),
    };
    let mut out = Vec::new();
    for c in selected {
        for s in &c.scenarios {
            out.push(Resolved {
                comparison: c,
                scenario: s,
                launch: s.launch_over(&cli.launch).map_err(|e| refused(s, e))?,
                migrate: s.migrate_over(&cli.migrate).map_err(|e| refused(s, e))?,
            });
        }
    }
    Ok(out)
}

/// Why a scenario will not run, and who decided it.
#[derive(Debug, Clone, PartialEq)]
pub struct Skip {
    pub reason: String,
    /// `probe`, `host` or `gp-migrate` (see [`Skipped::decided_by`]).
    pub decided_by: &'static str,
}

/// For each scenario (in order, as `refusals` from the probe): the probe's refusal, else the
/// host's, else none.
pub fn skips(
    scenarios: &[Resolved],
    refusals: &[Option<String>],
    host: impl Fn(&Resolved) -> Option<String>,
) -> Vec<Option<Skip>> {
    scenarios
        .iter()
        .zip(refusals)
        .map(|(r, refusal)| match refusal {
            Some(reason) => Some(Skip {
                reason: reason.clone(),
                decided_by: "probe",
            }),
            None => host(r).map(|reason| Skip {
                reason,
                decided_by: "host",
            }),
        })
        .collect()
}

/// A reason this host cannot run `scenario`, found without asking QEMU: RDMA without a device,
/// or a scenario's guest size (when it differs from the batch's own) beyond the host's available
/// memory.
pub fn host_refusal(cli: &Cli, scenario: &Resolved) -> Option<String> {
    if scenario.launch.transport == Transport::Rdma {
        let devices = std::fs::read_dir("/sys/class/infiniband")
            .map(|d| d.count())
            .unwrap_or(0);
        if devices == 0 {
            return Some(
                "no RDMA device on this host (/sys/class/infiniband is empty or missing)".into(),
            );
        }
    }
    let bytes = scenario.launch.mem;
    if bytes != cli.launch.mem {
        let vms_here = if scenario.launch.dst_host.is_some() {
            1
        } else {
            2
        };
        if let Some(available) = procfs_mem_available() {
            if bytes * vms_here > available {
                return Some(format!(
                    "needs {vms_here} × {} of guest RAM but the host has {} available",
                    human_bytes(bytes),
                    human_bytes(available)
                ));
            }
        }
    }
    None
}

fn procfs_mem_available() -> Option<u64> {
    use procfs::Current;
    procfs::Meminfo::current().ok()?.mem_available
}

fn human_bytes(bytes: u64) -> String {
    let gib = bytes as f64 / (1u64 << 30) as f64;
    if gib >= 1.0 {
        format!("{gib:.1} GiB")
    } else {
        format!("{:.0} MiB", bytes as f64 / (1u64 << 20) as f64)
    }
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

/// How many runs the batch has: to do, done before, and skipped scenarios.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub to_do: usize,
    pub already: usize,
    pub skipped_scenarios: usize,
}

impl Counts {
    pub fn new(scenarios: usize, repeat: u32, to_do: usize, skipped_scenarios: usize) -> Self {
        let total = scenarios * repeat as usize;
        Counts {
            to_do,
            already: total - to_do - skipped_scenarios * repeat as usize,
            skipped_scenarios,
        }
    }
}

/// `--dry-run`'s output: the probe's verdict, the skips, and each run's pipeline with where its
/// report would go.
pub fn dry_run_text(
    probe: &ProbeReport,
    output: &Path,
    skipped: &[(String, Skip)],
    counts: Counts,
    runs: &[(RunId, Vec<StageCommand>, PathBuf)],
) -> String {
    let mut out = format!(
        "# QEMU {} ({}), output {}\n",
        probe.qemu_version,
        probe.accel,
        output.display()
    );
    for (key, skip) in skipped {
        out.push_str(&format!("# skip {key}: {}\n", skip.reason));
    }
    out.push_str(&format!(
        "# {} to do, {} already done\n",
        plural(counts.to_do, "run"),
        counts.already
    ));
    for (id, stages, result) in runs {
        out.push_str(&format!(
            "# {}\n{} > {}\n",
            id.label(),
            pipeline::shell_pipeline(stages),
            pipeline::shell_quote(&result.display().to_string())
        ));
    }
    out
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

    fn pipeline(&self, cli: &Cli, scenario: &Resolved) -> Vec<StageCommand> {
        vec![
            StageCommand::new(Stage::Launch.binary(), &self.launch).args(scenario.launch.to_args()),
            StageCommand::new(Stage::Sample.binary(), &self.sample).args(cli.sampling.to_args()),
            StageCommand::new(Stage::Migrate.binary(), &self.migrate)
                .args(scenario.migrate.to_args()),
            StageCommand::new(Stage::Collect.binary(), &self.collect),
        ]
    }
}

/// How one run ended, as the batch files it.
#[derive(Debug)]
pub enum RunOutcome {
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

/// What the batch has done so far, and how it ends.
#[derive(Debug, Default)]
pub struct Tally {
    pub attempted: usize,
    pub failed: usize,
    pub interrupted: Option<i32>,
    /// `COMPARISON/SCENARIO` of scenarios gp-migrate refused during this batch: their later runs
    /// are not tried.
    pub refused: Vec<String>,
}

impl Tally {
    /// Counts `outcome` of run `id` and says it in a few words for the progress line.
    pub fn record(&mut self, id: &RunId, outcome: &RunOutcome) -> String {
        match outcome {
            RunOutcome::Result { outcome, took } => {
                format!("{outcome} ({:.1} s)", took.as_secs_f64())
            }
            RunOutcome::Unsupported(reason) => {
                self.refused
                    .push(format!("{}/{}", id.comparison, id.scenario));
                format!("skipped: {reason}")
            }
            RunOutcome::Failed(err) => {
                self.failed += 1;
                let stage = err
                    .stage
                    .as_deref()
                    .map(|s| format!(" in {s}"))
                    .unwrap_or_default();
                format!("FAILED{stage}: {}", err.message)
            }
            RunOutcome::Interrupted(sig) => {
                self.interrupted = Some(*sig);
                format!("interrupted by {}", pipeline::signal_name(*sig))
            }
        }
    }

    /// Whether run `id` is still to be tried (its scenario was not refused meanwhile).
    pub fn wants(&self, id: &RunId) -> bool {
        !self
            .refused
            .contains(&format!("{}/{}", id.comparison, id.scenario))
    }

    /// The batch's end: interrupted, some runs failed, or success.
    pub fn result(&self, summary: &Path) -> Result<(), Error> {
        if let Some(sig) = self.interrupted {
            return Err(Error::Interrupted(sig));
        }
        if self.failed > 0 {
            return Err(Error::RunsFailed {
                failed: self.failed,
                total: self.attempted,
                summary: summary.display().to_string(),
            });
        }
        Ok(())
    }
}

/// How many of `runs` after `id` belong to the same scenario.
pub fn later_runs(runs: &[RunId], id: &RunId) -> usize {
    runs.iter()
        .filter(|r| r.comparison == id.comparison && r.scenario == id.scenario && r.run > id.run)
        .count()
}

/// Runs the batch.
pub fn run(cli: &Cli) -> Result<(), Error> {
    let filter = Filter::new(&cli.filter)?;
    let selected = select(&filter);
    if selected.is_empty() {
        return Err(Error::NothingSelected(filter.patterns().join(" --filter ")));
    }
    if cli.list {
        match chosen_shard(cli, &|k| std::env::var(k).ok())? {
            None => print!("{}", list(&selected)),
            Some(shard) => {
                let scenarios = resolve(cli, &selected)?;
                let all = plan(&selected, cli.repeat, &|_, _| false, &|_| false);
                let mine = shard::select_runs(&all, &scenarios, shard);
                print!("{}", shard::list_part(shard, &all, &mine, &scenarios));
            }
        }
        return Ok(());
    }
    let Some(output) = cli.output.clone() else {
        return Err(Error::NoOutput);
    };
    if !cli.merge.is_empty() {
        return merge_into(cli, &output);
    }
    let shard = chosen_shard(cli, &|k| std::env::var(k).ok())?;
    if cli.ab_a.is_some() {
        return ab::run(cli, &selected, &output, shard);
    }
    let scenarios = resolve(cli, &selected)?;
    let binaries = Binaries::locate()?;
    let store = Store::new(&output);
    let _lock = store.open()?;
    let signals = SignalWatch::start().map_err(Error::Signals)?;
    let probe = probe_scenarios(cli, &scenarios)?;
    let decisions = skips(&scenarios, &probe.refusals, |r| host_refusal(cli, r));
    if !cli.dry_run {
        file_skips(&store, &scenarios, &decisions, &probe)?;
    }
    let skipped: Vec<(String, Skip)> = scenarios
        .iter()
        .zip(&decisions)
        .filter_map(|(r, d)| d.clone().map(|d| (r.key(), d)))
        .collect();
    let is_skipped = |c: &str, s: &str| skipped.iter().any(|(k, _)| *k == format!("{c}/{s}"));
    let (runs, counts) = match shard {
        None => {
            let runs = plan(&selected, cli.repeat, &is_skipped, &|id| store.is_done(id));
            let counts = Counts::new(scenarios.len(), cli.repeat, runs.len(), skipped.len());
            (runs, counts)
        }
        Some(shard) => {
            let all = plan(&selected, cli.repeat, &|_, _| false, &|_| false);
            let mine = shard::select_runs(&all, &scenarios, shard);
            if !cli.dry_run {
                let manifest = shard::Manifest::new(cli, shard, &all, &mine, &scenarios);
                let path = store.root().join(manifest.file_name());
                store
                    .write_json(&path, &manifest)
                    .map_err(|source| Error::Io {
                        what: format!("cannot write {}", path.display()),
                        source,
                    })?;
            }
            shard::plan_part(&mine, &is_skipped, &|id| store.is_done(id))
        }
    };
    let batch = Batch {
        cli,
        binaries,
        store,
        signals: &signals,
        probe,
        scenarios,
    };
    if cli.dry_run {
        return batch.dry_run(&output, &skipped, counts, &runs);
    }

    let progress = Progress::stderr(runs.len());
    if let Some(shard) = shard {
        progress.note(&format!("part {shard} of the selection (--shard)"));
    }
    progress.note(&format!(
        "{} to do in {} ({} already done, {} skipped); QEMU {} ({})",
        plural(counts.to_do, "run"),
        output.display(),
        counts.already,
        plural(counts.skipped_scenarios, "scenario"),
        batch.probe.qemu_version,
        batch.probe.accel
    ));
    for (key, skip) in &skipped {
        progress.note(&format!("skip {key}: {}", skip.reason));
    }
    let tally = batch.run_all(&runs, &progress)?;
    let summary_path = output.join("summary.md");
    let charts = tally.interrupted.is_none();
    write_summary(&batch, &progress, charts)?;
    progress.note(&format!("summary: {}", summary_path.display()));
    tally.result(&summary_path)
}

/// `--merge`: gathers the directories into `output`, checks and summarises them (see
/// [`merge`]).
fn merge_into(cli: &Cli, output: &Path) -> Result<(), Error> {
    for dir in &cli.merge {
        if !dir.is_dir() {
            return Err(Error::MergeInput(format!(
                "--merge {}: not a directory (give gp-batch output directories)",
                dir.display()
            )));
        }
    }
    let gathered = merge::gather(&cli.merge).map_err(|source| Error::Io {
        what: "cannot read the --merge directories".into(),
        source,
    })?;
    let expected = merge::expected(&gathered, &cli.filter, cli.repeat)?;
    let (mut findings, kinds) = merge::check(&gathered, &expected, &merge::read_hardware);
    findings.sources = cli.merge.iter().map(|d| d.display().to_string()).collect();
    if let Some(why) = findings.refusal(cli.by_hardware) {
        return Err(Error::Merge(format!("nothing merged: {why}")));
    }
    // Where each kind of hardware goes.
    let mut strata: BTreeMap<String, PathBuf> = BTreeMap::new();
    if cli.by_hardware {
        strata = hardware_dirs(&kinds, output);
        findings.strata = strata
            .iter()
            .map(|(k, p)| (k.clone(), p.display().to_string()))
            .collect();
    }
    let roots: Vec<PathBuf> = if strata.is_empty() {
        vec![output.to_path_buf()]
    } else {
        strata.values().cloned().collect()
    };
    let copies = merge_copies(&gathered, &kinds, &strata, &roots, output);
    let conflicts = merge_conflicts(&copies)?;
    if !conflicts.is_empty() {
        return Err(Error::Merge(format!(
            "nothing merged: --output already holds other files of the same runs: {}",
            conflicts.join("; ")
        )));
    }
    let stores: Vec<Store> = roots.iter().map(Store::new).collect();
    let _locks = stores
        .iter()
        .map(Store::open)
        .collect::<Result<Vec<_>, _>>()?;
    let store = Store::new(output);
    for (src, dst) in &copies {
        if dst.exists() {
            continue;
        }
        store
            .write_atomic(dst, &read_merged(src)?)
            .map_err(|source| Error::Io {
                what: format!("cannot write {}", dst.display()),
                source,
            })?;
    }
    findings.merged = gathered.results.len();
    let json_path = output.join("merge.json");
    store
        .write_json(&json_path, &findings)
        .map_err(|source| Error::Io {
            what: format!("cannot write {}", json_path.display()),
            source,
        })?;
    summarise_merged(cli, output, &findings, &stores)?;
    match findings.incomplete() {
        Some(what) => Err(Error::Merge(format!(
            "incomplete: {what} (see {})",
            json_path.display()
        ))),
        None => Ok(()),
    }
}

/// `--by-hardware`: a directory under `output` for each kind of hardware, named after its slug
/// (with `-2`, `-3`... when two kinds share a slug), in the order the runs name them.
fn hardware_dirs(kinds: &BTreeMap<merge::Key, String>, output: &Path) -> BTreeMap<String, PathBuf> {
    let mut strata = BTreeMap::new();
    for kind in kinds.values() {
        if strata.contains_key(kind) {
            continue;
        }
        let base = merge::slug(kind);
        let mut name = base.clone();
        let mut n = 2;
        while strata.values().any(|p: &PathBuf| p.ends_with(&name)) {
            name = format!("{base}-{n}");
            n += 1;
        }
        strata.insert(kind.clone(), output.join(name));
    }
    strata
}

/// What goes where, as (source, destination) pairs: reports to their hardware's directory
/// (`strata`, else `output`), skips and failures without a report to each of `roots`.
fn merge_copies(
    gathered: &merge::Gathered,
    kinds: &BTreeMap<merge::Key, String>,
    strata: &BTreeMap<String, PathBuf>,
    roots: &[PathBuf],
    output: &Path,
) -> Vec<(PathBuf, PathBuf)> {
    let root_of = |key: &merge::Key| -> PathBuf {
        kinds
            .get(key)
            .and_then(|k| strata.get(k))
            .cloned()
            .unwrap_or_else(|| output.to_path_buf())
    };
    let mut copies: Vec<(PathBuf, PathBuf)> = Vec::new();
    let dest = |root: &Path, src: &Path| -> PathBuf {
        let comparison = src.parent().and_then(Path::file_name).unwrap_or_default();
        root.join(comparison)
            .join(src.file_name().unwrap_or_default())
    };
    for (key, files) in &gathered.results {
        copies.push((files[0].clone(), dest(&root_of(key), &files[0])));
    }
    for (key, files) in gathered.errors.iter().chain(&gathered.skipped) {
        if gathered.results.contains_key(key) {
            continue;
        }
        for root in roots {
            copies.push((files[0].clone(), dest(root, &files[0])));
        }
    }
    copies
}

/// The destinations of `copies` that already exist with other contents than their source, each
/// as a sentence.
fn merge_conflicts(copies: &[(PathBuf, PathBuf)]) -> Result<Vec<String>, Error> {
    let mut conflicts = Vec::new();
    for (src, dst) in copies {
        if dst.exists() && read_merged(src)? != read_merged(dst)? {
            conflicts.push(format!("{} differs from {}", dst.display(), src.display()));
        }
    }
    Ok(conflicts)
}

/// Reads a file the merge copies or compares.
fn read_merged(p: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(p).map_err(|source| Error::Io {
        what: format!("cannot read {}", p.display()),
        source,
    })
}

/// Tells what the merge did on stderr, and writes the summary (and charts) of each merged
/// directory in `stores`.
fn summarise_merged(
    cli: &Cli,
    output: &Path,
    findings: &merge::Findings,
    stores: &[Store],
) -> Result<(), Error> {
    let binaries = Binaries::locate()?;
    let signals = SignalWatch::start().map_err(Error::Signals)?;
    let progress = Progress::stderr(0);
    progress.note(&format!(
        "merged {} from {} into {} ({} expected from the {})",
        plural(findings.merged, "run"),
        plural(cli.merge.len(), "directory"),
        output.display(),
        findings.expected,
        findings.selection_from
    ));
    for failed in &findings.failed {
        progress.note(&format!("failed (an .error.json, no report): {failed}"));
    }
    for outside in &findings.outside_selection {
        progress.note(&format!("outside the selection, merged too: {outside}"));
    }
    for s in stores {
        let qemu = merged_qemu(s);
        write_summary_in(cli, &binaries, s, &signals, &progress, true, qemu)?;
        progress.note(&format!(
            "summary: {}",
            s.root().join("summary.md").display()
        ));
    }
    Ok(())
}

/// The QEMU version and accelerator of a merged directory's reports, when they all agree.
fn merged_qemu(store: &Store) -> Option<(String, String)> {
    let mut seen = std::collections::BTreeSet::new();
    for c in comparisons::all() {
        for s in &c.scenarios {
            for k in store.finished_runs(c.name, &s.name) {
                let path = store.result_path(&RunId::new(c.name, &s.name, k));
                let report: Report = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
                let h = report.guestperf_rs.as_ref()?.header.as_ref()?;
                seen.insert((h.qemu_version.clone(), h.accel.clone()));
            }
        }
    }
    (seen.len() == 1).then(|| seen.into_iter().next().unwrap())
}

/// The part `--shard` or `--shard-from` (reading `env`) names, if any.
pub fn chosen_shard(
    cli: &Cli,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<Shard>, Error> {
    Ok(match (cli.shard, cli.shard_from) {
        (Some(shard), _) => Some(shard),
        (None, Some(source)) => Some(source.shard(cli.shard_count, env)?),
        (None, None) => None,
    })
}

/// Asks QEMU about every scenario at once, under the accelerator the VMs will use.
fn probe_scenarios(cli: &Cli, scenarios: &[Resolved]) -> Result<ProbeReport, Error> {
    let requirements: Vec<_> = scenarios
        .iter()
        .map(|r| crate::options::qemu_requirements(&r.migrate))
        .collect();
    let accel = ProbeAccel {
        accel: cli.launch.accel,
        dirty_ring_size: cli.launch.dirty_ring_size,
    };
    Ok(probe::probe(
        Path::new(&cli.launch.binary),
        accel,
        &requirements,
        Duration::from_secs(60),
    )?)
}

/// What a batch works with once it has started.
struct Batch<'a> {
    cli: &'a Cli,
    binaries: Binaries,
    store: Store,
    signals: &'a SignalWatch,
    probe: ProbeReport,
    scenarios: Vec<Resolved<'a>>,
}

impl Batch<'_> {
    fn scenario(&self, id: &RunId) -> &Resolved<'_> {
        self.scenarios
            .iter()
            .find(|r| r.comparison.name == id.comparison && r.scenario.name == id.scenario)
            .expect("planned runs come from the selection")
    }

    /// `--dry-run`: prints what would run.
    fn dry_run(
        &self,
        output: &Path,
        skipped: &[(String, Skip)],
        counts: Counts,
        runs: &[RunId],
    ) -> Result<(), Error> {
        let planned: Vec<_> = runs
            .iter()
            .map(|id| {
                let stages = self.binaries.pipeline(self.cli, self.scenario(id));
                (id.clone(), stages, self.store.result_path(id))
            })
            .collect();
        let text = dry_run_text(&self.probe, output, skipped, counts, &planned);
        use std::io::Write;
        std::io::stdout()
            .lock()
            .write_all(text.as_bytes())
            .map_err(|source| Error::Io {
                what: "cannot write to stdout".into(),
                source,
            })
    }

    /// Runs `runs` in order until they are done or a signal arrives.
    fn run_all(&self, runs: &[RunId], progress: &Arc<Progress>) -> Result<Tally, Error> {
        let _ticker = progress.ticker();
        let mut tally = Tally::default();
        for id in runs {
            if let Some(sig) = self.signals.pending() {
                tally.interrupted = Some(sig);
                break;
            }
            if !tally.wants(id) {
                continue;
            }
            self.run_step(id, &id.label(), later_runs(runs, id), &mut tally, progress)?;
            if tally.interrupted.is_some() {
                break;
            }
        }
        Ok(tally)
    }

    /// Runs `id` once, shown as `label`, and counts it in `tally`; `later` is how many runs of
    /// the same scenario come after it (not tried if gp-migrate refuses the scenario).
    fn run_step(
        &self,
        id: &RunId,
        label: &str,
        later: usize,
        tally: &mut Tally,
        progress: &Arc<Progress>,
    ) -> Result<(), Error> {
        let scenario = self.scenario(id);
        progress.start_run(label);
        let stages = self.binaries.pipeline(self.cli, scenario);
        if self.cli.launch.verbose || self.cli.launch.debug {
            progress.note(&pipeline::shell_pipeline(&stages));
        }
        tally.attempted += 1;
        let outcome = run_one(&stages, &self.store, self.signals, progress, id)?;
        if let RunOutcome::Unsupported(reason) = &outcome {
            let skip = Skip {
                reason: reason.clone(),
                decided_by: Stage::Migrate.binary(),
            };
            file_skip(&self.store, scenario, &skip, &self.probe)?;
            // The scenario's later runs will not be tried.
            progress.forget_runs(later);
        }
        progress.finish_run(label, &tally.record(id, &outcome));
        Ok(())
    }
}

/// Writes each skip's `SCENARIO.skipped.json`, and removes an old one where the scenario runs now
/// (another QEMU, another host).
fn file_skips(
    store: &Store,
    scenarios: &[Resolved],
    decisions: &[Option<Skip>],
    probe: &ProbeReport,
) -> Result<(), Error> {
    for (r, decision) in scenarios.iter().zip(decisions) {
        match decision {
            Some(skip) => file_skip(store, r, skip, probe)?,
            None => {
                let path = store.skipped_path(r.comparison.name, &r.scenario.name);
                if path.exists() {
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
    }
    Ok(())
}

fn file_skip(store: &Store, r: &Resolved, skip: &Skip, probe: &ProbeReport) -> Result<(), Error> {
    let record = Skipped {
        comparison: r.comparison.name.to_string(),
        scenario: r.scenario.name.clone(),
        reason: skip.reason.clone(),
        decided_by: skip.decided_by.to_string(),
        qemu_version: Some(probe.qemu_version.clone()),
        time_s: gp_records::now_s(),
    };
    let path = store.skipped_path(r.comparison.name, &r.scenario.name);
    store
        .write_json(&path, &record)
        .map_err(|source| Error::Io {
            what: format!("cannot write {}", path.display()),
            source,
        })
}

/// `1 run`, `2 runs`.
fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// How a finished pipeline is filed.
#[derive(Debug, Clone, PartialEq)]
pub enum Filing {
    /// Keep the report: the migration completed, failed or was cancelled (all results of the
    /// scenario).
    Report,
    /// gp-migrate refused the scenario for this QEMU, in its words.
    Unsupported(String),
    /// The pipeline failed otherwise: an `.error.json`.
    Failed,
}

/// Files a finished pipeline by its stages' exits and whether gp-collect wrote a report.
pub fn classify(exit: &PipelineExit, has_report: bool) -> Filing {
    let first = exit.first_failure();
    // A migration that failed or was cancelled is a result of the scenario, like a completed one.
    let migrate = |f: &pipeline::StageExit, codes: &[i32]| {
        f.name == Stage::Migrate.binary() && codes.contains(&f.code)
    };
    match first {
        None if has_report => Filing::Report,
        Some(f) if has_report && migrate(f, &[MIGRATE_FAILED, MIGRATE_CANCELLED]) => Filing::Report,
        Some(f) if migrate(f, &[MIGRATE_UNSUPPORTED]) => Filing::Unsupported(f.message()),
        _ => Filing::Failed,
    }
}

/// Runs one scenario's pipeline once and files the outcome.
fn run_one(
    stages: &[StageCommand],
    store: &Store,
    signals: &SignalWatch,
    progress: &Arc<Progress>,
    id: &RunId,
) -> Result<RunOutcome, Error> {
    let io = |what: String| move |source| Error::Io { what, source };
    let temp = store.temp_file(&id.comparison).map_err(io(format!(
        "cannot create a file in {}",
        store.comparison_dir(&id.comparison).display()
    )))?;
    let file = temp
        .reopen()
        .map_err(io("cannot reopen a temporary file".into()))?;
    let started = Instant::now();
    let sink: Arc<dyn pipeline::StderrSink> = progress.clone();
    let exit = pipeline::run(stages, Output::File(file), signals, sink, Grace::default())
        .map_err(Error::Pipeline)?;
    let took = started.elapsed();
    if let Some(sig) = exit.interrupted {
        return Ok(RunOutcome::Interrupted(sig));
    }
    let report_bytes = std::fs::read(temp.path()).unwrap_or_default();
    let report: Option<Report> = serde_json::from_slice(&report_bytes).ok();
    match (classify(&exit, report.is_some()), report) {
        (Filing::Report, Some(report)) => {
            let path = store.result_path(id);
            store
                .persist(temp, &path)
                .map_err(io(format!("cannot write {}", path.display())))?;
            let _ = std::fs::remove_file(store.error_path(id));
            let outcome = summary::RunMetrics::from_report(id.run, String::new(), &report).outcome;
            Ok(RunOutcome::Result { outcome, took })
        }
        (Filing::Unsupported(reason), _) => Ok(RunOutcome::Unsupported(reason)),
        _ => {
            let err = run_error(id, &exit, &report_bytes);
            let path = store.error_path(id);
            store
                .write_json(&path, &err)
                .map_err(io(format!("cannot write {}", path.display())))?;
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
fn write_summary(batch: &Batch, progress: &Arc<Progress>, charts: bool) -> Result<(), Error> {
    let Batch {
        cli,
        binaries,
        store,
        signals,
        probe,
        ..
    } = batch;
    let qemu = Some((probe.qemu_version.clone(), probe.accel.clone()));
    write_summary_in(cli, binaries, store, signals, progress, charts, qemu)
}

/// Writes `store`'s summary.json, summary.md and (when `charts`) one chart per comparison;
/// `qemu` is the QEMU version and accelerator to name, when there is one.
#[allow(clippy::too_many_arguments)]
fn write_summary_in(
    cli: &Cli,
    binaries: &Binaries,
    store: &Store,
    signals: &SignalWatch,
    progress: &Arc<Progress>,
    charts: bool,
    qemu: Option<(String, String)>,
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
        qemu_version: qemu.as_ref().map(|q| q.0.clone()),
        probe_accel: qemu.map(|q| q.1),
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

    fn cli(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("gp-batch").chain(args.iter().copied())).unwrap()
    }

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
    fn every_stage_option_but_the_name_is_here() {
        let ours = Cli::command();
        for stage in [Launch::command(), Migrate::command()] {
            for arg in stage.get_arguments() {
                let Some(long) = arg.get_long() else { continue };
                if long == "help" || long == "version" {
                    continue;
                }
                let mine = ours
                    .get_arguments()
                    .find(|a| a.get_long() == Some(long))
                    .unwrap_or_else(|| panic!("--{long} of {} is missing", stage.get_name()));
                assert_eq!(mine.is_hide_set(), long == "name", "--{long}");
            }
        }
        let e = Cli::try_parse_from(["gp-batch", "--output", "d", "--name", "x"]).unwrap_err();
        assert!(
            e.to_string().contains("names each run after its scenario"),
            "{e}"
        );
        assert_eq!(e.exit_code(), 2);
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
        // 3 scenarios twice: 3 to do, 1 done, 1 scenario (2 runs) skipped.
        assert_eq!(
            Counts::new(3, 2, runs.len(), 1),
            Counts {
                to_do: 3,
                already: 1,
                skipped_scenarios: 1
            }
        );
    }

    fn words(v: Vec<std::ffi::OsString>) -> String {
        v.into_iter()
            .map(|s| s.into_string().unwrap())
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn scenario_and_batch_options_reach_the_stages() {
        let cli = cli(&[
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
            "--sample-interval",
            "1s",
        ]);
        let selected = select(
            &Filter::new(&[
                "transport/*-unix",
                "memory-size/*-2gb",
                "post-copy-iters/*-1",
            ])
            .unwrap(),
        );
        let resolved = resolve(&cli, &selected).unwrap();
        let keys: Vec<String> = resolved.iter().map(Resolved::key).collect();
        assert_eq!(
            keys,
            [
                "post-copy-iters/post-copy-iters-1",
                "transport/transport-unix",
                "memory-size/mem-2gb"
            ]
        );
        let binaries = Binaries {
            launch: "/b/gp-launch".into(),
            sample: "/b/gp-sample".into(),
            migrate: "/b/gp-migrate".into(),
            collect: "/b/gp-collect".into(),
            plot: "/b/gp-plot".into(),
        };
        let args = |r: &Resolved| -> Vec<String> {
            binaries
                .pipeline(&cli, r)
                .into_iter()
                .map(|s| words(s.args))
                .collect()
        };
        assert_eq!(
            args(&resolved[0]),
            [
                "--mem 256M --transport tcp --accel tcg",
                "--interval 1s",
                "--name post-copy-iters-1 --sleep 1 --max-time 20 --post-copy --post-copy-iters 1",
                ""
            ]
        );
        assert_eq!(args(&resolved[1])[0], "--mem 256M --accel tcg");
        assert_eq!(
            args(&resolved[2])[0],
            "--mem 2G --transport tcp --accel tcg"
        );
        assert_eq!(
            args(&resolved[2])[2],
            "--name mem-2gb --sleep 1 --max-time 20"
        );
    }

    #[test]
    fn the_probe_decides_first_then_the_host() {
        let cli = cli(&["--output", "d"]);
        let selected = select(&Filter::new(&["post-copy-iters/*-[01]", "compr-mt/*-1"]).unwrap());
        let resolved = resolve(&cli, &selected).unwrap();
        let refusals = [None, Some("no compress".to_string()), None];
        let host = |r: &Resolved| (r.scenario.name != "post-copy-iters-0").then(|| "busy".into());
        let decided = skips(&resolved, &refusals, host);
        assert_eq!(
            decided,
            [
                None,
                Some(Skip {
                    reason: "no compress".into(),
                    decided_by: "probe"
                }),
                Some(Skip {
                    reason: "busy".into(),
                    decided_by: "host"
                }),
            ]
        );
    }

    #[test]
    fn rdma_without_a_device_is_refused_by_the_host_check() {
        let cli = cli(&["--output", "d"]);
        let selected = select(&Filter::new(&["transport"]).unwrap());
        let resolved = resolve(&cli, &selected).unwrap();
        let (tcp, rdma) = (&resolved[1], &resolved[2]);
        assert_eq!(host_refusal(&cli, tcp), None);
        let has_devices = std::fs::read_dir("/sys/class/infiniband")
            .map(|d| d.count() > 0)
            .unwrap_or(false);
        match host_refusal(&cli, rdma) {
            Some(reason) => {
                assert!(!has_devices);
                assert!(reason.starts_with("no RDMA device"), "{reason}");
            }
            None => assert!(has_devices),
        }
    }

    #[test]
    fn a_huge_guest_is_refused_by_the_memory_check() {
        let cli = cli(&["--output", "d"]);
        let selected = select(&Filter::new(&["memory-size/mem-1gb"]).unwrap());
        let mut resolved = resolve(&cli, &selected).unwrap();
        // The batch's own size is not checked (gp-launch says what it cannot do) ...
        assert_eq!(host_refusal(&cli, &resolved[0]), None);
        // ... a scenario's other size is.
        resolved[0].launch.mem = 100_000 << 30;
        let reason = host_refusal(&cli, &resolved[0]).unwrap();
        assert!(
            reason.starts_with("needs 2 × 100000.0 GiB of guest RAM but the host has "),
            "{reason}"
        );
        resolved[0].launch.dst_host = Some("elsewhere".into());
        let reason = host_refusal(&cli, &resolved[0]).unwrap();
        assert!(reason.starts_with("needs 1 × "), "{reason}");
        assert_eq!(human_bytes(3 << 29), "1.5 GiB");
        assert_eq!(human_bytes(256 << 20), "256 MiB");
    }

    #[test]
    fn the_dry_run_lists_skips_and_pipelines() {
        let probe = ProbeReport {
            qemu_version: "10.0.2".into(),
            accel: "tcg".into(),
            capabilities: vec![],
            refusals: vec![],
        };
        let id = RunId::new("post-copy-iters", "post-copy-iters-1", 2);
        let stages = vec![
            StageCommand::new("gp-launch", "/nowhere/gp-launch").arg("--mem"),
            StageCommand::new("gp-collect", "/nowhere/gp-collect"),
        ];
        let text = dry_run_text(
            &probe,
            Path::new("out dir"),
            &[(
                "compr-mt/compr-mt-threads-1".into(),
                Skip {
                    reason: "no compress".into(),
                    decided_by: "probe",
                },
            )],
            Counts {
                to_do: 1,
                already: 3,
                skipped_scenarios: 1,
            },
            &[(id, stages, PathBuf::from("out dir/x.r2.json"))],
        );
        assert_eq!(
            text,
            "# QEMU 10.0.2 (tcg), output out dir\n\
             # skip compr-mt/compr-mt-threads-1: no compress\n\
             # 1 run to do, 3 already done\n\
             # post-copy-iters/post-copy-iters-1#2\n\
             /nowhere/gp-launch --mem \\\n  | /nowhere/gp-collect > 'out dir/x.r2.json'\n"
        );
    }

    fn exit(failures: &[(&str, i32, &str)]) -> PipelineExit {
        let stages: Vec<pipeline::StageExit> =
            ["gp-launch", "gp-sample", "gp-migrate", "gp-collect"]
                .iter()
                .enumerate()
                .map(|(index, name)| {
                    let (code, tail) = failures
                        .iter()
                        .find(|(n, _, _)| n == name)
                        .map_or((0, ""), |(_, c, t)| (*c, *t));
                    pipeline::StageExit {
                        name: name.to_string(),
                        index,
                        code,
                        signal: None,
                        elapsed: Duration::from_secs(1),
                        stderr_tail: tail.to_string(),
                    }
                })
                .collect();
        PipelineExit {
            exit_order: (0..stages.len()).collect(),
            stages,
            interrupted: None,
            elapsed: Duration::from_secs(1),
        }
    }

    #[test]
    fn finished_pipelines_are_filed_by_their_exits() {
        assert_eq!(classify(&exit(&[]), true), Filing::Report);
        assert_eq!(classify(&exit(&[]), false), Filing::Failed);
        for code in [MIGRATE_FAILED, MIGRATE_CANCELLED] {
            assert_eq!(
                classify(&exit(&[("gp-migrate", code, "")]), true),
                Filing::Report
            );
            assert_eq!(
                classify(&exit(&[("gp-migrate", code, "")]), false),
                Filing::Failed
            );
        }
        let refused = exit(&[("gp-migrate", 6, "gp-migrate: no compress capability\n")]);
        assert_eq!(
            classify(&refused, true),
            Filing::Unsupported("no compress capability".into())
        );
        assert_eq!(
            classify(&exit(&[("gp-launch", 2, "")]), true),
            Filing::Failed
        );
        assert_eq!(
            classify(&exit(&[("gp-collect", 6, "")]), true),
            Filing::Failed
        );
    }

    #[test]
    fn the_tally_counts_and_ends_the_batch() {
        let id = |s: &str, k| RunId::new("c", s, k);
        let runs = [id("a", 1), id("b", 1), id("a", 2), id("b", 2), id("a", 3)];
        assert_eq!(later_runs(&runs, &runs[0]), 2);
        assert_eq!(later_runs(&runs, &runs[3]), 0);

        let mut tally = Tally::default();
        let summary = Path::new("d/summary.md");
        assert!(tally.result(summary).is_ok());
        let said = tally.record(
            &runs[0],
            &RunOutcome::Result {
                outcome: "completed".into(),
                took: Duration::from_millis(11_240),
            },
        );
        assert_eq!(said, "completed (11.2 s)");
        let said = tally.record(&runs[1], &RunOutcome::Unsupported("no compress".into()));
        assert_eq!(said, "skipped: no compress");
        assert!(!tally.wants(&runs[3]) && tally.wants(&runs[2]));
        let err = RunError {
            comparison: "c".into(),
            scenario: "a".into(),
            run: 2,
            stage: Some("gp-launch".into()),
            status: Some(2),
            message: "--mem too small".into(),
            time_s: 0.0,
            report: None,
        };
        tally.attempted = 3;
        let said = tally.record(&runs[2], &RunOutcome::Failed(err));
        assert_eq!(said, "FAILED in gp-launch: --mem too small");
        let e = tally.result(summary).unwrap_err();
        assert_eq!(
            e.to_string(),
            "1 of 3 runs failed; see the .error.json files and d/summary.md"
        );
        assert_eq!(e.exit_code(), 1);
        let said = tally.record(&runs[4], &RunOutcome::Interrupted(2));
        assert_eq!(said, "interrupted by SIGINT");
        let e = tally.result(summary).unwrap_err();
        assert_eq!(e.exit_code(), 130);
    }

    fn key(comparison: &str, scenario: &str, run: u32) -> merge::Key {
        (comparison.into(), scenario.into(), run)
    }

    #[test]
    fn hardware_kinds_sharing_a_slug_get_numbered_directories() {
        let kinds = [
            (key("c", "a", 1), "Xeon (kvm)".to_string()),
            (key("c", "a", 2), "xeon-kvm".to_string()),
            (key("c", "b", 1), "Xeon (kvm)".to_string()),
            (key("c", "b", 2), "EPYC".to_string()),
        ]
        .into_iter()
        .collect();
        let dirs = hardware_dirs(&kinds, Path::new("/out"));
        let got: Vec<(&str, &Path)> = dirs
            .iter()
            .map(|(k, p)| (k.as_str(), p.as_path()))
            .collect();
        assert_eq!(
            got,
            [
                ("EPYC", Path::new("/out/epyc")),
                ("Xeon (kvm)", Path::new("/out/xeon-kvm")),
                ("xeon-kvm", Path::new("/out/xeon-kvm-2")),
            ]
        );
    }

    #[test]
    fn reports_go_to_their_hardware_and_failures_without_a_report_to_every_root() {
        let file = |p: &str| vec![PathBuf::from(p)];
        let gathered = merge::Gathered {
            results: [
                (key("cmp", "a", 1), file("/in1/cmp/a.json")),
                (key("cmp", "b", 1), file("/in1/cmp/b.json")),
            ]
            .into_iter()
            .collect(),
            errors: [
                (key("cmp", "a", 1), file("/in2/cmp/a.error.json")),
                (key("cmp", "a", 2), file("/in2/cmp/a.r2.error.json")),
            ]
            .into_iter()
            .collect(),
            skipped: [(key("cmp", "c", 0), file("/in2/cmp/c.skipped.json"))]
                .into_iter()
                .collect(),
            ..Default::default()
        };
        let kinds = [(key("cmp", "a", 1), "hw1".to_string())]
            .into_iter()
            .collect();
        let strata = [
            ("hw1".to_string(), PathBuf::from("/out/hw1")),
            ("hw2".to_string(), PathBuf::from("/out/hw2")),
        ]
        .into_iter()
        .collect::<BTreeMap<_, _>>();
        let roots: Vec<PathBuf> = strata.values().cloned().collect();
        let copies = merge_copies(&gathered, &kinds, &strata, &roots, Path::new("/out"));
        let got: Vec<(&str, &str)> = copies
            .iter()
            .map(|(s, d)| (s.to_str().unwrap(), d.to_str().unwrap()))
            .collect();
        assert_eq!(
            got,
            [
                ("/in1/cmp/a.json", "/out/hw1/cmp/a.json"),
                // No hardware known for it: the output directory itself.
                ("/in1/cmp/b.json", "/out/cmp/b.json"),
                ("/in2/cmp/a.r2.error.json", "/out/hw1/cmp/a.r2.error.json"),
                ("/in2/cmp/a.r2.error.json", "/out/hw2/cmp/a.r2.error.json"),
                ("/in2/cmp/c.skipped.json", "/out/hw1/cmp/c.skipped.json"),
                ("/in2/cmp/c.skipped.json", "/out/hw2/cmp/c.skipped.json"),
            ]
        );
    }
}
