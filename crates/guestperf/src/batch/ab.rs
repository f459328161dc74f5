//! `--ab-a OPTIONS --ab-b OPTIONS`: an A/B in one command.
//!
//! Every selected run is run twice, once per arm, each arm with its own extra gp-launch and
//! gp-migrate options over the batch's and the scenario's (two QEMU builds: `--ab-a '--binary
//! /opt/old/qemu-system-x86_64' --ab-b '--binary ./build/qemu-system-x86_64'`; or two settings).
//! The arms are **interleaved**, the order alternating from one run to the next (run 1: A then B,
//! run 2: B then A, ...), so a drift of the machine falls on both arms alike. Each arm is a
//! complete gp-batch directory of its own (`DIR/a`, `DIR/b`: resumable, summarised, mergeable
//! with `--merge`); at the end gp-compare compares them into `DIR/compare`. With `--shard` both
//! arms of a run are in the same part, so an A/B spread over many hosts keeps its pairs on one
//! host (gp-compare compares within hosts).
//!
//! A scenario one arm cannot run (the probe of that arm's QEMU, or the host) is skipped on both,
//! so every run has its pair. `DIR/ab.json` records the arms: resuming with other arm options is
//! refused, since the runs already there would not be what the options say.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use clap::CommandFactory;
use serde::{Deserialize, Serialize};

use super::comparisons::Comparison;
use super::probe::{self, ProbeAccel, ProbeReport};
use super::progress::Progress;
use super::shard::{self, Shard};
use super::store::{RunId, Store};
use super::{
    file_skips, host_refusal, plan, plural, resolve, skips, write_summary_in, Batch, Binaries, Cli,
    Error, Resolved, Tally,
};
use crate::options::{Launch, Migrate};
use crate::pipeline::SignalWatch;

/// One arm: its name (`a`, `b`: also its directory) and its extra options, split by stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Arm {
    pub name: String,
    /// The options as given.
    pub options: String,
    pub launch: Vec<String>,
    pub migrate: Vec<String>,
}

/// Splits an arm's options into gp-launch's and gp-migrate's, by the stages' own option lists
/// (an option that takes a value takes the next word unless written `--opt=value`).
pub fn split_options(name: &str, options: &str) -> Result<Arm, String> {
    let launch_cmd = Launch::command();
    let migrate_cmd = Migrate::command();
    let words: Vec<&str> = options.split_whitespace().collect();
    let mut arm = Arm {
        name: name.to_string(),
        options: options.to_string(),
        launch: Vec::new(),
        migrate: Vec::new(),
    };
    let flag = format!("--ab-{name}");
    let mut i = 0;
    while i < words.len() {
        let word = words[i];
        let Some(long) = word.strip_prefix("--") else {
            return Err(format!(
                "{flag} '{options}': {word:?} is not an option (give gp-launch or gp-migrate \
                 options, e.g. '--binary PATH' or '--bandwidth 64')"
            ));
        };
        let (long, inline) = match long.split_once('=') {
            Some((l, _)) => (l, true),
            None => (long, false),
        };
        if long == "name" {
            return Err(format!(
                "{flag}: --name is not an arm option (runs are named after their scenario)"
            ));
        }
        let found = |c: &clap::Command| {
            c.get_arguments()
                .find(|a| a.get_long() == Some(long))
                .map(|a| a.get_action().takes_values())
        };
        let (target, takes_value) = match (found(&launch_cmd), found(&migrate_cmd)) {
            (Some(v), _) => (&mut arm.launch, v),
            (None, Some(v)) => (&mut arm.migrate, v),
            (None, None) => {
                return Err(format!(
                    "{flag} '{options}': --{long} is neither a gp-launch nor a gp-migrate option"
                ))
            }
        };
        target.push(word.to_string());
        i += 1;
        if takes_value && !inline {
            let Some(value) = words.get(i) else {
                return Err(format!("{flag} '{options}': --{long} needs a value"));
            };
            target.push(value.to_string());
            i += 1;
        }
    }
    Ok(arm)
}

/// The selection with the arm's options after each scenario's (so the arm's win).
pub fn arm_selection(selected: &[Comparison], arm: &Arm) -> Vec<Comparison> {
    selected
        .iter()
        .map(|c| {
            let mut c = c.clone();
            for s in &mut c.scenarios {
                s.launch.extend(arm.launch.iter().cloned());
                s.migrate.extend(arm.migrate.iter().cloned());
            }
            c
        })
        .collect()
}

