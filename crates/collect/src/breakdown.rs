//! `summary.downtime_breakdown`: where the downtime went, from QEMU's `vmstate_downtime_*`
//! tracepoints (QEMU 8.2 and later), both VMs on this host's clock.

use gp_records::report::{BreakdownStep, DeviceTime, DowntimeBreakdown, Extended};
use gp_records::{QemuTrace, Role};

pub const CHECKPOINT: &str = "vmstate_downtime_checkpoint";
pub const SAVE: &str = "vmstate_downtime_save";
pub const LOAD: &str = "vmstate_downtime_load";
/// How many devices each of `top_save` and `top_load` names.
pub const TOP_DEVICES: usize = 5;

/// Seconds to subtract from a QEMU timestamp of `role` to put it on this host's clock: the
/// `clock_offset` of the host its `vm` record names (0 for a local VM).
pub fn clock_offset(ext: &Extended, role: Role) -> f64 {
    let host = ext
        .vms
        .iter()
        .rev()
        .find(|v| v.role == role)
        .and_then(|v| v.host.as_deref());
    host.and_then(|h| ext.clock_offsets.iter().rev().find(|c| c.host == h))
        .map_or(0.0, |c| c.offset_s)
}

/// A trace line's time on this host's clock.
fn local_time(ext: &Extended, t: &QemuTrace) -> f64 {
    t.qemu_time_s - clock_offset(ext, t.role)
}

/// A checkpoint's name: its only word (`src-downtime-start`).
fn checkpoint_name(t: &QemuTrace) -> String {
    t.fields
        .get("0")
        .and_then(|v| v.as_str())
        .map_or_else(|| t.args.trim().to_string(), str::to_string)
}

/// Why there can be no breakdown, from the launch header (or `None` when tracing was on).
fn why_unavailable(ext: &Extended) -> Option<String> {
    let header = ext.header.as_ref()?;
    let downtime_traced = header
        .trace_events
        .iter()
        .any(|e| e.starts_with("vmstate_downtime"));
    if let Some(note) = &header.trace_note {
        if !downtime_traced {
            return Some(note.clone());
        }
    }
    if !has_tracepoints(&header.qemu_version) {
        return Some(format!(
            "QEMU {} has no vmstate_downtime tracepoints (they came in 8.2)",
            header.qemu_version
        ));
    }
    if !downtime_traced {
        return Some(
            "tracing was off: gp-launch turned on no vmstate_downtime trace events (a gp-launch \
             without downtime tracing, or tracing turned off)"
                .into(),
        );
    }
    None
}

/// Whether a QEMU version (`10.0.2`, `7.2.22`) has the downtime tracepoints (8.2 and later);
/// an unreadable version is given the benefit of the doubt.
pub fn has_tracepoints(version: &str) -> bool {
    let mut parts = version.split(['.', ' ', '-']).map(|p| p.parse::<u32>());
    match (parts.next(), parts.next()) {
        (Some(Ok(major)), Some(Ok(minor))) => (major, minor) >= (8, 2),
        _ => true,
    }
}

