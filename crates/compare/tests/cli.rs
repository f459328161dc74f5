//! gp-compare end to end: report directories, files and stdin in; compare.json, compare.md and
//! the chart out; exit statuses; bad input. Through the real binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use gp_compare::stats::bootstrap::rng_for;
use gp_records::migrate::Outcome;
use gp_testkit::ab::{self as synth, arm_reports, write_batch_dir, Spec};
use serde_json::Value;

fn gp_compare(args: &[&dyn AsRef<std::ffi::OsStr>], stdin: Option<&[u8]>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gp-compare"));
    for a in args {
        cmd.arg(a);
    }
    gp_testkit::bins::run_logged(&mut cmd, stdin)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// gp-compare with `args` (and `stdin`) must exit with `code`: its stderr.
fn exit_stderr(code: i32, args: &[&dyn AsRef<std::ffi::OsStr>], stdin: Option<&[u8]>) -> String {
    let o = gp_compare(args, stdin);
    assert_eq!(o.status.code(), Some(code));
    stderr(&o)
}

fn read_json(dir: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(dir.join("compare.json")).unwrap()).unwrap()
}

/// Two gp-batch directories: `scenarios` x `runs`, B = A x `shift`, CV 9 %.
fn batch_dirs(root: &Path, scenarios: usize, runs: u32, shift: f64) -> (PathBuf, PathBuf) {
    let mut rng = rng_for(11, "cli");
    let (a, b) = (root.join("a"), root.join("b"));
    write_batch_dir(
        &a,
        "cmp",
        &arm_reports(scenarios, runs, 1.0, 0.09, "dev", &mut rng),
    )
    .unwrap();
    write_batch_dir(
        &b,
        "cmp",
        &arm_reports(scenarios, runs, shift, 0.09, "dev", &mut rng),
    )
    .unwrap();
    (a, b)
}

fn figure<'a>(json: &'a Value, scenario: &str, id: &str) -> &'a Value {
    let sc = json["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == scenario)
        .unwrap_or_else(|| panic!("no scenario {scenario}"));
    sc["figures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == id)
        .unwrap()
}

#[test]
fn two_batch_directories_find_a_twenty_percent_regression() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = batch_dirs(dir.path(), 2, 10, 1.2);
    let out = dir.path().join("out");
    let o = gp_compare(&[&a, &b, &"-o", &out], None);
    assert!(o.status.success());
    let json = read_json(&out);
    assert_eq!(json["a"]["runs"]["completed"], 20);
    assert_eq!(json["scenarios"].as_array().unwrap().len(), 2);
    let f = figure(&json, "scenario-000", "total_time_ms");
    assert_eq!(f["verdict"], "worse", "{f}");
    assert_eq!(f["a"]["n"], 10);
    let change = f["change"].as_f64().unwrap();
    let [lo, hi] = [f["ci"][0].as_f64().unwrap(), f["ci"][1].as_f64().unwrap()];
    assert!(lo < change && change < hi && lo > 0.0, "{f}");
    assert!(f["p"].as_f64().unwrap() < 0.05);
    assert!(f["mde"].as_f64().unwrap() > 0.0);
    assert_eq!(f["runs_needed"].as_array().unwrap().len(), 3);
    let md = std::fs::read_to_string(out.join("compare.md")).unwrap();
    assert!(
        md.contains("| total time |") && md.contains("**worse**"),
        "{md}"
    );
    assert!(md.contains("## Noise and runs needed"));
    let svg = std::fs::read_to_string(out.join("compare.svg")).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("scenario-001"),
        "{}",
        &svg[..200]
    );
    assert!(svg.contains("worse +"));
    // The same seed gives the same file.
    let out2 = dir.path().join("out2");
    assert!(gp_compare(&[&a, &b, &"-o", &out2], None).status.success());
    assert_eq!(
        std::fs::read(out.join("compare.json")).unwrap(),
        std::fs::read(out2.join("compare.json")).unwrap()
    );
}

