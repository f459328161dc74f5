//! gp-collect on recorded fixture streams: the guestperf-compatible part field by field, the
//! summary against hand-computed values, truncated streams, malformed lines, signals, --output.
//!
//! `fixtures/precopy.ndjson` is a hand-written precopy run: 2 vCPUs, 256 MiB, the workload
//! (2 threads) reporting every 0.25 s alternately, 64 MiB per chunk before and after the
//! migration and 32 MiB during it; migration from t=4.0 to t=6.05 (T = 1750000000 s), source
//! stopped at 5.8, QEMU downtime 230 ms, last source record 5.75, first destination one 6.3.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use gp_records::report::Report;
use gp_records::Outcome;
use serde_json::{json, Value};

const T: f64 = 1750000000.0;

fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn collect(input: &str, args: &[&str]) -> Output {
    // A report that cannot be written is saved in the guestperf cache: a private one here.
    let cache = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_gp-collect"))
        .args(args)
        .env("GUESTPERF_CACHE", cache.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn gp-collect");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn report_of(out: &Output) -> (Report, Value) {
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    let value: Value = serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {text}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (
        serde_json::from_value(value.clone()).expect("stdout is a Report"),
        value,
    )
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6 * b.abs().max(1.0)
}

macro_rules! assert_close {
    ($a:expr, $b:expr) => {
        let (a, b): (f64, f64) = ($a, $b);
        assert!(close(a, b), "{} = {a}, expected {b}", stringify!($a));
    };
}

#[test]
fn guestperf_compatible_part_field_by_field() {
    let out = collect(&fixture("precopy.ndjson"), &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, v) = report_of(&out);

    let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "binary",
            "dst_host",
            "guest_timings",
            "guestperf_rs",
            "hardware",
            "initrd",
            "kernel",
            "progress_history",
            "qemu_timings",
            "result",
            "scenario",
            "sleep",
            "summary",
            "transport",
            "vcpu_timings"
        ]
    );
    assert_eq!(
        v["hardware"],
        json!({"cpus": 2, "mem": 0.25, "src_cpu_bind": [], "src_mem_bind": [],
               "dst_cpu_bind": ["1"], "dst_mem_bind": ["0"], "prealloc_pages": false,
               "huge_pages": false, "locked_pages": false, "dirty_ring_size": 0})
    );
    assert_eq!(
        v["scenario"],
        json!({"name": "precopy", "downtime": 500, "bandwidth": 125000, "max_iters": 30,
               "max_time": 300, "pause": false, "pause_iters": 5, "post_copy": false,
               "post_copy_iters": 5, "auto_converge": false, "auto_converge_step": 10,
               "compression_mt": false, "compression_mt_threads": 1,
               "compression_xbzrle": false, "compression_xbzrle_cache": 10, "multifd": false,
               "multifd_channels": 2, "multifd_compression": "none", "dirty_limit": false,
               "x_vcpu_dirty_limit_period": 500, "vcpu_dirty_limit": 1})
    );
    assert_eq!(v["binary"], "/usr/bin/qemu-system-x86_64");
    assert_eq!(v["dst_host"], "localhost");
    assert_eq!(
        v["kernel"],
        "/root/.cache/guestperf/kernel/vmlinuz-6.1.0-56-cloud-amd64"
    );
    assert_eq!(v["initrd"], "/root/.cache/guestperf/initrd-stress.img");
    assert_eq!(v["transport"], "unix");
    assert_eq!(v["sleep"], json!(2));
    assert_eq!(
        v["result"],
        json!({"success": true, "outcome": "completed",
                                   "reason": "migration completed"})
    );

    // Source snapshots at 4.05 (iteration 1), 5.05 (2), 5.55 (3) and the final 6.05 (4); the
    // one at 4.55 repeats iteration 1 and the destination's is not the source's.
    let h = v["progress_history"].as_array().unwrap();
    assert_eq!(h.len(), 4);
    let nows: Vec<f64> = h.iter().map(|p| p["now"].as_f64().unwrap() - T).collect();
    for (now, want) in nows.iter().zip([4.05, 5.05, 5.55, 6.05]) {
        assert!((now - want).abs() < 1e-6, "{nows:?}");
    }
    assert_eq!(
        h[3],
        json!({"status": "completed",
               "ram": {"transferred_bytes": 300000000u64, "remaining_bytes": 0,
                       "total_bytes": 272760832u64, "duplicate_pages": 14000, "skipped_pages": 0,
                       "normal_pages": 72000, "normal_bytes": 294912000u64,
                       "dirty_rate_pps": 8500, "transfer_rate_mbs": 1180.3, "iterations": 4},
               "now": T + 6.05, "duration": 2040, "downtime": 230, "downtime_expected": 0,
               "setup_time": 4, "throttle_pcent": 0, "dirty_limit_throttle_time_per_round": 0,
               "dirty_limit_ring_full_time": 0})
    );
    assert_eq!(h[0]["downtime_expected"], 300);
    assert_eq!(h[0]["ram"]["transfer_rate_mbs"], 1100.5);

    // Per-GB records of both VMs, in time order: {tid, timestamp (s), value (ms per GB)}.
    assert_eq!(
        v["guest_timings"],
        json!([{"tid": 101, "timestamp": T + 3.9, "value": 8000.0},
               {"tid": 102, "timestamp": T + 4.1, "value": 8000.0},
               {"tid": 101, "timestamp": T + 7.9, "value": 9500.0}])
    );
    // Source QEMU: cumulative user + system CPU ms per sample, tid = pid.
    let qemu = v["qemu_timings"].as_array().unwrap();
    let values: Vec<f64> = qemu.iter().map(|r| r["value"].as_f64().unwrap()).collect();
    assert_eq!(values, [1800.0, 2800.0, 3800.0, 5200.0, 6500.0, 6620.0]);
    assert!(qemu.iter().all(|r| r["tid"] == 1001));
    assert_eq!(qemu[0]["timestamp"].as_f64(), Some(T + 2.0));
    // Source vCPU threads: cumulative CPU ms (schedstat), two threads per sample.
    let vcpu = v["vcpu_timings"].as_array().unwrap();
    assert_eq!(vcpu.len(), 12);
    assert_eq!(
        vcpu[0],
        json!({"tid": 1002, "timestamp": T + 2.0, "value": 700.0})
    );
    assert_eq!(
        vcpu[1],
        json!({"tid": 1003, "timestamp": T + 2.0, "value": 650.0})
    );
    assert_eq!(
        vcpu[11],
        json!({"tid": 1003, "timestamp": T + 7.0, "value": 2250.0})
    );
}

