//! Pixel layout decisions that do not need a drawing backend: label stacking, dash patterns,
//! axis tops, colours and short report names. Kept apart from the drawing code so they are
//! unit-tested.

use std::path::Path;

/// An RGB colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rgb(pub u8, pub u8, pub u8);

/// One colour per report, chosen to stay distinct from each other and for colour-blind readers
/// (the Okabe-Ito set, darkest first so that thin lines stay visible on white).
pub const REPORT_COLOURS: [Rgb; 8] = [
    Rgb(0, 114, 178),   // blue
    Rgb(213, 94, 0),    // vermillion
    Rgb(0, 158, 115),   // bluish green
    Rgb(204, 121, 167), // reddish purple
    Rgb(230, 159, 0),   // orange
    Rgb(86, 180, 233),  // sky blue
    Rgb(0, 0, 0),       // black
    Rgb(240, 228, 66),  // yellow
];

/// The colour of report `index` (cycling when there are more reports than colours).
pub fn report_colour(index: usize) -> Rgb {
    REPORT_COLOURS[index % REPORT_COLOURS.len()]
}

/// A variant of `base` for the `i`-th of `n` lines of the same kind within one report: shades
/// from darker to lighter so the threads of one report stay recognisably that report's colour.
pub fn shade(base: Rgb, i: usize, n: usize) -> Rgb {
    if n <= 1 {
        return base;
    }
    // -0.35 (towards black) .. +0.35 (towards white)
    let t = -0.35 + 0.7 * i as f64 / (n - 1) as f64;
    mix(base, t)
}

/// Lighter (t > 0, towards white) or darker (t < 0, towards black) by fraction |t|.
pub fn mix(c: Rgb, t: f64) -> Rgb {
    let f = |v: u8| -> u8 {
        let v = f64::from(v);
        let out = if t >= 0.0 {
            v + (255.0 - v) * t
        } else {
            v * (1.0 + t)
        };
        out.round().clamp(0.0, 255.0) as u8
    };
    Rgb(f(c.0), f(c.1), f(c.2))
}

/// The pixel spans `[x0, x1)` of consecutive bar segments of `values`, a bar `width` pixels
/// long standing for `scale` (the largest total of the bars drawn together). Each segment's
/// edges are rounded from the running sum, so the segments tile the bar without gaps.
pub fn bar_segments(values: &[f64], scale: f64, width: i32) -> Vec<(i32, i32)> {
    let mut out = Vec::with_capacity(values.len());
    if scale <= 0.0 {
        return out;
    }
    let mut sum = 0.0;
    let mut x0 = 0;
    for v in values {
        sum += v.max(0.0);
        let x1 = (sum / scale * f64::from(width)).round() as i32;
        out.push((x0, x1));
        x0 = x1;
    }
    out
}

/// Colour of a downtime breakdown step: blues for the source's steps, oranges for the
/// destination's, shaded by position among that VM's steps.
pub fn step_colour(name: &str, i: usize, n: usize) -> Rgb {
    let base = if name.starts_with("dst-") {
        REPORT_COLOURS[4]
    } else {
        REPORT_COLOURS[5]
    };
    shade(mix(base, -0.15), i, n)
}

/// Stacks labels so that none overlaps another: each label, given as (left x, width) in pixels,
/// gets the lowest row in which it clears every label already placed by `gap` pixels.
/// Returns the row of each label, in input order.
pub fn stack_labels(labels: &[(i32, i32)], gap: i32) -> Vec<usize> {
    let mut order: Vec<usize> = (0..labels.len()).collect();
    order.sort_by_key(|&i| labels[i].0);
    // Right edge of the last label in each row.
    let mut row_end: Vec<i32> = Vec::new();
    let mut rows = vec![0; labels.len()];
    for i in order {
        let (x, w) = labels[i];
        let row = match row_end.iter().position(|&end| x >= end + gap) {
            Some(r) => r,
            None => {
                row_end.push(i32::MIN);
                row_end.len() - 1
            }
        };
        row_end[row] = x + w;
        rows[i] = row;
    }
    rows
}

/// Short names for report files, for legends: the file name without `.json`, with as many
/// parent directories as it takes to tell reports apart (`a/report` and `b/report`).
pub fn short_names(paths: &[&Path]) -> Vec<String> {
    let comps: Vec<Vec<String>> = paths
        .iter()
        .map(|p| {
            let mut c: Vec<String> = p
                .iter()
                .map(|s| s.to_string_lossy().into_owned())
                .filter(|s| s != "/")
                .collect();
            if let Some(last) = c.last_mut() {
                if let Some(stem) = last.strip_suffix(".json") {
                    *last = stem.to_string();
                }
            }
            c
        })
        .collect();
    let name = |c: &Vec<String>, depth: usize| -> String {
        let start = c.len().saturating_sub(depth);
        c[start..].join("/")
    };
    let max_depth = comps.iter().map(Vec::len).max().unwrap_or(1);
    let mut depth = 1;
    loop {
        let names: Vec<String> = comps.iter().map(|c| name(c, depth)).collect();
        let unique = names.iter().enumerate().all(|(i, n)| {
            names
                .iter()
                .enumerate()
                .all(|(j, m)| i == j || n != m || paths[i] == paths[j])
        });
        if unique || depth >= max_depth {
            return names;
        }
        depth += 1;
    }
}

