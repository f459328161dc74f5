//! [`compare`]: every figure of every scenario both arms ran, within hosts, with a verdict.
//!
//! Per scenario and figure: the completed runs of each arm, grouped by host; hosts that only
//! one arm ran on are left out (and said so), never pooled. Then the exact stratified rank-sum
//! permutation test (p), the change of medians with its seeded bootstrap interval and exact
//! standard error, the Benjamini-Hochberg adjustment over every test that could reach the
//! level (q), the minimum detectable effect and the runs needed. docs/gp-compare.md explains
//! each choice.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::figures::{Better, Figure, Scale, FIGURES};
use crate::model::{Arm, Run, RunOutcome};
use crate::stats::bootstrap::{change_of_medians, rng_for};
use crate::stats::median::MedianDist;
use crate::stats::ranksum::{rank_sum_test, Cache, Stratum};
use crate::stats::{benjamini_hochberg, fisher_exact, z};

/// How to compare. [`Options::default`] holds the documented defaults.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Options {
    /// Significance level: the false discovery rate over all tests (Benjamini-Hochberg).
    pub alpha: f64,
    /// Smallest relative change (fraction, 0.05 = 5 %) reported as better or worse.
    pub min_effect: f64,
    /// Smallest change in points for figures compared as differences (and completion rates).
    pub min_effect_points: f64,
    /// Confidence level of the intervals.
    pub confidence: f64,
    /// Bootstrap replicates per interval.
    pub resamples: usize,
    pub seed: u64,
    /// Power at which the minimum detectable effect and the runs needed are computed.
    pub power: f64,
    /// Changes to give the runs per arm needed to detect: fractions (0.05 = 5 %) for ratio
    /// figures, read as points (0.05 = 5 points) for difference figures.
    pub detect: Vec<f64>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            alpha: 0.05,
            min_effect: 0.05,
            min_effect_points: 5.0,
            confidence: 0.95,
            resamples: 10_000,
            seed: 1,
            power: 0.8,
            detect: vec![0.05, 0.10, 0.20],
        }
    }
}

/// The verdict on one figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Better,
    Worse,
    /// No change this data can tell from noise (or one smaller than the minimum effect).
    NoChange,
    /// Not enough data on one side (see `reason`).
    NotCompared,
}

impl Verdict {
    pub fn text(self) -> &'static str {
        match self {
            Verdict::Better => "better",
            Verdict::Worse => "worse",
            Verdict::NoChange => "no detectable change",
            Verdict::NotCompared => "not compared",
        }
    }
}

/// Counts of runs by outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OutcomeCounts {
    pub completed: u64,
    pub failed: u64,
    pub cancelled: u64,
    pub interrupted: u64,
    pub unknown: u64,
    /// Pipeline failures (gp-batch `.error.json`), no report.
    pub error: u64,
}

impl OutcomeCounts {
    fn of<'a>(runs: impl IntoIterator<Item = &'a Run>) -> Self {
        let mut c = OutcomeCounts::default();
        for r in runs {
            *match r.outcome {
                RunOutcome::Completed => &mut c.completed,
                RunOutcome::Failed => &mut c.failed,
                RunOutcome::Cancelled => &mut c.cancelled,
                RunOutcome::Interrupted => &mut c.interrupted,
                RunOutcome::Unknown => &mut c.unknown,
                RunOutcome::Error => &mut c.error,
            } += 1;
        }
        c
    }

    pub fn total(&self) -> u64 {
        self.completed + self.not_completed()
    }

    pub fn not_completed(&self) -> u64 {
        self.failed + self.cancelled + self.interrupted + self.unknown + self.error
    }

    /// `8 completed, 1 failed, 1 error`.
    pub fn text(&self) -> String {
        let parts: Vec<String> = [
            (self.completed, "completed"),
            (self.failed, "failed"),
            (self.cancelled, "cancelled"),
            (self.interrupted, "interrupted"),
            (self.unknown, "unknown outcome"),
            (self.error, "pipeline error"),
        ]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect();
        if parts.is_empty() {
            "no runs".into()
        } else {
            parts.join(", ")
        }
    }
}

