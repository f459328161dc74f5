//! `--shard K/N`: the K-th of N disjoint parts of a batch, for spreading one batch over many
//! machines with the job runner they already have (GNU parallel, Slurm, Kubernetes).
//!
//! The parts are of the selection's **runs** (every selected scenario times `--repeat`), not of
//! the scenarios, so the repeats of one scenario can land on different hosts (the merge keeps
//! them apart by host; see [`super::merge`]). Every machine computes the same partition from the
//! same command line: it depends only on the selection, `--repeat` and the options that set each
//! run's expected duration ([`estimate_ms`], integer arithmetic, no clock, no host probe), never
//! on what this host can run or has already run. Skips and resumption apply within a part.
//!
//! The partition is greedy in a fixed order (longest expected run first, ties in batch order),
//! each run to the part with the least expected time so far (ties to the lowest part). The last
//! run given to the busiest part went to the then least loaded one, so the parts' expected times
//! differ by at most one run's expected time.

use std::fmt;
use std::str::FromStr;

use clap::ValueEnum;

use serde::{Deserialize, Serialize};

use super::store::RunId;
use super::{Counts, Resolved};

/// One part of N (`index` from 1 to `count`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// A bad `--shard` or a job runner environment that does not give one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShardError {
    #[error("--shard {0}: expected K/N with 1 <= K <= N, e.g. --shard 2/4")]
    Syntax(String),
    #[error("--shard-from {runner}: {var} is not set; run under {what}, or give --shard K/N")]
    Unset {
        runner: &'static str,
        var: &'static str,
        what: &'static str,
    },
    #[error("--shard-from {runner}: {var}={value} is not a number")]
    NotANumber {
        runner: &'static str,
        var: &'static str,
        value: String,
    },
    #[error("--shard-from {runner} needs --shard-count N (the job runner does not say how many parts there are)")]
    NoCount { runner: &'static str },
    #[error(
        "--shard-from {runner}: index {index} (from {var}) is outside 1..={count}; \
         check --shard-count and the job's index range"
    )]
    OutOfRange {
        runner: &'static str,
        var: &'static str,
        index: i64,
        count: u32,
    },
    #[error(
        "--shard-from slurm: the array has a step of {0} (SLURM_ARRAY_TASK_STEP); use a \
         contiguous array such as --array=1-N"
    )]
    SlurmStep(String),
    #[error("--shard-count {given} disagrees with {var}={found}")]
    CountMismatch {
        given: u32,
        var: &'static str,
        found: u32,
    },
}

impl FromStr for Shard {
    type Err = ShardError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ShardError::Syntax(s.to_string());
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let index: u32 = k.trim().parse().map_err(|_| bad())?;
        let count: u32 = n.trim().parse().map_err(|_| bad())?;
        if count == 0 || index == 0 || index > count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

/// Where `--shard-from` reads the part's index (and, where the runner says it, the count).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ShardSource {
    /// A Slurm job array: SLURM_ARRAY_TASK_ID from SLURM_ARRAY_TASK_MIN, of
    /// SLURM_ARRAY_TASK_COUNT
    Slurm,
    /// A Kubernetes Indexed Job: JOB_COMPLETION_INDEX (from 0), of --shard-count
    Kubernetes,
    /// GNU parallel's job sequence number {#}: PARALLEL_SEQ (from 1), of --shard-count
    ParallelSeq,
    /// GNU parallel's job slot {%}: PARALLEL_JOBSLOT (from 1), of --shard-count (only when there
    /// are as many jobs as slots)
    ParallelSlot,
}