#[test]
fn the_same_runs_on_both_sides_are_the_noise_floor() {
    let dir = tempfile::tempdir().unwrap();
    let (a, _) = batch_dirs(dir.path(), 1, 8, 1.0);
    let out = dir.path().join("out");
    let o = gp_compare(&[&a, &a, &"-o", &out, &"--fail-on-regression", &"0"], None);
    assert!(o.status.success());
    let json = read_json(&out);
    assert_eq!(json["same_runs"], true);
    for f in json["scenarios"][0]["figures"].as_array().unwrap() {
        // The synthetic reports are pre-copy runs without QEMU's tracepoints: they have no
        // post-copy or breakdown figures to compare.
        if f["verdict"] == "not_compared" {
            let id = f["id"].as_str().unwrap();
            assert!(
                id.starts_with("postcopy_") || id.starts_with("downtime_"),
                "{f}"
            );
            continue;
        }
        assert_eq!(f["verdict"], "no_change", "{f}");
        assert_eq!(f["p"], 1.0);
        assert!(f["runs_needed"][0]["runs_per_arm"].as_u64().unwrap() >= 5);
    }
    let md = std::fs::read_to_string(out.join("compare.md")).unwrap();
    assert!(md.contains("**A/A**"), "{md}");
}

#[test]
fn ndjson_on_stdin_is_one_arm() {
    let dir = tempfile::tempdir().unwrap();
    let (a, _) = batch_dirs(dir.path(), 1, 6, 1.0);
    let mut rng = rng_for(5, "stdin");
    let mut ndjson = Vec::new();
    for (_, _, r) in arm_reports(1, 6, 1.0, 0.09, "dev", &mut rng) {
        serde_json::to_writer(&mut ndjson, &r).unwrap();
        ndjson.extend_from_slice(b"\n\n");
    }
    let out = dir.path().join("out");
    let o = gp_compare(
        &[
            &a,
            &"-",
            &"-o",
            &out,
            &"--label-a",
            &"old",
            &"--label-b",
            &"new",
        ],
        Some(&ndjson),
    );
    assert!(o.status.success());
    let json = read_json(&out);
    assert_eq!(json["b"]["label"], "new");
    assert_eq!(json["b"]["runs"]["completed"], 6);
    assert_eq!(json["b"]["sources"][0], "-");
    assert_eq!(figure(&json, "scenario-000", "downtime_ms")["b"]["n"], 6);
}

#[test]
fn a_scenario_on_one_side_is_listed_not_compared() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = batch_dirs(dir.path(), 2, 5, 1.0);
    // A also ran scenario-extra; B skipped scenario-skip (gp-batch's skip file).
    let t = synth::template();
    let mut rng = rng_for(1, "extra");
    let extra: Vec<_> = (1..=3)
        .map(|k| {
            let spec = Spec {
                scenario: "scenario-extra".into(),
                host: "dev".into(),
                outcome: Outcome::Completed,
                shift: 1.0,
                cv: 0.09,
            };
            (spec.scenario.clone(), k, synth::report(&t, &spec, &mut rng))
        })
        .collect();
    write_batch_dir(&a, "cmp", &extra).unwrap();
    std::fs::write(
        b.join("cmp/scenario-skip.skipped.json"),
        r#"{"comparison":"cmp","scenario":"scenario-skip","reason":"QEMU has no 'compress' capability","decided_by":"probe","time_s":1.0}"#,
    )
    .unwrap();
    let out = dir.path().join("out");
    assert!(gp_compare(&[&a, &b, &"-o", &out], None).status.success());
    let json = read_json(&out);
    assert_eq!(json["scenarios"].as_array().unwrap().len(), 2);
    assert_eq!(json["only_in_a"][0]["name"], "scenario-extra");
    assert_eq!(json["only_in_a"][0]["runs"]["completed"], 3);
    assert_eq!(json["only_in_b"][0]["name"], "scenario-skip");
    assert!(json["only_in_b"][0]["skipped"]
        .as_str()
        .unwrap()
        .contains("compress"));
    let md = std::fs::read_to_string(out.join("compare.md")).unwrap();
    assert!(
        md.contains("## Only in A (not compared)") && md.contains("scenario-extra: 3 completed")
    );
    assert!(md.contains("## Only in B (not compared)"));
}

