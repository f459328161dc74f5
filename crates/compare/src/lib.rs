//! gp-compare: is build B better than build A, by how much, and how sure are we.
//!
//! Two arms of guestperf reports (runs of the same scenarios with two QEMU builds, or any two
//! settings), compared per scenario and figure: medians, the relative change with a seeded
//! bootstrap interval, an exact permutation p-value, a verdict that needs both significance
//! (over all figures, Benjamini-Hochberg) and a minimum effect, the smallest change the data
//! could have shown, and the runs per arm needed to see a given change.
//!
//! The library is what a runner calls: build two [`Arm`]s of [`Run`]s (from reports with
//! [`Run::from_report`]) and call [`compare`]; [`output`] writes compare.json, compare.md and
//! the chart. Modules: [`figures`] (the table of figures), [`model`], [`input`] (files,
//! directories, NDJSON), [`analysis`], [`stats`] (the tests), [`output`], [`chart`], [`cli`].

pub mod analysis;
pub mod chart;
pub mod cli;
pub mod figures;
pub mod input;
pub mod model;
pub mod output;
pub mod stats;

pub use analysis::{compare, Comparison, Options, Verdict};
pub use model::{Arm, Run, RunOutcome};

use std::io::Read;
use std::path::{Path, PathBuf};

use gp_stage::ExitCode;

/// Exit status when `--fail-on-regression` finds a regression.
pub const EXIT_REGRESSION: u8 = 3;
/// Exit status of a bad command line (clap's own, and ours).
pub const EXIT_USAGE: u8 = 2;

/// What stops gp-compare.
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    #[error("{0}")]
    Usage(String),
    #[error("arm {label}")]
    Arm {
        label: String,
        #[source]
        source: input::InputError,
    },
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot draw the chart {path}")]
    Chart {
        path: PathBuf,
        #[source]
        source: gp_plot::PlotError,
    },
}

impl gp_stage::Failure for CompareError {
    fn exit_code(&self) -> u8 {
        match self {
            CompareError::Usage(_) => EXIT_USAGE,
            _ => 1,
        }
    }
}

/// The paths of each arm from the command line.
fn arm_paths(args: &cli::Args) -> Result<(Vec<PathBuf>, Vec<PathBuf>), CompareError> {
    let mut a = Vec::new();
    let mut b = Vec::new();
    match args.arms.as_slice() {
        [] => {}
        [one, two] => {
            a.push(one.clone());
            b.push(two.clone());
        }
        [only] => {
            return Err(CompareError::Usage(format!(
                "only one arm given ({}): give A and B (gp-compare A B -o DIR), or use -a/-b",
                only.display()
            )))
        }
        _ => unreachable!("clap takes at most two"),
    }
    a.extend(args.more_a.iter().cloned());
    b.extend(args.more_b.iter().cloned());
    if a.is_empty() || b.is_empty() {
        return Err(CompareError::Usage(
            "two arms are needed: gp-compare A B -o DIR (each a report, a directory of \
             reports, or - for NDJSON on stdin)"
                .into(),
        ));
    }
    let stdin_uses = a.iter().chain(&b).filter(|p| p.as_os_str() == "-").count();
    if stdin_uses > 1 {
        return Err(CompareError::Usage(
            "stdin (-) can feed only one arm: save the other arm's reports to files".into(),
        ));
    }
    Ok((a, b))
}

/// Writes `bytes` to `path` through a temporary file in the same directory, so a reader never
/// sees half a file.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), CompareError> {
    let werr = |source| CompareError::Write {
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_file_name(format!(
        ".{}.tmp",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    ));
    std::fs::write(&tmp, bytes).map_err(werr)?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        werr(e)
    })
}

/// Writes `dir/compare.json`, `dir/compare.md` and the chart `dir/chart` (SVG or PNG by its
/// extension), each through a temporary file. For runners as much as for the command line.
pub fn write_outputs(
    comparison: &Comparison,
    dir: &Path,
    chart: &Path,
) -> Result<(), CompareError> {
    let format = gp_plot::Format::from_path(chart).map_err(|_| {
        CompareError::Usage(format!(
            "--chart {}: the chart's name must end in .svg or .png",
            chart.display()
        ))
    })?;
    std::fs::create_dir_all(dir).map_err(|source| CompareError::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    write_atomic(
        &dir.join("compare.json"),
        output::json(comparison).as_bytes(),
    )?;
    write_atomic(
        &dir.join("compare.md"),
        output::markdown(comparison).as_bytes(),
    )?;
    let chart_path = dir.join(chart);
    let drawing = chart::CompareChart::new(comparison);
    let (w, h) = drawing.size();
    let image =
        gp_plot::render_drawing(&drawing, format, w, h).map_err(|e| CompareError::Chart {
            path: chart_path.clone(),
            source: e,
        })?;
    write_atomic(&chart_path, &image)
}

/// The whole tool: read both arms, compare, write the outputs; the exit status says whether
/// `--fail-on-regression` tripped.
pub fn run(args: &cli::Args, stdin: &mut dyn Read) -> Result<ExitCode, CompareError> {
    let (paths_a, paths_b) = arm_paths(args)?;
    // A bad chart name is a usage error before any reading.
    gp_plot::Format::from_path(&args.chart).map_err(|_| {
        CompareError::Usage(format!(
            "--chart {}: the chart's name must end in .svg or .png",
            args.chart.display()
        ))
    })?;
    let arm_a =
        input::read_arm(&args.label_a, &paths_a, stdin).map_err(|source| CompareError::Arm {
            label: args.label_a.clone(),
            source,
        })?;
    let arm_b =
        input::read_arm(&args.label_b, &paths_b, stdin).map_err(|source| CompareError::Arm {
            label: args.label_b.clone(),
            source,
        })?;
    let comparison = compare(&arm_a, &arm_b, &args.options());

    write_outputs(&comparison, &args.output, &args.chart)?;

    let compared = comparison.compared_figures();
    eprintln!(
        "gp-compare: {} scenarios, {compared} figures: {} worse, {} better; {} only in {}, {} only in {}; wrote {}",
        comparison.scenarios.len(),
        comparison.regressions.len(),
        comparison.improvements,
        comparison.only_in_a.len(),
        arm_a.label,
        comparison.only_in_b.len(),
        arm_b.label,
        args.output.join("compare.{json,md}").display(),
    );
    if let Some(limit) = args.fail_on_regression {
        let tripped: Vec<&analysis::Regression> = comparison
            .regressions
            .iter()
            .filter(|r| r.change.abs() >= limit)
            .collect();
        if !tripped.is_empty() {
            for r in &tripped {
                let unit = if r.change_unit == "percent" {
                    "%"
                } else {
                    " points"
                };
                eprintln!(
                    "gp-compare: regression: {} / {}: {:+.1}{unit}",
                    r.scenario, r.figure, r.change
                );
            }
            eprintln!(
                "gp-compare: {} regression(s) of at least {limit} (--fail-on-regression): exit {EXIT_REGRESSION}",
                tripped.len()
            );
            return Ok(ExitCode::from(EXIT_REGRESSION));
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_are_documented() {
        let doc = include_str!("../../../docs/gp-compare.md");
        for code in [0, 1, EXIT_USAGE, EXIT_REGRESSION] {
            assert!(
                doc.contains(&format!("| {code} |")),
                "docs/gp-compare.md lacks exit status {code}"
            );
        }
        assert_eq!(
            gp_stage::Failure::exit_code(&CompareError::Usage("x".into())),
            EXIT_USAGE
        );
    }
}