impl ShardSource {
    fn name(self) -> &'static str {
        match self {
            ShardSource::Slurm => "slurm",
            ShardSource::Kubernetes => "kubernetes",
            ShardSource::ParallelSeq => "parallel-seq",
            ShardSource::ParallelSlot => "parallel-slot",
        }
    }

    /// The shard the job runner's environment (`env`) names.
    pub fn shard(
        self,
        count: Option<u32>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Shard, ShardError> {
        let source = self.name();
        let number = |var: &'static str, runner: &'static str| -> Result<i64, ShardError> {
            let value = env(var).ok_or(ShardError::Unset {
                runner: source,
                var,
                what: runner,
            })?;
            value.trim().parse().map_err(|_| ShardError::NotANumber {
                runner: source,
                var,
                value,
            })
        };
        let (var, index, count) = match self {
            ShardSource::Slurm => {
                let runner = "a Slurm job array (sbatch --array)";
                if let Some(step) = env("SLURM_ARRAY_TASK_STEP") {
                    if step.trim() != "1" {
                        return Err(ShardError::SlurmStep(step));
                    }
                }
                let id = number("SLURM_ARRAY_TASK_ID", runner)?;
                let min = number("SLURM_ARRAY_TASK_MIN", runner)?;
                let found = number("SLURM_ARRAY_TASK_COUNT", runner)?;
                let found = u32::try_from(found).map_err(|_| ShardError::NotANumber {
                    runner: source,
                    var: "SLURM_ARRAY_TASK_COUNT",
                    value: found.to_string(),
                })?;
                if let Some(given) = count.filter(|&c| c != found) {
                    return Err(ShardError::CountMismatch {
                        given,
                        var: "SLURM_ARRAY_TASK_COUNT",
                        found,
                    });
                }
                ("SLURM_ARRAY_TASK_ID", id - min + 1, found)
            }
            ShardSource::Kubernetes => {
                let count = count.ok_or(ShardError::NoCount { runner: source })?;
                let i = number("JOB_COMPLETION_INDEX", "a Kubernetes Indexed Job")?;
                ("JOB_COMPLETION_INDEX", i + 1, count)
            }
            ShardSource::ParallelSeq => {
                let count = count.ok_or(ShardError::NoCount { runner: source })?;
                (
                    "PARALLEL_SEQ",
                    number("PARALLEL_SEQ", "GNU parallel")?,
                    count,
                )
            }
            ShardSource::ParallelSlot => {
                let count = count.ok_or(ShardError::NoCount { runner: source })?;
                let slot = number("PARALLEL_JOBSLOT", "GNU parallel")?;
                ("PARALLEL_JOBSLOT", slot, count)
            }
        };
        if count == 0 || index < 1 || index > i64::from(count) {
            return Err(ShardError::OutOfRange {
                runner: source,
                var,
                index,
                count,
            });
        }
        Ok(Shard {
            index: index as u32,
            count,
        })
    }
}

/// Boot, QMP setup and teardown of one run, ms (TCG on a small machine: about 2-3 s).
const FIXED_MS: u64 = 3_000;
/// The fastest a migration stream is assumed to go when the bandwidth is unlimited, MiB/s.
const FASTEST_MIB_S: u64 = 1_024;
/// Passes over RAM assumed for a pre-copy whose workload dirties slower than the bandwidth.
const CONVERGING_PASSES: u64 = 3;

/// A run's expected duration, ms, from its options alone: boot and teardown, the settle time
/// before and after, and the migration: passes over the guest's RAM at the bandwidth limit
/// (unlimited: [`FASTEST_MIB_S`]), capped by `--max-time`. The passes: post-copy after N passes,
/// N + 1; a pause after N, N + 1; a workload paced below the bandwidth converges in
/// [`CONVERGING_PASSES`]; otherwise (stress rewrites all RAM as fast as it can) pre-copy does
/// not converge and runs to `--max-iters`. A guess, but the same guess on every machine.
pub fn estimate_ms(r: &Resolved) -> u64 {
    let (l, m) = (&r.launch, &r.migrate);
    let mib_s = m.bandwidth.clamp(1, FASTEST_MIB_S);
    let pass_ms = (l.mem.saturating_mul(1000) / (mib_s << 20)).max(1);
    let passes = if m.post_copy {
        m.post_copy_iters + 1
    } else if m.pause {
        m.pause_iters + 1
    } else if l.stress_dirty_rate.is_some_and(|rate| rate < mib_s << 20) {
        CONVERGING_PASSES
    } else {
        m.max_iters.max(1)
    };
    let migrate_ms = passes
        .saturating_mul(pass_ms)
        .min(m.max_time.saturating_mul(1000));
    let settle_ms = (m.sleep * 1000.0).round() as u64 * 2;
    FIXED_MS + settle_ms + migrate_ms
}