#[test]
fn failed_runs_are_counted_and_kept_out_of_the_figures() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = batch_dirs(dir.path(), 1, 6, 1.0);
    let t = synth::template();
    let mut rng = rng_for(2, "failed");
    let mut bad = Vec::new();
    for (k, outcome) in [
        (7, Outcome::Failed),
        (8, Outcome::Cancelled),
        (9, Outcome::Failed),
    ] {
        let spec = Spec {
            scenario: "scenario-000".into(),
            host: "dev".into(),
            outcome,
            shift: 100.0, // figures that would wreck the comparison if they were mixed in
            cv: 0.09,
        };
        bad.push((spec.scenario.clone(), k, synth::report(&t, &spec, &mut rng)));
    }
    write_batch_dir(&b, "cmp", &bad).unwrap();
    std::fs::write(
        b.join("cmp/scenario-000.r10.error.json"),
        r#"{"comparison":"cmp","scenario":"scenario-000","run":10,"stage":"gp-launch","status":1,"message":"QEMU exited","time_s":1.0}"#,
    )
    .unwrap();
    let out = dir.path().join("out");
    assert!(gp_compare(&[&a, &b, &"-o", &out], None).status.success());
    let json = read_json(&out);
    let runs_b = &json["scenarios"][0]["runs_b"];
    assert_eq!(
        (
            runs_b["completed"].as_u64(),
            runs_b["failed"].as_u64(),
            runs_b["cancelled"].as_u64(),
            runs_b["error"].as_u64()
        ),
        (Some(6), Some(2), Some(1), Some(1)),
        "{runs_b}"
    );
    let f = figure(&json, "scenario-000", "guest_stall_ms");
    assert_eq!(f["b"]["n"], 6, "only completed runs' figures");
    assert_ne!(f["verdict"], "worse", "{f}");
    let completion = &json["scenarios"][0]["completion"];
    assert!((completion["b_pct"].as_f64().unwrap() - 60.0).abs() < 1e-9);
    let md = std::fs::read_to_string(out.join("compare.md")).unwrap();
    assert!(
        md.contains("B: 6 completed, 2 failed, 1 cancelled, 1 pipeline error"),
        "{md}"
    );
    assert!(md.contains("figures left out"));
}

#[test]
fn fail_on_regression_exits_three_only_past_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = batch_dirs(dir.path(), 1, 10, 1.2);
    let out = dir.path().join("out");
    let o = gp_compare(&[&a, &b, &"-o", &out, &"--fail-on-regression", &"10"], None);
    assert_eq!(o.status.code(), Some(gp_compare::EXIT_REGRESSION as i32));
    assert!(stderr(&o).contains("regression: scenario-000 / total_time_ms: +"));
    // Files are written either way.
    assert!(out.join("compare.json").is_file());
    let o = gp_compare(&[&a, &b, &"-o", &out, &"--fail-on-regression", &"90"], None);
    assert_eq!(o.status.code(), Some(0));
    // Better is never a regression.
    let o = gp_compare(&[&b, &a, &"-o", &out, &"--fail-on-regression", &"0"], None);
    assert_eq!(o.status.code(), Some(0));
    assert!(read_json(&out)["improvements"].as_u64().unwrap() > 0);
}

#[test]
fn png_chart_by_extension() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = batch_dirs(dir.path(), 3, 5, 1.1);
    let out = dir.path().join("out");
    assert!(
        gp_compare(&[&a, &b, &"-o", &out, &"--chart", &"chart.png"], None)
            .status
            .success()
    );
    let img = image::open(out.join("chart.png")).expect("the PNG decodes");
    assert!(img.width() >= 640 && img.height() > 1000);
}

#[test]
fn hosts_are_compared_within_not_pooled() {
    let dir = tempfile::tempdir().unwrap();
    let t = synth::template();
    let mut rng = rng_for(9, "hosts");
    let mut make = |host: &str, shift: f64, first: u32, n: u32| -> Vec<_> {
        (first..first + n)
            .map(|k| {
                let spec = Spec {
                    scenario: "s".into(),
                    host: host.into(),
                    outcome: Outcome::Completed,
                    shift,
                    cv: 0.05,
                };
                (spec.scenario.clone(), k, synth::report(&t, &spec, &mut rng))
            })
            .collect()
    };
    // Host "slow" is 3x slower than "fast"; B is 10 % slower on both; A also ran on "third".
    let mut a = make("fast", 1.0, 1, 6);
    a.extend(make("slow", 3.0, 7, 6));
    a.extend(make("third", 1.0, 13, 4));
    let mut b = make("fast", 1.1, 1, 6);
    b.extend(make("slow", 3.3, 7, 6));
    let (da, db) = (dir.path().join("a"), dir.path().join("b"));
    write_batch_dir(&da, "c", &a).unwrap();
    write_batch_dir(&db, "c", &b).unwrap();
    let out = dir.path().join("out");
    assert!(gp_compare(&[&da, &db, &"-o", &out], None).status.success());
    let json = read_json(&out);
    let f = figure(&json, "s", "total_time_ms");
    assert_eq!(f["per_host"].as_array().unwrap().len(), 2, "{f}");
    assert_eq!(f["a"]["n"], 12, "third's runs are left out");
    let change = f["change"].as_f64().unwrap();
    assert!((change - 10.0).abs() < 6.0, "{change}");
    let notes = json["scenarios"][0]["notes"].to_string();
    assert!(notes.contains("on host third left out"), "{notes}");
}

