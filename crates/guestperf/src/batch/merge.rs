//! `--merge DIR ...`: summarise only, over directories gathered from many hosts (the parts of a
//! `--shard`ed batch, or any gp-batch outputs), with no run.
//!
//! The files of every directory are read ([`gather`]) and checked against the selection they
//! should make up ([`check`]): the selection of the shard manifests (`shard-K-of-N.json`) when
//! there are any, else the command line's `--filter` and `--repeat`. A run found in two
//! directories is **duplicated** and the merge refuses (which copy is the figure?); a run found
//! nowhere (no report, no error file, its scenario not skipped) is **missing** and listed; a
//! part of N whose manifest is absent or doubled is named. The runs of one scenario must come
//! from one kind of hardware (the source host's CPU model and count, the QEMU version and
//! accelerator, and the destination host when remote): a median across different machines is
//! not a figure, so the merge refuses, or with `--by-hardware` writes one merged directory per
//! kind, each with its own summary. Then the files are copied into `--output` in gp-batch's
//! layout (an existing identical file is fine, a different one is a conflict), and the summary
//! and charts are written there, with `merge.json` saying what was found.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use gp_records::report::Report;
use serde::{Deserialize, Serialize};

use super::glob::Filter;
use super::shard::Manifest;
use super::store::RunId;
use super::{comparisons, plural};

/// `(comparison, scenario, run)`.
pub type Key = (String, String, u32);

/// What one file of a comparison directory is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Result,
    Error,
    Skipped,
}

/// `SCENARIO.json` → (Result, SCENARIO, 1), `SCENARIO.r3.error.json` → (Error, SCENARIO, 3),
/// `SCENARIO.skipped.json` → (Skipped, SCENARIO, 0); anything else (charts, temporary files)
/// → `None`.
pub fn parse_file_name(name: &str) -> Option<(Kind, &str, u32)> {
    if name.starts_with('.') {
        return None;
    }
    let stem = name.strip_suffix(".json")?;
    let parts: Vec<&str> = stem.split('.').collect();
    let run = |r: &str| -> Option<u32> { r.strip_prefix('r')?.parse().ok().filter(|&k| k >= 2) };
    match parts.as_slice() {
        [s] => Some((Kind::Result, s, 1)),
        [s, "skipped"] => Some((Kind::Skipped, s, 0)),
        [s, "error"] => Some((Kind::Error, s, 1)),
        [s, r, "error"] => Some((Kind::Error, s, run(r)?)),
        [s, r] => Some((Kind::Result, s, run(r)?)),
        _ => None,
    }
}

/// The files of the gathered directories.
#[derive(Debug, Default)]
pub struct Gathered {
    pub results: BTreeMap<Key, Vec<PathBuf>>,
    pub errors: BTreeMap<Key, Vec<PathBuf>>,
    /// Keyed with run 0.
    pub skipped: BTreeMap<Key, Vec<PathBuf>>,
    pub manifests: Vec<(PathBuf, Manifest)>,
    /// Files that are not a known comparison's and were left out.
    pub ignored: Vec<PathBuf>,
}

/// Reads what `dirs` hold.
pub fn gather(dirs: &[PathBuf]) -> Result<Gathered, std::io::Error> {
    let known = comparisons::all();
    let mut g = Gathered::default();
    for dir in dirs {
        let mut entries: Vec<_> = fs::read_dir(dir)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            if path.is_file() && Manifest::is_file_name(&name) {
                let text = fs::read_to_string(&path)?;
                match serde_json::from_str::<Manifest>(&text) {
                    Ok(m) => g.manifests.push((path, m)),
                    Err(_) => g.ignored.push(path),
                }
                continue;
            }
            if !path.is_dir() {
                continue;
            }
            let Some(comparison) = known.iter().find(|c| c.name == name) else {
                g.ignored.push(path);
                continue;
            };
            let mut files: Vec<_> = fs::read_dir(&path)?.collect::<Result<_, _>>()?;
            files.sort_by_key(|e| e.file_name());
            for file in files {
                let fname = file.file_name().to_string_lossy().into_owned();
                let Some((kind, scenario, run)) = parse_file_name(&fname) else {
                    continue;
                };
                if !comparison.scenarios.iter().any(|s| s.name == scenario) {
                    g.ignored.push(file.path());
                    continue;
                }
                let key = (comparison.name.to_string(), scenario.to_string(), run);
                let map = match kind {
                    Kind::Result => &mut g.results,
                    Kind::Error => &mut g.errors,
                    Kind::Skipped => &mut g.skipped,
                };
                map.entry(key).or_default().push(file.path());
            }
        }
    }
    Ok(g)
}

