//! Drawing a [`Chart`] with plotters, on any backend (SVG text or an RGB pixel buffer).
//!
//! The page, top to bottom: a title; the plot (left axis guest ms/GB, right axis host CPU %,
//! x seconds since the run started) with the downtime window shaded, a labelled dashed line at
//! each status change and a triangle on the x axis at each pass over RAM; a legend, one row
//! (or more) per report; a table with one row per report.
//!
//! Colour tells reports apart, line style tells what a line measures (solid guest speed,
//! dashed QEMU, dotted vCPU, dash-dot migration threads), shade tells threads apart and a
//! lighter shade marks the destination.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::decimate::min_max_per_column;
use crate::font::FAMILY;
use crate::layout::{
    bar_segments, dash_path, ellipsize, ellipsize_start, mix, nice_ceiling, report_colour,
    robust_top, shade, stack_labels, step_colour, Rgb,
};
use crate::model::{Axis, Breakdown, Run, Series, SeriesKind};
use gp_records::Role;

/// Everything that goes on one page.
#[derive(Debug, Clone)]
pub struct Chart {
    pub title: String,
    pub runs: Vec<Run>,
    /// Draw the iteration triangles (`--migration-iters`).
    pub migration_iters: bool,
}

pub const X_DESC: &str = "Time since start of run (s)";
pub const Y_DESC: &str = "Guest memory update speed (ms/GB)";
pub const Y2_DESC: &str = "Host CPU utilization (%)";

type Res = Result<(), String>;

fn err<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// Font sizes and spacings for a page of the given size (designed at 1280x800).
struct Metrics {
    s: f64,
    margin: i32,
    title: f64,
    text: f64,
    small: f64,
}

impl Metrics {
    fn new(width: u32, height: u32) -> Self {
        let s = (f64::from(width) / 1280.0)
            .min(f64::from(height) / 800.0)
            .clamp(0.75, 2.5);
        Metrics {
            s,
            margin: px(12.0 * s),
            title: 20.0 * s,
            text: 14.0 * s,
            small: 12.5 * s,
        }
    }

    fn px(&self, v: f64) -> i32 {
        px(v * self.s)
    }

    fn font(&self, size: f64) -> TextStyle<'static> {
        TextStyle::from((FAMILY, size).into_font()).color(&BLACK)
    }

    // The plot's frame, as given to ChartBuilder.
    fn y_label_area(&self) -> i32 {
        self.px(80.0)
    }
    fn y2_label_area(&self) -> i32 {
        self.px(72.0)
    }
    fn x_label_area(&self) -> i32 {
        self.px(46.0)
    }
    fn plot_top_margin(&self) -> i32 {
        self.px(4.0)
    }
    fn label_row(&self) -> i32 {
        px(self.small * 1.4)
    }
}

fn px(v: f64) -> i32 {
    v.round() as i32
}

fn rgb(c: Rgb) -> RGBColor {
    RGBColor(c.0, c.1, c.2)
}

/// The colour of one line: the report's colour, shaded per thread, lighter on the destination.
fn series_colour(run_index: usize, s: &Series) -> RGBColor {
    let mut c = shade(report_colour(run_index), s.index, s.count);
    if s.role == Role::Dst {
        c = mix(c, 0.45);
    }
    rgb(c)
}

/// Dash pattern (on, off, ... in pixels at scale 1) per kind of line.
fn dash(kind: SeriesKind) -> &'static [f64] {
    match kind {
        SeriesKind::GuestTotal | SeriesKind::GuestThread => &[],
        SeriesKind::QemuCpu => &[11.0, 5.0],
        SeriesKind::VcpuCpu => &[2.0, 4.0],
        SeriesKind::MigrationCpu => &[10.0, 4.0, 2.5, 4.0],
    }
}

fn stroke(kind: SeriesKind, m: &Metrics) -> u32 {
    let w = match kind {
        SeriesKind::GuestTotal | SeriesKind::GuestThread => 1.5,
        _ => 2.0,
    };
    (w * m.s).round().max(1.0) as u32
}

/// Draws a polyline in absolute pixel coordinates with the dash pattern of `kind`.
fn draw_line<DB: DrawingBackend>(
    screen: &DrawingArea<DB, Shift>,
    points: &[(f64, f64)],
    kind: SeriesKind,
    colour: RGBColor,
    m: &Metrics,
) -> Res {
    let style = colour.stroke_width(stroke(kind, m));
    let pattern: Vec<f64> = dash(kind).iter().map(|v| v * m.s).collect();
    for piece in dash_path(points, &pattern) {
        let pts: Vec<(i32, i32)> = piece.iter().map(|p| (px(p.0), px(p.1))).collect();
        screen.draw(&PathElement::new(pts, style)).map_err(err)?;
    }
    Ok(())
}

