//! From a report to the lines, marks and table row of one run.
//!
//! A report of ours carries every record under `guestperf_rs`; an original guestperf result
//! has only the top-level `guest_timings`, `qemu_timings`, `vcpu_timings` and
//! `progress_history`. Each figure is taken from the richest source the report has:
//!
//! | line | ours | original |
//! |---|---|---|
//! | guest ms/GB | `guest_progress` chunks (else `guest_gb`), per VM | `guest_timings` |
//! | QEMU, vCPU, migration thread % | `samples`, source and destination | `qemu_timings`, `vcpu_timings` (source only) |
//! | status changes | QMP `MIGRATION` events (else snapshots) | `progress_history` |
//! | downtime window | source `STOP` .. destination `RESUME` | `downtime` before the final snapshot (estimated) |
//!
//! x is seconds since the start of the run: the `launch` header when there is one, else the
//! earliest timestamp in the report (as the original did).

use std::collections::BTreeMap;

use gp_records::migrate::QmpEvent;
use gp_records::report::{utilization, Extended, Report, TimingRecord, GIB};
use gp_records::sample::{CpuSample, CpuTime, ThreadClass, ThreadCpu};
use gp_records::Role;

use crate::model::{
    Breakdown, DowntimeWindow, IterationMark, Run, Selection, Series, SeriesKind, StatusMark,
    Summary,
};

/// Everything a report holds that can be plotted, before choosing lines.
impl Run {
    /// Builds the run of `report`, read from `path`, with lines chosen by `sel`.
    pub fn from_report(report: &Report, path: &str, label: &str, sel: &Selection) -> Run {
        let start = start_time(report);
        let mut series = Vec::new();
        let guest = guest_points(report);
        if sel.split_guest_cpu {
            series.extend(guest_thread_series(&guest, start));
        }
        if sel.total_guest_cpu {
            series.extend(guest_total_series(&guest, start));
        }
        let cpu = cpu_series(report, start);
        series.extend(cpu.into_iter().filter(|s| sel.wants(s.kind)));
        // Legend and drawing order: by what the line measures, source before destination.
        series.sort_by_key(|s| (s.kind, s.role, s.index));
        let x_max = [
            series
                .iter()
                .filter_map(|s| s.points.last())
                .map(|p| p.0)
                .fold(0.0, f64::max),
            report
                .progress_history
                .last()
                .map_or(0.0, |p| p.now - start),
        ]
        .into_iter()
        .fold(0.0, f64::max);
        Run {
            label: label.to_string(),
            path: path.to_string(),
            series,
            iterations: iteration_marks(report, start),
            statuses: status_marks(report, start),
            downtime: downtime_window(report, start),
            breakdown: breakdown(report),
            summary: summary(report),
            x_max,
        }
    }
}

/// The report's downtime breakdown, when it has one with steps.
fn breakdown(report: &Report) -> Option<Breakdown> {
    let b = report.summary.as_ref()?.downtime_breakdown.as_ref()?;
    if !b.available || b.steps.is_empty() {
        return None;
    }
    let steps: Vec<(String, f64)> = b
        .steps
        .iter()
        .filter(|s| s.ms.is_finite() && s.ms >= 0.0)
        .map(|s| (s.step.clone(), s.ms))
        .collect();
    let total_ms = steps.iter().map(|s| s.1).sum::<f64>();
    let top = |d: &[gp_records::report::DeviceTime]| d.first().map(|d| (d.device.clone(), d.ms));
    (total_ms > 0.0).then(|| Breakdown {
        steps,
        total_ms,
        qemu_window_ms: b.qemu_window_ms,
        top_save: top(&b.top_save),
        top_load: top(&b.top_load),
    })
}

/// Whether the report holds anything at all to draw.
pub fn has_data(report: &Report) -> bool {
    let ext = report.guestperf_rs.as_ref();
    !report.guest_timings.is_empty()
        || !report.qemu_timings.is_empty()
        || !report.vcpu_timings.is_empty()
        || !report.progress_history.is_empty()
        || ext.is_some_and(|e| {
            !e.guest_progress.is_empty()
                || !e.guest_gb.is_empty()
                || !e.samples.is_empty()
                || !e.progress.is_empty()
        })
}