/// The parts of a sharded batch: which of 1..=N were found once, not at all, or more than once.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ShardCheck {
    pub count: u32,
    pub present: Vec<u32>,
    pub missing: Vec<u32>,
    pub duplicated: Vec<u32>,
    /// Manifests of another cut (another N, --filter or --repeat), by file.
    pub other_cut: Vec<String>,
}

/// A run found more than once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Duplicate {
    pub run: String,
    pub files: Vec<String>,
}

/// A scenario whose runs come from different hardware.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mixed {
    pub scenario: String,
    /// Hardware and how many runs came from it.
    pub hardware: Vec<(String, usize)>,
}

/// What the merge found: `merge.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Findings {
    pub sources: Vec<String>,
    /// Where the expected selection came from: `shard manifests` or `command line`.
    pub selection_from: String,
    pub filter: Vec<String>,
    pub repeat: u32,
    /// Runs in the selection.
    pub expected: usize,
    /// Reports merged.
    pub merged: usize,
    /// Runs of the selection with no report, no error file and no skip.
    pub missing: Vec<String>,
    pub duplicated: Vec<Duplicate>,
    /// Runs of the selection with only an error file.
    pub failed: Vec<String>,
    /// Reports of runs outside the selection (merged all the same).
    pub outside_selection: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shards: Option<ShardCheck>,
    pub mixed_hardware: Vec<Mixed>,
    /// With --by-hardware: each kind of hardware and its directory under --output.
    pub strata: Vec<(String, String)>,
    /// Unreadable reports, and files of no known comparison or scenario.
    pub unreadable: Vec<String>,
    pub ignored: Vec<String>,
}

impl Findings {
    /// Whether the merge must refuse (before writing anything).
    pub fn refusal(&self, by_hardware: bool) -> Option<String> {
        let mut why = Vec::new();
        if !self.duplicated.is_empty() {
            why.push(format!(
                "{} found more than once (a part gathered twice?): {}",
                plural(self.duplicated.len(), "run"),
                self.duplicated
                    .iter()
                    .map(|d| format!("{} in {}", d.run, d.files.join(" and ")))
                    .collect::<Vec<_>>()
                    .join("; ")
            ));
        }
        if !by_hardware && !self.mixed_hardware.is_empty() {
            why.push(format!(
                "the runs of {} come from different hardware (a median across machines is not a \
                 figure; --by-hardware merges each kind apart): {}",
                plural(self.mixed_hardware.len(), "scenario"),
                self.mixed_hardware
                    .iter()
                    .map(|m| {
                        let kinds: Vec<String> = m
                            .hardware
                            .iter()
                            .map(|(h, n)| format!("{n} on {h}"))
                            .collect();
                        format!("{} ({})", m.scenario, kinds.join(", "))
                    })
                    .collect::<Vec<_>>()
                    .join("; ")
            ));
        }
        (!why.is_empty()).then(|| why.join("\n"))
    }

    /// What is missing, when something is (the merge is written but incomplete).
    pub fn incomplete(&self) -> Option<String> {
        let mut what = Vec::new();
        if let Some(s) = &self.shards {
            if !s.missing.is_empty() {
                what.push(format!(
                    "part(s) {} of {} not found",
                    join(&s.missing),
                    s.count
                ));
            }
            if !s.duplicated.is_empty() {
                what.push(format!(
                    "part(s) {} of {} found more than once",
                    join(&s.duplicated),
                    s.count
                ));
            }
            if !s.other_cut.is_empty() {
                what.push(format!(
                    "manifests of another cut: {}",
                    s.other_cut.join(", ")
                ));
            }
        }
        if !self.missing.is_empty() {
            what.push(format!(
                "{} of {} missing: {}",
                plural(self.missing.len(), "run"),
                self.expected,
                self.missing.join(", ")
            ));
        }
        (!what.is_empty()).then(|| what.join("; "))
    }
}

fn join(v: &[u32]) -> String {
    v.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
}

/// The hardware a report's run had: the source host's CPU model and count, QEMU version and
/// accelerator, and the destination host when it was remote.
pub fn hardware_of(report: &Report) -> String {
    let Some(h) = report.guestperf_rs.as_ref().and_then(|x| x.header.as_ref()) else {
        return "unknown hardware".into();
    };
    let mut key = format!(
        "{} x{}, QEMU {} ({})",
        if h.host.cpu_model.is_empty() {
            "unknown CPU"
        } else {
            &h.host.cpu_model
        },
        h.host.cpus,
        h.qemu_version,
        h.accel
    );
    if !report.dst_host.is_empty() && report.dst_host != "localhost" {
        key.push_str(&format!(" -> {}", report.dst_host));
    }
    key
}

/// A directory name for a kind of hardware.
pub fn slug(key: &str) -> String {
    let mut out = String::new();
    for c in key.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let out = out.trim_matches('-');
    out.chars().take(80).collect()
}

