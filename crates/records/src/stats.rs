//! Order statistics shared by every stage that summarises (gp-collect's summary, gp-batch's
//! tables, gp-compare): one definition of the median, so the same runs give the same figure
//! everywhere.

/// The median of `values`, `None` when there are none. An even count gives the mean of the two
/// middle values. Sorts `values` in place (by `f64::total_cmp`, so NaN sorts last instead of
/// panicking).
pub fn median(values: &mut [f64]) -> Option<f64> {
    quantile(values, 0.5)
}

/// The `q`-quantile (0 to 1) of `values` by linear interpolation between the closest ranks
/// (the "type 7" definition of R and NumPy's default), `None` when there are none. Sorts
/// `values` in place.
pub fn quantile(values: &mut [f64], q: f64) -> Option<f64> {
    if values.is_empty() || !(0.0..=1.0).contains(&q) {
        return None;
    }
    values.sort_by(f64::total_cmp);
    Some(quantile_sorted(values, q))
}

/// [`quantile`] of values already sorted ascending. Panics on an empty slice.
pub fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_even_and_none() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&mut [7.0]), Some(7.0));
        assert_eq!(median(&mut []), None);
    }

    #[test]
    fn quantiles_interpolate_between_ranks() {
        let mut v = [10.0, 20.0, 30.0, 40.0, 50.0];
        assert_eq!(quantile(&mut v, 0.0), Some(10.0));
        assert_eq!(quantile(&mut v, 1.0), Some(50.0));
        assert_eq!(quantile(&mut v, 0.25), Some(20.0));
        assert_eq!(quantile(&mut v, 0.1), Some(14.0));
        assert_eq!(quantile(&mut v, 1.5), None);
    }

    #[test]
    fn nan_does_not_panic() {
        let mut v = [f64::NAN, 1.0, 2.0];
        assert_eq!(median(&mut v), Some(2.0));
    }
}