/// Time zero of the run, seconds since the epoch.
pub fn start_time(report: &Report) -> f64 {
    if let Some(h) = report.guestperf_rs.as_ref().and_then(|e| e.header.as_ref()) {
        return h.time_s;
    }
    let ext = report.guestperf_rs.as_ref();
    let firsts = [
        report
            .guest_timings
            .iter()
            .map(|r| r.timestamp)
            .reduce(f64::min),
        report
            .qemu_timings
            .iter()
            .map(|r| r.timestamp)
            .reduce(f64::min),
        report
            .vcpu_timings
            .iter()
            .map(|r| r.timestamp)
            .reduce(f64::min),
        report.progress_history.first().map(|p| p.now),
        ext.and_then(|e| e.guest_progress.iter().map(|r| r.time_s).reduce(f64::min)),
        ext.and_then(|e| e.guest_gb.iter().map(|r| r.time_s).reduce(f64::min)),
        ext.and_then(|e| e.samples.iter().map(|r| r.time_s).reduce(f64::min)),
        ext.and_then(|e| e.progress.iter().map(|r| r.time_s).reduce(f64::min)),
    ];
    firsts
        .into_iter()
        .flatten()
        .filter(|t| t.is_finite())
        .reduce(f64::min)
        .unwrap_or(0.0)
}

/// One guest measurement: when (epoch s), which VM, which workload thread, ms per GB.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GuestPoint {
    pub time_s: f64,
    pub role: Role,
    pub thread: u64,
    pub ms_per_gb: f64,
}

/// Guest speed measurements from the finest source the report has, sorted by time.
pub fn guest_points(report: &Report) -> Vec<GuestPoint> {
    let ext = report.guestperf_rs.as_ref();
    let mut pts: Vec<GuestPoint> = match ext {
        Some(e) if !e.guest_progress.is_empty() => e
            .guest_progress
            .iter()
            .filter(|p| p.bytes > 0)
            .map(|p| GuestPoint {
                time_s: p.time_s,
                role: p.role,
                thread: u64::from(p.thread),
                ms_per_gb: p.elapsed_ms / p.bytes as f64 * GIB,
            })
            .collect(),
        Some(e) if !e.guest_gb.is_empty() => e
            .guest_gb
            .iter()
            .map(|g| GuestPoint {
                time_s: g.time_s,
                role: g.role,
                thread: u64::from(g.thread),
                ms_per_gb: g.elapsed_ms,
            })
            .collect(),
        // The original: one line per guest thread id, source and destination mixed (the same
        // guest threads carry on after the switchover).
        _ => {
            let mut ids: Vec<u64> = report.guest_timings.iter().map(|r| r.tid).collect();
            ids.sort_unstable();
            ids.dedup();
            report
                .guest_timings
                .iter()
                .map(|r| GuestPoint {
                    time_s: r.timestamp,
                    role: Role::Src,
                    thread: ids.binary_search(&r.tid).unwrap_or(0) as u64,
                    ms_per_gb: r.value,
                })
                .collect()
        }
    };
    pts.retain(|p| p.time_s.is_finite() && p.ms_per_gb.is_finite());
    pts.sort_by(|a, b| a.time_s.total_cmp(&b.time_s));
    pts
}

/// `--split-guest-cpu`: one line per workload thread and VM.
fn guest_thread_series(points: &[GuestPoint], start: f64) -> Vec<Series> {
    let mut by: BTreeMap<(Role, u64), Vec<(f64, f64)>> = BTreeMap::new();
    for p in points {
        by.entry((p.role, p.thread))
            .or_default()
            .push((p.time_s - start, p.ms_per_gb));
    }
    let threads: Vec<u64> = {
        let mut t: Vec<u64> = by.keys().map(|k| k.1).collect();
        t.sort_unstable();
        t.dedup();
        t
    };
    by.into_iter()
        .map(|((role, thread), pts)| Series {
            name: format!("guest thread {thread}{}", role_suffix(role)),
            kind: SeriesKind::GuestThread,
            role,
            index: threads.binary_search(&thread).unwrap_or(0),
            count: threads.len(),
            points: pts,
        })
        .collect()
}