#[test]
fn summary_matches_hand_computed_values() {
    let out = collect(&fixture("precopy.ndjson"), &[]);
    assert!(out.status.success());
    let (r, _) = report_of(&out);
    let s = r.summary.unwrap();
    assert_eq!(s.outcome, Some(Outcome::Completed));
    assert_close!(s.migration_start_s.unwrap(), T + 4.0); // the migrate action
    assert_close!(s.switchover_s.unwrap(), T + 5.8); // source STOP, QEMU's timestamp
    assert_close!(s.migration_end_s.unwrap(), T + 6.05); // first final source snapshot
    assert_eq!(
        (s.total_time_ms, s.downtime_ms, s.setup_time_ms),
        (Some(2040), Some(230), Some(4))
    );
    assert_eq!(s.iterations, Some(4));
    assert_eq!(s.transferred_bytes, Some(300_000_000));
    assert_eq!(s.guest_ram_bytes, Some(256 << 20));
    // 300e6 bytes for a 0.25 GiB guest.
    assert_close!(s.transferred_bytes_per_guest_gb.unwrap(), 1.2e9);

    // Last source record at 5.75, first destination record at 6.3: 550 ms, 320 ms more than
    // QEMU's 230 ms downtime; before the migration records arrived every 250 ms.
    let stall = s.guest_stall.unwrap();
    assert_close!(stall.stall_ms, 550.0);
    assert_close!(stall.start_s, T + 5.75);
    assert_close!(stall.end_s, T + 6.3);
    assert_eq!(
        (stall.before_role.as_str(), stall.after_role.as_str()),
        ("src", "dst")
    );
    assert_close!(stall.typical_gap_ms.unwrap(), 250.0);
    assert_eq!(stall.qemu_downtime_ms, Some(230));
    assert_close!(stall.excess_over_downtime_ms.unwrap(), 320.0);

    let gap = s.guest_switch_gap.unwrap();
    assert_close!(gap.last_src_s, T + 5.75);
    assert_close!(gap.first_dst_s, T + 6.3);
    assert_close!(gap.gap_ms, 550.0);

    // Before (2.0, 4.0]: 8 x 64 MiB = 0.5 GiB in 2 s; 8 x 500 ms for 0.5 GiB.
    // During (4.0, 6.05]: 7 x 32 MiB = 0.21875 GiB in 2.05 s; 7 x 500 ms for 0.21875 GiB.
    // After (6.05, 8.05]: 8 x 64 MiB in 2 s; (750 + 800 + 6 x 500) ms for 0.5 GiB.
    let g = s.guest_throughput.unwrap();
    assert_eq!(g.source, "guest_progress");
    let (b, d, a) = (g.before.unwrap(), g.during.unwrap(), g.after.unwrap());
    assert_eq!((b.records, d.records, a.records), (8, 7, 8));
    assert_eq!(
        (b.bytes, d.bytes, a.bytes),
        (512 << 20, 224 << 20, 512 << 20)
    );
    assert_close!(b.gb_per_s, 0.25);
    assert_close!(d.gb_per_s, 0.21875 / 2.05);
    assert_close!(a.gb_per_s, 0.25);
    assert_close!(b.ms_per_gb, 8000.0);
    assert_close!(d.ms_per_gb, 16000.0);
    assert_close!(a.ms_per_gb, 9100.0);
    assert_close!(
        g.slowdown_during_pct.unwrap(),
        (1.0 - 0.21875 / 2.05 / 0.25) * 100.0
    );
    assert_close!(g.slowdown_after_pct.unwrap(), 0.0);

    // Source: process 5700 + 920 ms at its last sample; vCPUs 2300 + 2250 ms (schedstat);
    // mig/src/main 1250 ms at its last sample (it exited before the last one); destination
    // main thread 1100 ms; during the migration: sample at 4.0 (3800) to the first at or after 6.05 (6620).
    let c = s.host_cpu;
    assert_close!(c.src_s.unwrap(), 6.62);
    assert_close!(c.dst_s.unwrap(), 2.25);
    assert_close!(c.migration_threads_s.unwrap(), 1.25);
    let src = &c.vms[0];
    assert_eq!((src.pid, src.samples), (1001, 6));
    assert_close!(src.vcpu_s, 4.55);
    assert_close!(src.migration_s, 1.25);
    assert_close!(src.other_s, 0.4);
    assert_close!(src.during_migration_s.unwrap(), 2.82);
    assert_eq!(src.migration_threads, ["mig/src/main"]);
    let dst = &c.vms[1];
    assert_eq!((dst.pid, dst.samples), (2001, 4));
    assert_close!(dst.vcpu_s, 0.98);
    assert_eq!(dst.migration_s.to_bits(), 0.0f64.to_bits(), "not -0.0");
    assert_close!(c.dst_main_thread_s.unwrap(), 1.1);
    assert_close!(dst.during_migration_s.unwrap(), 2.04);
    assert!(s.notes.is_empty(), "{:?}", s.notes);
}

