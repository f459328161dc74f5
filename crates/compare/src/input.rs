//! Reading an arm: report files, directories of them (a gp-batch output directory), NDJSON
//! files or standard input with one report per line.
//!
//! In a directory (searched recursively, in name order): `*.json` is a report (gp-collect's or
//! an original guestperf result), `*.ndjson`/`*.jsonl` a report per line; gp-batch's
//! `SCENARIO[.rK].error.json` is a run whose pipeline failed (counted, never dropped),
//! `SCENARIO.skipped.json` a scenario skipped on that side; `summary.json`, `compare.json`,
//! `merge.json`, `ab.json`, `shard-K-of-N.json` (gp-batch's bookkeeping), hidden files and anything that is not JSON (charts, `summary.md`) are not runs. A file that
//! should be a report and is not is an error that names it: nothing is skipped silently.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use gp_records::report::Report;

use crate::model::{Arm, Run, RunOutcome};

/// What went wrong reading an arm.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// A report file that is not one (gp-plot's reader says which file and why).
    #[error(transparent)]
    Report(#[from] gp_plot::PlotError),
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{source_name} line {line}: {problem}")]
    Line {
        source_name: String,
        line: usize,
        problem: String,
    },
    #[error("{path} is not a gp-batch error file ({problem}); remove it from the directory or pass the report files")]
    ErrorFile { path: PathBuf, problem: String },
    #[error("{0} holds no reports: give gp-collect reports (*.json), a gp-batch output directory, or - for NDJSON reports on stdin")]
    Empty(String),
}

/// Reads every path of one arm. `stdin` is read for the path `-`.
pub fn read_arm(label: &str, paths: &[PathBuf], stdin: &mut dyn Read) -> Result<Arm, InputError> {
    let mut arm = Arm {
        label: label.into(),
        ..Arm::default()
    };
    for path in paths {
        let before = (arm.runs.len(), arm.skipped.len());
        if path.as_os_str() == "-" {
            let mut text = String::new();
            stdin
                .read_to_string(&mut text)
                .map_err(|source| InputError::Read {
                    path: path.clone(),
                    source,
                })?;
            read_ndjson(&text, "stdin", &mut arm)?;
        } else if path.is_dir() {
            read_dir(path, &mut arm)?;
        } else {
            read_file(path, &mut arm)?;
        }
        if (arm.runs.len(), arm.skipped.len()) == before {
            return Err(InputError::Empty(if path.as_os_str() == "-" {
                "stdin".into()
            } else {
                path.display().to_string()
            }));
        }
        arm.sources.push(path.display().to_string());
    }
    Ok(arm)
}

fn read_dir(dir: &Path, arm: &mut Arm) -> Result<(), InputError> {
    let mut files = Vec::new();
    list_dir(dir, &mut files)?;
    // Parsing is most of the time (every report is read whole): spread the files over the
    // CPUs in contiguous chunks, then take the results in name order, first error first.
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(files.len().div_ceil(8).max(1));
    let chunk = files.len().div_ceil(threads).max(1);
    let parts: Vec<Result<Arm, InputError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = files
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    let mut sub = Arm::default();
                    for path in part {
                        read_file(path, &mut sub)?;
                    }
                    Ok(sub)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a reading thread panicked"))
            .collect()
    });
    for part in parts {
        let part = part?;
        arm.runs.extend(part.runs);
        arm.skipped.extend(part.skipped);
    }
    Ok(())
}

/// The files of `dir` that may hold runs, recursively, in name order.
fn list_dir(dir: &Path, files: &mut Vec<PathBuf>) -> Result<(), InputError> {
    let read_err = |source| InputError::Read {
        path: dir.to_path_buf(),
        source,
    };
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(read_err)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(read_err)?;
    entries.sort();
    for path in entries {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.starts_with('.') {
            continue;
        }
        if path.is_dir() {
            list_dir(&path, files)?;
        } else if is_bookkeeping(&name) {
            continue;
        } else if name.ends_with(".json") || name.ends_with(".ndjson") || name.ends_with(".jsonl") {
            files.push(path);
        }
    }
    Ok(())
}

