//! The `summary` of a report: figures computed from the records. `docs/report.md` documents
//! each derivation; the comments here say the same in short.

use gp_records::report::{
    Extended, GuestStall, GuestThroughput, HostCpu, PhaseThroughput, ProgressSnapshot, Summary,
    SwitchGap, VmCpu, GIB,
};
use gp_records::sample::{CpuSample, ThreadClass};
use gp_records::{Outcome, Progress, QmpEvent, Role};

/// How long after the migration ends a gap in guest progress still counts as "around the
/// switchover": the destination's first records arrive up to a chunk after it resumes.
pub const STALL_MARGIN_S: f64 = 5.0;

/// One unit of guest work: a `guest_progress` (or `guest_gb`) record.
#[derive(Debug, Clone, Copy)]
struct Work {
    time_s: f64,
    role: Role,
    bytes: f64,
    elapsed_ms: f64,
}

pub fn summarize(ext: &Extended, history: &[ProgressSnapshot]) -> Summary {
    let mut notes = Vec::new();
    // Only the snapshots used are converted: a stream may hold 10^5 of them.
    let src_progress: Vec<&Progress> = ext
        .progress
        .iter()
        .filter(|p| p.role == Role::Src)
        .collect();
    let last_src = src_progress
        .last()
        .map(|p| ProgressSnapshot::from_progress(p));
    let last_src = last_src.as_ref();
    let final_src = history.iter().find(|s| s.is_final());
    let result = ext.result.as_ref();

    let migration_start_s = migration_start(ext, &src_progress);
    let migration_end_s = final_src
        .map(|s| s.now)
        .or_else(|| {
            migration_event(&ext.events, &["completed", "failed", "cancelled"]).map(|e| e.time_s)
        })
        .or_else(|| result.filter(|_| ext.result_in_stream).map(|r| r.time_s));
    let switchover_s = switchover(ext, migration_start_s, &src_progress);
    notes.extend(stream_notes(ext, migration_start_s));
    let qemu = QemuFigures::of(ext, final_src, last_src);
    let (total_time_ms, downtime_ms) = (qemu.total_time_ms, qemu.downtime_ms);

    let (work, source) = guest_work(ext);
    if work.is_empty() {
        notes.push("no guest_progress or guest_gb records: no guest figures".to_string());
    } else if source == "guest_gb" {
        notes.push(
            "no guest_progress records: guest figures come from per-GB records and are coarse"
                .to_string(),
        );
    }
    let guest_stall = guest_stall(&work, migration_start_s, migration_end_s, downtime_ms);
    let guest_switch_gap = switch_gap(&work);
    let guest_throughput = (!work.is_empty())
        .then(|| guest_throughput(&work, source, migration_start_s, migration_end_s));

    if ext.samples.is_empty() {
        notes.push("no cpu_sample records: add gp-sample to the pipeline for host CPU".to_string());
    }
    let host_cpu = host_cpu(&ext.samples, migration_start_s, migration_end_s);
    let mode = crate::mode::mode(
        ext,
        migration_start_s,
        result.map(|r| r.outcome),
        &mut notes,
    );
    let downtime_breakdown =
        crate::breakdown::breakdown(ext, migration_start_s, downtime_ms, mode.is_some());
    let completed = result.is_some_and(|r| r.outcome == Outcome::Completed)
        || mode
            .as_ref()
            .is_some_and(|m| m.switches.iter().any(|s| s.mode == "completed"));
    let verdict = crate::checks::verdict(
        ext,
        migration_start_s,
        completed,
        total_time_ms,
        downtime_ms,
        mode.as_ref(),
        downtime_breakdown.as_ref(),
        guest_stall.as_ref(),
        &mut notes,
    );

    if completed {
        notes.extend(destination_died(ext, migration_end_s));
    }
    let postcopy = mode.as_ref().is_some_and(|m| m.reached == "post-copy");
    let destination = crate::context::destination(
        ext,
        postcopy,
        guest_stall.as_ref().map(|s| s.stall_ms),
        &mut notes,
    );
    let before_migration = crate::context::before_migration(ext, migration_start_s, &mut notes);

    Summary {
        outcome: result.map(|r| r.outcome).or(Some(Outcome::Interrupted)),
        reason: result.map(|r| r.reason.clone()).unwrap_or_default(),
        migration_start_s,
        switchover_s,
        migration_end_s,
        total_time_ms,
        downtime_ms,
        setup_time_ms: qemu.setup_time_ms,
        guest_stall,
        guest_switch_gap,
        guest_throughput,
        host_cpu,
        transferred_bytes: qemu.transferred_bytes,
        guest_ram_bytes: qemu.guest_ram_bytes,
        transferred_bytes_per_guest_gb: qemu.transferred_bytes_per_guest_gb,
        iterations: qemu.iterations,
        notes,
        mode,
        checks: verdict.checks,
        trusted_total_time_ms: verdict.total_ms,
        trusted_total_time_source: verdict.total_source,
        trusted_downtime_ms: verdict.downtime_ms,
        trusted_downtime_source: verdict.downtime_source,
        downtime_breakdown,
        destination,
        before_migration,
    }
}

