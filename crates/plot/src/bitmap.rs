//! A bitmap backend wrapper that fixes two flaws of plotters 0.3.7's software rasterizer.
//!
//! - Text: its `ab_glyph` path positions each glyph at its advance without the glyph's side
//!   bearing and rounds each glyph's vertical offset on its own, so in a PNG an `i` sits too
//!   far left and a `v` a pixel too high ("acti ve"). [`BitmapFix`] draws text itself with
//!   `ab_glyph`: one baseline per string, each glyph at its own outline bounds. It keeps
//!   plotters' layout box (advance widths plus kerning, height `size / 1.24`), so text measured
//!   for the layout is the text drawn.
//! - Thick lines: a path wider than 1 px is turned into one polygon whose inner corners are
//!   not capped, so a line that doubles back on itself (a min/max-decimated series does, every
//!   pixel column) grows spikes far past its points. [`BitmapFix`] draws each segment on its
//!   own with a round join at each vertex.
//!
//! Everything else passes through unchanged. SVG output needs neither: viewers draw SVG text
//! and strokes themselves.

use ab_glyph::{point, Font, FontRef, ScaleFont};
use plotters_backend::text_anchor::{HPos, VPos};
use plotters_backend::{
    BackendColor, BackendCoord, BackendStyle, BackendTextStyle, DrawingBackend, DrawingErrorKind,
};

/// Where the baseline sits in plotters' layout box, as a fraction of its height: puts capitals
/// and lower-case letters visually centred on a `VPos::Center` anchor.
const BASELINE: f32 = 0.86;

/// `inner` with text drawn in `font` by [`BitmapFix::draw_text`] and thick paths drawn a
/// segment at a time by [`BitmapFix::draw_path`].
pub struct BitmapFix<B> {
    inner: B,
    font: FontRef<'static>,
}

impl<B> BitmapFix<B> {
    pub fn new(inner: B, font: FontRef<'static>) -> Self {
        BitmapFix { inner, font }
    }
}

/// Glyph origins along a string at `size`: (glyph id, x of its origin) from x = 0, and the
/// total advance. Matches plotters' width estimate: advances plus kerning.
fn layout(font: &FontRef<'static>, size: f32, text: &str) -> (Vec<(ab_glyph::GlyphId, f32)>, f32) {
    let scaled = font.as_scaled(size);
    let mut caret = 0.0f32;
    let mut prev = None;
    let mut out = Vec::with_capacity(text.len());
    for c in text.chars() {
        let id = scaled.glyph_id(c);
        if let Some(p) = prev {
            caret += scaled.kern(p, id);
        }
        out.push((id, caret));
        caret += scaled.h_advance(id);
        prev = Some(id);
    }
    (out, caret)
}

impl<B: DrawingBackend> DrawingBackend for BitmapFix<B> {
    type ErrorType = B::ErrorType;

    fn get_size(&self) -> (u32, u32) {
        self.inner.get_size()
    }

