//! What a chart shows, in plot coordinates, independent of how it is drawn.
//!
//! [`crate::series`] builds these from reports; [`crate::render`] draws them.

use gp_records::Role;

/// The two y axes of the chart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Axis {
    /// Guest memory update speed, ms per GB.
    GuestMsPerGb,
    /// Host CPU utilization, percent of one host CPU.
    HostPercent,
}

/// What a line measures; decides its axis and its line style.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SeriesKind {
    /// All guest workload threads as one line (`--total-guest-cpu`).
    GuestTotal,
    /// One guest workload thread (`--split-guest-cpu`).
    GuestThread,
    /// A QEMU process as a whole (`--qemu-cpu`).
    QemuCpu,
    /// One vCPU thread (`--vcpu-cpu`).
    VcpuCpu,
    /// QEMU's migration thread(s).
    MigrationCpu,
}

impl SeriesKind {
    pub fn axis(self) -> Axis {
        match self {
            SeriesKind::GuestTotal | SeriesKind::GuestThread => Axis::GuestMsPerGb,
            _ => Axis::HostPercent,
        }
    }
}

/// One line of the chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Legend text without the report name: `guest thread 1`, `QEMU dst`, `vCPU 0`.
    pub name: String,
    pub kind: SeriesKind,
    /// Which VM the data come from: destination lines are drawn lighter.
    pub role: Role,
    /// Position among the lines of the same kind and report, and how many there are; picks a
    /// shade of the report's colour.
    pub index: usize,
    pub count: usize,
    /// (seconds since the run started, value), sorted by x.
    pub points: Vec<(f64, f64)>,
}

/// A pass over guest RAM began (`--migration-iters`).
#[derive(Debug, Clone, PartialEq)]
pub struct IterationMark {
    pub x: f64,
    pub iteration: u64,
}

/// The migration entered a new status (`active`, `postcopy-active`, `completed`, ...).
#[derive(Debug, Clone, PartialEq)]
pub struct StatusMark {
    pub x: f64,
    pub status: String,
}

/// When the guest ran nowhere: from the source stopping to the destination resuming.
#[derive(Debug, Clone, PartialEq)]
pub struct DowntimeWindow {
    pub start: f64,
    pub end: f64,
    /// Downtime as QEMU reported it, ms.
    pub downtime_ms: Option<f64>,
    /// True when the window is placed from the reported downtime alone (original reports have
    /// no event times): it then ends at the first `completed` snapshot.
    pub estimated: bool,
}

/// The downtime step by step (the report's `summary.downtime_breakdown`), drawn as a bar under
/// the timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Breakdown {
    /// Each step: the checkpoint that ends it and its length, ms, in order.
    pub steps: Vec<(String, f64)>,
    /// All steps together, ms.
    pub total_ms: f64,
    /// QEMU's own window (`src-downtime-start` to `src-downtime-end`), ms.
    pub qemu_window_ms: Option<f64>,
    /// The slowest device saved on the source and loaded on the destination, with ms.
    pub top_save: Option<(String, f64)>,
    pub top_load: Option<(String, f64)>,
}

/// The row of the run table under the chart.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    pub scenario: String,
    /// `completed`, `failed`, `cancelled`, ... (with a reason when the report has one).
    pub result: String,
    pub total_time_ms: Option<f64>,
    pub downtime_ms: Option<f64>,
    pub iterations: Option<u64>,
    pub transferred_bytes: Option<u64>,
}

/// Everything drawn for one report.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    /// Short report name for legends: file stem, with parent directories when needed.
    pub label: String,
    /// The report file as given on the command line.
    pub path: String,
    pub series: Vec<Series>,
    pub iterations: Vec<IterationMark>,
    pub statuses: Vec<StatusMark>,
    pub downtime: Option<DowntimeWindow>,
    /// The downtime breakdown, when the report has one.
    pub breakdown: Option<Breakdown>,
    pub summary: Summary,
    /// Time span of everything in the run, seconds since its start.
    pub x_max: f64,
}

impl Run {
    /// Largest value on `axis` over all series (0 when none).
    pub fn y_max(&self, axis: Axis) -> f64 {
        self.series
            .iter()
            .filter(|s| s.kind.axis() == axis)
            .flat_map(|s| s.points.iter().map(|p| p.1))
            .filter(|v| v.is_finite())
            .fold(0.0, f64::max)
    }
}

/// Which lines to draw: the original's chart flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Selection {
    pub total_guest_cpu: bool,
    pub split_guest_cpu: bool,
    pub qemu_cpu: bool,
    pub vcpu_cpu: bool,
    pub migration_iters: bool,
    pub migration_cpu: bool,
}

impl Selection {
    /// No chart flag given: one guest line per thread for a single report (one line per report
    /// when comparing, so the chart stays readable), QEMU CPU, migration thread CPU where
    /// recorded, and the iteration markers.
    pub fn default_for(reports: usize) -> Self {
        Selection {
            total_guest_cpu: reports > 1,
            split_guest_cpu: reports <= 1,
            qemu_cpu: true,
            vcpu_cpu: false,
            migration_iters: true,
            migration_cpu: true,
        }
    }

    /// Whether any line was asked for (the iteration markers alone are not a chart).
    pub fn any_line(&self) -> bool {
        self.total_guest_cpu
            || self.split_guest_cpu
            || self.qemu_cpu
            || self.vcpu_cpu
            || self.migration_cpu
    }

    pub fn wants(&self, kind: SeriesKind) -> bool {
        match kind {
            SeriesKind::GuestTotal => self.total_guest_cpu,
            SeriesKind::GuestThread => self.split_guest_cpu,
            SeriesKind::QemuCpu => self.qemu_cpu,
            SeriesKind::VcpuCpu => self.vcpu_cpu,
            SeriesKind::MigrationCpu => self.migration_cpu,
        }
    }
}