/// When gp-migrate started the migration: its `migrate` action, else the source's `setup`
/// event, else its first snapshot.
fn migration_start(ext: &Extended, src_progress: &[&Progress]) -> Option<f64> {
    ext.actions
        .iter()
        .find(|a| a.action == "migrate")
        .map(|a| a.time_s)
        .or_else(|| migration_event(&ext.events, &["setup"]).map(|e| e.time_s))
        .or_else(|| src_progress.first().map(|p| p.time_s))
}

/// What the stream lacks that limits the report: a migration start, gp-migrate's result,
/// readable lines.
fn stream_notes(ext: &Extended, migration_start_s: Option<f64>) -> Vec<String> {
    let mut notes = Vec::new();
    if migration_start_s.is_none() {
        notes.push(
            "no migration start in the stream (no migrate action, MIGRATION event or progress \
             snapshot): guest figures cover the whole run"
                .to_string(),
        );
    }
    if !ext.result_in_stream {
        notes.push("no result record: gp-collect wrote guestperf_rs.result itself".to_string());
    }
    if !ext.input.errors.is_empty() {
        notes.push(format!(
            "{} malformed input line(s) skipped: see guestperf_rs.input.errors",
            ext.input.errors.len()
        ));
    }
    notes
}

/// QEMU's own figures: gp-migrate's result, else the source's final (or last) snapshot.
struct QemuFigures {
    total_time_ms: Option<u64>,
    downtime_ms: Option<u64>,
    setup_time_ms: Option<u64>,
    transferred_bytes: Option<u64>,
    iterations: Option<u64>,
    /// From the launch header, else `ram.total`.
    guest_ram_bytes: Option<u64>,
    transferred_bytes_per_guest_gb: Option<f64>,
}

impl QemuFigures {
    fn of(
        ext: &Extended,
        final_src: Option<&ProgressSnapshot>,
        last_src: Option<&ProgressSnapshot>,
    ) -> QemuFigures {
        let result = ext.result.as_ref();
        let transferred_bytes = result
            .and_then(|r| r.transferred_bytes)
            .or(last_src.map(|s| s.ram.transferred_bytes));
        let guest_ram_bytes = ext
            .header
            .as_ref()
            .map(|h| h.hardware.mem_bytes)
            .filter(|&b| b > 0)
            .or(last_src.map(|s| s.ram.total_bytes).filter(|&b| b > 0));
        QemuFigures {
            total_time_ms: result
                .and_then(|r| r.total_time_ms)
                .or(final_src.map(|s| s.duration)),
            downtime_ms: result.and_then(|r| r.downtime_ms).or(final_src
                .filter(|s| s.status == "completed")
                .map(|s| s.downtime)),
            setup_time_ms: result
                .and_then(|r| r.setup_time_ms)
                .or(last_src.map(|s| s.setup_time).filter(|&t| t > 0)),
            transferred_bytes,
            iterations: result
                .and_then(|r| r.iterations)
                .or(last_src.map(|s| s.ram.iterations)),
            guest_ram_bytes,
            transferred_bytes_per_guest_gb: match (transferred_bytes, guest_ram_bytes) {
                (Some(t), Some(r)) => Some(t as f64 / (r as f64 / GIB)),
                _ => None,
            },
        }
    }
}

/// A note when the destination guest died after a migration QEMU called completed (a kernel
/// panic on corrupted memory: seen with QEMU 7.2, multifd and zlib).
fn destination_died(ext: &Extended, migration_end_s: Option<f64>) -> Option<String> {
    let e = ext.vm_exits.iter().find(|e| {
        e.role == Role::Dst
            && e.reason
                .as_deref()
                .is_some_and(|r| r.starts_with("guest reset") || r.contains("panic"))
    })?;
    let after = migration_end_s
        .map(|end| {
            format!(
                " {:.0} ms after the migration ended",
                (e.time_s - end) * 1e3
            )
        })
        .unwrap_or_default();
    Some(format!(
        "the destination guest did not survive the migration: its VM exited{after} ({}); see \
         guestperf_rs.console",
        e.reason.as_deref().unwrap_or_default()
    ))
}

