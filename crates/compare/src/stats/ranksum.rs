//! The permutation test: Wilcoxon-Mann-Whitney rank sums, stratified by host, with the
//! permutation distribution computed exactly.
//!
//! Under "A and B are the same build", the arm labels of the runs of one host are
//! exchangeable: any relabelling with the same number of A and B runs per host was as likely.
//! The statistic is the sum, over hosts, of the ranks of arm B's runs among that host's runs
//! (ties get their mid-rank). Its distribution over all relabellings is computed exactly by
//! dynamic programming (one host), and by convolution across hosts, instead of drawing 9 999
//! relabellings: no Monte Carlo error, no seed, and p-values far below 1/10 000 where the
//! data supports them, which a correction for many comparisons needs.
//!
//! Ranks are doubled so that mid-ranks of ties stay integers. Sums are indexed directly:
//! the work is about `N² k²` additions for `N` runs of which `k` in the smaller arm (3 million
//! for 30 + 30). Past [`EXACT_WORK_LIMIT`] the normal approximation with the tie correction
//! is used instead (the exact distribution is then normal to many digits).

use statrs::distribution::{ContinuousCDF, Normal};

/// Largest DP (additions) computed exactly per host; beyond it, the normal approximation.
pub const EXACT_WORK_LIMIT: f64 = 2e8;

/// The runs of one host: arm A's and arm B's values.
#[derive(Debug, Clone, Copy)]
pub struct Stratum<'a> {
    pub a: &'a [f64],
    pub b: &'a [f64],
}

/// The outcome of the test.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RankTest {
    /// Two-sided p-value: the probability, over relabellings, of a statistic at least as far
    /// from its mean as the one observed.
    pub p: f64,
    /// The smallest p-value any relabelling of these runs could give (the most extreme one):
    /// when it is not below the significance level, no change can be detected at all.
    pub p_min: f64,
    /// Observed statistic minus its mean under no change (doubled ranks): above 0 when B's
    /// runs rank higher than A's.
    pub direction: f64,
    /// Whether the distribution was computed exactly (else the normal approximation).
    pub exact: bool,
}

/// Doubled mid-ranks of `values` (1-based ranks: the smallest alone gets 2).
pub fn doubled_midranks(values: &[f64]) -> Vec<u64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&i, &j| values[i].total_cmp(&values[j]));
    let mut ranks = vec![0u64; values.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start;
        while end + 1 < order.len() && values[order[end + 1]] == values[order[start]] {
            end += 1;
        }
        // Positions start..=end (0-based) share ranks start+1 ..= end+1.
        let doubled = (start + 1 + end + 1) as u64;
        for &i in &order[start..=end] {
            ranks[i] = doubled;
        }
        start = end + 1;
    }
    ranks
}

/// The distribution of the sum of `k` of `ranks` taken at random: `dist[s]` is the
/// probability of the sum `s`.
pub fn subset_sum_distribution(ranks: &[u64], k: usize) -> Vec<f64> {
    let mut sorted = ranks.to_vec();
    sorted.sort_unstable();
    let max_sum: u64 = sorted.iter().rev().take(k).sum();
    let width = max_sum as usize + 1;
    // counts[j][s]: ways to pick j of the items seen so far with sum s (as f64: C(60, 30) is
    // 1.2e17, past 2^53 but far within f64's range, and p-values need no more digits).
    let mut counts = vec![vec![0.0f64; width]; k + 1];
    counts[0][0] = 1.0;
    let n = sorted.len();
    let mut reach = vec![0usize; k + 1]; // highest sum reachable with j items so far
                                         // Lowest sum reachable with j items: the j smallest ranks (items come in ascending order).
    let mut low = vec![0usize; k + 1];
    for j in 1..=k {
        low[j] = low[j - 1] + sorted[j - 1] as usize;
    }
    for (seen, &r) in sorted.iter().enumerate() {
        let r = r as usize;
        // A row that the items left cannot fill up to k is never used: skip it.
        let left_after = n - seen - 1;
        let j_min = k.saturating_sub(left_after).max(1);
        for j in (j_min..=k.min(seen + 1)).rev() {
            let (lower, upper) = counts.split_at_mut(j);
            let top = reach[j - 1];
            let bottom = low[j - 1];
            let from = &lower[j - 1][bottom..=top];
            let to = &mut upper[0][bottom + r..=top + r];
            for (t, f) in to.iter_mut().zip(from) {
                *t += f;
            }
            reach[j] = reach[j].max(top + r);
        }
    }
    let total: f64 = counts[k].iter().sum();
    counts
        .swap_remove(k)
        .into_iter()
        .map(|c| c / total)
        .collect()
}

