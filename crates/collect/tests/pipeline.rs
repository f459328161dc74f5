//! End to end under TCG: `gp-launch | gp-sample | gp-migrate | gp-collect` with real QEMU and
//! real guests running `stress`, and the same pipeline interrupted by Ctrl-C.
//!
//! Needs QEMU, the guest kernel and the stress initrd (scripts/setup-host.sh, initrd/build.sh).
//! Each test takes the machine-wide VM test lock.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use gp_records::report::Report;
use gp_records::sample::ThreadClass;
use gp_records::{Outcome, Role};
use gp_testkit::{bin, initrd, pid_alive, require_qemu, vm_test_lock, wait_until, Stages};

/// Longest a whole pipeline may run before the test kills it and fails.
const DEADLINE: Duration = Duration::from_secs(400);

struct Pipeline {
    stages: Stages,
    _dir: tempfile::TempDir,
    report: PathBuf,
    stream: PathBuf,
}

impl Pipeline {
    /// `gp-launch | gp-sample | gp-migrate | tee stream | gp-collect -o report` (gp-sample and
    /// gp-migrate in `order`), all in one process group (as a shell would start them), each
    /// stage's stderr in a file.
    fn start(launch_args: &[&str], order: [&str; 2], migrate_args: &[&str]) -> Pipeline {
        require_qemu();
        let dir = tempfile::tempdir().unwrap();
        let report = dir.path().join("report.json");
        let stream = dir.path().join("stream.ndjson");
        let mut stages = Stages::new(dir.path(), DEADLINE);
        stages.pipe(
            "gp-launch",
            Command::new(bin("gp-launch"))
                .args(["--accel", "tcg", "--mem", "256M", "--cpus", "2"])
                .arg("--initrd")
                .arg(initrd())
                .args(launch_args),
        );
        for stage in order {
            match stage {
                "gp-sample" => stages.pipe("gp-sample", &mut Command::new(bin("gp-sample"))),
                _ => stages.pipe(
                    "gp-migrate",
                    Command::new(bin("gp-migrate")).args(migrate_args),
                ),
            };
        }
        // -i: like the other stages, tee must outlive a Ctrl-C to pass on the last records.
        stages
            .pipe("tee", Command::new("tee").arg("-i").arg(&stream))
            .last(
                "gp-collect",
                Command::new(env!("CARGO_BIN_EXE_gp-collect"))
                    .arg("--output")
                    .arg(&report),
            );
        Pipeline {
            stages,
            _dir: dir,
            report,
            stream,
        }
    }

    /// Waits for every stage to succeed; the report, once no QEMU of the run is left, and every
    /// stage's stderr.
    fn finish(&mut self) -> (Report, String) {
        let logs = self.stages.wait_success();
        let report = self.report();
        assert_no_qemu_left(&report);
        (report, logs)
    }

    fn report(&self) -> Report {
        let text = std::fs::read_to_string(&self.report).unwrap_or_else(|e| {
            panic!(
                "no report {}: {e}\n{}",
                self.report.display(),
                self.stages.stderr()
            )
        });
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("report is not a Report: {e}"))
    }
}

/// Every QEMU the run started is gone.
fn assert_no_qemu_left(report: &Report) {
    let ext = report.guestperf_rs.as_ref().unwrap();
    for vm in &ext.vms {
        assert!(
            wait_until(Duration::from_secs(10), || !pid_alive(vm.pid)),
            "QEMU pid {} ({}) still running",
            vm.pid,
            vm.role
        );
    }
}