/// The first source `MIGRATION` event whose status is one of `statuses`.
fn migration_event<'a>(events: &'a [QmpEvent], statuses: &[&str]) -> Option<&'a QmpEvent> {
    events.iter().find(|e| {
        e.role == Role::Src
            && e.event == "MIGRATION"
            && e.data
                .get("status")
                .and_then(|s| s.as_str())
                .is_some_and(|s| statuses.contains(&s))
    })
}

/// When the source stopped running the guest: its first `STOP` event after the migration
/// started (QEMU's own timestamp), else the first sign of the switch in events or snapshots.
fn switchover(ext: &Extended, start_s: Option<f64>, src_progress: &[&Progress]) -> Option<f64> {
    let start = start_s.unwrap_or(f64::NEG_INFINITY);
    let when = |e: &QmpEvent| {
        if e.qemu_time_s > 0.0 {
            e.qemu_time_s
        } else {
            e.time_s
        }
    };
    let switch_states = ["device", "postcopy-active", "completed"];
    ext.events
        .iter()
        .find(|e| e.role == Role::Src && e.event == "STOP" && when(e) >= start)
        .map(when)
        .or_else(|| migration_event(&ext.events, &switch_states).map(when))
        .or_else(|| {
            src_progress
                .iter()
                .find(|p| p.status == "postcopy-active" || p.status == "completed")
                .map(|p| p.time_s)
        })
}

/// The workload's progress records in arrival order: `guest_progress`, else `guest_gb`.
fn guest_work(ext: &Extended) -> (Vec<Work>, &'static str) {
    let (mut work, source): (Vec<Work>, _) = if !ext.guest_progress.is_empty() {
        let w = ext.guest_progress.iter().map(|p| Work {
            time_s: p.time_s,
            role: p.role,
            bytes: p.bytes as f64,
            elapsed_ms: p.elapsed_ms,
        });
        (w.collect(), "guest_progress")
    } else {
        let w = ext.guest_gb.iter().map(|g| Work {
            time_s: g.time_s,
            role: g.role,
            bytes: GIB,
            elapsed_ms: g.elapsed_ms,
        });
        (w.collect(), "guest_gb")
    };
    work.retain(|w| w.time_s.is_finite());
    work.sort_by(|a, b| a.time_s.total_cmp(&b.time_s));
    (work, source)
}

/// The longest gap between consecutive arrivals of workload records (any thread, either VM)
/// that overlaps the migration (from its start to [`STALL_MARGIN_S`] after its end).
fn guest_stall(
    work: &[Work],
    start_s: Option<f64>,
    end_s: Option<f64>,
    downtime_ms: Option<u64>,
) -> Option<GuestStall> {
    let lo = start_s.unwrap_or(f64::NEG_INFINITY);
    let hi = end_s.map_or(f64::INFINITY, |e| e + STALL_MARGIN_S);
    let longest = work
        .windows(2)
        .filter(|w| w[1].time_s >= lo && w[0].time_s <= hi)
        .max_by(|a, b| (a[1].time_s - a[0].time_s).total_cmp(&(b[1].time_s - b[0].time_s)))?;
    let (a, b) = (longest[0], longest[1]);
    let stall_ms = round_us((b.time_s - a.time_s) * 1e3);
    let mut before: Vec<f64> = work
        .windows(2)
        .filter(|w| start_s.map_or(true, |s| w[1].time_s < s))
        .map(|w| round_us((w[1].time_s - w[0].time_s) * 1e3))
        .collect();
    Some(GuestStall {
        stall_ms,
        start_s: a.time_s,
        end_s: b.time_s,
        before_role: a.role,
        after_role: b.role,
        typical_gap_ms: median(&mut before),
        qemu_downtime_ms: downtime_ms,
        excess_over_downtime_ms: downtime_ms.map(|d| stall_ms - d as f64),
    })
}

/// From the source's last workload record before the destination's first, to that first one.
fn switch_gap(work: &[Work]) -> Option<SwitchGap> {
    let first_dst = work.iter().find(|w| w.role == Role::Dst)?;
    let last_src = work
        .iter()
        .rev()
        .find(|w| w.role == Role::Src && w.time_s <= first_dst.time_s)?;
    Some(SwitchGap {
        last_src_s: last_src.time_s,
        first_dst_s: first_dst.time_s,
        gap_ms: round_us((first_dst.time_s - last_src.time_s) * 1e3),
    })
}