/// The breakdown of the switchover that starts at or after `start_s`; `None` when the stream
/// holds no migration (`has_migration` false).
pub fn breakdown(
    ext: &Extended,
    start_s: Option<f64>,
    qemu_downtime_ms: Option<u64>,
    has_migration: bool,
) -> Option<DowntimeBreakdown> {
    if !has_migration {
        return None;
    }
    let unavailable = |reason: String| DowntimeBreakdown {
        available: false,
        reason: Some(reason),
        ..DowntimeBreakdown::default()
    };
    let mut checkpoints: Vec<(f64, Role, String)> = ext
        .traces
        .iter()
        .filter(|t| t.event == CHECKPOINT)
        .map(|t| (local_time(ext, t), t.role, checkpoint_name(t)))
        .collect();
    if checkpoints.is_empty() {
        return Some(unavailable(why_unavailable(ext).unwrap_or_else(|| {
            "no vmstate_downtime_checkpoint records in the stream (the migration did not reach \
             the switchover, or QEMU's trace output was not read)"
                .into()
        })));
    }
    checkpoints.sort_by(|a, b| a.0.total_cmp(&b.0));
    // A little slack: the migrate action is recorded just before QEMU starts.
    let from = start_s.map_or(f64::NEG_INFINITY, |s| s - 0.001);
    let Some(first) = checkpoints
        .iter()
        .position(|(t, r, n)| *t >= from && *r == Role::Src && n == "src-downtime-start")
    else {
        return Some(unavailable(
            "no src-downtime-start checkpoint after the migration started".into(),
        ));
    };
    let t0 = checkpoints[first].0;
    // Up to the destination's start of the guest (`dst-precopy-bh-vm-started`,
    // `dst-postcopy-bh-vm-started`), else the last checkpoint.
    let last = checkpoints[first..]
        .iter()
        .position(|(_, r, n)| *r == Role::Dst && n.ends_with("vm-started"))
        .map_or(checkpoints.len() - 1, |i| first + i);
    let window = &checkpoints[first..=last];
    let steps: Vec<BreakdownStep> = window
        .windows(2)
        .map(|w| BreakdownStep {
            step: w[1].2.clone(),
            from: w[0].2.clone(),
            role: w[1].1,
            start_s: w[0].0,
            ms: ms(w[1].0 - w[0].0),
        })
        .collect();
    // The source's end of downtime can come after the destination has started the guest (the
    // source finishes its side once the destination has everything): look past the window.
    let src_end = checkpoints[first..]
        .iter()
        .find(|(_, r, n)| *r == Role::Src && n == "src-downtime-end")
        .map(|c| c.0);
    let qemu_window_ms = src_end.map(|e| ms(e - t0));
    let total_ms = Some(ms(window[window.len() - 1].0 - t0));
    let coverage_pct = match (qemu_window_ms, qemu_downtime_ms) {
        (Some(w), Some(d)) if d > 0 => Some((w / d as f64 * 1000.0).round() / 10.0),
        _ => None,
    };
    let t_end = window[window.len() - 1].0;
    let devices = |event: &str| {
        let mut d: Vec<DeviceTime> = ext
            .traces
            .iter()
            .filter(|t| t.event == event)
            .filter(|t| {
                let lt = local_time(ext, t);
                lt >= t0 && lt <= t_end + 0.001
            })
            .map(device_time)
            .collect();
        d.sort_by(|a, b| b.ms.total_cmp(&a.ms));
        let total = ms(d.iter().fold(0.0, |a, x| a + x.ms) / 1e3);
        d.truncate(TOP_DEVICES);
        (d, total)
    };
    let (top_save, save_ms) = devices(SAVE);
    let (top_load, load_ms) = devices(LOAD);
    Some(DowntimeBreakdown {
        available: true,
        reason: None,
        steps,
        qemu_window_ms,
        total_ms,
        coverage_pct,
        top_save,
        save_ms,
        top_load,
        load_ms,
    })
}

/// Seconds to ms, rounded to µs.
fn ms(s: f64) -> f64 {
    (s * 1e6).round() / 1e3
}