/// The selection the gathered directories should make up, and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Expected {
    pub from: &'static str,
    pub filter: Vec<String>,
    pub repeat: u32,
    pub runs: Vec<RunId>,
}

/// The shard manifests' selection when there are manifests (the first one's), else the command
/// line's.
pub fn expected(
    gathered: &Gathered,
    filter: &[String],
    repeat: u32,
) -> Result<Expected, super::glob::GlobError> {
    let (from, filter, repeat) = match gathered.manifests.first() {
        Some((_, m)) => ("shard manifests", m.filter.clone(), m.repeat),
        None => ("command line", filter.to_vec(), repeat),
    };
    let selected = super::select(&Filter::new(&filter)?);
    let runs = super::plan(&selected, repeat, &|_, _| false, &|_| false);
    Ok(Expected {
        from,
        filter,
        repeat,
        runs,
    })
}

fn key_of(id: &RunId) -> Key {
    (id.comparison.clone(), id.scenario.clone(), id.run)
}

fn label(key: &Key) -> String {
    RunId::new(&key.0, &key.1, key.2).label()
}

/// Checks `gathered` against `expected`; `hardware` gives each result file's hardware (or an
/// error for an unreadable report).
pub fn check(
    gathered: &Gathered,
    expected: &Expected,
    hardware: &dyn Fn(&Path) -> Result<String, String>,
) -> (Findings, BTreeMap<Key, String>) {
    let mut f = Findings {
        selection_from: expected.from.to_string(),
        filter: expected.filter.clone(),
        repeat: expected.repeat,
        expected: expected.runs.len(),
        ..Default::default()
    };
    let expected_keys: BTreeSet<Key> = expected.runs.iter().map(key_of).collect();
    let skipped_scenario = |k: &Key| {
        gathered
            .skipped
            .contains_key(&(k.0.clone(), k.1.clone(), 0))
    };
    for id in &expected.runs {
        let k = key_of(id);
        if gathered.results.contains_key(&k) {
            continue;
        }
        if gathered.errors.contains_key(&k) {
            f.failed.push(id.label());
        } else if !skipped_scenario(&k) {
            f.missing.push(id.label());
        }
    }
    let mut kinds: BTreeMap<Key, String> = BTreeMap::new();
    let mut by_scenario: BTreeMap<(String, String), BTreeMap<String, usize>> = BTreeMap::new();
    for (k, files) in &gathered.results {
        if files.len() > 1 {
            f.duplicated.push(Duplicate {
                run: label(k),
                files: files.iter().map(|p| p.display().to_string()).collect(),
            });
        }
        if !expected_keys.contains(k) {
            f.outside_selection.push(label(k));
        }
        match hardware(&files[0]) {
            Ok(hw) => {
                *by_scenario
                    .entry((k.0.clone(), k.1.clone()))
                    .or_default()
                    .entry(hw.clone())
                    .or_default() += 1;
                kinds.insert(k.clone(), hw);
            }
            Err(e) => f.unreadable.push(format!("{}: {e}", files[0].display())),
        }
    }
    for ((c, s), hw) in by_scenario {
        if hw.len() > 1 {
            f.mixed_hardware.push(Mixed {
                scenario: format!("{c}/{s}"),
                hardware: hw.into_iter().collect(),
            });
        }
    }
    if let Some((_, first)) = gathered.manifests.first() {
        let mut check = ShardCheck {
            count: first.count,
            ..Default::default()
        };
        let mut seen: BTreeMap<u32, usize> = BTreeMap::new();
        for (path, m) in &gathered.manifests {
            if m.count != first.count || m.filter != first.filter || m.repeat != first.repeat {
                check.other_cut.push(path.display().to_string());
                continue;
            }
            *seen.entry(m.index).or_default() += 1;
        }
        for k in 1..=first.count {
            match seen.get(&k) {
                None => check.missing.push(k),
                Some(1) => check.present.push(k),
                Some(_) => {
                    check.present.push(k);
                    check.duplicated.push(k);
                }
            }
        }
        f.shards = Some(check);
    }
    f.ignored = gathered
        .ignored
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    (f, kinds)
}

