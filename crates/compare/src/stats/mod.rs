//! The statistics gp-compare rests on, each with tests against known answers.
//!
//! - [`median`]: the exact bootstrap distribution of a median (no resampling needed for its
//!   variance; one uniform draw per bootstrap replicate).
//! - [`ranksum`]: the permutation test (stratified Wilcoxon-Mann-Whitney rank sums), exact.
//! - [`bootstrap`]: the seeded percentile interval of the change of medians across hosts.
//! - here: the Benjamini-Hochberg adjustment with Tarone's screening, Fisher's exact test for
//!   completion rates, normal quantiles.

pub mod bootstrap;
pub mod median;
pub mod ranksum;

use statrs::distribution::{ContinuousCDF, Normal};
use statrs::function::factorial::ln_binomial;

/// The standard normal quantile of `p` (0 < p < 1).
pub fn z(p: f64) -> f64 {
    Normal::standard().inverse_cdf(p)
}

/// Benjamini-Hochberg adjusted p-values (q-values) of the tests marked `in_family`; the others
/// get `None`.
///
/// The family: every test whose smallest possible p-value is below the significance level
/// (Tarone's screening for discrete tests: a test that cannot reach the level under any data
/// cannot be a discovery, and counting it would only raise the bar for the others).
pub fn benjamini_hochberg(p: &[f64], in_family: &[bool]) -> Vec<Option<f64>> {
    let mut idx: Vec<usize> = (0..p.len()).filter(|&i| in_family[i]).collect();
    let m = idx.len();
    idx.sort_by(|&i, &j| p[i].total_cmp(&p[j]));
    let mut q = vec![None; p.len()];
    let mut running = 1.0f64;
    for (rank, &i) in idx.iter().enumerate().rev() {
        let adjusted = (p[i] * m as f64 / (rank + 1) as f64).min(1.0);
        running = running.min(adjusted);
        q[i] = Some(running);
    }
    q
}

/// Fisher's exact test, two-sided, of a 2x2 table: `a_yes` of `a_n` against `b_yes` of `b_n`.
/// Returns (p, smallest possible p given the margins).
pub fn fisher_exact(a_yes: u64, a_n: u64, b_yes: u64, b_n: u64) -> (f64, f64) {
    let yes = a_yes + b_yes;
    let n = a_n + b_n;
    let ln_total = ln_binomial(n, yes);
    let prob = |k: u64| (ln_binomial(a_n, k) + ln_binomial(b_n, yes - k) - ln_total).exp();
    let lo = yes.saturating_sub(b_n);
    let hi = yes.min(a_n);
    let observed = prob(a_yes);
    let probs: Vec<f64> = (lo..=hi).map(prob).collect();
    let tol = 1.0 + 1e-7;
    let p: f64 = probs.iter().filter(|q| **q <= observed * tol).sum();
    let least = probs.iter().copied().fold(f64::INFINITY, f64::min);
    let p_min: f64 = probs.iter().filter(|q| **q <= least * tol).sum();
    (p.min(1.0), p_min.min(1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_quantiles() {
        assert!((z(0.975) - 1.959_964).abs() < 1e-5);
        assert!((z(0.8) - 0.841_621).abs() < 1e-5);
        assert!((z(0.995) - 2.575_829).abs() < 1e-5);
    }

    #[test]
    fn benjamini_hochberg_known_values() {
        // The textbook example: p = 0.01, 0.04, 0.03, 0.005 -> q = 0.02, 0.04, 0.04, 0.02.
        let p = [0.01, 0.04, 0.03, 0.005];
        let q = benjamini_hochberg(&p, &[true; 4]);
        let q: Vec<f64> = q.into_iter().map(Option::unwrap).collect();
        for (got, want) in q.iter().zip([0.02, 0.04, 0.04, 0.02]) {
            assert!((got - want).abs() < 1e-12, "{q:?}");
        }
        // Tests outside the family are not counted.
        let q = benjamini_hochberg(&[0.01, 0.5, 1.0], &[true, true, false]);
        assert_eq!(q[2], None);
        assert!((q[0].unwrap() - 0.02).abs() < 1e-12);
    }

    #[test]
    fn fisher_known_values() {
        // Fisher's tea-tasting table 3/1 vs 1/3: two-sided p = 34/70.
        let (p, _) = fisher_exact(3, 4, 1, 4);
        assert!((p - 34.0 / 70.0).abs() < 1e-12, "{p}");
        // 10 of 10 against 0 of 10: p = 2 / C(20, 10).
        let (p, p_min) = fisher_exact(10, 10, 0, 10);
        assert!((p - 2.0 / 184_756.0).abs() < 1e-15, "{p}");
        assert_eq!(p, p_min);
        // Nothing failed anywhere: one table only, nothing can be detected.
        assert_eq!(fisher_exact(10, 10, 10, 10), (1.0, 1.0));
    }
}
