//! The change of medians between two arms, with its seeded bootstrap percentile interval and
//! its exact bootstrap standard error, combined over hosts.
//!
//! Within a host the change is `g(median B) - g(median A)`, with `g = ln` for figures compared
//! as ratios (so `exp(change) - 1` is the relative change) and `g = identity` for figures
//! compared as differences. Hosts are combined with weights `n_A n_B / (n_A + n_B)` (each
//! host's change counts as much as the runs behind it, as in a stratified test): with one host
//! this is exactly the change of that host's medians. The runs of one host and arm are resampled
//! independently of every other host and arm (a stratified bootstrap), never pooled.

use rand::rngs::ChaCha8Rng;
use rand::{Rng, SeedableRng};

use super::median::MedianDist;
use super::ranksum::Stratum;

/// A change on the analysis scale (ln ratio or difference).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    /// The change of medians (combined over hosts).
    pub point: f64,
    /// Percentile interval of the bootstrap replicates of the change.
    pub lo: f64,
    pub hi: f64,
    /// Exact bootstrap standard error of the change.
    pub se: f64,
}

/// The generator of one comparison: ChaCha8 (portable and stable across platforms and rand
/// versions), seeded from `seed` and a label, so a figure's interval depends on the seed and
/// its own data only, not on what else is compared or in which order.
pub fn rng_for(seed: u64, label: &str) -> ChaCha8Rng {
    // FNV-1a: a fixed, documented hash (std's hasher may change between Rust releases).
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in label.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    ChaCha8Rng::seed_from_u64(seed ^ h)
}