/// The stratified two-sided rank-sum test of B against A.
///
/// `cache` remembers distributions by (ranks, k): runs with no ties share one per size.
pub fn rank_sum_test(strata: &[Stratum], cache: &mut Cache) -> RankTest {
    let mut observed: u64 = 0;
    let mut mean2: u64 = 0; // twice the mean of the doubled statistic (an integer)
    let mut variance = 0.0;
    let mut exact = true;
    let mut dists: Vec<std::rc::Rc<Vec<f64>>> = Vec::new();
    for st in strata {
        let values: Vec<f64> = st.a.iter().chain(st.b).copied().collect();
        let ranks = doubled_midranks(&values);
        let n = values.len();
        let (na, nb) = (st.a.len(), st.b.len());
        observed += ranks[na..].iter().sum::<u64>();
        mean2 += (nb * (n + 1) * 2) as u64;
        variance += tie_corrected_variance(&ranks, na, nb);
        let k = na.min(nb);
        let max_sum = (2 * n * k) as f64;
        if (n * k) as f64 * max_sum / 2.0 > EXACT_WORK_LIMIT {
            exact = false;
        }
        if exact {
            let mut sorted = ranks.clone();
            sorted.sort_unstable();
            let dist = cache.get_or_insert(sorted, k, nb > na);
            dists.push(dist);
        }
    }
    let deviation2 = (2 * observed) as i128 - mean2 as i128; // twice (observed - mean)
    if !exact {
        let sd = variance.sqrt();
        let z = (deviation2.unsigned_abs() as f64 / 2.0) / sd;
        let normal = Normal::standard();
        let p = if sd > 0.0 { 2.0 * normal.sf(z) } else { 1.0 };
        let worst = max_deviation(strata) / sd;
        return RankTest {
            p: p.min(1.0),
            p_min: if sd > 0.0 {
                2.0 * normal.sf(worst)
            } else {
                1.0
            },
            direction: deviation2 as f64 / 2.0,
            exact: false,
        };
    }
    // Convolve the per-host distributions of B's rank sum.
    let mut total = vec![1.0f64];
    for d in &dists {
        let mut next = vec![0.0f64; total.len() + d.len() - 1];
        for (i, &p) in total.iter().enumerate() {
            if p == 0.0 {
                continue;
            }
            for (j, &q) in d.iter().enumerate() {
                next[i + j] += p * q;
            }
        }
        total = next;
    }
    let far = |s: usize| ((2 * s) as i128 - mean2 as i128).unsigned_abs();
    let obs = deviation2.unsigned_abs();
    // Sums are integers, twice-deviations exact: no tolerance needed.
    // The probability of a rank sum at least `threshold` (doubled) away from the mean.
    let tail = |threshold: u128| -> f64 {
        total
            .iter()
            .enumerate()
            .filter(|(s, _)| far(*s) >= threshold)
            .map(|(_, p)| p)
            .sum()
    };
    let extreme = total
        .iter()
        .enumerate()
        .filter(|(_, p)| **p > 0.0)
        .map(|(s, _)| far(s))
        .max()
        .unwrap_or(0);
    let (p, p_min) = (tail(obs), tail(extreme));
    RankTest {
        p: p.min(1.0),
        p_min: p_min.min(1.0),
        direction: deviation2 as f64 / 2.0,
        exact: true,
    }
}

