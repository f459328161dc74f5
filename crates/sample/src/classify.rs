//! What a QEMU thread is for, from the launch record's vCPU thread ids and the thread's name.
//!
//! QEMU names its threads only when started with `-name ...,debug-threads=on`; otherwise every
//! thread carries the process name and only the vCPU threads (whose ids the launch record lists)
//! can be told apart.

use gp_records::sample::ThreadClass;

/// Migration thread names. Since QEMU 9.0 they all start with `mig/` (`mig/src/main`,
/// `mig/src/send_N`, `mig/src/return`, `mig/src/tls`, `mig/dst/recv_N`, `mig/dst/listen`,
/// `mig/dst/fault`, `mig/dst/preempt`, `mig/dst/colo`, `mig/dirtyrate`, ...). Older QEMUs used
/// the names below; a name is at most 15 bytes (the kernel truncates `comm`).
const LEGACY_EXACT: &[&str] = &[
    "live_migration",
    "return path",
    "postcopy/listen",
    "postcopy/fault",
    "fault-default",
    "fault-fast",
    "bg_snapshot",
    "get_dirtyrate",
    "compress",
    "decompress",
    "colo",
    "COLO incoming",
    "multifdsend",
    "multifdrecv",
];

/// Prefixes of numbered legacy names (`multifdsend_0`, `multifdrecv_3`, ...).
const LEGACY_PREFIXES: &[&str] = &["mig/", "multifdsend_", "multifdrecv_", "postcopy/"];

/// Whether a thread name is one of QEMU's migration threads.
pub fn is_migration_thread(name: &str) -> bool {
    LEGACY_PREFIXES.iter().any(|p| name.starts_with(p)) || LEGACY_EXACT.contains(&name)
}

/// Classifies one thread. `vcpu_tids` are the vCPU thread ids in vCPU index order.
pub fn classify(tid: u32, name: &str, vcpu_tids: &[u32]) -> (ThreadClass, Option<u32>) {
    if let Some(index) = vcpu_tids.iter().position(|&t| t == tid) {
        return (ThreadClass::Vcpu, Some(index as u32));
    }
    if vcpu_tids.is_empty() {
        // No ids from the launch record: fall back to QEMU's vCPU names, `CPU 3/KVM`, `CPU 0/TCG`.
        if let Some(index) = vcpu_index_from_name(name) {
            return (ThreadClass::Vcpu, Some(index));
        }
    }
    if is_migration_thread(name) {
        return (ThreadClass::Migration, None);
    }
    (ThreadClass::Other, None)
}

fn vcpu_index_from_name(name: &str) -> Option<u32> {
    let rest = name.strip_prefix("CPU ")?;
    let (index, accel) = rest.split_once('/')?;
    if accel.is_empty() {
        return None;
    }
    index.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qemu_10_names() {
        // Names read from /proc/PID/task/*/comm of QEMU 10.0.2 during precopy, multifd and
        // post-copy migrations.
        for name in [
            "mig/src/main",
            "mig/src/send_0",
            "mig/src/send_1",
            "mig/dst/recv_0",
            "mig/src/return",
            "mig/dst/listen",
            "mig/dst/fault",
            "mig/dst/preempt",
        ] {
            assert_eq!(
                classify(9, name, &[1, 2]),
                (ThreadClass::Migration, None),
                "{name}"
            );
        }
        for name in [
            "qemu-system-x86",
            "IO mon_iothread",
            "call_rcu",
            "worker",
            "vnc_worker",
        ] {
            assert_eq!(
                classify(9, name, &[1, 2]),
                (ThreadClass::Other, None),
                "{name}"
            );
        }
    }

    #[test]
    fn legacy_names() {
        for name in [
            "live_migration",
            "multifdsend_3",
            "multifdrecv_0",
            "return path",
            "postcopy/fault",
            "compress",
            "decompress",
        ] {
            assert!(is_migration_thread(name), "{name}");
        }
        assert!(!is_migration_thread("compressor"));
    }

    #[test]
    fn vcpus_by_tid_then_by_name() {
        assert_eq!(
            classify(20, "qemu-system-x86", &[10, 20]),
            (ThreadClass::Vcpu, Some(1))
        );
        // With tids known, a name alone does not make a vCPU.
        assert_eq!(
            classify(30, "CPU 2/TCG", &[10, 20]),
            (ThreadClass::Other, None)
        );
        assert_eq!(classify(30, "CPU 2/TCG", &[]), (ThreadClass::Vcpu, Some(2)));
        assert_eq!(classify(30, "CPU 2/", &[]), (ThreadClass::Other, None));
    }
}
