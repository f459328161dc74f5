//! The figures gp-compare compares: one table, one row per figure.
//!
//! To add a figure (post-copy blocktime, a downtime breakdown step, a "trusted" downtime), add
//! a row to [`FIGURES`]: an id (stable: it is the key in `compare.json`), a label and unit for
//! people, which direction is better, whether changes are relative ([`Scale::Ratio`]) or in
//! the figure's own unit ([`Scale::Difference`]), and how to read it from one report. A figure
//! a report does not have is `None` for that run; docs/gp-compare.md lists the rows (a test
//! keeps the two in step).

use gp_records::report::Report;
use gp_records::Role;
use serde::Serialize;

/// Which way is an improvement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Better {
    Lower,
    Higher,
}

/// How a change of the figure is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scale {
    /// Relative: `median B / median A - 1`, analysed as a log ratio. For positive quantities
    /// (times, bytes, CPU seconds).
    Ratio,
    /// Absolute, in the figure's unit (percentage points for a percentage): for figures that
    /// can be zero or negative, where a ratio means nothing.
    Difference,
}

/// One comparable figure.
#[derive(Debug, Clone, Copy)]
pub struct Figure {
    /// Key in compare.json.
    pub id: &'static str,
    /// Name in compare.md and on the chart.
    pub label: &'static str,
    /// Unit of the values.
    pub unit: &'static str,
    pub better: Better,
    pub scale: Scale,
    /// The figure of one run, from its report.
    pub extract: fn(&Report) -> Option<f64>,
}

/// Every figure, in the order they are shown.
pub const FIGURES: &[Figure] = &[
    Figure {
        id: "total_time_ms",
        label: "total time",
        unit: "ms",
        better: Better::Lower,
        scale: Scale::Ratio,
        // The figure the report trusts (QEMU's unless its checks found it inconsistent); QEMU's
        // for reports written before the checks.
        extract: |r| summary(r)?.stated_total_time_ms(),
    },
    Figure {
        id: "downtime_ms",
        label: "downtime",
        unit: "ms",
        better: Better::Lower,
        scale: Scale::Ratio,
        extract: |r| summary(r)?.stated_downtime_ms(),
    },
    Figure {
        id: "guest_stall_ms",
        label: "guest stall",
        unit: "ms",
        better: Better::Lower,
        scale: Scale::Ratio,
        extract: |r| summary(r)?.guest_stall.as_ref().map(|s| s.stall_ms),
    },
    Figure {
        id: "guest_slowdown_pct",
        label: "guest slowdown during migration",
        unit: "%",
        better: Better::Lower,
        scale: Scale::Difference,
        extract: |r| {
            summary(r)?
                .guest_throughput
                .as_ref()
                .and_then(|t| t.slowdown_during_pct)
        },
    },
    Figure {
        id: "transferred_bytes",
        label: "transferred",
        unit: "bytes",
        better: Better::Lower,
        scale: Scale::Ratio,
        extract: |r| summary(r)?.transferred_bytes.map(|v| v as f64),
    },
    Figure {
        id: "src_cpu_s",
        label: "source QEMU CPU while migrating",
        unit: "s",
        better: Better::Lower,
        scale: Scale::Ratio,
        extract: |r| cpu_during_migration(r, Role::Src),
    },
    Figure {
        id: "dst_cpu_s",
        label: "destination QEMU CPU while migrating",
        unit: "s",
        better: Better::Lower,
        scale: Scale::Ratio,
        extract: |r| cpu_during_migration(r, Role::Dst),
    },
    Figure {
        id: "postcopy_blocktime_ms",
        label: "post-copy blocktime",
        unit: "ms",
        better: Better::Lower,
        scale: Scale::Ratio,
        // The destination's `postcopy-blocktime`: post-copy runs on a QEMU that has it.
        extract: |r| destination(r)?.postcopy_blocktime_ms.map(|v| v as f64),
    },
    Figure {
        id: "postcopy_requests",
        label: "post-copy page requests",
        unit: "pages",
        better: Better::Lower,
        scale: Scale::Ratio,
        extract: |r| destination(r)?.postcopy_requests.map(|v| v as f64),
    },
    Figure {
        id: "downtime_save_ms",
        label: "downtime: saving devices",
        unit: "ms",
        better: Better::Lower,
        scale: Scale::Ratio,
        // From QEMU's downtime tracepoints (docs/report.md), where the breakdown is available.
        extract: |r| breakdown(r).map(|b| b.save_ms),
    },
    Figure {
        id: "downtime_load_ms",
        label: "downtime: loading devices",
        unit: "ms",
        better: Better::Lower,
        scale: Scale::Ratio,
        extract: |r| breakdown(r).map(|b| b.load_ms),
    },
];

fn summary(r: &Report) -> Option<&gp_records::report::Summary> {
    r.summary.as_ref()
}

/// What the destination QEMU reported, when the report has it.
fn destination(r: &Report) -> Option<&gp_records::report::DestinationFigures> {
    summary(r)?.destination.as_ref()
}

/// The downtime breakdown, when QEMU's tracepoints gave one.
fn breakdown(r: &Report) -> Option<&gp_records::report::DowntimeBreakdown> {
    summary(r)?
        .downtime_breakdown
        .as_ref()
        .filter(|b| b.available)
}

/// CPU time of the QEMU processes of `role` between the migration's start and end (the
/// report's `host_cpu.vms[].during_migration_s`, summed over that role's processes).
fn cpu_during_migration(r: &Report, role: Role) -> Option<f64> {
    summary(r)?.host_cpu.during_migration_s(Some(role))
}

/// The figure with this id.
pub fn by_id(id: &str) -> Option<&'static Figure> {
    FIGURES.iter().find(|f| f.id == id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn post_copy_and_breakdown_figures_come_from_the_summary() {
        let mut r = gp_testkit::synth::report(&gp_testkit::synth::Spec::default());
        let get = |r: &Report, id: &str| (by_id(id).unwrap().extract)(r);
        assert_eq!(get(&r, "postcopy_blocktime_ms"), None);
        assert_eq!(get(&r, "downtime_save_ms"), None);
        let s = r.summary.as_mut().unwrap();
        s.destination = Some(gp_records::report::DestinationFigures {
            postcopy_blocktime_ms: Some(4080),
            postcopy_requests: Some(312),
            ..Default::default()
        });
        s.downtime_breakdown = Some(gp_records::report::DowntimeBreakdown {
            available: true,
            save_ms: 184.7,
            load_ms: 2.1,
            ..Default::default()
        });
        assert_eq!(get(&r, "postcopy_blocktime_ms"), Some(4080.0));
        assert_eq!(get(&r, "postcopy_requests"), Some(312.0));
        assert_eq!(get(&r, "downtime_save_ms"), Some(184.7));
        assert_eq!(get(&r, "downtime_load_ms"), Some(2.1));
        // A breakdown QEMU could not give (7.2) is no figure, not 0 ms.
        r.summary.as_mut().unwrap().downtime_breakdown = Some(Default::default());
        assert_eq!(get(&r, "downtime_save_ms"), None);
    }

    #[test]
    fn ids_are_unique_and_documented() {
        let doc = include_str!("../../../docs/gp-compare.md");
        for (i, f) in FIGURES.iter().enumerate() {
            assert!(
                FIGURES[i + 1..].iter().all(|g| g.id != f.id),
                "{} twice",
                f.id
            );
            assert!(
                doc.contains(&format!("`{}`", f.id)),
                "docs/gp-compare.md lacks figure {}",
                f.id
            );
            assert_eq!(by_id(f.id).map(|g| g.label), Some(f.label));
        }
    }
}
