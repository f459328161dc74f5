//! `guestperf` end to end: real QEMU under TCG, small guests.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{require_real_run, run, SMALL};
use gp_records::report::Report;
use gp_records::Outcome;
use gp_testkit::wait_until;

/// guestperf's own last line on stderr (the stages' lines come before it).
fn own_last_line(stderr: &str) -> &str {
    stderr
        .lines()
        .rfind(|l| l.starts_with("guestperf: "))
        .unwrap_or("")
}

/// `guestperf`, ending with the test (it and its VMs) however the test ends.
fn guestperf() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_guestperf"));
    gp_testkit::end_with_test(&mut cmd);
    cmd
}

#[test]
fn small_run_writes_a_completed_report_to_stdout() {
    let _lock = gp_testkit::vm_test_lock();
    require_real_run();
    let start = Instant::now();
    let out = run(guestperf().args(SMALL));
    eprintln!("one-shot took {:.1} s", start.elapsed().as_secs_f64());
    assert!(
        out.status.success(),
        "guestperf failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Report = serde_json::from_slice(&out.stdout).expect("stdout is one report");
    let summary = report
        .summary
        .as_ref()
        .expect("a guestperf-rs report has a summary");
    assert_eq!(
        summary.outcome,
        Some(Outcome::Completed),
        "{}",
        summary.reason
    );
    assert!(report.result.as_ref().unwrap().success);
    assert_eq!(report.hardware.mem, 0.25);
    assert_eq!(report.hardware.cpus, 1, "the original's default");
    assert_eq!(report.transport, "unix", "the original's default");
    assert_eq!(report.scenario.downtime, 500, "the original's default");
    assert_eq!(report.sleep, 1.0);
    assert!(summary.total_time_ms.unwrap() > 0);
    let ext = report.guestperf_rs.as_ref().unwrap();
    assert!(!ext.samples.is_empty(), "gp-sample ran in the pipeline");
    assert!(ext.stage_errors.is_empty(), "{:?}", ext.stage_errors);
    assert_eq!(ext.header.as_ref().unwrap().accel, "tcg");
}

#[test]
fn the_seed_post_copy_example_completes_with_its_scenario_recorded() {
    let _lock = gp_testkit::vm_test_lock();
    require_real_run();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("result.json");
    let out = run(guestperf()
        .args(SMALL)
        .args(["--post-copy", "--post-copy-iters", "5", "--output"])
        .arg(&path));
    assert!(out.status.success());
    assert!(out.stdout.is_empty(), "--output FILE leaves stdout empty");
    let report: Report = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert!(report.scenario.post_copy);
    assert_eq!(report.scenario.post_copy_iters, 5);
    let summary = report.summary.unwrap();
    assert_eq!(
        summary.outcome,
        Some(Outcome::Completed),
        "{}",
        summary.reason
    );
}

#[test]
fn a_hardware_option_gp_launch_refuses_names_gp_launch_and_the_problem() {
    let _lock = gp_testkit::vm_test_lock();
    require_real_run();
    // Each value parses (guestperf checks it with gp-launch's own parser), but a dirty ring
    // needs KVM: gp-launch refuses the pair before starting QEMU.
    let out = run(guestperf().args(["--accel", "tcg", "--dirty-ring-size", "4096"]));
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    let last = own_last_line(&err);
    assert!(
        last.starts_with("guestperf: gp-launch (stage 1 of 4) exited with status 2: "),
        "{err}"
    );
    assert!(last.contains("--dirty-ring-size: needs KVM"), "{err}");
}

#[test]
fn a_scenario_this_qemu_refuses_names_gp_migrate_and_the_problem() {
    let _lock = gp_testkit::vm_test_lock();
    require_real_run();
    let start = Instant::now();
    // A well-formed capability name that no QEMU has: only gp-migrate, asking QEMU, can refuse
    // it.
    let out = run(guestperf()
        .args(SMALL)
        .args(["--capability", "no-such-capability"]));
    assert_eq!(out.status.code(), Some(6), "unsupported by this QEMU");
    let err = String::from_utf8_lossy(&out.stderr);
    let ours = own_last_line(&err);
    assert!(
        ours.starts_with("guestperf: gp-migrate (stage 3 of 4) exited with status 6: "),
        "{err}"
    );
    assert!(ours.contains("no-such-capability"), "{err}");
    // gp-launch noticed the closed pipe and shut its VMs down; nothing waited for a timeout.
    assert!(
        start.elapsed() < Duration::from_secs(100),
        "took {:?}",
        start.elapsed()
    );
}

#[test]
fn the_seed_numa_example_runs_or_names_what_the_host_lacks() {
    let _lock = gp_testkit::vm_test_lock();
    require_real_run();
    let nodes = std::fs::read_dir("/sys/devices/system/node")
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("node"))
                .count()
        })
        .unwrap_or(1);
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let out = run(guestperf().args([
        "--accel",
        "tcg",
        "--sleep",
        "1",
        "--max-time",
        "120",
        "--mem",
        "4",
        "--cpus",
        "2",
        "--src-mem-bind",
        "0",
        "--src-cpu-bind",
        "0,1",
        "--dst-mem-bind",
        "1",
        "--dst-cpu-bind",
        "2,3",
    ]));
    if nodes >= 2 && cpus >= 4 {
        assert!(out.status.success());
        let report: Report = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report.hardware.dst_mem_bind, ["1"]);
    } else {
        assert!(
            !out.status.success(),
            "binding to node 1 / CPUs 2,3 cannot work on this host"
        );
        let err = String::from_utf8_lossy(&out.stderr);
        let ours = own_last_line(&err);
        assert!(
            ours.starts_with("guestperf: gp-launch (stage 1 of 4)"),
            "{err}"
        );
        assert!(
            ours.contains("node 1") || ours.contains("CPU 2") || ours.contains("2,3"),
            "names the missing node or CPU: {err}"
        );
    }
}

#[test]
fn sigterm_is_forwarded_and_no_qemu_outlives_the_run() {
    let _lock = gp_testkit::vm_test_lock();
    require_real_run();
    let mut child = guestperf()
        .args(["--accel", "tcg", "--mem", "256M", "--sleep", "60"])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let pid = child.id();
    // Wait for both QEMUs to exist (the signal must arrive mid-run, not before gp-launch starts).
    let qemus = || -> Vec<u32> {
        gp_testkit::descendants(pid)
            .into_iter()
            .filter(|(_, comm)| comm.starts_with("qemu-system"))
            .map(|(pid, _)| pid)
            .collect()
    };
    wait_until(Duration::from_secs(120), || {
        qemus().len() >= 2 || child.try_wait().unwrap().is_some()
    });
    let qemus = qemus();
    assert!(
        qemus.len() >= 2,
        "the VMs never started (guestperf: {:?})",
        child.try_wait()
    );
    unsafe {
        libc::kill(pid as i32, libc::SIGTERM);
    }
    let mut status = None;
    wait_until(Duration::from_secs(90), || {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    let status = status.expect("guestperf did not end after SIGTERM");
    assert_eq!(status.code(), Some(128 + libc::SIGTERM), "{status:?}");
    for q in qemus {
        assert!(!gp_testkit::pid_alive(q), "QEMU {q} outlived the run");
    }
}