/// The order of one run's arms: A then B for odd runs, B then A for even ones.
pub fn arm_order(run: u32) -> [usize; 2] {
    if run % 2 == 1 {
        [0, 1]
    } else {
        [1, 0]
    }
}

/// `DIR/ab.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AbRecord {
    pub arms: Vec<Arm>,
}

/// Runs the A/B into `output`.
pub fn run(
    cli: &Cli,
    selected: &[Comparison],
    output: &Path,
    shard: Option<Shard>,
) -> Result<(), Error> {
    let bad = Error::AbOptions;
    let arms = [
        split_options("a", cli.ab_a.as_deref().unwrap_or_default()).map_err(bad)?,
        split_options("b", cli.ab_b.as_deref().unwrap_or_default()).map_err(bad)?,
    ];
    let selections: Vec<Vec<Comparison>> =
        arms.iter().map(|a| arm_selection(selected, a)).collect();
    let resolved: Vec<Vec<Resolved>> = selections
        .iter()
        .map(|sel| resolve(cli, sel))
        .collect::<Result<_, _>>()?;
    let binaries = Binaries::locate()?;
    let compare = crate::stages::locate_in(
        "gp-compare",
        std::env::current_exe()
            .ok()
            .as_deref()
            .and_then(Path::parent),
        std::env::var_os("PATH").as_deref(),
    )?;

    let root = Store::new(output);
    let _root_lock = root.open()?;
    claim(&root, &arms, cli.dry_run)?;
    let signals = SignalWatch::start().map_err(Error::Signals)?;
    let stores: Vec<Store> = arms
        .iter()
        .map(|a| Store::new(output.join(&a.name)))
        .collect();
    let _locks = stores
        .iter()
        .map(Store::open)
        .collect::<Result<Vec<_>, _>>()?;

    // Each arm's QEMU is asked about its scenarios; a scenario either arm cannot run is skipped
    // on both.
    let mut batches = Vec::new();
    let mut skipped: Vec<(String, String)> = Vec::new();
    for ((arm, scenarios), store) in arms.iter().zip(resolved).zip(&stores) {
        let probe = probe_arm(cli, store, &scenarios)?;
        for (key, reason) in probe.1 {
            skipped.push((key, format!("arm {}: {reason}", arm.name)));
        }
        batches.push(Batch {
            cli,
            binaries: binaries.clone(),
            store: store.clone(),
            signals: &signals,
            probe: probe.0,
            scenarios,
        });
    }
    let is_skipped = |c: &str, s: &str| skipped.iter().any(|(k, _)| *k == format!("{c}/{s}"));

    let all = plan(selected, cli.repeat, &|_, _| false, &|_| false);
    let mine = match shard {
        Some(shard) => {
            let part = shard::select_runs(&all, &batches[0].scenarios, shard);
            if !cli.dry_run {
                for b in &batches {
                    let manifest =
                        shard::Manifest::new(cli, shard, &all, &part, &batches[0].scenarios);
                    let path = b.store.root().join(manifest.file_name());
                    b.store
                        .write_json(&path, &manifest)
                        .map_err(|source| Error::Io {
                            what: format!("cannot write {}", path.display()),
                            source,
                        })?;
                }
            }
            part
        }
        None => all,
    };
    let steps: Vec<(usize, RunId)> = mine
        .iter()
        .filter(|id| !is_skipped(&id.comparison, &id.scenario))
        .flat_map(|id| arm_order(id.run).map(|arm| (arm, id.clone())))
        .filter(|(arm, id)| !batches[*arm].store.is_done(id))
        .collect();
    let arms_line = |b: &[Batch]| {
        format!(
            "a = '{}' (QEMU {}), b = '{}' (QEMU {})",
            arms[0].options, b[0].probe.qemu_version, arms[1].options, b[1].probe.qemu_version
        )
    };

    if cli.dry_run {
        let text = dry_run_text(output, &arms_line(&batches), &arms, &skipped, &steps);
        use std::io::Write;
        return std::io::stdout()
            .lock()
            .write_all(text.as_bytes())
            .map_err(|source| Error::Io {
                what: "cannot write to stdout".into(),
                source,
            });
    }

    let progress = Progress::stderr(steps.len());
    progress.note(&format!(
        "A/B: {} to do in {}; {}, interleaved",
        plural(steps.len(), "run"),
        output.display(),
        arms_line(&batches)
    ));
    if let Some(shard) = shard {
        progress.note(&format!("part {shard} of the selection (--shard)"));
    }
    for (key, why) in &skipped {
        progress.note(&format!("skip {key} on both arms: {why}"));
    }
    let mut tally = Tally::default();
    {
        let _ticker = progress.ticker();
        for (arm, id) in &steps {
            if let Some(sig) = signals.pending() {
                tally.interrupted = Some(sig);
                break;
            }
            if !tally.wants(id) {
                continue;
            }
            let later = steps
                .iter()
                .filter(|(a, r)| a == arm && r.scenario == id.scenario && r.run > id.run)
                .count();
            let label = format!("{} {}", arms[*arm].name, id.label());
            batches[*arm].run_step(id, &label, later, &mut tally, &progress)?;
            if tally.interrupted.is_some() {
                break;
            }
        }
    }
    let charts = tally.interrupted.is_none();
    for b in &batches {
        let qemu = Some((b.probe.qemu_version.clone(), b.probe.accel.clone()));
        write_summary_in(
            cli,
            &b.binaries,
            &b.store,
            &signals,
            &progress,
            charts,
            qemu,
        )?;
    }
    if let Some(sig) = tally.interrupted {
        return Err(Error::Interrupted(sig));
    }
    let compared = compare_arms(&compare, &stores, output)?;
    progress.note(&format!(
        "compared: {}",
        compared.join("compare.md").display()
    ));
    tally.result(&output.join("a/summary.md"))
}

