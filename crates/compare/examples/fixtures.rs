//! Writes two gp-batch-like directories of synthetic reports (see `gp_testkit::ab`), for the
//! benchmark and for trying gp-compare out.
//!
//! `cargo run --release -p gp-compare --example fixtures -- DIR_A DIR_B [SCENARIOS=3] [RUNS=10] [SHIFT=1.2] [CV=0.09] [SEED=1]`

use gp_compare::stats::bootstrap::rng_for;
use gp_testkit::ab::{arm_reports, write_batch_dir};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, default: &str| args.get(i).cloned().unwrap_or_else(|| default.into());
    let (dir_a, dir_b) = (arg(0, "compare-a"), arg(1, "compare-b"));
    let scenarios: usize = arg(2, "3").parse().expect("SCENARIOS is a number");
    let runs: u32 = arg(3, "10").parse().expect("RUNS is a number");
    let shift: f64 = arg(4, "1.2").parse().expect("SHIFT is a number");
    let cv: f64 = arg(5, "0.09").parse().expect("CV is a number");
    let seed: u64 = arg(6, "1").parse().expect("SEED is a number");
    let mut rng = rng_for(seed, "fixtures");
    let a = arm_reports(scenarios, runs, 1.0, cv, "dev", &mut rng);
    let b = arm_reports(scenarios, runs, shift, cv, "dev", &mut rng);
    write_batch_dir(dir_a.as_ref(), "synthetic", &a).expect("writing arm A");
    write_batch_dir(dir_b.as_ref(), "synthetic", &b).expect("writing arm B");
    eprintln!(
        "wrote {dir_a} and {dir_b}: {scenarios} scenarios x {runs} runs, B = A x {shift}, CV {cv}"
    );
}