/// What one arm holds.
#[derive(Debug, Clone, Serialize)]
pub struct ArmSummary {
    pub label: String,
    pub sources: Vec<String>,
    pub runs: OutcomeCounts,
    pub hosts: Vec<String>,
    /// QEMU versions and accelerators the reports name.
    pub qemu: Vec<String>,
}

/// One arm's runs of one figure (completed runs on the compared hosts).
#[derive(Debug, Clone, Serialize)]
pub struct ArmFigure {
    pub n: usize,
    pub median: Option<f64>,
    /// Coefficient of variation (sd / mean), percent: the run-to-run noise.
    pub cv_pct: Option<f64>,
    /// Percentile interval of this arm's median (exact bootstrap distribution; one host only).
    pub median_ci: Option<[f64; 2]>,
    pub values: Vec<f64>,
}

/// The change on one host, when there are several.
#[derive(Debug, Clone, Serialize)]
pub struct HostChange {
    pub host: String,
    pub n_a: usize,
    pub n_b: usize,
    pub median_a: f64,
    pub median_b: f64,
    /// In `change_unit`.
    pub change: f64,
}

/// Runs per arm needed to detect a change.
#[derive(Debug, Clone, Serialize)]
pub struct RunsNeeded {
    /// The change, in `change_unit`.
    pub change: f64,
    /// Runs per arm; `null` when the noise is unknown.
    pub runs_per_arm: Option<u64>,
}

/// One figure of one scenario, compared.
#[derive(Debug, Clone, Serialize)]
pub struct FigureComparison {
    pub id: String,
    pub label: String,
    pub unit: String,
    pub better: Better,
    pub scale: Scale,
    /// Unit of `change`, `ci`, `mde`, `runs_needed[].change`: `percent` (relative change of
    /// medians) for ratio figures, the figure's unit for difference figures (`points` for a
    /// percentage).
    pub change_unit: String,
    pub a: ArmFigure,
    pub b: ArmFigure,
    pub verdict: Verdict,
    /// Why not compared, or a caveat on the verdict.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub change: Option<f64>,
    /// Confidence interval of the change.
    pub ci: Option<[f64; 2]>,
    /// Permutation p-value (exact stratified rank-sum test, two-sided).
    pub p: Option<f64>,
    /// The smallest p-value these run counts allow at all.
    pub p_min: Option<f64>,
    /// Benjamini-Hochberg adjusted p-value; `null` outside the family (p_min not below alpha).
    pub q: Option<f64>,
    /// `exact`, or `normal approximation` for very many runs.
    pub test: Option<String>,
    /// Minimum detectable effect: the change this data would detect with the chosen power.
    pub mde: Option<f64>,
    /// The test was significant but the change is smaller than the minimum effect.
    pub significant_below_min_effect: bool,
    pub runs_needed: Vec<RunsNeeded>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub per_host: Vec<HostChange>,
    /// The rank test and the change of medians point different ways (no verdict then).
    #[serde(skip)]
    ranks_disagree: bool,
}

/// Completion rates of one scenario: Fisher's exact test on completed / not completed.
#[derive(Debug, Clone, Serialize)]
pub struct CompletionComparison {
    pub a_pct: Option<f64>,
    pub b_pct: Option<f64>,
    /// B - A, percentage points.
    pub change_points: Option<f64>,
    pub p: f64,
    pub p_min: f64,
    pub q: Option<f64>,
    pub verdict: Verdict,
}

/// Runs on one host.
#[derive(Debug, Clone, Serialize)]
pub struct HostRuns {
    pub host: String,
    pub a_completed: usize,
    pub b_completed: usize,
    /// Whether both arms have completed runs here (only such hosts are compared).
    pub compared: bool,
}

/// Everything about one scenario both arms ran.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioComparison {
    pub name: String,
    pub runs_a: OutcomeCounts,
    pub runs_b: OutcomeCounts,
    pub hosts: Vec<HostRuns>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    pub completion: CompletionComparison,
    pub figures: Vec<FigureComparison>,
}

