//! gp-plot: static SVG and PNG charts of one or many guestperf reports.
//!
//! It draws what the original `guestperf-plot.py` drew with plotly (guest memory update speed
//! in ms/GB on the left axis, host CPU utilization on the right, markers at each pass over
//! RAM), plus the destination after the switchover, the migration threads' CPU, the downtime
//! window and a table of each run, into a file that needs no JavaScript to view. It reads
//! reports written by `gp-collect` and original guestperf result files alike, only through
//! [`gp_records::report::Report`].
//!
//! Modules: [`series`] turns a report into lines and marks ([`model`]), [`decimate`] thins
//! lines to the chart's pixel columns, [`layout`] makes pixel decisions, [`render`] draws with
//! plotters, [`bitmap`] fixes text and thick lines on the PNG backend, [`font`] embeds the
//! font.

pub mod bitmap;
pub mod cli;
pub mod decimate;
pub mod font;
pub mod layout;
pub mod model;
pub mod render;
pub mod series;

use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use gp_records::report::Report;
use image::ImageEncoder as _;
use plotters::prelude::*;
use serde_json::error::Category;

use crate::model::{Run, Selection};
use crate::render::Chart;

/// Everything that can go wrong, each naming the file concerned.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error("cannot read report {path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is empty: expected a guestperf report (the JSON object gp-collect writes)")]
    EmptyFile { path: PathBuf },
    #[error("{path} is larger than {} MiB: not a guestperf report", MAX_REPORT_BYTES >> 20)]
    TooLarge { path: PathBuf },
    #[error(
        "{path} is not JSON (expected a guestperf report written by gp-collect or guestperf.py)"
    )]
    NotJson {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{path} is a stream of records, not a report: pipe it through gp-collect first (gp-collect < stream > report.json)")]
    RecordStream { path: PathBuf },
    #[error("{path} is JSON but not a guestperf report")]
    NotAReport {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{path} holds no data to plot: no guest timings, CPU samples or migration progress")]
    NothingToPlot { path: PathBuf },
    #[error("cannot tell the image format of {path}: use an .svg or .png file name")]
    UnknownFormat { path: PathBuf },
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot draw the chart: {0}")]
    Render(String),
}

impl gp_stage::Failure for PlotError {}

/// Output image formats, picked from the file name's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Svg,
    Png,
}

impl Format {
    pub fn from_path(path: &Path) -> Result<Format, PlotError> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("svg") => Ok(Format::Svg),
            Some("png") => Ok(Format::Png),
            _ => Err(PlotError::UnknownFormat {
                path: path.to_path_buf(),
            }),
        }
    }
}

/// What to plot and where.
#[derive(Debug, Clone)]
pub struct Options {
    pub reports: Vec<PathBuf>,
    pub output: PathBuf,
    pub width: u32,
    pub height: u32,
    /// `None`: no chart flag was given, use [`Selection::default_for`].
    pub selection: Option<Selection>,
    pub title: Option<String>,
}

/// Largest report gp-plot reads. gp-collect's report of a million records is 275 MiB; anything
/// past this (a wrong file, `/dev/zero`, an endless pipe) would only take the memory.
pub const MAX_REPORT_BYTES: u64 = 1 << 30;