/// Records the arms in `DIR/ab.json` (not on a dry run), refusing a directory that holds an A/B
/// of other arms: the runs there would not be what the options say.
fn claim(root: &Store, arms: &[Arm; 2], dry_run: bool) -> Result<(), Error> {
    let record = AbRecord {
        arms: arms.to_vec(),
    };
    let path = root.root().join("ab.json");
    if let Ok(text) = std::fs::read_to_string(&path) {
        if let Ok(old) = serde_json::from_str::<AbRecord>(&text) {
            if old.arms != record.arms {
                return Err(Error::Ab(format!(
                    "{} holds an A/B of other arms (a: '{}', b: '{}'); resume with the same \
                     --ab-a and --ab-b, or use another --output",
                    root.root().display(),
                    old.arms[0].options,
                    old.arms[1].options
                )));
            }
        }
    }
    if dry_run {
        return Ok(());
    }
    root.write_json(&path, &record).map_err(|source| Error::Io {
        what: format!("cannot write {}", path.display()),
        source,
    })
}

/// Probes one arm's QEMU for its scenarios and files a skip for each it (or the host) cannot
/// run: the probe, and the skipped scenarios' keys with the reason.
fn probe_arm(
    cli: &Cli,
    store: &Store,
    scenarios: &[Resolved],
) -> Result<(ProbeReport, Vec<(String, String)>), Error> {
    let first = &scenarios[0].launch;
    let requirements: Vec<_> = scenarios
        .iter()
        .map(|r| crate::options::qemu_requirements(&r.migrate))
        .collect();
    let probe = probe::probe(
        Path::new(&first.binary),
        ProbeAccel {
            accel: first.accel,
            dirty_ring_size: first.dirty_ring_size,
        },
        &requirements,
        Duration::from_secs(60),
    )?;
    let decisions = skips(scenarios, &probe.refusals, |r| host_refusal(cli, r));
    if !cli.dry_run {
        file_skips(store, scenarios, &decisions, &probe)?;
    }
    let skipped = scenarios
        .iter()
        .zip(&decisions)
        .filter_map(|(r, d)| d.as_ref().map(|d| (r.key(), d.reason.clone())))
        .collect();
    Ok((probe, skipped))
}

/// What `--dry-run` prints: the arms, the skips, and each run to do in order.
fn dry_run_text(
    output: &Path,
    arms_line: &str,
    arms: &[Arm; 2],
    skipped: &[(String, String)],
    steps: &[(usize, RunId)],
) -> String {
    let mut text = format!("# A/B into {}: {arms_line}\n", output.display());
    for (key, why) in skipped {
        text.push_str(&format!("# skip {key}: {why}\n"));
    }
    text.push_str(&format!("# {} to do\n", plural(steps.len(), "run")));
    for (arm, id) in steps {
        text.push_str(&format!("{} {}\n", arms[*arm].name, id.label()));
    }
    text
}

