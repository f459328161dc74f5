//! The bootstrap distribution of a sample's median, computed exactly instead of resampled.
//!
//! Resampling `n` runs with replacement and taking the median, 10 000 times over, is the usual
//! way to see how much a median could move. The distribution it estimates has a closed form
//! (the median of a resample is an order statistic of `n` uniform picks of the sorted runs),
//! so it is computed here once, exactly, in O(n²):
//!
//! - `N_j`, the number of picks among the `j` smallest runs, is Binomial(n, j/n), so the
//!   `m`-th smallest pick is at position `≤ j` with probability `P(N_j ≥ m)` (the regularized
//!   incomplete beta `I_{j/n}(m, n-m+1)`). For odd `n` the median is the `(n+1)/2`-th pick.
//! - For even `n` the median is the mean of the `m`-th and `(m+1)`-th picks, `m = n/2`, at
//!   positions `j ≤ k`. For `j < k`: exactly `m` picks among the `j` smallest with one at `j`,
//!   none strictly between, the other `m` among positions `k..n` with one at `k`:
//!   `C(n,m) (j^m - (j-1)^m) ((n-k+1)^m - (n-k)^m) / n^n`. For `j = k`: the probability that
//!   the `m`-th pick is at `j`, less the `j < k` cases (their sum over `k` telescopes).
//!
//! What this buys: no Monte Carlo error in the variance of the median (the minimum detectable
//! effect and the runs-needed estimate are exact functions of the data), and a bootstrap
//! replicate of the median costs one uniform number and a binary search instead of `n` picks
//! and a selection. `tests` checks it against brute-force enumeration of every resample.

use statrs::function::beta::beta_reg;
use statrs::function::factorial::ln_binomial;

/// Probabilities below this are dropped from the support (they cannot move a percentile of
/// 10⁴ replicates or a variance).
const NEGLIGIBLE: f64 = 1e-15;

/// The exact bootstrap distribution of the median of a sample.
#[derive(Debug, Clone)]
pub struct MedianDist {
    /// Possible medians (not sorted) and their probabilities.
    values: Vec<f64>,
    probs: Vec<f64>,
    /// Running sum of `probs`, for inverse-CDF sampling; the last entry is 1.
    cum: Vec<f64>,
    /// Walker's alias table (Vose's construction) for O(1) sampling: column `i` is taken with
    /// probability `threshold[i]`, else its alias.
    threshold: Vec<f64>,
    alias: Vec<u32>,
}

impl MedianDist {
    /// The distribution for `sample` (finite values, at least one).
    pub fn of(sample: &[f64]) -> MedianDist {
        assert!(!sample.is_empty(), "the median of no runs");
        let mut x = sample.to_vec();
        x.sort_by(f64::total_cmp);
        let n = x.len();
        let mut values = Vec::new();
        let mut probs = Vec::new();
        let mut push = |v: f64, p: f64| {
            if p > NEGLIGIBLE {
                values.push(v);
                probs.push(p);
            }
        };
        let nf = n as f64;
        if n % 2 == 1 {
            let m = n.div_ceil(2);
            let mut below = 0.0;
            for j in 1..=n {
                let at_most_j = order_stat_cdf(n, m, j);
                push(x[j - 1], at_most_j - below);
                below = at_most_j;
            }
        } else {
            let m = n / 2;
            let ln_c = ln_binomial(n as u64, m as u64);
            let mf = m as i32;
            let ln_neg = NEGLIGIBLE.ln();
            // ln a_j: exactly m picks among the j smallest, at least one at j (times C(n, m)).
            // Kept as logarithms: C(n, m) alone overflows for n past about 1000.
            let ln_a: Vec<f64> = (1..=n)
                .map(|j| {
                    let jf = j as f64;
                    ln_c + m as f64 * (jf / nf).ln() + (-((jf - 1.0) / jf).powi(mf)).ln_1p()
                })
                .collect();
            // ln b_k: the other m picks among positions k..n, at least one at k (decreasing in k).
            let ln_b: Vec<f64> = (1..=n)
                .map(|k| {
                    let r = (n - k + 1) as f64;
                    m as f64 * (r / nf).ln() + (-((r - 1.0) / r).powi(mf)).ln_1p()
                })
                .collect();
            let mut below = 0.0;
            for j in 1..=n {
                let at_most_j = order_stat_cdf(n, m, j);
                let lower_at_j = at_most_j - below;
                below = at_most_j;
                let split = if j == n {
                    0.0
                } else {
                    (ln_a[j - 1] + m as f64 * ((n - j) as f64 / nf).ln()).exp()
                };
                push(x[j - 1], (lower_at_j - split).max(0.0));
                for k in j + 1..=n {
                    let ln_p = ln_a[j - 1] + ln_b[k - 1];
                    if ln_p < ln_neg {
                        break;
                    }
                    push((x[j - 1] + x[k - 1]) / 2.0, ln_p.exp());
                }
            }
        }
        let mut total = 0.0;
        let cum: Vec<f64> = probs
            .iter()
            .map(|p| {
                total += p;
                total
            })
            .collect();
        // Renormalize what rounding and pruning left (a few ulps).
        let cum = cum.into_iter().map(|c| c / total).collect();
        let probs: Vec<f64> = probs.into_iter().map(|p| p / total).collect();
        let (threshold, alias) = alias_table(&probs);
        MedianDist {
            values,
            probs,
            cum,
            threshold,
            alias,
        }
    }