/// One legend item: a style sample and its text.
struct LegendEntry {
    text: String,
    sample: Sample,
}

enum Sample {
    Line { colour: RGBColor, kind: SeriesKind },
    Triangle(RGBColor),
    Shade(RGBColor),
    Swatch(RGBColor),
}

/// Legend entries in rows of their own, under an optional coloured name.
struct LegendGroup {
    header: Option<(String, RGBColor)>,
    entries: Vec<LegendEntry>,
}

/// One group per report, listing each of its lines (exact, for a few reports).
fn per_run_groups(chart: &Chart) -> Vec<LegendGroup> {
    let multi = chart.runs.len() > 1;
    chart
        .runs
        .iter()
        .enumerate()
        .map(|(ri, run)| {
            let mut entries: Vec<LegendEntry> = run
                .series
                .iter()
                .map(|s| LegendEntry {
                    text: s.name.clone(),
                    sample: Sample::Line {
                        colour: series_colour(ri, s),
                        kind: s.kind,
                    },
                })
                .collect();
            let c = rgb(report_colour(ri));
            if chart.migration_iters && !run.iterations.is_empty() {
                entries.push(LegendEntry {
                    text: "migration iterations".into(),
                    sample: Sample::Triangle(c),
                });
            }
            if run.downtime.is_some() {
                entries.push(LegendEntry {
                    text: "downtime".into(),
                    sample: Sample::Shade(c),
                });
            }
            LegendGroup {
                header: multi.then(|| (legend_name(run), c)),
                entries,
            }
        })
        .collect()
}

const KEY_GREY: RGBColor = RGBColor(70, 70, 70);

/// A key of line styles in grey, then a colour per report (compact, for many reports).
fn factored_groups(chart: &Chart) -> Vec<LegendGroup> {
    let mut kinds: Vec<(SeriesKind, Role)> = chart
        .runs
        .iter()
        .flat_map(|r| r.series.iter().map(|s| (s.kind, s.role)))
        .collect();
    kinds.sort();
    kinds.dedup();
    let mut key: Vec<LegendEntry> = kinds
        .into_iter()
        .map(|(kind, role)| {
            let name = match kind {
                SeriesKind::GuestTotal => "guest, all threads",
                SeriesKind::GuestThread => "guest threads (shades)",
                SeriesKind::QemuCpu => "QEMU",
                SeriesKind::VcpuCpu => "vCPUs (shades)",
                SeriesKind::MigrationCpu => "migration threads",
            };
            let (text, colour) = match role {
                Role::Src => (name.to_string(), KEY_GREY),
                Role::Dst => (
                    format!("{name} (dst, lighter)"),
                    rgb(mix(Rgb(70, 70, 70), 0.45)),
                ),
            };
            LegendEntry {
                text,
                sample: Sample::Line { colour, kind },
            }
        })
        .collect();
    if chart.migration_iters && chart.runs.iter().any(|r| !r.iterations.is_empty()) {
        key.push(LegendEntry {
            text: "migration iterations".into(),
            sample: Sample::Triangle(KEY_GREY),
        });
    }
    if chart.runs.iter().any(|r| r.downtime.is_some()) {
        key.push(LegendEntry {
            text: "downtime".into(),
            sample: Sample::Shade(KEY_GREY),
        });
    }
    let reports = chart
        .runs
        .iter()
        .enumerate()
        .map(|(ri, r)| LegendEntry {
            text: legend_name(r),
            sample: Sample::Swatch(rgb(report_colour(ri))),
        })
        .collect();
    vec![
        LegendGroup {
            header: None,
            entries: key,
        },
        LegendGroup {
            header: None,
            entries: reports,
        },
    ]
}

/// Formats a duration in ms for the table.
pub fn format_ms(ms: Option<f64>) -> String {
    match ms {
        None => "-".into(),
        Some(v) if v >= 10_000.0 => format!("{:.1} s", v / 1000.0),
        Some(v) if v >= 1000.0 => format!("{:.2} s", v / 1000.0),
        Some(v) => format!("{v:.0} ms"),
    }
}

/// Formats a byte count with binary units.
pub fn format_bytes(b: Option<u64>) -> String {
    let Some(b) = b else { return "-".into() };
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < units.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.2} {}", units[u])
    }
}

/// The table under the chart: header and one row per run.
pub fn table_rows(chart: &Chart) -> Vec<[String; 7]> {
    let mut rows = vec![[
        "report".to_string(),
        "scenario".into(),
        "result".into(),
        "total time".into(),
        "downtime".into(),
        "iterations".into(),
        "transferred".into(),
    ]];
    for run in &chart.runs {
        let s = &run.summary;
        rows.push([
            ellipsize_start(&run.path, 56),
            ellipsize(&s.scenario, 28),
            ellipsize(&s.result, 48),
            format_ms(s.total_time_ms),
            format_ms(s.downtime_ms),
            s.iterations.map_or("-".into(), |i| i.to_string()),
            format_bytes(s.transferred_bytes),
        ]);
    }
    rows
}

