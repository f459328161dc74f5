//! QEMU's own measurement of the guest's dirty rate before migrating (`--calc-dirty-rate SECS`):
//! which modes to ask for on this QEMU and accelerator, the `calc-dirty-rate` arguments, and the
//! `dirty_rate` record from `query-dirty-rate`'s reply. The engine does the calls.

use gp_records::migrate::DirtyRate;
use gp_records::{now_s, Role};
use qapi::qmp;
use serde_json::Value;

/// Pages sampled per GiB in page-sampling mode: the most QEMU takes (its range is 128 to
/// 16384), against its default of 512. At 512 a 256 MiB guest has 128 pages sampled, and a
/// dirty share of 10% is estimated from about 13 of them (a relative standard error near 28%);
/// at 16384, from about 410 (5%).
pub const SAMPLE_PAGES: u64 = 16384;

/// One measurement to make, or the reason it cannot be made here.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub mode: &'static str,
    /// Why this mode is not measured on this QEMU and accelerator.
    pub unsupported: Option<String>,
}

/// The modes to measure, in order: page sampling (always), dirty bitmap (KVM without a dirty
/// ring: under TCG QEMU 10.0.2 reports 0 whatever the guest does, and QEMU 7.2's source dies of
/// SIGSEGV), dirty ring (KVM with a dirty ring). `modes` is what QEMU's
/// `calc-dirty-rate` takes (`None`: no such command; empty: no `mode` argument).
pub fn plans(modes: Option<&[String]>, kvm: bool, dirty_ring_size: u32) -> Vec<Plan> {
    let Some(modes) = modes else {
        return vec![Plan {
            mode: "page-sampling",
            unsupported: Some("this QEMU has no calc-dirty-rate command".into()),
        }];
    };
    let has = |m: &str| modes.iter().any(|x| x == m);
    let ring = kvm && dirty_ring_size > 0;
    let mut out = vec![Plan {
        mode: "page-sampling",
        unsupported: None,
    }];
    out.push(Plan {
        mode: "dirty-bitmap",
        unsupported: if !has("dirty-bitmap") {
            Some("this QEMU's calc-dirty-rate has no dirty-bitmap mode".into())
        } else if !kvm {
            Some(
                "dirty-bitmap mode counts through KVM's dirty log: without KVM QEMU reports 0 \
                 (10.0) or crashes (7.2)"
                    .into(),
            )
        } else if ring {
            Some("QEMU measures with the dirty bitmap only without a dirty ring".into())
        } else {
            None
        },
    });
    out.push(Plan {
        mode: "dirty-ring",
        unsupported: if !has("dirty-ring") {
            Some("this QEMU's calc-dirty-rate has no dirty-ring mode".into())
        } else if !ring {
            Some("dirty-ring mode needs KVM with a dirty ring (gp-launch --dirty-ring-size)".into())
        } else {
            None
        },
    });
    out
}

/// `calc-dirty-rate`'s arguments for `mode`: the calc time in seconds (the unit every QEMU
/// takes; `calc-time-unit` is 8.2's), sample pages in page-sampling mode, and the mode only when
/// this QEMU takes one.
pub fn arguments(mode: &str, calc_s: u64, has_modes: bool) -> qmp::calc_dirty_rate {
    qmp::calc_dirty_rate {
        calc_time: calc_s as i64,
        calc_time_unit: None,
        sample_pages: (mode == "page-sampling").then_some(SAMPLE_PAGES as i64),
        mode: if has_modes {
            serde_json::from_value(Value::from(mode)).ok()
        } else {
            None
        },
    }
}

/// `query-dirty-rate`'s status (`unstarted`, `measuring`, `measured`).
pub fn status(info: &Value) -> Option<&str> {
    info.get("status").and_then(Value::as_str)
}

