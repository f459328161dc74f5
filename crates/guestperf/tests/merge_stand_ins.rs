//! `gp-batch --shard` and `--merge` with stand-in stages (shell scripts in GUESTPERF_STAGE_DIR,
//! as tests/batch_stand_ins.rs): parts run on "different hardware" (the stand-in report's header
//! names the CPU model it is given) are refused when merged, and kept apart with
//! `--by-hardware`; parts of the same hardware merge into one summary. The capability probe
//! still asks the real QEMU; nothing boots. The real pipeline over ssh is tests/many_hosts.rs.

mod common;

use std::path::Path;
use std::process::Command;

use common::run;

/// The stand-in gp-migrate, once it has `$name` and has passed its input on.
const MIGRATE: &str = r#"echo "NAME=$name"
"#;
/// A report whose header says it ran on a CPU named `$CPU_MODEL`.
const COLLECT: &str = r#"#!/bin/sh
line=$(grep '^NAME=')
name=${line#NAME=}
cat <<JSON
{"hardware":{"cpus":1,"mem":0.25},"scenario":{"name":"$name"},"progress_history":[],
 "guest_timings":[],"qemu_timings":[],"vcpu_timings":[],"result":{"success":true},
 "summary":{"outcome":"completed","total_time_ms":1000,"downtime_ms":10},
 "guestperf_rs":{"version":"0.1.0","header":{"time_s":1.0,"tool":"gp-launch","version":"0.1.0",
  "argv":[],"qemu_binary":"q","qemu_version":"10.0.2","accel":"tcg","kernel":"k","initrd":"i",
  "kernel_cmdline":"","transport":"unix","dst_host":null,
  "hardware":{"cpus":1,"mem_bytes":268435456,"src_cpu_bind":[],"src_mem_bind":[],
   "dst_cpu_bind":[],"dst_mem_bind":[],"prealloc_pages":false,"huge_pages":false,
   "locked_pages":false,"dirty_ring_size":0},
  "host":{"hostname":"$HOST_NAME","cpu_model":"$CPU_MODEL","kernel_release":"6.1","cpus":2}}}}
JSON
"#;
/// `gp-batch` with the stand-in stages, as if on a host with `cpu` and `host`.
fn gp_batch(stages: &Path, cpu: &str, host: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gp-batch"));
    cmd.env("GUESTPERF_STAGE_DIR", stages)
        .env("CPU_MODEL", cpu)
        .env("HOST_NAME", host)
        .args([
            "--accel",
            "tcg",
            "--filter",
            "post-copy-iters/*-[01]",
            "--repeat",
            "2",
        ]);
    cmd
}

/// `gp-batch --merge` of `parts` with `options` into `output`.
fn merge(parts: &[&Path], options: &[&str], output: &Path) -> std::process::Output {
    run(Command::new(env!("CARGO_BIN_EXE_gp-batch"))
        .arg("--merge")
        .args(parts)
        .args(options)
        .arg("--output")
        .arg(output))
}

fn summary_runs(dir: &Path) -> Vec<String> {
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("summary.json")).unwrap()).unwrap();
    let mut runs = Vec::new();
    for c in v["comparisons"].as_array().unwrap() {
        for s in c["scenarios"].as_array().unwrap() {
            for r in s["runs"].as_array().unwrap() {
                runs.push(r["file"].as_str().unwrap().to_string());
            }
        }
    }
    runs.sort();
    runs
}

#[test]
fn parts_from_different_hardware_are_refused_or_kept_apart() {
    let dir = tempfile::tempdir().unwrap();
    let stages = common::stand_ins::write_stages(dir.path(), MIGRATE, COLLECT);
    // Part 1 on an "Alpha" host, part 2 on a "Beta" host, and part 2 again on another Alpha.
    let part = |k: u32, cpu: &str, host: &str, out: &str| {
        let out = dir.path().join(out);
        let done = run(gp_batch(&stages, cpu, host)
            .args(["--shard", &format!("{k}/2"), "--output"])
            .arg(&out));
        assert!(done.status.success());
        out
    };
    let p1 = part(1, "Alpha CPU", "h1", "p1");
    let p2_beta = part(2, "Beta CPU", "h2", "p2-beta");
    let p2_alpha = part(2, "Alpha CPU", "h3", "p2-alpha");

    // Every scenario's two runs are split between the parts: mixing Alpha and Beta is refused.
    let refused_dir = dir.path().join("refused");
    let refused = merge(&[&p1, &p2_beta], &[], &refused_dir);
    assert_eq!(refused.status.code(), Some(1));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("nothing merged: the runs of 2 scenarios come from different hardware"),
        "{err}"
    );
    assert!(err.contains("Alpha CPU x2, QEMU 10.0.2 (tcg)"), "{err}");
    assert!(err.contains("--by-hardware"), "{err}");
    assert!(!refused_dir.join("summary.json").exists());

    // --by-hardware: one directory per kind, each with its own runs and summary.
    let split = dir.path().join("split");
    let done = merge(&[&p1, &p2_beta], &["--by-hardware"], &split);
    assert!(done.status.success());
    let alpha = split.join("alpha-cpu-x2-qemu-10-0-2-tcg");
    let beta = split.join("beta-cpu-x2-qemu-10-0-2-tcg");
    let from = |p: &Path| -> Vec<String> {
        let m: serde_json::Value = serde_json::from_slice(
            &std::fs::read(p.join("shard-1-of-2.json"))
                .unwrap_or_else(|_| std::fs::read(p.join("shard-2-of-2.json")).unwrap()),
        )
        .unwrap();
        m["runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(summary_runs(&alpha).len(), from(&p1).len());
    assert_eq!(summary_runs(&beta).len(), from(&p2_beta).len());
    let findings: serde_json::Value =
        serde_json::from_slice(&std::fs::read(split.join("merge.json")).unwrap()).unwrap();
    assert_eq!(findings["strata"].as_array().unwrap().len(), 2);
    assert_eq!(findings["mixed_hardware"].as_array().unwrap().len(), 2);

    // The same hardware on two hosts: one merged summary of all four runs.
    let one = dir.path().join("one");
    let done = merge(&[&p1, &p2_alpha], &[], &one);
    assert!(done.status.success());
    assert_eq!(
        summary_runs(&one),
        [
            "post-copy-iters/post-copy-iters-0.json",
            "post-copy-iters/post-copy-iters-0.r2.json",
            "post-copy-iters/post-copy-iters-1.json",
            "post-copy-iters/post-copy-iters-1.r2.json",
        ]
    );

    // Merging again into the same directory is fine; a different file for a run is refused.
    let again = merge(&[&p1, &p2_alpha], &[], &one);
    assert!(again.status.success());
    let conflict = merge(&[&p2_beta], &["--filter", "post-copy-iters/*-[01]"], &one);
    assert_eq!(conflict.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&conflict.stderr).contains("already holds other files"));
}
