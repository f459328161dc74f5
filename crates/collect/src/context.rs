//! `summary.destination` (what post-copy cost, as QEMU counts it) and
//! `summary.before_migration` (how warm the guest was and how fast it wrote).

use gp_records::report::{BeforeMigration, DestinationFigures, Extended, QemuDirtyRate};
use gp_records::stress::Written;
use gp_records::{Progress, Role};
use serde_json::Value;

/// The window before the migration over which the workload's write rate is given, ms.
pub const RATE_WINDOW_MS: f64 = 2000.0;

const DST_KEYS: [&str; 6] = [
    "postcopy-blocktime",
    "postcopy-vcpu-blocktime",
    "postcopy-latency",
    "postcopy-vcpu-latency",
    "postcopy-non-vcpu-latency",
    "postcopy-latency-dist",
];

fn u64_of(v: &Value, key: &str) -> Option<u64> {
    v.get(key).and_then(Value::as_u64)
}

fn list_of(v: &Value, key: &str) -> Vec<u64> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default()
}

/// The destination's post-copy figures (its last snapshot that has any), the source's page
/// requests and phase bytes (its last snapshot), and the guest's stall beside them; `None` when
/// QEMU reported none of them.
pub fn destination(
    ext: &Extended,
    postcopy: bool,
    guest_stall_ms: Option<f64>,
    notes: &mut Vec<String>,
) -> Option<DestinationFigures> {
    let dst: Option<&Progress> = ext
        .progress
        .iter()
        .rev()
        .find(|p| p.role == Role::Dst && DST_KEYS.iter().any(|k| p.info.get(*k).is_some()));
    let src_ram = ext
        .progress
        .iter()
        .rev()
        .find(|p| p.role == Role::Src && p.info.get("ram").is_some())
        .and_then(|p| p.info.get("ram"));
    let mut f = DestinationFigures {
        guest_stall_ms,
        ..DestinationFigures::default()
    };
    if let Some(p) = dst {
        let i = &p.info;
        f.snapshot_s = Some(p.time_s);
        f.postcopy_blocktime_ms = u64_of(i, "postcopy-blocktime");
        f.postcopy_vcpu_blocktime_ms = list_of(i, "postcopy-vcpu-blocktime");
        f.postcopy_latency_ns = u64_of(i, "postcopy-latency");
        f.postcopy_vcpu_latency_ns = list_of(i, "postcopy-vcpu-latency");
        f.postcopy_non_vcpu_latency_ns = u64_of(i, "postcopy-non-vcpu-latency");
        f.postcopy_latency_dist = list_of(i, "postcopy-latency-dist");
        let faults: u64 = f.postcopy_latency_dist.iter().sum();
        if faults > 0 {
            f.postcopy_remote_faults = Some(faults);
            f.postcopy_latency_p50_bucket_us = bucket_of(&f.postcopy_latency_dist, 0.5);
            f.postcopy_latency_p99_bucket_us = bucket_of(&f.postcopy_latency_dist, 0.99);
        }
    }
    if let Some(ram) = src_ram {
        f.postcopy_requests = u64_of(ram, "postcopy-requests");
        f.precopy_bytes = u64_of(ram, "precopy-bytes");
        f.downtime_bytes = u64_of(ram, "downtime-bytes");
        f.postcopy_bytes = u64_of(ram, "postcopy-bytes");
    }
    if postcopy && f.postcopy_blocktime_ms.is_none() {
        let have_dst = ext.progress.iter().any(|p| p.role == Role::Dst);
        notes.push(if have_dst {
            "post-copy ran but the destination reported no postcopy-blocktime (the \
             postcopy-blocktime capability was off, or no destination snapshot was taken after \
             completion)"
                .to_string()
        } else {
            "post-copy ran but the stream has no destination query-migrate snapshot: no \
             blocktime"
                .to_string()
        });
    }
    let any = f.snapshot_s.is_some()
        || f.postcopy_requests.is_some()
        || f.precopy_bytes.is_some()
        || f.downtime_bytes.is_some()
        || f.postcopy_bytes.is_some();
    any.then_some(f)
}

/// The lower bound (µs) of the bucket of QEMU's latency histogram (bucket N counts faults in
/// [2^N, 2^(N+1)) µs) that holds the fault at quantile `q`.
fn bucket_of(dist: &[u64], q: f64) -> Option<u64> {
    let total: u64 = dist.iter().sum();
    let rank = (q * total as f64).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (n, count) in dist.iter().enumerate() {
        seen += count;
        if seen >= rank {
            return 1u64.checked_shl(n as u32);
        }
    }
    None
}