/// gp-batch's and gp-compare's own files in an output directory, which are not runs:
/// `summary.json`, `compare.json`, `merge.json`, `ab.json` and the shard manifests
/// `shard-K-of-N.json`.
fn is_bookkeeping(name: &str) -> bool {
    matches!(
        name,
        "summary.json" | "compare.json" | "merge.json" | "ab.json"
    ) || (name.starts_with("shard-") && name.contains("-of-") && name.ends_with(".json"))
}

fn read_file(path: &Path, arm: &mut Arm) -> Result<(), InputError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if name.ends_with(".ndjson") || name.ends_with(".jsonl") {
        let text = fs::read_to_string(path).map_err(|source| InputError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        return read_ndjson(&text, &path.display().to_string(), arm);
    }
    if let Some(stem) = name.strip_suffix(".error.json") {
        return read_error_file(path, stem, arm);
    }
    if let Some(scenario) = name.strip_suffix(".skipped.json") {
        let text = fs::read_to_string(path).map_err(|source| InputError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let reason = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v.get("reason").and_then(|r| r.as_str()).map(str::to_string))
            .unwrap_or_else(|| "skipped".into());
        arm.skipped.push((scenario.to_string(), reason));
        return Ok(());
    }
    let report = gp_plot::load_report(path)?;
    arm.runs
        .push(Run::from_report(&report, path.display().to_string()));
    Ok(())
}

/// A gp-batch `.error.json`: a run whose pipeline failed. Only `scenario` is required.
fn read_error_file(path: &Path, stem: &str, arm: &mut Arm) -> Result<(), InputError> {
    let bad = |problem: String| InputError::ErrorFile {
        path: path.to_path_buf(),
        problem,
    };
    let text = fs::read_to_string(path).map_err(|source| InputError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| bad(format!("not JSON: {e}")))?;
    let scenario = value
        .get("scenario")
        .and_then(|s| s.as_str())
        .map(str::to_string)
        .or_else(|| stem.split(".r").next().map(str::to_string))
        .ok_or_else(|| bad("no scenario".into()))?;
    let mut run = Run::new(&scenario, "unknown", RunOutcome::Error);
    // The partial report gp-collect wrote, if any, names the host.
    if let Some(report) = value
        .get("report")
        .and_then(|r| serde_json::from_value::<Report>(r.clone()).ok())
    {
        run.host = Run::from_report(&report, String::new()).host;
    }
    run.source = path.display().to_string();
    arm.runs.push(run);
    Ok(())
}

fn read_ndjson(text: &str, source_name: &str, arm: &mut Arm) -> Result<(), InputError> {
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let problem = |problem: String| InputError::Line {
            source_name: source_name.into(),
            line: i + 1,
            problem,
        };
        let value: serde_json::Value = serde_json::from_str(line).map_err(|e| {
            problem(format!(
                "not JSON ({e}); expected one gp-collect report per line (jq -c . report.json)"
            ))
        })?;
        if value.get("type").is_some_and(|t| t.is_string()) {
            return Err(problem(
                "a record of a run's stream, not a report: pipe the stream through gp-collect \
                 first, or give the reports gp-collect wrote"
                    .into(),
            ));
        }
        let report: Report = serde_json::from_value(value)
            .map_err(|e| problem(format!("JSON but not a guestperf report: {e}")))?;
        arm.runs.push(Run::from_report(
            &report,
            format!("{source_name}:{}", i + 1),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod bookkeeping_tests {
    use super::is_bookkeeping;

    #[test]
    fn gp_batch_bookkeeping_is_not_a_run() {
        for name in [
            "summary.json",
            "compare.json",
            "merge.json",
            "ab.json",
            "shard-2-of-4.json",
        ] {
            assert!(is_bookkeeping(name), "{name}");
        }
        for name in ["post-copy-iters-0.json", "shard.json", "merge.r2.json"] {
            assert!(!is_bookkeeping(name), "{name}");
        }
    }
}