#[test]
fn precopy_pipeline_report_has_both_ends_sampled() {
    let _lock = vm_test_lock();
    let order = ["gp-sample", "gp-migrate"];
    let mut p = Pipeline::start(&[], order, &["--name", "e2e-precopy", "--sleep", "2"]);
    let (r, logs) = p.finish();
    let ext = r.guestperf_rs.as_ref().unwrap();

    // The result: completed, from gp-migrate, and a success in the original's sense.
    let result = ext.result.as_ref().unwrap();
    assert_eq!(result.outcome, Outcome::Completed, "{logs}");
    assert!(ext.result_in_stream);
    assert!(r.result.as_ref().unwrap().success);
    assert_eq!(r.scenario.name, "e2e-precopy");
    assert_eq!((r.hardware.cpus, r.hardware.mem), (2, 0.25));
    assert_eq!(r.transport, "unix");
    assert!(ext.input.errors.is_empty() && ext.unrecognized.is_empty());

    // Every line of the stream is in the report.
    let lines = std::fs::read_to_string(&p.stream).unwrap().lines().count() as u64;
    assert_eq!(ext.input.records, lines);

    // Source and destination samples; vCPU threads matching the vCPU count, by the launch
    // record's thread ids.
    for role in [Role::Src, Role::Dst] {
        let vm = ext.vms.iter().find(|v| v.role == role).unwrap();
        let samples: Vec<_> = ext.samples.iter().filter(|s| s.role == role).collect();
        assert!(
            samples.len() >= 5,
            "{role}: {} samples\n{logs}",
            samples.len()
        );
        for s in &samples {
            assert_eq!(s.pid, vm.pid);
            let mut vcpus: Vec<u32> = s
                .threads
                .iter()
                .filter(|t| t.class == ThreadClass::Vcpu)
                .map(|t| t.tid)
                .collect();
            vcpus.sort_unstable();
            let mut want = vm.vcpu_tids.clone();
            want.sort_unstable();
            assert_eq!(vcpus, want, "{role} sample at {}", s.time_s);
        }
        // No sample of a VM after its exit record.
        let exit = ext
            .vm_exits
            .iter()
            .find(|e| e.pid == vm.pid)
            .expect("vm_exit");
        assert!(
            samples.iter().all(|s| s.time_s <= exit.time_s),
            "{role} sampled after exit"
        );
    }
    // QEMU 10 names its migration thread mig/src/main.
    let cpu = &r.summary.as_ref().unwrap().host_cpu;
    let src = cpu.vms.iter().find(|v| v.role == Role::Src).unwrap();
    assert!(
        src.migration_threads.iter().any(|n| n == "mig/src/main"),
        "{src:?}"
    );
    assert!(src.migration_s > 0.0 && src.vcpu_s > 0.0);
    assert!(cpu.src_s.unwrap() > 0.0 && cpu.dst_s.unwrap() > 0.0);

    // The guestperf-compatible part.
    assert!(!r.progress_history.is_empty());
    assert_eq!(r.progress_history.last().unwrap().status, "completed");
    let src_vm = ext.vms.iter().find(|v| v.role == Role::Src).unwrap();
    assert!(r.qemu_timings.iter().all(|t| t.tid == src_vm.pid as u64));
    assert!(!r.qemu_timings.is_empty());
    let mut vcpu_tids: Vec<u64> = r.vcpu_timings.iter().map(|t| t.tid).collect();
    vcpu_tids.sort_unstable();
    vcpu_tids.dedup();
    let want: Vec<u64> = src_vm.vcpu_tids.iter().map(|&t| t as u64).collect();
    assert_eq!(vcpu_tids.len(), 2);
    assert!(vcpu_tids.iter().all(|t| want.contains(t)));

    // The summary: QEMU's figures, and the guest's view of the switchover.
    let s = r.summary.as_ref().unwrap();
    assert!(s.total_time_ms.unwrap() > 0);
    let downtime = s.downtime_ms.expect("downtime");
    let stall = s.guest_stall.as_ref().expect("guest stall");
    let gap = s.guest_switch_gap.as_ref().expect("switch gap");
    // The guest does not run between the source's stop and the destination's start; arrival
    // times blur that by the console's latency.
    assert!(
        gap.gap_ms >= downtime as f64 * 0.5,
        "switch gap {gap:?} vs downtime {downtime}"
    );
    // The longest stall is the switch or a longer one around it (a slow destination start).
    assert!(stall.stall_ms >= gap.gap_ms, "{stall:?} {gap:?}");
    let (lo, hi) = (
        s.migration_start_s.unwrap(),
        s.migration_end_s.unwrap() + 5.0,
    );
    assert!(stall.end_s >= lo && stall.start_s <= hi, "{stall:?}");
    let g = s.guest_throughput.as_ref().unwrap();
    assert!(g.before.is_some() && g.after.is_some(), "{g:?}");
    assert!(s.iterations.unwrap() >= 1);
    assert!(s.transferred_bytes_per_guest_gb.unwrap() > 0.0);

    // What really happened: precopy, QEMU's figures consistent with its events, and the
    // downtime broken down where gp-launch traced it (else said why not).
    let mode = s.mode.as_ref().unwrap();
    assert_eq!(
        (mode.reached.as_str(), mode.requested_reached),
        ("precopy", true)
    );
    let event_checks: Vec<_> = s
        .checks
        .iter()
        .filter(|c| c.against.starts_with("events"))
        .collect();
    assert_eq!(event_checks.len(), 2, "{:?}", s.checks);
    assert!(event_checks.iter().all(|c| c.agree), "{:?}", s.checks);
    // QEMU's downtime is trusted unless its own tracepoints' window disagrees (by over 2 ms):
    // then the window. (They are the same clock readings, so in practice they agree.)
    let trace_check = s
        .checks
        .iter()
        .find(|c| c.against.starts_with("tracepoints"));
    let expected = match trace_check {
        Some(c) if !c.agree => c.against_ms,
        _ => downtime as f64,
    };
    assert_eq!(s.trusted_downtime_ms, Some(expected), "{:?}", s.checks);
    let b = s.downtime_breakdown.as_ref().unwrap();
    let traced = ext
        .header
        .as_ref()
        .unwrap()
        .trace_events
        .iter()
        .any(|e| e.starts_with("vmstate_downtime"));
    if traced {
        assert!(b.available, "{b:?}");
        assert!(b.coverage_pct.unwrap() >= 90.0, "{b:?}");
        assert_eq!(b.top_save[0].device, "ram", "{b:?}");
    } else {
        assert!(!b.available && b.reason.is_some(), "{b:?}");
    }
    assert_eq!(
        s.before_migration.as_ref().unwrap().touched_share,
        Some(1.0)
    );
    eprintln!(
        "e2e precopy: {:.1} s, {} records, QEMU downtime {downtime} ms, guest switch gap \
         {:.0} ms, longest stall {:.0} ms ({} to {}), slowdown during {:.0} %, src {:.2} s CPU \
         (migration threads {:.2} s), dst {:.2} s",
        p.stages.elapsed().as_secs_f64(),
        lines,
        gap.gap_ms,
        stall.stall_ms,
        stall.before_role,
        stall.after_role,
        g.slowdown_during_pct.unwrap_or(f64::NAN),
        cpu.src_s.unwrap(),
        cpu.migration_threads_s.unwrap(),
        cpu.dst_s.unwrap()
    );
}