/// `--total-guest-cpu`: all workload threads of a VM as one line.
fn guest_total_series(points: &[GuestPoint], start: f64) -> Vec<Series> {
    let mut by: BTreeMap<Role, Vec<(f64, f64)>> = BTreeMap::new();
    for p in points {
        by.entry(p.role)
            .or_default()
            .push((p.time_s - start, p.ms_per_gb));
    }
    by.into_iter()
        .map(|(role, pts)| Series {
            name: format!("guest, all threads{}", role_suffix(role)),
            kind: SeriesKind::GuestTotal,
            role,
            index: 0,
            count: 1,
            points: pts,
        })
        .collect()
}

fn role_suffix(role: Role) -> &'static str {
    match role {
        Role::Src => "",
        Role::Dst => " (dst)",
    }
}

/// QEMU, vCPU and migration thread utilization lines.
fn cpu_series(report: &Report, start: f64) -> Vec<Series> {
    match report.guestperf_rs.as_ref() {
        Some(e) if !e.samples.is_empty() => sample_series(&e.samples, start),
        _ => timing_series(&report.qemu_timings, &report.vcpu_timings, start),
    }
}

/// The original's `qemu_timings` / `vcpu_timings` (source only; vCPU clamped to 100% as the
/// original did, since clock-tick accounting overshoots).
fn timing_series(qemu: &[TimingRecord], vcpu: &[TimingRecord], start: f64) -> Vec<Series> {
    let mut out = Vec::new();
    let q: Vec<(f64, f64)> = utilization(qemu)
        .iter()
        .map(|u| (u.timestamp - start, u.percent))
        .collect();
    if !q.is_empty() {
        out.push(cpu_line("QEMU", SeriesKind::QemuCpu, Role::Src, 0, 1, q));
    }
    let mut by: BTreeMap<u64, Vec<(f64, f64)>> = BTreeMap::new();
    for u in utilization(vcpu) {
        by.entry(u.tid)
            .or_default()
            .push((u.timestamp - start, u.percent.min(100.0)));
    }
    let n = by.len();
    for (i, (tid, pts)) in by.into_iter().enumerate() {
        out.push(cpu_line(
            &format!("vCPU {i} (tid {tid})"),
            SeriesKind::VcpuCpu,
            Role::Src,
            i,
            n,
            pts,
        ));
    }
    out
}

fn cpu_line(
    name: &str,
    kind: SeriesKind,
    role: Role,
    index: usize,
    count: usize,
    mut points: Vec<(f64, f64)>,
) -> Series {
    points.sort_by(|a, b| a.0.total_cmp(&b.0));
    Series {
        name: name.to_string(),
        kind,
        role,
        index,
        count,
        points,
    }
}

/// CPU ms a thread ran between two samples (`prev` is `None` for a thread born in between):
/// from schedstat run time when both samples have it (ns precision), else user + system
/// (clock ticks, usually 10 ms: coarse over a 100 ms interval).
fn thread_ms(prev: Option<&ThreadCpu>, cur: &ThreadCpu) -> f64 {
    let (c, p) = (&cur.cpu, prev.map(|p| &p.cpu));
    match (c.run_ns, p.map(|p| p.run_ns)) {
        (Some(now), Some(Some(before))) => now.saturating_sub(before) as f64 / 1e6,
        (Some(now), None) => now as f64 / 1e6,
        _ => {
            let total = |t: &CpuTime| t.user_ms + t.system_ms;
            (total(c) - p.map_or(0.0, total)).max(0.0)
        }
    }
}

/// CPU ms the whole process ran between two samples: the sum over its threads when every
/// thread has schedstat times (precise), else the process's user + system.
fn process_ms(a: &CpuSample, b: &CpuSample) -> f64 {
    let precise = a
        .threads
        .iter()
        .chain(&b.threads)
        .all(|t| t.cpu.run_ns.is_some());
    if precise && !b.threads.is_empty() {
        b.threads
            .iter()
            .map(|t| thread_ms(a.threads.iter().find(|p| p.tid == t.tid), t))
            .sum()
    } else {
        let total = |t: &CpuTime| t.user_ms + t.system_ms;
        (total(&b.process) - total(&a.process)).max(0.0)
    }
}