/// Where the legend goes.
struct LegendLayout {
    /// Width of the column holding group names (0 when no group has one).
    header_w: i32,
    col_w: i32,
    columns: usize,
    groups: Vec<LegendGroup>,
    rows: usize,
    /// Entries left out for want of room.
    hidden: usize,
}

/// A report's name in the legend: its short file name, and its scenario when that differs.
fn legend_name(run: &Run) -> String {
    let scenario = &run.summary.scenario;
    if scenario.is_empty() || *scenario == run.label {
        ellipsize(&run.label, 40)
    } else {
        ellipsize(&format!("{} ({scenario})", run.label), 40)
    }
}

fn text_width<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    t: &str,
    style: &TextStyle,
) -> i32 {
    root.estimate_text_size(t, style)
        .map_or(0, |(w, _)| w as i32)
}

/// Lays `groups` out in columns `width` wide.
fn layout_groups<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    groups: Vec<LegendGroup>,
    m: &Metrics,
    width: i32,
) -> LegendLayout {
    let small = m.font(m.small);
    let gap = m.px(22.0);
    let header_w = groups
        .iter()
        .filter_map(|g| g.header.as_ref())
        .map(|(t, _)| text_width(root, t, &small) + gap)
        .max()
        .unwrap_or(0);
    let widest = groups
        .iter()
        .flat_map(|g| g.entries.iter().map(|e| text_width(root, &e.text, &small)))
        .max()
        .unwrap_or(0);
    let col_w = m.px(40.0) + widest + gap;
    let columns = ((width - header_w) / col_w.max(1)).max(1) as usize;
    let rows = groups
        .iter()
        .map(|g| g.entries.len().div_ceil(columns).max(1))
        .sum();
    LegendLayout {
        header_w,
        col_w,
        columns,
        groups,
        rows,
        hidden: 0,
    }
}

/// The per-report legend when it fits in `max_rows`, else the compact one, cut to fit.
fn legend_layout<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    chart: &Chart,
    m: &Metrics,
    width: i32,
    max_rows: usize,
) -> LegendLayout {
    let full = layout_groups(root, per_run_groups(chart), m, width);
    if full.rows <= max_rows {
        return full;
    }
    let mut groups = factored_groups(chart);
    let l = layout_groups(root, factored_groups(chart), m, width);
    if l.rows <= max_rows {
        return l;
    }
    // The table under the legend has a colour swatch per report: drop the report group.
    groups.truncate(1);
    let mut l = layout_groups(root, groups, m, width);
    if l.rows <= max_rows {
        return l;
    }
    // Still too many: keep whole rows while they fit, with one cell for a "... more" note.
    let mut rows_left = max_rows;
    let mut hidden = 0;
    for g in &mut l.groups {
        let room = rows_left * l.columns;
        let keep = if g.entries.len() <= room {
            g.entries.len()
        } else {
            room.saturating_sub(1)
        };
        hidden += g.entries.len() - keep;
        g.entries.truncate(keep);
        rows_left = rows_left.saturating_sub(keep.div_ceil(l.columns).max(1));
    }
    l.groups.retain(|g| !g.entries.is_empty());
    l.rows = max_rows;
    l.hidden = hidden;
    l
}

