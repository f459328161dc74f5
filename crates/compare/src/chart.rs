//! The chart: one panel per figure, one column per scenario, every run a dot.
//!
//! So that scenarios of very different sizes share an axis, values are drawn relative to arm
//! A's median of that scenario: percent for ratio figures, the figure's unit for difference
//! figures. A's runs sit left of each column (blue), B's right (orange); a bar marks each
//! arm's median, a whisker A's median interval and B's interval of the change. The grey band is
//! the minimum effect. Above each column: the verdict and the change. Drawn with plotters
//! through gp-plot's [`gp_plot::render_drawing`] (its embedded font and PNG text path).

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::analysis::{Comparison, FigureComparison, Verdict};
use crate::figures::{Scale, FIGURES};
use crate::output::format_change;

const BLUE: RGBColor = RGBColor(31, 119, 180);
const ORANGE: RGBColor = RGBColor(230, 110, 10);
const RED: RGBColor = RGBColor(200, 30, 30);
const GREEN: RGBColor = RGBColor(20, 140, 60);
const GREY: RGBColor = RGBColor(110, 110, 110);

/// Pixels per scenario column, and per panel.
const COLUMN: u32 = 150;
const PANEL: u32 = 260;
const LEFT: u32 = 90;
const TITLE: u32 = 60;

/// The chart of a comparison, ready for [`gp_plot::render_drawing`].
#[derive(Debug)]
pub struct CompareChart<'a> {
    pub comparison: &'a Comparison,
    /// Figure ids with something to draw, in table order.
    figures: Vec<&'static str>,
}

impl<'a> CompareChart<'a> {
    pub fn new(comparison: &'a Comparison) -> Self {
        let figures = FIGURES
            .iter()
            .filter(|f| {
                comparison.scenarios.iter().any(|s| {
                    s.figures
                        .iter()
                        .any(|fc| fc.id == f.id && fc.a.n > 0 && fc.b.n > 0)
                })
            })
            .map(|f| f.id)
            .collect();
        CompareChart {
            comparison,
            figures,
        }
    }

    /// Image size for this many scenarios and figures.
    pub fn size(&self) -> (u32, u32) {
        let columns = self.comparison.scenarios.len().max(1) as u32;
        let panels = self.figures.len().max(1) as u32;
        (
            (LEFT + 40 + columns * COLUMN).clamp(640, 16_000),
            (TITLE + panels * PANEL).min(16_000),
        )
    }
}

fn err<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

fn font(size: f64) -> TextStyle<'static> {
    TextStyle::from((gp_plot::font::FAMILY, size).into_font())
}

/// A value relative to A's median in the figure's change unit.
fn relative(f: &FigureComparison, v: f64) -> Option<f64> {
    let a = f.a.median?;
    match f.scale {
        Scale::Ratio if a > 0.0 => Some((v / a - 1.0) * 100.0),
        Scale::Ratio => None,
        Scale::Difference => Some(v - a),
    }
}

impl gp_plot::Drawing for CompareChart<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let c = self.comparison;
        root.fill(&WHITE).map_err(err)?;
        let (w, _) = root.dim_in_pixel();
        root.draw(&Text::new(
            format!(
                "{} (orange) against {} (blue): every run, relative to {}'s median",
                c.b.label, c.a.label, c.a.label
            ),
            (w as i32 / 2, 12),
            font(20.0).pos(Pos::new(HPos::Center, VPos::Top)),
        ))
        .map_err(err)?;
        root.draw(&Text::new(
            format!(
                "bars: medians; whiskers: {:.0} % intervals; grey band: the minimum effect; verdicts need q < {}",
                c.options.confidence * 100.0,
                c.options.alpha
            ),
            (w as i32 / 2, 38),
            font(13.0).pos(Pos::new(HPos::Center, VPos::Top)),
        ))
        .map_err(err)?;
        if self.figures.is_empty() {
            root.draw(&Text::new(
                "no figure has completed runs on both sides",
                (w as i32 / 2, 100),
                font(16.0).pos(Pos::new(HPos::Center, VPos::Top)),
            ))
            .map_err(err)?;
            return Ok(());
        }
        let (_, body) = root.split_vertically(TITLE);
        let panels = body.split_evenly((self.figures.len(), 1));
        for (panel, id) in panels.iter().zip(&self.figures) {
            self.draw_panel(root, panel, id)?;
        }
        root.present().map_err(err)
    }
}