#[test]
fn bad_input_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let (a, _) = batch_dirs(dir.path(), 1, 3, 1.0);
    let out = dir.path().join("out");
    // A record stream instead of a report.
    let stream = dir.path().join("stream.json");
    std::fs::write(
        &stream,
        "{\"type\":\"launch\",\"time_s\":1}\n{\"type\":\"vm\"}\n",
    )
    .unwrap();
    let err = exit_stderr(1, &[&a, &stream, &"-o", &out], None);
    assert!(err.starts_with("gp-compare: arm B: "), "{err}");
    assert!(err.contains("gp-collect"), "{err}");
    // A missing path.
    let err = exit_stderr(1, &[&a, &"/nonexistent/x.json", &"-o", &out], None);
    assert!(err.contains("/nonexistent/x.json"));
    // An empty directory.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let err = exit_stderr(1, &[&empty, &a, &"-o", &out], None);
    assert!(
        err.contains("holds no reports: give gp-collect reports"),
        "{err}"
    );
    // Garbage on stdin names the line.
    let err = exit_stderr(
        1,
        &[&a, &"-", &"-o", &out],
        Some(b"{\"hardware\": 1}\nnot json\n"),
    );
    assert!(
        err.contains("stdin line 1: JSON but not a guestperf report"),
        "{err}"
    );
    // Command-line mistakes: status 2, with the fix.
    let err = exit_stderr(2, &[&a, &"-o", &out], None);
    assert!(err.contains("give A and B"));
    let err = exit_stderr(2, &[&"-", &"-", &"-o", &out], Some(b""));
    assert!(err.contains("stdin (-) can feed only one arm"));
    let err = exit_stderr(2, &[&a, &a, &"-o", &out, &"--chart", &"c.gif"], None);
    assert!(err.contains(".svg or .png"));
    exit_stderr(2, &[&a, &a, &"-o", &out, &"--alpha", &"5"], None);
    // Nothing was written by any of these.
    assert!(!out.join("compare.json").exists());
}

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

#[test]
fn real_reports_give_their_summary_figures() {
    let report = gp_plot::load_report(&repo(
        "crates/plot/tests/fixtures/gp-collect-tcg-precopy.json",
    ))
    .unwrap();
    let run = gp_compare::Run::from_report(&report, "x".into());
    let s = report.summary.as_ref().unwrap();
    let get = |id: &str| {
        let i = gp_compare::figures::FIGURES
            .iter()
            .position(|f| f.id == id)
            .unwrap();
        run.figures[i]
    };
    assert_eq!(run.outcome, gp_compare::RunOutcome::Completed);
    assert_eq!(run.host, "vm");
    assert_eq!(get("total_time_ms"), s.total_time_ms.map(|v| v as f64));
    assert_eq!(get("downtime_ms"), s.downtime_ms.map(|v| v as f64));
    assert_eq!(
        get("guest_stall_ms"),
        s.guest_stall.as_ref().map(|g| g.stall_ms)
    );
    assert!(get("src_cpu_s").is_some() && get("dst_cpu_s").is_some());
    assert!(run.qemu.as_deref().unwrap().starts_with("QEMU "));
    // An original guestperf result: no summary, so no figures, and not counted as completed
    // unless it says it succeeded.
    let original =
        gp_plot::load_report(&repo("crates/plot/tests/fixtures/original-precopy.json")).unwrap();
    let run = gp_compare::Run::from_report(&original, "o".into());
    assert!(run.figures.iter().all(Option::is_none));
    assert_eq!(run.host, "unknown");
}

#[test]
fn the_hostile_report_corpus_never_panics_and_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (a, _) = batch_dirs(dir.path(), 1, 3, 1.0);
    let out = dir.path().join("out");
    let mut checked = 0;
    for kind in ["bad", "odd"] {
        let corpus = repo("crates/faults/corpus/reports").join(kind);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&corpus)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        for file in files {
            let o = gp_compare(&[&a, &file, &"-o", &out], None);
            match o.status.code() {
                Some(0) => {}
                Some(1) => {
                    let name = file.file_name().unwrap().to_string_lossy().into_owned();
                    assert!(stderr(&o).contains(&name), "{name}: {}", stderr(&o));
                }
                other => panic!("{}: status {other:?}", file.display()),
            }
            checked += 1;
        }
    }
    assert!(checked >= 20, "{checked}");
}