/// Shortens `text` to at most `max_chars` characters, ending in an ellipsis when cut.
pub fn ellipsize(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text.to_string();
    }
    let keep: String = text.chars().take(max_chars.saturating_sub(1)).collect();
    format!("{keep}…")
}

/// Shortens `text` to at most `max_chars` characters by cutting its start (for paths, whose
/// end is the telling part).
pub fn ellipsize_start(text: &str, max_chars: usize) -> String {
    let n = text.chars().count();
    if n <= max_chars {
        return text.to_string();
    }
    let keep: String = text.chars().skip(n - max_chars.saturating_sub(1)).collect();
    format!("…{keep}")
}

/// The top of an axis for `values`: their maximum, unless a few outliers tower over the rest,
/// so that one 300 ms stall in 20 ms chunks does not flatten every other point against the
/// axis. The reference level is the larger of the 95th percentile and 3 times the median;
/// when the maximum is above twice that, the top is 1.5 times the reference and the points
/// above it are cut off. Returns (top, whether points are cut off).
pub fn robust_top(mut values: Vec<f64>) -> (f64, bool) {
    values.retain(|v| v.is_finite());
    if values.is_empty() {
        return (0.0, false);
    }
    let max = values.iter().copied().fold(f64::MIN, f64::max);
    let mut quantile = |q: f64| {
        let k = ((values.len() - 1) as f64 * q).round() as usize;
        *values.select_nth_unstable_by(k, f64::total_cmp).1
    };
    let reference = quantile(0.95).max(3.0 * quantile(0.5));
    if reference > 0.0 && max > 2.0 * reference {
        (1.5 * reference, true)
    } else {
        (max, false)
    }
}

