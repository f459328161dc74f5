//! Writes a synthetic record stream of N records to stdout, for bench/collect.sh.
//!
//!     synth-stream N
//!
//! The mix follows a real run (2 guest threads at a 20 ms grain, gp-sample at 100 ms on two
//! QEMUs with 2 vCPUs, gp-migrate polling every 50 ms): per 100 ms of run, 10 `guest_progress`,
//! 2 `cpu_sample` (6 threads each), 2 `progress` (full query-migrate JSON), plus a QMP event or a
//! console line now and then. Header, VMs and scenario first; result and VM exits last.

use std::io::{BufWriter, Write};

use gp_records::launch::{GuestProgress, Vm, VmExit};
use gp_records::migrate::{MigrationResult, Outcome, Progress, QmpEvent, Scenario};
use gp_records::sample::{CpuSample, CpuTime, ThreadClass, ThreadCpu};
use gp_records::{Console, Record, Role};
use serde_json::json;

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let out = std::io::stdout().lock();
    let mut w = BufWriter::with_capacity(1 << 20, out);
    let mut emit = |r: &Record| {
        serde_json::to_writer(&mut w, r).unwrap();
        w.write_all(b"\n").unwrap();
    };
    let t0 = 1750000000.0;
    emit(&Record::Launch(gp_testkit::synth::launch_header(
        t0,
        1 << 30,
    )));
    for (role, pid) in [(Role::Src, 1000), (Role::Dst, 2000)] {
        emit(&Record::Vm(Vm {
            time_s: t0,
            role,
            pid,
            host: None,
            qmp_socket: "/tmp/x".into(),
            vcpu_tids: vec![pid + 1, pid + 2],
            migrate_uri: None,
            spawned_s: t0,
            argv: vec![],
        }));
    }
    // Built from JSON so that fields added to the record later (with defaults) need no change.
    let scenario = json!({"type": "scenario", "time_s": t0, "scenario": Scenario::default(),
                          "sleep_s": 5.0, "poll_ms": 50.0});
    emit(&serde_json::from_value::<Record>(scenario).expect("scenario record"));
    let thread_names = [
        "qemu-system-x86",
        "CPU 0/TCG",
        "CPU 1/TCG",
        "IO mon_iothread",
        "call_rcu",
        "mig/src/main",
    ];
    let mut i = 0u64;
    let mut tick = 0u64;
    while i < n {
        let t = t0 + tick as f64 * 0.1;
        tick += 1;
        let mut batch: Vec<Record> = Vec::with_capacity(16);
        for k in 0..10 {
            batch.push(Record::GuestProgress(GuestProgress {
                time_s: t + k as f64 * 0.01,
                role: Role::Src,
                thread: (k % 2) as u32,
                guest_time_ms: (t + k as f64 * 0.01) * 1e3,
                bytes: 4 << 20,
                elapsed_ms: 20.0,
                touched_bytes: None,
            }));
        }
        for (role, pid) in [(Role::Src, 1000u32), (Role::Dst, 2000)] {
            let threads = thread_names
                .iter()
                .enumerate()
                .map(|(j, name)| ThreadCpu {
                    tid: pid + j as u32,
                    name: name.to_string(),
                    class: match j {
                        1 | 2 => ThreadClass::Vcpu,
                        5 => ThreadClass::Migration,
                        _ => ThreadClass::Other,
                    },
                    vcpu: matches!(j, 1 | 2).then(|| j as u32 - 1),
                    cpu: CpuTime {
                        user_ms: tick as f64 * 90.0,
                        system_ms: tick as f64 * 10.0,
                        run_ns: Some(tick * 100_000_000),
                    },
                })
                .collect();
            batch.push(Record::CpuSample(CpuSample {
                time_s: t,
                role,
                pid,
                host: None,
                process: CpuTime {
                    user_ms: tick as f64 * 300.0,
                    system_ms: tick as f64 * 30.0,
                    run_ns: None,
                },
                threads,
            }));
        }
        for k in 0..2 {
            let iter = 1 + tick / 50;
            batch.push(Record::Progress(Progress {
                time_s: t + k as f64 * 0.05,
                role: Role::Src,
                status: "active".into(),
                iteration: Some(iter),
                info: json!({"status": "active", "setup-time": 4, "total-time": tick * 100,
                    "expected-downtime": 300,
                    "ram": {"total": 1073741824u64, "remaining": 500000000u64,
                            "transferred": tick * 10_000_000, "duplicate": 5000, "skipped": 0,
                            "normal": 17000, "normal-bytes": 69632000u64,
                            "dirty-pages-rate": 1000, "mbps": 1100.5, "dirty-sync-count": iter,
                            "postcopy-requests": 0, "page-size": 4096, "multifd-bytes": 0,
                            "pages-per-second": 30000, "precopy-bytes": tick * 10_000_000,
                            "downtime-bytes": 0, "postcopy-bytes": 0,
                            "dirty-sync-missed-zero-copy": 0}}),
            }));
        }
        if tick % 10 == 0 {
            batch.push(Record::QmpEvent(QmpEvent {
                time_s: t,
                role: Role::Src,
                event: "MIGRATION_PASS".into(),
                qemu_time_s: t,
                data: json!({"pass": tick / 10}),
            }));
            batch.push(Record::Console(Console {
                time_s: t,
                role: Role::Src,
                line: "[   12.345678] random: crng init done".into(),
            }));
        }
        for r in batch {
            if i >= n {
                break;
            }
            emit(&r);
            i += 1;
        }
    }
    let t = t0 + tick as f64 * 0.1;
    emit(&Record::Result(MigrationResult {
        time_s: t,
        outcome: Outcome::Completed,
        reason: "migration completed".into(),
        total_time_ms: Some(tick * 100),
        downtime_ms: Some(120),
        setup_time_ms: Some(4),
        transferred_bytes: Some(tick * 10_000_000),
        iterations: Some(1 + tick / 50),
    }));
    for (role, pid) in [(Role::Src, 1000), (Role::Dst, 2000)] {
        emit(&Record::VmExit(VmExit {
            time_s: t,
            role,
            pid,
            status: 0,
            signal: None,
            reason: None,
        }));
    }
}