/// Draws `chart` on `root`, which must be blank (it is filled white first).
pub fn draw<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, chart: &Chart) -> Res {
    let (width, height) = root.dim_in_pixel();
    let m = Metrics::new(width, height);
    root.fill(&WHITE).map_err(err)?;
    let (w, h) = (width as i32, height as i32);

    // Title.
    let title_style = m.font(m.title).pos(Pos::new(HPos::Center, VPos::Top));
    root.draw(&Text::new(
        chart.title.clone(),
        (w / 2, m.margin),
        title_style,
    ))
    .map_err(err)?;
    let top = m.margin + px(m.title * 1.6);

    // The table and legend decide how much height the plot gets; the plot keeps at least 45%.
    let rows = table_rows(chart);
    let table_row_h = px(m.text * 1.5);
    let table_h = table_row_h * rows.len() as i32;
    let legend_row_h = px(m.small * 1.5);
    let gap = m.px(10.0);
    let min_plot = h * 45 / 100;
    let fixed = top + table_h + 2 * gap + m.margin;
    let max_legend_rows = ((h - fixed - min_plot) / legend_row_h).max(1) as usize;
    let legend = legend_layout(root, chart, &m, w - 2 * m.margin, max_legend_rows);
    let legend_h = legend_row_h * legend.rows as i32;
    // The downtime breakdown bars, one per report that has one, between plot and legend.
    let bars: Vec<(usize, &Run, &Breakdown)> = chart
        .runs
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.breakdown.as_ref().map(|b| (i, r, b)))
        .collect();
    let bar_row_h = px(m.text * 1.4);
    let caption_h = px(m.small * 1.5);
    let breakdown_h = if bars.is_empty() {
        0
    } else {
        caption_h + bars.len() as i32 * (bar_row_h + caption_h) + gap
    };
    let plot_bottom = h - m.margin - table_h - legend_h - 2 * gap - breakdown_h;
    if plot_bottom - top < m.px(150.0) {
        return Err(format!(
            "{width}x{height} pixels leave no room for the plot above the legend and the table \
             of {} report(s): use a larger --height",
            chart.runs.len()
        ));
    }

    let plot_area = root
        .clone()
        .shrink((0, top), (width, (plot_bottom - top) as u32));
    draw_plot(&plot_area, chart, &m)?;
    if !bars.is_empty() {
        let geometry = BarGeometry {
            top: plot_bottom + gap,
            x0: m.margin + m.y_label_area(),
            x1: w - m.margin - m.y2_label_area(),
            bar_h: bar_row_h,
            caption_h,
        };
        draw_breakdown(root, &bars, &geometry, &m)?;
    }
    let legend_top = plot_bottom + gap + breakdown_h;
    draw_legend(root, &legend, legend_top, legend_row_h, &m)?;
    draw_table(root, &rows, legend_top + legend_h + gap, table_row_h, &m)?;
    root.present().map_err(err)
}

fn draw_legend<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    legend: &LegendLayout,
    top: i32,
    row_h: i32,
    m: &Metrics,
) -> Res {
    let small = m.font(m.small).pos(Pos::new(HPos::Left, VPos::Center));
    let sample_w = m.px(34.0);
    let cell = |row: usize, col: usize| {
        (
            m.margin + legend.header_w + col as i32 * legend.col_w,
            top + row as i32 * row_h + row_h / 2,
        )
    };
    let mut row = 0;
    let mut next = (0, 0);
    for g in &legend.groups {
        if let Some((name, c)) = &g.header {
            let at = (m.margin, cell(row, 0).1);
            root.draw(&Text::new(name.clone(), at, small.clone().color(c)))
                .map_err(err)?;
        }
        for (i, e) in g.entries.iter().enumerate() {
            let (r, c) = (row + i / legend.columns, i % legend.columns);
            let (x, y) = cell(r, c);
            draw_sample(root, &e.sample, x, y, sample_w, m)?;
            root.draw(&Text::new(
                e.text.clone(),
                (x + sample_w + m.px(6.0), y),
                small.clone(),
            ))
            .map_err(err)?;
            next = if c + 1 < legend.columns {
                (r, c + 1)
            } else {
                (r + 1, 0)
            };
        }
        row += g.entries.len().div_ceil(legend.columns).max(1);
    }
    if legend.hidden > 0 {
        let note = format!("... {} more not listed", legend.hidden);
        root.draw(&Text::new(note, cell(next.0, next.1), small))
            .map_err(err)?;
    }
    Ok(())
}

fn draw_sample<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    sample: &Sample,
    x: i32,
    y: i32,
    w: i32,
    m: &Metrics,
) -> Res {
    match sample {
        Sample::Line { colour, kind } => {
            let (xa, xb, yy) = (f64::from(x), f64::from(x + w), f64::from(y));
            draw_line(root, &[(xa, yy), (xb, yy)], *kind, *colour, m)
        }
        Sample::Triangle(c) => root
            .draw(&TriangleMarker::new((x + w / 2, y), m.px(5.0), c.filled()))
            .map_err(err),
        Sample::Swatch(c) => {
            let half = m.px(6.0);
            root.draw(&Rectangle::new(
                [(x + w / 2 - half, y - half), (x + w / 2 + half, y + half)],
                c.filled(),
            ))
            .map_err(err)
        }
        Sample::Shade(c) => {
            let half = m.px(6.0);
            root.draw(&Rectangle::new(
                [(x, y - half), (x + w, y + half)],
                c.mix(0.22).filled(),
            ))
            .map_err(err)
        }
    }
}

/// Where the breakdown bars go.
struct BarGeometry {
    top: i32,
    x0: i32,
    x1: i32,
    bar_h: i32,
    caption_h: i32,
}

