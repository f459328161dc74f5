//! End-to-end: `gp-launch --accel tcg ... | gp-migrate ...` with real QEMU, real guests running
//! `stress`, every strategy of the original guestperf, both transports, and the fault paths.
//!
//! Needs QEMU, the guest kernel and the stress initrd (scripts/setup-host.sh, initrd/build.sh).
//! Each test takes the machine-wide VM test lock.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use gp_testkit::{
    initrd, pid_alive, require_qemu, vm_test_lock, vm_test_lock_alone, wait_until, Stages,
};
use serde_json::Value;

/// `--steady-max` for the tests that do not set it, seconds.
const STEADY_MAX: u32 = 5;

/// Longest a whole pipeline may run before the test kills it and fails.
const PIPELINE_DEADLINE: Duration = Duration::from_secs(400);

fn gp_migrate() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_gp-migrate"))
}

/// One finished pipeline.
struct Run {
    records: Vec<Value>,
    migrate_code: Option<i32>,
    launch_code: Option<i32>,
    stderr: String,
    /// Wall time from start to the end of gp-migrate's output, seconds.
    elapsed_s: f64,
}

impl Run {
    fn of_type<'a>(&'a self, ty: &str) -> impl Iterator<Item = &'a Value> + 'a {
        let ty = ty.to_string();
        self.records
            .iter()
            .filter(move |r| r["type"] == ty.as_str())
    }

    fn one(&self, ty: &str) -> &Value {
        let all: Vec<&Value> = self.of_type(ty).collect();
        assert_eq!(
            all.len(),
            1,
            "expected one {ty} record, got {}\n{}",
            all.len(),
            self.dump()
        );
        all[0]
    }

    fn result(&self) -> &Value {
        self.one("result")
    }

    fn actions(&self) -> Vec<(String, String)> {
        self.of_type("action")
            .map(|a| {
                (
                    a["action"].as_str().unwrap().to_string(),
                    a["role"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    }

    fn action_time(&self, action: &str) -> f64 {
        self.of_type("action")
            .find(|a| a["action"] == action)
            .unwrap_or_else(|| panic!("no {action} action\n{}", self.dump()))["time_s"]
            .as_f64()
            .unwrap()
    }

    fn workload_after(&self, role: &str, t: f64) -> usize {
        self.of_type("guest_progress")
            .filter(|g| g["role"] == role && g["time_s"].as_f64().unwrap() > t)
            .count()
    }

    fn vm_pids(&self) -> Vec<u32> {
        self.of_type("vm")
            .map(|v| v["pid"].as_u64().unwrap() as u32)
            .collect()
    }

    /// Records other than the bulky ones, and stderr, for failure messages.
    fn dump(&self) -> String {
        let mut s = String::new();
        for r in &self.records {
            if !matches!(
                r["type"].as_str(),
                Some("progress" | "guest_progress" | "cpu_sample")
            ) {
                let mut line = r.to_string();
                line.truncate(300);
                s.push_str(&line);
                s.push('\n');
            }
        }
        format!(
            "exit codes: gp-migrate {:?}, gp-launch {:?}\n{s}--- stderr ---\n{}",
            self.migrate_code, self.launch_code, self.stderr
        )
    }

    fn summary(&self, name: &str) {
        let r = self.result();
        eprintln!(
            "[{name}] outcome {} total_time_ms {} downtime_ms {} setup_time_ms {} iterations {} \
             transferred_bytes {} pipeline {:.1} s",
            r["outcome"],
            r["total_time_ms"],
            r["downtime_ms"],
            r["setup_time_ms"],
            r["iterations"],
            r["transferred_bytes"],
            self.elapsed_s
        );
    }

    /// Both QEMUs are gone and nothing of the run remains.
    fn assert_nothing_left(&self) {
        for pid in self.vm_pids() {
            assert!(
                wait_until(Duration::from_secs(10), || !pid_alive(pid)),
                "QEMU pid {pid} still running after the pipeline ended\n{}",
                self.dump()
            );
        }
    }
}

/// What a test may do while the pipeline runs: called with each record gp-migrate writes.
/// Returns whether to keep reading: `false` closes gp-migrate's output.
type Hook<'a> = &'a mut dyn FnMut(&Value, u32) -> bool;

fn pipeline(launch_args: &[&str], migrate_args: &[&str], hook: Hook<'_>) -> Run {
    require_qemu();
    let initrd = initrd();
    let logs = tempfile::tempdir().expect("a directory for the stages' stderr");
    let mut launch = Command::new(gp_testkit::bin("gp-launch"));
    launch.args(["--accel", "tcg", "--cpus", "1"]);
    if !launch_args.contains(&"--mem") {
        launch.args(["--mem", "256M"]);
    }
    launch.arg("--initrd").arg(&initrd).args(launch_args);
    let mut migrate = Command::new(gp_migrate());
    // The workload's rate on this shared machine can take long to be steady: tests not about
    // settling bound that wait.
    if !migrate_args.contains(&"--steady-max") {
        migrate.args(["--steady-max", &STEADY_MAX.to_string()]);
    }
    migrate.args(migrate_args);
    let mut stages = Stages::new(logs.path(), PIPELINE_DEADLINE);
    stages
        .pipe("gp-launch", &mut launch)
        .pipe("gp-migrate", &mut migrate);
    let migrate_pid = stages.pid("gp-migrate");

    let mut records = Vec::new();
    // A false from the hook closes gp-migrate's output.
    stages.read_lines(|line| {
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("gp-migrate wrote a line that is not JSON ({e}): {line}"));
        let keep_reading = hook(&v, migrate_pid);
        records.push(v);
        keep_reading
    });
    let elapsed_s = stages.elapsed().as_secs_f64();
    let statuses = stages.wait();
    Run {
        records,
        migrate_code: statuses[1].1.code(),
        launch_code: statuses[0].1.code(),
        stderr: stages.stderr(),
        elapsed_s,
    }
}

/// Arguments written as on a command line, split at white space.
fn words(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

/// gp-migrate with `migrate_args` (a command line) on a default gp-launch.
fn run(migrate_args: &str) -> Run {
    pipeline(&[], &words(migrate_args), &mut |_, _| true)
}

/// A migration that must complete: gp-launch with `launch_args`, gp-migrate with
/// `migrate_args` (a command line), its figures printed under `name`, then [`assert_completed`].
fn completed(name: &str, launch_args: &[&str], migrate_args: &str) -> Run {
    let run = pipeline(launch_args, &words(migrate_args), &mut |_, _| true);
    run.summary(name);
    assert_completed(&run);
    run
}

/// gp-migrate refused the run as unsupported by this QEMU (exit 6): the result's reason.
fn refusal(run: &Run) -> String {
    assert_eq!(run.migrate_code, Some(6), "{}", run.dump());
    run.result()["reason"].as_str().unwrap().to_string()
}

/// The largest `info` figure, picked by `figure`, over every snapshot of either side (0 if none).
fn max_progress(run: &Run, figure: impl Fn(&Value) -> Option<u64>) -> u64 {
    run.of_type("progress")
        .filter_map(|p| figure(&p["info"]))
        .max()
        .unwrap_or(0)
}

/// Sends `signal`, as kill(1) takes it (`-KILL`), to `pid`.
fn kill(signal: &str, pid: u64) -> std::io::Result<std::process::ExitStatus> {
    Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
}

fn assert_completed(run: &Run) {
    assert_eq!(run.result()["outcome"], "completed", "{}", run.dump());
    assert_eq!(run.migrate_code, Some(0), "{}", run.dump());
    assert!(run.result()["total_time_ms"].as_u64().unwrap() > 0);
    assert!(run.result()["iterations"].as_u64().unwrap() >= 1);
    // The destination ran the workload after the migration.
    let end = run.result()["time_s"].as_f64().unwrap();
    assert!(
        run.workload_after("dst", end) > 0,
        "no dst workload after completion\n{}",
        run.dump()
    );
    // Every input line passed through: gp-launch's records are all there, vm_exit last.
    assert_eq!(run.of_type("launch").count(), 1);
    assert_eq!(run.of_type("vm").count(), 2);
    assert_eq!(run.of_type("vm_exit").count(), 2, "{}", run.dump());
    assert_scenario_first(run);
    run.assert_nothing_left();
}

/// The scenario record comes before any other gp-migrate record.
fn assert_scenario_first(run: &Run) {
    let ours = ["scenario", "progress", "action", "result"];
    let first = run
        .records
        .iter()
        .find(|r| ours.contains(&r["type"].as_str().unwrap_or("")));
    assert_eq!(
        first.map(|r| &r["type"]),
        Some(&Value::from("scenario")),
        "{}",
        run.dump()
    );
}

fn scenario(run: &Run) -> &Value {
    run.one("scenario")
}

/// Pre-copy that cannot converge while the guest runs: at 64 MiB/s a pass over 256 MiB takes
/// 4 s while `stress` dirties the guest's memory far faster, and with 1 ms of downtime allowed
/// QEMU completes only once nothing is dirtied (the guest paused, or post-copy). Tests that
/// assert a pause or a post-copy switch use it, so the migration cannot end before either.
const NO_CONVERGENCE: &str = "--bandwidth 64 --downtime 1";

/// The arguments (a command line) with [`NO_CONVERGENCE`].
fn unconverging(args: &str) -> String {
    format!("{NO_CONVERGENCE} {args}")
}

/// The source reported this migration status, in a QMP event (the `events` capability is on,
/// so no status is missed between polls).
fn src_reached(run: &Run, status: &str) -> bool {
    run.of_type("qmp_event")
        .any(|e| e["role"] == "src" && e["event"] == "MIGRATION" && e["data"]["status"] == status)
}

/// The source's pre-copy was still running when gp-migrate paused it: a snapshot after the
/// `pause` action still says `active`.
fn paused_during_pre_copy(run: &Run) -> bool {
    let paused = run.action_time("pause");
    run.of_type("progress").any(|p| {
        p["role"] == "src" && p["status"] == "active" && p["time_s"].as_f64().unwrap() > paused
    })
}

#[test]
fn pause_after_one_pass_completes_and_the_destination_runs_the_workload() {
    let _lock = vm_test_lock();
    let run = completed(
        "pause",
        &[],
        &unconverging("--sleep 1 --pause --pause-iters 1"),
    );
    assert!(paused_during_pre_copy(&run), "{}", run.dump());
    let actions = run.actions();
    assert!(
        actions.contains(&("pause".into(), "src".into())),
        "{actions:?}"
    );
    assert!(
        actions.contains(&("resume".into(), "dst".into())),
        "{actions:?}"
    );
    let resumed = run.action_time("resume");
    assert!(run.workload_after("dst", resumed) > 0, "{}", run.dump());
    // Progress: every snapshot verbatim, iteration = dirty-sync-count, events with QEMU time.
    let progress: Vec<&Value> = run
        .of_type("progress")
        .filter(|p| p["role"] == "src")
        .collect();
    assert!(!progress.is_empty());
    for p in &progress {
        assert_eq!(p["status"], p["info"]["status"]);
        if let Some(i) = p.get("iteration") {
            assert_eq!(i, &p["info"]["ram"]["dirty-sync-count"]);
        }
    }
    let passes = run
        .of_type("qmp_event")
        .filter(|e| e["event"] == "MIGRATION_PASS")
        .count();
    assert!(passes >= 1, "no MIGRATION_PASS events\n{}", run.dump());
    let completed = run
        .of_type("qmp_event")
        .find(|e| {
            e["event"] == "MIGRATION" && e["data"]["status"] == "completed" && e["role"] == "src"
        })
        .unwrap_or_else(|| panic!("no MIGRATION completed event\n{}", run.dump()));
    assert!(completed["qemu_time_s"].as_f64().unwrap() > 1.0e9);
    assert_eq!(scenario(&run)["capabilities"]["events"], true);
    assert_eq!(scenario(&run)["dst_capabilities"]["events"], true);
    assert_eq!(scenario(&run)["parameters"]["downtime-limit"], 1);
    assert_eq!(scenario(&run)["parameters"]["max-bandwidth"], 64u64 << 20);
}

/// Host time of the last source `guest_warm` (every thread warm), if every thread got there.
fn src_warm_at(run: &Run) -> Option<f64> {
    let threads = run.of_type("guest_start").find(|g| g["role"] == "src")?["threads"].as_u64()?;
    let warm: Vec<f64> = run
        .of_type("guest_warm")
        .filter(|w| w["role"] == "src")
        .map(|w| w["time_s"].as_f64().unwrap())
        .collect();
    (warm.len() as u64 == threads).then(|| warm.into_iter().fold(0.0, f64::max))
}

#[test]
fn a_warm_guest_is_migrated_only_once_warm_and_steady_and_cold_says_cold() {
    let _lock = vm_test_lock();
    // --sleep 0.1 is far shorter than the first pass over 192 MiB under TCG (0.5 s on an idle
    // 2-core host; checked below).
    let warm = completed(
        "settle warm",
        &[],
        &unconverging("--sleep 0.1 --pause --pause-iters 1"),
    );
    let settle = &scenario(&warm)["settle"];
    eprintln!("[settle warm] {settle}");
    assert_eq!(settle["criterion"], "warm+steady", "{}", warm.dump());
    assert_eq!(settle["touched_share"], 1.0, "{}", warm.dump());
    let warm_s = settle["warm_s"].as_f64().unwrap();
    let waited_s = settle["waited_s"].as_f64().unwrap();
    assert!(
        warm_s > 0.1,
        "the first pass was not longer than --sleep: {settle}"
    );
    // Steady, or the wait for it was cut at --steady-max after warm.
    match settle["steady_s"].as_f64() {
        Some(steady_s) => {
            assert_eq!(settle["steady"], true, "{settle}");
            assert!(warm_s <= steady_s && steady_s <= waited_s, "{settle}");
        }
        None => {
            assert_eq!(settle["steady"], false, "{settle}");
            assert!(waited_s >= warm_s + f64::from(STEADY_MAX) - 0.5, "{settle}");
        }
    }
    assert!(settle["rule"].as_str().unwrap().contains("within 10%"));
    let all_warm = src_warm_at(&warm).expect("every source thread warm");
    assert!(warm.action_time("migrate") >= all_warm, "{}", warm.dump());

    let cold = completed(
        "settle cold",
        &[],
        &unconverging("--cold --sleep 0.1 --pause --pause-iters 1"),
    );
    let settle = &scenario(&cold)["settle"];
    eprintln!("[settle cold] {settle}");
    assert_eq!(settle["criterion"], "sleep", "{}", cold.dump());
    assert!(settle.get("warm_s").is_none(), "{settle}");
    assert_eq!(settle["steady"], false);
    let share = settle["touched_share"].as_f64().unwrap();
    assert!(share < 1.0, "{settle}");
    let waited = settle["waited_s"].as_f64().unwrap();
    assert!(
        (0.1..warm_s).contains(&waited),
        "{settle} against warm after {warm_s} s"
    );
    let migrated = cold.action_time("migrate");
    assert!(
        src_warm_at(&cold).is_none_or(|t| t > migrated),
        "{}",
        cold.dump()
    );
}

#[test]
fn post_copy_after_one_pass_completes_and_the_destination_keeps_running() {
    let _lock = vm_test_lock();
    // Post-copy made certain (no convergence before the switch) and slow enough, at 32 MiB/s,
    // for the guest to fault pages in on the destination.
    let run = completed(
        "post-copy",
        &[],
        &unconverging(
            "--sleep 1 --post-copy --post-copy-iters 1 \
             --parameter max-postcopy-bandwidth=33554432",
        ),
    );
    assert_eq!(scenario(&run)["capabilities"]["postcopy-ram"], true);
    assert_eq!(scenario(&run)["dst_capabilities"]["postcopy-ram"], true);
    // Blocktime: measured on both sides where this QEMU has it (QEMU 10 does), reported by the
    // destination once completed, in the last dst snapshot gp-migrate takes after completion.
    assert_eq!(scenario(&run)["capabilities"]["postcopy-blocktime"], true);
    assert_eq!(
        scenario(&run)["dst_capabilities"]["postcopy-blocktime"],
        true
    );
    let dst: Vec<&Value> = run
        .of_type("progress")
        .filter(|p| p["role"] == "dst")
        .collect();
    assert!(
        dst.iter().any(|p| p["status"] == "postcopy-active"),
        "no dst snapshot in post-copy\n{}",
        run.dump()
    );
    let last = dst.last().unwrap();
    eprintln!(
        "[post-copy] dst final: postcopy-blocktime {} postcopy-vcpu-blocktime {}",
        last["info"]["postcopy-blocktime"], last["info"]["postcopy-vcpu-blocktime"]
    );
    assert_eq!(last["status"], "completed", "{last}");
    // Taken after completion, before the result record and the VMs' shutdown.
    let at = |v: &Value| run.records.iter().position(|r| std::ptr::eq(r, v)).unwrap();
    assert!(at(last) < at(run.result()), "{}", run.dump());
    assert!(last["info"]["postcopy-blocktime"].is_u64(), "{last}");
    assert!(last["info"]["postcopy-vcpu-blocktime"].is_array(), "{last}");
    let switched = run.action_time("postcopy");
    assert!(run.workload_after("dst", switched) > 0, "{}", run.dump());
    assert!(
        src_reached(&run, "postcopy-active"),
        "never saw postcopy-active\n{}",
        run.dump()
    );
}

#[test]
fn auto_converge_throttles_the_source() {
    let _lock = vm_test_lock();
    // QEMU checks the dirty rate at most once a second, so passes must be slow (bandwidth) and
    // the downtime tight for it to throttle; the pause at pass 12 ends it for sure. It throttles
    // when a period dirties more than half of what it sent (12 MiB/s here): an unpaced guest
    // dirties several times that even sharing the cores with another VM test.
    let run = completed(
        "auto-converge",
        &[],
        "--sleep 1 --auto-converge --auto-converge-step 30 --bandwidth 24 --downtime 10 \
         --pause --pause-iters 12",
    );
    assert_eq!(scenario(&run)["capabilities"]["auto-converge"], true);
    assert_eq!(scenario(&run)["dst_capabilities"]["auto-converge"], false);
    assert_eq!(scenario(&run)["parameters"]["cpu-throttle-increment"], 30);
    let throttled = max_progress(&run, |info| info["cpu-throttle-percentage"].as_u64());
    eprintln!("[auto-converge] max cpu-throttle-percentage {throttled}");
    assert!(
        throttled > 0,
        "the source was never throttled\n{}",
        run.dump()
    );
}

#[test]
fn xbzrle_caches_a_share_of_guest_ram() {
    let _lock = vm_test_lock();
    let run = completed(
        "xbzrle",
        &[],
        "--sleep 1 --compression-xbzrle --pause --pause-iters 3",
    );
    assert_eq!(scenario(&run)["capabilities"]["xbzrle"], true);
    // 10% of 256 MiB, rounded down to a power of two.
    assert_eq!(
        scenario(&run)["parameters"]["xbzrle-cache-size"],
        16u64 << 20
    );
    let cache_seen = run
        .of_type("progress")
        .any(|p| p["info"].get("xbzrle-cache").is_some());
    assert!(
        cache_seen,
        "no xbzrle-cache statistics in any snapshot\n{}",
        run.dump()
    );
}

#[test]
fn multifd_with_each_compression_method_this_qemu_has() {
    let _lock = vm_test_lock();
    let none = completed(
        "multifd",
        &[],
        "--sleep 1 --multifd --multifd-channels 2 --pause --pause-iters 2",
    );
    assert_eq!(scenario(&none)["capabilities"]["multifd"], true);
    assert_eq!(scenario(&none)["dst_capabilities"]["multifd"], true);
    assert_eq!(scenario(&none)["dst_parameters"]["multifd-channels"], 2);
    let multifd_bytes = max_progress(&none, |info| info["ram"]["multifd-bytes"].as_u64());
    assert!(
        multifd_bytes > 0,
        "no bytes went over multifd channels\n{}",
        none.dump()
    );

    // Methods this QEMU lacks are refused up front, naming the ones it has.
    let mut methods: Option<Vec<String>> = None;
    for method in ["qpl", "uadk"] {
        let run = run(&format!(
            "--sleep 0 --multifd --multifd-compression {method} --pause --pause-iters 2"
        ));
        if run.migrate_code == Some(6) {
            let reason = refusal(&run);
            assert!(
                reason.contains(&format!("multifd compression '{method}'")),
                "{reason}"
            );
            assert!(reason.contains("QEMU 10"), "{reason}");
            let has = reason
                .rsplit_once("which has: ")
                .expect("the methods it has")
                .1;
            methods = Some(has.split(", ").map(String::from).collect());
            run.assert_nothing_left();
        } else {
            assert_completed(&run);
        }
    }
    eprintln!("[multifd] this QEMU's multifd compression methods: {methods:?}");
    let mut tested = 0;
    for method in ["zlib", "zstd"] {
        if methods
            .as_ref()
            .is_some_and(|m| !m.iter().any(|m| m == method))
        {
            continue;
        }
        let run = completed(
            &format!("multifd-{method}"),
            &[],
            &format!("--sleep 1 --multifd --multifd-compression {method} --pause --pause-iters 2"),
        );
        assert_eq!(scenario(&run)["parameters"]["multifd-compression"], method);
        assert_eq!(
            scenario(&run)["dst_parameters"]["multifd-compression"],
            method
        );
        tested += 1;
    }
    assert!(
        tested > 0,
        "this QEMU has neither zlib nor zstd multifd compression: {methods:?}"
    );
}

#[test]
fn multi_thread_compression_is_refused_clearly_on_this_qemu() {
    let _lock = vm_test_lock();
    let run = run("--sleep 0 --compression-mt");
    // QEMU 9.1 removed it; this machine has QEMU 10.
    assert_eq!(run.migrate_code, Some(6), "{}", run.dump());
    let result = run.result();
    assert_eq!(result["outcome"], "failed");
    let reason = result["reason"].as_str().unwrap();
    assert!(
        reason.contains("multi-thread compression (--compression-mt) is not supported by QEMU 10"),
        "{reason}"
    );
    assert!(
        reason.contains("removed multi-thread compression in 9.1"),
        "{reason}"
    );
    let ours = run
        .of_type("stage_error")
        .filter(|e| e["stage"] == "gp-migrate")
        .count();
    assert_eq!(ours, 1, "{}", run.dump());
    assert_eq!(
        run.of_type("scenario").count(),
        0,
        "nothing is configured when refusing"
    );
    assert!(
        run.stderr.contains("not supported by QEMU"),
        "{}",
        run.stderr
    );
    // Both VMs were shut down by gp-migrate, and gp-launch ended.
    let shutdowns = run
        .actions()
        .iter()
        .filter(|(a, _)| a == "shutdown")
        .count();
    assert_eq!(shutdowns, 2, "{}", run.dump());
    assert_eq!(run.of_type("vm_exit").count(), 2, "{}", run.dump());
    run.assert_nothing_left();
}

#[test]
fn max_iters_cancels_and_the_source_runs_on_until_shutdown() {
    let _lock = vm_test_lock();
    // At 64 MiB/s every pass takes seconds, while the guest dirties its memory much faster:
    // with 1 ms of downtime allowed it cannot converge (1 ms alone is not enough: a guest
    // starved of CPU by a busy host can dirty so little that it converges).
    let run = run("--sleep 1 --bandwidth 64 --downtime 1 --max-iters 2");
    run.summary("max-iters");
    assert_eq!(run.migrate_code, Some(4), "{}", run.dump());
    let result = run.result();
    assert_eq!(result["outcome"], "cancelled");
    assert!(
        result["reason"].as_str().unwrap().contains("--max-iters 2"),
        "{}",
        run.dump()
    );
    // Cancelled at the first snapshot past --max-iters (passes can be quicker than the poll).
    let iterations = result["iterations"].as_u64().unwrap();
    assert!(
        iterations > 2,
        "cancelled too early: {iterations}\n{}",
        run.dump()
    );
    let cancelled = run.action_time("cancel");
    assert!(
        run.workload_after("src", cancelled) > 0,
        "the source stopped working\n{}",
        run.dump()
    );
    let src_exit = run.of_type("vm_exit").find(|e| e["role"] == "src").unwrap()["time_s"]
        .as_f64()
        .unwrap();
    let shutdown = run
        .of_type("action")
        .find(|a| a["action"] == "shutdown" && a["role"] == "src")
        .unwrap_or_else(|| panic!("no shutdown of src\n{}", run.dump()))["time_s"]
        .as_f64()
        .unwrap();
    assert!(
        src_exit > shutdown,
        "the source exited before gp-migrate shut it down"
    );
    run.assert_nothing_left();
}

#[test]
fn tcp_transport_migrates() {
    let _lock = vm_test_lock();
    let run = completed(
        "tcp",
        &["--transport", "tcp"],
        &unconverging("--sleep 1 --pause --pause-iters 1"),
    );
    assert!(paused_during_pre_copy(&run), "{}", run.dump());
    let dst = run.of_type("vm").find(|v| v["role"] == "dst").unwrap();
    assert!(
        dst["migrate_uri"].as_str().unwrap().starts_with("tcp:"),
        "{dst}"
    );
    let migrate = run
        .of_type("action")
        .find(|a| a["action"] == "migrate")
        .unwrap();
    assert!(migrate["reason"].as_str().unwrap().contains("tcp:"));
}

#[test]
fn unix_transport_migrates_without_pausing() {
    let _lock = vm_test_lock();
    // Post-copy after two passes: the unix socket path, no pause involved.
    let run = completed(
        "unix",
        &["--transport", "unix"],
        &unconverging("--sleep 1 --post-copy --post-copy-iters 2"),
    );
    assert!(src_reached(&run, "postcopy-active"), "{}", run.dump());
    assert!(
        !run.actions().iter().any(|(a, _)| a == "pause"),
        "{}",
        run.dump()
    );
    let dst = run.of_type("vm").find(|v| v["role"] == "dst").unwrap();
    assert!(
        dst["migrate_uri"].as_str().unwrap().starts_with("unix:"),
        "{dst}"
    );
}

#[test]
fn generic_capability_and_parameter_reach_qemu() {
    let _lock = vm_test_lock();
    let run = run(
        "--sleep 1 --pause --pause-iters 1 --capability return-path=on \
         --parameter announce-max=600 --parameter cpu-throttle-tailslow=on \
         --parameter max-cpu-throttle=75",
    );
    assert_completed(&run);
    let s = scenario(&run);
    // Read back from query-migrate-capabilities / query-migrate-parameters after setting.
    assert_eq!(s["capabilities"]["return-path"], true);
    assert_eq!(s["dst_capabilities"]["return-path"], true);
    assert_eq!(s["parameters"]["announce-max"], 600);
    assert_eq!(
        s["dst_parameters"]["announce-max"], 600,
        "announce-* matters on the destination"
    );
    assert_eq!(
        s["parameters"]["cpu-throttle-tailslow"], true,
        "typed as a boolean"
    );
    assert_eq!(
        s["parameters"]["max-cpu-throttle"], 75,
        "typed as an integer"
    );
    assert_eq!(
        s["dst_parameters"]["max-cpu-throttle"], 99,
        "source-only: the destination keeps its default"
    );
    assert_eq!(s["extra_capabilities"]["return-path"], true);
    assert_eq!(s["extra_parameters"]["cpu-throttle-tailslow"], true);
}

#[test]
fn an_unknown_parameter_is_refused_naming_it_and_the_qemu_version() {
    let _lock = vm_test_lock();
    let run = run("--sleep 0 --parameter warp-factor=9");
    let reason = refusal(&run);
    assert!(
        reason.contains("'warp-factor'") && reason.contains("QEMU 10"),
        "{reason}"
    );
    run.assert_nothing_left();
}

#[test]
fn destination_killed_mid_migration_fails_and_nothing_is_left() {
    let _lock = vm_test_lock();
    let mut dst_pid = None;
    let mut killed = false;
    // 16 MiB/s: the first pass over 256 MiB takes many seconds, time enough to kill it.
    let run = pipeline(&[], &["--sleep", "1", "--bandwidth", "16"], &mut |r, _| {
        if r["type"] == "vm" && r["role"] == "dst" {
            dst_pid = r["pid"].as_u64();
        }
        if !killed && r["type"] == "progress" && r["role"] == "src" && r["status"] == "active" {
            let transferred = r["info"]["ram"]["transferred"].as_u64().unwrap_or(0);
            if transferred > 4 << 20 {
                let pid = dst_pid.expect("dst vm record before progress");
                kill("-KILL", pid).unwrap();
                killed = true;
            }
        }
        true
    });
    assert!(
        killed,
        "the migration ended before the destination could be killed\n{}",
        run.dump()
    );
    run.summary("dst-killed");
    assert_eq!(run.migrate_code, Some(3), "{}", run.dump());
    assert_eq!(run.result()["outcome"], "failed", "{}", run.dump());
    run.assert_nothing_left();
    assert!(run.launch_code.is_some(), "gp-launch did not exit normally");
}

#[test]
fn sigterm_cancels_records_interrupted_and_ends_the_run() {
    let _lock = vm_test_lock();
    let mut sent = false;
    let run = pipeline(
        &[],
        &["--sleep", "1", "--bandwidth", "16"],
        &mut |r, pid| {
            if !sent && r["type"] == "progress" && r["status"] == "active" {
                kill("-TERM", pid.into()).unwrap();
                sent = true;
            }
            true
        },
    );
    assert!(sent);
    assert_eq!(run.migrate_code, Some(143), "{}", run.dump());
    assert_eq!(run.result()["outcome"], "interrupted", "{}", run.dump());
    let actions = run.actions();
    assert!(
        actions.contains(&("cancel".into(), "src".into())),
        "{actions:?}"
    );
    assert_eq!(
        actions.iter().filter(|(a, _)| a == "shutdown").count(),
        2,
        "{actions:?}"
    );
    run.assert_nothing_left();
}

#[test]
fn a_closed_output_cancels_and_ends_the_run() {
    let _lock = vm_test_lock();
    let mut closed_at = None;
    let run = pipeline(&[], &["--sleep", "1", "--bandwidth", "16"], &mut |r, _| {
        // Stop reading (like `| head`) once the migration is under way.
        let stop = r["type"] == "progress" && r["status"] == "active";
        if stop {
            closed_at = Some(Instant::now());
        }
        !stop
    });
    assert!(closed_at.is_some(), "{}", run.dump());
    assert_eq!(run.migrate_code, Some(5), "{}", run.dump());
    assert!(
        run.stderr.contains("output closed by the next stage"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("cancel (src)"), "{}", run.stderr);
    run.assert_nothing_left();
}

#[test]
fn dirty_limit_is_refused_under_tcg() {
    let _lock = vm_test_lock();
    let run = run("--sleep 0 --dirty-limit");
    let reason = refusal(&run);
    assert!(
        reason.starts_with("dirty-limit (--dirty-limit) is not supported by QEMU 10"),
        "{reason}"
    );
    assert!(reason.contains("KVM"), "{reason}");
    run.assert_nothing_left();
}

/// A guest dirtying `rate` (gp-launch --stress-dirty-rate) in `pattern`, with these gp-migrate
/// options (a command line).
fn dirtying(rate: &str, pattern: &str, mem: &str, migrate_args: &str) -> Run {
    let launch = format!("--mem {mem} --stress-dirty-rate {rate} --stress-pattern {pattern}");
    pipeline(&words(&launch), &words(migrate_args), &mut |_, _| true)
}

#[test]
fn qemu_s_dirty_rate_estimate_rises_with_the_set_rate() {
    // Alone: the outcome depends on how fast the guest dirties memory.
    let _lock = vm_test_lock_alone();
    // 256 MiB: the workload's 192 MiB is more than 128 MiB/s x 1 s, so every rate below is
    // distinct pages per second, as QEMU counts.
    let mut estimates = Vec::new();
    for rate in ["8M", "32M", "128M"] {
        let run = dirtying(
            rate,
            "seq",
            "256M",
            "--sleep 0 --calc-dirty-rate 1 --max-iters 3",
        );
        let records: Vec<&Value> = run.of_type("dirty_rate").collect();
        let modes: Vec<&str> = records
            .iter()
            .map(|r| r["mode"].as_str().unwrap())
            .collect();
        assert_eq!(
            modes,
            ["page-sampling", "dirty-bitmap", "dirty-ring"],
            "{}",
            run.dump()
        );
        // Measured before migrating; the bitmap and the ring need KVM, and say so.
        let migrate = run.action_time("migrate");
        for r in &records {
            assert!(r["time_s"].as_f64().unwrap() < migrate, "{r}");
            assert_eq!(r["calc_time_ms"], 1000, "{r}");
        }
        for r in &records[1..] {
            assert!(r["error"].as_str().unwrap().contains("KVM"), "{r}");
            assert!(r.get("dirty_rate_mb_s").is_none(), "{r}");
        }
        let sampled = records[0];
        assert_eq!(sampled["info"]["status"], "measured", "{sampled}");
        assert_eq!(sampled["sample_pages"], 16384, "{sampled}");
        eprintln!(
            "[dirty-rate {rate}] page-sampling {}",
            sampled["dirty_rate_mb_s"]
        );
        estimates.push(sampled["dirty_rate_mb_s"].as_f64().unwrap());
    }
    assert!(
        estimates[0] < estimates[1] && estimates[1] < estimates[2],
        "page-sampling estimates for 8, 32, 128 MiB/s: {estimates:?}"
    );
}

/// From the `migrate` action to the result, seconds.
fn migration_s(run: &Run) -> f64 {
    run.result()["time_s"].as_f64().unwrap() - run.action_time("migrate")
}

#[test]
fn pre_copy_converges_below_the_bandwidth_and_not_above_it() {
    // Alone: the outcome depends on how fast the guest dirties memory.
    let _lock = vm_test_lock_alone();
    // Random pages: stress xors with one 4 KiB block, so a page written an even number of
    // times is a zero page again, which QEMU sends nearly for free. Written sequentially, the
    // whole working set is zero after every other sweep, and a sync that falls there lets even
    // 128 MiB/s converge (seen twice); written at random, about half of it is, at any time.
    // --sleep 1: the destination runs the workload a while after completing (assert_completed).
    // 256 MiB (a 144 MiB working set): the first pass takes about 5 s at 32 MiB/s, so 15 s
    // leave the 128 MiB/s guest passes enough to show that none ends the migration.
    let limits = "--sleep 1 --bandwidth 32 --max-time 15";
    // 8 MiB/s against 32 MiB/s: each pass is a quarter of the one before; it completes.
    let slow = dirtying("8M", "random", "256M", limits);
    slow.summary("converges");
    assert_completed(&slow);
    assert!(migration_s(&slow) < 60.0, "{}", slow.dump());
    // 128 MiB/s against 32 MiB/s: every pass leaves more dirty than it sent; never completes.
    let fast = dirtying("128M", "random", "256M", limits);
    fast.summary("does not converge");
    assert_eq!(fast.result()["outcome"], "cancelled", "{}", fast.dump());
    assert_eq!(fast.migrate_code, Some(4), "{}", fast.dump());
    let reason = fast.result()["reason"].as_str().unwrap();
    assert!(reason.contains("--max-time 15"), "{reason}");
    assert!(migration_s(&fast) < 60.0, "{}", fast.dump());
    // Both guests really dirtied at their set rates while migrating (host clock).
    for (run, rate) in [(&slow, 8.0), (&fast, 128.0)] {
        let start = &run
            .of_type("guest_start")
            .find(|g| g["role"] == "src")
            .unwrap();
        assert_eq!(
            start["dirty_rate_bytes_per_s"].as_f64().unwrap(),
            rate * f64::from(1 << 20)
        );
        let (from, to) = (
            run.action_time("migrate"),
            run.result()["time_s"].as_f64().unwrap(),
        );
        let written: u64 = run
            .of_type("guest_progress")
            .filter(|g| g["role"] == "src")
            .filter(|g| (from..to).contains(&g["time_s"].as_f64().unwrap()))
            .map(|g| g["bytes"].as_u64().unwrap())
            .sum();
        let achieved = written as f64 / (to - from) / f64::from(1 << 20);
        eprintln!("[convergence {rate} MiB/s] achieved {achieved:.1} MiB/s while migrating");
        assert!(
            (0.6 * rate..1.4 * rate).contains(&achieved),
            "{achieved} MiB/s for {rate}"
        );
    }
    fast.assert_nothing_left();
}