/// A "nice" axis maximum at or above `v`: 1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6 or 8 times a power of
/// ten, so the axis wastes at most a fifth of the plot.
pub fn nice_ceiling(v: f64) -> f64 {
    if !(v.is_finite() && v > 0.0) {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    for m in [1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0] {
        if m * p >= v * (1.0 - 1e-12) {
            return m * p;
        }
    }
    10.0 * p
}

/// Cuts a polyline (pixel coordinates) into the "on" pieces of a dash `pattern`
/// (on, off, on, off, ... lengths in pixels, repeated). The pattern runs on along the whole
/// line, across its vertices, as a stroke-dasharray does. An empty or all-zero pattern gives
/// the line back whole.
pub fn dash_path(points: &[(f64, f64)], pattern: &[f64]) -> Vec<Vec<(f64, f64)>> {
    let period: f64 = pattern.iter().sum();
    if points.len() < 2 || pattern.is_empty() || period <= 0.0 {
        return if points.is_empty() {
            Vec::new()
        } else {
            vec![points.to_vec()]
        };
    }
    let mut out = Vec::new();
    let mut current: Vec<(f64, f64)> = vec![points[0]];
    let mut idx = 0; // position in the pattern
    let mut left = pattern[0]; // length left in the current pattern element
    let on = |i: usize| i % 2 == 0;
    for w in points.windows(2) {
        let (mut a, b) = (w[0], w[1]);
        let mut seg = ((b.0 - a.0).powi(2) + (b.1 - a.1).powi(2)).sqrt();
        while seg > 0.0 {
            if left >= seg {
                left -= seg;
                if on(idx) {
                    current.push(b);
                }
                seg = 0.0;
            } else {
                let t = left / seg;
                let p = (a.0 + (b.0 - a.0) * t, a.1 + (b.1 - a.1) * t);
                if on(idx) {
                    current.push(p);
                    out.push(std::mem::take(&mut current));
                } else {
                    current = vec![p];
                }
                seg -= left;
                a = p;
                idx = (idx + 1) % pattern.len();
                left = pattern[idx];
            }
        }
    }
    if on(idx) && current.len() > 1 {
        out.push(current);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_far_apart_share_a_row_close_ones_stack() {
        // "active" at 100, "postcopy-active" 5 px later, "completed" far away.
        let rows = stack_labels(&[(100, 40), (105, 90), (400, 60)], 4);
        assert_eq!(rows, vec![0, 1, 0]);
        // A fourth label overlapping both rows goes to a third.
        let rows = stack_labels(&[(100, 40), (105, 90), (120, 30)], 4);
        assert_eq!(rows, vec![0, 1, 2]);
        // ... but one that clears row 0 goes back there.
        let rows = stack_labels(&[(100, 40), (105, 90), (150, 30)], 4);
        assert_eq!(rows, vec![0, 1, 0]);
    }

    #[test]
    fn short_names_disambiguate_by_parent_directory() {
        let a = Path::new("/tmp/runs/a/report.json");
        let b = Path::new("/tmp/runs/b/report.json");
        let c = Path::new("precopy.json");
        assert_eq!(
            short_names(&[a, b, c]),
            vec!["a/report", "b/report", "precopy"]
        );
        assert_eq!(short_names(&[c]), vec!["precopy"]);
        // The same file twice stays short.
        assert_eq!(short_names(&[c, c]), vec!["precopy", "precopy"]);
    }

    #[test]
    fn shades_stay_distinct_and_in_range() {
        let base = report_colour(0);
        let s: Vec<Rgb> = (0..4).map(|i| shade(base, i, 4)).collect();
        for w in s.windows(2) {
            assert_ne!(w[0], w[1]);
        }
        assert_eq!(shade(base, 0, 1), base);
        assert_eq!(mix(Rgb(100, 100, 100), 1.0), Rgb(255, 255, 255));
        assert_eq!(mix(Rgb(100, 100, 100), -1.0), Rgb(0, 0, 0));
    }

    #[test]
    fn dashes_follow_the_pattern_across_vertices() {
        // A 20 px horizontal line then 10 px down, pattern 6 on / 4 off.
        let d = dash_path(&[(0.0, 0.0), (20.0, 0.0), (20.0, 10.0)], &[6.0, 4.0]);
        let len = |seg: &Vec<(f64, f64)>| -> f64 {
            seg.windows(2)
                .map(|w| ((w[1].0 - w[0].0).powi(2) + (w[1].1 - w[0].1).powi(2)).sqrt())
                .sum()
        };
        assert_eq!(d.len(), 3);
        assert_eq!(d[0], vec![(0.0, 0.0), (6.0, 0.0)]);
        assert_eq!(d[1], vec![(10.0, 0.0), (16.0, 0.0)]);
        // The gap ends on the corner, so the third dash starts there and runs down.
        assert_eq!(d[2], vec![(20.0, 0.0), (20.0, 6.0)]);
        assert!(d.iter().all(|s| (len(s) - 6.0).abs() < 1e-9));
        // A dash that turns a corner keeps the corner point.
        let d = dash_path(&[(0.0, 0.0), (3.0, 0.0), (3.0, 10.0)], &[6.0, 4.0]);
        assert_eq!(d[0], vec![(0.0, 0.0), (3.0, 0.0), (3.0, 3.0)]);
        // No pattern: the line whole.
        assert_eq!(dash_path(&[(0.0, 0.0), (1.0, 1.0)], &[]).len(), 1);
        assert!(dash_path(&[], &[1.0, 1.0]).is_empty());
    }

    #[test]
    fn robust_top_cuts_towering_outliers_only() {
        let mut v = vec![1000.0; 1000];
        assert_eq!(robust_top(v.clone()), (1000.0, false));
        v[500] = 45_000.0; // one stall: cut at 1.5 x 3 x median
        assert_eq!(robust_top(v.clone()), (4500.0, true));
        v[500] = 5000.0; // a slow chunk, not an outlier
        assert_eq!(robust_top(v.clone()), (5000.0, false));
        // A post-copy phase a quarter of the run long, 8x slower: part of the picture.
        let mut pc = vec![400.0; 750];
        pc.extend(vec![3200.0; 250]);
        assert_eq!(robust_top(pc), (3200.0, false));
        assert_eq!(robust_top(vec![]), (0.0, false));
        assert_eq!(robust_top(vec![f64::NAN, 3.0]), (3.0, false));
    }

    #[test]
    fn bar_segments_tile_the_bar() {
        let segs = bar_segments(&[0.086, 6.892, 0.752, 1.131, 0.989], 19.7, 400);
        assert_eq!(segs.first().unwrap().0, 0);
        assert_eq!(segs.last().unwrap().1, 200);
        assert!(segs.windows(2).all(|w| w[0].1 == w[1].0));
        assert_eq!(segs[1], (2, 142));
        assert!(bar_segments(&[1.0], 0.0, 100).is_empty());
        assert_ne!(
            step_colour("src-vm-stopped", 0, 2),
            step_colour("dst-x", 0, 2)
        );
    }

    #[test]
    fn nice_ceilings() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(87.0), 100.0);
        assert_eq!(nice_ceiling(110.0), 120.0);
        assert_eq!(nice_ceiling(5200.0), 6000.0);
        assert_eq!(nice_ceiling(2300.0), 2500.0);
        assert_eq!(nice_ceiling(100.0), 100.0);
    }

    #[test]
    fn ellipsize_cuts_long_text() {
        assert_eq!(ellipsize("short", 10), "short");
        assert_eq!(ellipsize("a-very-long-scenario-name", 10), "a-very-lo…");
        assert_eq!(ellipsize_start("/a/long/path/run.json", 10), "…/run.json");
        assert_eq!(ellipsize_start("run.json", 10), "run.json");
    }
}
