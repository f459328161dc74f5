//! The capability probe against the real QEMU: what it accepts and refuses, in QEMU's words.

use std::path::Path;
use std::time::Duration;

use guestperf::batch::comparisons;
use guestperf::batch::probe::{probe, ProbeAccel};
use guestperf::options::{qemu_requirements, Accel, Migrate};

fn qemu() -> &'static Path {
    let path = Path::new("/usr/bin/qemu-system-x86_64");
    assert!(
        path.exists(),
        "qemu-system-x86_64 is missing: run scripts/setup-host.sh to install QEMU"
    );
    path
}

#[test]
fn probe_under_tcg_skips_what_qemu_10_lacks_and_accepts_the_rest() {
    let _lock = gp_testkit::vm_test_lock();
    let scenario = |comparison: &str, index: usize| {
        comparisons::find(comparison).unwrap().scenarios[index].clone()
    };
    let cases = [
        scenario("compr-mt", 0),
        scenario("compr-multifd-compression", 0), // zlib
        scenario("compr-multifd-compression", 1), // zstd
        scenario("compr-multifd-compression", 2), // qpl
        scenario("compr-dirty-limit", 0),
        scenario("post-copy-iters", 1),
        scenario("compr-xbzrle", 2),
        scenario("auto-converge-iters", 0),
        scenario("compr-multifd", 3),
        scenario("pause-iters", 0),
    ];
    let reqs: Vec<_> = cases
        .iter()
        .map(|s| qemu_requirements(&s.migrate_over(&Migrate::defaults()).unwrap()))
        .collect();
    let report = probe(
        qemu(),
        ProbeAccel {
            accel: Accel::Tcg,
            dirty_ring_size: 0,
        },
        &reqs,
        Duration::from_secs(60),
    )
    .unwrap();
    assert_eq!(report.accel, "tcg");
    assert!(
        report.qemu_version.starts_with(char::is_numeric),
        "{}",
        report.qemu_version
    );
    assert!(report.capabilities.iter().any(|c| c == "postcopy-ram"));
    let major: u32 = report
        .qemu_version
        .split('.')
        .next()
        .unwrap()
        .parse()
        .unwrap();

    let r = &report.refusals;
    if major >= 10 {
        let mt = r[0]
            .as_deref()
            .expect("QEMU >= 9.1 has no multi-thread compression");
        assert!(mt.contains("no 'compress' migration capability"), "{mt}");
        assert!(
            mt.contains("removed multi-thread compression in 9.1"),
            "{mt}"
        );
    }
    assert_eq!(r[1], None, "zlib is always compiled in");
    let qpl = r[3].as_deref().expect("Debian's QEMU is built without QPL");
    assert!(qpl.contains("multifd-compression=\"qpl\""), "{qpl}");
    assert!(qpl.contains("does not accept value 'qpl'"), "{qpl}");
    let dl = r[4].as_deref().expect("dirty-limit needs KVM");
    assert!(dl.contains("requires KVM"), "{dl}");
    assert!(
        dl.starts_with(&format!("QEMU {} (tcg) refuses", report.qemu_version)),
        "{dl}"
    );
    for (i, what) in [
        (5, "post-copy"),
        (6, "xbzrle"),
        (7, "auto-converge"),
        (8, "64 multifd channels"),
        (9, "pause"),
    ] {
        assert_eq!(r[i], None, "{what} must be accepted");
    }
}