    fn ensure_prepared(&mut self) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.ensure_prepared()
    }

    fn present(&mut self) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.present()
    }

    fn draw_pixel(
        &mut self,
        point: BackendCoord,
        color: BackendColor,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.draw_pixel(point, color)
    }

    fn draw_line<S: BackendStyle>(
        &mut self,
        from: BackendCoord,
        to: BackendCoord,
        style: &S,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.draw_line(from, to, style)
    }

    fn draw_rect<S: BackendStyle>(
        &mut self,
        upper_left: BackendCoord,
        bottom_right: BackendCoord,
        style: &S,
        fill: bool,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.draw_rect(upper_left, bottom_right, style, fill)
    }

    fn draw_path<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        path: I,
        style: &S,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        let width = style.stroke_width();
        if width <= 1 {
            return self.inner.draw_path(path, style);
        }
        let mut points: Vec<BackendCoord> = path.into_iter().collect();
        points.dedup();
        if points.len() <= 2 {
            return self.inner.draw_path(points, style);
        }
        for segment in points.windows(2) {
            self.inner.draw_path(segment.iter().copied(), style)?;
        }
        let colour = style.color();
        for p in &points[1..points.len() - 1] {
            self.inner.draw_circle(*p, width / 2, &colour, true)?;
        }
        Ok(())
    }

    fn draw_circle<S: BackendStyle>(
        &mut self,
        center: BackendCoord,
        radius: u32,
        style: &S,
        fill: bool,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.draw_circle(center, radius, style, fill)
    }

    fn fill_polygon<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        vert: I,
        style: &S,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.fill_polygon(vert, style)
    }

    fn blit_bitmap(
        &mut self,
        pos: BackendCoord,
        size: (u32, u32),
        src: &[u8],
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.blit_bitmap(pos, size, src)
    }

    fn draw_text<S: BackendTextStyle>(
        &mut self,
        text: &str,
        style: &S,
        pos: BackendCoord,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        let color = style.color();
        if color.alpha == 0.0 || text.is_empty() {
            return Ok(());
        }
        let size = style.size() as f32;
        let (glyphs, width) = layout(&self.font, size, text);
        let height = size / 1.24;
        let dx = match style.anchor().h_pos {
            HPos::Left => 0.0,
            HPos::Right => -width,
            HPos::Center => -width / 2.0,
        };
        let top = match style.anchor().v_pos {
            VPos::Top => 0.0,
            VPos::Center => -height / 2.0,
            VPos::Bottom => -height,
        };
        let baseline = top + height * BASELINE;
        let trans = style.transform();
        let (w, h) = self.get_size();
        let scaled = self.font.as_scaled(size);
        // Coverage per pixel, then blended once: glyphs that touch do not double-draw.
        let mut pixels: Vec<(i32, i32, f32)> = Vec::new();
        for (id, x) in glyphs {
            let glyph = id.with_scale_and_position(scaled.scale(), point(dx + x, baseline));
            if let Some(outline) = self.font.outline_glyph(glyph) {
                let b = outline.px_bounds();
                outline.draw(|gx, gy, c| {
                    if c > 0.0 {
                        pixels.push((b.min.x as i32 + gx as i32, b.min.y as i32 + gy as i32, c));
                    }
                });
            }
        }
        for (x, y, c) in pixels {
            let (x, y) = trans.transform(x, y);
            let (x, y) = (pos.0 + x, pos.1 + y);
            if x >= 0 && y >= 0 && (x as u32) < w && (y as u32) < h {
                self.inner
                    .draw_pixel((x, y), color.mix(f64::from(c.min(1.0))))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plotters::prelude::*;

    const W: u32 = 300;
    const H: u32 = 80;

    /// Renders `text` in black at `size` px from (10, 10), with [`BitmapFix`] or with plotters'
    /// own text path; returns the RGB buffer.
    fn render_with(text: &str, size: f64, fix: bool) -> Vec<u8> {
        crate::font::register().unwrap();
        let mut buf = vec![255u8; (W * H * 3) as usize];
        {
            let style = TextStyle::from((crate::font::FAMILY, size).into_font());
            let bm = BitMapBackend::with_buffer(&mut buf, (W, H));
            if fix {
                let area = BitmapFix::new(bm, crate::font::font().unwrap()).into_drawing_area();
                area.draw(&Text::new(text, (10, 10), style)).unwrap();
            } else {
                let area = bm.into_drawing_area();
                area.draw(&Text::new(text, (10, 10), style)).unwrap();
            }
        }
        buf
    }

    fn render(text: &str, size: f64) -> Vec<u8> {
        render_with(text, size, true)
    }

    fn dark(buf: &[u8], x: u32, y: u32) -> bool {
        buf[((y * W + x) * 3) as usize] < 128
    }

    /// Runs of inked columns (letters, at these sizes), as (first, last).
    fn stems(buf: &[u8]) -> Vec<(u32, u32)> {
        let cols: Vec<u32> = (0..W)
            .filter(|&x| (0..H).any(|y| dark(buf, x, y)))
            .collect();
        let mut out: Vec<(u32, u32)> = Vec::new();
        for c in cols {
            match out.last_mut() {
                Some(run) if run.1 + 1 == c => run.1 = c,
                _ => out.push((c, c)),
            }
        }
        out
    }

    fn top_row(buf: &[u8], cols: (u32, u32)) -> u32 {
        (0..H)
            .filter(|&y| (cols.0..=cols.1).any(|x| dark(buf, x, y)))
            .min()
            .unwrap()
    }

    #[test]
    fn text_fills_plotters_layout_box() {
        crate::font::register().unwrap();
        let style = TextStyle::from((crate::font::FAMILY, 40.0).into_font());
        let (est_w, _) = style.font.box_size("active").unwrap();
        let s = stems(&render("active", 40.0));
        let (first, last) = (s[0].0, s[s.len() - 1].1);
        assert!((10..=14).contains(&first), "ink starts at {first}");
        assert!(
            (last as i32 - (10 + est_w as i32)).abs() <= 4,
            "ink ends at {last}, box {est_w}"
        );
    }

    #[test]
    fn small_letters_share_one_baseline_and_even_spacing() {
        // At chart sizes plotters' own path puts x-height letters at different heights
        // ("xvxav" tops 10,10,10,11,10 at 12.5 px; 10,11,10,10,11 at 14 px) and spaces the
        // stems of "iiii" 2, 3, 3 px apart.
        for size in [12.5, 14.0, 17.5] {
            let buf = render("xvxav", size);
            let letters = stems(&buf);
            assert_eq!(letters.len(), 5, "{size}: {letters:?}");
            let tops: Vec<u32> = letters.iter().map(|l| top_row(&buf, *l)).collect();
            assert!(tops.iter().all(|t| *t == tops[0]), "{size}: tops {tops:?}");
        }
        let s = stems(&render("iiii", 12.5));
        assert_eq!(s.len(), 4, "{s:?}");
        let gaps: Vec<u32> = s.windows(2).map(|w| w[1].0 - w[0].0).collect();
        assert!(gaps.iter().all(|g| *g == gaps[0]), "{gaps:?}");
    }

    #[test]
    fn thick_zigzags_stay_within_their_points() {
        // A min/max-decimated line: straight up and down between y = 30 and y = 60.
        let mut buf = vec![255u8; (W * H * 3) as usize];
        {
            let bm = BitMapBackend::with_buffer(&mut buf, (W, H));
            let area = BitmapFix::new(bm, crate::font::font().unwrap()).into_drawing_area();
            let zigzag: Vec<(i32, i32)> = (0..100)
                .map(|i| (50 + i, if i % 2 == 0 { 30 } else { 60 }))
                .collect();
            area.draw(&PathElement::new(zigzag, Color::stroke_width(&BLACK, 3)))
                .unwrap();
        }
        let rows: Vec<u32> = (0..H)
            .filter(|&y| (0..W).any(|x| dark(&buf, x, y)))
            .collect();
        let (top, bottom) = (rows[0], rows[rows.len() - 1]);
        assert!(top >= 27 && bottom <= 63, "ink from row {top} to {bottom}");
    }

    #[test]
    fn rotated_text_is_drawn_rotated() {
        crate::font::register().unwrap();
        let mut buf = vec![255u8; (W * H * 3) as usize];
        {
            let style = TextStyle::from((crate::font::FAMILY, 14.0).into_font())
                .transform(FontTransform::Rotate270);
            let bm = BitMapBackend::with_buffer(&mut buf, (W, H));
            let area = BitmapFix::new(bm, crate::font::font().unwrap()).into_drawing_area();
            area.draw(&Text::new("downtime", (20, 70), style)).unwrap();
        }
        // Rotated a quarter turn: the ink is taller than wide.
        let inked: Vec<(u32, u32)> = (0..W)
            .flat_map(|x| (0..H).map(move |y| (x, y)))
            .filter(|&(x, y)| dark(&buf, x, y))
            .collect();
        let (xs, ys): (Vec<u32>, Vec<u32>) = inked.into_iter().unzip();
        let width = xs.iter().max().unwrap() - xs.iter().min().unwrap();
        let height = ys.iter().max().unwrap() - ys.iter().min().unwrap();
        assert!(height > 3 * width, "{width}x{height}");
    }
}
