//! gp-batch's bookkeeping with stand-in stages (shell scripts in GUESTPERF_STAGE_DIR): the order
//! of runs, failures, cancelled migrations, gp-migrate's refusals, resuming. The capability
//! probe still asks the real QEMU. The real pipeline is covered by tests/batch.rs.

mod common;

use std::path::Path;
use std::process::Command;

use common::run;

/// The stand-in gp-migrate, once it has `$name` and has passed its input on.
const MIGRATE: &str = r#"echo "$name" >> "$STAND_IN_LOG"
case " $FAIL " in *" $name "*)
    echo "gp-migrate: the stand-in migration failed on purpose" >&2; exit 1 ;; esac
case " $UNSUPPORTED " in *" $name "*)
    echo "gp-migrate: unsupported: this QEMU has no stand-in capability" >&2; exit 6 ;; esac
case " $CANCEL " in *" $name "*)
    echo "NAME=$name OUTCOME=cancelled"; exit 4 ;; esac
echo "NAME=$name OUTCOME=completed"
"#;
const COLLECT: &str = r#"#!/bin/sh
line=$(grep '^NAME=')
if [ -z "$line" ]; then echo '{"partial":true}'; exit 0; fi
name=${line#NAME=}; name=${name%% *}; outcome=${line##*OUTCOME=}
cat <<JSON
{"hardware":{"cpus":1,"mem":0.25},"scenario":{"name":"$name"},"progress_history":[],
 "guest_timings":[],"qemu_timings":[],"vcpu_timings":[],"result":{"success":true},
 "summary":{"outcome":"$outcome","total_time_ms":1000,"downtime_ms":10}}
JSON
"#;
fn log(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| l.trim_start_matches("post-copy-iters-").to_string())
        .collect()
}