/// The guest as the migration started at `start_s` (host time); `None` without the source's
/// workload start line.
pub fn before_migration(
    ext: &Extended,
    start_s: Option<f64>,
    notes: &mut Vec<String>,
) -> Option<BeforeMigration> {
    let start_line = ext.guest_start.iter().find(|g| g.role == Role::Src)?;
    let start = start_s?;
    let settle = ext.scenario.as_ref().and_then(|s| s.settle.as_ref());
    let src: Vec<_> = ext
        .guest_progress
        .iter()
        .filter(|p| p.role == Role::Src)
        .collect();

    // Touched share: gp-migrate's when it measured one, else from the workload's records.
    let threads = start_line.threads.max(1);
    let share_bytes = start_line.ram_bytes as f64 / threads as f64;
    let computed = (start_line.ram_bytes > 0 && !src.is_empty()).then(|| {
        let touched: f64 = (0..threads)
            .map(|th| {
                let warm = ext
                    .guest_warm
                    .iter()
                    .any(|w| w.role == Role::Src && w.thread == th && w.time_s <= start);
                if warm {
                    return share_bytes;
                }
                src.iter()
                    .rev()
                    .filter(|p| p.thread == th && p.time_s <= start)
                    .find_map(|p| p.touched_bytes)
                    // A workload without warmth records (older stress) says nothing.
                    .map_or(f64::NAN, |b| b as f64)
            })
            .sum();
        (touched / start_line.ram_bytes as f64).min(1.0)
    });
    let touched_share = settle
        .and_then(|s| s.touched_share)
        .or(computed.filter(|c| c.is_finite()));
    let cold_on_purpose = settle.is_some_and(|s| s.criterion == "sleep");
    let cold = touched_share.is_some_and(|t| t < 1.0);
    if cold {
        let pct = touched_share.unwrap_or(0.0) * 100.0;
        notes.push(format!(
            "the migration started cold{}: the workload had touched {pct:.0}% of its memory, so \
             pre-copy's first pass sent never-written pages and the guest was still faulting in \
             its memory while migrated",
            if cold_on_purpose { " (--cold)" } else { "" }
        ));
    }

    // The achieved write rate (the first pass included: a cold guest writes too), on the guest
    // clock; the migration start moved onto it by the nearest source record.
    let mut written = Written::new();
    for p in &src {
        written.push(p.thread, p.guest_time_ms, p.elapsed_ms, p.bytes);
    }
    let to_guest = |host_s: f64| {
        let near = src.iter().min_by(|a, b| {
            (a.time_s - host_s)
                .abs()
                .total_cmp(&(b.time_s - host_s).abs())
        })?;
        Some(host_s * 1e3 - (near.time_s * 1e3 - near.guest_time_ms))
    };
    let rate_over = |from_host_s: f64, to_host_s: f64| -> Option<f64> {
        let (lo, hi) = written.span_ms()?;
        let to = to_guest(to_host_s)?.min(hi);
        let from = (to - (to_host_s - from_host_s) * 1e3).max(lo);
        (to - from >= 100.0).then(|| written.rate_bytes_per_s(from, to))
    };
    let write_rate_bytes_per_s = rate_over(start - RATE_WINDOW_MS / 1e3, start);

    let qemu_dirty_rates = ext
        .dirty_rates
        .iter()
        .filter(|d| d.role == Role::Src)
        .map(|d| {
            let estimate = d.dirty_rate_mb_s.map(|mb| mb * (1u64 << 20) as f64);
            let achieved =
                estimate.and_then(|_| rate_over(d.time_s - d.calc_time_ms as f64 / 1e3, d.time_s));
            QemuDirtyRate {
                mode: d.mode.clone(),
                estimate_bytes_per_s: estimate,
                achieved_bytes_per_s: achieved,
                ratio: match (estimate, achieved) {
                    (Some(e), Some(a)) if a > 0.0 => Some((e / a * 1e4).round() / 1e4),
                    _ => None,
                },
                error: d.error.clone(),
            }
        })
        .collect();
    Some(BeforeMigration {
        touched_share,
        cold,
        settle_criterion: settle.map(|s| s.criterion.clone()),
        waited_s: settle.map(|s| s.waited_s),
        write_rate_bytes_per_s,
        target_rate_bytes_per_s: start_line.dirty_rate_bytes_per_s,
        qemu_dirty_rates,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use gp_records::launch::{GuestProgress, GuestStart, GuestWarm};
    use gp_records::DirtyRate;
    use serde_json::json;

    fn progress(role: Role, t: f64, info: Value) -> Progress {
        Progress {
            time_s: t,
            role,
            status: info["status"].as_str().unwrap_or("active").into(),
            iteration: None,
            info,
        }
    }

    #[test]
    fn destination_figures_from_both_ends() {
        let ext = Extended {
            progress: vec![
                progress(Role::Dst, 2.0, json!({"status": "postcopy-active"})),
                progress(
                    Role::Src,
                    3.0,
                    json!({"status": "completed", "ram": {"postcopy-requests": 48,
                        "precopy-bytes": 6831222, "downtime-bytes": 0,
                        "postcopy-bytes": 189709755u64}}),
                ),
                progress(
                    Role::Dst,
                    3.1,
                    json!({"status": "completed", "postcopy-blocktime": 4080,
                           "postcopy-vcpu-blocktime": [4080, 12],
                           "postcopy-latency-dist": [0, 3, 9]}),
                ),
            ],
            ..Extended::default()
        };
        let mut notes = vec![];
        let f = destination(&ext, true, Some(250.0), &mut notes).unwrap();
        assert_eq!(f.postcopy_blocktime_ms, Some(4080));
        assert_eq!(f.postcopy_vcpu_blocktime_ms, [4080, 12]);
        assert_eq!(f.postcopy_latency_dist, [0, 3, 9]);
        // 12 faults: 3 in [2, 4) µs, 9 in [4, 8) µs.
        assert_eq!(f.postcopy_remote_faults, Some(12));
        assert_eq!(f.postcopy_latency_p50_bucket_us, Some(4));
        assert_eq!(f.postcopy_latency_p99_bucket_us, Some(4));
        assert_eq!(bucket_of(&[0, 3, 9], 0.25), Some(2));
        assert_eq!(bucket_of(&[], 0.5), None);
        assert_eq!(f.postcopy_latency_ns, None);
        assert_eq!(f.postcopy_requests, Some(48));
        assert_eq!(f.postcopy_bytes, Some(189709755));
        assert_eq!((f.snapshot_s, f.guest_stall_ms), (Some(3.1), Some(250.0)));
        assert!(notes.is_empty());
        // Post-copy without blocktime says why.
        let ext = Extended {
            progress: ext.progress[..2].to_vec(),
            ..Extended::default()
        };
        let f = destination(&ext, true, None, &mut notes).unwrap();
        assert_eq!(f.postcopy_blocktime_ms, None);
        assert!(notes[0].contains("no postcopy-blocktime"), "{notes:?}");
        assert!(destination(&Extended::default(), false, None, &mut notes).is_none());
    }

    fn gp(t: f64, thread: u32, touched: Option<u64>) -> GuestProgress {
        GuestProgress {
            time_s: t,
            role: Role::Src,
            thread,
            // The guest clock runs 0.5 s behind the host's.
            guest_time_ms: t * 1e3 - 500.0,
            bytes: 10 << 20,
            elapsed_ms: 100.0,
            touched_bytes: touched,
        }
    }

    fn start_line() -> GuestStart {
        serde_json::from_value(json!({"time_s": 0.0, "role": "src", "threads": 2,
            "ram_bytes": 200u64 << 20, "grain_ms": 100.0, "guest_time_ms": 0.0,
            "dirty_rate_bytes_per_s": 209715200u64}))
        .unwrap()
    }

    #[test]
    fn warm_guest_rate_and_qemu_estimate() {
        // Two threads, each 10 MiB per 100 ms: 200 MiB/s together, warm at 1 s.
        let mut progress = vec![];
        for i in 1..=40 {
            let t = i as f64 * 0.1;
            for th in 0..2 {
                progress.push(gp(t, th, (t <= 1.0).then_some(i * (10 << 20))));
            }
        }
        let warm = |th| GuestWarm {
            time_s: 1.0,
            role: Role::Src,
            thread: th,
            guest_time_ms: 500.0,
            elapsed_ms: 1000.0,
            touched_bytes: 100 << 20,
        };
        let ext = Extended {
            guest_start: vec![start_line()],
            guest_progress: progress,
            guest_warm: vec![warm(0), warm(1)],
            dirty_rates: vec![DirtyRate {
                time_s: 3.0,
                role: Role::Src,
                mode: "page-sampling".into(),
                calc_time_ms: 1000,
                sample_pages: Some(512),
                dirty_rate_mb_s: Some(150.0),
                vcpu_dirty_rate_mb_s: vec![],
                error: None,
                info: json!({}),
            }],
            ..Extended::default()
        };
        let mut notes = vec![];
        let b = before_migration(&ext, Some(3.5), &mut notes).unwrap();
        assert_eq!(b.touched_share, Some(1.0));
        assert!(!b.cold && notes.is_empty());
        let mib = (1u64 << 20) as f64;
        assert!(
            (b.write_rate_bytes_per_s.unwrap() / mib - 200.0).abs() < 1e-6,
            "{b:?}"
        );
        let q = &b.qemu_dirty_rates[0];
        assert!((q.achieved_bytes_per_s.unwrap() / mib - 200.0).abs() < 1e-6);
        assert_eq!(q.estimate_bytes_per_s, Some(150.0 * mib));
        assert_eq!(q.ratio, Some(0.75));
        assert_eq!(b.target_rate_bytes_per_s, Some(209715200));
        // Started at 0.55 s: each thread had touched 50 of its 100 MiB.
        let b = before_migration(&ext, Some(0.55), &mut notes).unwrap();
        assert_eq!(b.touched_share, Some(0.5));
        assert!(b.cold);
        assert!(notes[0].starts_with("the migration started cold: the workload had touched 50%"));
    }
}
