//! Command line of gp-plot.

use std::path::PathBuf;

use clap::Parser;

use crate::model::Selection;
use crate::Options;

/// Draw static SVG or PNG charts of one or more guestperf reports.
///
/// x: seconds since the start of each run; left y: guest memory update speed (ms per GB,
/// higher is slower); right y: host CPU utilization (% of one CPU). Status changes are
/// annotated, the downtime window is shaded and a table of each run sits under the chart.
/// Reads reports from gp-collect and original guestperf result files. With no chart flag:
/// guest speed (per thread for one report, per report when comparing), QEMU CPU, migration
/// thread CPU and iteration markers.
#[derive(Debug, Parser)]
#[command(name = "gp-plot", version, allow_negative_numbers = true)]
pub struct Args {
    /// Image to write; the format comes from the extension: .svg or .png.
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,

    /// Image width in pixels.
    #[arg(long, default_value_t = 1280, value_parser = clap::value_parser!(u32).range(480..=10_000))]
    pub width: u32,

    /// Image height in pixels.
    #[arg(long, default_value_t = 800, value_parser = clap::value_parser!(u32).range(360..=10_000))]
    pub height: u32,

    /// Chart title (default: the report's name and scenario, or "Migration comparison").
    #[arg(long)]
    pub title: Option<String>,

    /// One guest line per report: all workload threads together (ms/GB).
    #[arg(long)]
    pub total_guest_cpu: bool,

    /// One guest line per workload thread (ms/GB).
    #[arg(long)]
    pub split_guest_cpu: bool,

    /// CPU utilization of each QEMU process as a whole (%).
    #[arg(long)]
    pub qemu_cpu: bool,

    /// CPU utilization of each vCPU thread (%).
    #[arg(long)]
    pub vcpu_cpu: bool,

    /// CPU utilization of QEMU's migration threads (%), where the report has per-thread samples.
    #[arg(long)]
    pub migration_cpu: bool,

    /// A marker on the time axis at each pass over guest RAM.
    #[arg(long)]
    pub migration_iters: bool,

    /// Report files (JSON), one or more; each is drawn in its own colour.
    #[arg(required = true, value_name = "REPORT")]
    pub reports: Vec<PathBuf>,
}

impl Args {
    /// The chart flags given, or `None` when there is none (the default chart).
    pub fn selection(&self) -> Option<Selection> {
        let sel = Selection {
            total_guest_cpu: self.total_guest_cpu,
            split_guest_cpu: self.split_guest_cpu,
            qemu_cpu: self.qemu_cpu,
            vcpu_cpu: self.vcpu_cpu,
            migration_iters: self.migration_iters,
            migration_cpu: self.migration_cpu,
        };
        // --migration-iters alone only adds the markers to the default lines.
        if sel.any_line() {
            Some(sel)
        } else if sel.migration_iters {
            Some(Selection {
                migration_iters: true,
                ..Selection::default_for(self.reports.len())
            })
        } else {
            None
        }
    }

    pub fn into_options(self) -> Options {
        Options {
            selection: self.selection(),
            reports: self.reports,
            output: self.output,
            width: self.width,
            height: self.height,
            title: self.title,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_is_well_formed() {
        Args::command().debug_assert();
    }

    #[test]
    fn no_chart_flag_means_default() {
        let a = Args::parse_from(["gp-plot", "-o", "x.svg", "a.json"]);
        assert_eq!(a.selection(), None);
        let a = Args::parse_from([
            "gp-plot",
            "-o",
            "x.svg",
            "--migration-iters",
            "a.json",
            "b.json",
        ]);
        assert_eq!(a.selection(), Some(Selection::default_for(2)));
    }

    #[test]
    fn chart_flags_select_exactly_those_lines() {
        let a = Args::parse_from([
            "gp-plot",
            "--output",
            "x.png",
            "--qemu-cpu",
            "--vcpu-cpu",
            "a.json",
        ]);
        let s = a.selection().unwrap();
        assert!(s.qemu_cpu && s.vcpu_cpu);
        assert!(!s.split_guest_cpu && !s.total_guest_cpu && !s.migration_iters && !s.migration_cpu);
    }

    #[test]
    fn bad_sizes_and_missing_reports_are_errors() {
        assert!(Args::try_parse_from(["gp-plot", "-o", "x.svg"]).is_err());
        assert!(
            Args::try_parse_from(["gp-plot", "-o", "x.svg", "--width", "10", "a.json"]).is_err()
        );
        assert!(
            Args::try_parse_from(["gp-plot", "-o", "x.svg", "--height", "abc", "a.json"]).is_err()
        );
    }
}
