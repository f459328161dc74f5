//! `gp-batch` end to end: two quick scenarios twice, one unsupported scenario, an interruption,
//! and resuming.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use common::{require_real_run, run, SMALL};
use gp_records::report::Report;

const FILTERS: &[&str] = &[
    "--filter",
    "post-copy-iters/post-copy-iters-[01]",
    "--filter",
    "compr-mt/compr-mt-threads-1",
];

fn batch(out: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gp-batch"));
    // Post-copy made certain: at 64 MiB/s with a 1 ms downtime limit pre-copy cannot converge
    // before the switch (with a cold guest at full speed it sometimes did, and the summary
    // rightly set such a run apart).
    cmd.args(SMALL)
        .args(["--bandwidth", "64", "--downtime", "1"])
        .args(["--repeat", "2", "--output"])
        .arg(out)
        .args(FILTERS);
    cmd
}

fn results(dir: &Path) -> Vec<PathBuf> {
    [
        "post-copy-iters-0.json",
        "post-copy-iters-1.json",
        "post-copy-iters-0.r2.json",
        "post-copy-iters-1.r2.json",
    ]
    .iter()
    .map(|f| dir.join("post-copy-iters").join(f))
    .collect()
}

fn mtimes(paths: &[PathBuf]) -> BTreeMap<PathBuf, SystemTime> {
    paths
        .iter()
        .filter(|p| p.exists())
        .map(|p| (p.clone(), p.metadata().unwrap().modified().unwrap()))
        .collect()
}

fn no_temporaries(dir: &Path) {
    for sub in [
        dir.to_path_buf(),
        dir.join("post-copy-iters"),
        dir.join("compr-mt"),
    ] {
        let Ok(entries) = std::fs::read_dir(&sub) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            assert!(
                !name.starts_with(".gp-tmp-"),
                "half-written file left: {}",
                e.path().display()
            );
        }
    }
}

#[test]
fn list_shows_every_comparison() {
    let out = run(Command::new(env!("CARGO_BIN_EXE_gp-batch")).arg("--list"));
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    // Every comparison in the library's table (whose own test pins the names and their order).
    for name in guestperf::batch::comparisons::all().iter().map(|c| c.name) {
        assert!(
            text.lines().any(|l| l.starts_with(&format!("{name}  ("))),
            "{name} missing:\n{text}"
        );
    }
    assert!(text.contains(
        "compr-xbzrle/compr-xbzrle-cache-20  --compression-xbzrle --compression-xbzrle-cache 20"
    ));
    let filtered =
        run(Command::new(env!("CARGO_BIN_EXE_gp-batch")).args(["--list", "--filter", "transport"]));
    let text = String::from_utf8(filtered.stdout).unwrap();
    assert_eq!(text.lines().count(), 4, "{text}");
    let none =
        run(Command::new(env!("CARGO_BIN_EXE_gp-batch")).args(["--list", "--filter", "nothing*"]));
    assert_eq!(none.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&none.stderr).contains("--filter nothing* selects no scenario"));
}

#[test]
fn two_scenarios_twice_with_a_skip_an_interruption_and_a_resume() {
    let _lock = gp_testkit::vm_test_lock();
    require_real_run();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("batch");
    let files = results(&out);

    // 1. Interrupt the batch as soon as its first report exists.
    let mut child = batch(&out).stdout(Stdio::null()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(300);
    while mtimes(&files).is_empty() {
        assert!(Instant::now() < deadline, "no report after 300 s");
        assert!(
            child.try_wait().unwrap().is_none(),
            "gp-batch ended before its first report"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let status = child.wait().unwrap();
    let first = mtimes(&files);
    if first.len() < files.len() {
        assert_eq!(status.code(), Some(130), "interrupted: {status:?}");
    }
    no_temporaries(&out);
    let skipped: serde_json::Value = serde_json::from_slice(
        &std::fs::read(out.join("compr-mt/compr-mt-threads-1.skipped.json")).unwrap(),
    )
    .unwrap();
    let reason = skipped["reason"].as_str().unwrap();
    assert!(reason.contains("compress"), "{reason}");
    assert_eq!(skipped["decided_by"], "probe");

    // 2. Resume: what was finished is kept, the rest runs.
    let start = Instant::now();
    let second = run(&mut batch(&out));
    let batch_s = start.elapsed().as_secs_f64();
    assert!(second.status.success());
    let after = mtimes(&files);
    assert_eq!(after.len(), 4, "every run has a report");
    for (path, time) in &first {
        assert_eq!(after[path], *time, "{} was rerun", path.display());
    }
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(
        err.contains(&format!("{} already done", first.len())),
        "{err}"
    );
    eprintln!(
        "resumed batch ({} runs) took {batch_s:.1} s",
        4 - first.len()
    );
    for f in &files {
        let report: Report = serde_json::from_slice(&std::fs::read(f).unwrap()).unwrap();
        assert!(report.scenario.post_copy);
        let name = f.file_name().unwrap().to_string_lossy();
        assert!(
            name.starts_with(&report.scenario.name),
            "{name} holds {}",
            report.scenario.name
        );
        assert_eq!(
            report.summary.unwrap().outcome,
            Some(gp_records::Outcome::Completed)
        );
    }

    // The summary: both scenarios with two runs each, and the skip with its reason.
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    let comps = summary["comparisons"].as_array().unwrap();
    let pci = comps
        .iter()
        .find(|c| c["name"] == "post-copy-iters")
        .unwrap();
    let scenarios = pci["scenarios"].as_array().unwrap();
    assert_eq!(scenarios.len(), 2);
    for s in scenarios {
        assert_eq!(s["runs"].as_array().unwrap().len(), 2, "{s}");
        assert_eq!(s["result"], "2 completed");
        let total = &s["stats"]["total_time_ms"];
        assert_eq!(total["n"], 2, "{s}");
        assert!(total["median"].as_f64().unwrap() > 0.0);
        assert!(total["spread"].as_f64().unwrap() >= 0.0);
    }
    assert_eq!(pci["chart"], "post-copy-iters/post-copy-iters.svg");
    let chart = std::fs::read_to_string(out.join("post-copy-iters/post-copy-iters.svg")).unwrap();
    assert!(chart.contains("<svg"), "not an SVG");
    let mt = comps.iter().find(|c| c["name"] == "compr-mt").unwrap();
    assert_eq!(mt["scenarios"][0]["result"], "skipped");
    assert!(mt["scenarios"][0]["skipped"]
        .as_str()
        .unwrap()
        .contains("compress"));
    let md = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(md.contains("## post-copy-iters"), "{md}");
    assert!(
        md.contains("| post-copy-iters-1 | 2 | 2 completed |"),
        "{md}"
    );
    assert!(md.contains("compr-mt-threads-1 skipped: "), "{md}");

    // 3. Nothing left to do: nothing runs, nothing changes.
    let third = run(&mut batch(&out));
    assert!(third.status.success());
    assert_eq!(mtimes(&files), after);
    assert!(String::from_utf8_lossy(&third.stderr).contains("0 runs to do"));
    no_temporaries(&out);
}