/// A uniform number in [0, 1) from 53 random bits (not rand's float sampling, whose algorithm
/// may change between versions).
#[cfg(test)]
fn uniform(rng: &mut impl Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// Weights of the hosts: `n_A n_B / (n_A + n_B)`, normalized.
pub fn host_weights(strata: &[Stratum]) -> Vec<f64> {
    let raw: Vec<f64> = strata
        .iter()
        .map(|s| {
            let (a, b) = (s.a.len() as f64, s.b.len() as f64);
            a * b / (a + b)
        })
        .collect();
    let total: f64 = raw.iter().sum();
    raw.into_iter().map(|w| w / total).collect()
}

/// The change of medians of B against A over `strata`, on the scale `g`.
pub fn change_of_medians(
    strata: &[Stratum],
    g: fn(f64) -> f64,
    confidence: f64,
    resamples: usize,
    rng: &mut impl Rng,
) -> Estimate {
    let weights = host_weights(strata);
    let mut point = 0.0;
    let mut var = 0.0;
    let mut dists: Vec<(f64, MedianDist, MedianDist)> = Vec::with_capacity(strata.len());
    for (st, w) in strata.iter().zip(&weights) {
        let med = |v: &[f64]| gp_records::stats::median(&mut v.to_vec()).unwrap_or(f64::NAN);
        point += w * (g(med(st.b)) - g(med(st.a)));
        let da = MedianDist::of(st.a).mapped(g);
        let db = MedianDist::of(st.b).mapped(g);
        var += w * w * (da.mean_var(|v| v).1 + db.mean_var(|v| v).1);
        dists.push((*w, da, db));
    }
    let mut replicates: Vec<f64> = (0..resamples)
        .map(|_| {
            dists
                .iter()
                .map(|(w, da, db)| {
                    let b = db.sample_bits(rng.next_u64());
                    let a = da.sample_bits(rng.next_u64());
                    w * (b - a)
                })
                .sum()
        })
        .collect();
    let tail = (1.0 - confidence) / 2.0;
    let (lo, hi) = (
        quantile_by_selection(&mut replicates, tail),
        quantile_by_selection(&mut replicates, 1.0 - tail),
    );
    Estimate {
        point,
        lo,
        hi,
        se: var.sqrt(),
    }
}

/// The `q`-quantile of `values` as [`gp_records::stats::quantile`] defines it (linear between
/// the closest ranks), found by selection in O(n) instead of a sort. Reorders `values`.
pub fn quantile_by_selection(values: &mut [f64], q: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let pos = q * (values.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let (_, at, right) = values.select_nth_unstable_by(lo, f64::total_cmp);
    let below = *at;
    let above = if pos > lo as f64 {
        right.iter().copied().fold(f64::INFINITY, f64::min)
    } else {
        below
    };
    below + (above - below) * (pos - lo as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(a: &[f64], b: &[f64], g: fn(f64) -> f64, seed: u64) -> Estimate {
        change_of_medians(
            &[Stratum { a, b }],
            g,
            0.95,
            10_000,
            &mut rng_for(seed, "test"),
        )
    }

    #[test]
    fn one_host_is_the_change_of_its_medians() {
        let a = [100.0, 110.0, 90.0, 105.0, 95.0];
        let b = [120.0, 132.0, 108.0, 126.0, 114.0];
        let e = one(&a, &b, f64::ln, 1);
        assert!((e.point - 1.2f64.ln()).abs() < 1e-12);
        assert!(e.lo < e.point && e.point < e.hi);
        let d = one(&a, &b, |x| x, 1);
        assert!((d.point - 20.0).abs() < 1e-12);
    }

    #[test]
    fn constant_arms_have_a_point_interval() {
        let e = one(&[5.0; 4], &[10.0; 7], |x| x, 3);
        assert_eq!((e.point, e.lo, e.hi, e.se), (5.0, 5.0, 5.0, 0.0));
    }

    #[test]
    fn standard_error_is_exact_and_the_interval_matches_it() {
        // Arm A constant: the change is B's bootstrap median alone. For B = 10, 20, 30 the
        // median is 10 / 20 / 30 with probabilities 7/27, 13/27, 7/27: sd = sqrt(14/27) * 10.
        let e = one(&[0.0; 3], &[10.0, 20.0, 30.0], |x| x, 7);
        assert!((e.se - (14.0f64 / 27.0).sqrt() * 10.0).abs() < 1e-9);
        // 7/27 = 26% below 20: the 2.5% and 97.5% percentiles are 10 and 30.
        assert_eq!((e.lo, e.hi), (10.0, 30.0));
    }

    #[test]
    fn selection_quantiles_match_the_shared_definition() {
        let mut rng = rng_for(5, "q");
        let values: Vec<f64> = (0..1001).map(|_| uniform(&mut rng) * 100.0).collect();
        for q in [0.0, 0.025, 0.3, 0.5, 0.975, 1.0] {
            let want = gp_records::stats::quantile(&mut values.clone(), q).unwrap();
            assert_eq!(quantile_by_selection(&mut values.clone(), q), want, "{q}");
        }
        assert_eq!(quantile_by_selection(&mut [1.0, 2.0], 0.5), 1.5);
    }

    #[test]
    fn seeded_and_reproducible() {
        let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let b = [2.0, 3.0, 4.0, 5.0, 6.0, 9.0];
        assert_eq!(one(&a, &b, f64::ln, 42), one(&a, &b, f64::ln, 42));
        assert_ne!(one(&a, &b, f64::ln, 42).lo, f64::NAN);
        let other = one(&a, &b, f64::ln, 43);
        assert_eq!(other.point, one(&a, &b, f64::ln, 42).point);
    }

    #[test]
    fn hosts_are_weighted_by_their_runs_not_pooled() {
        // Host 1 is 10x slower than host 2; B is 10% slower than A on both. Pooling would mix
        // host speed into the change; within hosts it is +10% exactly.
        let (a1, b1) = ([1000.0, 1010.0, 990.0], [1100.0, 1111.0, 1089.0]);
        let (a2, b2) = (
            [100.0, 101.0, 99.0, 100.5, 99.5],
            [110.0, 111.1, 108.9, 110.55, 109.45],
        );
        let strata = [Stratum { a: &a1, b: &b1 }, Stratum { a: &a2, b: &b2 }];
        let e = change_of_medians(&strata, f64::ln, 0.95, 2000, &mut rng_for(1, "h"));
        assert!((e.point - 1.1f64.ln()).abs() < 1e-9, "{e:?}");
        let w = host_weights(&strata);
        assert!((w[0] - 1.5 / (1.5 + 2.5)).abs() < 1e-12);
    }
}