impl CompareChart<'_> {
    fn draw_panel<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        panel: &DrawingArea<DB, Shift>,
        id: &str,
    ) -> Result<(), String> {
        let c = self.comparison;
        let cols: Vec<Option<&FigureComparison>> = c
            .scenarios
            .iter()
            .map(|s| {
                s.figures
                    .iter()
                    .find(|f| f.id == id && f.a.n > 0 && f.b.n > 0)
            })
            .collect();
        let Some(first) = cols.iter().flatten().next() else {
            return Ok(());
        };
        let min_effect = match first.scale {
            Scale::Ratio => c.options.min_effect * 100.0,
            Scale::Difference => c.options.min_effect_points,
        };
        // The y range: every dot and interval, and the band.
        let mut lo = -min_effect;
        let mut hi = min_effect;
        for f in cols.iter().flatten() {
            let values = f.a.values.iter().chain(&f.b.values);
            for y in values
                .filter_map(|v| relative(f, *v))
                .chain(f.ci.iter().flatten().copied())
            {
                if y.is_finite() {
                    lo = lo.min(y);
                    hi = hi.max(y);
                }
            }
        }
        let pad = (hi - lo).max(1.0) * 0.12;
        let (lo, hi) = (lo - pad, hi + pad * 2.5);
        let n = cols.len() as f64;
        let unit = match first.scale {
            Scale::Ratio => "% vs A's median".to_string(),
            Scale::Difference if first.change_unit == "points" => "points vs A's median".into(),
            Scale::Difference => format!("{} vs A's median", first.change_unit),
        };
        let mut chart = ChartBuilder::on(panel)
            .margin_top(8)
            .margin_right(20)
            .caption(format!("{} ({})", first.label, unit), font(15.0))
            .x_label_area_size(28)
            .y_label_area_size(LEFT)
            .build_cartesian_2d(-0.5..n - 0.5, lo..hi)
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .x_label_formatter(&|_| String::new())
            .y_labels(6)
            .y_label_style(font(12.0))
            .max_light_lines(1)
            .light_line_style(RGBColor(240, 240, 240))
            .draw()
            .map_err(err)?;
        // The minimum-effect band and the zero line.
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(-0.5, -min_effect), (n - 0.5, min_effect)],
                RGBColor(225, 225, 225).mix(0.6).filled(),
            )))
            .map_err(err)?;
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(-0.5, 0.0), (n - 0.5, 0.0)],
                GREY.stroke_width(1),
            )))
            .map_err(err)?;
        for (i, f) in cols.iter().enumerate() {
            let x = i as f64;
            let name = &c.scenarios[i].name;
            // The scenario's name under its column, cut to fit.
            let (px, py) = chart.backend_coord(&(x, lo));
            root.draw(&Text::new(
                fit(name, COLUMN as usize / 8),
                (px, py + 6),
                font(12.0).pos(Pos::new(HPos::Center, VPos::Top)),
            ))
            .map_err(err)?;
            let Some(f) = f else { continue };
            for (values, side, colour) in [(&f.a.values, -0.2, BLUE), (&f.b.values, 0.2, ORANGE)] {
                let k = values.len().max(2) as f64 - 1.0;
                let dots = values.iter().enumerate().filter_map(|(j, v)| {
                    let jitter = (j as f64 / k - 0.5) * 0.16;
                    relative(f, *v)
                        .map(|y| Circle::new((x + side + jitter, y), 3, colour.mix(0.7).filled()))
                });
                chart.draw_series(dots).map_err(err)?;
            }
            // Medians: A at 0, B at the change (one host), with their whiskers.
            let b_med = f.b.median.and_then(|m| relative(f, m));
            let bars = [(Some(0.0), -0.2, BLUE), (b_med, 0.2, ORANGE)];
            for (y, side, colour) in bars {
                if let Some(y) = y {
                    chart
                        .draw_series(std::iter::once(PathElement::new(
                            vec![(x + side - 0.13, y), (x + side + 0.13, y)],
                            colour.stroke_width(3),
                        )))
                        .map_err(err)?;
                }
            }
            if let Some([l, h]) = f.a.median_ci {
                if let (Some(l), Some(h)) = (relative(f, l), relative(f, h)) {
                    whisker(&mut chart, x - 0.2, l, h, BLUE)?;
                }
            }
            if let Some([l, h]) = f.ci {
                whisker(&mut chart, x + 0.2, l, h, ORANGE)?;
            }
            let (text, colour) = match f.verdict {
                Verdict::Worse => (format!("worse {}", format_change(f.change, f)), RED),
                Verdict::Better => (format!("better {}", format_change(f.change, f)), GREEN),
                Verdict::NoChange => (format!("no change ({})", format_change(f.change, f)), GREY),
                Verdict::NotCompared => ("not compared".to_string(), GREY),
            };
            let (px, py) = chart.backend_coord(&(x, hi));
            root.draw(&Text::new(
                text,
                (px, py + 4),
                font(12.0)
                    .color(&colour)
                    .pos(Pos::new(HPos::Center, VPos::Top)),
            ))
            .map_err(err)?;
        }
        Ok(())
    }
}

fn whisker<DB: DrawingBackend>(
    chart: &mut ChartContext<
        DB,
        Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
    >,
    x: f64,
    lo: f64,
    hi: f64,
    colour: RGBColor,
) -> Result<(), String> {
    chart
        .draw_series([
            PathElement::new(vec![(x, lo), (x, hi)], colour.stroke_width(2)),
            PathElement::new(vec![(x - 0.05, lo), (x + 0.05, lo)], colour.stroke_width(2)),
            PathElement::new(vec![(x - 0.05, hi), (x + 0.05, hi)], colour.stroke_width(2)),
        ])
        .map_err(err)?;
    Ok(())
}

/// `name` cut to `chars` characters with an ellipsis.
fn fit(name: &str, chars: usize) -> String {
    if name.chars().count() <= chars {
        name.to_string()
    } else {
        let mut s: String = name.chars().take(chars.saturating_sub(1)).collect();
        s.push('…');
        s
    }
}