/// Runs gp-compare on the two arms into `DIR/compare`, which it returns.
fn compare_arms(compare: &Path, stores: &[Store], output: &Path) -> Result<PathBuf, Error> {
    let compared = output.join("compare");
    let status = Command::new(compare)
        .arg(stores[0].root())
        .arg(stores[1].root())
        .arg("--output")
        .arg(&compared)
        .args(["--label-a", "a", "--label-b", "b"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .map_err(|source| Error::Io {
            what: format!("cannot run {}", compare.display()),
            source,
        })?;
    if !status.success() {
        return Err(Error::Ab(format!(
            "gp-compare failed ({status}); the runs are in {} and {}",
            stores[0].root().display(),
            stores[1].root().display()
        )));
    }
    Ok(compared)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::glob::Filter;
    use crate::batch::select;

    #[test]
    fn arm_options_go_to_their_stage() {
        let arm = split_options(
            "b",
            "--binary /opt/q --bandwidth 64 --parameter max-postcopy-bandwidth=67108864 \
             --mem=512M --post-copy",
        )
        .unwrap();
        assert_eq!(arm.launch, ["--binary", "/opt/q", "--mem=512M"]);
        assert_eq!(
            arm.migrate,
            [
                "--bandwidth",
                "64",
                "--parameter",
                "max-postcopy-bandwidth=67108864",
                "--post-copy"
            ]
        );
        assert_eq!(split_options("a", "").unwrap().launch, Vec::<String>::new());
        for (bad, says) in [
            (
                "--frobnicate 1",
                "neither a gp-launch nor a gp-migrate option",
            ),
            ("64", "is not an option"),
            ("--bandwidth", "needs a value"),
            ("--name x", "not an arm option"),
        ] {
            let e = split_options("a", bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
            assert!(e.starts_with("--ab-a"), "{e}");
        }
    }

    #[test]
    fn an_arm_s_options_win_over_the_scenario_s() {
        let selected = select(&Filter::new(&["post-copy-iters/*-0"]).unwrap());
        let arm = split_options("b", "--post-copy-iters 3 --bandwidth 16").unwrap();
        let sel = arm_selection(&selected, &arm);
        let m = sel[0].scenarios[0]
            .migrate_over(&Migrate::defaults())
            .unwrap();
        assert_eq!((m.post_copy, m.post_copy_iters, m.bandwidth), (true, 3, 16));
        assert_eq!(m.name, "post-copy-iters-0");
    }

    #[test]
    fn a_directory_keeps_the_arms_it_was_started_with() {
        let dir = tempfile::tempdir().unwrap();
        let root = Store::new(dir.path());
        let arms = [
            split_options("a", "--bandwidth 16").unwrap(),
            split_options("b", "--bandwidth 32").unwrap(),
        ];
        claim(&root, &arms, true).unwrap();
        assert!(
            !dir.path().join("ab.json").exists(),
            "a dry run writes nothing"
        );
        claim(&root, &arms, false).unwrap();
        claim(&root, &arms, false).expect("resuming with the same arms");
        let other = [
            arms[0].clone(),
            split_options("b", "--bandwidth 64").unwrap(),
        ];
        let e = claim(&root, &other, true).unwrap_err().to_string();
        assert!(
            e.contains("holds an A/B of other arms (a: '--bandwidth 16', b: '--bandwidth 32')"),
            "{e}"
        );
    }

    #[test]
    fn a_dry_run_lists_skips_then_each_run_by_arm() {
        let arms = [
            split_options("a", "").unwrap(),
            split_options("b", "--bandwidth 32").unwrap(),
        ];
        let id = |run| RunId::new("bandwidth", "bandwidth-32", run);
        let steps = [(0, id(1)), (1, id(1)), (1, id(2)), (0, id(2))];
        let skipped = [("xbzrle/xbzrle".to_string(), "arm b: no xbzrle".to_string())];
        let text = dry_run_text(Path::new("/r"), "ARMS", &arms, &skipped, &steps);
        assert_eq!(
            text,
            "# A/B into /r: ARMS\n# skip xbzrle/xbzrle: arm b: no xbzrle\n# 4 runs to do\n\
             a bandwidth/bandwidth-32\nb bandwidth/bandwidth-32\nb bandwidth/bandwidth-32#2\n\
             a bandwidth/bandwidth-32#2\n"
        );
    }

    #[test]
    fn arms_alternate_a_b_b_a() {
        let order: Vec<usize> = (1..=4).flat_map(arm_order).collect();
        assert_eq!(order, [0, 1, 1, 0, 0, 1, 1, 0]);
    }
}
