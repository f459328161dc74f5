//! Command line of gp-compare.

use std::path::PathBuf;

use clap::Parser;

use crate::analysis::Options;

/// Is build B better than build A, by how much, and how sure are we?
///
/// Compares two sets of guestperf reports (arm A: the baseline, arm B: the change) scenario by
/// scenario and figure by figure: medians, the relative change with a bootstrap interval, an
/// exact permutation p-value, and a verdict (better, worse, no detectable change) that needs
/// both significance and a minimum effect. Writes DIR/compare.json, DIR/compare.md and a chart.
/// Each arm is report files, directories of them (a gp-batch output directory) or - for
/// NDJSON reports on stdin (one per line). See docs/gp-compare.md.
#[derive(Debug, Parser)]
#[command(name = "gp-compare", version, allow_negative_numbers = true)]
pub struct Args {
    /// Arm A (the baseline) and arm B (the change): a report, a directory, or - for stdin.
    #[arg(value_name = "A B", num_args = 0..=2)]
    pub arms: Vec<PathBuf>,

    /// More of arm A (repeatable; instead of or besides the first positional argument).
    #[arg(short = 'a', long = "a", value_name = "PATH")]
    pub more_a: Vec<PathBuf>,

    /// More of arm B (repeatable).
    #[arg(short = 'b', long = "b", value_name = "PATH")]
    pub more_b: Vec<PathBuf>,

    /// Directory to write compare.json, compare.md and the chart into (created if missing).
    #[arg(short, long, value_name = "DIR")]
    pub output: PathBuf,

    /// The chart: a file name ending in .svg or .png (relative to --output).
    #[arg(long, value_name = "FILE", default_value = "compare.svg")]
    pub chart: PathBuf,

    /// Name of arm A in the outputs.
    #[arg(long, default_value = "A")]
    pub label_a: String,

    /// Name of arm B in the outputs.
    #[arg(long, default_value = "B")]
    pub label_b: String,

    /// Significance level: the false discovery rate over all figures and scenarios.
    #[arg(long, default_value_t = 0.05, value_parser = open_unit)]
    pub alpha: f64,

    /// Smallest relative change, in percent, that counts as better or worse.
    #[arg(long, value_name = "PCT", default_value_t = 5.0, value_parser = non_negative)]
    pub min_effect: f64,

    /// Smallest change, in points, for percentage figures (guest slowdown, completion).
    #[arg(long, value_name = "POINTS", default_value_t = 5.0, value_parser = non_negative)]
    pub min_effect_points: f64,

    /// Confidence level of the intervals.
    #[arg(long, default_value_t = 0.95, value_parser = open_unit)]
    pub confidence: f64,

    /// Bootstrap replicates per interval.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(100..=10_000_000))]
    pub resamples: u64,

    /// Seed of the bootstrap (the same seed and reports give the same output).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,

    /// Power for the minimum detectable effect and the runs needed.
    #[arg(long, default_value_t = 0.8, value_parser = open_unit)]
    pub power: f64,

    /// Changes (percent; points for percentage figures) to give the runs per arm needed for.
    #[arg(long, value_name = "PCT", value_delimiter = ',', default_values_t = [5.0, 10.0, 20.0], value_parser = positive)]
    pub detect: Vec<f64>,

    /// Exit with status 3 when a figure is judged worse by at least PCT percent (points for
    /// percentage figures and completion rates).
    #[arg(long, value_name = "PCT", value_parser = non_negative)]
    pub fail_on_regression: Option<f64>,
}

fn number(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim_end_matches('%')
        .parse()
        .map_err(|_| format!("{s:?} is not a number"))?;
    if v.is_finite() {
        Ok(v)
    } else {
        Err(format!("{s:?} is not a finite number"))
    }
}

fn open_unit(s: &str) -> Result<f64, String> {
    let v = number(s)?;
    if v > 0.0 && v < 1.0 {
        Ok(v)
    } else {
        Err(format!(
            "{v} is not between 0 and 1 (exclusive): give a fraction such as 0.05"
        ))
    }
}

fn non_negative(s: &str) -> Result<f64, String> {
    let v = number(s)?;
    if v >= 0.0 {
        Ok(v)
    } else {
        Err(format!("{v} is negative"))
    }
}

fn positive(s: &str) -> Result<f64, String> {
    let v = number(s)?;
    if v > 0.0 {
        Ok(v)
    } else {
        Err(format!("{v} is not above 0"))
    }
}

impl Args {
    /// The statistical options.
    pub fn options(&self) -> Options {
        Options {
            alpha: self.alpha,
            min_effect: self.min_effect / 100.0,
            min_effect_points: self.min_effect_points,
            confidence: self.confidence,
            resamples: self.resamples as usize,
            seed: self.seed,
            power: self.power,
            // Fractions for ratio figures; analysis reads them as points for the others.
            detect: self.detect.iter().map(|d| d / 100.0).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_is_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn defaults_and_percentages() {
        let a = Args::try_parse_from(["gp-compare", "-o", "out", "x", "y", "--min-effect", "10%"])
            .unwrap();
        let o = a.options();
        assert_eq!(o.min_effect, 0.1);
        assert_eq!(o.alpha, 0.05);
        assert_eq!(o.detect, [0.05, 0.10, 0.20]);
        assert!(Args::try_parse_from(["gp-compare", "-o", "o", "--alpha", "5"]).is_err());
        assert!(Args::try_parse_from(["gp-compare", "-o", "o", "--resamples", "10"]).is_err());
    }
}