#[test]
fn ctrl_c_mid_migration_still_yields_a_report_with_sample_after_migrate() {
    let _lock = vm_test_lock();
    // A slow migration (8 MiB/s for a 256 MiB guest) so Ctrl-C lands while it runs.
    // gp-sample after gp-migrate this time: it works anywhere after gp-launch.
    let order = ["gp-migrate", "gp-sample"];
    let mut p = Pipeline::start(&[], order, &["--sleep", "1", "--bandwidth", "8"]);
    let stream = p.stream.clone();
    let migrating = wait_until(Duration::from_secs(120), || {
        std::fs::read_to_string(&stream).is_ok_and(|s| s.contains("\"type\":\"progress\""))
    });
    assert!(
        migrating,
        "the migration never started\n{}",
        p.stages.stderr()
    );
    // Ctrl-C in a shell: SIGINT to the whole process group.
    let group = format!("-{}", p.stages.pgid());
    assert!(Command::new("kill")
        .args(["-INT", "--", &group])
        .status()
        .unwrap()
        .success());
    let statuses = p.stages.wait();
    let collect = statuses.iter().find(|(n, _)| *n == "gp-collect").unwrap().1;
    assert_eq!(collect.code(), Some(130), "{}", p.stages.stderr());

    let r = p.report();
    assert_no_qemu_left(&r);
    let ext = r.guestperf_rs.as_ref().unwrap();
    // The stages' last records got through: both VMs' exits, and a result saying how it ended.
    assert_eq!(ext.vm_exits.len(), 2, "{}", p.stages.stderr());
    let result = ext.result.as_ref().unwrap();
    assert_ne!(result.outcome, Outcome::Completed, "{result:?}");
    assert!(!r.result.as_ref().unwrap().success);
    assert!(ext.input.ended.starts_with("SIGINT"), "{}", ext.input.ended);
    let lines = std::fs::read_to_string(&p.stream).unwrap().lines().count() as u64;
    assert_eq!(
        ext.input.records, lines,
        "every record that reached gp-collect is kept"
    );
    assert!(!ext.progress.is_empty());
    for role in [Role::Src, Role::Dst] {
        assert!(
            ext.samples.iter().any(|s| s.role == role),
            "no {role} samples"
        );
    }
}