/// Our `cpu_sample` records: per QEMU process (source and destination) the whole process, each
/// vCPU thread, and the migration threads summed.
fn sample_series(samples: &[CpuSample], start: f64) -> Vec<Series> {
    // Group by VM process, in time order.
    let mut by_vm: BTreeMap<(Role, u32), Vec<&CpuSample>> = BTreeMap::new();
    for s in samples {
        by_vm.entry((s.role, s.pid)).or_default().push(s);
    }
    let multiple_pids = |role: Role| by_vm.keys().filter(|k| k.0 == role).count() > 1;
    let mut out = Vec::new();
    for (&(role, pid), list) in &by_vm {
        let mut list = list.clone();
        list.sort_by(|a, b| a.time_s.total_cmp(&b.time_s));
        let tag = match (role, multiple_pids(role)) {
            (Role::Src, false) => String::new(),
            (Role::Dst, false) => " dst".to_string(),
            (r, true) => format!(" {r} pid {pid}"),
        };
        let mut qemu = Vec::new();
        let mut vcpus: BTreeMap<u32, Vec<(f64, f64)>> = BTreeMap::new();
        let mut migration = Vec::new();
        let mut any_migration = false;
        for w in list.windows(2) {
            let (a, b) = (w[0], w[1]);
            let dt = b.time_s - a.time_s;
            if dt <= 0.0 {
                continue;
            }
            let pct = |ms: f64| (ms / (dt * 1000.0) * 100.0).max(0.0);
            let x = b.time_s - start;
            qemu.push((x, pct(process_ms(a, b))));
            let mut mig_ms = 0.0;
            for t in &b.threads {
                let prev = a.threads.iter().find(|p| p.tid == t.tid);
                match t.class {
                    // A vCPU first seen in this interval has no rate yet.
                    ThreadClass::Vcpu if prev.is_some() => {
                        let idx = t.vcpu.unwrap_or(u32::MAX);
                        let v = pct(thread_ms(prev, t)).min(100.0);
                        vcpus.entry(idx).or_default().push((x, v));
                    }
                    ThreadClass::Migration => {
                        mig_ms += thread_ms(prev, t);
                        any_migration = true;
                    }
                    _ => {}
                }
            }
            migration.push((x, pct(mig_ms)));
        }
        if !qemu.is_empty() {
            out.push(cpu_line(
                &format!("QEMU{tag}"),
                SeriesKind::QemuCpu,
                role,
                0,
                1,
                qemu,
            ));
        }
        let n = vcpus.len();
        for (i, (idx, pts)) in vcpus.into_iter().enumerate() {
            let name = if idx == u32::MAX {
                format!("vCPU ?{tag}")
            } else {
                format!("vCPU {idx}{tag}")
            };
            out.push(cpu_line(&name, SeriesKind::VcpuCpu, role, i, n, pts));
        }
        if any_migration {
            out.push(cpu_line(
                &format!("migration threads{tag}"),
                SeriesKind::MigrationCpu,
                role,
                0,
                1,
                migration,
            ));
        }
    }
    out
}

/// A mark at each pass over RAM: QEMU's `MIGRATION_PASS` events when the report has them,
/// else each snapshot where the pass count grew (snapshots are polled, so a short pass can be
/// missed there).
fn iteration_marks(report: &Report, start: f64) -> Vec<IterationMark> {
    if let Some(e) = report.guestperf_rs.as_ref() {
        let mut out: Vec<IterationMark> = e
            .events
            .iter()
            .filter(|ev| ev.role == Role::Src && ev.event == "MIGRATION_PASS")
            .filter_map(|ev| {
                let pass = ev.data.get("pass").and_then(serde_json::Value::as_u64)?;
                Some(IterationMark {
                    x: event_time(ev, e) - start,
                    iteration: pass,
                })
            })
            .collect();
        if !out.is_empty() {
            out.sort_by(|a, b| a.x.total_cmp(&b.x));
            return out;
        }
    }
    let mut out = Vec::new();
    let mut last = 0;
    for p in &report.progress_history {
        if p.ram.iterations > last {
            out.push(IterationMark {
                x: p.now - start,
                iteration: p.ram.iterations,
            });
            last = p.ram.iterations;
        }
    }
    out
}