/// What the caption under a breakdown bar says.
pub fn breakdown_caption(name: &str, b: &Breakdown) -> String {
    let mut parts = vec![format!("{name}: {:.1} ms", b.total_ms)];
    if let Some(w) = b.qemu_window_ms {
        parts[0].push_str(&format!(" (QEMU's window {w:.1} ms)"));
    }
    if let Some((step, ms)) = b.steps.iter().max_by(|a, b| a.1.total_cmp(&b.1)) {
        parts.push(format!("longest step {step} {ms:.1} ms"));
    }
    let dev = |what: &str, d: &Option<(String, f64)>| {
        d.as_ref()
            .map(|(n, ms)| format!("slowest {what} {n} {ms:.1} ms"))
    };
    parts.extend(dev("save", &b.top_save));
    parts.extend(dev("load", &b.top_load));
    parts.join("; ")
}

/// The downtime of each report that has a breakdown, step by step, as a horizontal bar on a
/// common ms scale, with a caption.
fn draw_breakdown<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    bars: &[(usize, &Run, &Breakdown)],
    g: &BarGeometry,
    m: &Metrics,
) -> Res {
    let small = m.font(m.small);
    let header = "Downtime breakdown (QEMU's vmstate_downtime tracepoints): source steps blue, \
                  destination steps orange";
    root.draw(&Text::new(
        header,
        (m.margin, g.top + g.caption_h / 2),
        small.clone().pos(Pos::new(HPos::Left, VPos::Center)),
    ))
    .map_err(err)?;
    let scale = bars.iter().map(|b| b.2.total_ms).fold(0.0, f64::max);
    let width = g.x1 - g.x0;
    let swatch = m.px(12.0);
    for (k, (run_index, run, b)) in bars.iter().enumerate() {
        let y = g.top + g.caption_h + k as i32 * (g.bar_h + g.caption_h);
        root.draw(&Rectangle::new(
            [
                (g.x0 - swatch - m.px(6.0), y + (g.bar_h - swatch) / 2),
                (g.x0 - m.px(6.0), y + (g.bar_h + swatch) / 2),
            ],
            rgb(report_colour(*run_index)).filled(),
        ))
        .map_err(err)?;
        let values: Vec<f64> = b.steps.iter().map(|s| s.1).collect();
        let n_src = b.steps.iter().filter(|s| !s.0.starts_with("dst-")).count();
        let n_dst = b.steps.len() - n_src;
        let (mut i_src, mut i_dst) = (0, 0);
        for ((name, ms), (a, z)) in b.steps.iter().zip(bar_segments(&values, scale, width)) {
            let colour = if name.starts_with("dst-") {
                i_dst += 1;
                step_colour(name, i_dst - 1, n_dst)
            } else {
                i_src += 1;
                step_colour(name, i_src - 1, n_src)
            };
            if z > a {
                root.draw(&Rectangle::new(
                    [(g.x0 + a, y), (g.x0 + z, y + g.bar_h)],
                    rgb(colour).filled(),
                ))
                .map_err(err)?;
            }
            let label = format!("{name} {ms:.1}");
            if text_width(root, &label, &small) + m.px(6.0) < z - a {
                root.draw(&Text::new(
                    label,
                    (g.x0 + (a + z) / 2, y + g.bar_h / 2),
                    small.clone().pos(Pos::new(HPos::Center, VPos::Center)),
                ))
                .map_err(err)?;
            }
        }
        let caption = breakdown_caption(&legend_name(run), b);
        root.draw(&Text::new(
            ellipsize(&caption, 200),
            (g.x0, y + g.bar_h + g.caption_h / 2),
            small.clone().pos(Pos::new(HPos::Left, VPos::Center)),
        ))
        .map_err(err)?;
    }
    Ok(())
}

fn draw_table<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    rows: &[[String; 7]],
    top: i32,
    row_h: i32,
    m: &Metrics,
) -> Res {
    let text = m.font(m.text);
    let pad = m.px(20.0);
    let swatch = m.px(12.0);
    let mut col_w = [0i32; 7];
    for row in rows {
        for (c, cell) in row.iter().enumerate() {
            col_w[c] = col_w[c].max(text_width(root, cell, &text));
        }
    }
    let mut col_x = [0i32; 7];
    let mut x = m.margin + swatch + m.px(8.0);
    for c in 0..7 {
        col_x[c] = x;
        x += col_w[c] + pad;
    }
    let rule_y = top + row_h;
    root.draw(&PathElement::new(
        vec![(m.margin, rule_y), (x - pad, rule_y)],
        BLACK.mix(0.5).stroke_width(1),
    ))
    .map_err(err)?;
    for (r, row) in rows.iter().enumerate() {
        let y = top + r as i32 * row_h + row_h / 2;
        if r > 0 {
            let c = rgb(report_colour(r - 1));
            root.draw(&Rectangle::new(
                [
                    (m.margin, y - swatch / 2),
                    (m.margin + swatch, y + swatch / 2),
                ],
                c.filled(),
            ))
            .map_err(err)?;
        }
        for (c, cell) in row.iter().enumerate() {
            // Figures (total time onwards) are right-aligned.
            let (hpos, cx) = if c >= 3 {
                (HPos::Right, col_x[c] + col_w[c])
            } else {
                (HPos::Left, col_x[c])
            };
            let style = text.clone().pos(Pos::new(hpos, VPos::Center));
            root.draw(&Text::new(cell.clone(), (cx, y), style))
                .map_err(err)?;
        }
    }
    Ok(())
}