/// The hardware of the report at `path`.
pub fn read_hardware(path: &Path) -> Result<String, String> {
    let bytes = fs::read(path).map_err(|e| e.to_string())?;
    let report: Report = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
    Ok(hardware_of(&report))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names() {
        assert_eq!(parse_file_name("a-1.json"), Some((Kind::Result, "a-1", 1)));
        assert_eq!(
            parse_file_name("a-1.r3.json"),
            Some((Kind::Result, "a-1", 3))
        );
        assert_eq!(parse_file_name("a.error.json"), Some((Kind::Error, "a", 1)));
        assert_eq!(
            parse_file_name("a.r12.error.json"),
            Some((Kind::Error, "a", 12))
        );
        assert_eq!(
            parse_file_name("a.skipped.json"),
            Some((Kind::Skipped, "a", 0))
        );
        for other in [
            "a.svg",
            ".gp-tmp-x.json",
            "a.r1.json",
            "a.rx.json",
            "a.b.c.json",
        ] {
            assert_eq!(parse_file_name(other), None, "{other}");
        }
    }

    #[test]
    fn slugs() {
        assert_eq!(
            slug("Intel(R) Xeon(R) x2, QEMU 10.0.2 (tcg)"),
            "intel-r-xeon-r-x2-qemu-10-0-2-tcg"
        );
    }

    fn manifest(index: u32, count: u32) -> Manifest {
        Manifest {
            shard: format!("{index}/{count}"),
            index,
            count,
            filter: vec!["post-copy-iters/*-[01]".into()],
            repeat: 2,
            selection_runs: 4,
            runs: vec![],
            expected_s: 1.0,
            time_s: 0.0,
        }
    }

    fn key(s: &str, k: u32) -> Key {
        ("post-copy-iters".into(), s.into(), k)
    }

    #[test]
    fn missing_duplicated_failed_mixed_and_parts_are_found() {
        let mut g = Gathered {
            manifests: vec![
                ("a/shard-1-of-3.json".into(), manifest(1, 3)),
                ("b/shard-1-of-3.json".into(), manifest(1, 3)),
            ],
            ..Default::default()
        };
        g.results.insert(
            key("post-copy-iters-0", 1),
            vec!["a/x".into(), "b/x".into()],
        );
        g.results
            .insert(key("post-copy-iters-1", 1), vec!["a/y".into()]);
        g.results
            .insert(key("post-copy-iters-1", 2), vec!["c/y2".into()]);
        g.results
            .insert(key("post-copy-iters-5", 1), vec!["c/z".into()]);
        g.errors
            .insert(key("post-copy-iters-0", 2), vec!["a/e".into()]);
        let exp = expected(&g, &[], 1).unwrap();
        assert_eq!(exp.from, "shard manifests");
        assert_eq!(exp.runs.len(), 4);
        let hw = |p: &Path| -> Result<String, String> {
            Ok(if p.starts_with("c") { "B" } else { "A" }.to_string())
        };
        let (f, kinds) = check(&g, &exp, &hw);
        assert!(f.missing.is_empty());
        assert_eq!(f.failed, ["post-copy-iters/post-copy-iters-0#2"]);
        assert_eq!(f.duplicated.len(), 1);
        assert_eq!(f.duplicated[0].run, "post-copy-iters/post-copy-iters-0");
        assert_eq!(f.outside_selection, ["post-copy-iters/post-copy-iters-5"]);
        assert_eq!(
            f.mixed_hardware,
            [Mixed {
                scenario: "post-copy-iters/post-copy-iters-1".into(),
                hardware: vec![("A".into(), 1), ("B".into(), 1)]
            }]
        );
        assert_eq!(kinds.len(), 4);
        let shards = f.shards.clone().unwrap();
        assert_eq!(
            (shards.present, shards.missing, shards.duplicated),
            (vec![1], vec![2, 3], vec![1])
        );
        let refusal = f.refusal(false).unwrap();
        assert!(refusal.contains("1 run found more than once"), "{refusal}");
        assert!(refusal.contains("different hardware"), "{refusal}");
        assert!(!f.refusal(true).unwrap().contains("hardware"));
        let incomplete = f.incomplete().unwrap();
        assert!(
            incomplete.contains("part(s) 2, 3 of 3 not found"),
            "{incomplete}"
        );

        // Without the second run of -1 and its error: one run missing.
        g.results.remove(&key("post-copy-iters-1", 2));
        g.errors.clear();
        g.manifests.clear();
        let exp = expected(&g, &["post-copy-iters/*-[01]".to_string()], 2).unwrap();
        assert_eq!(exp.from, "command line");
        let (f, _) = check(&g, &exp, &hw);
        assert_eq!(
            f.missing,
            [
                "post-copy-iters/post-copy-iters-0#2",
                "post-copy-iters/post-copy-iters-1#2"
            ]
        );
        assert_eq!(
            f.incomplete().unwrap(),
            "2 runs of 4 missing: post-copy-iters/post-copy-iters-0#2, \
             post-copy-iters/post-copy-iters-1#2"
        );
        // A skipped scenario's runs are not missing.
        g.skipped
            .insert(key("post-copy-iters-1", 0), vec!["a/s".into()]);
        let (f, _) = check(&g, &exp, &hw);
        assert_eq!(f.missing, ["post-copy-iters/post-copy-iters-0#2"]);
    }
}