/// A scenario only one arm has.
#[derive(Debug, Clone, Serialize)]
pub struct OneSided {
    pub name: String,
    pub runs: OutcomeCounts,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

/// A figure judged worse.
#[derive(Debug, Clone, Serialize)]
pub struct Regression {
    pub scenario: String,
    pub figure: String,
    pub change: f64,
    pub change_unit: String,
}

/// The result: what `compare.json` holds.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub tool: String,
    pub version: String,
    pub options: Options,
    pub a: ArmSummary,
    pub b: ArmSummary,
    /// Both arms are the same runs: the comparison measures the noise floor.
    pub same_runs: bool,
    /// Tests in the Benjamini-Hochberg family.
    pub family_size: usize,
    /// Per-test level used for the minimum detectable effect and the runs needed:
    /// `alpha / family_size`, what one change alone must reach.
    pub mde_alpha: f64,
    pub scenarios: Vec<ScenarioComparison>,
    pub only_in_a: Vec<OneSided>,
    pub only_in_b: Vec<OneSided>,
    pub regressions: Vec<Regression>,
    pub improvements: usize,
}

impl Comparison {
    /// How many figures were compared (present with runs on both sides), over all scenarios.
    pub fn compared_figures(&self) -> usize {
        self.scenarios
            .iter()
            .flat_map(|s| &s.figures)
            .filter(|f| f.verdict != Verdict::NotCompared)
            .count()
    }
}

/// A figure's test inputs, kept until the family is known.
struct Pending {
    scenario: usize,
    figure: usize,
    p: f64,
    p_min: f64,
    se: f64,
    n_ref: f64,
}

/// Compares arm B against arm A.
pub fn compare(arm_a: &Arm, arm_b: &Arm, opts: &Options) -> Comparison {
    let paired = pair_scenarios(arm_a, arm_b);
    let (mut scenarios, pending) = compare_scenarios(&paired.both, arm_a, arm_b, opts);
    let (family_size, mde_alpha) = adjust(&mut scenarios, &pending, opts);
    let (regressions, improvements) = tally(&scenarios);
    Comparison {
        tool: "gp-compare".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        options: opts.clone(),
        a: arm_summary(arm_a),
        b: arm_summary(arm_b),
        same_runs: same_runs(arm_a, arm_b),
        family_size,
        mde_alpha,
        scenarios,
        only_in_a: paired.only_in_a,
        only_in_b: paired.only_in_b,
        regressions,
        improvements,
    }
}

/// The scenarios both arms ran (name, A's runs, B's runs, by name), and those only one did.
struct Paired<'a> {
    both: Vec<(&'a str, Vec<&'a Run>, Vec<&'a Run>)>,
    only_in_a: Vec<OneSided>,
    only_in_b: Vec<OneSided>,
}

/// Pairs the arms' scenarios by name. A scenario one arm skipped (gp-batch's skip file) is
/// listed on the side that ran it with the other's reason, or on the side that skipped it when
/// neither ran it.
fn pair_scenarios<'a>(arm_a: &'a Arm, arm_b: &'a Arm) -> Paired<'a> {
    fn by_scenario(arm: &Arm) -> BTreeMap<&str, Vec<&Run>> {
        let mut m: BTreeMap<&str, Vec<&Run>> = BTreeMap::new();
        for r in &arm.runs {
            m.entry(r.scenario.as_str()).or_default().push(r);
        }
        m
    }
    let (mut sa, mut sb) = (by_scenario(arm_a), by_scenario(arm_b));
    let skipped = |arm: &Arm, name: &str| {
        arm.skipped
            .iter()
            .find(|(s, _)| s == name)
            .map(|(_, r)| r.clone())
    };
    let names: BTreeSet<&str> = sa
        .keys()
        .chain(sb.keys())
        .copied()
        .chain(arm_a.skipped.iter().map(|s| s.0.as_str()))
        .chain(arm_b.skipped.iter().map(|s| s.0.as_str()))
        .collect();
    let mut paired = Paired {
        both: Vec::new(),
        only_in_a: Vec::new(),
        only_in_b: Vec::new(),
    };
    for name in names {
        let (ra, rb) = (
            sa.remove(name).unwrap_or_default(),
            sb.remove(name).unwrap_or_default(),
        );
        let one_sided = |runs: &[&Run], here: &Arm, there: &Arm| OneSided {
            name: name.to_string(),
            runs: OutcomeCounts::of(runs.iter().copied()),
            skipped: skipped(here, name).or_else(|| {
                skipped(there, name).map(|r| format!("skipped on {}: {r}", there.label))
            }),
        };
        match (ra.is_empty(), rb.is_empty()) {
            (false, false) => paired.both.push((name, ra, rb)),
            (true, true) => {
                // Skipped and run on neither side: listed where skipped.
                for (arm, list) in [
                    (arm_a, &mut paired.only_in_a),
                    (arm_b, &mut paired.only_in_b),
                ] {
                    if let Some(reason) = skipped(arm, name) {
                        list.push(OneSided {
                            name: name.to_string(),
                            runs: OutcomeCounts::default(),
                            skipped: Some(reason),
                        });
                    }
                }
            }
            (_, true) => paired.only_in_a.push(one_sided(&ra, arm_a, arm_b)),
            (true, false) => paired.only_in_b.push(one_sided(&rb, arm_b, arm_a)),
        }
    }
    paired
}

