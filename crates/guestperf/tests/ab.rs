//! `gp-batch --ab-a --ab-b` on real VMs under TCG: an A/B whose answer is physically certain
//! (post-copy of a 256 MiB guest at 16 against 128 MiB/s) judged with the right sign from 5 runs
//! per arm, run interleaved and resumable; and an A/A not flagged.

mod common;

use std::path::Path;
use std::process::Command;

use common::{require_real_run, run, SMALL};
use serde_json::Value;

fn ab(out: &Path, a: &str, b: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gp-batch"));
    cmd.args(SMALL)
        .args([
            "--filter",
            "post-copy-iters/post-copy-iters-0",
            "--repeat",
            "5",
            "--ab-a",
            a,
            "--ab-b",
            b,
            "--output",
        ])
        .arg(out);
    cmd
}

fn json(path: &Path) -> Value {
    serde_json::from_slice(
        &std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap()
}

/// Each arm's reports, by run number: (start time, report).
fn reports(dir: &Path) -> Vec<(u32, f64, Value)> {
    (1..=5)
        .map(|k| {
            let name = if k == 1 {
                "post-copy-iters-0.json".to_string()
            } else {
                format!("post-copy-iters-0.r{k}.json")
            };
            let r = json(&dir.join("post-copy-iters").join(name));
            let t = r["guestperf_rs"]["header"]["time_s"].as_f64().unwrap();
            (k, t, r)
        })
        .collect()
}

/// Whether QEMU said it was in post-copy: a progress snapshot or a MIGRATION event with status
/// `postcopy-active`, after gp-migrate asked for it.
fn reached_post_copy(r: &Value) -> bool {
    let x = &r["guestperf_rs"];
    let asked = x["actions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["action"] == "postcopy");
    let status = |v: &Value| v == "postcopy-active";
    let polled = r["progress_history"]
        .as_array()
        .unwrap()
        .iter()
        .chain(x["progress"].as_array().into_iter().flatten())
        .any(|p| status(&p["status"]));
    let event = x["events"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|e| status(&e["data"]["status"]));
    if !(asked && (polled || event)) {
        eprintln!(
            "asked {asked}, polled {polled}, event {event}: statuses {:?}, events {:?}",
            r["progress_history"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["status"].to_string())
                .collect::<Vec<_>>(),
            x["events"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|e| format!("{} {}", e["event"], e["data"]))
                .collect::<Vec<_>>()
        );
    }
    asked && (polled || event)
}

fn figure<'a>(compare: &'a Value, id: &str) -> &'a Value {
    compare["scenarios"][0]["figures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == id)
        .unwrap_or_else(|| panic!("no {id} in {compare}"))
}

#[test]
fn post_copy_at_128_against_16_mib_s_is_better_and_the_arms_interleave() {
    let _lock = gp_testkit::vm_test_lock();
    require_real_run();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ab");
    // A 1 ms downtime limit: pre-copy cannot converge before the switch, in either arm.
    // 8 times the bandwidth: a cold guest's migration time varies by half from run to run
    // under TCG (the A/A below), so the arms must be far apart for every B to beat every A.
    let slow = "--bandwidth 16 --downtime 1 --parameter max-postcopy-bandwidth=16777216";
    let fast = "--bandwidth 128 --downtime 1 --parameter max-postcopy-bandwidth=134217728";
    let done = run(&mut ab(&out, slow, fast));
    assert!(done.status.success(), "the A/B failed");

    let (a, b) = (reports(&out.join("a")), reports(&out.join("b")));
    for (k, _, r) in a.iter().chain(&b) {
        assert_eq!(r["summary"]["outcome"], "completed", "run {k}");
        // Post-copy was reached: --post-copy-iters 0 switches after the first pass, and the
        // downtime limit keeps pre-copy from converging first.
        assert!(reached_post_copy(r), "run {k} never reached post-copy");
    }
    // Interleaved A B, B A, A B, ...
    let mut order: Vec<(f64, String)> = a
        .iter()
        .map(|(k, t, _)| (*t, format!("a{k}")))
        .chain(b.iter().map(|(k, t, _)| (*t, format!("b{k}"))))
        .collect();
    order.sort_by(|x, y| x.0.total_cmp(&y.0));
    let order: Vec<String> = order.into_iter().map(|(_, n)| n).collect();
    assert_eq!(
        order,
        ["a1", "b1", "b2", "a2", "a3", "b3", "b4", "a4", "a5", "b5"]
    );

    // B (128 MiB/s) is better, with the right sign, from 5 runs per arm.
    let compare = json(&out.join("compare/compare.json"));
    let total = figure(&compare, "total_time_ms");
    assert_eq!(total["verdict"], "better", "{total}");
    assert!(total["change"].as_f64().unwrap() < 0.0, "{total}");
    eprintln!(
        "total time: a median {} ms, b median {} ms, change {}, 95% CI {}, p {}",
        total["a"]["median"], total["b"]["median"], total["change"], total["ci"], total["p"]
    );
    assert!(out.join("compare/compare.md").is_file());
    assert!(out.join("a/summary.md").is_file() && out.join("b/summary.md").is_file());

    // Resumable: the same command again runs nothing and compares again.
    let mtime = |p: &Path| p.metadata().unwrap().modified().unwrap();
    let first = out.join("a/post-copy-iters/post-copy-iters-0.json");
    let before = mtime(&first);
    let again = run(&mut ab(&out, slow, fast));
    assert!(again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("A/B: 0 runs to do"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_eq!(mtime(&first), before);
    // Other arms in the same directory are refused.
    let other = run(&mut ab(&out, slow, slow));
    assert_eq!(other.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&other.stderr).contains("holds an A/B of other arms"));
}

#[test]
fn an_a_a_is_not_flagged_at_the_anchors_rigor() {
    // Another VM test may run beside it: the arms alternate (A B B A ...), so what the other
    // test does falls on both arms alike, and a false flag at p < 0.01 needs every run of one
    // arm slower than every run of the other.
    let _lock = gp_testkit::vm_test_lock();
    require_real_run();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("aa");
    let same = "--bandwidth 128 --downtime 1 --parameter max-postcopy-bandwidth=134217728";
    let done = run(&mut ab(&out, same, same));
    assert!(done.status.success(), "the A/A failed");
    assert!(out.join("compare/compare.json").is_file());
    // Judged again at p < 0.01, Firecracker's threshold: at gp-compare's default 0.05 one A/A in
    // twenty may rightly flag something (its rate is tested on seeded trials, tests/trials.rs),
    // which would make this single draw a flaky test.
    let strict = dir.path().join("strict");
    let judged = run(Command::new(common::bin_dir().join("gp-compare"))
        .arg(out.join("a"))
        .arg(out.join("b"))
        .arg("--alpha")
        .arg("0.01")
        .arg("--output")
        .arg(&strict));
    assert!(judged.status.success(), "gp-compare failed");
    let compare = json(&strict.join("compare.json"));
    for f in compare["scenarios"][0]["figures"].as_array().unwrap() {
        assert!(
            f["verdict"] != "better" && f["verdict"] != "worse",
            "A/A flagged {}: {f}",
            f["id"]
        );
    }
    assert_eq!(compare["regressions"], serde_json::json!([]));
    let total = figure(&compare, "total_time_ms");
    eprintln!(
        "A/A total time: a median {} ms, b median {} ms, change {}, smallest detectable {}",
        total["a"]["median"], total["b"]["median"], total["change"], total["mde"]
    );
}