/// When a QMP event happened, on this host's clock: QEMU's own timestamp (the host time at
/// which gp-migrate read the event can lag by a poll interval), moved by the measured clock
/// offset for a VM on another host; the read time when neither can be trusted.
fn event_time(ev: &QmpEvent, ext: &Extended) -> f64 {
    let remote = ext
        .vms
        .iter()
        .find(|v| v.role == ev.role)
        .and_then(|v| v.host.as_ref());
    let qemu = Some(ev.qemu_time_s).filter(|t| t.is_finite() && *t > 0.0);
    match (remote, qemu) {
        (None, Some(t)) => t,
        (Some(host), Some(t)) => ext
            .clock_offsets
            .iter()
            .find(|c| &c.host == host)
            .map_or(ev.time_s, |c| t - c.offset_s),
        (_, None) => ev.time_s,
    }
}

/// The first time the source's migration reached each status (`setup` left out, as the
/// original did).
fn status_marks(report: &Report, start: f64) -> Vec<StatusMark> {
    let ext = report.guestperf_rs.as_ref();
    let mut changes: Vec<(f64, String)> = Vec::new();
    if let Some(e) = ext {
        changes = e
            .events
            .iter()
            .filter(|ev| ev.role == Role::Src && ev.event == "MIGRATION")
            .filter_map(|ev| {
                ev.data
                    .get("status")
                    .and_then(|s| s.as_str())
                    .map(|s| (event_time(ev, e), s.to_string()))
            })
            .collect();
        if changes.is_empty() {
            changes = e
                .progress
                .iter()
                .filter(|p| p.role == Role::Src)
                .map(|p| (p.time_s, p.status.clone()))
                .collect();
        }
    }
    if changes.is_empty() {
        changes = report
            .progress_history
            .iter()
            .map(|p| (p.now, p.status.clone()))
            .collect();
    }
    changes.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut seen: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for (t, status) in changes {
        if status == "setup" || seen.contains(&status) {
            continue;
        }
        seen.push(status.clone());
        out.push(StatusMark {
            x: t - start,
            status,
        });
    }
    out
}

/// When the guest ran on neither VM.
fn downtime_window(report: &Report, start: f64) -> Option<DowntimeWindow> {
    let summary = report.summary.as_ref();
    let downtime_ms = summary
        .and_then(|s| s.downtime_ms)
        .or_else(|| {
            report
                .progress_history
                .iter()
                .rev()
                .find(|p| p.is_final())
                .map(|p| p.downtime)
        })
        .map(|v| v as f64);
    if let (Some(sum), Some(ext)) = (summary, report.guestperf_rs.as_ref()) {
        if let Some(sw) = sum.switchover_s {
            // The destination resuming ends the window; without the event, QEMU's figure does.
            let resume = ext
                .events
                .iter()
                .filter(|e| e.role == Role::Dst && e.event == "RESUME")
                .map(|e| event_time(e, ext))
                .filter(|t| *t >= sw)
                .reduce(f64::min);
            let end = resume.or(downtime_ms.map(|d| sw + d / 1000.0))?;
            return Some(DowntimeWindow {
                start: sw - start,
                end: end - start,
                downtime_ms,
                estimated: resume.is_none(),
            });
        }
    }
    // Original reports: QEMU's downtime, placed before the snapshot that first showed the guest
    // running on the destination (post-copy's switch, else completion).
    let d = downtime_ms.filter(|d| *d > 0.0)?;
    let end = report
        .progress_history
        .iter()
        .find(|p| p.status == "postcopy-active" || p.status == "completed")?
        .now;
    Some(DowntimeWindow {
        start: end - d / 1000.0 - start,
        end: end - start,
        downtime_ms: Some(d),
        estimated: true,
    })
}