/// Compares each scenario both arms ran. Scenarios are independent: they are compared on every
/// CPU, in contiguous chunks so the order (and, seeds being per figure, every number) is the
/// same with any thread count.
fn compare_scenarios(
    both: &[(&str, Vec<&Run>, Vec<&Run>)],
    arm_a: &Arm,
    arm_b: &Arm,
    opts: &Options,
) -> (Vec<ScenarioComparison>, Vec<Pending>) {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(both.len().div_ceil(4).max(1));
    let chunk = both.len().div_ceil(threads).max(1);
    let results: Vec<(ScenarioComparison, Vec<Pending>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = both
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    let mut cache = Cache::default();
                    part.iter()
                        .map(|(name, ra, rb)| {
                            compare_scenario(name, ra, rb, arm_a, arm_b, opts, &mut cache)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a comparison thread panicked"))
            .collect()
    });
    let mut scenarios = Vec::new();
    let mut pending = Vec::new();
    for (index, (sc, mut pend)) in results.into_iter().enumerate() {
        for p in &mut pend {
            p.scenario = index;
        }
        pending.extend(pend);
        scenarios.push(sc);
    }
    (scenarios, pending)
}

/// Adjusts every test for the family (Benjamini-Hochberg over the figure and completion tests
/// that can reach alpha), then gives each figure its q, minimum detectable effect, runs needed
/// and verdict. Returns the family's size and the per-test level of the minimum detectable
/// effect.
fn adjust(
    scenarios: &mut [ScenarioComparison],
    pending: &[Pending],
    opts: &Options,
) -> (usize, f64) {
    let mut p_all = Vec::new();
    let mut in_family = Vec::new();
    for p in pending {
        p_all.push(p.p);
        in_family.push(p.p_min < opts.alpha);
    }
    for sc in scenarios.iter() {
        p_all.push(sc.completion.p);
        in_family.push(sc.completion.p_min < opts.alpha);
    }
    let q = benjamini_hochberg(&p_all, &in_family);
    let family_size = in_family.iter().filter(|x| **x).count();
    let mde_alpha = opts.alpha / family_size.max(1) as f64;
    let z_sum = z(1.0 - mde_alpha / 2.0) + z(opts.power);

    for (p, q) in pending.iter().zip(&q) {
        let fc = &mut scenarios[p.scenario].figures[p.figure];
        let fig = &FIGURES[p.figure];
        fc.q = *q;
        // Minimum detectable effect, on the analysis scale, then in change units.
        if p.p_min < mde_alpha {
            fc.mde = Some(to_change_unit(fig, z_sum * p.se));
        } else {
            fc.reason.get_or_insert_with(|| {
                format!(
                    "with {} and {} runs no p-value can be below {:.2e}: run more",
                    fc.a.n, fc.b.n, mde_alpha
                )
            });
        }
        fc.runs_needed = opts
            .detect
            .iter()
            .map(|&d| RunsNeeded {
                change: d * 100.0,
                runs_per_arm: runs_needed(fig, d, p.se, p.n_ref, z_sum, mde_alpha),
            })
            .collect();
        fc.verdict = verdict(fig, fc, opts);
        if fc.verdict == Verdict::NoChange && fc.significant_below_min_effect {
            fc.reason
                .get_or_insert_with(|| "significant, but smaller than the minimum effect".into());
        }
    }
    let offset = pending.len();
    for (i, sc) in scenarios.iter_mut().enumerate() {
        let c = &mut sc.completion;
        c.q = q[offset + i];
        let detected = c.q.is_some_and(|q| q < opts.alpha)
            && c.change_points
                .is_some_and(|d| d.abs() >= opts.min_effect_points);
        c.verdict = match (detected, c.change_points) {
            (true, Some(d)) if d < 0.0 => Verdict::Worse,
            (true, Some(_)) => Verdict::Better,
            _ => Verdict::NoChange,
        };
    }
    (family_size, mde_alpha)
}

/// The figures (and completion rates) judged worse, and how many were judged better.
fn tally(scenarios: &[ScenarioComparison]) -> (Vec<Regression>, usize) {
    let mut regressions = Vec::new();
    let mut improvements = 0;
    for sc in scenarios {
        let completion = (
            sc.completion.verdict,
            "completed_runs",
            sc.completion.change_points,
            "points",
        );
        let figures = sc
            .figures
            .iter()
            .map(|f| (f.verdict, f.id.as_str(), f.change, f.change_unit.as_str()));
        for (verdict, figure, change, unit) in figures.chain([completion]) {
            match verdict {
                Verdict::Worse => regressions.push(Regression {
                    scenario: sc.name.clone(),
                    figure: figure.to_string(),
                    change: change.unwrap_or(0.0),
                    change_unit: unit.to_string(),
                }),
                Verdict::Better => improvements += 1,
                _ => {}
            }
        }
    }
    (regressions, improvements)
}

fn arm_summary(arm: &Arm) -> ArmSummary {
    let hosts: BTreeSet<String> = arm.runs.iter().map(|r| r.host.clone()).collect();
    let qemu: BTreeSet<String> = arm.runs.iter().filter_map(|r| r.qemu.clone()).collect();
    ArmSummary {
        label: arm.label.clone(),
        sources: arm.sources.clone(),
        runs: OutcomeCounts::of(&arm.runs),
        hosts: hosts.into_iter().collect(),
        qemu: qemu.into_iter().collect(),
    }
}

/// Whether both arms hold the same runs (same scenarios, hosts, outcomes and figures).
fn same_runs(a: &Arm, b: &Arm) -> bool {
    let key = |arm: &Arm| {
        let mut v: Vec<String> = arm
            .runs
            .iter()
            .map(|r| format!("{}|{}|{:?}|{:?}", r.scenario, r.host, r.outcome, r.figures))
            .collect();
        v.sort();
        v
    };
    !a.runs.is_empty() && key(a) == key(b)
}

fn compare_scenario(
    name: &str,
    ra: &[&Run],
    rb: &[&Run],
    arm_a: &Arm,
    arm_b: &Arm,
    opts: &Options,
    cache: &mut Cache,
) -> (ScenarioComparison, Vec<Pending>) {
    let runs_a = OutcomeCounts::of(ra.iter().copied());
    let runs_b = OutcomeCounts::of(rb.iter().copied());
    let completed = |runs: &[&Run]| -> BTreeMap<String, Vec<Run>> {
        let mut m: BTreeMap<String, Vec<Run>> = BTreeMap::new();
        for r in runs.iter().filter(|r| r.outcome == RunOutcome::Completed) {
            m.entry(r.host.clone()).or_default().push((*r).clone());
        }
        m
    };
    let (ha, hb) = (completed(ra), completed(rb));
    let mut hosts = Vec::new();
    let mut notes = Vec::new();
    let all_hosts: BTreeSet<&String> = ha.keys().chain(hb.keys()).collect();
    for h in &all_hosts {
        let (na, nb) = (
            ha.get(*h).map_or(0, Vec::len),
            hb.get(*h).map_or(0, Vec::len),
        );
        let compared = na > 0 && nb > 0;
        if !compared {
            let (n, label, other) = if na > 0 {
                (na, &arm_a.label, &arm_b.label)
            } else {
                (nb, &arm_b.label, &arm_a.label)
            };
            notes.push(format!(
                "{n} completed run(s) of {label} on host {h} left out: {other} has none there \
                 (runs are compared within hosts, never pooled across them)"
            ));
        }
        hosts.push(HostRuns {
            host: (*h).clone(),
            a_completed: na,
            b_completed: nb,
            compared,
        });
    }
    let not_done = runs_a.not_completed() + runs_b.not_completed();
    if not_done > 0 {
        notes.push(format!(
            "runs that did not complete are counted, and their figures left out: {}: {}; {}: {}",
            arm_a.label,
            runs_a.text(),
            arm_b.label,
            runs_b.text()
        ));
    }
    let common: Vec<&String> = hosts
        .iter()
        .filter(|h| h.compared)
        .map(|h| &h.host)
        .collect();

    let mut figures = Vec::new();
    let mut pending = Vec::new();
    for (fi, fig) in FIGURES.iter().enumerate() {
        let values = |m: &BTreeMap<String, Vec<Run>>, h: &String| -> Vec<f64> {
            m.get(h)
                .map(|runs| {
                    runs.iter()
                        .filter_map(|r| r.figures[fi])
                        .filter(|v| v.is_finite())
                        .collect()
                })
                .unwrap_or_default()
        };
        let per_host: Vec<(String, Vec<f64>, Vec<f64>)> = common
            .iter()
            .map(|h| ((*h).clone(), values(&ha, h), values(&hb, h)))
            .collect();
        let (fc, pend) = compare_figure(name, fig, fi, &per_host, opts, cache);
        figures.push(fc);
        if let Some(p) = pend {
            pending.push(p);
        }
    }

    let (ca, cb) = (runs_a.completed, runs_b.completed);
    let (ta, tb) = (runs_a.total(), runs_b.total());
    let pct = |c: u64, t: u64| (t > 0).then(|| c as f64 / t as f64 * 100.0);
    let (p, p_min) = fisher_exact(ca, ta, cb, tb);
    let completion = CompletionComparison {
        a_pct: pct(ca, ta),
        b_pct: pct(cb, tb),
        change_points: pct(cb, tb).zip(pct(ca, ta)).map(|(b, a)| b - a),
        p,
        p_min,
        q: None,
        verdict: Verdict::NoChange,
    };
    (
        ScenarioComparison {
            name: name.into(),
            runs_a,
            runs_b,
            hosts,
            notes,
            completion,
            figures,
        },
        pending,
    )
}

fn arm_figure(values: &[f64], one_host: bool, confidence: f64) -> ArmFigure {
    let n = values.len();
    let median = gp_records::stats::median(&mut values.to_vec());
    let mean = values.iter().sum::<f64>() / n.max(1) as f64;
    let cv_pct = (n >= 2 && mean != 0.0).then(|| {
        let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        var.sqrt() / mean.abs() * 100.0
    });
    let median_ci = (one_host && n >= 1).then(|| {
        let d = MedianDist::of(values);
        let tail = (1.0 - confidence) / 2.0;
        [d.quantile(tail), d.quantile(1.0 - tail)]
    });
    ArmFigure {
        n,
        median,
        cv_pct,
        median_ci,
        values: values.to_vec(),
    }
}

/// Minimum runs per arm in one stratum for that host to count in a figure.
const MIN_RUNS: usize = 2;

fn compare_figure(
    scenario: &str,
    fig: &Figure,
    index: usize,
    per_host: &[(String, Vec<f64>, Vec<f64>)],
    opts: &Options,
    cache: &mut Cache,
) -> (FigureComparison, Option<Pending>) {
    let usable: Vec<&(String, Vec<f64>, Vec<f64>)> = per_host
        .iter()
        .filter(|(_, a, b)| a.len() >= MIN_RUNS && b.len() >= MIN_RUNS)
        .collect();
    let one_host = usable.len() == 1;
    let all_a: Vec<f64> = usable.iter().flat_map(|h| h.1.iter().copied()).collect();
    let all_b: Vec<f64> = usable.iter().flat_map(|h| h.2.iter().copied()).collect();
    let change_unit = match (fig.scale, fig.unit) {
        (Scale::Ratio, _) => "percent".to_string(),
        (Scale::Difference, "%") => "points".to_string(),
        (Scale::Difference, unit) => unit.to_string(),
    };
    let mut fc = FigureComparison {
        id: fig.id.into(),
        label: fig.label.into(),
        unit: fig.unit.into(),
        better: fig.better,
        scale: fig.scale,
        change_unit,
        a: arm_figure(&all_a, one_host, opts.confidence),
        b: arm_figure(&all_b, one_host, opts.confidence),
        verdict: Verdict::NotCompared,
        reason: None,
        change: None,
        ci: None,
        p: None,
        p_min: None,
        q: None,
        test: None,
        mde: None,
        significant_below_min_effect: false,
        runs_needed: Vec::new(),
        per_host: Vec::new(),
        ranks_disagree: false,
    };
    let have = |i: usize| {
        per_host
            .iter()
            .map(|h| if i == 0 { h.1.len() } else { h.2.len() })
            .sum::<usize>()
    };
    if usable.is_empty() {
        fc.reason = Some(if have(0) == 0 && have(1) == 0 {
            "no completed run has this figure".into()
        } else {
            format!(
                "needs at least {MIN_RUNS} completed runs with this figure per arm on a common host \
                 (has {} and {})",
                have(0),
                have(1)
            )
        });
        return (fc, None);
    }
    if fig.scale == Scale::Ratio && all_a.iter().chain(&all_b).any(|v| *v <= 0.0) {
        fc.reason = Some("a value is zero or negative: cannot be compared as a ratio".into());
        return (fc, None);
    }
    let strata: Vec<Stratum> = usable.iter().map(|(_, a, b)| Stratum { a, b }).collect();
    let test = rank_sum_test(&strata, cache);
    let g: fn(f64) -> f64 = match fig.scale {
        Scale::Ratio => f64::ln,
        Scale::Difference => |x| x,
    };
    let mut rng = rng_for(opts.seed, &format!("{scenario}\0{}", fig.id));
    let est = change_of_medians(&strata, g, opts.confidence, opts.resamples, &mut rng);
    fc.change = Some(to_change_unit(fig, est.point));
    fc.ci = Some([to_change_unit(fig, est.lo), to_change_unit(fig, est.hi)]);
    fc.p = Some(test.p);
    fc.p_min = Some(test.p_min);
    fc.test = Some(
        if test.exact {
            "exact"
        } else {
            "normal approximation"
        }
        .into(),
    );
    // The point estimate and the ranks must agree on the direction for a verdict.
    if test.direction * est.point < 0.0 {
        fc.ranks_disagree = true;
        fc.reason = Some("the medians and the ranks disagree on the direction".into());
    }
    if usable.len() > 1 {
        fc.per_host = usable
            .iter()
            .map(|(h, a, b)| {
                let ma = gp_records::stats::median(&mut a.clone()).unwrap_or(f64::NAN);
                let mb = gp_records::stats::median(&mut b.clone()).unwrap_or(f64::NAN);
                HostChange {
                    host: h.clone(),
                    n_a: a.len(),
                    n_b: b.len(),
                    median_a: ma,
                    median_b: mb,
                    change: to_change_unit(fig, g(mb) - g(ma)),
                }
            })
            .collect();
    }
    let n_ref = (all_a.len() + all_b.len()) as f64 / 2.0;
    (
        fc,
        Some(Pending {
            scenario: 0,
            figure: index,
            p: test.p,
            p_min: test.p_min,
            se: est.se,
            n_ref,
        }),
    )
}

/// A change on the analysis scale (ln ratio or difference) in the figure's change unit.
fn to_change_unit(fig: &Figure, x: f64) -> f64 {
    match fig.scale {
        Scale::Ratio => x.exp_m1() * 100.0,
        Scale::Difference => x,
    }
}

/// Runs per arm to detect `change` (fraction for ratio figures, points otherwise) with the
/// chosen power, both arms growing in proportion (the standard error shrinks as 1/sqrt(n)).
fn runs_needed(
    fig: &Figure,
    change: f64,
    se: f64,
    n_ref: f64,
    z_sum: f64,
    alpha: f64,
) -> Option<u64> {
    let delta = match fig.scale {
        Scale::Ratio => (1.0 + change).ln(),
        Scale::Difference => change * 100.0,
    };
    if !(delta > 0.0 && se.is_finite()) {
        return None;
    }
    let from_noise = (n_ref * (z_sum * se / delta).powi(2)).ceil() as u64;
    Some(from_noise.max(min_runs_for(alpha)))
}

/// Smallest n with which n + n runs can give a two-sided p-value below `alpha` at all
/// (complete separation: p = 2 / C(2n, n)).
pub fn min_runs_for(alpha: f64) -> u64 {
    let mut n = 1u64;
    loop {
        let ln_c = statrs::function::factorial::ln_binomial(2 * n, n);
        if (2.0f64).ln() - ln_c < alpha.ln() || n > 1000 {
            return n;
        }
        n += 1;
    }
}

fn verdict(fig: &Figure, fc: &mut FigureComparison, opts: &Options) -> Verdict {
    let (Some(change), Some([lo, hi])) = (fc.change, fc.ci) else {
        return Verdict::NotCompared;
    };
    let significant = fc.q.is_some_and(|q| q < opts.alpha);
    let min = match fig.scale {
        Scale::Ratio => opts.min_effect * 100.0,
        Scale::Difference => opts.min_effect_points,
    };
    let big_enough = change.abs() >= min;
    // The interval must lie on the side of the change (it excludes "no change").
    let interval_agrees = (change > 0.0 && lo > 0.0) || (change < 0.0 && hi < 0.0);
    let ranks_agree = !fc.ranks_disagree;
    fc.significant_below_min_effect = significant && !big_enough;
    if !(significant && big_enough && interval_agrees && ranks_agree) {
        return Verdict::NoChange;
    }
    let up = change > 0.0;
    match (fig.better, up) {
        (Better::Lower, true) | (Better::Higher, false) => Verdict::Worse,
        _ => Verdict::Better,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runs(scenario: &str, total_ms: &[f64]) -> Vec<Run> {
        total_ms
            .iter()
            .map(|&ms| Run::new(scenario, "dev", RunOutcome::Completed).with("total_time_ms", ms))
            .collect()
    }

    #[test]
    fn scenarios_pair_by_name_and_one_sided_ones_say_why() {
        let mut a = Arm::new("A", [runs("x", &[1.0, 2.0]), runs("y", &[1.0])].concat());
        a.skipped.push(("z".into(), "no xbzrle".into()));
        let mut b = Arm::new("B", [runs("z", &[1.0]), runs("x", &[3.0])].concat());
        b.skipped.push(("w".into(), "no rdma".into()));
        let p = pair_scenarios(&a, &b);

        let both: Vec<(&str, usize, usize)> = p
            .both
            .iter()
            .map(|(n, ra, rb)| (*n, ra.len(), rb.len()))
            .collect();
        assert_eq!(both, [("x", 2, 1)]);
        let said = |l: &[OneSided]| -> Vec<(String, u64, Option<String>)> {
            l.iter()
                .map(|o| (o.name.clone(), o.runs.total(), o.skipped.clone()))
                .collect()
        };
        assert_eq!(said(&p.only_in_a), [("y".into(), 1, None)]);
        assert_eq!(
            said(&p.only_in_b),
            [
                // Run by neither: listed where it was skipped.
                ("w".into(), 0, Some("no rdma".into())),
                // Run by B only: with A's reason for skipping it.
                ("z".into(), 1, Some("skipped on A: no xbzrle".into())),
            ]
        );
    }

    #[test]
    fn a_clear_slowdown_is_one_regression_named_by_scenario_and_figure() {
        let fast = [100.0, 101.0, 99.0, 100.5, 99.5, 100.2, 99.8, 100.1];
        let slow: Vec<f64> = fast.iter().map(|ms| ms * 1.5).collect();
        let a = Arm::new("A", runs("precopy", &fast));
        let b = Arm::new("B", runs("precopy", &slow));
        let c = compare(&a, &b, &Options::default());
        assert_eq!(c.regressions.len(), 1, "{:?}", c.regressions);
        let r = &c.regressions[0];
        assert_eq!(
            (r.scenario.as_str(), r.figure.as_str()),
            ("precopy", "total_time_ms")
        );
        assert_eq!(r.change_unit, "percent");
        assert!((r.change - 50.0).abs() < 1.0, "{}", r.change);
        assert_eq!(c.improvements, 0);
        // The other way round it is an improvement, and nothing regresses.
        let c = compare(&b, &a, &Options::default());
        assert!(c.regressions.is_empty(), "{:?}", c.regressions);
        assert_eq!(c.improvements, 1);
    }
}