#[test]
fn runs_are_interleaved_failures_filed_refusals_skipped_and_resumed() {
    let _lock = gp_testkit::vm_test_lock();
    let tmp = tempfile::tempdir().unwrap();
    let stages = common::stand_ins::write_stages(tmp.path(), MIGRATE, COLLECT);
    let out = tmp.path().join("out");
    let run_log = tmp.path().join("runs.log");
    let batch = |env: &[(&str, &str)]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_gp-batch"));
        cmd.args(["--accel", "tcg", "--repeat", "2", "--output"])
            .arg(&out)
            .args(["--filter", "post-copy-iters", "--filter", "compr-mt"])
            .env("GUESTPERF_STAGE_DIR", &stages)
            .env("STAND_IN_LOG", &run_log)
            .env("FAIL", "")
            .env("UNSUPPORTED", "")
            .env("CANCEL", "");
        for (k, v) in env {
            cmd.env(k, v);
        }
        run(&mut cmd)
    };
    let pci = out.join("post-copy-iters");

    // 1. Scenario 5 fails, 20 is refused by gp-migrate, 1 is cancelled.
    let first = batch(&[
        ("FAIL", "post-copy-iters-5"),
        ("UNSUPPORTED", "post-copy-iters-20"),
        ("CANCEL", "post-copy-iters-1"),
    ]);
    assert_eq!(
        first.status.code(),
        Some(1),
        "failed runs make the batch fail"
    );
    let err = String::from_utf8_lossy(&first.stderr);
    assert!(
        err.contains("gp-batch: 2 of 7 runs failed; see the .error.json files and"),
        "{err}"
    );
    // Run 1 of every scenario, then run 2; the refused one is not tried again.
    assert_eq!(log(&run_log), ["0", "1", "5", "20", "0", "1", "5"]);
    for f in [
        "post-copy-iters-0.json",
        "post-copy-iters-0.r2.json",
        "post-copy-iters-1.json",
        "post-copy-iters-1.r2.json",
        "post-copy-iters-5.error.json",
        "post-copy-iters-5.r2.error.json",
        "post-copy-iters-20.skipped.json",
    ] {
        assert!(pci.join(f).is_file(), "{f} missing");
    }
    assert!(!pci.join("post-copy-iters-5.json").exists());
    let error: serde_json::Value =
        serde_json::from_slice(&std::fs::read(pci.join("post-copy-iters-5.error.json")).unwrap())
            .unwrap();
    assert_eq!(error["stage"], "gp-migrate");
    assert_eq!(error["status"], 1);
    assert_eq!(error["message"], "the stand-in migration failed on purpose");
    assert_eq!(error["report"], serde_json::json!({"partial": true}));
    let refused: serde_json::Value = serde_json::from_slice(
        &std::fs::read(pci.join("post-copy-iters-20.skipped.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(refused["decided_by"], "gp-migrate");
    assert_eq!(
        refused["reason"],
        "unsupported: this QEMU has no stand-in capability"
    );
    for k in [1, 2, 4] {
        let probe: serde_json::Value = serde_json::from_slice(
            &std::fs::read(out.join(format!("compr-mt/compr-mt-threads-{k}.skipped.json")))
                .unwrap(),
        )
        .unwrap();
        assert_eq!(probe["decided_by"], "probe");
    }
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    let scenarios = &summary["comparisons"][0]["scenarios"];
    assert_eq!(summary["comparisons"][0]["name"], "post-copy-iters");
    assert_eq!(scenarios[0]["result"], "2 completed");
    assert_eq!(
        scenarios[1]["result"], "2 cancelled",
        "a cancelled migration is a result"
    );
    assert_eq!(scenarios[2]["result"], "2 failed");
    assert_eq!(
        scenarios[2]["failed_runs"][1]["file"],
        "post-copy-iters/post-copy-iters-5.r2.error.json"
    );
    assert_eq!(scenarios[3]["result"], "skipped");
    assert_eq!(scenarios[0]["stats"]["total_time_ms"]["median"], 1000.0);
    assert_eq!(
        summary["comparisons"][0]["chart"],
        "post-copy-iters/post-copy-iters.svg"
    );
    assert!(pci.join("post-copy-iters.svg").is_file());
    let md = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(md.contains("- post-copy-iters-5 run 2 failed in gp-migrate: the stand-in migration failed on purpose"), "{md}");
    assert!(
        md.contains(
            "- post-copy-iters-20 skipped: unsupported: this QEMU has no stand-in capability"
        ),
        "{md}"
    );

    // 2. Resume with everything working: only the failed and the refused scenarios run.
    let finished = pci
        .join("post-copy-iters-0.json")
        .metadata()
        .unwrap()
        .modified()
        .unwrap();
    std::fs::remove_file(&run_log).unwrap();
    let second = batch(&[]);
    assert!(second.status.success());
    assert_eq!(log(&run_log), ["5", "20", "5", "20"]);
    assert_eq!(
        pci.join("post-copy-iters-0.json")
            .metadata()
            .unwrap()
            .modified()
            .unwrap(),
        finished
    );
    assert!(
        !pci.join("post-copy-iters-5.error.json").exists(),
        "a success replaces the error"
    );
    assert!(
        !pci.join("post-copy-iters-20.skipped.json").exists(),
        "skips are decided afresh"
    );
    assert!(pci.join("post-copy-iters-20.r2.json").is_file());

    // 3. Nothing left: nothing runs.
    std::fs::remove_file(&run_log).unwrap();
    let third = batch(&[]);
    assert!(third.status.success());
    assert!(log(&run_log).is_empty());
    assert!(String::from_utf8_lossy(&third.stderr).contains("0 runs to do"));

    // 4. A larger --repeat adds runs; --dry-run shows them without running.
    let dry = run(Command::new(env!("CARGO_BIN_EXE_gp-batch"))
        .args([
            "--accel",
            "tcg",
            "--repeat",
            "3",
            "--dry-run",
            "--filter",
            "post-copy-iters/*-0",
            "--output",
        ])
        .arg(&out)
        .env("GUESTPERF_STAGE_DIR", &stages));
    assert!(dry.status.success());
    let text = String::from_utf8_lossy(&dry.stdout);
    assert!(text.contains("# 1 run to do, 2 already done"), "{text}");
    assert!(
        text.contains("# post-copy-iters/post-copy-iters-0#3\n"),
        "{text}"
    );
    assert!(
        text.contains("gp-migrate --name post-copy-iters-0 --post-copy --post-copy-iters 0"),
        "{text}"
    );
    assert!(text.contains("post-copy-iters-0.r3.json"), "{text}");
    assert!(log(&run_log).is_empty());
}