/// Variance of B's doubled rank sum under relabelling, with the correction for ties.
fn tie_corrected_variance(ranks: &[u64], na: usize, nb: usize) -> f64 {
    let n = (na + nb) as f64;
    if n < 2.0 {
        return 0.0;
    }
    let mut sorted = ranks.to_vec();
    sorted.sort_unstable();
    let mut ties = 0.0;
    let mut i = 0;
    while i < sorted.len() {
        let mut j = i;
        while j < sorted.len() && sorted[j] == sorted[i] {
            j += 1;
        }
        let t = (j - i) as f64;
        ties += t * t * t - t;
        i = j;
    }
    // Var of a single-ranked sum, times 4 for doubled ranks.
    4.0 * (na * nb) as f64 / 12.0 * ((n + 1.0) - ties / (n * (n - 1.0)))
}

/// The largest |statistic - mean| any relabelling can give (normal approximation's p_min).
fn max_deviation(strata: &[Stratum]) -> f64 {
    strata
        .iter()
        .map(|st| {
            let values: Vec<f64> = st.a.iter().chain(st.b).copied().collect();
            let mut ranks = doubled_midranks(&values);
            ranks.sort_unstable();
            let nb = st.b.len();
            let mean = (nb * (values.len() + 1)) as f64;
            let top: u64 = ranks.iter().rev().take(nb).sum();
            let bottom: u64 = ranks.iter().take(nb).sum();
            (top as f64 - mean).max(mean - bottom as f64)
        })
        .sum()
}

/// Distributions already computed, by the host's sorted doubled ranks and the smaller arm's
/// size. Not shared between threads.
#[derive(Debug, Default)]
pub struct Cache {
    map: std::collections::HashMap<(Vec<u64>, usize, bool), std::rc::Rc<Vec<f64>>>,
}