#[test]
fn every_record_is_kept() {
    let input = fixture("precopy.ndjson");
    let out = collect(&input, &[]);
    let (r, v) = report_of(&out);
    let e = r.guestperf_rs.unwrap();
    assert_eq!(e.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(e.header.unwrap().qemu_version, "10.0.2");
    assert_eq!(e.scenario.unwrap().poll_ms, 50.0);
    let counts = [
        e.vms.len(),
        e.vm_exits.len(),
        e.guest_start.len(),
        e.guest_progress.len(),
        e.guest_gb.len(),
        e.console.len(),
        e.samples.len(),
        e.progress.len(),
        e.events.len(),
        e.actions.len(),
        e.unrecognized.len(),
    ];
    assert_eq!(counts, [2, 2, 1, 24, 3, 1, 10, 6, 9, 2, 1]);
    // + launch, scenario and result: every line is somewhere.
    assert_eq!(counts.iter().sum::<usize>() + 3, input.lines().count());
    assert_eq!((e.input.lines, e.input.records), (64, 64));
    assert_eq!(e.input.ended, "end of input");
    assert!(e.result_in_stream && e.duplicates.is_empty() && e.input.errors.is_empty());
    assert_eq!(
        v["guestperf_rs"]["unrecognized"][0],
        json!({"type": "gp_future_record", "time_s": T + 6.6,
               "note": "a record type from a newer stage", "values": [1, 2, 3]})
    );
    // Samples keep each thread, destination included.
    assert_eq!(
        v["guestperf_rs"]["samples"][9]["threads"][0]["name"],
        "qemu-system-x86"
    );
    assert_eq!(e.samples[9].threads[2].vcpu, Some(1));
}

#[test]
fn truncated_stream_still_yields_a_valid_report() {
    // Cut after the source snapshot at 5.55: mid-migration, no result.
    let input = fixture("precopy.ndjson");
    let cut = input
        .lines()
        .position(|l| l.contains("\"time_s\":1750000005.55"))
        .unwrap();
    let head: String = input
        .lines()
        .take(cut + 1)
        .map(|l| format!("{l}\n"))
        .collect();
    let out = collect(&head, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (r, v) = report_of(&out);
    assert_eq!(
        v["result"],
        json!({"success": false, "outcome": "interrupted",
                                   "reason": "stream ended before gp-migrate's result"})
    );
    let e = r.guestperf_rs.as_ref().unwrap();
    assert!(!e.result_in_stream);
    assert_eq!(e.input.records as usize, cut + 1);
    let s = r.summary.unwrap();
    assert_eq!(s.outcome, Some(Outcome::Interrupted));
    assert_eq!(s.migration_end_s, None);
    assert_eq!(s.total_time_ms, None);
    assert_eq!(s.iterations, Some(3), "from the last snapshot");
    assert_eq!(s.transferred_bytes, Some(270_000_000));
    assert!(
        s.notes.iter().any(|n| n.contains("no result record")),
        "{:?}",
        s.notes
    );
    assert_eq!(r.progress_history.len(), 3);

    // A stage that failed says so in the result.
    let failed = format!(
        "{head}{{\"type\":\"stage_error\",\"time_s\":{},\"stage\":\"gp-migrate\",\
         \"message\":\"QMP connection to the source closed\"}}\n",
        T + 5.6
    );
    let (r, _) = report_of(&collect(&failed, &[]));
    let result = r.result.unwrap();
    assert_eq!(
        result.reason.unwrap(),
        "stream ended before gp-migrate's result; gp-migrate: QMP connection to the source closed"
    );
}

#[test]
fn empty_stream_is_a_valid_report() {
    let out = collect("", &[]);
    assert!(out.status.success());
    let (r, _) = report_of(&out);
    assert_eq!(r.scenario.name, "unknown");
    assert_eq!(r.dst_host, "localhost");
    let reason = r.result.unwrap().reason.unwrap();
    assert_eq!(
        reason,
        "stream ended without a migration (no gp-migrate records)"
    );
    assert!(r.summary.unwrap().notes.len() >= 3);
}

#[test]
fn malformed_lines_are_named_and_the_rest_is_kept() {
    let input = fixture("precopy.ndjson");
    let mut lines: Vec<String> = input.lines().map(String::from).collect();
    lines.insert(10, "{\"type\":\"progress\",\"time_s\":\"soon\"}".into()); // line 11
    lines.insert(20, "this is not json".into()); // line 21
                                                 // The last line cut short, as when a stage dies mid-write.
    lines.push("{\"type\":\"vm_exit\",\"time_s\":17500000".into());
    let out = collect(&(lines.join("\n")), &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("input line 11: bad \"progress\" record"),
        "{stderr}"
    );
    assert!(stderr.contains("input line 21: not valid JSON"), "{stderr}");
    assert!(stderr.contains("3 malformed input line(s)"), "{stderr}");
    let (r, _) = report_of(&out);
    let e = r.guestperf_rs.unwrap();
    let bad: Vec<u64> = e.input.errors.iter().map(|e| e.line).collect();
    assert_eq!(bad, [11, 21, 67]);
    assert_eq!(e.input.records, 64, "every good line kept");
    assert_eq!(e.input.lines, 67);
    assert!(r
        .summary
        .unwrap()
        .notes
        .iter()
        .any(|n| n.contains("3 malformed")));
}

#[test]
fn output_file_is_written_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.json");
    let out = collect(
        &fixture("precopy.ndjson"),
        &["--output", path.to_str().unwrap(), "--pretty"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty());
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.starts_with("{\n  \"hardware\""),
        "pretty JSON: {}",
        &text[..40]
    );
    let r: Report = serde_json::from_str(&text).unwrap();
    assert_eq!(r.scenario.name, "precopy");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "no temp file left"
    );

    let out = collect("", &["--output", "/nonexistent-dir/report.json"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("/nonexistent-dir")
            && stderr.contains("writable")
            && stderr.contains("the report was saved to"),
        "{stderr}"
    );
}

#[test]
fn sigterm_writes_what_arrived() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_gp-collect"))
        .args(["--grace", "300ms"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = fixture("precopy.ndjson");
    for line in input.lines().take(30) {
        writeln!(stdin, "{line}").unwrap();
    }
    stdin.flush().unwrap();
    // The input stays open; wait until gp-collect has surely read it, then signal.
    std::thread::sleep(Duration::from_millis(300));
    let start = Instant::now();
    assert!(Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    let out = child.wait_with_output().unwrap();
    assert!(start.elapsed() < Duration::from_secs(10));
    drop(stdin);
    assert_eq!(
        out.status.code(),
        Some(143),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (r, _) = report_of(&out);
    let e = r.guestperf_rs.unwrap();
    assert_eq!(e.input.records, 30);
    assert_eq!(e.input.ended, "SIGTERM; input still open 300ms later");
    let reason = e.result.unwrap().reason;
    assert!(
        reason.starts_with("stream ended before gp-migrate's result (SIGTERM"),
        "{reason}"
    );
}

// Real runs (QEMU 10.0.2 and 7.2.22, TCG, 256 MiB guests, this machine, 2026-12-04), their
// `cpu_sample` records (and, in the QEMU 10 ones, console lines) left out to keep the files
// small. In the two QEMU 10 runs gp-launch did
// not yet read QEMU's trace output: both QEMUs ran with `-trace 'vmstate_downtime*' -msg
// timestamp=on -D FILE`, and each line of those files was turned into a `qemu_trace` record
// (the `time_s` it would have been read at is the QEMU timestamp + 0.2 ms).

fn summary_of(name: &str) -> gp_records::report::Summary {
    let out = collect(&fixture(name), &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    report_of(&out).0.summary.unwrap()
}

#[test]
fn real_precopy_breakdown_covers_qemus_downtime_and_names_the_devices() {
    // guestperf --mem 256M --cpus 1 --sleep 1: QEMU downtime 8 ms.
    let s = summary_of("precopy-traced-qemu10.ndjson");
    let m = s.mode.unwrap();
    assert_eq!(
        (m.requested.as_str(), m.reached.as_str()),
        ("precopy", "precopy")
    );
    let b = s.downtime_breakdown.unwrap();
    assert!(b.available, "{b:?}");
    let coverage = b.coverage_pct.unwrap();
    assert!(
        coverage >= 90.0,
        "steps cover {coverage}% of QEMU's downtime"
    );
    let sum: f64 = b.steps.iter().map(|s| s.ms).sum();
    assert!(close(sum, b.total_ms.unwrap()));
    assert_eq!(b.steps[0].from, "src-downtime-start");
    assert_eq!(b.steps.last().unwrap().step, "dst-precopy-bh-vm-started");
    // Saving RAM's last pass is the longest step, and RAM the slowest device each way.
    let longest = b.steps.iter().max_by(|a, b| a.ms.total_cmp(&b.ms)).unwrap();
    assert_eq!(longest.step, "src-iterable-saved");
    assert_eq!(b.top_save[0].device, "ram");
    assert_eq!(b.top_load[0].device, "ram");
    assert_eq!(b.top_save.len(), 5);
    // Every check agrees; the trusted figures are QEMU's.
    assert_eq!(s.checks.len(), 4);
    assert!(s.checks.iter().all(|c| c.agree), "{:?}", s.checks);
    assert_eq!(s.trusted_downtime_ms, Some(8.0));
    assert_eq!(s.trusted_total_time_ms, Some(582.0));
    let d = s.destination.unwrap();
    assert_eq!(d.postcopy_bytes, Some(0));
    assert_eq!(d.precopy_bytes, Some(100641779));
    assert_eq!(s.before_migration.unwrap().touched_share, Some(1.0));
}

#[test]
fn real_postcopy_reports_blocktime_page_requests_and_the_switch() {
    // --post-copy --post-copy-iters 1 --bandwidth 64 --downtime 1 --capability
    // postcopy-blocktime --parameter max-postcopy-bandwidth=33554432, 2 vCPUs.
    let s = summary_of("postcopy-blocktime-qemu10.ndjson");
    let m = s.mode.unwrap();
    assert_eq!(m.reached, "post-copy");
    assert!(m.requested_reached && m.guest_lost.is_none());
    let modes: Vec<&str> = m.switches.iter().map(|s| s.mode.as_str()).collect();
    assert_eq!(modes, ["precopy", "post-copy", "completed"]);
    let d = s.destination.unwrap();
    assert_eq!(d.postcopy_blocktime_ms, Some(2929));
    assert_eq!(d.postcopy_vcpu_blocktime_ms, [3118, 3391]);
    assert_eq!(d.postcopy_requests, Some(555));
    assert!(d.postcopy_bytes.unwrap() > 100 << 20);
    // The guest lost far more than QEMU's downtime: the stall check says so, and the trusted
    // downtime stays QEMU's (it agrees with the events and the tracepoints).
    let stall = s
        .checks
        .iter()
        .find(|c| c.against.starts_with("guest"))
        .unwrap();
    assert!(!stall.agree && stall.note.as_ref().unwrap().contains("post-copy"));
    assert_eq!(s.trusted_downtime_ms, Some(5.0));
    let b = s.downtime_breakdown.unwrap();
    assert_eq!(b.steps.last().unwrap().step, "dst-postcopy-bh-vm-started");
}

#[test]
fn real_qemu72_zeros_become_event_figures_and_there_is_no_breakdown() {
    // QEMU 7.2.22, --multifd --multifd-compression zlib, 2 vCPUs (workload records older than
    // 3 s before the migration left out). QEMU's final figures: "migration completed in 0 ms
    // with 0 ms downtime"; the events show 4.6 s and a 265 ms stop. The destination guest then
    // panicked (see its console lines).
    let s = summary_of("precopy-multifd-zlib-qemu72.ndjson");
    assert_eq!((s.total_time_ms, s.downtime_ms), (Some(0), Some(0)));
    assert_close!(s.trusted_total_time_ms.unwrap(), 4611.011);
    assert_close!(s.trusted_downtime_ms.unwrap(), 264.656);
    assert!(s
        .trusted_downtime_source
        .unwrap()
        .starts_with("events: STOP (src) to RESUME (dst)"));
    let notes = s.notes.join("\n");
    for want in [
        "QEMU's total time (0 ms) and events: MIGRATION setup to completed (src) (4611.011 ms) \
         disagree beyond 235.551 ms: the report trusts 4611.011 ms",
        "QEMU's downtime (0 ms) and events: STOP (src) to RESUME (dst) (264.656 ms) disagree",
        "the destination guest did not survive the migration: its VM exited 156 ms after the \
         migration ended (guest reset",
    ] {
        assert!(notes.contains(want), "{want:?} not in {notes}");
    }
    let stall = s
        .checks
        .iter()
        .find(|c| c.against.starts_with("guest"))
        .unwrap();
    assert!(stall
        .note
        .as_ref()
        .unwrap()
        .contains("QEMU's figure is not trusted"));
    let b = s.downtime_breakdown.unwrap();
    assert!(!b.available);
    assert_eq!(
        b.reason.as_deref(),
        Some("QEMU 7.2.22 has no vmstate_downtime tracepoints (they came in 8.2)")
    );
}

#[test]
fn a_run_cut_short_during_postcopy_lost_the_guest() {
    // The real post-copy run, ended (as by a crash of the pipeline) a second into post-copy.
    let text = fixture("postcopy-blocktime-qemu10.ndjson");
    let mut cut = String::new();
    let mut switch = None;
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        let t = v["time_s"].as_f64().unwrap();
        if switch.is_none() && v["type"] == "qmp_event" && v["data"]["status"] == "postcopy-active"
        {
            switch = Some(t);
        }
        if switch.is_some_and(|s| t > s + 1.0) {
            break;
        }
        cut.push_str(line);
        cut.push('\n');
    }
    let out = collect(&cut, &[]);
    let (r, _) = report_of(&out);
    let s = r.summary.unwrap();
    let m = s.mode.unwrap();
    assert_eq!(m.reached, "post-copy");
    let lost = m.guest_lost.unwrap();
    assert!(
        lost.starts_with(
            "the guest was lost: the migration was interrupted during post-copy (phase \
             postcopy-active"
        ),
        "{lost}"
    );
    assert!(
        s.reason.ends_with("; the guest was lost during post-copy"),
        "{}",
        s.reason
    );
    assert!(r
        .result
        .unwrap()
        .reason
        .unwrap()
        .ends_with("the guest was lost during post-copy"));
}

#[test]
fn real_warm_run_gives_touched_share_rate_and_qemus_estimate() {
    // gp-migrate after the settle merge: --stress-dirty-rate 32M --calc-dirty-rate 1, 2 vCPUs,
    // traced as above. gp-migrate waited 5.6 s (warm at 0.86 s, steady at 3.37 s).
    let s = summary_of("precopy-warm-32m-qemu10.ndjson");
    let b = s.before_migration.unwrap();
    assert_eq!(b.touched_share, Some(1.0));
    assert!(!b.cold);
    assert_eq!(b.settle_criterion.as_deref(), Some("warm+steady"));
    assert_eq!(b.target_rate_bytes_per_s, Some(32 << 20));
    // The workload held its rate: within 1% before the migration.
    let rate = b.write_rate_bytes_per_s.unwrap() / (32u64 << 20) as f64;
    assert!((rate - 1.0).abs() < 0.01, "{rate}");
    let modes: Vec<&str> = b.qemu_dirty_rates.iter().map(|q| q.mode.as_str()).collect();
    assert_eq!(modes, ["page-sampling", "dirty-bitmap", "dirty-ring"]);
    // Page sampling saw the rate (32 MiB/s against 31.98 achieved); the dirty bitmap saw
    // nothing under TCG; the dirty ring needs KVM.
    let sampling = &b.qemu_dirty_rates[0];
    assert!((sampling.ratio.unwrap() - 1.0).abs() < 0.01, "{sampling:?}");
    assert_eq!(b.qemu_dirty_rates[1].ratio, Some(0.0));
    assert!(b.qemu_dirty_rates[2].error.is_some());
    let coverage = s.downtime_breakdown.unwrap().coverage_pct.unwrap();
    assert!(coverage >= 90.0, "{coverage}");
}

#[test]
fn real_pause_run_is_paused_then_completed_and_trusts_the_events_for_downtime() {
    // --pause --pause-iters 1 --bandwidth 64 --downtime 1, 1 vCPU (workload records older than
    // 3 s before the migration left out): the source was stopped after pass 1, 1.6 s before the
    // destination resumed; QEMU's downtime says 1 ms.
    let s = summary_of("pause-qemu10.ndjson");
    let m = s.mode.unwrap();
    assert_eq!(m.reached, "paused-then-completed");
    assert!(m.requested_reached);
    let modes: Vec<&str> = m.switches.iter().map(|s| s.mode.as_str()).collect();
    assert_eq!(modes, ["precopy", "paused", "completed"]);
    assert_eq!(s.downtime_ms, Some(1));
    assert_close!(s.trusted_downtime_ms.unwrap(), 1599.434);
    assert!(s
        .trusted_downtime_source
        .unwrap()
        .contains("the pause strategy stopped the guest"));
    // The pause is not an inconsistency of QEMU's: no note for it.
    assert!(
        s.notes.iter().all(|n| !n.starts_with("QEMU's downtime")),
        "{:?}",
        s.notes
    );
}