/// Reads one report file, with an error that names the file and what is wrong with it.
///
/// The file is read whole and parsed from memory: about twice as fast as parsing from a
/// reader, for a peak of about 1.4 times the file's size (bench/plot.sh). At most
/// [`MAX_REPORT_BYTES`] are read.
pub fn load_report(path: &Path) -> Result<Report, PlotError> {
    use std::io::Read;
    let read_err = |source| PlotError::Read {
        path: path.into(),
        source,
    };
    let file = fs::File::open(path).map_err(read_err)?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    if size > MAX_REPORT_BYTES {
        return Err(PlotError::TooLarge { path: path.into() });
    }
    let mut bytes = Vec::with_capacity(size as usize);
    file.take(MAX_REPORT_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    if bytes.len() as u64 > MAX_REPORT_BYTES {
        return Err(PlotError::TooLarge { path: path.into() });
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(PlotError::EmptyFile { path: path.into() });
    }
    match serde_json::from_slice::<Report>(&bytes) {
        Ok(r) => Ok(r),
        Err(source) => {
            // An NDJSON record stream: the first line alone is an object with a "type".
            let first = bytes.split(|b| *b == b'\n').next().unwrap_or_default();
            let is_record = serde_json::from_slice::<serde_json::Value>(first)
                .ok()
                .is_some_and(|v| v.get("type").is_some_and(|t| t.is_string()));
            let path = path.into();
            Err(match source.classify() {
                _ if is_record => PlotError::RecordStream { path },
                Category::Data => PlotError::NotAReport { path, source },
                _ => PlotError::NotJson { path, source },
            })
        }
    }
}

/// Builds the chart of `reports` (already loaded, with their paths).
pub fn build_chart(
    reports: &[(PathBuf, Report)],
    selection: Option<Selection>,
    title: Option<String>,
) -> Chart {
    let sel = selection.unwrap_or_else(|| Selection::default_for(reports.len()));
    let paths: Vec<&Path> = reports.iter().map(|(p, _)| p.as_path()).collect();
    let labels = layout::short_names(&paths);
    let mut runs: Vec<Run> = reports
        .iter()
        .zip(&labels)
        .map(|((p, r), label)| Run::from_report(r, &p.display().to_string(), label, &sel))
        .collect();
    for run in &mut runs {
        keep_in_range(run);
    }
    let title = title.unwrap_or_else(|| match runs.as_slice() {
        [one] => format!("Migration of {} ({})", one.label, one.summary.scenario),
        many => format!("Migration comparison: {} reports", many.len()),
    });
    Chart {
        title,
        runs,
        migration_iters: sel.migration_iters,
    }
}

/// Latest time a chart shows, seconds from the start of a run (30 years). A report can hold
/// numbers out of any sense (times near the largest float); plotters needs finite axes and pixel
/// positions that fit an `i32`, and looks for tick marks forever on an infinite axis.
pub const TIME_LIMIT_S: f64 = 1e9;
/// Largest value (ms per GB, % of a CPU) a chart shows, for the same reason.
pub const VALUE_LIMIT: f64 = 1e6;

/// Drops the points and marks of `run` that are not finite or out of the limits above, and
/// keeps its time span within what is left.
fn keep_in_range(run: &mut Run) {
    let time = |x: f64| x.is_finite() && (0.0..=TIME_LIMIT_S).contains(&x);
    let value = |y: f64| y.is_finite() && y.abs() <= VALUE_LIMIT;
    for s in &mut run.series {
        s.points.retain(|&(x, y)| time(x) && value(y));
    }
    run.iterations.retain(|m| time(m.x));
    run.statuses.retain(|m| time(m.x));
    if run
        .downtime
        .as_ref()
        .is_some_and(|d| !time(d.start) || !time(d.end))
    {
        run.downtime = None;
    }
    let span = run
        .series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .chain(run.iterations.iter().map(|m| m.x))
        .chain(run.statuses.iter().map(|m| m.x))
        .chain(run.downtime.iter().map(|d| d.end))
        .fold(0.0, f64::max);
    if !time(run.x_max) || run.x_max < span {
        run.x_max = span.max(1.0);
    }
}

/// Something drawn on a plotters drawing area of any backend: gp-plot's [`Chart`], or another
/// tool's chart (gp-compare's) that wants the embedded font and the PNG fixes of
/// [`render_drawing`].
pub trait Drawing {
    /// Draws on `root`, which is already sized; errors are the backend's, as text.
    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, plotters::coord::Shift>,
    ) -> Result<(), String>;
}

impl Drawing for Chart {
    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, plotters::coord::Shift>,
    ) -> Result<(), String> {
        render::draw(root, self)
    }
}

/// Renders `chart` to an image in memory: SVG text or PNG bytes.
pub fn render_bytes(
    chart: &Chart,
    format: Format,
    width: u32,
    height: u32,
) -> Result<Vec<u8>, PlotError> {
    render_drawing(chart, format, width, height)
}

/// Renders any [`Drawing`] to an image in memory: SVG text, or PNG bytes with text drawn from
/// the embedded font by [`bitmap::BitmapFix`] (no fontconfig, no system fonts).
pub fn render_drawing(
    drawing: &impl Drawing,
    format: Format,
    width: u32,
    height: u32,
) -> Result<Vec<u8>, PlotError> {
    font::register().map_err(PlotError::Render)?;
    match format {
        Format::Svg => {
            let mut svg = String::new();
            {
                let root = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
                drawing.draw(&root).map_err(PlotError::Render)?;
            }
            Ok(svg.into_bytes())
        }
        Format::Png => {
            let mut rgb = vec![0u8; width as usize * height as usize * 3];
            {
                let bitmap = BitMapBackend::with_buffer(&mut rgb, (width, height));
                let font = font::font().map_err(PlotError::Render)?;
                let root = bitmap::BitmapFix::new(bitmap, font).into_drawing_area();
                drawing.draw(&root).map_err(PlotError::Render)?;
            }
            let mut png = Vec::new();
            image::codecs::png::PngEncoder::new(&mut png)
                .write_image(&rgb, width, height, image::ColorType::Rgb8)
                .map_err(|e| PlotError::Render(format!("PNG encoding failed: {e}")))?;
            Ok(png)
        }
    }
}

/// Writes `bytes` to `path`, replacing it.
fn write_output(path: &Path, bytes: &[u8]) -> Result<(), PlotError> {
    let werr = |source| PlotError::Write {
        path: path.into(),
        source,
    };
    let file = fs::File::create(path).map_err(werr)?;
    let mut w = BufWriter::new(file);
    w.write_all(bytes).map_err(werr)?;
    w.flush().map_err(werr)
}

/// The whole tool: load every report, draw, write the image.
pub fn run(opts: &Options) -> Result<(), PlotError> {
    let format = Format::from_path(&opts.output)?;
    let mut reports = Vec::with_capacity(opts.reports.len());
    for path in &opts.reports {
        let report = load_report(path)?;
        if !series::has_data(&report) {
            return Err(PlotError::NothingToPlot { path: path.clone() });
        }
        reports.push((path.clone(), report));
    }
    let chart = build_chart(&reports, opts.selection, opts.title.clone());
    drop(reports);
    let bytes = render_bytes(&chart, format, opts.width, opts.height)?;
    write_output(&opts.output, &bytes)
}