impl Cache {
    /// The distribution of B's rank sum for these ranks, `k` the smaller arm's size;
    /// `mirrored` when B is the larger arm (the DP runs over A and B's sum is the total less
    /// A's).
    fn get_or_insert(
        &mut self,
        ranks: Vec<u64>,
        k: usize,
        mirrored: bool,
    ) -> std::rc::Rc<Vec<f64>> {
        let key = (ranks, k, mirrored);
        if let Some(d) = self.map.get(&key) {
            return d.clone();
        }
        let ranks = &key.0;
        let mut dist = subset_sum_distribution(ranks, k);
        if mirrored {
            let total: u64 = ranks.iter().sum();
            let mut flipped = vec![0.0; total as usize + 1];
            for (s, p) in dist.iter().enumerate() {
                flipped[total as usize - s] = *p;
            }
            dist = flipped;
        }
        let dist = std::rc::Rc::new(dist);
        self.map.insert(key, dist.clone());
        dist
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test(a: &[f64], b: &[f64]) -> RankTest {
        rank_sum_test(&[Stratum { a, b }], &mut Cache::default())
    }

    /// Every relabelling enumerated: the permutation p-value by definition.
    fn brute_force(strata: &[(Vec<f64>, Vec<f64>)]) -> f64 {
        // Per stratum, all subsets of size nb as B.
        let mut per: Vec<Vec<i64>> = Vec::new(); // possible doubled rank sums of B, per stratum
        let mut observed = 0i64;
        let mut mean2 = 0i64;
        for (a, b) in strata {
            let values: Vec<f64> = a.iter().chain(b).copied().collect();
            let ranks = doubled_midranks(&values);
            let n = values.len();
            observed += ranks[a.len()..].iter().sum::<u64>() as i64;
            mean2 += (b.len() * (n + 1) * 2) as i64;
            let mut sums = Vec::new();
            for mask in 0u32..(1 << n) {
                if mask.count_ones() as usize == b.len() {
                    sums.push(
                        (0..n)
                            .filter(|i| mask & (1 << i) != 0)
                            .map(|i| ranks[i] as i64)
                            .sum(),
                    );
                }
            }
            per.push(sums);
        }
        let mut combos: Vec<i64> = vec![0];
        for sums in &per {
            combos = combos
                .iter()
                .flat_map(|c| sums.iter().map(move |s| c + s))
                .collect();
        }
        let obs = (2 * observed - mean2).abs();
        combos
            .iter()
            .filter(|s| (2 * **s - mean2).abs() >= obs)
            .count() as f64
            / combos.len() as f64
    }

    #[test]
    fn midranks_share_ties() {
        assert_eq!(doubled_midranks(&[10.0, 30.0, 20.0]), [2, 6, 4]);
        assert_eq!(doubled_midranks(&[5.0, 5.0, 1.0, 5.0]), [6, 6, 2, 6]);
    }

    #[test]
    fn complete_separation_of_five_and_five() {
        // 252 relabellings; the observed one and its mirror are the only ones as extreme.
        let t = test(&[1.0, 2.0, 3.0, 4.0, 5.0], &[6.0, 7.0, 8.0, 9.0, 10.0]);
        assert!((t.p - 2.0 / 252.0).abs() < 1e-15, "{t:?}");
        assert!((t.p_min - 2.0 / 252.0).abs() < 1e-15);
        assert!(t.direction > 0.0 && t.exact);
        let t = test(&[6.0, 7.0, 8.0, 9.0, 10.0], &[1.0, 2.0, 3.0, 4.0, 5.0]);
        assert!(t.direction < 0.0);
    }

    #[test]
    fn the_same_runs_on_both_sides_give_p_one() {
        let x = [3.0, 1.0, 4.0, 1.5, 9.0, 2.6];
        let t = test(&x, &x);
        assert_eq!(t.p, 1.0);
        assert_eq!(t.direction, 0.0);
    }

    #[test]
    fn three_and_three_can_never_reach_one_percent() {
        let t = test(&[1.0, 2.0, 3.0], &[4.0, 5.0, 6.0]);
        assert!((t.p_min - 0.1).abs() < 1e-15, "{t:?}");
    }

    #[test]
    fn matches_brute_force_with_ties_and_hosts() {
        let cases: Vec<Vec<(Vec<f64>, Vec<f64>)>> = vec![
            vec![(vec![1.0, 2.0, 2.0, 5.0], vec![2.0, 6.0, 7.0])],
            vec![(vec![3.0, 3.0, 3.0], vec![3.0, 4.0, 4.0, 1.0])],
            vec![
                (vec![10.0, 12.0, 11.0], vec![13.0, 12.0, 15.0]),
                (vec![100.0, 90.0, 95.0, 97.0], vec![101.0, 99.0]),
            ],
            vec![
                (vec![1.0, 2.0], vec![3.0, 4.0, 5.0]),
                (vec![1.0, 1.0, 2.0], vec![2.0, 3.0]),
                (vec![5.0, 6.0], vec![4.0, 7.0]),
            ],
        ];
        for strata in cases {
            let views: Vec<Stratum> = strata.iter().map(|(a, b)| Stratum { a, b }).collect();
            let t = rank_sum_test(&views, &mut Cache::default());
            let expected = brute_force(&strata);
            assert!(
                (t.p - expected).abs() < 1e-12,
                "{strata:?}: {t:?} vs {expected}"
            );
        }
    }

    #[test]
    fn distribution_of_choosing_two_of_four() {
        // Ranks 1..4 doubled; pairs: {1,2}=3 {1,3}=4 {1,4}=5 {2,3}=5 {2,4}=6 {3,4}=7, doubled.
        let d = subset_sum_distribution(&[2, 4, 6, 8], 2);
        let sixth = 1.0 / 6.0;
        let expect = [
            (6, sixth),
            (8, sixth),
            (10, 2.0 * sixth),
            (12, sixth),
            (14, sixth),
        ];
        for (s, p) in expect {
            assert!((d[s] - p).abs() < 1e-15, "{s}: {}", d[s]);
        }
        assert!((d.iter().sum::<f64>() - 1.0).abs() < 1e-15);
    }

    #[test]
    fn large_arms_use_the_normal_approximation_consistently() {
        // 30 + 30 is exact; compare with the approximation's p-value on the same data.
        let a: Vec<f64> = (0..30).map(|i| i as f64).collect();
        let b: Vec<f64> = (0..30).map(|i| i as f64 + 6.5).collect();
        let t = test(&a, &b);
        assert!(t.exact);
        let ranks = doubled_midranks(&a.iter().chain(&b).copied().collect::<Vec<_>>());
        let sd = tie_corrected_variance(&ranks, 30, 30).sqrt();
        let z = t.direction / sd;
        let approx = 2.0 * Normal::standard().sf(z.abs());
        assert!((t.p - approx).abs() < 0.01, "{} vs {approx}", t.p);
    }
}