    /// A median for 64 random bits, in O(1) (the alias method): the high 32 bits pick a
    /// column, the low 32 bits decide between it and its alias.
    pub fn sample_bits(&self, bits: u64) -> f64 {
        let column = (((bits >> 32) * self.values.len() as u64) >> 32) as usize;
        let coin = (bits & 0xffff_ffff) as f64 * (1.0 / 4_294_967_296.0);
        if coin < self.threshold[column] {
            self.values[column]
        } else {
            self.values[self.alias[column] as usize]
        }
    }

    /// The same distribution of `f(median)` (`f` increasing: `ln` or the identity).
    pub fn mapped(mut self, f: fn(f64) -> f64) -> MedianDist {
        for v in &mut self.values {
            *v = f(*v);
        }
        self
    }

    /// The median for a uniform number `u` in [0, 1): inverse CDF over the support.
    pub fn sample(&self, u: f64) -> f64 {
        let i = self.cum.partition_point(|c| *c <= u);
        self.values[i.min(self.values.len() - 1)]
    }

    /// Mean and variance of `f(median)`.
    pub fn mean_var(&self, f: impl Fn(f64) -> f64) -> (f64, f64) {
        // Relative to the first value, so that a constant sample has exactly its value and 0.
        let reference = f(self.values[0]);
        let mean = reference
            + self
                .values
                .iter()
                .zip(&self.probs)
                .map(|(v, p)| p * (f(*v) - reference))
                .sum::<f64>();
        let var = self
            .values
            .iter()
            .zip(&self.probs)
            .map(|(v, p)| p * (f(*v) - mean).powi(2))
            .sum();
        (mean, var)
    }

    /// The `q`-quantile (the smallest median whose cumulative probability reaches `q`).
    pub fn quantile(&self, q: f64) -> f64 {
        let mut pairs: Vec<(f64, f64)> = self
            .values
            .iter()
            .copied()
            .zip(self.probs.iter().copied())
            .collect();
        pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut acc = 0.0;
        for (v, p) in &pairs {
            acc += p;
            if acc >= q - 1e-12 {
                return *v;
            }
        }
        pairs.last().map_or(f64::NAN, |p| p.0)
    }

    /// The smallest possible median (the sample's minimum for odd n).
    pub fn min(&self) -> f64 {
        self.values.iter().copied().fold(f64::INFINITY, f64::min)
    }

    /// Number of distinct outcomes kept.
    pub fn support(&self) -> usize {
        self.values.len()
    }

    #[cfg(test)]
    fn pmf(&self) -> Vec<(f64, f64)> {
        let mut pairs: Vec<(f64, f64)> = Vec::new();
        for (v, p) in self.values.iter().zip(&self.probs) {
            match pairs.iter_mut().find(|(w, _)| (w - v).abs() < 1e-12) {
                Some(pair) => pair.1 += p,
                None => pairs.push((*v, *p)),
            }
        }
        pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
        pairs
    }
}

/// Vose's alias table of `probs` (which sum to 1).
fn alias_table(probs: &[f64]) -> (Vec<f64>, Vec<u32>) {
    let n = probs.len();
    let mut threshold: Vec<f64> = probs.iter().map(|p| p * n as f64).collect();
    let mut alias: Vec<u32> = (0..n as u32).collect();
    let (mut small, mut large): (Vec<usize>, Vec<usize>) =
        (0..n).partition(|&i| threshold[i] < 1.0);
    while let (Some(s), Some(&l)) = (small.pop(), large.last()) {
        alias[s] = l as u32;
        threshold[l] -= 1.0 - threshold[s];
        if threshold[l] < 1.0 {
            large.pop();
            small.push(l);
        }
    }
    // What is left is 1 up to rounding: always its own column.
    for i in small.into_iter().chain(large) {
        threshold[i] = 1.0;
    }
    (threshold, alias)
}