/// A text label placed in the band at the top of the plot.
struct Label {
    x: f64,
    text: String,
    colour: RGBColor,
}

/// For each report whose guest line rises above `top`, its highest point, labelled.
fn peak_labels(chart: &Chart, top: f64) -> Vec<Label> {
    let mut out = Vec::new();
    for (ri, run) in chart.runs.iter().enumerate() {
        let peak = run
            .series
            .iter()
            .filter(|s| s.kind.axis() == Axis::GuestMsPerGb)
            .flat_map(|s| s.points.iter())
            .filter(|p| p.1.is_finite())
            .max_by(|a, b| a.1.total_cmp(&b.1));
        if let Some(&(x, v)) = peak.filter(|p| p.1 > top) {
            out.push(Label {
                x,
                text: format!("\u{2191} {v:.0} ms/GB"),
                colour: rgb(report_colour(ri)),
            });
        }
    }
    out
}

fn plot_labels(chart: &Chart) -> Vec<Label> {
    let mut out = Vec::new();
    for (ri, run) in chart.runs.iter().enumerate() {
        let colour = rgb(report_colour(ri));
        for st in &run.statuses {
            out.push(Label {
                x: st.x,
                text: st.status.clone(),
                colour,
            });
        }
        if let Some(d) = &run.downtime {
            let ms = d
                .downtime_ms
                .map_or(String::new(), |v| format!(" {v:.0} ms"));
            let est = if d.estimated { " (est.)" } else { "" };
            out.push(Label {
                x: d.start,
                text: format!("downtime{ms}{est}"),
                colour,
            });
        }
    }
    out
}

/// A label where it will be drawn: plot pixels, band row, and its colour.
struct Placed {
    left: i32,
    width: i32,
    row: usize,
    text: String,
    colour: RGBColor,
}

/// Places the labels in the band at the top of a plot `plot_w` x `plot_h` pixels: the same
/// text at the same spot from several reports is drawn once, in grey; labels are stacked so
/// none overlaps another, and the band takes at most 30% of the plot (labels that do not fit
/// are left out: their dashed lines remain).
fn place_labels<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    labels: &[Label],
    to_px: impl Fn(f64) -> i32,
    plot_w: i32,
    plot_h: i32,
    m: &Metrics,
) -> Vec<Placed> {
    let small = m.font(m.small);
    let pad = m.px(3.0);
    let mut placed: Vec<Placed> = Vec::new();
    for l in labels {
        let width = text_width(root, &l.text, &small) + 2 * pad;
        let left = to_px(l.x).saturating_add(1).min(plot_w - width).max(0);
        if let Some(same) = placed
            .iter_mut()
            .find(|p| p.text == l.text && (p.left - left).abs() <= 2)
        {
            if same.colour != l.colour {
                same.colour = KEY_GREY;
            }
            continue;
        }
        placed.push(Placed {
            left,
            width,
            row: 0,
            text: l.text.clone(),
            colour: l.colour,
        });
    }
    let boxes: Vec<(i32, i32)> = placed.iter().map(|p| (p.left, p.width)).collect();
    let rows = stack_labels(&boxes, m.px(4.0));
    let max_rows = ((plot_h * 3 / 10) / m.label_row()).max(3) as usize;
    for (p, r) in placed.iter_mut().zip(rows) {
        p.row = r;
    }
    placed.retain(|p| p.row < max_rows);
    placed
}