/// The record for a measurement of `mode` over `calc_s` seconds: QEMU's reply (`info`, `None`
/// when there is none) or why there is no estimate.
pub fn record(mode: &str, calc_s: u64, info: Option<Value>, error: Option<String>) -> DirtyRate {
    let info = info.unwrap_or(Value::Null);
    let measured = status(&info) == Some("measured");
    let rate = info
        .get("dirty-rate")
        .and_then(Value::as_f64)
        .filter(|_| measured);
    let vcpu = info
        .get("vcpu-dirty-rate")
        .and_then(Value::as_array)
        .map(|all| {
            all.iter()
                .filter_map(|v| v.get("dirty-rate").and_then(Value::as_f64))
                .collect()
        })
        .unwrap_or_default();
    let sample_pages = (mode == "page-sampling").then(|| {
        info.get("sample-pages")
            .and_then(Value::as_u64)
            .unwrap_or(SAMPLE_PAGES)
    });
    let error = error.or_else(|| {
        (rate.is_none()).then(|| {
            format!(
                "QEMU did not report a dirty rate (status {})",
                status(&info).unwrap_or("unknown")
            )
        })
    });
    DirtyRate {
        time_s: now_s(),
        role: Role::Src,
        mode: mode.to_string(),
        calc_time_ms: calc_s * 1000,
        sample_pages,
        dirty_rate_mb_s: rate,
        vcpu_dirty_rate_mb_s: vcpu,
        error,
        info,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn all() -> Vec<String> {
        ["page-sampling", "dirty-ring", "dirty-bitmap"]
            .map(String::from)
            .to_vec()
    }

    fn runnable(p: &[Plan]) -> Vec<&str> {
        p.iter()
            .filter(|p| p.unsupported.is_none())
            .map(|p| p.mode)
            .collect()
    }

    #[test]
    fn modes_follow_the_qemu_and_the_accelerator() {
        // TCG: sampling only; the bitmap and the ring count through KVM.
        let tcg = plans(Some(&all()), false, 0);
        assert_eq!(runnable(&tcg), ["page-sampling"]);
        assert!(tcg[1].unsupported.as_ref().unwrap().contains("KVM"));
        assert!(tcg[2].unsupported.as_ref().unwrap().contains("KVM"));
        // KVM without a ring: same; with one: sampling and the ring.
        assert_eq!(
            runnable(&plans(Some(&all()), true, 0)),
            ["page-sampling", "dirty-bitmap"]
        );
        assert_eq!(
            runnable(&plans(Some(&all()), true, 4096)),
            ["page-sampling", "dirty-ring"]
        );
        // Before QEMU 6.2: no mode argument, sampling only; no command at all: nothing.
        assert_eq!(runnable(&plans(Some(&[]), true, 4096)), ["page-sampling"]);
        assert!(runnable(&plans(None, false, 0)).is_empty());
    }

    #[test]
    fn arguments_per_mode() {
        assert_eq!(
            serde_json::to_value(arguments("page-sampling", 2, true)).unwrap(),
            json!({"calc-time": 2, "sample-pages": SAMPLE_PAGES, "mode": "page-sampling"})
        );
        assert_eq!(
            serde_json::to_value(arguments("dirty-bitmap", 1, true)).unwrap(),
            json!({"calc-time": 1, "mode": "dirty-bitmap"})
        );
        assert_eq!(
            serde_json::to_value(arguments("page-sampling", 1, false)).unwrap(),
            json!({"calc-time": 1, "sample-pages": SAMPLE_PAGES})
        );
    }

    #[test]
    fn records_from_replies() {
        let measured = json!({"status": "measured", "dirty-rate": 31, "start-time": 1764102436,
            "calc-time": 1, "calc-time-unit": "second", "sample-pages": 16384,
            "mode": "page-sampling"});
        let r = record("page-sampling", 1, Some(measured.clone()), None);
        assert_eq!(r.dirty_rate_mb_s, Some(31.0));
        assert_eq!(r.sample_pages, Some(16384));
        assert_eq!(r.calc_time_ms, 1000);
        assert_eq!(r.error, None);
        assert_eq!(r.info, measured);
        let ring = json!({"status": "measured", "dirty-rate": 64, "mode": "dirty-ring",
            "vcpu-dirty-rate": [{"id": 0, "dirty-rate": 40}, {"id": 1, "dirty-rate": 24}]});
        let r = record("dirty-ring", 2, Some(ring), None);
        assert_eq!(r.vcpu_dirty_rate_mb_s, [40.0, 24.0]);
        assert_eq!(r.sample_pages, None);
        let r = record(
            "dirty-bitmap",
            1,
            Some(json!({"status": "measuring"})),
            None,
        );
        assert_eq!(r.dirty_rate_mb_s, None);
        assert!(r.error.unwrap().contains("status measuring"));
        let r = record("dirty-ring", 1, None, Some("needs KVM".into()));
        assert_eq!(r.error.as_deref(), Some("needs KVM"));
        assert_eq!(r.info, Value::Null);
    }
}
