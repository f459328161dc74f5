//! Synthetic reports of any size, built with the report types, for tests and benchmarks
//! (`bench/plot.sh` writes them with `cargo run --example synth`).
//!
//! The run is shaped like a real one: boot, the workload settling, a migration with a few
//! passes over RAM, the switchover (pre-copy, or post-copy with a slow phase on the
//! destination while pages are faulted in), the workload carrying on on the destination. The
//! numbers are made up; the shapes and field values are the ones gp-collect writes.

use gp_records::launch::{GuestProgress, GuestStart, HostInfo, Launch, Vm};
use gp_records::migrate::{Action, MigrationResult, Outcome, Progress, QmpEvent, Scenario};
use gp_records::report::{
    Extended, Hardware, ProgressSnapshot, Report, ReportResult, Summary, TimingRecord, GIB,
};
use gp_records::sample::{CpuSample, CpuTime, ThreadClass, ThreadCpu};
use gp_records::Role;
use serde_json::json;

/// What to make.
#[derive(Debug, Clone)]
pub struct Spec {
    /// `guest_progress` records, across all threads and both VMs.
    pub records: usize,
    pub threads: u32,
    pub post_copy: bool,
    pub scenario: String,
    /// Seed of the noise.
    pub seed: u64,
    /// Guest speed outside migration, ms per GB.
    pub base_ms_per_gb: f64,
}

impl Default for Spec {
    fn default() -> Self {
        Spec {
            records: 2000,
            threads: 2,
            post_copy: false,
            scenario: "precopy".into(),
            seed: 1,
            base_ms_per_gb: 420.0,
        }
    }
}

/// A small deterministic noise source (xorshift).
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Roughly normal, mean 0, sd 1.
    fn gauss(&mut self) -> f64 {
        (0..6).map(|_| self.next()).sum::<f64>() - 3.0
    }
}

// Timeline, seconds after the launch header.
const T0: f64 = 1_700_000_000.0;
const GUEST_START: f64 = 1.3;
const MIG_START: f64 = 6.0;
const PASS_S: [f64; 4] = [1.2, 0.9, 0.7, 0.5];
const END: f64 = 16.0;
const SRC_PID: u32 = 4242;
const DST_PID: u32 = 4343;

