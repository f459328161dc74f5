//! Writes a synthetic report (see `gp_testkit::synth`) for benchmarks and trying gp-plot out.
//!
//! `cargo run --release -p gp-plot --example synth -- RECORDS [--post-copy] [--seed N] [--name S] > report.json`

use std::io::{BufWriter, Write};

fn main() {
    let mut spec = gp_testkit::synth::Spec::default();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--post-copy" => {
                spec.post_copy = true;
                spec.scenario = "postcopy".into();
            }
            "--seed" => spec.seed = args.next().and_then(|s| s.parse().ok()).expect("--seed N"),
            "--name" => spec.scenario = args.next().expect("--name NAME"),
            "--base" => {
                spec.base_ms_per_gb = args.next().and_then(|s| s.parse().ok()).expect("--base MS")
            }
            n => spec.records = n.parse().expect("RECORDS must be a number"),
        }
    }
    let report = gp_testkit::synth::report(&spec);
    let mut out = BufWriter::new(std::io::stdout().lock());
    serde_json::to_writer(&mut out, &report).expect("writing the report");
    out.write_all(b"\n")
        .and_then(|_| out.flush())
        .expect("writing the report");
}
