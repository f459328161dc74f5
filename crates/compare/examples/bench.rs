//! Times `gp_compare::compare` on in-memory arms: SCENARIOS x RUNS x 2 arms, every figure,
//! B 10 % slower at CV 9 % (bench/compare.sh runs it; the target is under 1 s for 100 x 30).
//!
//! `cargo run --release -p gp-compare --example bench -- [SCENARIOS=100] [RUNS=30] [REPEATS=5]`

use std::time::Instant;

use gp_compare::figures::FIGURES;
use gp_compare::stats::bootstrap::rng_for;
use gp_compare::{compare, Arm, Options, Run, RunOutcome};
use gp_testkit::ab::normal;

fn arm(label: &str, scenarios: usize, runs: usize, shift: f64, seed: u64) -> Arm {
    let mut rng = rng_for(seed, label);
    let mut out = Vec::new();
    for s in 0..scenarios {
        for _ in 0..runs {
            let mut run = Run::new(&format!("scenario-{s:03}"), "dev", RunOutcome::Completed);
            for (i, f) in FIGURES.iter().enumerate() {
                let base = 100.0 * (i + 1) as f64;
                let v = base * shift * (0.09 * normal(&mut rng)).exp();
                run = run.with(f.id, if f.unit == "ms" { v.round() } else { v });
            }
            out.push(run);
        }
    }
    Arm::new(label, out)
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("numbers: SCENARIOS RUNS REPEATS"))
        .collect();
    let scenarios = args.first().copied().unwrap_or(100);
    let runs = args.get(1).copied().unwrap_or(30);
    let repeats = args.get(2).copied().unwrap_or(5);
    let a = arm("A", scenarios, runs, 1.0, 1);
    let b = arm("B", scenarios, runs, 1.1, 2);
    let mut times = Vec::new();
    let mut result = None;
    for _ in 0..repeats {
        let t = Instant::now();
        result = Some(compare(
            &a,
            &b,
            &Options {
                resamples: std::env::var("RESAMPLES")
                    .ok()
                    .and_then(|r| r.parse().ok())
                    .unwrap_or(10_000),
                ..Options::default()
            },
        ));
        times.push(t.elapsed().as_secs_f64());
    }
    let c = result.expect("at least one repeat");
    times.sort_by(f64::total_cmp);
    let median = gp_records::stats::median(&mut times.clone()).unwrap_or(f64::NAN);
    println!(
        "{{\"scenarios\": {scenarios}, \"runs_per_arm\": {runs}, \"figures\": {}, \"repeats\": {repeats}, \
         \"best_s\": {:.3}, \"median_s\": {median:.3}, \"worse\": {}, \"family_size\": {}}}",
        FIGURES.len(),
        times[0],
        c.regressions.len(),
        c.family_size
    );
}
