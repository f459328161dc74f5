//! The one font every chart uses, compiled into the binary.
//!
//! plotters is built with `ab_glyph` and without `ttf`, so it never asks fontconfig or the
//! file system for a font: a PNG has legible text on a machine with no fonts installed, and
//! looks the same everywhere. The font is DejaVu Sans 2.37 (Bitstream Vera licence, see
//! `assets/LICENSE-DejaVu.txt`), taken from Debian's `fonts-dejavu-core` package.

use std::sync::OnceLock;

use plotters::style::FontStyle;

/// The family name charts ask for. SVG files name it too, so a viewer without DejaVu Sans
/// falls back to its own sans-serif font.
pub const FAMILY: &str = "sans-serif";

pub(crate) static DEJAVU_SANS: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// Registers the embedded font with plotters; cheap to call more than once.
pub fn register() -> Result<(), String> {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        plotters::style::register_font(FAMILY, FontStyle::Normal, DEJAVU_SANS)
            .map_err(|_| "the embedded DejaVu Sans font is not a valid TrueType font".to_string())
    })
    .clone()
}

/// The embedded font, for drawing text without plotters (see [`crate::bitmap`]).
pub fn font() -> Result<ab_glyph::FontRef<'static>, String> {
    ab_glyph::FontRef::try_from_slice(DEJAVU_SANS)
        .map_err(|_| "the embedded DejaVu Sans font is not a valid TrueType font".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use plotters::prelude::*;

    #[test]
    fn registers_and_measures_text() {
        register().unwrap();
        register().unwrap();
        let font: FontDesc = (FAMILY, 20.0).into_font();
        let (w, h) = font.box_size("downtime").unwrap();
        assert!(w > 40 && h > 10, "{w}x{h}");
    }
}