fn draw_plot<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, chart: &Chart, m: &Metrics) -> Res {
    let (aw, ah) = area.dim_in_pixel();
    let x_max = chart.runs.iter().map(|r| r.x_max).fold(0.0, f64::max);
    let x_max = if x_max > 0.0 { x_max * 1.02 } else { 1.0 };

    // Guest values far above the rest are cut off at the top and their peak is labelled.
    let guest_values: Vec<f64> = chart
        .runs
        .iter()
        .flat_map(|r| r.series.iter())
        .filter(|s| s.kind.axis() == Axis::GuestMsPerGb)
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .collect();
    let (guest_top, clipped) = robust_top(guest_values);

    // Status labels sit in a band at the top of the plot; leave the data room below it.
    let mut labels = plot_labels(chart);
    if clipped {
        labels.extend(peak_labels(chart, guest_top));
    }
    let plot_w = aw as i32 - 2 * m.margin - m.y_label_area() - m.y2_label_area();
    let plot_h = ah as i32 - m.plot_top_margin() - m.x_label_area();
    let to_px_est = |x: f64| px(x / x_max * f64::from(plot_w));
    let placed = place_labels(area, &labels, to_px_est, plot_w, plot_h, m);
    let band_rows = placed.iter().map(|p| p.row + 1).max().unwrap_or(0);
    let band = (band_rows as i32 * m.label_row() + m.px(4.0)) as f64 / f64::from(plot_h.max(1));
    let headroom = 1.0 / (1.0 - band.min(0.5)) * 1.04;

    let y1_max = if guest_top > 0.0 {
        nice_ceiling(guest_top * headroom)
    } else {
        1000.0
    };
    let host = chart
        .runs
        .iter()
        .map(|r| r.y_max(Axis::HostPercent))
        .fold(0.0, f64::max);
    let y2_max = (host.max(100.0) * headroom / 10.0).ceil() * 10.0;

    let mut cc = ChartBuilder::on(area)
        .margin_left(m.margin)
        .margin_right(m.margin)
        .margin_top(m.plot_top_margin())
        .x_label_area_size(m.x_label_area())
        .y_label_area_size(m.y_label_area())
        .right_y_label_area_size(m.y2_label_area())
        .build_cartesian_2d(0f64..x_max, 0f64..y1_max)
        .map_err(err)?
        .set_secondary_coord(0f64..x_max, 0f64..y2_max);

    let label_style = m.font(m.small);
    let desc = m.font(m.text);
    cc.configure_mesh()
        .x_desc(X_DESC)
        .y_desc(Y_DESC)
        .label_style(label_style.clone())
        .axis_desc_style(desc.clone())
        .light_line_style(BLACK.mix(0.04))
        .bold_line_style(BLACK.mix(0.12))
        .x_labels(12)
        .y_labels(10)
        .x_label_formatter(&|v| trim_number(*v))
        .y_label_formatter(&|v| trim_number(*v))
        .draw()
        .map_err(err)?;
    cc.configure_secondary_axes()
        .y_desc(Y2_DESC)
        .label_style(label_style)
        .axis_desc_style(desc)
        .y_labels(10)
        .y_label_formatter(&|v| trim_number(*v))
        .draw()
        .map_err(err)?;

    let primary = cc.plotting_area().clone();
    let secondary = cc.borrow_secondary().plotting_area().clone();
    let (xr, yr) = primary.get_pixel_range();
    let (plot_w, plot_h) = (xr.end - xr.start, yr.end - yr.start);
    let columns = plot_w.max(1) as u32;
    let origin = primary.get_base_pixel();
    let plot = primary.strip_coord_spec(); // pixels relative to the plot's corner
    let screen = primary.use_screen_coord(); // absolute pixels
    let to_px = |x: f64| -> i32 { primary.map_coordinate(&(x, 0.0)).0 - origin.0 };

    // Under the lines: downtime windows and status changes, in pixels relative to the plot.
    let to_px: &dyn Fn(f64) -> i32 = &to_px;
    let frame = Frame {
        plot: &plot,
        to_px,
        w: plot_w,
        h: plot_h,
    };
    draw_downtime_windows(&frame, chart, m)?;
    draw_status_lines(&frame, chart)?;

    // The lines, decimated to the plot's pixel columns, in absolute pixels.
    for (ri, run) in chart.runs.iter().enumerate() {
        for s in &run.series {
            let pts = min_max_per_column(&s.points, (0.0, x_max), columns);
            let (y_cap, area) = match s.kind.axis() {
                Axis::GuestMsPerGb => (y1_max, &primary),
                Axis::HostPercent => (y2_max, &secondary),
            };
            let pixels: Vec<(f64, f64)> = pts
                .iter()
                .map(|p| {
                    let c = area.map_coordinate(&(p.0, p.1.clamp(0.0, y_cap)));
                    (f64::from(c.0), f64::from(c.1))
                })
                .collect();
            draw_line(&screen, &pixels, s.kind, series_colour(ri, s), m)?;
        }
    }

    if chart.migration_iters {
        draw_iteration_markers(&frame, chart, m)?;
    }
    draw_labels(&frame, &labels, m)
}

/// The plot's drawing area in pixels relative to its corner, and where run time `x` falls on it.
struct Frame<'a, DB: DrawingBackend> {
    plot: &'a DrawingArea<DB, Shift>,
    to_px: &'a dyn Fn(f64) -> i32,
    w: i32,
    h: i32,
}

