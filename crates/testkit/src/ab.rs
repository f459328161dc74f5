//! Synthetic arms for tests, the benchmark and trying gp-compare out: reports whose summary
//! figures are drawn with a given noise, written as a gp-batch output directory.
//!
//! The reports are gp-plot's synthetic ones ([`crate::synth`]: complete, shaped like real
//! runs) with the summary's figures replaced: each figure's median times `shift`, with
//! multiplicative log-normal noise of the given coefficient of variation.

use std::path::Path;

use gp_records::migrate::Outcome;
use gp_records::report::{GuestStall, GuestThroughput, Report, VmCpu};
use gp_records::Role;
use rand::Rng;

/// One run to make.
#[derive(Debug, Clone)]
pub struct Spec {
    pub scenario: String,
    pub host: String,
    pub outcome: Outcome,
    /// Multiplies every figure's median (1.2: B is 20 % higher).
    pub shift: f64,
    /// Coefficient of variation of every figure (0.09 = 9 %).
    pub cv: f64,
}

/// Medians of the figures of an unshifted run (a 1 GiB pre-copy under TCG, roughly).
const TOTAL_MS: f64 = 1890.0;
const DOWNTIME_MS: f64 = 90.0;
const STALL_MS: f64 = 160.0;
const SLOWDOWN_PCT: f64 = 30.0;
const TRANSFERRED: f64 = 1.3e9;
const SRC_CPU_S: f64 = 3.4;
const DST_CPU_S: f64 = 1.9;

/// One standard normal draw (Box-Muller on 53-bit uniforms).
pub fn normal(rng: &mut impl Rng) -> f64 {
    let mut u = || ((rng.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    let (u1, u2) = (u(), u());
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// The template every run is made from (small: 200 workload records).
pub fn template() -> Report {
    crate::synth::report(&crate::synth::Spec {
        records: 200,
        ..crate::synth::Spec::default()
    })
}

/// A report for `spec`, its figures drawn from `rng`.
pub fn report(template: &Report, spec: &Spec, rng: &mut impl Rng) -> Report {
    let log_sd = (1.0 + spec.cv * spec.cv).ln().sqrt();
    let mut draw = |median: f64| median * spec.shift * (log_sd * normal(rng)).exp();
    let mut r = template.clone();
    r.scenario.name = spec.scenario.clone();
    if let Some(h) = r.guestperf_rs.as_mut().and_then(|x| x.header.as_mut()) {
        h.host.hostname = spec.host.clone();
    }
    let total = draw(TOTAL_MS).round() as u64;
    let downtime = draw(DOWNTIME_MS).round().max(1.0) as u64;
    let stall = draw(STALL_MS);
    let slowdown = draw(SLOWDOWN_PCT);
    let transferred = draw(TRANSFERRED) as u64;
    let (src, dst) = (draw(SRC_CPU_S), draw(DST_CPU_S));
    let s = r.summary.get_or_insert_with(Default::default);
    s.outcome = Some(spec.outcome);
    s.total_time_ms = Some(total);
    s.downtime_ms = Some(downtime);
    s.transferred_bytes = Some(transferred);
    s.guest_stall = Some(GuestStall {
        stall_ms: stall,
        start_s: 0.0,
        end_s: stall / 1000.0,
        before_role: Role::Src,
        after_role: Role::Dst,
        typical_gap_ms: Some(20.0),
        qemu_downtime_ms: Some(downtime),
        excess_over_downtime_ms: Some(stall - downtime as f64),
    });
    s.guest_throughput = Some(GuestThroughput {
        source: "guest_progress".into(),
        slowdown_during_pct: Some(slowdown),
        ..Default::default()
    });
    let vm = |role, pid, during| VmCpu {
        role,
        pid,
        host: None,
        samples: 10,
        process_s: during * 3.0,
        during_migration_s: Some(during),
        vcpu_s: during,
        migration_s: during / 3.0,
        other_s: during / 3.0,
        migration_threads: vec!["live_migration".into()],
    };
    s.host_cpu.vms = vec![vm(Role::Src, 4242, src), vm(Role::Dst, 4343, dst)];
    if spec.outcome != Outcome::Completed {
        s.total_time_ms = None;
        s.downtime_ms = None;
    }
    r
}

/// Writes `runs` (scenario, run number, report) as gp-batch does: `DIR/COMPARISON/SCENARIO.json`
/// for run 1, `SCENARIO.rK.json` for run K.
pub fn write_batch_dir(
    dir: &Path,
    comparison: &str,
    runs: &[(String, u32, Report)],
) -> std::io::Result<()> {
    let sub = dir.join(comparison);
    std::fs::create_dir_all(&sub)?;
    for (scenario, k, report) in runs {
        let name = if *k == 1 {
            format!("{scenario}.json")
        } else {
            format!("{scenario}.r{k}.json")
        };
        std::fs::write(sub.join(name), serde_json::to_vec(report)?)?;
    }
    Ok(())
}

/// An arm of `scenarios` x `runs` completed runs on host `host`.
pub fn arm_reports(
    scenarios: usize,
    runs: u32,
    shift: f64,
    cv: f64,
    host: &str,
    rng: &mut impl Rng,
) -> Vec<(String, u32, Report)> {
    let t = template();
    let mut out = Vec::new();
    for k in 1..=runs {
        for s in 0..scenarios {
            let spec = Spec {
                scenario: format!("scenario-{s:03}"),
                host: host.into(),
                outcome: Outcome::Completed,
                shift,
                cv,
            };
            out.push((spec.scenario.clone(), k, report(&t, &spec, rng)));
        }
    }
    out
}