fn device_time(t: &QemuTrace) -> DeviceTime {
    let f = &t.fields;
    let idstr = f.get("idstr").and_then(|v| v.as_str()).unwrap_or("?");
    let instance = f.get("instance_id").and_then(|v| v.as_u64()).unwrap_or(0);
    let us = f.get("downtime").and_then(|v| v.as_f64()).unwrap_or(0.0);
    DeviceTime {
        device: if instance == 0 {
            idstr.to_string()
        } else {
            format!("{idstr}#{instance}")
        },
        kind: f
            .get("type")
            .and_then(|v| v.as_str())
            .unwrap_or("?")
            .to_string(),
        ms: us / 1e3,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    fn trace(role: Role, t: f64, event: &str, args: &str) -> QemuTrace {
        let mut fields = serde_json::Map::new();
        for (i, w) in args.split_whitespace().enumerate() {
            match w.split_once('=') {
                Some((k, v)) => fields.insert(
                    k.into(),
                    v.parse::<u64>().map_or_else(|_| json!(v), |n| json!(n)),
                ),
                None => fields.insert(i.to_string(), json!(w)),
            };
        }
        QemuTrace {
            time_s: t,
            role,
            qemu_time_s: t,
            event: event.into(),
            args: args.into(),
            fields,
        }
    }

    /// The switchover of a real precopy run (QEMU 10.0.2, TCG, 256 MiB; QEMU downtime 8 ms),
    /// its slowest devices only.
    pub(crate) fn real_precopy() -> Vec<QemuTrace> {
        let s = Role::Src;
        let d = Role::Dst;
        let save = |t, dev: &str| {
            trace(
                s,
                t,
                SAVE,
                &format!("type=non-iterable idstr={dev} instance_id=0 downtime=229"),
            )
        };
        vec![
            trace(s, 55.305394, CHECKPOINT, "src-downtime-start"),
            trace(s, 55.305480, CHECKPOINT, "src-vm-stopped"),
            trace(
                s,
                55.312346,
                SAVE,
                "type=iterable idstr=ram instance_id=0 downtime=6785",
            ),
            trace(s, 55.312372, CHECKPOINT, "src-iterable-saved"),
            save(55.312787, "0000:00:1f.0/ICH9LPC"),
            trace(
                s,
                55.312545,
                SAVE,
                "type=non-iterable idstr=dma instance_id=1 downtime=5",
            ),
            trace(s, 55.313124, CHECKPOINT, "src-non-iterable-saved"),
            trace(
                d,
                55.313858,
                LOAD,
                "type=iterable idstr=ram instance_id=0 downtime=8202",
            ),
            trace(s, 55.314255, CHECKPOINT, "src-downtime-end"),
            trace(
                d,
                55.314309,
                LOAD,
                "type=non-iterable idstr=kvm-tpr-opt instance_id=0 downtime=315",
            ),
            trace(d, 55.315164, CHECKPOINT, "dst-precopy-loadvm-completed"),
            trace(d, 55.315186, CHECKPOINT, "dst-precopy-bh-enter"),
            trace(d, 55.315200, CHECKPOINT, "dst-precopy-bh-announced"),
            trace(d, 55.315244, CHECKPOINT, "dst-precopy-bh-vm-started"),
        ]
    }

    #[test]
    fn the_sources_end_of_downtime_after_the_guest_started_still_counts() {
        // On a busy host the destination can start the guest before the source logs the end
        // of its downtime: the window ends at the start, QEMU's window at the source's end.
        let mut traces = real_precopy();
        let end = traces
            .iter_mut()
            .find(|t| t.fields.get("0").and_then(|v| v.as_str()) == Some("src-downtime-end"))
            .expect("the fixture has src-downtime-end");
        end.time_s = 55.316;
        end.qemu_time_s = 55.316;
        let ext = Extended {
            traces,
            ..Extended::default()
        };
        let b = breakdown(&ext, Some(55.0), Some(8), true).unwrap();
        assert!(b.available);
        assert_eq!(b.qemu_window_ms, Some(10.606));
        assert_eq!(b.steps.last().unwrap().step, "dst-precopy-bh-vm-started");
        assert!(b.coverage_pct.is_some(), "{b:?}");
    }

    #[test]
    fn steps_cover_qemus_downtime_and_name_the_slowest_devices() {
        let ext = Extended {
            traces: real_precopy(),
            ..Extended::default()
        };
        let b = breakdown(&ext, Some(55.0), Some(8), true).unwrap();
        assert!(b.available);
        let steps: Vec<(&str, f64)> = b.steps.iter().map(|s| (s.step.as_str(), s.ms)).collect();
        assert_eq!(steps[0], ("src-vm-stopped", 0.086));
        assert_eq!(steps[1], ("src-iterable-saved", 6.892));
        assert_eq!(steps.last().unwrap().0, "dst-precopy-bh-vm-started");
        assert_eq!(b.qemu_window_ms, Some(8.861));
        assert_eq!(b.total_ms, Some(9.85));
        assert_eq!(b.coverage_pct, Some(110.8));
        let sum: f64 = b.steps.iter().map(|s| s.ms).sum();
        assert!((sum - 9.85).abs() < 1e-9);
        assert_eq!(b.top_save[0].device, "ram");
        assert_eq!(b.top_save[1].device, "0000:00:1f.0/ICH9LPC");
        assert_eq!(b.top_save[2].device, "dma#1");
        assert_eq!(b.top_load[0].kind, "iterable");
        assert_eq!(b.save_ms, 7.019);
    }

    #[test]
    fn unavailable_says_why() {
        let mut ext: Extended = Extended::default();
        let b = breakdown(&ext, None, Some(8), true).unwrap();
        assert!(!b.available);
        assert!(b
            .reason
            .unwrap()
            .starts_with("no vmstate_downtime_checkpoint"));
        ext.header = Some(
            serde_json::from_value(json!({
                "time_s": 1.0, "tool": "gp-launch", "version": "0.1.0", "argv": [],
                "qemu_binary": "q", "qemu_version": "7.2.22", "accel": "tcg", "kernel": "k",
                "initrd": "i", "kernel_cmdline": "", "transport": "unix", "dst_host": null,
                "hardware": {"cpus": 1, "mem_bytes": 1, "src_cpu_bind": [], "src_mem_bind": [],
                             "dst_cpu_bind": [], "dst_mem_bind": [], "prealloc_pages": false,
                             "huge_pages": false, "locked_pages": false, "dirty_ring_size": 0},
                "host": {"hostname": "h", "cpu_model": "c", "kernel_release": "r", "cpus": 2}
            }))
            .unwrap(),
        );
        let b = breakdown(&ext, None, Some(8), true).unwrap();
        assert_eq!(
            b.reason.unwrap(),
            "QEMU 7.2.22 has no vmstate_downtime tracepoints (they came in 8.2)"
        );
        assert!(breakdown(&ext, None, None, false).is_none());
        // A QEMU with the tracepoints but tracing off, or only other events on: gp-launch's
        // note when it gave one, else "tracing was off".
        let header = ext.header.as_mut().unwrap();
        header.qemu_version = "10.0.2".into();
        header.trace_events = vec!["migration_completion_vm_stop".into()];
        let b = breakdown(&ext, None, Some(8), true).unwrap();
        assert!(b.reason.unwrap().starts_with("tracing was off"));
        let header = ext.header.as_mut().unwrap();
        header.trace_events.clear();
        header.trace_note = Some("downtime tracing turned off (--no-trace)".into());
        let b = breakdown(&ext, None, Some(8), true).unwrap();
        assert_eq!(
            b.reason.unwrap(),
            "downtime tracing turned off (--no-trace)"
        );
        assert!(has_tracepoints("8.2.0") && has_tracepoints("10.0.2") && !has_tracepoints("8.1.5"));
    }
}