/// Each run's downtime window as a shaded band, at least 4 px wide so that 40 ms on a 60 s
/// chart still shows.
fn draw_downtime_windows<DB: DrawingBackend>(f: &Frame<DB>, chart: &Chart, m: &Metrics) -> Res {
    for (ri, run) in chart.runs.iter().enumerate() {
        if let Some(d) = &run.downtime {
            let (a, b) = ((f.to_px)(d.start), (f.to_px)(d.end));
            let min_w = m.px(4.0);
            let (a, b) = if b - a < min_w {
                ((a + b) / 2 - min_w / 2, (a + b) / 2 + min_w / 2)
            } else {
                (a, b)
            };
            let c = rgb(report_colour(ri));
            f.plot
                .draw(&Rectangle::new(
                    [(a.max(0), 0), (b.min(f.w), f.h)],
                    c.mix(0.22).filled(),
                ))
                .map_err(err)?;
        }
    }

    Ok(())
}

/// A dashed vertical line at each migration status change.
fn draw_status_lines<DB: DrawingBackend>(f: &Frame<DB>, chart: &Chart) -> Res {
    for (ri, run) in chart.runs.iter().enumerate() {
        let c = rgb(report_colour(ri)).mix(0.6);
        for st in &run.statuses {
            let x = (f.to_px)(st.x);
            if (0..=f.w).contains(&x) {
                let pts = dash_path(
                    &[(f64::from(x), 0.0), (f64::from(x), f64::from(f.h))],
                    &[4.0, 4.0],
                );
                for p in pts {
                    let p: Vec<(i32, i32)> = p.iter().map(|q| (px(q.0), px(q.1))).collect();
                    f.plot
                        .draw(&PathElement::new(p, c.stroke_width(1)))
                        .map_err(err)?;
                }
            }
        }
    }

    Ok(())
}

/// Iteration markers on the x axis, a row per report in the bottom quarter of the plot,
/// numbered where the numbers fit.
fn draw_iteration_markers<DB: DrawingBackend>(f: &Frame<DB>, chart: &Chart, m: &Metrics) -> Res {
    let size = m.px(5.0);
    let num = m
        .font(m.small * 0.85)
        .pos(Pos::new(HPos::Center, VPos::Bottom));
    let full_step = 2 * size + px(m.small * 0.9);
    let runs = chart.runs.len().max(1) as i32;
    let step = full_step.min((f.h / 4 - size) / runs).max(size / 2);
    let numbered = step >= full_step;
    for (ri, run) in chart.runs.iter().enumerate() {
        let c = rgb(report_colour(ri));
        let mut last_right = i32::MIN;
        let y = f.h - size - 1 - ri as i32 * step;
        // Thousands of passes (a run that never converges) would stack thousands of
        // triangles on the same pixels: draw one per `size` pixels.
        let mut last_x = i32::MIN;
        for it in &run.iterations {
            let x = (f.to_px)(it.x);
            if !(0..=f.w).contains(&x) || x < last_x.saturating_add(size) {
                continue;
            }
            last_x = x;
            f.plot
                .draw(&TriangleMarker::new((x, y), size, c.filled()))
                .map_err(err)?;
            let t = it.iteration.to_string();
            let tw = text_width(f.plot, &t, &num);
            if numbered && x - tw / 2 > last_right + m.px(3.0) {
                f.plot
                    .draw(&Text::new(t, (x, y - size - 1), num.clone()))
                    .map_err(err)?;
                last_right = x + tw / 2;
            }
        }
    }
    Ok(())
}

/// Status and downtime labels in the band at the top, on a white backing.
fn draw_labels<DB: DrawingBackend>(f: &Frame<DB>, labels: &[Label], m: &Metrics) -> Res {
    let small = m.font(m.small);
    let row_h = m.label_row();
    for l in place_labels(f.plot, labels, f.to_px, f.w, f.h, m) {
        let top = m.px(3.0) + l.row as i32 * row_h;
        let backing = [(l.left, top), (l.left + l.width, top + row_h - 2)];
        f.plot
            .draw(&Rectangle::new(backing, WHITE.mix(0.85).filled()))
            .map_err(err)?;
        let style = small
            .clone()
            .color(&l.colour)
            .pos(Pos::new(HPos::Left, VPos::Center));
        let at = (l.left + m.px(3.0), top + (row_h - 2) / 2);
        f.plot.draw(&Text::new(l.text, at, style)).map_err(err)?;
    }
    Ok(())
}

/// Tick labels without trailing zeros: 0, 2.5, 10.
fn trim_number(v: f64) -> String {
    let s = format!("{v:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(format_ms(Some(45.0)), "45 ms");
        assert_eq!(format_ms(Some(3210.0)), "3.21 s");
        assert_eq!(format_ms(Some(65_000.0)), "65.0 s");
        assert_eq!(format_ms(None), "-");
        assert_eq!(format_bytes(Some(512)), "512 B");
        assert_eq!(format_bytes(Some(3 << 29)), "1.50 GiB");
        assert_eq!(format_bytes(None), "-");
        assert_eq!(trim_number(2.5), "2.5");
        assert_eq!(trim_number(10.0), "10");
        assert_eq!(trim_number(0.0), "0");
    }
}