/// Rounds ms to whole µs: differences of epoch seconds carry float noise below that.
fn round_us(ms: f64) -> f64 {
    (ms * 1e3).round() / 1e3
}

/// Throughput before (first record to start), during (start to end) and after (end to last
/// record) the migration. A record counts in the phase its arrival falls in, `(t0, t1]`.
fn guest_throughput(
    work: &[Work],
    source: &str,
    start_s: Option<f64>,
    end_s: Option<f64>,
) -> GuestThroughput {
    let first = work.first().map_or(0.0, |w| w.time_s);
    let last = work.last().map_or(0.0, |w| w.time_s);
    let phase = |t0: f64, t1: f64| -> Option<PhaseThroughput> {
        if t1 <= t0 {
            return None;
        }
        let in_phase = work.iter().filter(|w| w.time_s > t0 && w.time_s <= t1);
        let (mut bytes, mut elapsed, mut records) = (0.0, 0.0, 0u64);
        for w in in_phase {
            bytes += w.bytes;
            elapsed += w.elapsed_ms;
            records += 1;
        }
        if records == 0 || bytes <= 0.0 {
            return None;
        }
        Some(PhaseThroughput {
            start_s: t0,
            end_s: t1,
            bytes: bytes as u64,
            records,
            gb_per_s: bytes / GIB / (t1 - t0),
            ms_per_gb: elapsed / (bytes / GIB),
        })
    };
    let (before, during, after) = match (start_s, end_s) {
        (Some(s), Some(e)) => (phase(first, s), phase(s, e), phase(e, last)),
        (Some(s), None) => (phase(first, s), phase(s, last), None),
        (None, _) => (phase(first, last), None, None),
    };
    let slowdown = |p: &Option<PhaseThroughput>| match (&before, p) {
        (Some(b), Some(p)) if b.gb_per_s > 0.0 => Some((1.0 - p.gb_per_s / b.gb_per_s) * 100.0),
        _ => None,
    };
    GuestThroughput {
        source: source.to_string(),
        slowdown_during_pct: slowdown(&during),
        slowdown_after_pct: slowdown(&after),
        before,
        during,
        after,
    }
}

/// Host CPU per QEMU process and in total.
fn host_cpu(samples: &[CpuSample], start_s: Option<f64>, end_s: Option<f64>) -> HostCpu {
    // Group by process, in order of first appearance.
    let mut groups: Vec<Vec<&CpuSample>> = Vec::new();
    for s in samples {
        match groups.iter_mut().find(|g| {
            let f = g[0];
            f.pid == s.pid && f.role == s.role && f.host == s.host
        }) {
            Some(g) => g.push(s),
            None => groups.push(vec![s]),
        }
    }
    let (vms, main_s): (Vec<VmCpu>, Vec<f64>) =
        groups.iter().map(|g| vm_cpu(g, start_s, end_s)).unzip();
    let dst_main: Vec<f64> = vms
        .iter()
        .zip(&main_s)
        .filter(|(v, _)| v.role == Role::Dst)
        .map(|(_, &m)| m)
        .collect();
    let sum = |role: Role| {
        let mut it = vms.iter().filter(|v| v.role == role).peekable();
        it.peek()
            .is_some()
            .then(|| it.fold(0.0, |a, v| a + v.process_s))
    };
    HostCpu {
        src_s: sum(Role::Src),
        dst_s: sum(Role::Dst),
        migration_threads_s: (!vms.is_empty())
            .then(|| vms.iter().fold(0.0, |a, v| a + v.migration_s)),
        dst_main_thread_s: (!dst_main.is_empty()).then(|| dst_main.iter().fold(0.0, |a, m| a + m)),
        vms,
    }
}