/// `P(the m-th smallest of n uniform picks of positions 1..n is at position ≤ j)`
/// `= P(Binomial(n, j/n) ≥ m) = I_{j/n}(m, n - m + 1)`.
fn order_stat_cdf(n: usize, m: usize, j: usize) -> f64 {
    if j >= n {
        1.0
    } else if j == 0 {
        0.0
    } else {
        beta_reg(m as f64, (n - m + 1) as f64, j as f64 / n as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every one of the n^n resamples, weighted equally: the bootstrap distribution by brute
    /// force, with the median as gp_records::stats defines it.
    fn brute_force(sample: &[f64]) -> Vec<(f64, f64)> {
        let n = sample.len();
        let total = n.pow(n as u32);
        let mut pairs: Vec<(f64, f64)> = Vec::new();
        let mut pick = vec![0usize; n];
        for code in 0..total {
            let mut c = code;
            for p in pick.iter_mut() {
                *p = c % n;
                c /= n;
            }
            let mut v: Vec<f64> = pick.iter().map(|&i| sample[i]).collect();
            let med = gp_records::stats::median(&mut v).unwrap();
            match pairs.iter_mut().find(|(w, _)| (*w - med).abs() < 1e-12) {
                Some(pair) => pair.1 += 1.0 / total as f64,
                None => pairs.push((med, 1.0 / total as f64)),
            }
        }
        pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
        pairs
    }

    fn assert_same(exact: &[(f64, f64)], brute: &[(f64, f64)]) {
        assert_eq!(exact.len(), brute.len(), "{exact:?}\n{brute:?}");
        for ((v1, p1), (v2, p2)) in exact.iter().zip(brute) {
            assert!((v1 - v2).abs() < 1e-12, "{exact:?}\n{brute:?}");
            assert!((p1 - p2).abs() < 1e-10, "{v1}: {p1} vs {p2}");
        }
    }

    #[test]
    fn matches_every_resample_enumerated() {
        // Odd and even sizes, distinct values, uneven gaps (so every (j, k) mean is distinct).
        for sample in [
            vec![5.0],
            vec![1.0, 10.0],
            vec![3.0, 1.0, 7.0],
            vec![1.0, 2.0, 4.0, 8.0],
            vec![1.0, 3.0, 9.0, 27.0, 81.0],
            vec![2.0, 3.0, 5.0, 7.0, 11.0, 13.0],
            vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0],
        ] {
            assert_same(&MedianDist::of(&sample).pmf(), &brute_force(&sample));
        }
    }

    #[test]
    fn ties_are_summed_not_lost() {
        for sample in [vec![4.0, 4.0, 4.0, 9.0], vec![1.0, 1.0, 2.0, 2.0, 2.0]] {
            assert_same(&MedianDist::of(&sample).pmf(), &brute_force(&sample));
        }
        let all_same = MedianDist::of(&[7.0; 6]);
        assert_eq!(all_same.mean_var(|v| v), (7.0, 0.0));
    }

    #[test]
    fn known_answer_for_three_runs() {
        // n = 3: the median is the smallest run when at least two picks are the smallest:
        // 1 (all three) + 3 * 2 (two of them, the third elsewhere) = 7 of 27 resamples.
        let d = MedianDist::of(&[10.0, 20.0, 30.0]);
        let pmf = d.pmf();
        assert!((pmf[0].1 - 7.0 / 27.0).abs() < 1e-12);
        assert!((pmf[1].1 - 13.0 / 27.0).abs() < 1e-12);
        let (mean, var) = d.mean_var(|v| v);
        assert!((mean - 20.0).abs() < 1e-9);
        assert!((var - 2.0 * 7.0 / 27.0 * 100.0).abs() < 1e-9);
        assert_eq!(d.quantile(0.2), 10.0);
        assert_eq!(d.quantile(0.5), 20.0);
        assert_eq!(d.quantile(0.99), 30.0);
    }

    #[test]
    fn sampling_follows_the_distribution() {
        let d = MedianDist::of(&[10.0, 20.0, 30.0]);
        let n = 27_000;
        let hits = (0..n)
            .filter(|i| d.sample((*i as f64 + 0.5) / n as f64) == 10.0)
            .count();
        assert_eq!(hits, 7000);
    }

    #[test]
    fn the_alias_method_draws_the_same_distribution() {
        let sample = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0];
        let d = MedianDist::of(&sample);
        let pmf = d.pmf();
        let mut rng = crate::stats::bootstrap::rng_for(3, "alias");
        let draws = 400_000;
        let mut counts = vec![0usize; pmf.len()];
        for _ in 0..draws {
            let v = d.sample_bits(rand::Rng::next_u64(&mut rng));
            let i = pmf.iter().position(|(w, _)| (w - v).abs() < 1e-12).unwrap();
            counts[i] += 1;
        }
        for ((_, p), c) in pmf.iter().zip(&counts) {
            let expected = p * draws as f64;
            // Five binomial standard deviations.
            let sd = (expected * (1.0 - p)).sqrt();
            assert!(
                (*c as f64 - expected).abs() < 5.0 * sd + 1.0,
                "{pmf:?} {counts:?}"
            );
        }
    }

    #[test]
    fn large_samples_stay_finite_and_normalized() {
        for n in [200usize, 201, 1000] {
            let sample: Vec<f64> = (0..n).map(|i| 1000.0 + (i as f64).sqrt()).collect();
            let d = MedianDist::of(&sample);
            let (mean, var) = d.mean_var(|v| v);
            assert!(mean.is_finite() && var.is_finite() && var > 0.0, "{n}");
            let med = gp_records::stats::median(&mut sample.clone()).unwrap();
            assert!((mean - med).abs() < 1.0, "{n}: {mean} vs {med}");
            assert!(d.support() < n * n);
        }
    }
}
