//! Reducing a long series to what a chart of a given width can show.
//!
//! A chart `width` pixels wide cannot show more than one x position per pixel column, so drawing
//! 10^6 points costs time and file size for nothing. Averaging or taking every n-th point would
//! hide exactly what a migration chart is for: the one slow GB during downtime. Instead each
//! pixel column keeps its first, lowest, highest and last point (in x order), so the drawn line
//! has the same pixels as the full one: spikes and dips survive, and a line entering or leaving
//! the column does so at the right height.

/// Keeps at most four points per pixel column of a chart `columns` wide spanning `x_range`.
///
/// `points` must be sorted by x (ties in any order). Points outside `x_range` are kept in the
/// first or last column, so nothing is silently dropped at the edges; non-finite points are
/// dropped. The result is sorted by x and is a subsequence of `points`.
pub fn min_max_per_column(
    points: &[(f64, f64)],
    x_range: (f64, f64),
    columns: u32,
) -> Vec<(f64, f64)> {
    let finite = |p: &&(f64, f64)| p.0.is_finite() && p.1.is_finite();
    let columns = columns.max(1);
    let (x0, x1) = x_range;
    let span = x1 - x0;
    if points.len() <= 4 * columns as usize || !(span.is_finite() && span > 0.0) {
        return points.iter().filter(finite).copied().collect();
    }
    let column_of = |x: f64| -> i64 {
        let c = ((x - x0) / span * f64::from(columns)).floor();
        c.clamp(0.0, f64::from(columns - 1)) as i64
    };

    let mut out = Vec::with_capacity(4 * columns as usize);
    let mut bucket: Option<Bucket> = None;
    for (i, p) in points.iter().enumerate().filter(|(_, p)| finite(p)) {
        let col = column_of(p.0);
        match &mut bucket {
            Some(b) if b.column == col => b.add(i, p.1),
            _ => {
                if let Some(b) = bucket.take() {
                    b.emit(points, &mut out);
                }
                bucket = Some(Bucket::new(col, i, p.1));
            }
        }
    }
    if let Some(b) = bucket {
        b.emit(points, &mut out);
    }
    out
}

/// Indices of the first, lowest, highest and last point of one column.
struct Bucket {
    column: i64,
    first: usize,
    min: (usize, f64),
    max: (usize, f64),
    last: usize,
}

impl Bucket {
    fn new(column: i64, i: usize, y: f64) -> Self {
        Bucket {
            column,
            first: i,
            min: (i, y),
            max: (i, y),
            last: i,
        }
    }

    fn add(&mut self, i: usize, y: f64) {
        if y < self.min.1 {
            self.min = (i, y);
        }
        if y > self.max.1 {
            self.max = (i, y);
        }
        self.last = i;
    }

    fn emit(self, points: &[(f64, f64)], out: &mut Vec<(f64, f64)>) {
        let mut idx = [self.first, self.min.0, self.max.0, self.last];
        idx.sort_unstable();
        let mut prev = None;
        for i in idx {
            if prev != Some(i) {
                out.push(points[i]);
                prev = Some(i);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_series_are_untouched() {
        let pts = vec![(0.0, 1.0), (1.0, 2.0), (2.0, 0.5)];
        assert_eq!(min_max_per_column(&pts, (0.0, 2.0), 100), pts);
    }

    #[test]
    fn keeps_at_most_four_points_per_column_and_every_spike() {
        let n = 100_000;
        let mut pts: Vec<(f64, f64)> = (0..n).map(|i| (i as f64 / 1000.0, 400.0)).collect();
        pts[31_337].1 = 5000.0; // one slow GB during downtime
        pts[77_777].1 = 10.0; // one dip
        let out = min_max_per_column(&pts, (0.0, 100.0), 500);
        assert!(out.len() <= 4 * 500, "{} points", out.len());
        assert!(out.contains(&pts[31_337]));
        assert!(out.contains(&pts[77_777]));
        assert_eq!(out.first(), pts.first());
        assert_eq!(out.last(), pts.last());
        assert!(out.windows(2).all(|w| w[0].0 <= w[1].0), "sorted by x");
    }

    #[test]
    fn keeps_per_column_extremes() {
        // 10 columns, 1000 points of a sawtooth: each column's min and max must survive.
        let pts: Vec<(f64, f64)> = (0..1000).map(|i| (i as f64, (i % 37) as f64)).collect();
        let out = min_max_per_column(&pts, (0.0, 1000.0), 10);
        for c in 0..10 {
            let col: Vec<f64> = pts[c * 100..(c + 1) * 100].iter().map(|p| p.1).collect();
            let kept: Vec<f64> = out
                .iter()
                .filter(|p| (p.0 / 100.0) as usize == c)
                .map(|p| p.1)
                .collect();
            let max = col.iter().cloned().fold(f64::MIN, f64::max);
            let min = col.iter().cloned().fold(f64::MAX, f64::min);
            assert!(
                kept.contains(&max) && kept.contains(&min),
                "column {c}: {kept:?}"
            );
        }
    }

    #[test]
    fn out_of_range_and_non_finite_points() {
        let mut pts: Vec<(f64, f64)> = (0..100).map(|i| (i as f64, 1.0)).collect();
        pts[50].1 = f64::NAN;
        pts.push((500.0, 9.0));
        let out = min_max_per_column(&pts, (10.0, 20.0), 2);
        assert!(out.iter().all(|p| p.1.is_finite()));
        assert!(
            out.contains(&(500.0, 9.0)),
            "points past the range are kept"
        );
        assert!(out.len() <= 8);
    }

    #[test]
    fn degenerate_range_returns_everything_finite() {
        let pts = vec![(1.0, 1.0); 50];
        assert_eq!(min_max_per_column(&pts, (1.0, 1.0), 2).len(), 50);
    }
}
