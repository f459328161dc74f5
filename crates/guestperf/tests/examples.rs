//! Every script in examples/ runs as it stands, with small settings from the environment
//! (GP_MEM, GP_SLEEP, GP_ACCEL, GP_OUT; see examples/common.sh), and produces what it says.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::{bin_dir, require_real_run, run};
use gp_records::report::Report;
use gp_records::Outcome;

/// The scripts this test knows how to check; a new script must be added here.
const CHECKED: &[&str] = &[
    "batch.sh",
    "oneshot-defaults.sh",
    "oneshot-dst-host.sh",
    "oneshot-numa.sh",
    "oneshot-post-copy.sh",
    "pipeline-defaults.sh",
    "pipeline-dst-host.sh",
    "pipeline-numa.sh",
    "pipeline-post-copy.sh",
    "plot.sh",
    "samples-jq.sh",
];

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

/// Runs `examples/NAME` with small settings; returns its output and its GP_OUT directory.
fn run_example(name: &str, extra_env: &[(&str, &str)]) -> (Output, tempfile::TempDir) {
    let _lock = gp_testkit::vm_test_lock();
    require_real_run();
    assert!(
        gp_qemu::bind::find_on_path("jq").is_some(),
        "jq is not installed: run scripts/setup-host.sh"
    );
    let out_dir = tempfile::tempdir().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    // The script and all it starts end with this test, even if the test binary is killed.
    let mut cmd = gp_testkit::bash_ending_with_test();
    cmd.arg(examples_dir().join(name))
        .env("PATH", path)
        .env("GP_MEM", "256M")
        .env("GP_SLEEP", "1")
        .env("GP_COLD", "1")
        .env("GP_ACCEL", "tcg")
        .env("GP_OUT", out_dir.path());
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let out = run(&mut cmd);
    assert!(out.status.success(), "examples/{name} failed");
    (out, out_dir)
}

fn report(path: &Path) -> Report {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn completed(r: &Report) {
    let s = r.summary.as_ref().expect("summary");
    assert_eq!(s.outcome, Some(Outcome::Completed), "{}", s.reason);
}

#[test]
fn every_example_script_is_checked_here() {
    let mut found: Vec<String> = std::fs::read_dir(examples_dir())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".sh") && n != "common.sh")
        .collect();
    found.sort();
    assert_eq!(found, CHECKED, "add a test for each new example");
    for name in CHECKED {
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &examples_dir().join(name).metadata().unwrap().permissions(),
        );
        assert!(mode & 0o111 != 0, "examples/{name} is not executable");
    }
}

#[test]
fn oneshot_defaults() {
    let (out, dir) = run_example("oneshot-defaults.sh", &[]);
    completed(&report(&dir.path().join("result.json")));
    assert!(String::from_utf8_lossy(&out.stdout).contains(": completed, total "));
}

#[test]
fn pipeline_defaults() {
    let (out, dir) = run_example("pipeline-defaults.sh", &[]);
    let r = report(&dir.path().join("result.json"));
    completed(&r);
    assert!(
        !r.guestperf_rs.unwrap().samples.is_empty(),
        "gp-sample was in the pipeline"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(": completed, total "));
}

#[test]
fn oneshot_post_copy() {
    let (out, dir) = run_example("oneshot-post-copy.sh", &[]);
    let r = report(&dir.path().join("result-post-copy.json"));
    assert!(r.scenario.post_copy && r.scenario.post_copy_iters == 5);
    completed(&r);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("post-copy: completed"));
}

#[test]
fn pipeline_post_copy() {
    let (_, dir) = run_example("pipeline-post-copy.sh", &[]);
    let r = report(&dir.path().join("result-post-copy.json"));
    assert!(r.scenario.post_copy && r.scenario.post_copy_iters == 5);
    completed(&r);
}

/// A NUMA example's report: 2 vCPUs, the source's CPUs bound.
fn numa_report(script: &str) -> Report {
    let (_, dir) = run_example(script, &[]);
    let r = report(&dir.path().join("result-numa.json"));
    assert_eq!(r.hardware.cpus, 2);
    assert!(!r.hardware.src_cpu_bind.is_empty());
    r
}

#[test]
fn oneshot_numa() {
    let r = numa_report("oneshot-numa.sh");
    assert!(!r.hardware.dst_mem_bind.is_empty());
    completed(&r);
}

#[test]
fn pipeline_numa() {
    let r = numa_report("pipeline-numa.sh");
    assert!(!r.hardware.dst_cpu_bind.is_empty());
    completed(&r);
}

#[test]
fn samples_into_jq() {
    let (out, dir) = run_example("samples-jq.sh", &[]);
    let text = std::fs::read_to_string(dir.path().join("samples.txt")).unwrap();
    assert_eq!(text, String::from_utf8_lossy(&out.stdout));
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines.len() >= 2,
        "one line per sample after the first: {text}"
    );
    for line in &lines {
        let (who, pct) = line.split_once(": ").unwrap();
        assert!(
            who.starts_with("src QEMU ") || who.starts_with("dst QEMU "),
            "{line}"
        );
        let pct: f64 = pct.strip_suffix("% of one CPU").unwrap().parse().unwrap();
        assert!((0.0..=400.0).contains(&pct), "{line}");
    }
    assert!(lines.iter().any(|l| l.starts_with("src QEMU ")));
}

#[test]
fn plot() {
    let (_, dir) = run_example("plot.sh", &[]);
    completed(&report(&dir.path().join("result.json")));
    for chart in ["result.svg", "result-cpu.svg"] {
        let svg = std::fs::read_to_string(dir.path().join(chart)).unwrap();
        assert!(svg.contains("<svg"), "{chart} is not an SVG");
    }
}

#[test]
fn batch() {
    let (out, dir) = run_example(
        "batch.sh",
        &[
            ("GP_FILTER", "post-copy-iters/post-copy-iters-1"),
            ("GP_REPEAT", "1"),
            // Post-copy made certain: at 64 MiB/s with a 1 ms downtime limit pre-copy cannot
            // converge before the switch (a cold guest under TCG sometimes let it, and the
            // summary rightly set that run apart as not having reached post-copy).
            ("GP_BANDWIDTH", "64"),
            ("GP_DOWNTIME", "1"),
        ],
    );
    let batch = dir.path().join("unix-localhost-256m-2cpu");
    completed(&report(
        &batch.join("post-copy-iters/post-copy-iters-1.json"),
    ));
    assert!(batch.join("summary.json").is_file());
    assert!(batch.join("post-copy-iters/post-copy-iters.svg").is_file());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("| post-copy-iters-1 | 1 | 1 completed |")
    );
}

#[test]
fn oneshot_dst_host_without_a_host_prints_the_pipeline() {
    let (out, _dir) = run_example("oneshot-dst-host.sh", &[("GP_DST_HOST", "")]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("--transport tcp --dst-host somehostname"),
        "{text}"
    );
    assert!(text.contains("| gp-collect"), "{text}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("set GP_DST_HOST="));
}

#[test]
fn pipeline_dst_host_without_a_host_prints_the_pipeline() {
    let (out, _dir) = run_example("pipeline-dst-host.sh", &[("GP_DST_HOST", "")]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(
            "gp-launch --mem 256M --accel tcg --dst-host somehostname --transport tcp | gp-sample"
        ),
        "{text}"
    );
}