/// One process's figures, and its main thread's CPU seconds.
fn vm_cpu(g: &[&CpuSample], start_s: Option<f64>, end_s: Option<f64>) -> (VmCpu, f64) {
    let process_ms = |s: &CpuSample| s.process.user_ms + s.process.system_ms;
    let last = g[g.len() - 1];
    // Each thread's last sample, by tid (threads exit and new ones appear).
    let mut threads: Vec<&gp_records::sample::ThreadCpu> = Vec::new();
    for s in g {
        for t in &s.threads {
            match threads.iter_mut().find(|x| x.tid == t.tid) {
                Some(x) => *x = t,
                None => threads.push(t),
            }
        }
    }
    // fold from +0.0: an empty f64 `sum()` is -0.0.
    let class_s = |c: ThreadClass| {
        threads
            .iter()
            .filter(|t| t.class == c)
            .fold(0.0, |a, t| a + t.cpu.ms())
            / 1e3
    };
    let mut migration_threads: Vec<String> = threads
        .iter()
        .filter(|t| t.class == ThreadClass::Migration)
        .map(|t| t.name.clone())
        .collect();
    migration_threads.sort();
    migration_threads.dedup();
    let during_migration_s = match (start_s, end_s) {
        (Some(s), Some(e)) => {
            let before = g.iter().rev().find(|x| x.time_s <= s).unwrap_or(&g[0]);
            let after = g.iter().find(|x| x.time_s >= e).unwrap_or(&last);
            (after.time_s > before.time_s).then(|| (process_ms(after) - process_ms(before)) / 1e3)
        }
        _ => None,
    };
    let vm = VmCpu {
        role: last.role,
        pid: last.pid,
        host: last.host.clone(),
        samples: g.len() as u64,
        process_s: process_ms(last) / 1e3,
        during_migration_s,
        vcpu_s: class_s(ThreadClass::Vcpu),
        migration_s: class_s(ThreadClass::Migration),
        other_s: class_s(ThreadClass::Other),
        migration_threads,
    };
    let main_thread_s = threads
        .iter()
        .filter(|t| t.tid == last.pid)
        .fold(0.0, |a, t| a + t.cpu.ms())
        / 1e3;
    (vm, main_thread_s)
}

use gp_records::stats::median;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_destination_that_died_after_completing_is_a_note_with_when() {
        let exit = |role, reason: &str| gp_records::VmExit {
            time_s: 10.25,
            role,
            pid: 7,
            status: 0,
            signal: None,
            reason: Some(reason.into()),
        };
        let mut ext = Extended {
            vm_exits: vec![
                exit(Role::Src, "guest reset"),
                exit(Role::Dst, "guest poweroff"),
            ],
            ..Extended::default()
        };
        assert_eq!(destination_died(&ext, Some(10.0)), None, "a clean end");
        ext.vm_exits
            .push(exit(Role::Dst, "guest reset (kernel panic)"));
        assert_eq!(
            destination_died(&ext, Some(10.0)).unwrap(),
            "the destination guest did not survive the migration: its VM exited 250 ms after \
             the migration ended (guest reset (kernel panic)); see guestperf_rs.console"
        );
    }

    #[test]
    fn a_stream_without_start_result_or_readable_lines_says_so() {
        let mut ext = Extended {
            result_in_stream: true,
            ..Extended::default()
        };
        assert!(stream_notes(&ext, Some(1.0)).is_empty());
        ext.result_in_stream = false;
        let notes = stream_notes(&ext, None);
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(notes[0].starts_with("no migration start in the stream"));
        assert!(notes[1].starts_with("no result record"));
    }

    fn w(time_s: f64, role: Role) -> Work {
        Work {
            time_s,
            role,
            bytes: 1024.0 * 1024.0,
            elapsed_ms: 10.0,
        }
    }

    #[test]
    fn median_of_even_and_odd() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&mut []), None);
    }

    #[test]
    fn stall_is_the_longest_gap_overlapping_the_migration() {
        // A 0.9 s gap before the migration does not count; the 0.5 s one across it does.
        let work = [
            w(0.0, Role::Src),
            w(0.9, Role::Src),
            w(1.0, Role::Src),
            w(1.2, Role::Src),
            w(1.7, Role::Dst),
            w(1.8, Role::Dst),
        ];
        let s = guest_stall(&work, Some(1.1), Some(1.6), Some(300)).unwrap();
        assert!((s.stall_ms - 500.0).abs() < 1e-6, "{s:?}");
        assert_eq!((s.before_role, s.after_role), (Role::Src, Role::Dst));
        assert!((s.excess_over_downtime_ms.unwrap() - 200.0).abs() < 1e-6);
        // Gaps that end before the start: 900 and 100 ms.
        assert!((s.typical_gap_ms.unwrap() - 500.0).abs() < 1e-6);
    }

    #[test]
    fn throughput_phases_count_arrivals_in_half_open_windows() {
        let work: Vec<Work> = (0..=10).map(|i| w(i as f64, Role::Src)).collect();
        let t = guest_throughput(&work, "guest_progress", Some(4.0), Some(6.0));
        let (b, d, a) = (t.before.unwrap(), t.during.unwrap(), t.after.unwrap());
        assert_eq!((b.records, d.records, a.records), (4, 2, 4));
        assert!((b.gb_per_s - 1.0 / 1024.0).abs() < 1e-12);
        assert!((d.ms_per_gb - 10.0 * 1024.0).abs() < 1e-6);
        assert_eq!(t.slowdown_during_pct, Some(0.0));
    }
}