/// Builds the report.
pub fn report(spec: &Spec) -> Report {
    let mut noise = Noise(spec.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let passes: &[f64] = if spec.post_copy {
        &PASS_S[..2]
    } else {
        &PASS_S
    };
    let mut pass_ends = Vec::new();
    let mut t = MIG_START;
    for p in passes {
        t += p;
        pass_ends.push(t);
    }
    let switchover = t;
    let downtime_ms = if spec.post_copy { 18.0 } else { 62.0 };
    let resume = switchover + downtime_ms / 1000.0;
    // Post-copy: pages fault in for a while after the switch.
    let mig_end = if spec.post_copy {
        switchover + 2.5
    } else {
        resume + 0.01
    };

    // Guest progress: records spread evenly over the workload's life, per thread.
    let threads = spec.threads.max(1);
    let per_thread = (spec.records / threads as usize).max(1);
    let step = (END - GUEST_START) / per_thread as f64;
    let mut guest_progress = Vec::with_capacity(per_thread * threads as usize);
    for i in 0..per_thread {
        for th in 0..threads {
            let x = GUEST_START + step * (i as f64 + 0.5 + 0.3 * noise.next());
            if (switchover..resume).contains(&x) {
                continue; // the guest runs nowhere
            }
            let role = if x < switchover { Role::Src } else { Role::Dst };
            let mut speed = spec.base_ms_per_gb * (1.0 + 0.03 * noise.gauss());
            if (MIG_START..switchover).contains(&x) {
                speed *= 1.5 + 0.2 * noise.next(); // dirty tracking
            }
            if spec.post_copy && (resume..mig_end).contains(&x) {
                speed *= 4.0 + 4.0 * noise.next(); // faulting pages over the wire
            }
            // The chunk that spans the switchover took the downtime longer.
            let mut elapsed_ms = step * 1000.0;
            if x >= resume && x - step < resume {
                elapsed_ms += downtime_ms;
            }
            let bytes = (GIB * elapsed_ms / speed).max(1.0) as u64;
            guest_progress.push(GuestProgress {
                time_s: T0 + x,
                role,
                thread: th,
                guest_time_ms: (T0 + x) * 1000.0,
                bytes,
                elapsed_ms,
                touched_bytes: None,
            });
        }
    }

    // CPU samples every 100 ms: source until it is shut down, destination from its start.
    let mut samples = Vec::new();
    for (role, pid, from, to) in [
        (Role::Src, SRC_PID, 0.2, mig_end + 1.0),
        (Role::Dst, DST_PID, 0.3, END),
    ] {
        let mut cum = [0.0f64; 4]; // vcpu0, vcpu1, migration, other
        let mut x = from;
        while x <= to {
            let running = match role {
                Role::Src => x < switchover,
                Role::Dst => x >= resume,
            };
            let migrating = (MIG_START..mig_end).contains(&x);
            let vcpu = if running && x > GUEST_START {
                97.0
            } else {
                1.0
            };
            let mig = if migrating {
                70.0 + 25.0 * noise.next()
            } else {
                0.0
            };
            cum[0] += vcpu;
            cum[1] += vcpu * 0.98;
            cum[2] += mig;
            cum[3] += 3.0 + 2.0 * noise.next();
            // Over 100 ms a thread at v% runs v ms, so the sums are cumulative ms.
            let ms = |v: f64| v;
            let thread = |tid, name: &str, class, vcpu, v: f64| ThreadCpu {
                tid,
                name: name.to_string(),
                class,
                vcpu,
                cpu: CpuTime {
                    user_ms: ms(v) * 0.8,
                    system_ms: ms(v) * 0.2,
                    run_ns: Some((ms(v) * 1e6) as u64),
                },
            };
            let mut threads = vec![
                thread(pid + 1, "CPU 0/TCG", ThreadClass::Vcpu, Some(0), cum[0]),
                thread(pid + 2, "CPU 1/TCG", ThreadClass::Vcpu, Some(1), cum[1]),
                thread(pid + 9, "qemu-system-x86", ThreadClass::Other, None, cum[3]),
            ];
            if cum[2] > 0.0 {
                let name = if role == Role::Src {
                    "live_migration"
                } else {
                    "mig/dst/listen"
                };
                threads.push(thread(pid + 5, name, ThreadClass::Migration, None, cum[2]));
            }
            let total: f64 = cum.iter().sum();
            samples.push(CpuSample {
                time_s: T0 + x,
                role,
                pid,
                host: None,
                process: CpuTime {
                    user_ms: ms(total) * 0.8,
                    system_ms: ms(total) * 0.2,
                    run_ns: Some((ms(total) * 1e6) as u64),
                },
                threads,
            });
            x += 0.1;
        }
    }

    // Progress snapshots every 50 ms on the source, with the pass count.
    let total_bytes = 512u64 << 20;
    let mut progress = Vec::new();
    let mut x = MIG_START + 0.02;
    while x <= mig_end + 0.05 {
        let iteration = 1 + pass_ends.iter().filter(|e| **e <= x).count() as u64;
        let status = if x >= mig_end {
            "completed"
        } else if spec.post_copy && x >= switchover {
            "postcopy-active"
        } else if x >= switchover {
            "device"
        } else {
            "active"
        };
        let done = status == "completed";
        let transferred =
            (total_bytes as f64 * (x - MIG_START) / (mig_end - MIG_START) * 1.3) as u64;
        progress.push(Progress {
            time_s: T0 + x,
            role: Role::Src,
            status: status.into(),
            iteration: Some(iteration),
            info: json!({
                "status": status,
                "total-time": ((x - MIG_START) * 1000.0) as u64,
                "downtime": if done { Some(downtime_ms as u64) } else { None },
                "expected-downtime": 300,
                "setup-time": 4,
                "ram": {
                    "transferred": transferred, "remaining": if done { 0 } else { total_bytes / 5 },
                    "total": total_bytes, "duplicate": 90000, "skipped": 0, "normal": transferred / 4096,
                    "normal-bytes": transferred, "dirty-pages-rate": 52000, "mbps": 2400.5,
                    "dirty-sync-count": iteration
                }
            }),
        });
        x += 0.05;
    }
    let progress_history = thin(&progress);

    let mut events = vec![
        mig_event(MIG_START + 0.001, Role::Src, "setup"),
        mig_event(MIG_START + 0.005, Role::Src, "active"),
        mig_event(MIG_START + 0.004, Role::Dst, "active"),
        QmpEvent {
            time_s: T0 + switchover,
            role: Role::Src,
            event: "STOP".into(),
            qemu_time_s: T0 + switchover,
            data: json!({}),
        },
        QmpEvent {
            time_s: T0 + resume,
            role: Role::Dst,
            event: "RESUME".into(),
            qemu_time_s: T0 + resume,
            data: json!({}),
        },
        mig_event(mig_end, Role::Src, "completed"),
        mig_event(mig_end + 0.001, Role::Dst, "completed"),
    ];
    if spec.post_copy {
        events.push(mig_event(switchover + 0.002, Role::Src, "postcopy-active"));
    } else {
        events.push(mig_event(switchover, Role::Src, "device"));
    }
    events.sort_by(|a, b| a.time_s.total_cmp(&b.time_s));

    let last = progress_history.last().cloned().unwrap_or_default();
    let scenario = Scenario {
        name: spec.scenario.clone(),
        post_copy: spec.post_copy,
        post_copy_iters: 2,
        ..Scenario::default()
    };
    let header = launch_header(T0, total_bytes);
    let result = MigrationResult {
        time_s: T0 + mig_end,
        outcome: Outcome::Completed,
        reason: "completed".into(),
        total_time_ms: Some(last.duration),
        downtime_ms: Some(downtime_ms as u64),
        setup_time_ms: Some(4),
        transferred_bytes: Some(last.ram.transferred_bytes),
        iterations: Some(last.ram.iterations),
    };
    let vm = |role, pid, spawned: f64| Vm {
        time_s: T0 + spawned + 0.1,
        role,
        pid,
        host: None,
        qmp_socket: format!("/tmp/synth-{pid}.qmp"),
        vcpu_tids: vec![pid + 1, pid + 2],
        migrate_uri: (role == Role::Dst).then(|| "unix:/tmp/synth.migrate".to_string()),
        spawned_s: T0 + spawned,
        argv: vec!["qemu-system-x86_64".into()],
    };
    Report {
        hardware: Hardware::from(&header.hardware),
        scenario: scenario.clone(),
        progress_history,
        guest_timings: gb_timings(&guest_progress),
        qemu_timings: Vec::<TimingRecord>::new(),
        vcpu_timings: Vec::new(),
        result: Some(ReportResult {
            success: true,
            outcome: Some(Outcome::Completed),
            reason: None,
        }),
        binary: header.qemu_binary.clone(),
        dst_host: "localhost".into(),
        kernel: header.kernel.clone(),
        initrd: header.initrd.clone(),
        transport: "unix".into(),
        sleep: 5.0,
        summary: Some(Summary {
            outcome: Some(Outcome::Completed),
            reason: "completed".into(),
            migration_start_s: Some(T0 + MIG_START),
            switchover_s: Some(T0 + switchover),
            migration_end_s: Some(T0 + mig_end),
            total_time_ms: Some(last.duration),
            downtime_ms: Some(downtime_ms as u64),
            setup_time_ms: Some(4),
            transferred_bytes: Some(last.ram.transferred_bytes),
            guest_ram_bytes: Some(total_bytes),
            iterations: Some(last.ram.iterations),
            ..Summary::default()
        }),
        guestperf_rs: Some(Extended {
            version: "0.1.0".into(),
            header: Some(header),
            vms: vec![vm(Role::Src, SRC_PID, 0.0), vm(Role::Dst, DST_PID, 0.1)],
            guest_start: vec![GuestStart {
                time_s: T0 + GUEST_START,
                role: Role::Src,
                threads,
                ram_bytes: total_bytes / 2,
                grain_ms: step * 1000.0,
                guest_time_ms: (T0 + GUEST_START) * 1000.0,
                boot_ms: Some(GUEST_START * 1000.0),
                pattern: Default::default(),
                wss_bytes: Some(total_bytes / 2),
                dirty_rate_bytes_per_s: None,
            }],
            guest_progress,
            samples,
            progress,
            events,
            actions: vec![Action {
                time_s: T0 + MIG_START,
                action: "migrate".into(),
                reason: "settled for 5 s".into(),
                role: Some(Role::Src),
            }],
            result: Some(result),
            result_in_stream: true,
            ..Extended::default()
        }),
    }
}

/// gp-launch's header record of a synthetic run: a 2-vCPU TCG guest of `mem_bytes` on QEMU
/// 10.0.2, on a synthetic host.
pub fn launch_header(time_s: f64, mem_bytes: u64) -> Launch {
    Launch {
        time_s,
        tool: "gp-launch".into(),
        version: "0.1.0".into(),
        argv: vec!["gp-launch".into()],
        qemu_binary: "/usr/bin/qemu-system-x86_64".into(),
        qemu_version: "10.0.2".into(),
        accel: "tcg".into(),
        accel_note: None,
        kernel: "/root/.cache/guestperf/kernel/vmlinuz".into(),
        initrd: "/root/.cache/guestperf/initrd-stress.img".into(),
        kernel_cmdline: "console=ttyS0 quiet".into(),
        transport: "unix".into(),
        dst_host: None,
        hardware: gp_records::launch::Hardware {
            cpus: 2,
            mem_bytes,
            ..Default::default()
        },
        host: HostInfo {
            hostname: "synth".into(),
            cpu_model: "synthetic".into(),
            kernel_release: "6.1".into(),
            cpus: 2,
        },
        trace_events: Vec::new(),
        trace_note: None,
        bind_note: None,
    }
}

fn mig_event(x: f64, role: Role, status: &str) -> QmpEvent {
    QmpEvent {
        time_s: T0 + x,
        role,
        event: "MIGRATION".into(),
        qemu_time_s: T0 + x,
        data: json!({ "status": status }),
    }
}

/// The original's thinning: the first snapshot, each one whose pass count grew, the last.
fn thin(progress: &[Progress]) -> Vec<ProgressSnapshot> {
    let mut out: Vec<ProgressSnapshot> = Vec::new();
    for p in progress {
        let s = ProgressSnapshot::from_progress(p);
        let grew = out
            .last()
            .map_or(true, |l| s.ram.iterations > l.ram.iterations);
        if grew || s.is_final() {
            let last_final = out.last().is_some_and(ProgressSnapshot::is_final);
            if !last_final {
                out.push(s);
            }
        }
    }
    out
}

/// One record per GB of work per thread, as the original's `guest_timings`.
fn gb_timings(progress: &[GuestProgress]) -> Vec<TimingRecord> {
    let mut acc: std::collections::BTreeMap<u32, (f64, f64)> = Default::default();
    let mut out = Vec::new();
    for p in progress {
        let e = acc.entry(p.thread).or_default();
        e.0 += p.bytes as f64;
        e.1 += p.elapsed_ms;
        if e.0 >= GIB {
            out.push(TimingRecord {
                tid: u64::from(p.thread) + 100,
                timestamp: p.time_s,
                value: e.1 * GIB / e.0,
            });
            *e = (0.0, 0.0);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_round_trip() {
        let r = report(&Spec {
            records: 1000,
            ..Spec::default()
        });
        let ext = r.guestperf_rs.as_ref().unwrap();
        let n = ext.guest_progress.len();
        assert!((980..=1000).contains(&n), "{n}");
        assert!(ext.guest_progress.iter().any(|p| p.role == Role::Dst));
        let text = serde_json::to_string(&r).unwrap();
        let back: Report = serde_json::from_str(&text).unwrap();
        assert_eq!(back.guestperf_rs.unwrap().guest_progress.len(), n);
        assert!(r.progress_history.last().unwrap().is_final());
    }
}