/// The table row.
fn summary(report: &Report) -> Summary {
    let last = report
        .progress_history
        .iter()
        .rev()
        .find(|p| p.is_final())
        .or(report.progress_history.last());
    let s = report.summary.as_ref();
    let outcome = report.outcome().map(|o| o.as_str().to_string());
    let reason = s
        .map(|s| s.reason.clone())
        .filter(|r| !r.is_empty())
        .or(report.result.as_ref().and_then(|r| r.reason.clone()));
    let result = match (outcome, last) {
        (Some(o), _) if o != "completed" => match reason {
            Some(r) => format!("{o}: {r}"),
            None => o,
        },
        (Some(o), _) => o,
        (None, Some(p)) => p.status.clone(),
        (None, None) => "no migration".to_string(),
    };
    // Say when the mode asked for was not the one reached (a post-copy run pre-copy beat).
    let result = match s.and_then(|s| s.mode.as_ref()) {
        Some(m) if !m.requested_reached => {
            format!("{result} ({} reached, {} asked)", m.reached, m.requested)
        }
        _ => result,
    };
    Summary {
        scenario: report.scenario.name.clone(),
        result,
        // The figures the report trusts, else QEMU's.
        total_time_ms: s
            .and_then(|s| s.stated_total_time_ms())
            .or(last.map(|p| p.duration as f64)),
        downtime_ms: s
            .and_then(|s| s.stated_downtime_ms())
            .or(last.filter(|p| p.is_final()).map(|p| p.downtime as f64)),
        iterations: s
            .and_then(|s| s.iterations)
            .or(last.map(|p| p.ram.iterations)),
        transferred_bytes: s
            .and_then(|s| s.transferred_bytes)
            .or(last.map(|p| p.ram.transferred_bytes)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gp_testkit::synth;

    fn original() -> Report {
        let text = include_str!("../tests/fixtures/original-postcopy.json");
        serde_json::from_str(text).unwrap()
    }

    fn all() -> Selection {
        Selection {
            total_guest_cpu: true,
            split_guest_cpu: true,
            qemu_cpu: true,
            vcpu_cpu: true,
            migration_iters: true,
            migration_cpu: true,
        }
    }

    fn names(run: &Run) -> Vec<&str> {
        run.series.iter().map(|s| s.name.as_str()).collect()
    }

    #[test]
    fn ours_has_source_and_destination_lines() {
        let r = synth::report(&synth::Spec {
            records: 400,
            ..Default::default()
        });
        let run = Run::from_report(&r, "pre.json", "pre", &all());
        let n = names(&run);
        for want in [
            "guest, all threads",
            "guest, all threads (dst)",
            "guest thread 0",
            "guest thread 1 (dst)",
            "QEMU",
            "QEMU dst",
            "vCPU 0",
            "vCPU 1 dst",
            "migration threads",
            "migration threads dst",
        ] {
            assert!(n.contains(&want), "{want} missing from {n:?}");
        }
        // Destination guest lines start after the source ones end.
        let src = run
            .series
            .iter()
            .find(|s| s.name == "guest thread 0")
            .unwrap();
        let dst = run
            .series
            .iter()
            .find(|s| s.name == "guest thread 0 (dst)")
            .unwrap();
        assert!(src.points.last().unwrap().0 < dst.points[0].0);
        // Utilization is a percentage of one CPU: the vCPUs run near 97%.
        let v = run.series.iter().find(|s| s.name == "vCPU 0").unwrap();
        let peak = v.points.iter().map(|p| p.1).fold(0.0, f64::max);
        assert!((90.0..=100.0).contains(&peak), "{peak}");
        // Every series is sorted by time.
        for s in &run.series {
            assert!(s.points.windows(2).all(|w| w[0].0 <= w[1].0), "{}", s.name);
        }
    }

    #[test]
    fn ours_marks_statuses_iterations_and_the_downtime_window() {
        let r = synth::report(&synth::Spec {
            records: 400,
            ..Default::default()
        });
        let run = Run::from_report(&r, "pre.json", "pre", &all());
        let st: Vec<&str> = run.statuses.iter().map(|s| s.status.as_str()).collect();
        assert_eq!(st, ["active", "device", "completed"]);
        assert_eq!(
            run.iterations
                .iter()
                .map(|i| i.iteration)
                .collect::<Vec<_>>(),
            [1, 2, 3, 4, 5]
        );
        let d = run.downtime.clone().unwrap();
        assert!(!d.estimated);
        // STOP at 9.3 s, RESUME 62 ms later (synth's timeline).
        assert!((d.start - 9.3).abs() < 1e-6, "{d:?}");
        assert!(((d.end - d.start) * 1000.0 - 62.0).abs() < 1e-3, "{d:?}");
        assert_eq!(run.summary.result, "completed");
        assert_eq!(run.summary.downtime_ms, Some(62.0));
        assert_eq!(run.summary.iterations, Some(5));
    }

    #[test]
    fn a_mode_not_reached_is_in_the_result() {
        let mut r = synth::report(&synth::Spec {
            records: 100,
            ..Default::default()
        });
        r.summary.as_mut().unwrap().mode = Some(gp_records::report::MigrationMode {
            requested: "post-copy".into(),
            reached: "precopy".into(),
            requested_reached: false,
            ..Default::default()
        });
        let run = Run::from_report(&r, "p.json", "p", &all());
        assert_eq!(
            run.summary.result,
            "completed (precopy reached, post-copy asked)"
        );
    }

    #[test]
    fn original_result_is_read_like_the_original_plot() {
        let r = original();
        let run = Run::from_report(&r, "o.json", "o", &all());
        let n = names(&run);
        assert!(
            n.contains(&"guest thread 0") && n.contains(&"guest thread 1"),
            "{n:?}"
        );
        assert!(n.contains(&"QEMU"));
        assert_eq!(n.iter().filter(|n| n.starts_with("vCPU")).count(), 2);
        assert!(!n
            .iter()
            .any(|n| n.contains("dst") || n.contains("migration")));
        // Time zero is the earliest timing record (the first qemu sample here).
        let q = run.series.iter().find(|s| s.name == "QEMU").unwrap();
        assert!((q.points[0].0 - 1.0).abs() < 1e-6, "{:?}", q.points[0]);
        let st: Vec<&str> = run.statuses.iter().map(|s| s.status.as_str()).collect();
        assert_eq!(st, ["active", "postcopy-active", "completed"]);
        let d = run.downtime.clone().unwrap();
        assert!(d.estimated);
        assert_eq!(d.downtime_ms, Some(12.0));
        assert_eq!(run.summary.result, "completed");
        assert_eq!(run.summary.iterations, Some(3));
    }

    #[test]
    fn selection_picks_lines() {
        let r = original();
        let sel = Selection {
            qemu_cpu: true,
            ..Selection::default()
        };
        let run = Run::from_report(&r, "o.json", "o", &sel);
        assert_eq!(names(&run), ["QEMU"]);
        let sel = Selection {
            total_guest_cpu: true,
            ..Selection::default()
        };
        let run = Run::from_report(&r, "o.json", "o", &sel);
        assert_eq!(names(&run), ["guest, all threads"]);
    }

    #[test]
    fn no_guest_records_still_gives_cpu_lines() {
        let mut r = synth::report(&synth::Spec {
            records: 100,
            ..Default::default()
        });
        let ext = r.guestperf_rs.as_mut().unwrap();
        ext.guest_progress.clear();
        ext.guest_gb.clear();
        r.guest_timings.clear();
        assert!(has_data(&r));
        let run = Run::from_report(&r, "x.json", "x", &Selection::default_for(1));
        assert!(run.series.iter().all(|s| s.kind != SeriesKind::GuestThread));
        assert!(names(&run).contains(&"QEMU"));
    }

    #[test]
    fn a_failed_migration_says_why_and_has_no_window() {
        let mut r = synth::report(&synth::Spec {
            records: 100,
            ..Default::default()
        });
        let s = r.summary.as_mut().unwrap();
        s.outcome = Some(gp_records::Outcome::Failed);
        s.reason = "Unable to write to socket: Broken pipe".into();
        s.switchover_s = None;
        s.downtime_ms = None;
        r.progress_history.retain(|p| !p.is_final());
        let run = Run::from_report(&r, "f.json", "f", &Selection::default_for(1));
        assert_eq!(
            run.summary.result,
            "failed: Unable to write to socket: Broken pipe"
        );
        assert_eq!(run.downtime, None);
        assert_eq!(run.summary.downtime_ms, None);
    }

    #[test]
    fn guest_gb_records_are_used_without_progress_records() {
        let mut r = synth::report(&synth::Spec {
            records: 100,
            ..Default::default()
        });
        let ext = r.guestperf_rs.as_mut().unwrap();
        ext.guest_progress.clear();
        ext.guest_gb.push(gp_records::GuestGb {
            time_s: 1_700_000_003.0,
            role: Role::Src,
            thread: 0,
            tid: Some(77),
            guest_time_ms: 0.0,
            elapsed_ms: 812.0,
        });
        let pts = guest_points(&r);
        assert_eq!(pts.len(), 1);
        assert_eq!(pts[0].ms_per_gb, 812.0);
    }
}

#[cfg(test)]
mod real_report_tests {
    use super::*;

    /// A report gp-collect wrote for a real 256 MiB TCG precopy migration on this project's
    /// development VM (QEMU 10.0.2): 131 guest_progress records, 114 CPU samples, QMP events.
    fn real() -> Report {
        let text = include_str!("../tests/fixtures/gp-collect-tcg-precopy.json");
        serde_json::from_str(text).unwrap()
    }

    fn all() -> Selection {
        Selection {
            total_guest_cpu: false,
            split_guest_cpu: true,
            qemu_cpu: true,
            vcpu_cpu: true,
            migration_iters: true,
            migration_cpu: true,
        }
    }

    #[test]
    fn marks_come_from_qemu_event_times() {
        let r = real();
        let start = start_time(&r);
        let run = Run::from_report(&r, "real.json", "real", &all());
        // Every pass, from MIGRATION_PASS (the thinned snapshots skip pass 3).
        let passes: Vec<u64> = run.iterations.iter().map(|i| i.iteration).collect();
        assert_eq!(passes, [1, 2, 3, 4]);
        // `device` at the STOP, by QEMU's clock (gp-migrate read it 274 ms later).
        let device = run.statuses.iter().find(|s| s.status == "device").unwrap();
        let sw = r.summary.as_ref().unwrap().switchover_s.unwrap() - start;
        assert!(
            (device.x - sw).abs() < 0.001,
            "device at {} vs switchover {sw}",
            device.x
        );
        // The window runs from the STOP to the destination's RESUME: QEMU's 274 ms, give or take.
        let d = run.downtime.clone().unwrap();
        assert!(!d.estimated);
        let ms = (d.end - d.start) * 1000.0;
        assert!((ms - 274.0).abs() < 5.0, "{ms} ms");
    }

    #[test]
    fn cpu_lines_use_thread_run_times() {
        let r = real();
        let run = Run::from_report(&r, "real.json", "real", &all());
        let names: Vec<&str> = run.series.iter().map(|s| s.name.as_str()).collect();
        for want in [
            "QEMU",
            "QEMU dst",
            "vCPU 0",
            "vCPU 0 dst",
            "migration threads",
            "guest thread 0 (dst)",
        ] {
            assert!(names.contains(&want), "{want} missing from {names:?}");
        }
        // The process samples carry clock ticks only; the threads carry schedstat run times, so
        // the source's QEMU line, summed from its threads, is not quantized to 10 ms per 100 ms.
        let q = run.series.iter().find(|s| s.name == "QEMU").unwrap();
        let off_grid = q
            .points
            .iter()
            .filter(|p| (p.1 / 10.0 - (p.1 / 10.0).round()).abs() > 0.05);
        assert!(off_grid.count() > q.points.len() / 2);
        // A busy TCG vCPU before the migration: near one whole host CPU.
        let v = run.series.iter().find(|s| s.name == "vCPU 0").unwrap();
        let busy = v
            .points
            .iter()
            .filter(|p| (3.0..3.6).contains(&p.0))
            .map(|p| p.1);
        assert!(
            busy.clone().count() > 3 && busy.clone().all(|u| u > 85.0),
            "{:?}",
            busy.collect::<Vec<_>>()
        );
    }
}