/// The part (0-based) of each of `estimates` (expected ms of each run, in batch order) when cut
/// into `count` parts: longest first (ties in batch order), each to the least loaded part (ties
/// to the lowest).
pub fn partition(estimates: &[u64], count: u32) -> Vec<u32> {
    let count = count.max(1) as usize;
    let mut order: Vec<usize> = (0..estimates.len()).collect();
    order.sort_by(|&a, &b| estimates[b].cmp(&estimates[a]).then(a.cmp(&b)));
    let mut load = vec![0u64; count];
    let mut part = vec![0u32; estimates.len()];
    for i in order {
        let (least, _) = load
            .iter()
            .enumerate()
            .min_by(|(ia, la), (ib, lb)| la.cmp(lb).then(ia.cmp(ib)))
            .expect("at least one part");
        load[least] += estimates[i];
        part[i] = least as u32;
    }
    part
}

/// The runs of `runs` (the selection's, in batch order) that are `shard`'s, in batch order.
pub fn select_runs(runs: &[RunId], scenarios: &[Resolved], shard: Shard) -> Vec<RunId> {
    let estimates = run_estimates(runs, scenarios);
    let parts = partition(&estimates, shard.count);
    runs.iter()
        .zip(parts)
        .filter(|(_, p)| *p + 1 == shard.index)
        .map(|(r, _)| r.clone())
        .collect()
}

/// [`estimate_ms`] of each run's scenario.
pub fn run_estimates(runs: &[RunId], scenarios: &[Resolved]) -> Vec<u64> {
    runs.iter()
        .map(|id| {
            scenarios
                .iter()
                .find(|r| r.comparison.name == id.comparison && r.scenario.name == id.scenario)
                .map(estimate_ms)
                .unwrap_or(FIXED_MS)
        })
        .collect()
}

/// `DIR/shard-K-of-N.json`: which part a directory holds, so that a merge can tell a missing or
/// doubled part from a missing run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// `K/N`.
    pub shard: String,
    pub index: u32,
    pub count: u32,
    /// The selection it is a part of: `--filter` patterns and `--repeat`.
    pub filter: Vec<String>,
    pub repeat: u32,
    /// Runs in the whole selection.
    pub selection_runs: usize,
    /// This part's runs (`COMPARISON/SCENARIO` or `COMPARISON/SCENARIO#K`), in batch order.
    pub runs: Vec<String>,
    /// The part's expected time ([`estimate_ms`]), seconds.
    pub expected_s: f64,
    pub time_s: f64,
}

impl Manifest {
    pub fn new(
        cli: &super::Cli,
        shard: Shard,
        all: &[RunId],
        mine: &[RunId],
        scenarios: &[Resolved],
    ) -> Manifest {
        let expected_ms: u64 = run_estimates(mine, scenarios).iter().sum();
        Manifest {
            shard: shard.to_string(),
            index: shard.index,
            count: shard.count,
            filter: cli.filter.clone(),
            repeat: cli.repeat,
            selection_runs: all.len(),
            runs: mine.iter().map(RunId::label).collect(),
            expected_s: expected_ms as f64 / 1000.0,
            time_s: gp_records::now_s(),
        }
    }

    pub fn file_name(&self) -> String {
        format!("shard-{}-of-{}.json", self.index, self.count)
    }

    /// Whether `name` is a manifest's file name.
    pub fn is_file_name(name: &str) -> bool {
        name.starts_with("shard-") && name.contains("-of-") && name.ends_with(".json")
    }
}