#[test]
fn postcopy_that_precopy_beat_is_reported_as_precopy_with_a_note() {
    let _lock = vm_test_lock();
    // An idle guest after its first pass (`once`): pre-copy converges in a few passes, long
    // before the 20th at which gp-migrate would ask for post-copy.
    let mut p = Pipeline::start(
        &["--stress-pattern", "once"],
        ["gp-sample", "gp-migrate"],
        &["--sleep", "2", "--post-copy", "--post-copy-iters", "20"],
    );
    let (r, logs) = p.finish();
    let s = r.summary.as_ref().unwrap();
    assert_eq!(s.outcome, Some(Outcome::Completed), "{logs}");
    let m = s.mode.as_ref().unwrap();
    assert_eq!(m.requested, "post-copy");
    assert_eq!(m.reached, "precopy", "{m:?}");
    assert!(!m.requested_reached);
    assert!(
        s.notes
            .iter()
            .any(|n| n.starts_with("post-copy was requested but not reached")),
        "{:?}",
        s.notes
    );
    assert!(s.trusted_downtime_ms.is_some() && s.trusted_total_time_ms.is_some());
    eprintln!("mode {m:?}\nchecks {:?}", s.checks);
}

#[test]
fn certain_postcopy_reports_blocktime_and_page_requests() {
    let _lock = vm_test_lock();
    // Pre-copy throttled to 64 MiB/s with a 1 ms downtime limit cannot converge before pass 1
    // ends; post-copy limited to 32 MiB/s leaves the guest faulting pages for seconds.
    let mut p = Pipeline::start(
        &[],
        ["gp-sample", "gp-migrate"],
        &[
            "--sleep",
            "2",
            "--post-copy",
            "--post-copy-iters",
            "1",
            "--bandwidth",
            "64",
            "--downtime",
            "1",
            "--capability",
            "postcopy-blocktime",
            "--parameter",
            "max-postcopy-bandwidth=33554432",
        ],
    );
    let (r, logs) = p.finish();
    let s = r.summary.as_ref().unwrap();
    let m = s.mode.as_ref().unwrap();
    assert_eq!(m.reached, "post-copy", "{m:?}\n{logs}");
    assert!(m.requested_reached);
    let d = s.destination.as_ref().expect("destination figures");
    assert!(d.postcopy_blocktime_ms.is_some(), "{d:?}");
    assert_eq!(d.postcopy_vcpu_blocktime_ms.len(), 2, "{d:?}");
    assert!(d.postcopy_requests.unwrap() > 0, "{d:?}");
    assert!(d.postcopy_bytes.unwrap() > 0, "{d:?}");
    eprintln!("checks {:?}", s.checks);
    // The guest lost far more than the switchover (page faults), and the check says so.
    let check = |against: &str| {
        s.checks
            .iter()
            .find(|c| c.against.starts_with(against))
            .unwrap_or_else(|| panic!("no check against {against}: {:?}", s.checks))
    };
    let (stall, switchover) = (check("guest"), check("events: STOP"));
    assert!(stall.against_ms > switchover.against_ms, "{:?}", s.checks);
    assert!(!stall.agree, "{:?}", s.checks);
    // QEMU's own downtime is the switchover (1-2 ms), except when that took under 1 ms: QEMU
    // then takes its downtime of 0 for "not set" and reports the whole post-copy phase (seen
    // once: 5021 ms of a 5127 ms migration, 0.8 ms between the downtime tracepoints). Either
    // way the report trusts a figure of the switchover, not the phase.
    let trusted = s.trusted_downtime_ms.expect("a trusted downtime");
    assert!(
        trusted <= switchover.against_ms + switchover.tolerance_ms,
        "trusted {trusted} ms: {:?}",
        s.checks
    );
    // gp-launch traced the switchover: it ends with the destination's post-copy start.
    let b = s.downtime_breakdown.as_ref().unwrap();
    if b.available {
        let last = b.steps.last().map(|s| s.step.as_str());
        assert_eq!(last, Some("dst-postcopy-bh-vm-started"), "{b:?}");
    }
    eprintln!("post-copy: {d:?}\nswitches {:?}", m.switches);
}