/// `--list --shard K/N`: the part's runs with their expected times, and the part's total.
pub fn list_part(shard: Shard, all: &[RunId], mine: &[RunId], scenarios: &[Resolved]) -> String {
    let estimates = run_estimates(mine, scenarios);
    let total: u64 = estimates.iter().sum();
    let mut out = format!(
        "# part {shard}: {} of {} runs, expected {:.0} s\n",
        mine.len(),
        all.len(),
        total as f64 / 1000.0
    );
    for (id, ms) in mine.iter().zip(estimates) {
        out.push_str(&format!("{}  {:.1} s\n", id.label(), ms as f64 / 1000.0));
    }
    out
}

/// A part's runs still to do (not skipped, not done) and its counts.
pub fn plan_part(
    mine: &[RunId],
    skipped: &dyn Fn(&str, &str) -> bool,
    done: &dyn Fn(&RunId) -> bool,
) -> (Vec<RunId>, Counts) {
    let runs: Vec<RunId> = mine
        .iter()
        .filter(|id| !skipped(&id.comparison, &id.scenario) && !done(id))
        .cloned()
        .collect();
    let already = mine
        .iter()
        .filter(|id| !skipped(&id.comparison, &id.scenario) && done(id))
        .count();
    let mut skipped_scenarios: Vec<(&str, &str)> = mine
        .iter()
        .filter(|id| skipped(&id.comparison, &id.scenario))
        .map(|id| (id.comparison.as_str(), id.scenario.as_str()))
        .collect();
    skipped_scenarios.sort_unstable();
    skipped_scenarios.dedup();
    let counts = Counts {
        to_do: runs.len(),
        already,
        skipped_scenarios: skipped_scenarios.len(),
    };
    (runs, counts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::glob::Filter;
    use crate::batch::{plan, resolve, select, Cli};
    use clap::Parser;
    use std::collections::HashMap;

    #[test]
    fn shard_syntax() {
        assert_eq!("2/4".parse(), Ok(Shard { index: 2, count: 4 }));
        assert_eq!("1/1".parse(), Ok(Shard { index: 1, count: 1 }));
        for bad in ["0/4", "5/4", "1/0", "4", "a/b", "1/2/3", ""] {
            let e = bad.parse::<Shard>().unwrap_err();
            assert!(e.to_string().contains("expected K/N"), "{bad}: {e}");
        }
    }

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn job_runner_environments() {
        let slurm = [
            ("SLURM_ARRAY_TASK_ID", "3"),
            ("SLURM_ARRAY_TASK_MIN", "0"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
        ];
        let s = ShardSource::Slurm.shard(None, &env(&slurm)).unwrap();
        assert_eq!(s, Shard { index: 4, count: 4 });
        let e = ShardSource::Slurm.shard(Some(5), &env(&slurm)).unwrap_err();
        assert!(matches!(e, ShardError::CountMismatch { .. }), "{e}");
        let stepped = [("SLURM_ARRAY_TASK_STEP", "2"), slurm[0], slurm[1], slurm[2]];
        assert!(matches!(
            ShardSource::Slurm.shard(None, &env(&stepped)),
            Err(ShardError::SlurmStep(_))
        ));
        let e = ShardSource::Slurm.shard(None, &env(&[])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--shard-from slurm: SLURM_ARRAY_TASK_ID is not set; run under a Slurm job array \
             (sbatch --array), or give --shard K/N"
        );

        let k8s = [("JOB_COMPLETION_INDEX", "0")];
        assert_eq!(
            ShardSource::Kubernetes.shard(Some(3), &env(&k8s)),
            Ok(Shard { index: 1, count: 3 })
        );
        assert_eq!(
            ShardSource::Kubernetes.shard(None, &env(&k8s)),
            Err(ShardError::NoCount {
                runner: "kubernetes"
            })
        );
        let k8s_far = [("JOB_COMPLETION_INDEX", "3")];
        assert!(matches!(
            ShardSource::Kubernetes.shard(Some(3), &env(&k8s_far)),
            Err(ShardError::OutOfRange { index: 4, .. })
        ));
        let seq = [("PARALLEL_SEQ", "2"), ("PARALLEL_JOBSLOT", "1")];
        assert_eq!(
            ShardSource::ParallelSeq.shard(Some(2), &env(&seq)),
            Ok(Shard { index: 2, count: 2 })
        );
        assert_eq!(
            ShardSource::ParallelSlot.shard(Some(2), &env(&seq)),
            Ok(Shard { index: 1, count: 2 })
        );
        let junk = [("PARALLEL_SEQ", "two")];
        assert!(matches!(
            ShardSource::ParallelSeq.shard(Some(2), &env(&junk)),
            Err(ShardError::NotANumber { .. })
        ));
    }

    #[test]
    fn a_part_is_listed_with_its_expected_times() {
        let cli = cli(&["--list", "--mem", "256M", "--sleep", "1"]);
        let selected = select(&Filter::new(&["post-copy-iters/*-[01]"]).unwrap());
        let resolved = resolve(&cli, &selected).unwrap();
        let all = plan(&selected, 1, &|_, _| false, &|_| false);
        let shard = Shard { index: 1, count: 2 };
        let mine = select_runs(&all, &resolved, shard);
        assert_eq!(
            list_part(shard, &all, &mine, &resolved),
            "# part 1/2: 1 of 2 runs, expected 6 s\npost-copy-iters/post-copy-iters-1  5.5 s\n"
        );
    }

    #[test]
    fn a_part_s_counts_leave_out_skips_and_finished_runs() {
        let id = |s: &str, k| RunId::new("c", s, k);
        let mine = [id("a", 1), id("b", 1), id("a", 2), id("b", 2), id("x", 1)];
        let (runs, counts) = plan_part(&mine, &|_, s| s == "x", &|r| *r == id("a", 1));
        assert_eq!(runs, [id("b", 1), id("a", 2), id("b", 2)]);
        assert_eq!(
            counts,
            Counts {
                to_do: 3,
                already: 1,
                skipped_scenarios: 1
            }
        );
    }

    fn cli_of(args: &[&str]) -> Cli {
        cli(args)
    }

    fn cli(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("gp-batch").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn estimates_follow_size_bandwidth_and_time_limits() {
        let cli = cli(&["--output", "d", "--mem", "1G", "--sleep", "1"]);
        let selected = select(&Filter::new::<&str>(&[]).unwrap());
        let resolved = resolve(&cli, &selected).unwrap();
        let by_name: HashMap<&str, u64> = resolved
            .iter()
            .map(|r| (r.scenario.name.as_str(), estimate_ms(r)))
            .collect();
        // 1 GiB at 37 MiB/s: 27.7 s a pass; post-copy after 5 passes (the default).
        assert_eq!(by_name["post-copy-bw-300mbs"], 3_000 + 2_000 + 6 * 27_675);
        // At 12 MiB/s the 6 passes would take 512 s: --max-time (300 s) cancels first.
        assert_eq!(by_name["post-copy-bw-100mbs"], 3_000 + 2_000 + 300_000);
        assert!(by_name["post-copy-bw-100mbs"] > by_name["post-copy-bw-1gbs"]);
        assert!(by_name["mem-8gb"] > by_name["mem-1gb"]);
        assert!(by_name["post-copy-iters-20"] > by_name["post-copy-iters-0"]);
        // Unconverging pre-copy at 12 MiB/s is capped by --max-time (300 s).
        assert_eq!(by_name["auto-converge-bw-100mbs"], 3_000 + 2_000 + 300_000);
    }

    /// Every N from 1 to 16 on the full list, 3 repeats: disjoint, complete, stable, balanced.
    #[test]
    fn shards_are_disjoint_complete_stable_and_balanced() {
        let cli = cli(&["--output", "d", "--sleep", "2", "--repeat", "3"]);
        let selected = select(&Filter::new::<&str>(&[]).unwrap());
        let resolved = resolve(&cli, &selected).unwrap();
        let runs = plan(&selected, cli.repeat, &|_, _| false, &|_| false);
        let total = resolved.len() * 3;
        assert_eq!(runs.len(), total);
        let estimates = run_estimates(&runs, &resolved);
        let longest = *estimates.iter().max().unwrap();
        for n in 1..=16u32 {
            let mut seen: HashMap<RunId, u32> = HashMap::new();
            let mut loads = Vec::new();
            for k in 1..=n {
                let shard = Shard { index: k, count: n };
                let mine = select_runs(&runs, &resolved, shard);
                // Stable: the same inputs give the same part (a fresh computation, as on
                // another machine) ...
                assert_eq!(mine, select_runs(&runs, &resolved, shard), "{shard}");
                // ... in batch order.
                let positions: Vec<usize> = mine
                    .iter()
                    .map(|r| runs.iter().position(|x| x == r).unwrap())
                    .collect();
                assert!(positions.windows(2).all(|w| w[0] < w[1]), "{shard}");
                let mut load = 0;
                for r in mine {
                    load += estimates[runs.iter().position(|x| *x == r).unwrap()];
                    // Disjoint.
                    assert!(seen.insert(r.clone(), k).is_none(), "{} twice", r.label());
                }
                loads.push(load);
            }
            // Complete.
            assert_eq!(seen.len(), total, "N={n}");
            // Balanced within one run's expected time.
            let (min, max) = (*loads.iter().min().unwrap(), *loads.iter().max().unwrap());
            assert!(max - min <= longest, "N={n}: {loads:?}");
            // And not only in count: with N <= 16 every part has some work.
            assert!(min > 0, "N={n}: {loads:?}");
        }
    }

    /// Stable across machines: the partition is a function of the command line only. A fixed
    /// selection's partition is pinned here, so a change of the rule is a deliberate one (shards
    /// of one batch must all be cut by the same gp-batch version).
    #[test]
    fn the_partition_of_a_fixed_selection_is_pinned() {
        let cli = cli(&[
            "--output", "d", "--mem", "256M", "--sleep", "1", "--repeat", "2",
        ]);
        let selected = select(&Filter::new(&["post-copy-iters"]).unwrap());
        let resolved = resolve(&cli, &selected).unwrap();
        let runs = plan(&selected, cli.repeat, &|_, _| false, &|_| false);
        let labels = |k| -> Vec<String> {
            select_runs(&runs, &resolved, Shard { index: k, count: 2 })
                .iter()
                .map(RunId::label)
                .collect()
        };
        // Estimates: iters-N is 5 s + (N+1) x 250 ms; the two runs of each land in turn.
        assert_eq!(
            labels(1),
            [
                "post-copy-iters/post-copy-iters-0",
                "post-copy-iters/post-copy-iters-1",
                "post-copy-iters/post-copy-iters-5",
                "post-copy-iters/post-copy-iters-20",
            ]
        );
        assert_eq!(
            labels(2),
            [
                "post-copy-iters/post-copy-iters-0#2",
                "post-copy-iters/post-copy-iters-1#2",
                "post-copy-iters/post-copy-iters-5#2",
                "post-copy-iters/post-copy-iters-20#2",
            ]
        );
        // Unequal runs: 1 GiB at 1250 MiB/s (capped at 1024) is 1000 ms a pass.
        let cli = cli_of(&[
            "--output",
            "d",
            "--sleep",
            "0",
            "--filter",
            "post-copy-iters",
        ]);
        let resolved = resolve(&cli, &selected).unwrap();
        let runs = plan(&selected, 1, &|_, _| false, &|_| false);
        let estimates = run_estimates(&runs, &resolved);
        assert_eq!(estimates, [4_000, 5_000, 9_000, 24_000]);
        assert_eq!(partition(&estimates, 2), [1, 1, 1, 0]);
        assert_eq!(partition(&estimates, 3), [2, 2, 1, 0]);
    }
}
